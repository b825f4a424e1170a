"""One row per import: what was read (kept until applied), what the dry run found, what was written."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import db
from core.models import JSONType, UTCDateTime

#: ``checking`` and ``applying`` are the worker's (large files); the rest are where an import rests.
STATUSES = ("checking", "previewed", "applying", "done", "undone", "failed")
ACTIVE = ("checking", "applying")


class Import(db.Model):
    """An import of a file into one resource, from dry run to (perhaps) undo.

    ``data`` holds the uploaded file until the import is applied (so the worker or any app server
    can read it, and it never lives on one server's disk); it and the long lists are loaded only
    when used, so polling the progress stays cheap. ``background``: checked and applied by the
    worker, which moves ``done_rows`` (and ``progress_at``) as it goes; ``error`` says why it failed. ``errors`` are the dry run's
    ``{"row", "field", "message"}``; ``rejects`` the rows skipped when applying, with their reason.
    What undo needs, the records written, is kept one row each in ``ImportChange``.
    """

    __tablename__ = "core_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), nullable=True, index=True)
    filename: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="previewed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    total_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    done_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    to_insert: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    to_update: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    inserted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    headers: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    mapping: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    unknown_columns: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    background: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    errors: Mapped[list] = mapped_column(JSONType, nullable=False, default=list, deferred=True)
    rejects: Mapped[list] = mapped_column(JSONType, nullable=False, default=list, deferred=True)
    not_undone: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)

    @property
    def percent(self) -> int:
        """How far the worker is, 0-100."""
        return min(100, self.done_rows * 100 // self.total_rows) if self.total_rows else 0


class ImportChange(db.Model):
    """A record an applied import wrote: ``kind`` ``insert`` (created) or ``update`` (``before``: the
    values it overwrote), at ``version``. Undo, or a failed import taking back what it committed,
    touches the record only while it is still at that version. Written with each batch of rows
    (one multi-row ``INSERT``), so a 100,000-row import never rewrites a growing list.
    """

    __tablename__ = "core_import_change"
    __table_args__ = (Index("ix_core_import_change_import_id_id", "import_id", "id"),)  # undo reads them in order

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("core_import.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    before: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
