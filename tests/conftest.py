"""Fixtures shared by every test.

Every test that uses ``make_app`` runs once per engine: SQLite (a fresh file) and PostgreSQL
(a fresh schema in the ``yiti_test`` database). ``YITI_TEST_ENGINES=sqlite`` limits a local run;
in CI (``CI=true``) an unreachable PostgreSQL is a failure, never a skip.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
from sqlalchemy import create_engine, text

from core import clock, create_app
from core.extensions import db, limiter

ENGINES = [e.strip() for e in os.environ.get("YITI_TEST_ENGINES", "sqlite,postgresql").split(",") if e.strip()]
PG_URL = os.environ.get("YITI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/yiti_test")
ALL_PLUGINS = ("approval", "crm", "srm", "hr")
PASSWORD = "Correct-Horse-42"
FAST_HASH = "scrypt:1024:8:1"  # same KDF, smaller work factor: tests hash hundreds of passwords


@pytest.fixture(scope="session")
def postgres_url():
    """The test database URL, created on first use."""
    server = PG_URL.rsplit("/", 1)[0] + "/postgres"
    name = PG_URL.rsplit("/", 1)[1]
    try:
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                except Exception:  # another xdist worker created it first
                    pass
        admin.dispose()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {server}: {exc}")
        pytest.skip(f"PostgreSQL not reachable ({exc.__class__.__name__}); set YITI_TEST_ENGINES=sqlite")
    return PG_URL


@pytest.fixture(params=ENGINES)
def engine_name(request):
    return request.param


@pytest.fixture
def database(engine_name, tmp_path, request):
    """The URL of an empty database for this test (PostgreSQL: a schema, chosen in the URL)."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{url}?options=-csearch_path%3D{schema}"
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def make_app(database, tmp_path):
    """``make_app(plugins=[...], schema="create"|"migrate"|None, **settings)`` builds an app on this test's database."""
    url = database
    apps = []

    def factory(plugins=ALL_PLUGINS, schema="create", **settings):
        config = {
            "TESTING": True,
            "DATABASE_URL": url,
            "PLUGINS": list(plugins),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
            "PASSWORD_HASH": FAST_HASH,
            "DEMO_RECORDS": False,  # the demo company's people and structure, without sample records
        }
        config.update(settings)
        app = create_app(config)
        apps.append(app)
        with app.app_context():
            if schema == "create":
                from core import registry

                registry.create_schema()
            elif schema == "migrate":
                from core import migrate

                migrate.upgrade()
        return app

    yield factory
    limiter.reset()
    clock.set_now(None)
    for app in apps:
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app(make_app):
    """An app with every plugin enabled and the demo company loaded."""
    app = make_app()
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


class Client:
    """A test client that behaves like a browser: it keeps the session and sends CSRF tokens."""

    TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

    def __init__(self, app):
        self.app = app
        self.http = app.test_client()
        self._token = None

    def token(self) -> str:
        if self._token is None:
            page = self.http.get("/login", follow_redirects=True)
            self._token = self.TOKEN.search(page.get_data(as_text=True)).group(1)
        return self._token

    def get(self, url, **kwargs):
        return self.http.get(url, **kwargs)

    def post(self, url, data=None, **kwargs):
        """Submit a form, as the page's own form would (with its CSRF token)."""
        return self.http.post(url, data={"csrf_token": self.token(), **(data or {})}, **kwargs)

    def api(self, method, url, json=None, headers=None):
        """Call the JSON API with the session (and the CSRF header a page's script would send)."""
        headers = {"X-CSRFToken": self.token(), **(headers or {})}
        return self.http.open(url, method=method.upper(), json=json, headers=headers)

    def login(self, username, password=PASSWORD):
        response = self.post("/login", {"username": username, "password": password})
        self._token = None  # a new session after login
        return response


@pytest.fixture
def as_user(app):
    """``as_user("sales1")``: a logged-in client for a demo user."""

    def login(username, password=PASSWORD):
        client = Client(app)
        response = client.login(username, password)
        assert response.status_code == 302, f"login as {username} failed"
        return client

    return login


@pytest.fixture
def anonymous(app):
    return Client(app)
