"""Admin pages for access: a role's permission matrix and field rules, a user's effective
permissions ("why can this user see this?") and the audit log."""
from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta

from flask import Response, current_app, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core import audit
from core.admin.views import bp
from core.audit.models import AuditEntry
from core.auth.access import admin_required
from core.errors import ValidationError
from core.extensions import db
from core.org.models import Role, User
from core.permissions import SCOPES
from core.permissions.models import FIELD_RULES
from core.permissions.services import explain, role_field_rules, role_grants, set_field_rules, set_grants
from core.registry import permissions, resources
from core.resources import ACTIONS



def _scope_label(scope: str) -> str:
    return {"own": _("Own records"), "department": _("Own department"),
            "department_tree": _("Department and below"), "all": _("Everything")}.get(scope, scope)


def _rule_label(rule: str) -> str:
    return {"readonly": _("Read-only"), "masked": _("Masked"), "hidden": _("Hidden")}.get(rule, rule)


@bp.route("/roles/<int:role_id>", methods=["GET", "POST"])
@admin_required
def role_edit(role_id: int):
    role = db.get_or_404(Role, role_id)
    tab = request.args.get("tab", "permissions")
    errors = {}
    if request.method == "POST":
        try:
            if request.form.get("tab") == "fields":
                tab = "fields"
                wanted = {}
                for name, value in request.form.items():
                    if name.startswith("field:"):
                        _prefix, resource, field = name.split(":", 2)
                        wanted[(resource, field)] = value or None
                set_field_rules(current_user, role.id, wanted)
            else:
                wanted = {name.removeprefix("perm:"): value or None
                          for name, value in request.form.items() if name.startswith("perm:")}
                set_grants(current_user, role.id, wanted)
            db.session.commit()
            flash(_("Saved. The change applies from the next request."), "success")
            return redirect(url_for("admin.role_edit", role_id=role.id, tab=tab))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.fields
    return render_template(
        "admin/role_edit.html", role=role, tab=tab, errors=errors,
        matrix=_matrix(), other_permissions=_other_permissions(), grants=role_grants(role),
        field_rules={f"{r}:{f}": rule for (r, f), rule in role_field_rules(role).items()},
        resources=list(resources().values()), scopes=[(s, _scope_label(s)) for s in SCOPES],
        rules=[(r, _rule_label(r)) for r in FIELD_RULES], actions=ACTIONS,
    )


def _matrix() -> list:
    """Resources (rows) by action (columns): the permission name of each cell, or None."""
    return [(resource, [resource.permission(a) if a in resource.actions else None for a in ACTIONS])
            for resource in resources().values()]


def _other_permissions() -> list:
    """Permissions that are not one of a resource's standard actions (custom actions, core ones)."""
    standard = {resource.permission(a) for resource in resources().values() for a in resource.actions}
    return [p for name, p in permissions().items() if name not in standard]


@bp.post("/roles/new")
@admin_required
def role_new():
    key = (request.form.get("key") or "").strip()
    name = (request.form.get("name") or "").strip()
    if not key or not name or not key.replace("_", "").isalnum() or len(key) > 50 or len(name) > 100:
        flash(_("A role needs a key (letters, digits, _) and a name."), "danger")
        return redirect(url_for("admin.roles"))
    if db.session.scalar(select(Role.id).where(Role.key == key)) is not None:
        flash(_("This key is already used."), "danger")
        return redirect(url_for("admin.roles"))
    role = Role(key=key, name=name, builtin=False)
    db.session.add(role)
    db.session.flush()
    audit.record("create", resource="core.role", record_id=role.id, summary=name,
                 changes={"key": [None, key], "name": [None, name]})
    db.session.commit()
    return redirect(url_for("admin.role_edit", role_id=role.id))


@bp.get("/users/<int:user_id>/permissions")
@admin_required
def user_permissions(user_id: int):
    user = db.get_or_404(User, user_id)
    rows = explain(user)
    labels = permissions()
    for row in rows:
        row["label"] = str(labels[row["permission"]].label) if row["permission"] in labels else row["permission"]
        row["scope_label"] = _scope_label(row["scope"])
    return render_template("admin/user_permissions.html", user=user, rows=rows)


# Audit log ---------------------------------------------------------------------------------------

AUDIT_ACTIONS = ("create", "update", "delete", "login", "login_failed", "logout", "password_change",
                 "permission_change", "export", "import")


def _audit_query(args):
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if actor := (args.get("actor") or "").strip():
        query = query.where(AuditEntry.actor_name == actor)
    if (action := args.get("action")) in AUDIT_ACTIONS:
        query = query.where(AuditEntry.action == action)
    if resource := (args.get("resource") or "").strip():
        query = query.where(AuditEntry.resource == resource)
    if record_id := args.get("record_id", type=int):
        query = query.where(AuditEntry.record_id == record_id)
    for name, op in (("since", "ge"), ("until", "lt")):
        raw = args.get(name)
        if not raw:
            continue
        try:
            day = datetime.combine(datetime.strptime(raw, "%Y-%m-%d").date(), time.min)
        except ValueError:
            continue
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(current_user.timezone or current_app.config["YITI"]["DEFAULT_TIMEZONE"])
        moment = day.replace(tzinfo=zone) + (timedelta(days=1) if op == "lt" else timedelta())
        query = query.where(AuditEntry.at >= moment if op == "ge" else AuditEntry.at < moment)
    return query


@bp.get("/audit")
@admin_required
def audit_log():
    page = db.paginate(_audit_query(request.args), per_page=50, error_out=False, max_per_page=50)
    filters = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("admin/audit.html", page=page, actions=AUDIT_ACTIONS, args=request.args, filters=filters,
                           resources=sorted({"core.user", "core.department", "core.role", *resources()}))


@bp.get("/audit/export.csv")
@admin_required
def audit_export():
    query = _audit_query(request.args)
    audit.record("export", resource="core.audit", summary="audit log",
                 changes={"filters": dict(request.args.items())})
    db.session.commit()

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(["id", "at", "actor", "address", "action", "resource", "record_id", "summary", "changes"])
        for batch in db.session.scalars(query.execution_options(yield_per=1000)).partitions():
            for e in batch:
                writer.writerow([e.id, e.at.isoformat(), e.actor_name, e.address, e.action, e.resource or "",
                                 e.record_id or "", e.summary, audit_changes_text(e.changes)])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'})


def audit_changes_text(changes: dict) -> str:
    return "; ".join(f"{field}: {pair[0]!s} → {pair[1]!s}" if isinstance(pair, list) and len(pair) == 2
                     else f"{field}: {pair!s}" for field, pair in (changes or {}).items())
