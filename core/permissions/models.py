"""What each role may do: permission grants with a record scope, and field rules."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db

#: Record scopes, narrowest first; a user with several roles gets the widest.
SCOPES = ("own", "department", "department_tree", "all")
#: Field rules, least restrictive first; a user with several roles gets the least restrictive.
FIELD_RULES = ("readonly", "masked", "hidden")


class RoleGrant(db.Model):
    """Role ``role_id`` may do ``permission`` (``<plugin>.<resource>.<action>``) on records in ``scope``."""

    __tablename__ = "core_role_grant"
    __table_args__ = (UniqueConstraint("role_id", "permission"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("core_role.id", ondelete="CASCADE"), nullable=False, index=True)
    permission: Mapped[str] = mapped_column(String(150), nullable=False)
    scope: Mapped[str] = mapped_column(String(20), nullable=False, default="all")


class FieldRule(db.Model):
    """For role ``role_id``, ``field`` of ``resource`` (``<plugin>.<resource>``) is hidden, masked or read-only."""

    __tablename__ = "core_field_rule"
    __table_args__ = (UniqueConstraint("role_id", "resource", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("core_role.id", ondelete="CASCADE"), nullable=False, index=True)
    resource: Mapped[str] = mapped_column(String(100), nullable=False)
    field: Mapped[str] = mapped_column(String(100), nullable=False)
    rule: Mapped[str] = mapped_column(String(20), nullable=False)
