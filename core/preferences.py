"""Per-user preferences (list columns, filters remembered between visits), kept in the database
so that every app server sees the same."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import JSONType


class UserPreference(db.Model):
    __tablename__ = "core_user_pref"

    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(150), primary_key=True)
    value: Mapped[object] = mapped_column(JSONType, nullable=True)


def get_preference(user, key: str, default=None):
    """``user``'s stored value for ``key``, or ``default``."""
    value = db.session.scalar(select(UserPreference.value).where(
        UserPreference.user_id == user.id, UserPreference.key == key))
    return default if value is None else value


def set_preference(user, key: str, value) -> None:
    """Store ``value`` for ``user`` under ``key`` in the caller's transaction."""
    row = db.session.get(UserPreference, (user.id, key))
    if row is None:
        db.session.add(UserPreference(user_id=user.id, key=key, value=value))
    else:
        row.value = value
