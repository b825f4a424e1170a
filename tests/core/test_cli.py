"""The ``yiti`` command, run in-process against this test's database (SQLite and PostgreSQL)
and once as the installed console script from a shell."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

import core.cli
from core import create_app
from core.cli import cli
from core.demo import DEMO_PASSWORD
from core.extensions import db, limiter
from core.org.models import Department, Role, User
from core.org.roles import DEFAULT_ROLES

FAST_HASH = "scrypt:1024:8:1"
ALL_PLUGINS = ("approval", "crm", "hr", "srm")
NEW_PASSWORD = "Tall-Giraffe-83"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The command reads ``os.environ``: no YITI_* variable of the shell may leak into a test."""
    for name in list(os.environ):
        if name.startswith("YITI_"):
            monkeypatch.delenv(name)


class Yiti:
    """Runs ``yiti ARGS`` in-process on one database, the way a shell with YITI_* variables would."""

    def __init__(self, url: str, instance: Path):
        self.url = url
        self.instance = instance
        self.apps = []

    def __call__(self, *args, input=None, **settings):
        env = {"YITI_DATABASE_URL": self.url, "YITI_INSTANCE_PATH": str(self.instance),
               "YITI_PASSWORD_HASH": FAST_HASH}
        env.update({f"YITI_{key}": value for key, value in settings.items()})
        return CliRunner().invoke(cli, list(args), env=env, input=input)

    def ok(self, *args, **kwargs):
        result = self(*args, **kwargs)
        assert result.exit_code == 0, f"yiti {' '.join(args)} failed:\n{result.output}"
        return result

    def refused(self, *args, **kwargs):
        """Run a command that must fail with a message (exit code != 0), not a traceback."""
        result = self(*args, **kwargs)
        assert result.exit_code != 0, f"yiti {' '.join(args)} should have failed:\n{result.output}"
        assert isinstance(result.exception, SystemExit), f"traceback instead of a message: {result.exception!r}"
        assert "Error:" in result.output
        return result

    def start(self, **config):
        """The app as the next start would build it: database settings only, plugins as saved."""
        app = create_app({"DATABASE_URL": self.url, "INSTANCE_PATH": str(self.instance),
                          "PASSWORD_HASH": FAST_HASH, **config})
        self.apps.append(app)
        return app

    def plugin_states(self) -> dict[str, tuple[str, str]]:
        """``yiti plugins list`` as {name: (version, "enabled" | "disabled")}."""
        rows = {}
        for line in self.ok("plugins", "list").output.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2] in ("enabled", "disabled"):
                rows[parts[0]] = (parts[1], parts[2])
        return rows


def _yiti(url, instance, monkeypatch):
    yiti = Yiti(url, instance)
    real_create_app = core.cli.create_app

    def recording_create_app(*args, **kwargs):
        app = real_create_app(*args, **kwargs)
        yiti.apps.append(app)  # so that every engine the commands opened is closed after the test
        return app

    monkeypatch.setattr(core.cli, "create_app", recording_create_app)
    return yiti


def _dispose(yiti):
    limiter.reset()
    for app in yiti.apps:
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def yiti(database, tmp_path, monkeypatch):
    """``yiti("plugins", "list")``: the command on this test's database (once per engine)."""
    runner = _yiti(database, tmp_path / "instance", monkeypatch)
    yield runner
    _dispose(runner)


@pytest.fixture
def sqlite_yiti(tmp_path, monkeypatch):
    """The command on a fresh SQLite file, for behaviour that does not depend on the engine."""
    runner = _yiti(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path / "instance", monkeypatch)
    yield runner
    _dispose(runner)


def login(app, username: str, password: str) -> bool:
    """Log in through the real login form; True when it succeeds."""
    client = app.test_client()
    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": username, "password": password})
    return response.status_code == 302


def row_counts(app) -> dict[str, int]:
    with app.app_context():
        tables = inspect(db.engine).get_table_names()
        with db.engine.connect() as conn:
            return {table: conn.execute(select(func.count()).select_from(db.metadata.tables[table])).scalar()
                    for table in tables if table in db.metadata.tables}


# init and db -------------------------------------------------------------------------------------


def test_init_creates_key_schema_and_builtin_roles_and_is_idempotent(yiti):
    first = yiti.ok("init")
    key_file = yiti.instance / "secret_key"
    key = key_file.read_text()

    again = yiti.ok("init")

    assert str(key_file) in first.output and str(key_file) in again.output
    assert key_file.read_text() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with yiti.start().app_context():
        roles = db.session.scalars(select(Role)).all()
        assert sorted(role.key for role in roles) == sorted(key for key, _label in DEFAULT_ROLES)
        assert all(role.builtin for role in roles)
    assert yiti.ok("db", "status").output.strip() == "Up to date."


def test_db_status_lists_pending_branches_until_upgrade(yiti):
    before = yiti("db", "status")

    assert before.exit_code == 1
    assert before.output.startswith("Pending:")
    for branch in ("core",) + ALL_PLUGINS:
        assert branch in before.output

    upgraded = yiti.ok("db", "upgrade")

    assert upgraded.output.startswith("Database is up to date:")
    for branch in ("core",) + ALL_PLUGINS:
        assert branch in upgraded.output
    assert yiti.ok("db", "status").output.strip() == "Up to date."


def test_db_status_names_only_the_branches_of_newly_enabled_plugins(yiti):
    yiti.ok("init", PLUGINS="approval")

    status = yiti("db", "status", PLUGINS="approval,crm")

    assert status.exit_code == 1
    assert status.output.strip() == "Pending: crm"
    yiti.ok("db", "upgrade", PLUGINS="approval,crm")
    assert yiti.ok("db", "status", PLUGINS="approval,crm").output.strip() == "Up to date."


def test_init_in_production_generates_the_missing_secret_key(sqlite_yiti):
    refused = sqlite_yiti.refused("db", "status", ENV="production")
    assert "SECRET_KEY" in refused.output

    sqlite_yiti.ok("init", ENV="production")

    key_file = sqlite_yiti.instance / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sqlite_yiti.ok("db", "status", ENV="production").output.strip() == "Up to date."


def test_init_in_production_refuses_a_weak_configured_key(sqlite_yiti):
    result = sqlite_yiti.refused("init", ENV="production", SECRET_KEY="change-me")

    assert "SECRET_KEY" in result.output
    assert not (sqlite_yiti.instance / "secret_key").exists()


def test_malformed_setting_stops_the_command_naming_the_key(sqlite_yiti):
    for args in (("init",), ("db", "status"), ("plugins", "list")):
        result = sqlite_yiti.refused(*args, SESSION_IDLE_MINUTES="abc")
        assert "SESSION_IDLE_MINUTES" in result.output


def test_commands_that_need_the_tables_ask_for_init_first(sqlite_yiti):
    for args in (("demo",), ("users", "create-admin", "--password", NEW_PASSWORD),
                 ("plugins", "list"), ("plugins", "disable", "crm")):
        result = sqlite_yiti.refused(*args)
        assert "yiti init" in result.output


# demo --------------------------------------------------------------------------------------------


def test_demo_creates_the_sample_company(yiti):
    yiti.ok("init")

    result = yiti.ok("demo")

    for username in ("admin", "gm", "salesmgr", "sales1", "sales2", "buyer1", "hr1", "finance1", "legal1"):
        assert re.search(rf"^\s+{username}\s", result.output, re.MULTILINE)
    assert f"Password for every demo user: {DEMO_PASSWORD}" in result.output
    with yiti.start().app_context():
        departments = {d.name: d for d in db.session.scalars(select(Department))}
        root = departments["总经办"].parent
        for name in ("总经办", "销售部", "采购部", "人事部", "财务部", "法务部"):
            assert departments[name].parent is root
        assert departments["华东区"].parent is departments["销售部"]
        assert departments["华南区"].parent is departments["销售部"]
        users = {u.username: u for u in db.session.scalars(select(User))}
        placed = {name: (users[name].department.name, users[name].manager.username if users[name].manager else None)
                  for name in ("admin", "gm", "salesmgr", "sales1", "sales2", "buyer1", "hr1", "finance1", "legal1")}
        assert placed == {
            "admin": ("总经办", None),
            "gm": ("总经办", None),
            "salesmgr": ("销售部", "gm"),
            "sales1": ("华东区", "salesmgr"),
            "sales2": ("华南区", "salesmgr"),
            "buyer1": ("采购部", "gm"),
            "hr1": ("人事部", "gm"),
            "finance1": ("财务部", "gm"),
            "legal1": ("法务部", "gm"),
        }
        assert users["admin"].is_admin
        assert not users["gm"].is_admin
        assert departments["销售部"].head is users["salesmgr"]
    assert login(yiti.start(), "sales1", DEMO_PASSWORD)


def test_demo_password_option_sets_every_demo_users_password(yiti):
    yiti.ok("init")

    result = yiti.ok("demo", "--password", NEW_PASSWORD)

    assert f"Password for every demo user: {NEW_PASSWORD}" in result.output
    app = yiti.start()
    assert login(app, "sales2", NEW_PASSWORD)
    assert login(app, "admin", NEW_PASSWORD)
    assert not login(app, "gm", DEMO_PASSWORD)


def test_running_demo_twice_changes_nothing(yiti):
    yiti.ok("init")
    yiti.ok("demo", "--password", NEW_PASSWORD)
    app = yiti.start()
    before = row_counts(app)

    again = yiti.ok("demo", "--password", "Other-Horse-Pass-77")

    assert row_counts(app) == before
    assert "Other-Horse-Pass-77" not in again.output  # never print a password that does not work
    assert "unchanged" in again.output
    assert login(app, "sales1", NEW_PASSWORD)
    assert not login(app, "sales1", "Other-Horse-Pass-77")


def test_demo_completes_a_company_whose_admin_already_exists(yiti):
    yiti.ok("init")
    yiti.ok("users", "create-admin", "--password", NEW_PASSWORD)

    result = yiti.ok("demo", "--password", "Demo-Horse-Pass-55")

    named = re.search(r"^Password for (.*): Demo-Horse-Pass-55 ", result.output, re.MULTILINE).group(1).split(", ")
    assert "gm" in named and "admin" not in named  # the admin keeps their own password
    app = yiti.start()
    assert login(app, "admin", NEW_PASSWORD)
    assert login(app, "gm", "Demo-Horse-Pass-55")


# plugins -----------------------------------------------------------------------------------------


def test_plugins_list_shows_each_plugin_with_version_and_state(yiti):
    yiti.ok("init")

    states = yiti.plugin_states()

    for name in ALL_PLUGINS:
        assert states[name] == ("0.1.0", "enabled")
    assert "YITI_PLUGINS" not in yiti.ok("plugins", "list").output


def test_disabled_plugin_is_listed_and_stays_off_at_next_start(yiti):
    yiti.ok("init")

    result = yiti.ok("plugins", "disable", "crm")

    assert "Restart" in result.output
    enabled = re.search(r"Enabled plugins: (.*?)\. Restart", result.output).group(1)
    assert sorted(enabled.split(", ")) == ["approval", "hr", "srm"]
    states = yiti.plugin_states()
    assert states["crm"][1] == "disabled"
    assert {name: states[name][1] for name in ("approval", "hr", "srm")} == dict.fromkeys(("approval", "hr", "srm"),
                                                                                         "enabled")
    assert sorted(yiti.start().extensions["plugins"].names) == ["approval", "hr", "srm"]

    yiti.ok("plugins", "enable", "crm")

    assert yiti.plugin_states()["crm"][1] == "enabled"
    assert sorted(yiti.start().extensions["plugins"].names) == list(ALL_PLUGINS)


def test_disabling_a_plugin_others_require_is_refused_naming_them(yiti):
    yiti.ok("init")

    result = yiti.refused("plugins", "disable", "approval")

    assert "crm" in result.output
    assert yiti.plugin_states()["approval"][1] == "enabled"


def test_enabling_a_plugin_whose_requirement_is_off_is_refused(yiti):
    yiti.ok("init")
    for name in ("crm", "hr", "srm", "approval"):
        yiti.ok("plugins", "disable", name)

    result = yiti.refused("plugins", "enable", "crm")

    assert "approval" in result.output
    assert yiti.plugin_states()["crm"][1] == "disabled"


def test_enabling_an_unknown_plugin_fails_naming_it(yiti):
    yiti.ok("init")

    result = yiti.refused("plugins", "enable", "wiki")

    assert "wiki" in result.output
    assert "wiki" not in yiti.plugin_states()


def test_plugin_changes_are_refused_when_yiti_plugins_is_set(yiti):
    yiti.ok("init")

    disable = yiti.refused("plugins", "disable", "crm", PLUGINS="approval,crm")
    enable = yiti.refused("plugins", "enable", "hr", PLUGINS="approval,crm")
    listed = yiti.ok("plugins", "list", PLUGINS="approval,crm")

    assert "YITI_PLUGINS" in disable.output and "YITI_PLUGINS" in enable.output
    assert "(set by YITI_PLUGINS)" in listed.output
    assert re.search(r"^hr\s+\S+\s+disabled", listed.output, re.MULTILINE)
    assert yiti.plugin_states()["crm"][1] == "enabled"  # nothing was saved


# users -------------------------------------------------------------------------------------------


def test_create_admin_creates_an_administrator_who_can_log_in(yiti):
    yiti.ok("init")

    result = yiti.ok("users", "create-admin", "--username", "chief", "--password", NEW_PASSWORD)

    assert "chief" in result.output
    app = yiti.start()
    assert login(app, "chief", NEW_PASSWORD)
    with app.app_context():
        chief = db.session.scalar(select(User).where(User.username == "chief"))
        assert chief.is_admin
        assert chief.display_name == "系统管理员"


@pytest.mark.parametrize("password", ["12345678", "short", "Chief-Of-Staff-1"])
def test_create_admin_refuses_a_weak_password(sqlite_yiti, password):
    sqlite_yiti.ok("init")

    result = sqlite_yiti.refused("users", "create-admin", "--username", "chief", "--password", password)

    assert "password" in result.output
    with sqlite_yiti.start().app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_create_admin_resets_an_existing_users_password_and_makes_them_admin(yiti):
    yiti.ok("init")
    yiti.ok("demo")

    yiti.ok("users", "create-admin", "--username", "sales1", "--password", NEW_PASSWORD)

    app = yiti.start()
    assert login(app, "sales1", NEW_PASSWORD)
    assert not login(app, "sales1", DEMO_PASSWORD)
    with app.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        assert sales1.role_keys == {"admin", "sales_rep", "employee"}
        assert db.session.scalar(select(func.count()).select_from(User).where(User.username == "sales1")) == 1


def test_create_admin_asks_for_the_password_twice(sqlite_yiti):
    sqlite_yiti.ok("init")

    mismatch = sqlite_yiti("users", "create-admin", "--username", "chief",
                           input=f"{NEW_PASSWORD}\nsomething-else\n")
    assert mismatch.exit_code != 0

    sqlite_yiti.ok("users", "create-admin", "--username", "chief", input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert login(sqlite_yiti.start(), "chief", NEW_PASSWORD)


# the installed console script -----------------------------------------------------------------


def _console_script() -> str:
    beside = Path(sys.executable).parent / "yiti"
    found = str(beside) if beside.exists() else shutil.which("yiti")
    assert found, "the yiti console script is not installed"
    return found


def test_installed_yiti_command_sets_up_a_demo_company_from_the_shell(tmp_path):
    instance = tmp_path / "instance"
    env = {name: value for name, value in os.environ.items() if not name.startswith("YITI_")}
    env.update({"YITI_INSTANCE_PATH": str(instance), "YITI_PASSWORD_HASH": FAST_HASH})
    yiti = _console_script()

    def run(*args):
        done = subprocess.run([yiti, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"yiti {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    init = run("init")
    demo = run("demo")
    status = run("db", "status")
    plugins = run("plugins", "list")

    key_file = instance / "secret_key"
    assert f"Secret key: {key_file}" in init
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (instance / "yiti.db").exists()  # the default database: SQLite in the instance folder
    assert status.strip() == "Up to date."
    for username in ("admin", "gm", "salesmgr", "sales1", "sales2", "buyer1", "hr1", "finance1", "legal1"):
        assert re.search(rf"^\s+{username}\s", demo, re.MULTILINE)
    assert re.search(r"^\s+sales1\s+\S+\s+华东区$", demo, re.MULTILINE)
    for name in ALL_PLUGINS:
        assert re.search(rf"^{name}\s+0\.1\.0\s+enabled", plugins, re.MULTILINE)
