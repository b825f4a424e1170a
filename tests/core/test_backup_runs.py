"""Backups as a service: scheduled and requested backups are verified and recorded, retention keeps
a proven backup, and only administrators see, download or request them (audited)."""
from __future__ import annotations

import hashlib
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core import backup_runs, clock, jobs
from core.audit.models import AuditEntry
from core.backup_runs import BackupRun
from core.config import ConfigError, load_settings
from core.extensions import db

from tests.conftest import PASSWORD, Client

PLUGINS = ("approval",)


@pytest.fixture
def admin_app(make_app):
    app = make_app(plugins=PLUGINS)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def login(app, username):
    client = Client(app)
    assert client.login(username).status_code == 302
    return client


def runs(app):
    with app.app_context():
        found = db.session.scalars(select(BackupRun).order_by(BackupRun.id)).all()
        db.session.expunge_all()
        return found


def test_scheduled_backup_is_written_verified_and_recorded(admin_app):
    with admin_app.app_context():
        run = backup_runs.run_now("scheduled")
        path = Path(run.path)
        assert run.status == "done" and run.trigger == "scheduled"
        assert path.parent == Path(admin_app.instance_path) / "backups" and path.is_file()
        assert run.size == path.stat().st_size
        assert run.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert run.verify_status == "passed" and run.verified_at is not None and run.verify_error is None
        assert run.verify_report["rows"] == run.rows > 0
        assert run.started_at <= run.finished_at <= run.verified_at


def test_a_backup_that_cannot_be_written_is_recorded_as_failed(make_app, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    app = make_app(plugins=(), BACKUP_DIR=str(blocker))
    with app.app_context():
        run = backup_runs.run_now("scheduled")
        assert run.status == "failed" and "Error" in run.error
        assert run.verify_status == "none"


def test_a_damaged_archive_fails_its_verification(admin_app):
    with admin_app.app_context():
        run = backup_runs.run_now("manual")
        with zipfile.ZipFile(run.path, "a") as archive:  # the file changes after it was recorded
            archive.writestr("extra.txt", "tampered")
        run = backup_runs.verify(run.id)
        assert run.verify_status == "failed" and "SHA-256" in run.verify_error


def test_retention_keeps_count_and_age_but_never_the_newest_verified_backup(make_app):
    app = make_app(plugins=(), BACKUP_KEEP_COUNT=2, BACKUP_KEEP_DAYS=10)
    start = clock.now()
    with app.app_context():
        made = []
        for day in range(4):
            clock.set_now(start + timedelta(days=day))
            made.append(backup_runs.run_now("scheduled"))
        # Only the oldest one restored; the three newer ones failed their verification.
        for run in made[1:]:
            db.session.get(BackupRun, run.id).verify_status = "failed"
        db.session.commit()
        removed = backup_runs.apply_retention()
        assert removed == [made[1].file_name]  # beyond the newest two, and not the verified one
        assert Path(made[0].path).is_file() and not Path(made[1].path).exists()
        assert db.session.get(BackupRun, made[1].id).status == "expired"

        clock.set_now(start + timedelta(days=30))  # everything is past KEEP_DAYS now
        removed = backup_runs.apply_retention()
        assert sorted(removed) == sorted([made[2].file_name, made[3].file_name])
        assert Path(made[0].path).is_file(), "the only verified backup must stay"
        assert backup_runs.latest_verified().id == made[0].id
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.resource == "core.backup",
                                                            AuditEntry.action == "delete")).first()
        assert entry is not None and entry.actor_name == "system"


def test_retention_leaves_archives_outside_the_backup_folder_alone(make_app, tmp_path):
    app = make_app(plugins=(), BACKUP_KEEP_COUNT=1, BACKUP_KEEP_DAYS=0)
    with app.app_context():
        elsewhere = tmp_path / "elsewhere.zip"
        from core import backup

        started = clock.now()
        backup_runs.record_backup(elsewhere, backup.create_backup(elsewhere), "manual", started)
        db.session.commit()
        clock.set_now(started + timedelta(seconds=5))
        backup_runs.run_now("scheduled")
        clock.set_now(started + timedelta(seconds=10))
        backup_runs.run_now("scheduled")
        removed = backup_runs.apply_retention()
        assert len(removed) == 1 and elsewhere.is_file()


def test_admin_requests_a_backup_the_worker_runs_and_verifies(admin_app):
    admin = login(admin_app, "admin")
    page = admin.get("/admin/backups")
    assert page.status_code == 200 and 'action="/admin/backups"' in page.get_data(as_text=True)
    assert admin.post("/admin/backups", {}).status_code == 302
    [queued] = runs(admin_app)
    assert queued.status == "queued" and queued.trigger == "manual"
    with admin_app.app_context():
        assert backup_runs.process_queue() == {"backups": 1, "verifications": 0}
        assert backup_runs.process_queue() == {"backups": 0, "verifications": 0}  # claimed once only
    [run] = runs(admin_app)
    assert run.status == "done" and run.verify_status == "passed"
    assert admin.post(f"/admin/backups/{run.id}/verify", {}).status_code == 302
    assert runs(admin_app)[0].verify_status == "queued"
    assert admin.post(f"/admin/backups/{run.id}/verify", {}).status_code == 302  # refused: already queued
    with admin_app.app_context():
        assert backup_runs.process_queue() == {"backups": 0, "verifications": 1}
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.resource == "core.backup")).all()
    assert sorted(actions) == ["backup", "verify"]
    html = admin.get("/admin/backups").get_data(as_text=True)
    assert run.file_name in html and f'action="/admin/backups/{run.id}/verify"' in html
    assert "badge text-bg-success" in html  # verified


def test_download_is_streamed_as_an_attachment_and_audited(admin_app):
    with admin_app.app_context():
        run = backup_runs.run_now("scheduled")
        data = Path(run.path).read_bytes()
    admin = login(admin_app, "admin")
    response = admin.get(f"/admin/backups/{run.id}/download")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert run.file_name in response.headers["Content-Disposition"]
    assert response.is_streamed and response.get_data() == data
    with admin_app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "download")).one()
        assert entry.actor_name == "admin" and entry.record_id == run.id
    assert admin.get("/admin/backups/999999/download").status_code == 404
    assert admin.get("/admin/backups/99999999999/download").status_code == 404


@pytest.mark.parametrize("username", ["sales1", "hr1"])
def test_non_admins_cannot_see_request_or_download_backups(admin_app, username):
    with admin_app.app_context():
        run_id = backup_runs.run_now("scheduled").id
    attacker = login(admin_app, username)
    assert attacker.get("/admin/backups").status_code == 403
    assert attacker.get(f"/admin/backups/{run_id}/download").status_code == 403
    assert attacker.post("/admin/backups", {}).status_code == 403
    assert attacker.post(f"/admin/backups/{run_id}/verify", {}).status_code == 403
    assert attacker.post("/admin/export", {"format": "csv"}).status_code == 403
    assert len(runs(admin_app)) == 1
    with admin_app.app_context():
        assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action.in_(("download", "backup", "export")))) is None
    anonymous = Client(admin_app)
    assert anonymous.http.get(f"/admin/backups/{run_id}/download").status_code in (302, 401)


def test_cli_backup_records_its_row(admin_app):
    from flask.cli import ScriptInfo

    from core.cli import cli

    runner = admin_app.test_cli_runner()
    info = ScriptInfo(create_app=lambda: admin_app)
    result = runner.invoke(cli, ["backup"], obj=info)
    assert result.exit_code == 0, result.output
    [run] = runs(admin_app)
    assert (run.trigger, run.status, run.verify_status) == ("manual", "done", "none")
    assert Path(run.path).parent == Path(admin_app.instance_path) / "backups"
    assert run.size == Path(run.path).stat().st_size and run.rows > 0


def test_the_worker_schedules_backups_from_the_setting(make_app):
    app = make_app(plugins=(), schema=None, BACKUP_SCHEDULE="4")
    found = jobs.periodic_jobs(app)
    assert found["core.backup"].every == "0 4 * * *"
    assert "core.backup_queue" in found
    off = make_app(plugins=(), schema=None, BACKUP_SCHEDULE="off")
    assert "core.backup" not in jobs.periodic_jobs(off)
    assert backup_runs.schedule_cron("30 2 * * 1-5") == "30 2 * * 1-5"
    for bad in ("25", "every night", "61 * * * *"):
        with pytest.raises(ConfigError, match="BACKUP_SCHEDULE"):
            load_settings(environ={"YITI_BACKUP_SCHEDULE": bad})
