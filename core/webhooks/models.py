"""Webhook subscriptions and their deliveries (one row per event and subscription)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.crypto import EncryptedText
from core.extensions import db
from core.models import JSONType, UTCDateTime

DELIVERY_STATUSES = ("pending", "failed", "delivered", "dead")
DUE_STATUSES = ("pending", "failed")  # pending: not tried yet; failed: waiting for its next try


class Webhook(db.Model):
    """An admin's subscription: POST these events, signed with ``secret``, to ``url``."""

    __tablename__ = "core_webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    events: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)  # event names, or ["*"]
    secret: Mapped[str] = mapped_column(EncryptedText, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))  # set when the receiver answered 410 Gone
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now, onupdate=clock.now)

    def wants(self, event: str) -> bool:
        return "*" in self.events or event in self.events

    def __repr__(self) -> str:
        return f"<Webhook {self.id} {self.name}>"


class WebhookDelivery(db.Model):
    """One event for one subscription: its id (the receiver's idempotency key), state and last answer."""

    __tablename__ = "core_webhook_delivery"
    __table_args__ = (
        UniqueConstraint("message_id", "webhook_id", name="uq_core_webhook_delivery_message"),
        Index("ix_core_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_core_webhook_delivery_webhook", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("core_webhook.id", ondelete="CASCADE"), nullable=False)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("core_outbox.id", ondelete="CASCADE"))  # None: a ping
    event: Mapped[str] = mapped_column(String(100), nullable=False)
    payload: Mapped[dict | None] = mapped_column(JSONType)  # only for pings; events read the outbox row
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    response_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)  # the first KB of the last answer
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<WebhookDelivery {self.delivery_id} {self.event} {self.status}>"
