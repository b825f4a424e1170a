"""Background jobs (huey) and the outbox sweeper.

``yiti worker`` runs huey's consumer for this app. The queue lives in ``instance/jobs.db``
(SQLite, one worker host) or in Redis when ``REDIS_URL`` is set. Nothing that must not be lost
lives only in the queue: deliveries are outbox rows in the database, swept here.

The sweeper (``sweep_outbox``) is safe to run in several threads, processes and hosts at once:

1. it reads the ids of due rows (``pending``, ``next_attempt_at <= now``, lease free), then
2. claims each with one conditional ``UPDATE ... WHERE id = ? AND lease free`` that sets a lease
   (``locked_until``), a ``claim_token`` and counts the attempt; only one claimer gets rowcount 1,
3. calls every delivery that wants the event, outside any transaction, then
4. marks the row ``delivered`` — or ``pending`` again with an exponential backoff, or ``dead``
   after ``OUTBOX_MAX_ATTEMPTS`` — but only while it still holds the claim token.

A worker killed between 3 and 4 leaves the lease to expire; the row is then delivered again with
the same idempotency key, which the receiver uses to drop the repeat: at least once on our side,
exactly once where it counts.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import or_, select, update

from core import clock
from core.events import Message, OutboxMessage, deliveries_for
from core.extensions import db
from core.plugins.manager import PluginError
from core.plugins.spec import PeriodicJob

log = logging.getLogger(__name__)


# Periodic jobs ----------------------------------------------------------------------------------


def periodic_jobs(app: Flask) -> dict[str, PeriodicJob]:
    """Every job from ``register_jobs`` (the core's sweeper included) by name; checks names."""
    jobs: dict[str, PeriodicJob] = {}
    with app.app_context():
        pairs = app.extensions["plugins"].collect_by_plugin("register_jobs")
    for plugin, job in pairs:
        if job.name.split(".")[0] != plugin:
            raise PluginError(f"Plugin {plugin!r} declares job {job.name!r} outside its own name")
        if job.name in jobs:
            raise PluginError(f"Job {job.name!r} is declared twice")
        _schedule(job, "UTC")  # a malformed schedule stops the worker at start, naming the job
        jobs[job.name] = job
    return dict(sorted(jobs.items()))


def _schedule(job: PeriodicJob, tz: str):
    """``(validate_datetime, repeat_seconds)`` for huey: which minutes run the job, and for a job
    more frequent than a minute, how long to wait between its runs within that minute."""
    every = job.every
    if isinstance(every, timedelta):
        seconds = every.total_seconds()
        if seconds <= 0:
            raise PluginError(f"Job {job.name!r}: every must be positive")
        if seconds < 60:
            return (lambda _dt: True), seconds
        if seconds % 60:
            raise PluginError(f"Job {job.name!r}: every must be under a minute or whole minutes")
        minutes = int(seconds // 60)
        return (lambda dt: (int(dt.replace(tzinfo=UTC).timestamp()) // 60) % minutes == 0), None
    if isinstance(every, str):
        from huey import crontab

        fields = every.split()
        if len(fields) != 5:
            raise PluginError(f"Job {job.name!r}: cron {every!r} needs 5 fields (minute hour day month weekday)")
        try:
            matches = crontab(*fields, strict=True)
        except ValueError as exc:
            raise PluginError(f"Job {job.name!r}: cron {every!r}: {exc}") from None
        zone = ZoneInfo(tz)
        # huey passes naive UTC; the schedule is read on the installation's wall clock.
        return (lambda dt: matches(dt.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None))), None
    raise PluginError(f"Job {job.name!r}: every must be a timedelta or a cron string")


def run_job(app: Flask, job: PeriodicJob) -> None:
    """Run ``job`` once in its own app context; commit what it did, or roll back and re-raise."""
    with app.app_context():
        try:
            job.func()
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", job.name)
            raise
        finally:
            db.session.remove()


def huey_for(app: Flask):
    """This app's huey instance with every periodic job registered, built on first use.

    ``yiti worker`` runs it; the web process uses it only to enqueue one-off tasks (large imports).
    """
    huey = app.extensions.get("yiti.huey")
    if huey is not None:
        return huey
    from huey import RedisHuey, SqliteHuey

    settings = app.config["YITI"]
    if settings["REDIS_URL"]:
        huey = RedisHuey("yiti", url=settings["REDIS_URL"])
    else:
        path = settings["JOBS_PATH"] or os.path.join(app.instance_path, "jobs.db")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        huey = SqliteHuey("yiti", filename=path)
    for job in periodic_jobs(app).values():
        validate, repeat = _schedule(job, settings["DEFAULT_TIMEZONE"])
        huey.periodic_task(validate, name=job.name)(_task(app, job, repeat))
    from core.imports import jobs as import_jobs

    import_jobs.register(huey, app)  # one-off tasks the web enqueues and the worker runs
    app.extensions["yiti.huey"] = huey
    return huey


def _task(app: Flask, job: PeriodicJob, repeat: float | None):
    """The function huey runs: the job, or for a sub-minute job, the job repeated across a minute."""

    def run():
        if repeat is None:
            run_job(app, job)
            return
        started = time.monotonic()
        while True:
            try:
                run_job(app, job)
            except Exception:
                pass  # logged by run_job; the next run may well succeed
            if time.monotonic() - started + repeat > 55:  # leave the next minute to the next task
                return
            stopping = app.extensions.get("yiti.jobs.stop")
            if stopping is not None and stopping.wait(repeat):
                return  # the worker is shutting down
            if stopping is None:
                time.sleep(repeat)

    run.__name__ = job.name.replace(".", "_")
    return run


def run_worker(app: Flask, workers: int | None = None) -> None:
    """Run huey's consumer (periodic jobs included) until it is stopped (SIGINT / SIGTERM)."""
    huey = huey_for(app)
    # A sub-minute job repeats itself across each minute and so holds a thread almost all the time
    # (the outbox, webhook and notification sweepers): each gets a thread of its own on top of
    # JOBS_WORKERS, so none of them waits a minute behind another, nor starves the other jobs.
    repeating = sum(1 for job in periodic_jobs(app).values() if _schedule(job, "UTC")[1] is not None)
    consumer = huey.create_consumer(workers=(workers or app.config["YITI"]["JOBS_WORKERS"]) + repeating,
                                    worker_type="thread", periodic=True, scheduler_interval=1)
    app.extensions["yiti.jobs.stop"] = consumer.stop_flag  # lets a repeating job end at shutdown
    consumer.run()


# The outbox sweeper -----------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: ``OUTBOX_RETRY_SECONDS`` doubled each time, capped."""
    settings = current_app.config["YITI"]
    seconds = settings["OUTBOX_RETRY_SECONDS"] * 2 ** max(0, min(attempts - 1, 30))
    return timedelta(seconds=min(seconds, settings["OUTBOX_RETRY_MAX_SECONDS"]))


def sweep_outbox() -> dict:
    """Deliver the outbox rows that are due; return ``{"delivered", "retried", "dead", "skipped"}``.

    Commits as it goes (each claim and each result is its own short transaction), so call it
    with nothing pending in the session: from the worker, or a test.
    """
    settings = current_app.config["YITI"]
    now = clock.now()
    free = or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now)
    due = (OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now, free)
    ids = db.session.scalars(select(OutboxMessage.id).where(*due)
                             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                             .limit(settings["OUTBOX_BATCH"])).all()
    db.session.commit()  # end the read first: SQLite cannot turn a stale read into a write
    counts = dict.fromkeys(("delivered", "retried", "dead", "skipped"), 0)
    for message_id in ids:
        token = uuid.uuid4().hex
        claimed = db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id, *due)
            .values(locked_until=now + timedelta(seconds=settings["OUTBOX_LEASE_SECONDS"]),
                    claim_token=token, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if claimed != 1:
            counts["skipped"] += 1  # another sweeper got it first
            continue
        row = db.session.execute(select(OutboxMessage.event, OutboxMessage.payload, OutboxMessage.idempotency_key,
                                        OutboxMessage.attempts, OutboxMessage.created_at)
                                 .where(OutboxMessage.id == message_id)).one()
        db.session.commit()
        message = Message(message_id, row.event, row.payload, row.idempotency_key, row.attempts, row.created_at)
        counts[_deliver(message, token, settings)] += 1
    return counts


def _deliver(message: Message, token: str, settings: dict) -> str:
    error = None
    for delivery in deliveries_for(message.event):
        try:
            delivery.deliver(message)
        except Exception as exc:  # any failure of the far side is a retry, never a crash of the sweep
            error = f"{delivery.name}: {exc.__class__.__name__}: {exc}"[:2000]
            log.warning("delivery %s of outbox message %s failed: %s", delivery.name, message.id, exc)
            break
    now = clock.now()
    if error is None:
        outcome, values = "delivered", {"status": "delivered", "delivered_at": now, "last_error": None}
    elif message.attempt >= settings["OUTBOX_MAX_ATTEMPTS"]:
        outcome, values = "dead", {"status": "dead", "last_error": error}
    else:
        outcome, values = "retried", {"next_attempt_at": now + backoff(message.attempt), "last_error": error}
    done = db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message.id, OutboxMessage.claim_token == token)
        .values(locked_until=None, claim_token=None, **values).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if done != 1:  # our lease ran out and another sweeper owns the row: it will finish it
        log.warning("outbox message %s: lease lost before it was marked %s", message.id, outcome)
        return "skipped"
    return outcome


def retry(message_id: int, by) -> OutboxMessage:
    """An admin sends a dead (or waiting) message again now, with a fresh set of attempts."""
    from core import audit
    from core.errors import NotFound

    row = db.session.get(OutboxMessage, message_id) if 0 < message_id < 2**31 else None
    if row is None or row.status == "delivered":
        from flask_babel import gettext as _

        raise NotFound(_("Not found."))
    previous = row.status
    row.status, row.attempts, row.next_attempt_at = "pending", 0, clock.now()
    row.locked_until = row.claim_token = None
    audit.record("retry", resource="core.outbox", record_id=row.id, summary=row.event,
                 changes={"status": [previous, "pending"]}, actor=by)
    return row
