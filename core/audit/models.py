"""The audit trail: one append-only row per change that matters."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import db
from core.models import JSONType, UTCDateTime

# BIGINT on PostgreSQL (an audit trail grows forever); SQLite autoincrements only INTEGER keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(db.Model):
    """Who did what, when, from where; ``changes`` maps each field to ``[old, new]``."""

    __tablename__ = "core_audit"
    __table_args__ = (
        Index("ix_core_audit_record", "resource", "record_id", "id"),
        Index("ix_core_audit_actor", "actor_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    address: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    resource: Mapped[str | None] = mapped_column(String(100))
    record_id: Mapped[int | None] = mapped_column(BigId)
    summary: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    changes: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _append_only(_mapper, _connection, target):
    raise RuntimeError("the audit trail is append-only")
