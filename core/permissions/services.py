"""Changing what roles may do: role templates, grants, field rules. Every change is audited."""
from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, select

from core import audit
from core.errors import Forbidden, NotFound, ValidationError
from core.extensions import db
from core.org.models import Role, User
from core.org.roles import ensure_default_roles
from core.permissions import SCOPES, grant_rows, widest
from core.permissions.models import FIELD_RULES, FieldRule, RoleGrant
from core.site_settings import get_setting, set_setting

APPLIED_KEY = "roles.templates_applied"


def _require_role_admin(actor) -> None:
    if actor is not None and not actor.is_admin:
        raise Forbidden(_("Only administrators can change roles."))


def templates() -> list:
    """Every enabled plugin's role templates (the core's own included)."""
    return current_app.extensions["plugins"].collect("register_roles")


def apply_role_templates() -> int:
    """Create the template roles and add each template grant and field rule once; returns how many.

    What was applied is remembered, so a grant an admin later removed is not brought back.
    """
    roles = {role.key: role for role in ensure_default_roles()}
    applied = set(get_setting(APPLIED_KEY) or [])
    added = 0
    for template in sorted(templates(), key=lambda t: t.key):
        role = roles.get(template.key) or db.session.scalar(select(Role).where(Role.key == template.key))
        if role is None:
            role = Role(key=template.key, name=str(template.label or template.key), builtin=True)
            db.session.add(role)
            db.session.flush()
        roles[template.key] = role
        existing = {g.permission: g for g in db.session.scalars(select(RoleGrant).where(RoleGrant.role_id == role.id))}
        for permission, scope in sorted(template.grants.items()):
            marker = f"{template.key}:{permission}"
            if marker in applied:
                continue
            applied.add(marker)
            if permission in existing:
                existing[permission].scope = widest([existing[permission].scope, scope])
            else:
                db.session.add(RoleGrant(role_id=role.id, permission=permission, scope=scope))
            added += 1
        for resource, field, rule in template.field_rules:
            marker = f"{template.key}:{resource}.{field}:{rule}"
            if marker in applied:
                continue
            applied.add(marker)
            current = db.session.scalar(select(FieldRule).where(
                FieldRule.role_id == role.id, FieldRule.resource == resource, FieldRule.field == field))
            if current is None:
                db.session.add(FieldRule(role_id=role.id, resource=resource, field=field, rule=rule))
            added += 1
    set_setting(APPLIED_KEY, sorted(applied))
    db.session.flush()
    return added


def role_grants(role: Role) -> dict[str, str]:
    """``{permission: scope}`` of one role."""
    return dict(db.session.execute(
        select(RoleGrant.permission, RoleGrant.scope).where(RoleGrant.role_id == role.id)).all())


def role_field_rules(role: Role) -> dict[tuple[str, str], str]:
    """``{(resource, field): rule}`` of one role."""
    rows = db.session.execute(select(FieldRule.resource, FieldRule.field, FieldRule.rule)
                              .where(FieldRule.role_id == role.id)).all()
    return {(resource, field): rule for resource, field, rule in rows}


def set_grants(actor, role_id: int, grants: dict[str, str | None]) -> dict:
    """Replace a role's grants with ``grants`` (``{permission: scope}``; ``None``/absent: not granted).

    Unknown permissions and scopes are field errors. The change is audited with old → new scopes.
    """
    _require_role_admin(actor)
    role = _role(role_id)
    known = current_app.extensions["yiti.permissions"]
    errors = {}
    wanted = {}
    for permission, scope in grants.items():
        if permission not in known:
            errors[permission] = [_("Unknown permission.")]
        elif scope in (None, "", "none"):
            continue
        elif scope not in SCOPES:
            errors[permission] = [_("Choose one of: %(choices)s", choices=", ".join(SCOPES))]
        else:
            wanted[permission] = scope
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    before = role_grants(role)
    db.session.execute(delete(RoleGrant).where(RoleGrant.role_id == role.id))
    db.session.add_all(RoleGrant(role_id=role.id, permission=p, scope=s) for p, s in sorted(wanted.items()))
    changes = audit.diff(before, wanted)
    if changes:
        audit.record("permission_change", resource="core.role", record_id=role.id, summary=role.name,
                     changes=changes, actor=actor)
    db.session.flush()
    return changes


def set_field_rules(actor, role_id: int, rules: dict[tuple[str, str], str | None]) -> dict:
    """Replace a role's field rules with ``rules`` (``{(resource, field): rule}``), audited."""
    _require_role_admin(actor)
    role = _role(role_id)
    resources = current_app.extensions["yiti.resources"]
    errors, wanted = {}, {}
    for (resource, field), rule in rules.items():
        key = f"{resource}.{field}"
        if resource not in resources or field not in resources[resource].schema._declared_fields:
            errors[key] = [_("Unknown field.")]
        elif rule in (None, "", "none"):
            continue
        elif rule not in FIELD_RULES:
            errors[key] = [_("Choose one of: %(choices)s", choices=", ".join(FIELD_RULES))]
        else:
            wanted[(resource, field)] = rule
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    before = {f"{r}.{f}": rule for (r, f), rule in role_field_rules(role).items()}
    db.session.execute(delete(FieldRule).where(FieldRule.role_id == role.id))
    db.session.add_all(FieldRule(role_id=role.id, resource=r, field=f, rule=rule) for (r, f), rule in sorted(wanted.items()))
    changes = audit.diff(before, {f"{r}.{f}": rule for (r, f), rule in wanted.items()})
    if changes:
        audit.record("permission_change", resource="core.role", record_id=role.id, summary=role.name,
                     changes={f"field:{k}": v for k, v in changes.items()}, actor=actor)
    db.session.flush()
    return changes


def explain(user: User) -> list[dict]:
    """Why ``user`` may do what they may: each permission with its scope and the roles granting it."""
    if user.is_admin:
        return [{"permission": name, "scope": "all", "roles": ["admin"]}
                for name in current_app.extensions["yiti.permissions"]]
    roles = {role.id: role for role in user.roles}
    by_permission: dict[str, list[tuple[str, str]]] = {}
    for role_id, permission, scope in grant_rows(user):
        by_permission.setdefault(permission, []).append((roles[role_id].label if role_id in roles else "?", scope))
    return [{"permission": name, "scope": widest([s for _r, s in pairs]), "roles": sorted(f"{r} ({s})" for r, s in pairs)}
            for name, pairs in sorted(by_permission.items())]


def _role(role_id) -> Role:
    role = db.session.get(Role, role_id)
    if role is None:
        raise NotFound(_("Not found."))
    return role
