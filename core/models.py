"""Shared model mixins: every business table is built from these.

- ``TimestampMixin``: ``created_at`` / ``updated_at`` in UTC.
- ``CreatedByMixin``: who created the row.
- ``OwnedMixin``: ``owner_id`` and ``department_id``, the two columns record scopes filter on,
  each indexed together with ``updated_at`` (the order every list uses).
- ``VersionedMixin``: a ``version`` counter; SQLAlchemy refuses a stale UPDATE and
  ``check_version`` turns a client's stale version into a 409.
- ``CustomFieldsMixin``: a JSON ``custom`` column (JSONB on PostgreSQL) for admin-defined fields.

``reserve_ids`` hands out primary keys ahead of a bulk insert.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, TypeDecorator, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from core import clock
from core.errors import Conflict

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every engine.

    PostgreSQL keeps the offset (``timestamptz``); SQLite keeps none, so values are converted to
    UTC on the way in and marked UTC on the way out. A naive datetime is a bug and is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use core.clock.now() or an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now, nullable=False)


class CreatedByMixin:
    @declared_attr
    def created_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), nullable=True)


class OwnedMixin(TimestampMixin):
    """Owner and department of a record: what ``own`` / ``department`` scopes filter on."""

    @declared_attr
    def owner_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), nullable=True)

    @declared_attr
    def department_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("core_department.id", ondelete="SET NULL"), nullable=True)

    @staticmethod
    def scope_indexes(tablename: str) -> tuple[Index, ...]:
        """The list indexes a scoped table needs; put them in the model's ``__table_args__``.

        ``own`` and ``department`` lists read the first two; wide scopes (``all``, a large
        ``department_tree``) page through the third instead of sorting every row they may see.
        """
        return (
            Index(f"ix_{tablename}_owner_updated", "owner_id", "updated_at"),
            Index(f"ix_{tablename}_department_updated", "department_id", "updated_at"),
            Index(f"ix_{tablename}_updated", "updated_at", "id"),
        )


class VersionedMixin:
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:
        return {"version_id_col": cls.version}

    def check_version(self, expected: int | None) -> None:
        """Raise ``Conflict`` when the client read this record at another version than the current."""
        if expected is None:
            return
        if int(expected) != self.version:
            from flask_babel import gettext as _

            raise Conflict(
                _("This record was changed by someone else. Reload it and apply your change again."),
                current_version=self.version,
                updated_at=getattr(self, "updated_at", None) and self.updated_at.isoformat(),
            )


class CustomFieldsMixin:
    custom: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)


def reserve_ids(session, model, count: int) -> list[int] | None:
    """``count`` new primary keys for rows of ``model`` (a model or a table) about to be added; ``None``
    when its key is not one autoincrement integer, or the engine is neither SQLite nor PostgreSQL.

    With the keys set, a flush writes new rows with one multi-row ``INSERT`` instead of one
    statement per row to learn each id (what a bulk import spends half its writing time on).
    PostgreSQL takes them from the key's sequence, which concurrent writers share. SQLite has no
    sequence: the caller must already hold the write lock (have written in this transaction), so
    that ``max(id) + 1`` onwards are the ids SQLite itself would give next.
    """
    table = getattr(model, "__table__", model)
    key = table.autoincrement_column  # the one integer key the database numbers (not one that is also a reference)
    if count <= 0 or key is None:
        return None
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite" and not table.kwargs.get("sqlite_autoincrement"):
        start = (session.scalar(select(func.max(key))) or 0) + 1
        return list(range(start, start + count))
    if dialect == "postgresql":
        sequence = session.scalar(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                  {"table": table.name, "column": key.name})
        if sequence is None:
            return None
        return sorted(session.scalars(text("SELECT nextval(:sequence) FROM generate_series(1, :count)"),
                                      {"sequence": sequence, "count": count}))
    return None
