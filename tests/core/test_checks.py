"""``yiti check``: each misconfiguration is reported, and disappears once fixed; ``yiti upgrade``.

Runs on SQLite and PostgreSQL like every ``make_app`` test; a check that depends on the engine
says what it expects on each.
"""
from __future__ import annotations

import json
import os
import re
import socket
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from core import checks, clock, migrate
from core.cli import cli
from core.config import write_secret_key
from core.extensions import db

REAL_REDIS = "redis://127.0.0.1:6379/12"  # only pinged, never written
STRONG = "a-real-secret-key-with-enough-randomness-0123456789"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The checks read ``os.environ`` (FLASK_DEBUG, YITI_BIND...): nothing from the shell may leak in."""
    for name in list(os.environ):
        if name.startswith(("YITI_", "FLASK_")) or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def run(app, **options) -> dict[str, checks.Finding]:
    """The findings by check name (each check reports once per run)."""
    options.setdefault("workers", 1)
    options.setdefault("environ", {})
    with app.app_context():
        findings = checks.run_checks(app, **options)
    by_name = {f.check: f for f in findings}
    assert len(by_name) == len(findings), [f.check for f in findings]
    return by_name


def level(app, name, **options) -> str:
    finding = run(app, **options).get(name)
    return finding.level if finding else "absent"


def ready_folders(app) -> None:
    for name in ("attachments", "backups"):
        (Path(app.instance_path) / name).mkdir(parents=True, exist_ok=True)


# Each check triggers and clears ------------------------------------------------------------------


def test_debug_mode_is_an_error(make_app):
    app = make_app()
    assert level(app, "debug") == "ok"
    assert level(app, "debug", environ={"FLASK_DEBUG": "1"}) == "error"
    assert level(app, "debug", environ={"FLASK_DEBUG": "0"}) == "ok"
    app.debug = True
    assert level(app, "debug") == "error"


def test_development_env_is_an_error_and_production_clears_it(make_app):
    finding = run(make_app())["env"]
    assert finding.level == "error" and "YITI_ENV=production" in finding.action
    assert level(make_app(ENV="production"), "env") == "ok"


def test_a_weak_or_missing_secret_key_is_an_error(make_app):
    assert level(make_app(SECRET_KEY="change-me"), "secret_key") == "error"
    assert level(make_app(SECRET_KEY="short-but-random-9f3a"), "secret_key") == "error"
    missing = run(make_app(SECRET_KEY=None))["secret_key"]
    assert missing.level == "error" and "yiti init" in missing.action
    assert level(make_app(SECRET_KEY=STRONG), "secret_key") == "ok"


def test_a_secret_key_file_readable_by_others_is_an_error(make_app, tmp_path):
    key_file = write_secret_key(tmp_path / "instance")
    key_file.chmod(0o644)
    finding = run(make_app(SECRET_KEY=None))["secret_key_file"]
    assert finding.level == "error" and f"chmod 600 {key_file}" in finding.action
    key_file.chmod(0o600)
    found = run(make_app(SECRET_KEY=None))
    assert found["secret_key_file"].level == "ok" and found["secret_key"].level == "ok"
    # A key from the environment leaves the file out of it.
    key_file.chmod(0o644)
    assert level(make_app(SECRET_KEY=STRONG), "secret_key_file") == "absent"


def test_sqlite_under_several_workers_or_servers_is_an_error(make_app, engine_name):
    app = make_app()
    several = "error" if engine_name == "sqlite" else "ok"
    assert level(app, "database_engine", workers=4) == several
    assert level(app, "database_engine", workers=1, servers=2) == several
    assert level(app, "database_engine", workers=1) == "ok"
    assert level(make_app(ENV="production"), "database_engine", workers=1) == (
        "warning" if engine_name == "sqlite" else "ok")


def test_workers_default_to_what_the_gunicorn_config_starts(make_app, engine_name):
    app = make_app()
    expected = "error" if engine_name == "sqlite" else "ok"
    assert level(app, "database_engine", workers=None, environ={"WEB_CONCURRENCY": "3"}) == expected
    assert level(app, "database_engine", workers=None, environ={"YITI_WORKERS": "1", "WEB_CONCURRENCY": "3"}) == "ok"
    assert checks.gunicorn_workers({})[0] == os.cpu_count() * 2 + 1


def test_several_servers_without_redis_is_an_error(make_app):
    app = make_app()
    finding = run(app, servers=2)["redis"]
    assert finding.level == "error" and "YITI_REDIS_URL" in finding.action
    assert level(app, "redis", workers=3) == "warning"  # one server: throttle per worker only
    assert level(app, "redis") == "ok"
    assert level(make_app(REDIS_URL=REAL_REDIS), "redis", servers=2) == "ok"


def test_unreachable_redis_is_an_error(make_app):
    port = closed_port()
    finding = run(make_app(REDIS_URL=f"redis://127.0.0.1:{port}/0"))["redis"]
    assert finding.level == "error" and str(port) in finding.message  # the driver's own words
    assert level(make_app(REDIS_URL=REAL_REDIS), "redis") == "ok"


def test_unreachable_database_is_an_error_and_skips_the_checks_that_need_it(make_app, tmp_path):
    url = f"postgresql://nobody@127.0.0.1:{closed_port()}/nothing"
    found = run(make_app(schema=None, DATABASE_URL=url))
    assert found["database"].level == "error"
    assert "migrations" not in found and "clock" not in found
    found = run(make_app(schema="migrate"))
    assert found["database"].level == "ok" and found["migrations"].level == "ok"


def test_pending_migrations_are_an_error(make_app):
    app = make_app(schema="migrate")
    assert level(app, "migrations") == "ok"
    with app.app_context():
        db.session.execute(text("DELETE FROM alembic_version"))  # tables there, migrations not recorded
        db.session.commit()
    finding = run(app)["migrations"]
    assert finding.level == "error" and "core" in finding.message and "yiti upgrade" in finding.action


def test_tables_created_without_migrations_are_reported_as_behind(make_app):
    assert level(make_app(schema="create"), "migrations") == "error"


def test_https_off_in_production_is_an_error(make_app):
    assert level(make_app(ENV="production", HTTPS=False), "https") == "error"
    assert level(make_app(ENV="production"), "https") == "ok"  # on by default in production
    assert level(make_app(), "https") == "absent"  # development over plain http: the env check covers it


def test_no_proxy_fix_behind_a_proxy_is_a_warning(make_app):
    app = make_app(PROXY_FIX=0)
    assert level(app, "proxy_fix", behind_proxy=True) == "warning"
    assert level(app, "proxy_fix", environ={}) == "warning"  # gunicorn binds 127.0.0.1 by default
    assert level(app, "proxy_fix", environ={"YITI_BIND": "0.0.0.0:80"}) == "absent"
    assert level(app, "proxy_fix", behind_proxy=False) == "absent"
    assert level(make_app(PROXY_FIX=1), "proxy_fix", behind_proxy=True) == "ok"


def test_clock_skew_with_the_database_is_a_warning(make_app):
    app = make_app()
    clock.set_now(clock.now() + timedelta(seconds=60))
    finding = run(app)["clock"]
    assert finding.level == "warning" and re.search(r"\b(59|60)\.\d\b", finding.message)
    clock.set_now(clock.now() - timedelta(seconds=2) - timedelta(seconds=60))  # 2 s behind: tolerated
    assert level(app, "clock") == "ok"
    clock.set_now(None)
    assert level(app, "clock") == "ok"


def test_a_missing_instance_folder_is_an_error(make_app, tmp_path):
    app = make_app(INSTANCE_PATH=str(tmp_path / "not-there"))
    assert level(app, "instance") == "error"
    Path(app.instance_path).mkdir()
    assert level(app, "instance") == "ok"


def test_missing_attachment_and_backup_folders_are_warnings(make_app):
    app = make_app()
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    found = run(app)
    assert found["attachments_folder"].level == "warning" and found["backups_folder"].level == "warning"
    ready_folders(app)
    found = run(app)
    assert found["attachments_folder"].level == "ok" and found["backups_folder"].level == "ok"


# The command --------------------------------------------------------------------------------------


def production_ready(make_app, tmp_path):
    """An installation with nothing to fix (SQLite answers with a warning only)."""
    app = make_app(schema="migrate", ENV="production", SECRET_KEY=STRONG, PROXY_FIX=1, REDIS_URL=REAL_REDIS)
    ready_folders(app)
    return app


def test_check_exits_0_when_only_warnings_remain(make_app, tmp_path):
    app = production_ready(make_app, tmp_path)
    result = app.test_cli_runner().invoke(cli, ["check", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output and "ready to go live" in result.output


def test_check_exits_1_and_says_what_to_do_when_something_must_be_fixed(make_app):
    app = make_app()
    result = app.test_cli_runner().invoke(cli, ["check", "--workers", "1"], env={"FLASK_DEBUG": "1"})
    assert result.exit_code == 1
    assert "ERROR" in result.output and "FLASK_DEBUG" in result.output and "fix the errors" in result.output


def test_check_json_lists_every_finding(make_app, tmp_path, engine_name):
    app = production_ready(make_app, tmp_path)
    result = app.test_cli_runner().invoke(cli, ["check", "--json", "--workers", "1", "--servers", "2"])
    report = json.loads(result.output)
    if engine_name == "sqlite":  # two servers cannot share a SQLite file
        assert result.exit_code == 1 and report["ok"] is False
        assert [f["check"] for f in report["findings"] if f["level"] == "error"] == ["database_engine"]
    else:
        assert result.exit_code == 0, result.output
        assert report["ok"] is True and report["errors"] == 0
    names = {f["check"]: f for f in report["findings"]}
    assert {"debug", "env", "secret_key", "database", "migrations", "redis", "clock"} <= set(names)
    assert set(names["redis"]) == {"check", "level", "message", "action"}

    app = make_app(ENV="development")
    result = app.test_cli_runner().invoke(cli, ["check", "--json", "--workers", "1"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and report["ok"] is False and report["errors"] == 1
    [error] = [f for f in report["findings"] if f["level"] == "error"]
    assert error["check"] == "env" and error["action"]


def test_check_reports_a_configuration_that_stops_start_up(monkeypatch, tmp_path):
    monkeypatch.setenv("YITI_ENV", "production")
    monkeypatch.setenv("YITI_SECRET_KEY", "changeme")
    monkeypatch.setenv("YITI_INSTANCE_PATH", str(tmp_path / "instance"))
    result = CliRunner().invoke(cli, ["check", "--json"])
    assert result.exit_code == 1
    [finding] = json.loads(result.output)["findings"]
    assert finding["check"] == "config" and "SECRET_KEY" in finding["message"]


# yiti upgrade -------------------------------------------------------------------------------------


# Backing up a migrated SQLite database reflects an expression index, which SQLAlchemy warns about.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection:sqlalchemy.exc.SAWarning")
def test_upgrade_backs_up_then_migrates(make_app):
    make_app(plugins=("approval",), schema="migrate")  # the installation so far
    app = make_app(schema=None)                          # this version: three more plugins to migrate
    with app.app_context():
        assert set(migrate.pending()) == {"crm", "hr", "srm"}
    result = app.test_cli_runner().invoke(cli, ["upgrade"])
    assert result.exit_code == 0, result.output
    [archive] = (Path(app.instance_path) / "backups").glob("yiti-pre-upgrade-*.zip")
    with zipfile.ZipFile(archive) as backup:
        tables = json.loads(backup.read("manifest.json"))["tables"]
    assert "core_user" in tables and not any(name.startswith("crm_") for name in tables)  # taken before
    assert "Backup written to" in result.output and "Migrated: crm, hr, srm" in result.output
    with app.app_context():
        assert migrate.pending() == []
    again = app.test_cli_runner().invoke(cli, ["upgrade", "--output", str(archive.with_name("second.zip"))])
    assert again.exit_code == 0, again.output
    assert "already up to date" in again.output and archive.with_name("second.zip").exists()


def test_upgrade_refuses_to_migrate_when_the_backup_fails(make_app):
    app = make_app(schema=None)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    (Path(app.instance_path) / "backups").write_text("a file where the backups folder should be")
    result = app.test_cli_runner().invoke(cli, ["upgrade"])
    assert result.exit_code == 1
    assert "Backup failed, so nothing was migrated" in result.output
    with app.app_context():
        assert "core" in migrate.pending()
        assert not inspect(db.engine).has_table("core_user")
