"""Approval pages (发起审批, 我发起的, request detail, flows) and the REST API ``/api/v1/approval``.

Handlers stay thin: parse input, call a service, commit, render.

Files (``core.attachments``, owner ``approval.request``): an ``attachment`` field's value is
``[{"id", "name"}]``. API clients either start with ``multipart/form-data`` (the JSON body as the
part ``payload``, files as parts named by the field key) or start with JSON and then, as the
initiator while the request is running or returned, ``POST /requests/<id>/attachments`` with
``field`` and ``file`` parts. A comment takes files as ``multipart/form-data`` on
``POST /requests/<id>/comments`` (``comment`` and ``files`` parts). ``GET /requests/<id>/attachments``
lists a request's files, ``GET /requests/<id>/attachments/<n>`` downloads one (audited); both are
404 for anyone who may not see the request.
"""
from __future__ import annotations

import json

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import attachments, clock
from core.api.helpers import envelope, json_body, page_args
from core.errors import DomainError, ValidationError
from core.web.discussion import download_response
from core.extensions import db
from core.org.models import User
from core.permissions import can, require
from core.schemas import load
from plugins.approval import schemas, services
from plugins.approval.models import Flow, Request

bp = Blueprint("approval", __name__, url_prefix="/approval", template_folder="templates")
api_bp = Blueprint("approval_api", __name__, url_prefix="/api/v1/approval")


def _iso(value):
    return value.isoformat() if value is not None else None


def dump_flow(flow: Flow) -> dict:
    return {"id": flow.id, "key": flow.key, "name": flow.name, "version": flow.version, "status": flow.status,
            "description": flow.description, "subject_type": flow.subject_type, "form": flow.form,
            "nodes": flow.nodes, "settings": flow.settings, "published_at": _iso(flow.published_at)}


def dump_task(task) -> dict:
    return {"id": task.id, "node_key": task.node_key, "round": task.round, "seq": task.seq,
            "assignee_id": task.assignee_id, "origin": task.origin, "on_behalf_of_id": task.on_behalf_of_id,
            "status": task.status, "due_at": _iso(task.due_at), "acted_at": _iso(task.acted_at),
            "acted_by_id": task.acted_by_id, "comment": task.comment}


def dump_event(event) -> dict:
    return {"id": event.id, "at": _iso(event.at), "actor_id": event.actor_id, "action": event.action,
            "node_key": event.node_key, "task_id": event.task_id, "comment": event.comment, "details": event.details}


def dump_request(req: Request, full: bool = True) -> dict:
    data = {"id": req.id, "flow_key": req.flow_key, "flow_version": req.flow.version, "title": req.title,
            "status": req.status, "current_node": req.current_node, "initiator_id": req.initiator_id,
            "subject_type": req.subject_type, "subject_id": req.subject_id, "round": req.round,
            "created_at": _iso(req.created_at), "decided_at": _iso(req.decided_at), "version": req.version}
    if full:
        data.update(form=req.context.get("form", {}), path=req.path,
                    tasks=[dump_task(t) for t in services.tasks_of(req)],
                    timeline=[dump_event(e) for e in services.timeline(req)],
                    attachments=[attachments.dump(a) for a in services.files_of(req)])
    return data


def _upload_fields(definition: list) -> dict:
    """The uploaded files of a multipart request, per attachment field of ``definition``."""
    return {item["key"]: request.files.getlist(item["key"]) for item in definition
            if item.get("type") == "attachment" and item["key"] in request.files}


def _multipart() -> bool:
    return request.mimetype == "multipart/form-data"


def _multipart_json(name: str = "payload") -> dict:
    """The JSON object sent as the text part ``name`` of a multipart request (a 400 otherwise)."""
    try:
        data = json.loads(request.form.get(name, ""))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise DomainError(_("Send the request's JSON object as the form part %(name)s.", name=name))
    return data


# REST API -----------------------------------------------------------------------------------------


@api_bp.get("/flows")
@login_required
def api_flows():
    """Published flows; ``?all=true`` (flow managers): every version."""
    query = select(Flow).order_by(Flow.key, Flow.version.desc())
    if request.args.get("all") in ("1", "true") and can(current_user, "approval.flow.manage"):
        flows = db.session.scalars(query).all()
    else:
        flows = db.session.scalars(query.where(Flow.status == "published")).all()
    return jsonify({"items": [dump_flow(f) for f in flows], "total": len(flows)})


@api_bp.post("/flows")
@login_required
def api_save_flow():
    require(current_user, "approval.flow.manage")
    data = load(schemas.FlowIn(), json_body())
    flow = services.save_flow(current_user, data)
    db.session.commit()
    return jsonify(dump_flow(flow)), 201


@api_bp.get("/flows/<int:flow_id>")
@login_required
def api_flow(flow_id: int):
    flow = db.session.get(Flow, flow_id) if flow_id < 2**31 else None
    if flow is None or (flow.status != "published" and not can(current_user, "approval.flow.manage")):
        abort(404)
    return jsonify(dump_flow(flow))


@api_bp.post("/flows/<int:flow_id>/publish")
@login_required
def api_publish_flow(flow_id: int):
    require(current_user, "approval.flow.manage")
    flow = services.publish_flow(current_user, flow_id)
    db.session.commit()
    return jsonify(dump_flow(flow))


@api_bp.post("/requests")
@login_required
def api_start():
    """Start a request: a JSON body, or ``multipart/form-data`` with the same JSON object as the
    part ``payload`` and each attachment field's files as parts named by the field's key.
    (Or start with JSON and add files later: ``POST /requests/<id>/attachments``.)"""
    data = load(schemas.RequestIn(), _multipart_json() if _multipart() else json_body())
    files = _upload_fields(services.published_flow(data["flow_key"]).form) if _multipart() else None
    req = services.start(data["flow_key"], current_user, data["form"], chosen=data["chosen"] or None,
                         title=data["title"], files=files)
    db.session.commit()
    return jsonify(dump_request(req)), 201


@api_bp.get("/requests")
@login_required
def api_requests():
    """Requests the caller may read, newest first; ``?mine=true``: only those they started."""
    query = services.visible_requests(current_user)
    if request.args.get("mine") in ("1", "true"):
        query = select(Request).where(Request.initiator_id == current_user.id)
    status = request.args.get("status")
    if status:
        query = query.where(Request.status == status)
    page, per_page = page_args()
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(Request.id.desc()).limit(per_page).offset((page - 1) * per_page)).all()
    return jsonify(envelope([dump_request(r, full=False) for r in rows], total, page, per_page))


@api_bp.get("/requests/<int:request_id>")
@login_required
def api_request(request_id: int):
    return jsonify(dump_request(services.get_request(current_user, request_id)))


def _request_action(request_id: int, action: str, data: dict):
    if action == "withdraw":
        return services.withdraw(current_user, request_id, load(schemas.ActionIn(), data)["comment"])
    if action == "resubmit":
        return services.resubmit(current_user, request_id, load(schemas.ResubmitIn(), data)["form"])
    if action == "remind":
        services.remind(current_user, request_id)
        return services.get_request(current_user, request_id)
    if action == "comments":
        if _multipart():
            services.comment(current_user, request_id, request.form.get("comment", ""), request.files.getlist("files"))
        else:
            services.comment(current_user, request_id, load(schemas.CommentIn(), data)["comment"])
        return services.get_request(current_user, request_id)
    abort(404)


@api_bp.post("/requests/<int:request_id>/<action>")
@login_required
def api_request_action(request_id: int, action: str):
    """``withdraw``, ``resubmit`` (with ``form``), ``remind``, ``comments`` (with ``comment``; or
    ``multipart/form-data`` with a ``comment`` part and ``files`` parts, one per file)."""
    if action == "comments" and _multipart():
        data = {}
    else:
        data = json_body() if request.content_length else {}
    req = _request_action(request_id, action, data)
    db.session.commit()
    return jsonify(dump_request(services.get_request(current_user, req.id)))


def _task_action(task_id: int, action: str, data: dict):
    if action == "approve":
        return services.approve(current_user, task_id, load(schemas.ActionIn(), data)["comment"])
    if action == "reject":
        return services.reject(current_user, task_id, load(schemas.ActionIn(), data)["comment"])
    if action == "transfer":
        clean = load(schemas.TransferIn(), data)
        return services.transfer(current_user, task_id, clean["user_id"], clean["comment"])
    if action == "add-approver":
        clean = load(schemas.AddApproverIn(), data)
        return services.add_approver(current_user, task_id, clean["user_id"], clean["position"], clean["comment"])
    if action == "return":
        clean = load(schemas.ReturnIn(), data)
        return services.return_to(current_user, task_id, clean["node"], clean["comment"])
    abort(404)


@api_bp.post("/tasks/<int:task_id>/<action>")
@login_required
def api_task_action(task_id: int, action: str):
    """``approve``, ``reject``, ``transfer`` (``user_id``), ``add-approver`` (``user_id``,
    ``position``), ``return`` (``node``: an earlier node key or ``@initiator``); each with ``comment``."""
    if action not in ("approve", "reject", "transfer", "add-approver", "return"):
        abort(404)
    task = _task_action(task_id, action, json_body() if request.content_length else {})
    db.session.commit()
    return jsonify({"task": dump_task(task), "request": dump_request(services.get_request(current_user, task.request_id))})


@api_bp.get("/requests/<int:request_id>/attachments")
@login_required
def api_files(request_id: int):
    """Every file of a request the caller may read (form fields and comments)."""
    req = services.get_request(current_user, request_id)
    rows = services.files_of(req)
    return jsonify({"items": [attachments.dump(a) for a in rows], "total": len(rows)})


@api_bp.post("/requests/<int:request_id>/attachments")
@login_required
def api_attach(request_id: int):
    """The initiator adds files to an attachment field of a running or returned request:
    ``multipart/form-data`` with ``field`` (the field's key) and one or more ``file`` parts."""
    added = services.attach(current_user, request_id, request.form.get("field", ""), request.files.getlist("file"))
    db.session.commit()
    return jsonify({"items": added, "request": dump_request(services.get_request(current_user, request_id))}), 201


@api_bp.get("/requests/<int:request_id>/attachments/<int:attachment_id>")
@login_required
def api_download(request_id: int, attachment_id: int):
    download = services.open_file(current_user, request_id, attachment_id)
    db.session.commit()  # the audit entry, before the bytes go out
    return download_response(download)


@api_bp.post("/delegations")
@login_required
def api_delegate():
    clean = load(schemas.DelegationIn(), json_body())
    delegation = services.set_delegation(current_user, clean["delegate_id"], clean["starts_at"], clean["ends_at"],
                                         clean["flow_keys"])
    db.session.commit()
    return jsonify({"id": delegation.id, "user_id": delegation.user_id, "delegate_id": delegation.delegate_id,
                    "starts_at": _iso(delegation.starts_at), "ends_at": _iso(delegation.ends_at),
                    "flow_keys": delegation.flow_keys}), 201


# Pages --------------------------------------------------------------------------------------------


@bp.get("/start")
@login_required
def start_index():
    require(current_user, "approval.request.create")
    flows = db.session.scalars(select(Flow).where(Flow.status == "published").order_by(Flow.key)).all()
    return render_template("approval/start.html", flows=flows)


def form_values(definition: list, form) -> dict:
    """Page form fields → the values the flow's form schema expects (empty inputs are left out)."""
    values = {}
    for item in definition:
        key, kind = item["key"], item["type"]
        if kind == "daterange":
            start, end = form.get(f"{key}__start", "").strip(), form.get(f"{key}__end", "").strip()
            if start or end:
                values[key] = [start, end]
        elif kind == "table":
            rows = []
            for index in range(10):
                row = {c["key"]: form.get(f"{key}__{index}__{c['key']}", "").strip() for c in item.get("columns", [])}
                if any(row.values()):
                    rows.append({k: v for k, v in row.items() if v})
            if rows:
                values[key] = rows
        elif kind == "attachment":  # files already attached that the form keeps; new ones are uploads
            ids = [int(v) for v in form.getlist(key) if v.isdigit() and len(v) < 11] if hasattr(form, "getlist") else []
            if ids:
                values[key] = ids
        else:
            raw = form.get(key, "").strip()
            if raw == "":
                continue
            if kind in ("user", "department"):
                values[key] = int(raw) if raw.isdigit() and len(raw) < 11 else raw
            else:
                values[key] = raw
    return values


@bp.route("/start/<key>", methods=["GET", "POST"])
@login_required
def start_form(key: str):
    require(current_user, "approval.request.create")
    flow = services.published_flow(key)
    errors, values = {}, {}
    if request.method == "POST":
        values = form_values(flow.form, request.form)
        try:
            req = services.start(flow.key, current_user, values, files=_upload_fields(flow.form))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.fields
        else:
            db.session.commit()
            flash(_("Submitted."), "success")
            return redirect(url_for("approval.detail", request_id=req.id))
    users = db.session.scalars(select(User).where(User.active).order_by(User.username)).all() \
        if any(f["type"] == "user" for f in flow.form) else []
    return render_template("approval/form.html", flow=flow, errors=errors, values=values, users=users,
                           upload=_upload_hint()), 422 if errors else 200


def _upload_hint() -> dict:
    return {"accept": attachments.accept_attribute(), "max_mb": attachments.max_mb(),
            "types": ", ".join(k.name for k in attachments.kinds())}


@bp.route("/requests/<int:request_id>/resubmit", methods=["GET", "POST"])
@login_required
def resubmit_form(request_id: int):
    """The initiator edits a request returned to them and sends it through the flow again."""
    req = services.get_request(current_user, request_id)
    if req.initiator_id != current_user.id or req.status != "returned":
        flash(_("Only a request returned to you can be resubmitted."), "warning")
        return redirect(url_for("approval.detail", request_id=req.id))
    errors, values = {}, dict(req.context.get("form") or {})
    known = {a.id: a.filename for a in services.files_of(req)}
    if request.method == "POST":
        values = form_values(req.flow.form, request.form)
        try:
            services.resubmit(current_user, req.id, values, files=_upload_fields(req.flow.form))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.fields
        else:
            db.session.commit()
            flash(_("Resubmitted."), "success")
            return redirect(url_for("approval.detail", request_id=req.id))
    users = db.session.scalars(select(User).where(User.active).order_by(User.username)).all() \
        if any(f["type"] == "user" for f in req.flow.form) else []
    return render_template("approval/form.html", flow=req.flow, req=req, errors=errors, values=values, users=users,
                           upload=_upload_hint(), known=known), 422 if errors else 200


@bp.get("/mine")
@login_required
def mine():
    rows = db.session.scalars(select(Request).where(Request.initiator_id == current_user.id)
                              .order_by(Request.id.desc()).limit(200)).all()
    return render_template("approval/mine.html", requests=rows)


@bp.get("/requests/<int:request_id>")
@login_required
def detail(request_id: int):
    req = services.get_request(current_user, request_id)
    events = services.timeline(req)
    tasks = services.tasks_of(req)
    ids = {e.actor_id for e in events} | {t.assignee_id for t in tasks} | {t.on_behalf_of_id for t in tasks}
    ids |= {e.details.get("user_id") for e in events if isinstance(e.details.get("user_id"), int)}
    ids.discard(None)
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    task = services.pending_task_for(current_user, req)
    earlier = req.path[:req.path.index(task.node_key)] if task is not None and task.node_key in req.path else []
    nodes = {key: node.get("name") or key for key, node in _node_names(req).items()}
    users = db.session.scalars(select(User).where(User.active, User.id != req.initiator_id)
                               .order_by(User.username)).all() if task is not None else []
    return render_template("approval/detail.html", req=req, events=events, tasks=tasks, people=people, task=task,
                           earlier=earlier, nodes=nodes, users=users, now=clock.now(), upload=_upload_hint(),
                           can_withdraw=req.initiator_id == current_user.id and req.status in ("running", "returned"))


@bp.get("/requests/<int:request_id>/files/<int:attachment_id>")
@login_required
def download(request_id: int, attachment_id: int):
    """A file of a request the viewer may see (initiator, approvers, CC, admins); 404 for anyone else."""
    result = services.open_file(current_user, request_id, attachment_id)
    db.session.commit()  # the audit entry, before the bytes go out
    return download_response(result)


def _node_names(req):
    from plugins.approval.engine import node_map

    return node_map(req.flow)


@bp.post("/requests/<int:request_id>/act")
@login_required
def act(request_id: int):
    """The detail page's buttons: one service call each, then back to the page."""
    action = request.form.get("action", "")
    comment = request.form.get("comment", "")
    try:
        if action in ("withdraw", "remind", "comment", "resubmit"):
            if action == "withdraw":
                services.withdraw(current_user, request_id, comment)
            elif action == "remind":
                services.remind(current_user, request_id)
            elif action == "resubmit":
                services.resubmit(current_user, request_id)
            else:
                services.comment(current_user, request_id, comment, request.files.getlist("files"))
        else:
            task_id = request.form.get("task_id", "")
            if not task_id.isdigit() or len(task_id) > 10:
                abort(400)
            task_id = int(task_id)
            user_id = request.form.get("user_id", "")
            user_id = int(user_id) if user_id.isdigit() and len(user_id) < 11 else None
            if action == "approve":
                services.approve(current_user, task_id, comment)
            elif action == "reject":
                services.reject(current_user, task_id, comment)
            elif action == "transfer":
                services.transfer(current_user, task_id, user_id, comment)
            elif action == "add_approver":
                services.add_approver(current_user, task_id, user_id, request.form.get("position", "after"), comment)
            elif action == "return":
                services.return_to(current_user, task_id, request.form.get("node", "@initiator"), comment)
            else:
                abort(400)
        db.session.commit()
        flash(_("Done."), "success")
    except DomainError as exc:
        db.session.rollback()
        messages = [str(exc.message)] + [f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items()]
        flash(" ".join(messages), "danger")
        if exc.status == 404:
            raise
    return redirect(url_for("approval.detail", request_id=request_id))


@bp.route("/flows", methods=["GET", "POST"])
@login_required
def flows():
    """Flow list with JSON import (a new version, published or draft) and export links."""
    require(current_user, "approval.flow.manage")
    errors, text = {}, ""
    if request.method == "POST":
        text = request.form.get("definition", "")
        try:
            data = json.loads(text)
        except ValueError:
            errors = {"definition": [_("Not valid JSON.")]}
        else:
            try:
                services.save_flow(current_user, load(schemas.FlowIn(), data if isinstance(data, dict) else {}))
            except ValidationError as exc:
                db.session.rollback()
                errors = exc.fields
            else:
                db.session.commit()
                flash(_("Saved."), "success")
                return redirect(url_for("approval.flows"))
    rows = db.session.scalars(select(Flow).order_by(Flow.key, Flow.version.desc())).all()
    return render_template("approval/flows.html", flows=rows, errors=errors, text=text), 422 if errors else 200


@bp.post("/flows/<int:flow_id>/publish")
@login_required
def publish(flow_id: int):
    require(current_user, "approval.flow.manage")
    services.publish_flow(current_user, flow_id)
    db.session.commit()
    flash(_("Published."), "success")
    return redirect(url_for("approval.flows"))
