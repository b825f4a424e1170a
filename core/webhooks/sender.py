"""Fan-out from the outbox, the webhook sweeper and the signed HTTP call.

1. ``fan_out`` is a ``Delivery`` of the outbox: for a committed event it writes one
   ``core_webhook_delivery`` row per active subscription that wants it (database only, idempotent:
   unique on message and subscription), so the outbox message is done quickly and never waits for
   a receiver.
2. ``sweep`` (the worker's ``core.sweep_webhooks`` job) sends the due rows. Each subscription is
   served by its own thread, in delivery order, and stops at its first failure until the next
   sweep: a slow or failing receiver never delays, nor causes a resend to, another one. Each row is
   claimed with a conditional ``UPDATE`` (lease + claim token) exactly like ``sweep_outbox``, and
   its result is written only while the claim is held.
3. ``send`` POSTs the JSON body with ``X-Yiti-Delivery`` (stable across retries and replays: the
   receiver's idempotency key), ``X-Yiti-Timestamp`` and ``X-Yiti-Signature`` (HMAC-SHA256 of
   ``"{timestamp}.{body}"`` with the subscription's secret), with a time-out, never following
   redirects.

A worker killed mid-call leaves the lease to expire; the row is then sent again with the same
delivery id: at least once on our side, exactly once at a receiver that dedupes on the id.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from core import clock
from core.events import Message, OutboxMessage
from core.extensions import db
from core.webhooks.models import DUE_STATUSES, Webhook, WebhookDelivery

log = logging.getLogger(__name__)

EXCERPT = 1000  # characters of a receiver's answer kept for the admin
USER_AGENT = "Yiti-Webhooks/1"
OUTCOMES = ("delivered", "retried", "dead", "skipped")


# 1. Fan-out ----------------------------------------------------------------------------------------


def wants(event: str) -> bool:
    """Whether any active subscription wants ``event`` (asked at emit time, in the caller's transaction)."""
    with db.session.no_autoflush:  # never flush the caller's half-built objects from here
        lists = db.session.scalars(select(Webhook.events).where(Webhook.active.is_(True))).all()
    return any("*" in names or event in names for names in lists)


def fan_out(message: Message) -> None:
    """Write the missing delivery rows of ``message`` (one per subscription that wants it) and commit."""
    rows = db.session.execute(select(Webhook.id, Webhook.events).where(Webhook.active.is_(True))).all()
    wanted = {webhook_id for webhook_id, names in rows if "*" in names or message.event in names}
    existing = set(db.session.scalars(select(WebhookDelivery.webhook_id)
                                      .where(WebhookDelivery.message_id == message.id)))
    now = clock.now()
    for webhook_id in sorted(wanted - existing):
        db.session.add(WebhookDelivery(delivery_id=str(uuid.uuid4()), webhook_id=webhook_id, message_id=message.id,
                                       event=message.event, status="pending", next_attempt_at=now, created_at=now))
    try:
        db.session.commit()
    except IntegrityError:  # another sweeper fanned the same message out meanwhile: theirs stand
        db.session.rollback()


# 2. The sweeper -----------------------------------------------------------------------------------


def _due(now):
    return (WebhookDelivery.status.in_(DUE_STATUSES), WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now))


def sweep() -> dict:
    """Send the due deliveries; return counts ``{"delivered", "retried", "dead", "skipped"}``.

    Commits as it goes; call it with nothing pending in the session (the worker, a test).
    """
    app = current_app._get_current_object()
    settings = app.config["YITI"]
    now = clock.now()
    webhook_ids = db.session.scalars(
        select(WebhookDelivery.webhook_id).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(Webhook.active.is_(True), *_due(now)).distinct().order_by(WebhookDelivery.webhook_id)
    ).all()
    db.session.commit()
    counts = dict.fromkeys(OUTCOMES, 0)
    if not webhook_ids:
        return counts

    def serve(webhook_id: int) -> dict:
        with app.app_context():
            try:
                return _serve(webhook_id, settings)
            finally:
                db.session.remove()

    workers = min(len(webhook_ids), settings["WEBHOOK_CONCURRENCY"])
    if workers == 1:
        results = [_serve(webhook_id, settings) for webhook_id in webhook_ids]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhooks") as pool:
            results = list(pool.map(serve, webhook_ids))
    for result in results:
        for key, value in result.items():
            counts[key] += value
    return counts


def _serve(webhook_id: int, settings: dict) -> dict:
    """Send one subscription's due deliveries in order; stop at its first failure."""
    counts = dict.fromkeys(OUTCOMES, 0)
    ids = db.session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == webhook_id,
                                                              *_due(clock.now()))
                             .order_by(WebhookDelivery.id).limit(settings["OUTBOX_BATCH"])).all()
    db.session.commit()
    for delivery_pk in ids:
        outcome = attempt(delivery_pk, settings)
        counts[outcome] += 1
        if outcome in ("retried", "dead"):
            break  # the receiver is failing: its other deliveries wait for the next sweep
    return counts


@dataclass(frozen=True)
class Result:
    """What one HTTP call came to."""

    ok: bool
    code: int | None = None
    body: str | None = None
    error: str | None = None
    duration_ms: int = 0


def attempt(delivery_pk: int, settings: dict | None = None) -> str:
    """Claim one delivery, send it and record the answer; returns the outcome (see ``OUTCOMES``)."""
    from core.jobs import backoff

    settings = settings or current_app.config["YITI"]
    now = clock.now()
    lease = max(settings["OUTBOX_LEASE_SECONDS"], 2 * settings["WEBHOOK_TIMEOUT_SECONDS"])
    token = uuid.uuid4().hex
    claimed = db.session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_pk, *_due(now))
        .values(locked_until=now + timedelta(seconds=lease), claim_token=token,
                attempts=WebhookDelivery.attempts + 1, last_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return "skipped"  # another sweeper got it first
    row = db.session.execute(
        select(WebhookDelivery.delivery_id, WebhookDelivery.event, WebhookDelivery.payload, WebhookDelivery.attempts,
               WebhookDelivery.created_at, WebhookDelivery.webhook_id, OutboxMessage.payload.label("message_payload"),
               OutboxMessage.created_at.label("message_created_at"))
        .outerjoin(OutboxMessage, OutboxMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.id == delivery_pk)
    ).one_or_none()
    webhook = row and db.session.execute(select(Webhook.url, Webhook.secret).where(Webhook.id == row.webhook_id)).one_or_none()
    db.session.commit()
    if webhook is None:
        return "skipped"  # the subscription was deleted meanwhile, with its deliveries
    data = row.message_payload if row.message_payload is not None else (row.payload or {})
    created_at = row.message_created_at or row.created_at
    result = send(webhook.url, webhook.secret, row.delivery_id, row.event, created_at, data,
                  timeout=settings["WEBHOOK_TIMEOUT_SECONDS"])

    now = clock.now()
    values = {"response_code": result.code, "response_body": result.body, "error": result.error,
              "duration_ms": result.duration_ms, "locked_until": None, "claim_token": None}
    gone = result.code == 410
    if result.ok:
        outcome = "delivered"
        values.update(status="delivered", delivered_at=now, error=None)
    elif gone or row.attempts >= settings["OUTBOX_MAX_ATTEMPTS"]:
        outcome = "dead"
        values.update(status="dead")
    else:
        outcome = "retried"
        values.update(status="failed", next_attempt_at=now + backoff(row.attempts))
    done = db.session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_pk, WebhookDelivery.claim_token == token)
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if done == 1 and gone:
        _disable(row.webhook_id)
    db.session.commit()
    if done != 1:  # our lease ran out (or an admin replayed it): whoever holds it now finishes it
        log.warning("webhook delivery %s: claim lost before it was marked %s", row.delivery_id, outcome)
        return "skipped"
    if not result.ok:
        log.warning("webhook delivery %s (%s) to %s failed: %s", row.delivery_id, row.event,
                    _where(webhook.url), result.error)
    return outcome


def _disable(webhook_id: int) -> None:
    """The receiver answered 410 Gone: stop sending to it until an admin turns it on again."""
    from core import audit

    db.session.execute(update(Webhook).where(Webhook.id == webhook_id)
                       .values(active=False, disabled_reason="410 Gone")
                       .execution_options(synchronize_session=False))
    audit.record("disable", resource="core.webhook", record_id=webhook_id, summary="410 Gone",
                 changes={"active": [True, False]}, actor_name="system")


def _where(url: str) -> str:
    """Scheme and host of ``url`` for the log: its path or query may carry a receiver's token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# 3. The HTTP call ---------------------------------------------------------------------------------


def body_of(delivery_id: str, event: str, created_at, data: dict) -> bytes:
    """The exact bytes sent (and signed)."""
    document = {"id": delivery_id, "event": event, "created_at": created_at.isoformat(), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"{timestamp}." + body``."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer like any other non-2xx: retried, shown to the admin


_OPENER = urllib.request.build_opener(_NoRedirect)


def send(url: str, secret: str, delivery_id: str, event: str, created_at, data: dict, timeout: float) -> Result:
    """POST one delivery; never raises for the far side's failures (they come back in ``Result``)."""
    body = body_of(delivery_id, event, created_at, data)
    timestamp = str(int(clock.now().timestamp()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Yiti-Event": event,
        "X-Yiti-Delivery": delivery_id,
        "Idempotency-Key": delivery_id,
        "X-Yiti-Timestamp": timestamp,
        "X-Yiti-Signature": sign(secret, timestamp, body),
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            code, excerpt = response.status, _excerpt(response)
        error = None if 200 <= code < 300 else f"HTTP {code}"
    except urllib.error.HTTPError as exc:
        code, excerpt, error = exc.code, _excerpt(exc), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, DNS, time-out, TLS
        reason = getattr(exc, "reason", exc)
        code, excerpt, error = None, None, f"{reason.__class__.__name__}: {reason}"[:500]
    duration = int((time.monotonic() - started) * 1000)
    return Result(ok=error is None, code=code, body=excerpt, error=error, duration_ms=duration)


def _excerpt(response) -> str:
    try:
        raw = response.read(EXCERPT * 4)
    except Exception:  # an answer cut off mid-way: the status is what counts
        return ""
    return raw.decode("utf-8", errors="replace").replace("\x00", "")[:EXCERPT]
