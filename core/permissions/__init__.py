"""Who may do what, enforced in SQL.

Roles grant permissions ``<plugin>.<resource>.<action>``, each with a record scope (``own``,
``department``, ``department_tree``, ``all``); a user with several roles gets the widest scope.
``scope_filter`` turns that into one SQLAlchemy expression which every list, detail, search,
export, count and API call adds to its query: rows outside it are never loaded, so an
out-of-scope id is simply not found (404). System administrators (role ``admin``) may do
everything. Grants, field rules and the department subtree a ``department_tree`` scope covers are
cached per process under a stamp every change moves (``core.permissions.cache``); changes apply
from the next request on, on every server.
"""
from __future__ import annotations

from sqlalchemy import false, or_, select, true

from core.errors import Forbidden
from core.permissions import cache
from core.extensions import db
from core.org.models import Department, user_roles
from core.permissions.models import FIELD_RULES, SCOPES, FieldRule, RoleGrant

__all__ = ["SCOPES", "FIELD_RULES", "grants", "scope_of", "can", "require", "scope_filter", "widest"]

_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}


def widest(scopes) -> str | None:
    """The widest of ``scopes`` (``None`` when there is none)."""
    scopes = [s for s in scopes if s in _RANK]
    return max(scopes, key=_RANK.__getitem__) if scopes else None


def _cached(key, compute):
    return cache.cached(key, compute)


def grants(user) -> dict[str, str]:
    """``{permission: widest scope}`` over all of ``user``'s roles (one query per request)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return {}

    def compute():
        result: dict[str, str] = {}
        for _role_id, permission, scope in grant_rows(user):
            result[permission] = widest([result.get(permission), scope])
        return result

    return _cached(("grants", user.id), compute)


def grant_rows(user) -> list[tuple[int, str, str]]:
    """``(role_id, permission, scope)`` for every grant of ``user``'s roles (one query per request)."""

    def compute():
        return db.session.execute(
            select(RoleGrant.role_id, RoleGrant.permission, RoleGrant.scope)
            .join(user_roles, user_roles.c.role_id == RoleGrant.role_id)
            .where(user_roles.c.user_id == user.id)
        ).all()

    return _cached(("grant_rows", user.id), compute)


def scope_of(user, permission: str) -> str | None:
    """The record scope ``user`` has for ``permission``; ``None`` when not granted."""
    if user is not None and getattr(user, "is_authenticated", False) and user.is_admin:
        return "all"
    return grants(user).get(permission)


def can(user, permission: str) -> bool:
    """True when ``user`` holds ``permission`` in any scope."""
    return scope_of(user, permission) is not None


def require(user, permission: str) -> str:
    """The scope ``user`` has for ``permission``, or ``Forbidden``."""
    scope = scope_of(user, permission)
    if scope is None:
        from flask_babel import gettext as _

        raise Forbidden(_("You do not have permission to do this."))
    return scope


def scope_filter(resource, action: str, user):
    """The SQL condition selecting the rows of ``resource`` that ``user`` may ``action``.

    ``resource`` is a ``Resource`` (or anything with ``model`` and ``permission(action)``); its
    model has ``owner_id`` and ``department_id``. Deny by default: no grant gives ``false()``.
    Whatever the scope, a user's own records are included.
    """
    model = resource.model
    scope = scope_of(user, resource.permission(action))
    if scope is None:
        return false()
    if scope == "all":
        return true()
    own = model.owner_id == user.id
    if scope == "own" or user.department_id is None:
        return own
    if scope == "department":
        return or_(own, model.department_id == user.department_id)
    return or_(own, model.department_id.in_(_subtree_ids(user.department_id)))


def _subtree_ids(department_id: int) -> list[int]:
    """Ids of the department and every department below it (one query per request).

    A list of ids rather than an ``IN (SELECT ...)``: PostgreSQL cannot turn ``owner_id = :me OR
    department_id IN (SELECT ...)`` into a BitmapOr of the two scope indexes and scans the whole
    table instead (see ``python -m bench scoped_list``). Paths hold only digits and slashes, so the
    ``LIKE`` pattern needs no escaping.
    """

    def compute():
        path = select(Department.path).where(Department.id == department_id).scalar_subquery()
        return list(db.session.scalars(
            select(Department.id).where(Department.path.like(path + "%")).order_by(Department.id)))

    return _cached(("subtree", department_id), compute)


def field_rule_rows(resource_key: str, user) -> list[tuple[int, str, str]]:
    """``(role_id, field, rule)`` of ``user``'s roles for ``resource_key`` (one query per request)."""

    def compute():
        return db.session.execute(
            select(FieldRule.role_id, FieldRule.field, FieldRule.rule)
            .join(user_roles, user_roles.c.role_id == FieldRule.role_id)
            .where(user_roles.c.user_id == user.id, FieldRule.resource == resource_key)
        ).all()

    return _cached(("fields", resource_key, user.id), compute)
