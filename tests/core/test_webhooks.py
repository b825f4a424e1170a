"""Outbound webhooks: signed JSON, per-subscription deliveries, retries, dead letters, replay, admin only.

Receivers are real HTTP servers on 127.0.0.1 (``webhook_receiver.Receiver``). Events come from the
sample ``notes`` plugin (``notes.note_created``) and the core (``core.todo_assigned``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from core import clock, events, jobs, webhooks
from core.audit.models import AuditEntry
from core.events import OutboxMessage
from core.extensions import db
from core.webhooks.models import Webhook, WebhookDelivery

from tests.conftest import PASSWORD, Client
from tests.core.webhook_receiver import Receiver

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def hook_app(make_app):
    app = make_app(plugins=WITH_NOTES, OUTBOX_MAX_ATTEMPTS=3, WEBHOOK_TIMEOUT_SECONDS=1)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


@pytest.fixture
def receivers():
    made = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def admin(hook_app):
    client = Client(hook_app)
    assert client.login("admin").status_code == 302
    return client


def subscribe(admin: Client, url: str, events=("notes.note_created",), name="ERP") -> dict:
    response = admin.api("post", "/api/v1/webhooks", {"name": name, "url": url, "events": list(events)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def emit_notes(app, count: int = 1, start: int = 1) -> None:
    with app.app_context():
        for n in range(start, start + count):
            events.emit("notes.note_created", note_id=n, title=f"note {n}", owner_id=1)
        db.session.commit()


def deliver(app) -> dict:
    """What the worker does: the outbox sweep (fan-out), then the webhook sweep."""
    with app.app_context():
        jobs.sweep_outbox()
        return webhooks.sweep()


def deliveries(app, webhook_id: int | None = None) -> list[WebhookDelivery]:
    with app.app_context():
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        if webhook_id is not None:
            query = query.where(WebhookDelivery.webhook_id == webhook_id)
        found = db.session.scalars(query).all()
        db.session.expunge_all()
        return found


def test_a_delivery_is_signed_json_that_verifies_with_an_independent_hmac(hook_app, admin, receivers):
    receiver = receivers()
    hook = subscribe(admin, receiver.url)
    secret = hook["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    emit_notes(hook_app)
    assert deliver(hook_app)["delivered"] == 1

    [request] = receiver.requests
    headers, raw, body = request["headers"], request["raw"], request["body"]
    expected = hmac.new(secret.encode(), headers["X-Yiti-Timestamp"].encode() + b"." + raw, hashlib.sha256).hexdigest()
    assert headers["X-Yiti-Signature"] == f"sha256={expected}"
    assert abs(int(headers["X-Yiti-Timestamp"]) - time.time()) < 60
    assert headers["X-Yiti-Event"] == body["event"] == "notes.note_created"
    assert headers["X-Yiti-Delivery"] == body["id"]
    assert headers["Content-Type"].startswith("application/json")
    assert body["data"] == {"note_id": 1, "title": "note 1", "owner_id": 1}
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    # A tampered body no longer matches.
    forged = hmac.new(secret.encode(), headers["X-Yiti-Timestamp"].encode() + b"." + raw.replace(b"note 1", b"note 2"),
                      hashlib.sha256).hexdigest()
    assert forged != expected

    [row] = deliveries(hook_app)
    assert (row.delivery_id, row.status, row.attempts, row.response_code) == (body["id"], "delivered", 1, 200)
    assert row.duration_ms is not None and row.response_body == '{"ok": true}'
    assert deliver(hook_app) == {"delivered": 0, "retried": 0, "dead": 0, "skipped": 0}
    assert len(receiver.requests) == 1


def test_only_subscribed_events_are_sent_and_unwanted_events_stay_plain_log_entries(hook_app, admin, receivers):
    notes, todos, off = receivers(), receivers(), receivers()
    subscribe(admin, notes.url, events=("notes.note_created",), name="notes")
    subscribe(admin, todos.url, events=("core.todo_assigned",), name="todos")
    inactive = subscribe(admin, off.url, events=("*",), name="off")
    assert admin.api("patch", f"/api/v1/webhooks/{inactive['id']}", {"active": False}).status_code == 200
    emit_notes(hook_app, 2)
    deliver(hook_app)
    assert [r["body"]["event"] for r in notes.requests] == ["notes.note_created"] * 2
    assert todos.requests == [] and off.requests == []

    # With no active subscription for it, an event is only logged: no pending outbox row, no delivery.
    assert admin.api("patch", f"/api/v1/webhooks/{inactive['id']}", {"active": True, "events": ["core.todo_assigned"]}).status_code == 200
    emit_notes(hook_app, 1, start=10)  # still wanted by "notes"
    with hook_app.app_context():
        hooks_before = db.session.scalar(select(func.count()).select_from(WebhookDelivery))
        db.session.execute(text("UPDATE core_webhook SET active = :f WHERE name = 'notes'"), {"f": False})
        db.session.commit()
        events.emit("notes.note_created", note_id=99, title="nobody", owner_id=1)
        db.session.commit()
        row = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        assert (row.event, row.status) == ("notes.note_created", "delivered")
        jobs.sweep_outbox()
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == hooks_before


def test_a_500_is_retried_with_backoff_under_the_same_delivery_id_then_dead_then_replayed(hook_app, admin, receivers):
    clock.set_now(T0)
    receiver = receivers(status=500)
    hook = subscribe(admin, receiver.url)
    emit_notes(hook_app)
    assert deliver(hook_app)["retried"] == 1
    [row] = deliveries(hook_app)
    assert (row.status, row.attempts, row.response_code, row.response_body) == ("failed", 1, 500, "boom")
    assert row.next_attempt_at == T0 + timedelta(seconds=30) and "500" in row.error
    clock.set_now(T0 + timedelta(seconds=29))
    assert deliver(hook_app)["retried"] == 0 and len(receiver.requests) == 1  # not due yet
    clock.set_now(T0 + timedelta(seconds=30))
    assert deliver(hook_app)["retried"] == 1
    [row] = deliveries(hook_app)
    assert (row.attempts, row.next_attempt_at) == (2, T0 + timedelta(seconds=90))  # doubled
    clock.set_now(T0 + timedelta(seconds=90))
    assert deliver(hook_app)["dead"] == 1  # OUTBOX_MAX_ATTEMPTS = 3
    clock.set_now(T0 + timedelta(hours=7))
    assert deliver(hook_app)["dead"] == 0 and len(receiver.requests) == 3
    [row] = deliveries(hook_app)
    assert (row.status, row.attempts) == ("dead", 3)
    assert len(set(receiver.ids)) == 1 and receiver.ids[0] == row.delivery_id

    # The admin sees it dead, with the answer, and replays it: the same delivery id, fresh attempts.
    admin.post("/lang/en")
    page = admin.get(f"/admin/webhooks/{hook['id']}?status=dead").get_data(as_text=True)
    assert row.delivery_id in page and ">500<" in page and "Replay" in page
    receiver.status = 200
    assert admin.post(f"/admin/webhooks/deliveries/{row.id}/replay", {"status": "dead"}).status_code == 302
    [row] = deliveries(hook_app)
    assert (row.status, row.attempts) == ("pending", 0)
    assert deliver(hook_app)["delivered"] == 1
    assert receiver.ids == [row.delivery_id] * 4 and list(receiver.applied) == [row.delivery_id]
    # Replaying a delivered one sends it again too (the receiver drops it by id); via the API this time.
    response = admin.api("post", f"/api/v1/webhooks/deliveries/{row.id}/replay")
    assert response.status_code == 200 and response.get_json()["status"] == "pending"
    assert deliver(hook_app)["delivered"] == 1 and len(receiver.applied) == 1
    with hook_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "replay", AuditEntry.resource == "core.webhook")) == 2


def test_a_timeout_is_a_failed_attempt_retried_later(hook_app, admin, receivers):
    clock.set_now(T0)
    receiver = receivers(delay=5)  # WEBHOOK_TIMEOUT_SECONDS = 1
    subscribe(admin, receiver.url)
    emit_notes(hook_app)
    started = time.monotonic()
    assert deliver(hook_app)["retried"] == 1
    assert time.monotonic() - started < 4.5  # gave up long before the receiver answered
    [row] = deliveries(hook_app)
    assert row.status == "failed" and row.response_code is None and "timed out" in row.error.lower()
    assert 900 <= row.duration_ms < 4500 and row.next_attempt_at == T0 + timedelta(seconds=30)


def test_a_failing_subscription_neither_delays_nor_resends_to_another(hook_app, admin, receivers):
    clock.set_now(T0)
    hook_app.config["YITI"]["WEBHOOK_TIMEOUT_SECONDS"] = 3
    seen = []
    healthy = receivers()

    def hang():  # the broken receiver notes how far the healthy one got while it hangs, then times out
        deadline = time.monotonic() + 2.5
        while len(healthy.requests) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(len(healthy.requests))

    broken = receivers(delay=4, before_answer=hang)  # then answers after the 3-second time-out
    subscribe(admin, broken.url, name="broken")  # the lower id: a one-by-one sweep would serve it first
    ok = subscribe(admin, healthy.url, name="healthy")
    emit_notes(hook_app, 5)
    counts = deliver(hook_app)
    assert counts["delivered"] == 5 and counts["retried"] == 1  # broken: stops at its first failure
    assert seen == [5]  # healthy got all five while broken's call was still hanging
    hook_app.config["YITI"]["WEBHOOK_TIMEOUT_SECONDS"] = 1
    for minutes in (1, 2, 5, 10, 30):
        clock.set_now(T0 + timedelta(minutes=minutes))
        deliver(hook_app)
    assert len(healthy.requests) == 5 and len(set(healthy.ids)) == 5  # each exactly once
    assert {r.status for r in deliveries(hook_app, ok["id"])} == {"delivered"}
    assert {r.status for r in deliveries(hook_app) if r.webhook_id != ok["id"]} >= {"dead"}


def test_410_gone_turns_the_subscription_off(hook_app, admin, receivers):
    receiver = receivers(status=410)
    hook = subscribe(admin, receiver.url)
    emit_notes(hook_app, 2)
    assert deliver(hook_app)["dead"] == 1
    with hook_app.app_context():
        webhook = db.session.get(Webhook, hook["id"])
        assert (webhook.active, webhook.disabled_reason) == (False, "410 Gone")
        assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "disable")) == "disable"
    assert deliver(hook_app)["dead"] == 0 and len(receiver.requests) == 1
    emit_notes(hook_app, 1, start=5)
    deliver(hook_app)
    assert len(receiver.requests) == 1


def test_test_ping_from_the_page(hook_app, admin, receivers):
    receiver = receivers()
    hook = subscribe(admin, receiver.url)
    admin.post("/lang/en")
    response = admin.post(f"/admin/webhooks/{hook['id']}/ping", follow_redirects=True)
    assert "Test ping delivered (HTTP 200)" in response.get_data(as_text=True)
    [request] = receiver.requests
    assert request["body"]["event"] == "ping" and request["body"]["data"]["webhook_id"] == hook["id"]
    secret = hook["secret"]
    headers = request["headers"]
    assert headers["X-Yiti-Signature"] == "sha256=" + hmac.new(
        secret.encode(), headers["X-Yiti-Timestamp"].encode() + b"." + request["raw"], hashlib.sha256).hexdigest()
    dead = receivers(status=503)
    other = subscribe(admin, dead.url, name="down")
    page = admin.post(f"/admin/webhooks/{other['id']}/ping", follow_redirects=True).get_data(as_text=True)
    assert "Test ping failed: HTTP 503" in page


def test_create_edit_rotate_on_the_pages_show_the_secret_once_and_audit_everything(hook_app, admin, receivers):
    receiver = receivers()
    admin.post("/lang/en")
    page = admin.post("/admin/webhooks/new", {"name": "OA→ERP", "url": receiver.url, "events": ["notes.note_created"],
                                              "active": "y"})
    assert page.status_code == 200
    secret = _secret_in(page.get_data(as_text=True))
    with hook_app.app_context():
        webhook = db.session.scalar(select(Webhook))
        assert (webhook.name, webhook.events, webhook.secret) == ("OA→ERP", ["notes.note_created"], secret)
        webhook_id = webhook.id
    detail = admin.get(f"/admin/webhooks/{webhook_id}").get_data(as_text=True)
    assert secret not in detail and receiver.url in detail
    assert secret not in admin.get("/admin/webhooks").get_data(as_text=True)
    assert secret not in json.dumps(admin.api("get", f"/api/v1/webhooks/{webhook_id}").get_json())

    assert admin.post(f"/admin/webhooks/{webhook_id}/edit", {"name": "ERP", "url": receiver.url + "?v=2",
                                                             "events": ["*"], "active": "y"}).status_code == 302
    rotated = _secret_in(admin.post(f"/admin/webhooks/{webhook_id}/rotate").get_data(as_text=True))
    assert rotated != secret
    emit_notes(hook_app)
    deliver(hook_app)
    [request] = receiver.requests
    assert request["path"] == "/hook?v=2"
    signed = lambda key: "sha256=" + hmac.new(key.encode(), request["headers"]["X-Yiti-Timestamp"].encode() + b"."
                                              + request["raw"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Yiti-Signature"] == signed(rotated) != signed(secret)
    assert admin.post(f"/admin/webhooks/{webhook_id}/delete").status_code == 302
    with hook_app.app_context():
        trail = db.session.scalars(select(AuditEntry).where(AuditEntry.resource == "core.webhook")
                                   .order_by(AuditEntry.id)).all()
        assert [e.action for e in trail] == ["create", "update", "rotate_secret", "delete"]
        assert trail[1].changes["name"] == ["OA→ERP", "ERP"] and trail[1].changes["events"] == [["notes.note_created"], ["*"]]
        assert all(e.actor_name == "admin" for e in trail)
        assert db.session.scalar(select(func.count()).select_from(Webhook)) == 0
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def _secret_in(page: str) -> str:
    import re

    return re.search(r'value="(whsec_[^"]+)"', page).group(1)


def test_secrets_are_stored_encrypted_and_never_logged_or_audited(hook_app, admin, receivers, caplog):
    caplog.set_level(logging.DEBUG)
    good, bad = receivers(), receivers(status=500)
    first = subscribe(admin, good.url)
    second = subscribe(admin, bad.url, name="bad")
    rotated = admin.api("post", f"/api/v1/webhooks/{second['id']}/rotate-secret").get_json()["secret"]
    emit_notes(hook_app, 2)
    deliver(hook_app)
    admin.api("post", f"/api/v1/webhooks/{first['id']}/ping")
    secrets = (first["secret"], second["secret"], rotated)
    with hook_app.app_context():
        stored = db.session.execute(text("SELECT secret FROM core_webhook ORDER BY id")).scalars().all()
        assert all(value.startswith("gAAAA") for value in stored)  # Fernet tokens
        assert not any(secret in value for secret in secrets for value in stored)
        trail = json.dumps([[e.summary, e.changes] for e in db.session.scalars(select(AuditEntry))], ensure_ascii=False)
    assert not any(secret in trail for secret in secrets)
    assert "failed: HTTP 500" in caplog.text  # the failure was logged...
    assert not any(secret in caplog.text for secret in secrets)  # ...without a secret


def test_non_admins_get_403_on_pages_and_api(hook_app, admin, receivers):
    hook = subscribe(admin, receivers().url)
    emit_notes(hook_app)
    deliver(hook_app)
    [row] = deliveries(hook_app)
    sales = Client(hook_app)
    sales.login("sales1")
    for url in ("/admin/webhooks", "/admin/webhooks/new", f"/admin/webhooks/{hook['id']}",
                f"/admin/webhooks/{hook['id']}/edit"):
        assert sales.get(url).status_code == 403, url
    for url in (f"/admin/webhooks/{hook['id']}/rotate", f"/admin/webhooks/{hook['id']}/ping",
                f"/admin/webhooks/{hook['id']}/delete", f"/admin/webhooks/deliveries/{row.id}/replay",
                "/admin/webhooks/new"):
        assert sales.post(url, {"name": "x", "url": "http://127.0.0.1/", "events": "*"}).status_code == 403, url
    calls = [("get", "/api/v1/webhooks", None), ("post", "/api/v1/webhooks", {"name": "x", "url": "http://a/", "events": ["*"]}),
             ("get", f"/api/v1/webhooks/{hook['id']}", None), ("patch", f"/api/v1/webhooks/{hook['id']}", {"active": False}),
             ("delete", f"/api/v1/webhooks/{hook['id']}", None), ("post", f"/api/v1/webhooks/{hook['id']}/rotate-secret", None),
             ("get", f"/api/v1/webhooks/{hook['id']}/deliveries", None), ("post", f"/api/v1/webhooks/deliveries/{row.id}/replay", None),
             ("get", "/api/v1/webhooks/event-types", None)]
    for method, url, body in calls:
        response = sales.api(method, url, body)
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden", url
    assert Client(hook_app).api("get", "/api/v1/webhooks").status_code == 401
    with hook_app.app_context():
        webhook = db.session.get(Webhook, hook["id"])
        assert webhook.active and webhook.secret == hook["secret"]
    assert [r.attempts for r in deliveries(hook_app)] == [1]
    sales.login("sales1")
    assert "/admin/webhooks" not in sales.get("/").get_data(as_text=True)
    assert "/admin/webhooks" in admin.get("/").get_data(as_text=True)


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "url": "ftp://files.example.com/", "events": ["*"]}, "url"),
    ({"name": "x", "url": "javascript:alert(1)", "events": ["*"]}, "url"),
    ({"name": "x", "url": "file:///etc/passwd", "events": ["*"]}, "url"),
    ({"name": "x", "url": "http://", "events": ["*"]}, "url"),
    ({"name": "x", "url": "http://user:pw@erp.example.com/", "events": ["*"]}, "url"),
    ({"name": "x", "url": "http://erp.example.com:99999/", "events": ["*"]}, "url"),
    ({"name": "x", "url": "http://erp example.com/", "events": ["*"]}, "url"),
    ({"name": "x", "url": "https://erp.example.com/", "events": []}, "events"),
    ({"name": "x", "url": "https://erp.example.com/", "events": ["crm.nothing_like_this"]}, "events"),
    ({"name": "x", "url": "https://erp.example.com/", "events": "*"}, "events"),
    ({"name": "", "url": "https://erp.example.com/", "events": ["*"]}, "name"),
    ({"name": "x", "url": "https://erp.example.com/", "events": ["*"], "secret": "mine"}, "secret"),
])
def test_bad_input_gets_field_errors_and_writes_nothing(hook_app, admin, body, field):
    response = admin.api("post", "/api/v1/webhooks", body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    with hook_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Webhook)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.resource == "core.webhook")) == 0


def test_the_form_page_shows_field_errors(hook_app, admin):
    admin.post("/lang/en")
    page = admin.post("/admin/webhooks/new", {"name": "x", "url": "gopher://old.example.com/", "events": []})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Enter a valid http:// or https:// URL." in html and "Choose at least one event." in html
    assert "whsec_" not in html


def test_api_lists_event_types_subscriptions_and_the_delivery_log(hook_app, admin, receivers):
    receiver = receivers()
    hook = subscribe(admin, receiver.url, events=("*",))
    names = [item["name"] for item in admin.api("get", "/api/v1/webhooks/event-types").get_json()["items"]]
    assert {"core.todo_assigned", "notes.note_created"} <= set(names)
    emit_notes(hook_app, 3)
    deliver(hook_app)
    listed = admin.api("get", "/api/v1/webhooks").get_json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    log = admin.api("get", f"/api/v1/webhooks/{hook['id']}/deliveries?status=delivered&per_page=2").get_json()
    assert log["total"] == 3 and len(log["items"]) == 2
    assert {item["response_code"] for item in log["items"]} == {200}
    assert admin.api("get", f"/api/v1/webhooks/{hook['id']}/deliveries?status=nope").status_code == 422
    assert admin.api("get", "/api/v1/webhooks/999999").status_code == 404
    assert admin.api("get", "/api/v1/webhooks/99999999999").status_code == 404
