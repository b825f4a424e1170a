"""Settings an admin changes at run time, kept in the database so every app server sees the same."""
from __future__ import annotations

from datetime import datetime

from flask import g, has_request_context
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import db
from core.models import JSONType, UTCDateTime

PLUGINS_KEY = "plugins.enabled"


class SiteSetting(db.Model):
    __tablename__ = "core_setting"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[object] = mapped_column(JSONType, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))


def _missing() -> set:
    """Keys found unset in this request: a stored row stays in the session's identity map, but a
    missing one would be asked for again on every call (once per row of an import)."""
    return g.setdefault("_yiti_missing_settings", set()) if has_request_context() else set()


def get_setting(key: str, default=None):
    """The stored value of ``key``, or ``default`` when it was never set."""
    missing = _missing()
    if key in missing:
        return default
    row = db.session.get(SiteSetting, key)
    if row is None:
        missing.add(key)
        return default
    return row.value


def set_setting(key: str, value, by_id: int | None = None) -> None:
    """Store ``value`` under ``key`` in the caller's transaction."""
    _missing().discard(key)
    row = db.session.get(SiteSetting, key)
    if row is None:
        db.session.add(SiteSetting(key=key, value=value, updated_by_id=by_id))
    else:
        row.value = value
        row.updated_by_id = by_id


def read_before_schema(key: str):
    """Read a setting at start-up, when the table may not exist yet (fresh database): ``None`` then."""
    try:
        with db.engine.connect() as conn:
            return conn.execute(select(SiteSetting.value).where(SiteSetting.key == key)).scalar_one_or_none()
    except (OperationalError, ProgrammingError):
        return None
