"""Backups as a service: scheduled by the worker, requested from the admin page, each one verified.

Every backup, whoever started it (the schedule, an admin's "back up now", ``yiti backup``,
``yiti upgrade``), leaves a ``core_backup`` row: file, size, SHA-256, when it ran, how it ended,
and the result of its verification (the archive restored into a throw-away SQLite database with
``core.backup.verify_archive``). An archive that was never verified is not yet a backup.

The worker runs two jobs:

- ``core.backup`` on ``BACKUP_SCHEDULE`` (a cron string, or an hour of the day): back up, verify,
  then apply the retention rules;
- ``core.backup_queue`` every minute: runs what admins asked for from the page (a backup, or
  a verification again). Requests are rows, not queue entries, so a restart loses none of them,
  and each is claimed with a conditional ``UPDATE`` so two workers never run the same one.

Retention (``BACKUP_KEEP_COUNT``, ``BACKUP_KEEP_DAYS``) deletes an archive in ``BACKUP_DIR`` once
it is beyond the newest ``KEEP_COUNT`` *or* older than ``KEEP_DAYS`` (0 turns a limit off), but it
never deletes the newest verified backup: at least one proven archive always stays on disk.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import db
from core.models import JSONType, UTCDateTime

log = logging.getLogger(__name__)

TRIGGERS = ("scheduled", "manual", "upgrade")
#: ``queued`` (asked for, the worker has not started it), ``running``, ``done``, ``failed``,
#: ``expired`` (retention deleted the file; the row stays as history).
STATUSES = ("queued", "running", "done", "failed", "expired")
#: ``none`` (not verified yet), ``queued``, ``running``, ``passed``, ``failed``.
VERIFY_STATUSES = ("none", "queued", "running", "passed", "failed")
#: A backup still ``running`` after this long was left by a worker that died: it is marked failed.
STALE_RUNNING = timedelta(hours=12)


class BackupRun(db.Model):
    """One backup archive: how it was made and whether it restores."""

    __tablename__ = "core_backup"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    path: Mapped[str] = mapped_column(Text, nullable=False, default="")
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued", index=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    tables: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    verify_status: Mapped[str] = mapped_column(String(20), nullable=False, default="none", index=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verify_report: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    verify_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def exists(self) -> bool:
        return self.status == "done" and bool(self.path) and Path(self.path).is_file()


# Settings -----------------------------------------------------------------------------------------


def backup_dir(app=None) -> Path:
    """``BACKUP_DIR``, default ``<instance>/backups``; a relative path is read from the instance folder."""
    app = app or current_app
    configured = app.config["YITI"].get("BACKUP_DIR")
    folder = Path(configured) if configured else Path("backups")
    return folder if folder.is_absolute() else Path(app.instance_path) / folder


def schedule_cron(value: str) -> str | None:
    """``BACKUP_SCHEDULE`` as a 5-field cron string: an hour (``"3"``) means daily at 03:00;
    ``""``/``"off"`` means no scheduled backups (``None``). Raises ``ValueError`` when malformed."""
    value = (value or "").strip()
    if value.lower() in ("", "off", "none", "false", "0 0 0 0 0"):
        return None
    if value.isdigit():
        hour = int(value)
        if not 0 <= hour <= 23:
            raise ValueError("an hour of the day is 0 to 23")
        return f"0 {hour} * * *"
    fields = value.split()
    if len(fields) != 5:
        raise ValueError("use an hour of the day (3) or a cron string (minute hour day month weekday)")
    from huey import crontab

    crontab(*fields, strict=True)  # raises ValueError naming the bad field
    return value


# Running a backup ---------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_backup(path: Path, manifest: dict, trigger: str, started_at: datetime, by=None) -> BackupRun:
    """Add the row of a backup already written (``yiti backup``, ``yiti upgrade``); in the caller's transaction."""
    path = Path(path).resolve()
    run = BackupRun(trigger=trigger, status="done", requested_by_id=getattr(by, "id", None),
                    requested_at=started_at, started_at=started_at, finished_at=clock.now())
    _fill(run, path, manifest)
    db.session.add(run)
    db.session.flush()
    return run


def _fill(run: BackupRun, path: Path, manifest: dict) -> None:
    run.path, run.file_name = str(path), path.name
    run.size, run.sha256 = path.stat().st_size, _sha256(path)
    run.tables = len(manifest["tables"])
    run.rows = sum(t["rows"] for t in manifest["tables"].values())


def _new_path(run: BackupRun) -> Path:
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    return backup_dir() / f"yiti-{stamp}-{run.id}.zip"


def execute(run_id: int) -> BackupRun:
    """Write the archive of a ``running`` row, then verify it. Commits as it goes (call from a job)."""
    from core import backup

    run = db.session.get(BackupRun, run_id)
    path = _new_path(run)
    run.path, run.file_name = str(path), path.name
    db.session.commit()
    try:
        manifest = backup.create_backup(path)
    except Exception as exc:  # a full disk, a lost connection: the row says so, the next run tries again
        db.session.rollback()
        log.exception("backup %s failed", run_id)
        run = db.session.get(BackupRun, run_id)
        run.status, run.finished_at, run.error = "failed", clock.now(), _message(exc)
        db.session.commit()
        return run
    run = db.session.get(BackupRun, run_id)
    _fill(run, path, manifest)
    run.status, run.finished_at, run.verify_status = "done", clock.now(), "running"
    db.session.commit()
    return verify(run_id)


def verify(run_id: int) -> BackupRun:
    """Restore the row's archive into a throw-away SQLite database and record the outcome."""
    from core import backup

    run = db.session.get(BackupRun, run_id)
    path = Path(run.path)
    report, error = None, None
    try:
        if not path.is_file():
            raise backup.BackupError(f"{run.file_name}: the file is missing")
        if run.sha256 and _sha256(path) != run.sha256:
            raise backup.BackupError(f"{run.file_name}: the file changed since it was written (SHA-256 differs)")
        report = backup.verify_archive(path)
    except Exception as exc:  # any failure is a failed verification, shown to the admin
        log.warning("verification of backup %s failed: %s", run_id, exc)
        error = _message(exc)
    db.session.rollback()
    run = db.session.get(BackupRun, run_id)
    run.verified_at = clock.now()
    run.verify_status = "passed" if error is None else "failed"
    run.verify_report, run.verify_error = report, error
    db.session.commit()
    return run


def _message(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:4000]


def run_now(trigger: str, by=None) -> BackupRun:
    """Back up and verify now, in this process (the scheduled job; tests)."""
    run = BackupRun(trigger=trigger, status="running", requested_by_id=getattr(by, "id", None),
                    started_at=clock.now())
    db.session.add(run)
    db.session.commit()
    return execute(run.id)


def scheduled_backup() -> None:
    """The ``core.backup`` job: back up, verify, apply retention."""
    run_now("scheduled")
    apply_retention()


# Requests from the admin page ---------------------------------------------------------------------


def request_backup(by) -> BackupRun:
    """Queue a backup for the worker; audited. In the caller's transaction."""
    from core import audit

    run = BackupRun(trigger="manual", status="queued", requested_by_id=by.id)
    db.session.add(run)
    db.session.flush()
    audit.record("backup", resource="core.backup", record_id=run.id, summary="backup requested", actor=by)
    return run


def request_verify(run_id: int, by) -> BackupRun:
    """Queue the verification of an existing archive again; audited. In the caller's transaction."""
    from core import audit
    from core.errors import BusinessRuleError, NotFound
    from flask_babel import gettext as _

    run = db.session.get(BackupRun, run_id)
    if run is None:
        raise NotFound(_("Not found."))
    if not run.exists:
        raise BusinessRuleError(_("This backup has no archive on disk to verify."))
    if run.verify_status in ("queued", "running"):
        raise BusinessRuleError(_("This backup is already being verified."))
    run.verify_status = "queued"
    audit.record("verify", resource="core.backup", record_id=run.id, summary=run.file_name, actor=by)
    return run


def process_queue() -> dict:
    """The ``core.backup_queue`` job: run queued backups and verifications, one claim at a time."""
    fail_stale()
    done = {"backups": 0, "verifications": 0}
    while True:
        run_id = _claim(BackupRun.status, "queued", "running", started_at=clock.now())
        if run_id is None:
            break
        execute(run_id)
        apply_retention()
        done["backups"] += 1
    while True:
        run_id = _claim(BackupRun.verify_status, "queued", "running")
        if run_id is None:
            break
        verify(run_id)
        done["verifications"] += 1
    return done


def _claim(column, old: str, new: str, **values) -> int | None:
    """Take the oldest row where ``column == old`` by setting it to ``new``; ``None`` if none is left."""
    while True:
        run_id = db.session.scalar(select(BackupRun.id).where(column == old).order_by(BackupRun.id).limit(1))
        db.session.commit()
        if run_id is None:
            return None
        claimed = db.session.execute(update(BackupRun).where(BackupRun.id == run_id, column == old)
                                     .values({column.key: new, **values})
                                     .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if claimed == 1:
            return run_id


# Retention ----------------------------------------------------------------------------------------


def apply_retention() -> list[str]:
    """Delete the archives the retention rules let go; return their file names. Commits.

    Only archives inside ``BACKUP_DIR`` are considered. The newest verified backup is always kept,
    whatever the rules say, so retention can never leave the installation without a proven backup.
    """
    from core import audit

    settings = current_app.config["YITI"]
    keep_count, keep_days = settings["BACKUP_KEEP_COUNT"], settings["BACKUP_KEEP_DAYS"]
    folder = backup_dir().resolve()
    runs = [r for r in db.session.scalars(select(BackupRun).where(BackupRun.status == "done")
                                          .order_by(BackupRun.finished_at.desc(), BackupRun.id.desc()))
            if Path(r.path).resolve().parent == folder]
    newest_verified = next((r.id for r in runs if r.verify_status == "passed"), None)
    cutoff = clock.now() - timedelta(days=keep_days) if keep_days else None
    removed = []
    for position, run in enumerate(runs):
        too_many = bool(keep_count) and position >= keep_count
        too_old = cutoff is not None and run.finished_at < cutoff
        if not (too_many or too_old) or run.id == newest_verified:
            continue
        Path(run.path).unlink(missing_ok=True)
        run.status = "expired"
        audit.record("delete", resource="core.backup", record_id=run.id, summary=run.file_name,
                     changes={"status": ["done", "expired"]}, actor_name="system")
        removed.append(run.file_name)
    db.session.commit()
    return removed


def latest_verified() -> BackupRun | None:
    """The newest backup whose archive exists and restored cleanly."""
    return db.session.scalar(select(BackupRun).where(BackupRun.status == "done", BackupRun.verify_status == "passed")
                             .order_by(BackupRun.finished_at.desc()).limit(1))


def fail_stale() -> None:
    """Mark runs left ``running`` by a worker that died long ago as failed (called by the queue job)."""
    limit = clock.now() - STALE_RUNNING
    db.session.execute(update(BackupRun).where(BackupRun.status == "running", BackupRun.started_at < limit)
                       .values(status="failed", error="the worker stopped while the backup ran")
                       .execution_options(synchronize_session=False))
    db.session.commit()
