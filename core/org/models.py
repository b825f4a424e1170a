"""Departments, users and roles."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extensions import db
from core.models import TimestampMixin, UTCDateTime, VersionedMixin

user_roles = Table(
    "core_user_role",
    db.metadata,
    Column("user_id", ForeignKey("core_user.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("core_role.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Department(TimestampMixin, VersionedMixin, db.Model):
    """A node of the organisation tree.

    ``path`` is the materialized path of ids, ``/1/4/9/``: a subtree is ``path LIKE '/1/4/%'``,
    one indexed range scan, which is what ``department_tree`` record scopes use.
    """

    __tablename__ = "core_department"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    code: Mapped[str | None] = mapped_column(String(50), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("core_department.id", ondelete="RESTRICT"), index=True)
    path: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    head_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL", use_alter=True), nullable=True
    )
    sort: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    parent: Mapped[Department | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Department]] = relationship(back_populates="parent", order_by="Department.sort, Department.id")
    head: Mapped[User | None] = relationship(foreign_keys=[head_id])

    __table_args__ = (
        # varchar_pattern_ops lets PostgreSQL use the index for LIKE '/1/4/%' under any collation.
        db.Index("ix_core_department_path", "path", postgresql_ops={"path": "varchar_pattern_ops"}),
    )

    @property
    def depth(self) -> int:
        return self.path.count("/") - 2

    def __repr__(self) -> str:
        return f"<Department {self.id} {self.name}>"


class Role(TimestampMixin, db.Model):
    """A named set of permission grants (the grants arrive with the permissions module)."""

    __tablename__ = "core_role"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    builtin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    @property
    def label(self) -> str:
        """A built-in role's name in the reader's language; a custom role's name as the admin typed it."""
        from core.org.roles import DEFAULT_ROLES

        return str(dict(DEFAULT_ROLES).get(self.key, self.name)) if self.builtin else self.name


class User(TimestampMixin, VersionedMixin, db.Model):
    """A person who logs in. ``session_epoch`` grows when the password changes, ending other sessions."""

    __tablename__ = "core_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_department.id", ondelete="SET NULL"), index=True
    )
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), index=True)
    language: Mapped[str | None] = mapped_column(String(10))
    timezone: Mapped[str] = mapped_column(String(50), nullable=False, default="Asia/Shanghai")
    session_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    department: Mapped[Department | None] = relationship(foreign_keys=[department_id])
    manager: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[manager_id])
    roles: Mapped[list[Role]] = relationship(secondary=user_roles, order_by=Role.key, lazy="selectin")

    __table_args__ = (
        # Usernames are case-insensitive: "Admin" and "admin" are one account.
        db.Index("uq_core_user_username_lower", func.lower(username), unique=True),
    )

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """Session identity: id plus epoch, so bumping the epoch logs out every other session."""
        return f"{self.id}:{self.session_epoch}"

    @property
    def role_keys(self) -> set[str]:
        return {role.key for role in self.roles}

    @property
    def is_admin(self) -> bool:
        return "admin" in self.role_keys

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username}>"
