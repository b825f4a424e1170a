"""``core_todo``: one row per (plugin, source key, assignee), written only by ``core.inbox``."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import JSONType, TimestampMixin, UTCDateTime

KINDS = ("approval", "task", "cc", "reminder", "mention")
STATUSES = ("open", "done", "cancelled")


class Todo(TimestampMixin, db.Model):
    """An item in someone's inbox. *Overdue* is not stored: it is ``open and due_at < now``."""

    __tablename__ = "core_todo"
    __table_args__ = (
        UniqueConstraint("plugin", "source_key", "assignee_id", name="uq_core_todo_source_assignee"),
        Index("ix_core_todo_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_core_todo_assignee_status_done", "assignee_id", "status", "done_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plugin: Mapped[str] = mapped_column(String(50), nullable=False)
    source_key: Mapped[str] = mapped_column(String(200), nullable=False)
    assignee_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    url: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    subject_type: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What the source plugin wants API clients to have with the item (e.g. ``{"task_id": 7}`` so an
    #: app can act on an approval task directly); small, JSON, never read by the core.
    extra: Mapped[dict | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))

    def is_overdue(self, now: datetime) -> bool:
        return self.status == "open" and self.due_at is not None and self.due_at < now

    def __repr__(self) -> str:
        return f"<Todo {self.id} {self.plugin}:{self.source_key} -> {self.assignee_id} {self.status}>"
