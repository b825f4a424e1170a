"""Outbound webhooks: subscriptions per event type, signed JSON POSTs, retries, a delivery log, replay.

An administrator subscribes a URL to event types (``*`` for all) declared with
``register_event_types``. Every committed event some subscription wants becomes an outbox row;
the outbox delivery ``core.webhooks`` fans it out into one ``core_webhook_delivery`` per
subscription, and the worker's ``core.sweep_webhooks`` job sends them (``core.webhooks.sender``).
The wire format and how a receiver verifies it are in ``docs/webhooks.md``.
"""
from __future__ import annotations

from core.plugins.spec import Delivery
from core.webhooks import sender
from core.webhooks.models import Webhook, WebhookDelivery

__all__ = ["Webhook", "WebhookDelivery", "delivery", "sweep"]


def delivery() -> Delivery:
    """The outbox delivery that turns a committed event into one delivery per subscription."""
    return Delivery("core.webhooks", sender.fan_out, wants=sender.wants)


def sweep() -> dict:
    """The worker's job: send every webhook delivery that is due."""
    return sender.sweep()
