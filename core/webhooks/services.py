"""Managing subscriptions: create, update, delete, rotate the secret, replay a delivery, ping.

Plain functions taking the acting user (an administrator); they validate, change the session and
leave the commit to the caller. Every change is audited; secrets never reach the audit trail or
the log — they are returned once, to be shown once.
"""
from __future__ import annotations

import secrets
import uuid

from flask_babel import gettext as _
from sqlalchemy import delete, select

from core import audit, clock
from core.errors import Forbidden, NotFound
from core.extensions import db
from core.org.schemas import INT32
from core.schemas import load
from core.webhooks.models import Webhook, WebhookDelivery
from core.webhooks.schemas import WebhookIn

SECRET_PREFIX = "whsec_"
AUDITED = ("name", "url", "events", "active")


def _require_admin(actor) -> None:
    if actor is None or not actor.is_admin:
        raise Forbidden(_("Only administrators can manage webhooks."))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def get(actor, webhook_id: int) -> Webhook:
    _require_admin(actor)
    webhook = db.session.get(Webhook, webhook_id) if 0 < webhook_id <= INT32 else None
    if webhook is None:
        raise NotFound(_("Not found."))
    return webhook


def get_delivery(actor, delivery_pk: int) -> WebhookDelivery:
    _require_admin(actor)
    delivery = db.session.get(WebhookDelivery, delivery_pk) if 0 < delivery_pk <= INT32 else None
    if delivery is None:
        raise NotFound(_("Not found."))
    return delivery


def _snapshot(webhook: Webhook) -> dict:
    return {field: getattr(webhook, field) for field in AUDITED}


def create(actor, data: dict) -> tuple[Webhook, str]:
    """A new subscription and its secret (returned once; stored encrypted)."""
    _require_admin(actor)
    clean = load(WebhookIn(), data)
    secret = new_secret()
    webhook = Webhook(**clean, secret=secret, created_by_id=actor.id)
    db.session.add(webhook)
    db.session.flush()
    audit.record("create", resource="core.webhook", record_id=webhook.id, summary=webhook.name,
                 changes=audit.diff({}, _snapshot(webhook)), actor=actor)
    return webhook, secret


def update(actor, webhook_id: int, data: dict) -> Webhook:
    """Change name, URL, events or the active switch (the secret only changes by ``rotate_secret``)."""
    webhook = get(actor, webhook_id)
    clean = load(WebhookIn(), data, partial=True)
    before = _snapshot(webhook)
    for field, value in clean.items():
        setattr(webhook, field, value)
    if clean.get("active"):
        webhook.disabled_reason = None
    changes = audit.diff(before, _snapshot(webhook))
    if changes:
        audit.record("update", resource="core.webhook", record_id=webhook.id, summary=webhook.name,
                     changes=changes, actor=actor)
    db.session.flush()
    return webhook


def remove(actor, webhook_id: int) -> None:
    """Delete a subscription and its delivery log; deliveries not yet sent are dropped."""
    webhook = get(actor, webhook_id)
    audit.record("delete", resource="core.webhook", record_id=webhook.id, summary=webhook.name,
                 changes=audit.diff(_snapshot(webhook), {}), actor=actor)
    db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    db.session.delete(webhook)
    db.session.flush()


def rotate_secret(actor, webhook_id: int) -> tuple[Webhook, str]:
    """Replace the signing secret; the new one is returned once. Deliveries from now on use it."""
    webhook = get(actor, webhook_id)
    secret = new_secret()
    webhook.secret = secret
    audit.record("rotate_secret", resource="core.webhook", record_id=webhook.id, summary=webhook.name, actor=actor)
    db.session.flush()
    return webhook, secret


def replay(actor, delivery_pk: int) -> WebhookDelivery:
    """Send a delivery again soon, with the same delivery id and a fresh set of attempts."""
    delivery = get_delivery(actor, delivery_pk)
    previous = delivery.status
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, clock.now()
    delivery.locked_until = delivery.claim_token = None
    audit.record("replay", resource="core.webhook", record_id=delivery.webhook_id,
                 summary=f"{delivery.event} {delivery.delivery_id}", changes={"status": [previous, "pending"]},
                 actor=actor)
    db.session.flush()
    return delivery


def ping(actor, webhook_id: int) -> WebhookDelivery:
    """Queue a ``ping`` delivery (the caller may send it at once with ``sender.attempt``)."""
    webhook = get(actor, webhook_id)
    delivery = WebhookDelivery(delivery_id=str(uuid.uuid4()), webhook_id=webhook.id, event="ping",
                               payload={"webhook_id": webhook.id, "name": webhook.name}, status="pending",
                               next_attempt_at=clock.now(), created_at=clock.now())
    db.session.add(delivery)
    audit.record("ping", resource="core.webhook", record_id=webhook.id, summary=delivery.delivery_id, actor=actor)
    db.session.flush()
    return delivery


def deliveries_query(webhook_id: int, status: str | None = None):
    """The delivery log of one subscription, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return query.order_by(WebhookDelivery.id.desc())
