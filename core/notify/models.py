"""Notification tables: the in-app centre, per-channel deliveries, group robots and SMTP settings."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.crypto import EncryptedText
from core.extensions import db
from core.models import JSONType, TimestampMixin, UTCDateTime

#: What a notification is about: the inbox kinds, plus ``notice`` for plugins' plain messages.
KINDS = ("approval", "task", "cc", "reminder", "mention", "notice")
#: Channels a user chooses per kind; the in-app centre is always on.
CHANNELS = ("email", "robot")
PLATFORMS = ("dingtalk", "wecom", "feishu")
DELIVERY_STATUSES = ("pending", "sent", "folded", "dead")


class Notification(db.Model):
    """One message in a user's notification centre (the bell)."""

    __tablename__ = "core_notification"
    __table_args__ = (
        Index("ix_core_notification_recipient_read", "recipient_id", "read_at"),
        Index("ix_core_notification_recipient_id", "recipient_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    url: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Notification {self.id} {self.kind} -> {self.recipient_id}>"


class Delivery(db.Model):
    """One notification on its way through one channel (an e-mail, or a post by one robot).

    ``pending`` rows are swept by the worker (``core.notify.sweep``); ``sent`` ones went out,
    ``folded`` ones went out inside another row's digest message, ``dead`` ones will not be tried
    again (a configuration error, or ``OUTBOX_MAX_ATTEMPTS`` failures).
    """

    __tablename__ = "core_notification_delivery"
    __table_args__ = (
        Index("ix_core_notification_delivery_due", "status", "next_attempt_at"),
        Index("ix_core_notification_delivery_robot_sent", "robot_id", "status", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("core_notification.id", ondelete="CASCADE"),
                                                 nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)  # email | robot
    robot_id: Mapped[int | None] = mapped_column(ForeignKey("core_robot.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<Delivery {self.id} {self.channel}:{self.robot_id} {self.status}>"


class Robot(TimestampMixin, db.Model):
    """A group robot (DingTalk, WeCom, Feishu) that posts chosen kinds for a department, or for all.

    The webhook URL carries the robot's credential (access token, key), so it is encrypted like
    the signing secret; neither is ever logged or shown in full.
    """

    __tablename__ = "core_robot"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    platform: Mapped[str] = mapped_column(String(20), nullable=False)
    webhook_url: Mapped[str] = mapped_column(EncryptedText, nullable=False)
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    keyword: Mapped[str | None] = mapped_column(String(50))
    kinds: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("core_department.id", ondelete="CASCADE"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # one sweeper per robot at a time
    claim_token: Mapped[str | None] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"<Robot {self.id} {self.platform} {self.name}>"


class MailSettings(db.Model):
    """The SMTP server notifications are sent through: one row (``id = 1``), edited by an admin."""

    __tablename__ = "core_mail_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    port: Mapped[int] = mapped_column(Integer, nullable=False, default=587)
    security: Mapped[str] = mapped_column(String(10), nullable=False, default="starttls")  # none | starttls | ssl
    username: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str | None] = mapped_column(EncryptedText)
    sender: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    base_url: Mapped[str | None] = mapped_column(String(255))  # the portal's address, for links in messages
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now, onupdate=clock.now)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
