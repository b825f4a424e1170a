"""Logged-out session ids: a cookie copied before its logout is refused on every server."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime


class RevokedSession(db.Model):
    """A logged-out session id, kept until the session could have expired anyway."""

    __tablename__ = "core_revoked_session"

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
