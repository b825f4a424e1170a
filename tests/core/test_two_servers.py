"""Two real gunicorn servers on one PostgreSQL database and one Redis: no state lives in the process.

A session made on server A works on server B, a note written through A's API is read through B's,
and failed logins spread over both servers add up in one throttle. One test, because the servers
(and the Redis database they share) are started once for the whole story.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine, text

from core import create_app
from core.extensions import db
from tests.conftest import FAST_HASH, PASSWORD

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"
REDIS_URL = "redis://127.0.0.1:6379/11"  # this test's own Redis database, emptied before and after
PLUGINS = "approval,crm,srm,hr,notes"
SECRET = "two-servers-share-this-secret-key-0123456789abcdef"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrate_and_seed(env: dict, instance: Path) -> None:
    """Migrate the shared database and load the demo company (with the notes plugin)."""
    app = create_app({"DATABASE_URL": env["YITI_DATABASE_URL"], "PLUGINS": PLUGINS.split(","),
                      "SECRET_KEY": SECRET, "PASSWORD_HASH": FAST_HASH, "INSTANCE_PATH": str(instance)})
    with app.app_context():
        from core import migrate, registry
        from core.demo import create_demo_company

        migrate.upgrade()
        # Tables whose migration is not written yet (test_migrations reports that drift) come from
        # the models, so this test checks the servers, not the migrations.
        registry.create_schema()
        create_demo_company(PASSWORD)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def shared_backends(postgres_url):
    """A fresh PostgreSQL schema and an empty Redis database, both dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    cache = redis.Redis.from_url(REDIS_URL)
    try:
        cache.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL}: {exc}")
    cache.flushdb()
    env = {
        "YITI_DATABASE_URL": f"{postgres_url}?options=-csearch_path%3D{schema}",
        "YITI_REDIS_URL": REDIS_URL,
        "YITI_SECRET_KEY": SECRET,
        "YITI_PLUGINS": PLUGINS,
        "YITI_PASSWORD_HASH": FAST_HASH,
    }
    yield env
    cache.flushdb()
    cache.close()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def two_servers(shared_backends, tmp_path):
    """Start servers A and B (one gunicorn worker each, own instance folders) and yield their base URLs.

    The servers need the database only from their first real request, so they boot while it is seeded.
    """
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("YITI_", "FLASK_"))}
    servers = []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = (tmp_path / f"gunicorn-{name}.log").open("wb")
            env = {**base_env, **shared_backends, "YITI_INSTANCE_PATH": str(tmp_path / f"instance-{name}"),
                   "YITI_WORKERS": "1"}
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}",
                 "--workers", "1", "core:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            servers.append((f"http://127.0.0.1:{port}", process, log, tmp_path / f"gunicorn-{name}.log"))
        migrate_and_seed(shared_backends, tmp_path / "seed")  # while the servers boot
        deadline = time.monotonic() + START_TIMEOUT
        for url, process, _log, path in servers:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"gunicorn for {url} exited:\n{path.read_text(errors='replace')[-3000:]}")
                try:
                    if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:  # refused, or accepted while the worker still boots
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn for {url} did not answer /healthz in {START_TIMEOUT:.0f} s:\n"
                                f"{path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)
        yield servers[0][0], servers[1][0]
    finally:
        for _url, process, log, _path in servers:
            process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
        for _url, process, log, _path in servers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def csrf_token(http: requests.Session, url: str) -> str:
    page = http.get(url)
    assert page.status_code == 200, page.text[:500]
    return TOKEN.search(page.text).group(1)


def try_login(base: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Log in on ``base`` with a fresh browser: fetch the form (and its CSRF token), post it."""
    http = requests.Session()
    token = csrf_token(http, f"{base}/login")
    response = http.post(f"{base}/login", data={"csrf_token": token, "username": username, "password": password},
                         allow_redirects=False)
    return http, response


def carrying(cookie: str) -> requests.Session:
    """A browser that holds nothing but this session cookie."""
    http = requests.Session()
    http.cookies.set("yiti_session", cookie)
    return http


def test_two_gunicorn_servers_share_sessions_records_and_the_login_throttle(two_servers):
    server_a, server_b = two_servers

    # A session made on A is a session on B: it lives in the signed cookie and the database.
    on_a, login = try_login(server_a, "sales1", PASSWORD)
    assert login.status_code == 302, login.text[:500]
    home = carrying(on_a.cookies["yiti_session"]).get(f"{server_b}/", allow_redirects=False)
    assert home.status_code == 200, f"B did not accept A's session: {home.status_code} {home.headers}"
    assert requests.get(f"{server_b}/", allow_redirects=False).status_code == 302  # no cookie: to the login

    # A note created through A's API is read through B's, with the same session.
    token = csrf_token(on_a, f"{server_a}/account")
    created = on_a.post(f"{server_a}/api/v1/notes/notes", json={"title": "两台服务器", "body": "A 写，B 读"},
                        headers={"X-CSRFToken": token})
    assert created.status_code == 201, created.text[:500]
    on_b = carrying(on_a.cookies["yiti_session"])
    read = on_b.get(f"{server_b}/api/v1/notes/notes/{created.json()['id']}")
    assert read.status_code == 200, read.text[:500]
    assert read.json()["title"] == "两台服务器"
    listed = on_b.get(f"{server_b}/api/v1/notes/notes", params={"q": "两台"}).json()["items"]
    assert [item["title"] for item in listed] == ["两台服务器"]

    # Five failed logins split across A and B exhaust one shared allowance: the sixth is refused on
    # both, even with the right password.
    for attempt, base in enumerate((server_a, server_b, server_a, server_b, server_a), start=1):
        _http, failed = try_login(base, "sales2", "wrong-password")
        assert failed.status_code == 200, f"attempt {attempt} on {base}: {failed.status_code}"
    assert try_login(server_b, "sales2", PASSWORD)[1].status_code == 429
    assert try_login(server_a, "sales2", PASSWORD)[1].status_code == 429
    # Another account is not affected: the throttle counts per account.
    assert try_login(server_b, "salesmgr", PASSWORD)[1].status_code == 302
