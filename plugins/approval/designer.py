"""The flow designer (admin): design a form and its flow as a draft version, publish it, and
simulate it — who would approve what for a given initiator and form values, without a request.

The page is server-rendered; ``static/designer.js`` edits the definition in the browser and posts
it back as one JSON field, which goes through ``services.save_flow`` (the same validation as the
API and the JSON import), so a bad part comes back as a field error with its path.
"""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from core.errors import NotFound, ValidationError
from core.extensions import db
from core.org.models import Role, User
from core.permissions import require
from core.schemas import load
from plugins.approval import engine, forms, schemas, services
from plugins.approval.models import Flow
from plugins.approval.views import form_values

bp = Blueprint("approval_designer", __name__, url_prefix="/approval/designer", template_folder="templates",
               static_folder="static", static_url_path="/static")

BLANK = {"key": "", "name": "", "description": "", "form": [], "nodes": [], "settings": {}}


def _flow(flow_id: int) -> Flow:
    flow = db.session.get(Flow, flow_id) if 0 < flow_id < 2**31 else None
    if flow is None:
        raise NotFound(_("Not found."))
    return flow


def _definition(flow: Flow) -> dict:
    return {"key": flow.key, "name": flow.name, "description": flow.description, "form": flow.form,
            "nodes": flow.nodes, "settings": flow.settings, "subject_type": flow.subject_type}


def _choices() -> dict:
    """What the editor offers in its drop-downs: people and roles (ids and keys, with names)."""
    users = db.session.execute(select(User.id, User.display_name, User.username).where(User.active)
                               .order_by(User.username)).all()
    roles = db.session.execute(select(Role.key, Role.name).order_by(Role.key)).all()
    return {"users": [{"id": u.id, "name": f"{u.display_name} ({u.username})"} for u in users],
            "roles": [{"key": r.key, "name": r.name} for r in roles]}


def _render(definition: dict, flow: Flow | None, errors: dict, status: int = 200):
    return render_template("approval/designer.html", definition=definition, flow=flow, errors=errors,
                           choices=_choices(), field_types=forms.FIELD_TYPES), status


@bp.get("/new")
@login_required
def new():
    require(current_user, "approval.flow.manage")
    return _render(BLANK, None, {})


@bp.get("/<int:flow_id>")
@login_required
def edit(flow_id: int):
    require(current_user, "approval.flow.manage")
    flow = _flow(flow_id)
    return _render(_definition(flow), flow, {})


@bp.post("/save")
@login_required
def save():
    """Save the posted definition as a new draft version (``publish=1``: and publish it)."""
    require(current_user, "approval.flow.manage")
    text = request.form.get("definition", "")
    base = request.form.get("flow_id", "")
    flow = _flow(int(base)) if base.isdigit() and len(base) < 11 else None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _render(BLANK if flow is None else _definition(flow), flow,
                       {"definition": [_("Not valid JSON.")]}, 422)
    data.pop("publish", None)
    try:
        saved = services.save_flow(current_user, {**load(schemas.FlowIn(), data),
                                                  "publish": request.form.get("publish") == "1"})
    except ValidationError as exc:
        db.session.rollback()
        return _render(data, flow, exc.fields, 422)
    db.session.commit()
    flash(_("Saved as version %(version)s (%(status)s).", version=saved.version,
            status=_("published") if saved.status == "published" else _("draft")), "success")
    return redirect(url_for("approval_designer.edit", flow_id=saved.id))


@bp.route("/<int:flow_id>/simulate", methods=["GET", "POST"])
@login_required
def simulate(flow_id: int):
    """Pick an initiator, fill in the form: see the path without creating a request."""
    require(current_user, "approval.flow.manage")
    flow = _flow(flow_id)
    errors, values, result, initiator_id = {}, {}, None, None
    if request.method == "POST":
        raw = request.form.get("initiator_id", "")
        initiator_id = int(raw) if raw.isdigit() and len(raw) < 11 else raw
        values = form_values(flow.form, request.form)
        try:
            result = services.simulate(current_user, flow.id, initiator_id, values)
        except ValidationError as exc:
            errors = exc.fields
        db.session.rollback()  # a simulation writes nothing; make sure of it
    users = db.session.scalars(select(User).where(User.active).order_by(User.username)).all()
    ids = set()
    for step in (result or {}).get("steps", []):
        ids |= {u for u, _reason in step.get("assignees", [])} | set(step.get("admins", [])) | set(step.get("cc", []))
    people = {u.id: u for u in users if u.id in ids}
    return render_template("approval/simulate.html", flow=flow, errors=errors, values=values, users=users,
                           result=result, initiator_id=initiator_id, people=people,
                           nodes={k: n.get("name") or k for k, n in engine.node_map(flow).items()}), \
        422 if errors else 200
