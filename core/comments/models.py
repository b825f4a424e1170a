"""``core_comment``: the discussion thread under a record's History tab."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import db
from core.models import UTCDateTime


class Comment(db.Model):
    """A comment on the record ``(resource, record_id)``; the body is plain text, escaped when shown."""

    __tablename__ = "core_comment"
    __table_args__ = (Index("ix_core_comment_record", "resource", "record_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(100), nullable=False)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), index=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, nullable=False)
