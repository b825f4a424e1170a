"""``core_attachment``: one row per file attached to a record; the bytes live in the storage."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import db
from core.models import UTCDateTime


class Attachment(db.Model):
    """A file attached to the record ``(resource, record_id)``.

    ``sha256`` names the content in the storage (``ab/cd/<sha256>``): two uploads of the same
    bytes share one stored file. ``filename`` is the original name, shown and offered on download,
    never used as a path. A removed attachment keeps its row (``deleted_at``) for the audit trail.
    """

    __tablename__ = "core_attachment"
    __table_args__ = (Index("ix_core_attachment_record", "resource", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(100), nullable=False)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
