"""Personal API tokens: ``Authorization: Bearer yiti_...`` for scripts and integrations.

A token is a random secret shown to its owner once; only its SHA-256 is stored (a fast hash is
right for 256 random bits: there is nothing to guess, unlike a password). A token carries its
owner's permissions unchanged, narrowed by its scope: ``read`` tokens may only read. Tokens
expire (90 days unless chosen otherwise), can be revoked, and record when they were last used.

The request side (which requests a token authenticates, CSRF, scope) is in ``core.auth.sessions``.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import lru_cache

from flask_babel import gettext as _, lazy_gettext as _l
from marshmallow import fields, validate
from sqlalchemy import CheckConstraint, ForeignKey, String, bindparam, select
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from core import audit, clock
from core.errors import NotFound
from core.extensions import db
from core.models import UTCDateTime
from core.org.models import User
from core.org.schemas import INT32, Text
from core.permissions import cache as permission_cache
from core.schemas import Schema, length, load

__all__ = [
    "ApiToken", "SCOPES", "SAFE_METHODS", "active_token", "authenticate_token", "create_token", "hash_token",
    "list_tokens", "revoke_token",
]

TOKEN_PREFIX = "yiti_"
SCOPES = ("read", "read-write")
SCOPE_LABELS = {"read": _l("Read only"), "read-write": _l("Read and write")}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 365
LAST_USED_RESOLUTION = timedelta(seconds=60)  # write last_used_at at most once a minute, not per request
SHOWN_CHARS = len(TOKEN_PREFIX) + 8  # how much of a token its owner sees again, to recognise it
MAX_TOKEN_LENGTH = 200  # longer Authorization values are not ours: refused before hashing


class ApiToken(db.Model):
    __tablename__ = "core_api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True, index=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default="read")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: never expires
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (CheckConstraint("scope IN ('read', 'read-write')", name="scope"),)

    @property
    def status(self) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= clock.now():
            return "expired"
        return "active"

    @property
    def can_write(self) -> bool:
        return self.scope == "read-write"

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.prefix}… user={self.user_id}>"


# Schemas ----------------------------------------------------------------------------------------

EXPIRY_RANGE = validate.Range(min=1, max=MAX_EXPIRY_DAYS, error=_l("Enter a number between {min} and {max}."))


class TokenIn(Schema):
    """A new token's settings. ``expires_in_days`` null means the token never expires."""

    name = Text(required=True, validate=length(100, 1))
    scope = fields.String(load_default="read", validate=validate.OneOf(SCOPES, error=_l("Choose read or read-write.")))
    expires_in_days = fields.Integer(load_default=DEFAULT_EXPIRY_DAYS, allow_none=True, strict=False,
                                     validate=EXPIRY_RANGE)


class TokenRequestIn(TokenIn):
    """``POST /api/v1/auth/tokens``: the account's credentials plus the new token's settings."""

    username = Text(required=True, validate=length(64, 1))
    password = Text(required=True, validate=length(1024, 1))


class TokenOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    scope = fields.String()
    status = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


# Services ---------------------------------------------------------------------------------------


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(user: User, name: str, scope: str = "read",
                 expires_in_days: int | None = DEFAULT_EXPIRY_DAYS) -> tuple[ApiToken, str]:
    """A new token for ``user``: the row and the plaintext, which is never available again."""
    name = name.strip() if isinstance(name, str) else name
    clean = load(TokenIn(), {"name": name, "scope": scope, "expires_in_days": expires_in_days})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    days = clean["expires_in_days"]
    token = ApiToken(
        user_id=user.id,
        name=clean["name"],
        prefix=raw[:SHOWN_CHARS],
        token_hash=hash_token(raw),
        scope=clean["scope"],
        created_at=now,
        expires_at=now + timedelta(days=days) if days is not None else None,
    )
    db.session.add(token)
    db.session.flush()
    audit.record("token_create", resource="core.user", record_id=user.id, actor=user,
                 summary=_summary(token),
                 changes={"name": [None, token.name], "scope": [None, token.scope],
                          "expires_at": [None, token.expires_at]})
    return token, raw


def _summary(token: ApiToken) -> str:
    """How the audit log names a token: its name, id and the part its owner sees (never the secret)."""
    return f"{token.name} #{token.id} ({token.prefix}…)"


def list_tokens(user: User) -> list[ApiToken]:
    """The user's own tokens, newest first (revoked and expired ones too: they explain past use)."""
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    return list(db.session.scalars(query))


def revoke_token(actor: User, token_id: int) -> ApiToken:
    """Revoke a token of ``actor`` (administrators: anyone's). Another user's token is a 404.

    Revoking a revoked token changes nothing and records nothing.
    """
    query = select(ApiToken).where(ApiToken.id == token_id) if 0 < token_id <= INT32 else None
    if query is not None and not actor.is_admin:
        query = query.where(ApiToken.user_id == actor.id)
    token = db.session.scalar(query) if query is not None else None
    if token is None:
        raise NotFound(_("Not found."))
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        audit.record("token_revoke", resource="core.user", record_id=token.user_id, actor=actor,
                     summary=_summary(token), changes={"revoked_at": [None, token.revoked_at]})
        db.session.flush()
    return token


@lru_cache(maxsize=1)
def _token_query():
    """The token with its owner, the owner's roles and the permission stamp, by hash (built once)."""
    return (select(ApiToken, permission_cache.stamp_column())
            .options(joinedload(ApiToken.user).joinedload(User.roles))
            .where(ApiToken.token_hash == bindparam("token_hash")))


def active_token(raw: str) -> ApiToken | None:
    """The token ``raw`` names when it is valid now (not expired or revoked, owner active), else None.

    Marks it used (at most once a minute, so a busy script does not write on every request);
    the caller commits.
    """
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > MAX_TOKEN_LENGTH or not raw.isascii():
        return None
    # One round trip: the token, its owner with the owner's roles, and the permission stamp
    # (which the session loader reads with the user, too).
    rows = db.session.execute(_token_query(), {"token_hash": hash_token(raw)}).unique().all()
    if not rows:
        return None
    token, stamp = rows[0]
    if token.status != "active" or not token.user.active:
        return None
    permission_cache.remember_stamp(stamp)
    now = clock.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return token


def authenticate_token(raw: str) -> User | None:
    """The active user a valid token belongs to, or None."""
    token = active_token(raw)
    return token.user if token is not None else None
