"""Grants, field rules and department subtrees, cached across requests and correct across servers.

Reading who may do what costs up to three queries a request (grants, field rules, the subtree of
a ``department_tree`` scope): more than the scoped list query itself. So each process keeps what
it read, keyed by a **stamp**: one counter row (``core_permission_stamp``) that every change to
roles, grants, field rules, role memberships or departments bumps *in the same transaction*. A
request reads the stamp once (together with the logged-in user, so it costs no extra round trip)
and uses cached answers only if they were read under that same stamp. Another app server's change
commits a new stamp with it, so the next request anywhere reads fresh data: the process keeps a
cache, never state.

Bumps happen in ``before_flush`` (objects added, changed or deleted, and ``User.roles``) and on
ORM bulk ``UPDATE``/``DELETE`` of the watched models, so no service can forget one.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import chain

from flask import current_app, g, has_request_context
from sqlalchemy import BigInteger, event, inspect, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.extensions import db

_BUMPED = "yiti.permissions.bumped"  # session.info: this transaction changed permissions
_CACHE = "yiti.permissions.cache"  # app.extensions: {"stamp": int, "entries": {...}}
_MAX_ENTRIES = 20_000  # a company's users x resources; past this the cache starts over


class PermissionStamp(db.Model):
    """A single row whose ``value`` changes whenever anything that decides permissions does."""

    __tablename__ = "core_permission_stamp"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


@lru_cache(maxsize=1)
def stamp_column():
    """A scalar subquery of the current stamp, to read it along with another row (0 when unset).

    Built once: statements are immutable, and building one costs more than running it cached.
    """
    return select(PermissionStamp.value).where(PermissionStamp.id == 1).scalar_subquery()


def remember_stamp(value) -> None:
    """Record the stamp read for this request (by the user loader)."""
    if has_request_context():
        g._yiti_permission_stamp = int(value or 0)


def _request_stamp() -> int:
    stamp = g.get("_yiti_permission_stamp")
    if stamp is None:
        stamp = g._yiti_permission_stamp = int(db.session.scalar(
            select(PermissionStamp.value).where(PermissionStamp.id == 1)) or 0)
    return stamp


def cached(key, compute):
    """``compute()``'s result, shared by every request of this process under the same stamp.

    Outside a request (CLI, jobs, tests calling services) and in a transaction that itself changed
    permissions, nothing is cached beyond the request.
    """
    if not has_request_context():
        return compute()
    local = g.setdefault("_yiti_permissions", {})
    if key in local:
        return local[key]
    if db.session.info.get(_BUMPED):
        local[key] = value = compute()
        return value
    stamp = _request_stamp()
    shared = current_app.extensions.get(_CACHE)
    if shared is None or shared["stamp"] < stamp or len(shared["entries"]) > _MAX_ENTRIES:
        shared = current_app.extensions[_CACHE] = {"stamp": stamp, "entries": {}}
    if shared["stamp"] == stamp and key in shared["entries"]:
        value = shared["entries"][key]
    else:
        value = compute()
        if shared["stamp"] == stamp:  # an older request (stamp behind the cache) keeps its answer to itself
            shared["entries"][key] = value
    local[key] = value
    return value


def bump(session: Session) -> None:
    """Move the stamp on, in ``session``'s transaction (so a rollback takes the bump back too)."""
    session.info[_BUMPED] = True
    connection = session.connection()
    table = PermissionStamp.__table__
    if connection.dialect.name in ("sqlite", "postgresql"):
        if connection.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(table).values(id=1, value=1)
        statement = statement.on_conflict_do_update(index_elements=[table.c.id],
                                                    set_={"value": table.c.value + 1})
        connection.execute(statement)
        return
    if connection.execute(update(table).where(table.c.id == 1).values(value=table.c.value + 1)).rowcount == 0:
        connection.execute(table.insert().values(id=1, value=1))


def _watched() -> tuple:
    from core.org.models import Department, Role
    from core.permissions.models import FieldRule, RoleGrant

    return (RoleGrant, FieldRule, Role, Department)


def _changes_permissions(session: Session) -> bool:
    from core.org.models import User

    watched = _watched()
    for obj in chain(session.new, session.deleted):
        if isinstance(obj, watched + (User,)):  # a new or deleted user: its id must not inherit a cache
            return True
    for obj in session.dirty:
        if isinstance(obj, watched) and session.is_modified(obj):
            return True
        if isinstance(obj, User) and inspect(obj).attrs.roles.history.has_changes():
            return True
    return False


@event.listens_for(Session, "before_flush")
def _bump_on_flush(session: Session, flush_context, instances) -> None:
    if not session.info.get(_BUMPED) and _changes_permissions(session):
        bump(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_write(state) -> None:
    if (state.is_update or state.is_delete) and not state.session.info.get(_BUMPED):
        mapper = state.bind_mapper
        if mapper is not None and issubclass(mapper.class_, _watched()):
            bump(state.session)


@event.listens_for(Session, "after_transaction_end")
def _forget_bump(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended (commit or rollback)
        session.info.pop(_BUMPED, None)
