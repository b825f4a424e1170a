"""The outbox sweeper and the worker: claims, retries with backoff, dead letters, admin retry, concurrency.

Deliveries go to a real HTTP endpoint on 127.0.0.1 (the notes plugin's webhook delivery, which sends
each message's idempotency key); the endpoint can be told to fail, and records what it received.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import clock, events, jobs
from core.audit.models import AuditEntry
from core.events import OutboxMessage
from core.extensions import db

from tests.conftest import PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class Endpoint:
    """A webhook receiver: answers 500 while ``failures`` > 0, records every request it got."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []  # (Idempotency-Key, body)
        self.failures = 0
        self.delay = 0.0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(endpoint.delay)
                with endpoint.lock:
                    endpoint.received.append((self.headers["Idempotency-Key"], body))
                    fail = endpoint.failures > 0
                    endpoint.failures -= 1 if fail else 0
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def keys(self) -> list[str]:
        return [key for key, _body in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def hook_app(make_app, endpoint):
    app = make_app(plugins=WITH_NOTES, NOTES_WEBHOOK_URL=endpoint.url, OUTBOX_MAX_ATTEMPTS=3)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def emit_notes(app, count: int, start: int = 1) -> list[str]:
    """Commit ``count`` note_created events; return their idempotency keys."""
    with app.app_context():
        rows = [events.emit("notes.note_created", note_id=n, title=f"note {n}", owner_id=1)
                for n in range(start, start + count)]
        db.session.commit()
        return [db.session.get(OutboxMessage, row.id).idempotency_key for row in rows]


def sweep(app) -> dict:
    with app.app_context():
        return jobs.sweep_outbox()


def rows(app) -> list[OutboxMessage]:
    with app.app_context():
        found = db.session.scalars(select(OutboxMessage).where(OutboxMessage.event == "notes.note_created")
                                   .order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return found


def test_hook_register_deliveries(hook_app, make_app, endpoint):
    keys = emit_notes(hook_app, 3)
    assert [r.status for r in rows(hook_app)] == ["pending"] * 3
    assert sweep(hook_app) == {"delivered": 3, "retried": 0, "dead": 0, "skipped": 0}
    assert endpoint.keys == keys
    assert [body["payload"]["note_id"] for _key, body in endpoint.received] == [1, 2, 3]
    assert [(r.status, r.attempts, r.locked_until) for r in rows(hook_app)] == [("delivered", 1, None)] * 3
    assert sweep(hook_app)["delivered"] == 0  # nothing is sent twice
    assert len(endpoint.received) == 3
    # Without the delivery the same event is only logged.
    plain = make_app(plugins=WITH_NOTES, schema=None, DATABASE_URL=hook_app.config["SQLALCHEMY_DATABASE_URI"])
    with plain.app_context():
        assert events.deliveries_for("notes.note_created") == []


def test_a_failed_delivery_is_retried_with_exponential_backoff(hook_app, endpoint):
    clock.set_now(T0)
    [key] = emit_notes(hook_app, 1)
    endpoint.failures = 2
    assert sweep(hook_app)["retried"] == 1
    [row] = rows(hook_app)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=30))
    assert "notes.webhook" in row.last_error and "500" in row.last_error
    clock.set_now(T0 + timedelta(seconds=29))
    assert sweep(hook_app)["retried"] == 0 and len(endpoint.received) == 1  # not due yet
    clock.set_now(T0 + timedelta(seconds=30))
    assert sweep(hook_app)["retried"] == 1
    [row] = rows(hook_app)
    assert (row.attempts, row.next_attempt_at) == (2, T0 + timedelta(seconds=30 + 60))  # doubled
    clock.set_now(T0 + timedelta(seconds=90))
    assert sweep(hook_app)["delivered"] == 1
    [row] = rows(hook_app)
    assert (row.status, row.attempts, row.last_error, row.delivered_at) == ("delivered", 3, None, T0 + timedelta(seconds=90))
    assert endpoint.keys == [key, key, key]  # the same key every time: the receiver can drop repeats


def test_backoff_is_capped(hook_app):
    with hook_app.app_context():
        assert [jobs.backoff(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
        assert jobs.backoff(40) == timedelta(hours=6)


def test_dead_letter_after_max_attempts_then_admin_retry(hook_app, endpoint):
    clock.set_now(T0)
    emit_notes(hook_app, 1)
    endpoint.failures = 100
    outcomes = []
    for minutes in (0, 1, 3, 10, 60):
        clock.set_now(T0 + timedelta(minutes=minutes))
        outcomes.append(sweep(hook_app))
    assert [o["retried"] for o in outcomes] == [1, 1, 0, 0, 0]
    assert [o["dead"] for o in outcomes] == [0, 0, 1, 0, 0]
    assert len(endpoint.received) == 3  # OUTBOX_MAX_ATTEMPTS, then never again
    [row] = rows(hook_app)
    assert (row.status, row.attempts) == ("dead", 3)

    sales = Client(hook_app)
    sales.login("sales1")
    assert sales.get("/admin/outbox").status_code == 403
    assert sales.post(f"/admin/outbox/{row.id}/retry").status_code == 403
    admin = Client(hook_app)
    admin.login("admin")
    admin.post("/lang/en")
    page = admin.get("/admin/outbox").get_data(as_text=True)
    assert "notes.note_created" in page and "HTTP Error 500" in page
    assert admin.post(f"/admin/outbox/{row.id}/retry", {"status": "dead"}).status_code == 302
    [row] = rows(hook_app)
    assert (row.status, row.attempts) == ("pending", 0)
    endpoint.failures = 0
    assert sweep(hook_app)["delivered"] == 1
    assert "notes.note_created" not in admin.get("/admin/outbox").get_data(as_text=True)
    assert admin.post(f"/admin/outbox/{row.id}/retry").status_code == 404  # delivered: nothing to retry
    with hook_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "retry", AuditEntry.resource == "core.outbox", AuditEntry.record_id == row.id)) == 1


def test_a_message_claimed_by_a_dead_worker_is_delivered_after_its_lease(hook_app, endpoint):
    clock.set_now(T0)
    [key] = emit_notes(hook_app, 1)
    with hook_app.app_context():
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.event == "notes.note_created"))
        row.locked_until, row.claim_token, row.attempts = T0 + timedelta(seconds=120), "killed-worker", 1
        db.session.commit()
    assert sweep(hook_app)["delivered"] == 0 and endpoint.received == []
    clock.set_now(T0 + timedelta(seconds=121))
    assert sweep(hook_app)["delivered"] == 1
    assert endpoint.keys == [key]
    [row] = rows(hook_app)
    assert (row.status, row.attempts, row.claim_token) == ("delivered", 2, None)


def test_two_sweepers_never_deliver_the_same_row_twice(hook_app, endpoint):
    keys = emit_notes(hook_app, 30)
    endpoint.delay = 0.005
    start = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            start.wait()
            results.append(sweep(hook_app))
        except Exception as exc:  # reported below; an exception in a thread would pass silently
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(endpoint.keys) == sorted(keys)  # each exactly once
    assert sum(r["delivered"] for r in results) == 30
    assert all(r["delivered"] > 0 for r in results) or sum(r["skipped"] for r in results) > 0
    assert {r.status for r in rows(hook_app)} == {"delivered"}


def test_worker_command_runs_the_sweeper(hook_app, endpoint, tmp_path):
    keys = emit_notes(hook_app, 2)
    env = {**os.environ,
           "YITI_DATABASE_URL": hook_app.config["YITI"]["DATABASE_URL"],
           "YITI_PLUGINS": ",".join(WITH_NOTES),
           "YITI_INSTANCE_PATH": str(tmp_path / "worker-instance"),
           "YITI_SECRET_KEY": hook_app.config["SECRET_KEY"],
           "YITI_OUTBOX_SWEEP_SECONDS": "1",
           "NOTES_WEBHOOK_URL": endpoint.url}
    worker = subprocess.Popen([str(Path(sys.executable).parent / "yiti"), "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(endpoint.received) < 2 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            output = worker.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            output = worker.communicate()[0]
    assert sorted(endpoint.keys) == sorted(keys), output
    assert "core.sweep_outbox" in output and "notes.remind_overdue_reviews" in output
    assert {r.status for r in rows(hook_app)} == {"delivered"}
