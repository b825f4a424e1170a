"""Approval business rules: flows, starting requests and every action on them.

Plain functions taking the acting user; they raise domain errors and leave the commit to the
caller. Every action appends a timeline event, keeps the inbox in step in the same transaction
and is idempotent: repeating an action that already happened changes nothing. A decision is one
``UPDATE approval_task ... WHERE id = ? AND status = 'pending'`` under a lock on the request, so a
task is decided once however many people press the button at the same moment.
"""
from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

from flask_babel import gettext as _
from sqlalchemy import exists, func, or_, select, update

from core import attachments, audit, clock, inbox
from core.errors import BusinessRuleError, Conflict, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.org.models import User
from core.permissions import can, scope_filter
from plugins.approval import engine, forms
from plugins.approval.models import APPROVED, OPEN, CC, Delegation, Event, Flow, Request, Task

__all__ = [
    "save_flow", "publish_flow", "retire_flow", "published_flow", "start", "resubmit", "approve", "reject",
    "transfer", "add_approver", "return_to", "withdraw", "remind", "comment", "cancel", "set_delegation",
    "sweep_time_limits", "get_request", "visible_requests", "can_act", "simulate", "attach", "files_of",
    "open_file", "OWNER",
]

INT32 = 2**31 - 1
OWNER = "approval.request"  # the owner of a request's files in core.attachments


class _RequestResource:
    """What ``scope_filter`` needs to know about requests (they are not a generic Resource)."""

    model = Request

    @staticmethod
    def permission(action: str) -> str:
        return f"approval.request.{action}"


REQUESTS = _RequestResource()


def _fields_error(errors: dict) -> ValidationError:
    return ValidationError(_("Please correct the highlighted fields."), fields=errors)


# Flows --------------------------------------------------------------------------------------------


def check_flow(data: dict) -> None:
    """Raise ``ValidationError`` naming every bad part of a flow definition (form, nodes, rules)."""
    errors = forms.check_definition(data.get("form", []))
    form_keys = {f.get("key") for f in data.get("form", []) if isinstance(f, dict)} if isinstance(data.get("form"), list) else set()
    errors.update(engine.check_nodes(data.get("nodes"), form_keys))
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        errors["settings"] = [_("Must be an object.")]
    if errors:
        raise _fields_error(errors)


def save_flow(actor, data: dict) -> Flow:
    """Save a flow definition as a new draft version of its key (``publish`` makes it live).

    ``data``: ``key``, ``name``, ``form``, ``nodes`` and optionally ``description``,
    ``subject_type``, ``settings`` and ``publish`` (true: publish right away).
    """
    _require_manage(actor)
    check_flow(data)
    latest = db.session.scalar(select(func.max(Flow.version)).where(Flow.key == data["key"])) or 0
    flow = Flow(key=data["key"], version=latest + 1, status="draft", name=data["name"],
                description=data.get("description") or "", subject_type=data.get("subject_type"),
                form=data.get("form") or [], nodes=data["nodes"], settings=data.get("settings") or {},
                created_by_id=getattr(actor, "id", None))
    db.session.add(flow)
    db.session.flush()
    audit.record("create", resource="approval.flow", record_id=flow.id, summary=f"{flow.key} v{flow.version}",
                 changes={"status": [None, "draft"]}, actor=actor)
    if data.get("publish"):
        publish_flow(actor, flow.id)
    return flow


def publish_flow(actor, flow_id: int) -> Flow:
    """Publish a version: new requests use it; the previously published version is retired.
    Running requests keep the version they started with."""
    _require_manage(actor)
    flow = db.session.get(Flow, flow_id) if 0 < flow_id <= INT32 else None
    if flow is None:
        raise NotFound(_("Not found."))
    if flow.status == "published":
        return flow
    for other in db.session.scalars(select(Flow).where(Flow.key == flow.key, Flow.status == "published")):
        other.status = "retired"
    flow.status, flow.published_at = "published", clock.now()
    audit.record("publish", resource="approval.flow", record_id=flow.id, summary=f"{flow.key} v{flow.version}",
                 changes={"status": ["draft", "published"]}, actor=actor)
    db.session.flush()
    return flow


def retire_flow(actor, flow_id: int) -> Flow:
    _require_manage(actor)
    flow = db.session.get(Flow, flow_id) if 0 < flow_id <= INT32 else None
    if flow is None:
        raise NotFound(_("Not found."))
    if flow.status != "retired":
        audit.record("retire", resource="approval.flow", record_id=flow.id, summary=f"{flow.key} v{flow.version}",
                     changes={"status": [flow.status, "retired"]}, actor=actor)
        flow.status = "retired"
    return flow


def published_flow(key: str) -> Flow:
    flow = db.session.scalar(select(Flow).where(Flow.key == key, Flow.status == "published")
                             .order_by(Flow.version.desc()).limit(1))
    if flow is None:
        raise NotFound(_("No published flow %(key)s.", key=key))
    return flow


def _require_manage(actor) -> None:
    if actor is not None and not can(actor, "approval.flow.manage"):
        raise Forbidden(_("You do not have permission to do this."))


# Starting -----------------------------------------------------------------------------------------


def snapshot(initiator: User, form: dict, subject: dict | None = None, chosen: dict | None = None) -> dict:
    """What conditions and approver sources read: the form, the initiator, their department."""
    department = initiator.department
    return {
        "form": form,
        "initiator": {"id": initiator.id, "username": initiator.username, "display_name": initiator.display_name,
                      "department_id": initiator.department_id, "manager_id": initiator.manager_id,
                      "roles": sorted(initiator.role_keys)},
        "department": ({"id": department.id, "name": department.name, "code": department.code,
                        "path": department.path} if department else None),
        "subject": subject or {},
        "chosen": {str(k): v for k, v in (chosen or {}).items()},
    }


def _check_chosen(flow: Flow, chosen) -> dict:
    nodes = [n for n in engine.iter_nodes(flow.nodes) if n.get("type") == "approval"
             and (n.get("approvers") or {}).get("source") == "initiator_choice"]
    chosen = chosen or {}
    if not isinstance(chosen, dict):
        raise _fields_error({"chosen": [_("Must be an object.")]})
    errors = {}
    for key, ids in chosen.items():
        if key not in {n["key"] for n in nodes}:
            errors[f"chosen.{key}"] = [_("This node does not let the initiator choose.")]
        elif not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            errors[f"chosen.{key}"] = [_("A list of user ids.")]
        elif engine._active(ids) != list(dict.fromkeys(ids)):
            errors[f"chosen.{key}"] = [_("Unknown user.")]
    if errors:
        raise _fields_error(errors)
    return chosen


def start(flow_key: str, initiator: User, form: dict, subject: tuple[str, int] | None = None,
          subject_data: dict | None = None, chosen: dict | None = None, title: str | None = None,
          files: dict | None = None) -> Request:
    """Start a request on the published version of ``flow_key`` (the version is pinned).

    ``files``: ``{attachment field key: [FileStorage]}``, checked with the other fields (one bad
    file and nothing is written) and stored under ``approval.request`` / the new request's id."""
    flow = published_flow(flow_key)
    if initiator is None or not can(initiator, "approval.request.create"):
        raise Forbidden(_("You do not have permission to do this."))
    values = forms.clean(flow.form, form, files=files)
    chosen = _check_chosen(flow, chosen)
    context = snapshot(initiator, values, subject_data, chosen)
    subject_type, subject_id = subject if subject else (flow.subject_type, None)
    req = Request(flow_id=flow.id, flow_key=flow.key, flow=flow, initiator_id=initiator.id, owner_id=initiator.id,
                  department_id=initiator.department_id, subject_type=subject_type, subject_id=subject_id,
                  title=(title or f"{flow.name} · {initiator.display_name}")[:300], status="running",
                  context=context, path=engine.plan(flow.nodes, context), round=1)
    db.session.add(req)
    db.session.flush()
    _store_uploads(req, files, initiator)
    engine.log(req, "submit", initiator, flow_version=flow.version)
    audit.record("create", resource="approval.request", record_id=req.id, summary=req.title,
                 changes={"flow": [None, f"{flow.key} v{flow.version}"]}, actor=initiator)
    engine.enter(req, 0, initiator)
    db.session.flush()
    return req


def resubmit(actor: User, request_id: int, form: dict | None = None, files: dict | None = None) -> Request:
    """The initiator sends a returned request again, with edited values; it walks the flow anew.

    Attachment fields keep the files whose ids ``form`` lists and gain ``files`` (as in ``start``)."""
    req = _locked(request_id)
    if req.initiator_id != actor.id:
        raise Forbidden(_("Only the initiator can resubmit a request."))
    if req.status == "running":
        return req  # already resubmitted
    if req.status != "returned":
        raise BusinessRuleError(_("Only a request returned to you can be resubmitted."))
    values = forms.clean(req.flow.form, form, files=files, known=_known(req)) if form is not None \
        else req.context["form"]
    req.context = {**req.context, "form": values}
    _store_uploads(req, files if form is not None else None, actor)
    context = req.context
    req.path = engine.plan(req.flow.nodes, context)
    req.status = "running"
    inbox.close(engine.PLUGIN, f"request:{req.id}:resubmit", by=actor)
    engine.log(req, "resubmit", actor)
    audit.record("resubmit", resource="approval.request", record_id=req.id, summary=req.title, actor=actor)
    engine.enter(req, 0, actor)
    db.session.flush()
    return req


# Simulation ---------------------------------------------------------------------------------------


def simulate(actor, flow_id: int, initiator_id, form: dict, chosen: dict | None = None) -> dict:
    """What would happen if ``initiator_id`` submitted ``form`` on flow version ``flow_id`` (a draft
    too): the branch each condition takes, who approves each node, which nodes are skipped and why.

    Writes nothing. It walks the same functions as ``start`` (``engine.trace``, ``engine.resolve``,
    ``engine.decide_node``), so it cannot drift from what a real request does. One assumption: for
    dedupe, approvers of earlier 依次/会签 nodes count as having approved (of a 或签 node nobody
    does, since who will act is not known). Returns ``{"path": [key], "steps": [step], "form": values}``.
    """
    _require_manage(actor)
    flow = db.session.get(Flow, flow_id) if isinstance(flow_id, int) and 0 < flow_id <= INT32 else None
    if flow is None:
        raise NotFound(_("Not found."))
    initiator = _target_user(initiator_id, "initiator_id")
    # No files in a simulation: an attachment field never decides a path, so it is not required here.
    values = forms.clean([{**f, "required": False} if f.get("type") == "attachment" else f for f in flow.form], form)
    chosen = _check_chosen(flow, chosen)
    context = snapshot(initiator, values, None, chosen)
    stand_in = SimpleNamespace(initiator_id=initiator.id, context=context)
    nodes = engine.node_map(flow)
    approved_before: set[int] = set()
    steps = []
    for step in engine.trace(flow.nodes, context):
        node = nodes[step["key"]]
        step = {**step, "name": node.get("name") or step.get("name") or step["key"]} if step["type"] != "condition" \
            else {**step, "label": node.get("name") or step["key"]}
        cc = []
        for spec in node.get("cc") or ():
            cc += engine.resolve(spec, stand_in, step["key"])
        step["cc"] = [u for u in dict.fromkeys(cc) if u != initiator.id]
        if step["type"] == "approval":
            decision = engine.decide_node(node, engine.resolve(node["approvers"], stand_in, step["key"]),
                                          initiator.id, approved_before, engine.admins)
            step.update(decision)
            acting = [u for u, reason in decision["assignees"] if reason is None]
            if decision["outcome"] == "pending" and decision["mode"] in ("sequential", "all"):
                approved_before.update(acting)
        steps.append(step)
    return {"path": [s["key"] for s in steps if s["type"] != "condition"], "steps": steps, "form": values}


# Reading ------------------------------------------------------------------------------------------


def visibility(user):
    """SQL condition: requests ``user`` may read (their own, those they act on or are copied on,
    and those in their ``approval.request.read`` scope)."""
    involved = exists().where(Task.request_id == Request.id,
                              or_(Task.assignee_id == user.id, Task.on_behalf_of_id == user.id))
    copied = exists().where(CC.request_id == Request.id, CC.user_id == user.id)
    return or_(Request.initiator_id == user.id, involved, copied, scope_filter(REQUESTS, "read", user))


def visible_requests(user):
    return select(Request).where(visibility(user))


def get_request(user, request_id: int) -> Request:
    """The request if ``user`` may read it; ``NotFound`` otherwise (the same for a missing id)."""
    req = db.session.scalar(visible_requests(user).where(Request.id == request_id)) \
        if isinstance(request_id, int) and 0 < request_id <= INT32 else None
    if req is None:
        raise NotFound(_("Not found."))
    return req


def timeline(req: Request) -> list[Event]:
    return list(db.session.scalars(select(Event).where(Event.request_id == req.id).order_by(Event.id)))


def can_act(user, task: Task, flow_key: str) -> bool:
    """The assignee, or the assignee's active delegate for this flow, may act on a task."""
    if task.assignee_id == user.id:
        return True
    delegation = engine.delegate_for(task.assignee_id, flow_key)
    return delegation is not None and delegation.delegate_id == user.id


# Actions ------------------------------------------------------------------------------------------


def _locked(request_id: int) -> Request:
    req = engine.lock_request(request_id) if isinstance(request_id, int) else None
    if req is None:
        raise NotFound(_("Not found."))
    return req


def _task_for_action(actor: User, task_id: int) -> tuple[Task, Request]:
    """The task (locked through its request) that ``actor`` wants to act on."""
    row = db.session.execute(select(Task.request_id).where(Task.id == task_id)).first() \
        if isinstance(task_id, int) and 0 < task_id <= INT32 else None
    if row is None:
        raise NotFound(_("Not found."))
    req = _locked(row.request_id)
    task = db.session.get(Task, task_id, populate_existing=True)
    if req.initiator_id == actor.id:
        raise Forbidden(_("You cannot approve your own request."))
    if not can_act(actor, task, req.flow_key) and task.acted_by_id != actor.id:
        # Someone who cannot see the request learns nothing about it.
        if db.session.scalar(select(func.count()).select_from(Request).where(Request.id == req.id, visibility(actor))):
            raise Forbidden(_("Only the approver of this step can act on it."))
        raise NotFound(_("Not found."))
    return task, req


def _decide(actor: User, task: Task, req: Request, status: str, comment: str) -> bool:
    """Move ``task`` from pending to ``status``; ``False`` when this exact decision was already made
    (idempotent repeat); ``Conflict`` when the task was decided otherwise or is not up to ``actor``."""
    now = clock.now()
    result = db.session.execute(
        update(Task).where(Task.id == task.id, Task.status == "pending")
        .values(status=status, acted_at=now, acted_by_id=actor.id, comment=comment or "")
        .execution_options(synchronize_session=False))
    db.session.refresh(task)
    if result.rowcount == 1:
        engine.inbox_close(task, by=actor)
        return True
    if task.status == status and task.acted_by_id == actor.id:
        return False
    if task.status == "waiting":
        raise BusinessRuleError(_("This step is not your turn yet."))
    raise Conflict(_("This step has already been decided."))


def _comment(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 2000:
        raise _fields_error({"comment": [_("Enter at most %(max)s characters.", max=2000)]})
    return value.strip()


def approve(actor: User, task_id: int, comment: str = "") -> Task:
    """Approve a pending task; the node (and the request) moves on when the node's mode is met."""
    comment = _comment(comment)
    task, req = _task_for_action(actor, task_id)
    if _decide(actor, task, req, "approved", comment):
        engine.log(req, "approve", actor, task.node_key, task, comment, on_behalf_of_id=_behalf(actor, task))
        engine.node_after_approval(req, task, actor)
        db.session.flush()
    return task


def reject(actor: User, task_id: int, comment: str = "") -> Task:
    """Reject a pending task; the node's reject policy says what follows (end, back to the initiator
    or to a node)."""
    comment = _comment(comment)
    task, req = _task_for_action(actor, task_id)
    if _decide(actor, task, req, "rejected", comment):
        engine.log(req, "reject", actor, task.node_key, task, comment, on_behalf_of_id=_behalf(actor, task))
        engine.node_after_rejection(req, task, actor)
        db.session.flush()
    return task


def _behalf(actor: User, task: Task) -> int | None:
    if task.assignee_id != actor.id:
        return task.assignee_id
    return task.on_behalf_of_id


def _target_user(user_id, field: str) -> User:
    user = db.session.get(User, user_id) if isinstance(user_id, int) and not isinstance(user_id, bool) \
        and 0 < user_id <= INT32 else None
    if user is None or not user.active:
        raise _fields_error({field: [_("Unknown user.")]})
    return user


def transfer(actor: User, task_id: int, to_user_id: int, comment: str = "") -> Task:
    """Hand a pending task to someone else (转交); returns the new task."""
    comment = _comment(comment)
    target = _target_user(to_user_id, "user_id")
    task, req = _task_for_action(actor, task_id)
    if task.status == "cancelled" and task.acted_by_id == actor.id:
        existing = db.session.scalar(select(Task).where(Task.request_id == req.id, Task.origin == "transfer",
                                                        Task.assignee_id == target.id, Task.node_key == task.node_key,
                                                        Task.round == task.round, Task.seq == task.seq))
        if existing is not None:
            return existing  # the same transfer again
    if target.id == req.initiator_id:
        raise _fields_error({"user_id": [_("The initiator cannot approve their own request.")]})
    if target.id == task.assignee_id:
        raise _fields_error({"user_id": [_("This step is already theirs.")]})
    if not _decide(actor, task, req, "cancelled", comment):
        return task
    new = _clone(task, target.id, "transfer")
    engine.log(req, "transfer", actor, task.node_key, task, comment, user_id=target.id, new_task_id=new.id)
    engine.activate(req, new, engine.node_map(req.flow)[task.node_key])
    return new


def _clone(task: Task, assignee_id: int, origin: str, parent_id: int | None = None) -> Task:
    new = Task(request_id=task.request_id, node_key=task.node_key, round=task.round, seq=task.seq,
               assignee_id=assignee_id, origin=origin, parent_id=parent_id, status="waiting", created_at=clock.now())
    db.session.add(new)
    db.session.flush()
    return new


def add_approver(actor: User, task_id: int, user_id: int, position: str = "after", comment: str = "") -> Task:
    """加签: add ``user_id`` before the actor (they approve first, then the task comes back) or
    after (the actor approves now and the node waits for the added approver). Returns the new task."""
    comment = _comment(comment)
    if position not in ("before", "after"):
        raise _fields_error({"position": [_("Must be one of: %(choices)s.", choices="before, after")]})
    target = _target_user(user_id, "user_id")
    task, req = _task_for_action(actor, task_id)
    existing = db.session.scalar(select(Task).where(Task.parent_id == task.id, Task.assignee_id == target.id,
                                                    Task.origin == "add_sign"))
    if existing is not None:
        return existing  # added already
    if target.id == req.initiator_id:
        raise _fields_error({"user_id": [_("The initiator cannot approve their own request.")]})
    if target.id == actor.id:
        raise _fields_error({"user_id": [_("You are already an approver of this step.")]})
    node = engine.node_map(req.flow)[task.node_key]
    if position == "before":
        _decide(actor, task, req, "waiting", comment)
        new = _clone(task, target.id, "add_sign", parent_id=task.id)
        engine.log(req, "add_approver", actor, task.node_key, task, comment, user_id=target.id, position=position)
        engine.activate(req, new, node)
    else:
        _decide(actor, task, req, "approved", comment)
        new = _clone(task, target.id, "add_sign", parent_id=task.id)
        engine.log(req, "approve", actor, task.node_key, task, comment, on_behalf_of_id=_behalf(actor, task))
        engine.log(req, "add_approver", actor, task.node_key, task, comment, user_id=target.id, position=position)
        engine.activate(req, new, node)
        engine.node_after_approval(req, task, actor)  # 或签: the others are no longer needed
    db.session.flush()
    return new


def return_to(actor: User, task_id: int, target: str = "@initiator", comment: str = "") -> Task:
    """退回: send the request back to an earlier node of its path, or to the initiator (``@initiator``)."""
    comment = _comment(comment)
    task, req = _task_for_action(actor, task_id)
    if target != "@initiator":
        if not isinstance(target, str) or target not in req.path or \
                req.path.index(target) >= req.path.index(task.node_key):
            raise _fields_error({"node": [_("Choose an earlier step of this request.")]})
    if _decide(actor, task, req, "returned", comment):
        engine.log(req, "return", actor, task.node_key, task, comment, target=target)
        engine.send_back(req, target, actor)
        db.session.flush()
    return task


def withdraw(actor: User, request_id: int, comment: str = "") -> Request:
    """撤回: the initiator takes the request back — before any decision, or any time while it runs
    when the flow's ``allow_withdraw`` setting says so."""
    comment = _comment(comment)
    req = _locked(request_id)
    if req.initiator_id != actor.id:
        if db.session.scalar(select(func.count()).select_from(Request).where(Request.id == req.id, visibility(actor))):
            raise Forbidden(_("Only the initiator can withdraw a request."))
        raise NotFound(_("Not found."))
    if req.status == "withdrawn":
        return req
    if req.status not in ("running", "returned"):
        raise BusinessRuleError(_("This request is already decided."))
    decided = db.session.scalar(select(func.count()).select_from(Task).where(
        Task.request_id == req.id, Task.acted_by_id.is_not(None), Task.status.in_(("approved", "rejected", "returned"))))
    if decided and not req.flow.settings.get("allow_withdraw"):
        raise BusinessRuleError(_("An approver has already decided; this flow does not allow withdrawing now."))
    engine.finish(req, "withdrawn", actor)
    if comment:
        engine.log(req, "comment", actor, comment=comment)
    audit.record("withdraw", resource="approval.request", record_id=req.id, summary=req.title, actor=actor)
    return req


def cancel(actor: User | None, request_id: int, comment: str = "") -> Request:
    """Cancel a running request (an administrator, or a plugin whose subject went away)."""
    req = _locked(request_id)
    if actor is not None and not actor.is_admin:
        raise Forbidden(_("You do not have permission to do this."))
    if req.status in ("running", "returned"):
        engine.finish(req, "cancelled", actor)
        audit.record("cancel", resource="approval.request", record_id=req.id, summary=req.title, actor=actor,
                     actor_name=None if actor else "system")
    return req


def remind(actor: User, request_id: int) -> int:
    """催办: the initiator nudges everyone the request waits for; returns how many were reminded."""
    req = _locked(request_id)
    if req.initiator_id != actor.id:
        raise Forbidden(_("Only the initiator can send a reminder."))
    if req.status != "running":
        raise BusinessRuleError(_("This request is not waiting for anyone."))
    pending = list(db.session.scalars(select(Task).where(Task.request_id == req.id, Task.status == "pending")))
    for task in pending:
        inbox.upsert(engine.PLUGIN, f"task:{task.id}:remind", task.assignee_id, "reminder",
                     _("Reminder: %(title)s", title=req.title), url=engine.request_url(req.id),
                     subject_type=engine.SUBJECT_TYPE, subject_id=req.id, reopen=True, extra={"task_id": task.id})
    engine.log(req, "remind", actor, req.current_node, users=[t.assignee_id for t in pending])
    return len(pending)


def comment(actor: User, request_id: int, text: str, files: list | None = None) -> Event:
    """Add a comment to the timeline of a request ``actor`` may read, with files if given (text,
    files or both). The files are the request's attachments; the event lists them (``details.files``)."""
    req = get_request(actor, request_id)
    text = _comment(text)
    files = _checked_files(files, "files")
    if not text and not files:
        raise _fields_error({"comment": [_("Missing data for required field.")]})
    stored = [_ref(attachments.store(OWNER, req.id, f, actor)) for f in files]
    details = {"files": stored} if stored else {}
    return engine.log(req, "comment", actor, req.current_node, comment=text, **details)


# Files --------------------------------------------------------------------------------------------


def _ref(attachment) -> dict:
    return {"id": attachment.id, "name": attachment.filename}


def _known(req: Request) -> dict[int, str]:
    return {a.id: a.filename for a in attachments.rows(OWNER, req.id)}


def _checked_files(files, field: str) -> list:
    """The non-empty uploads of ``files``, every one checked (``ValidationError`` on ``field``)."""
    files = [f for f in (files or ()) if f is not None and getattr(f, "filename", None)]
    if len(files) > forms.FILES_MAX:
        raise _fields_error({field: [_("Attach at most %(max)s files.", max=forms.FILES_MAX)]})
    messages = []
    for upload in files:
        try:
            attachments.check(upload)
        except ValidationError as exc:
            messages += [f"{attachments.clean_filename(upload.filename)}: {m}" for m in exc.fields.get("file", [exc.message])]
    if messages:
        raise _fields_error({field: messages})
    return files


def _store_uploads(req: Request, files: dict | None, actor: User) -> None:
    """Store a form's checked uploads for ``req`` and add them to its attachment fields."""
    form = dict(req.context.get("form") or {})
    changed = False
    for key, items in (files or {}).items():
        for upload in items:
            if upload is None or not getattr(upload, "filename", None):
                continue
            form[key] = list(form.get(key) or []) + [_ref(attachments.store(OWNER, req.id, upload, actor))]
            changed = True
    if changed:
        req.context = {**req.context, "form": form}


def attach(actor: User, request_id: int, field: str, files: list) -> list[dict]:
    """The initiator adds files to an attachment field of their request while it is running or
    returned (how API clients, which start requests with JSON, attach files); returns the new
    ``[{"id", "name"}]``. The timeline shows it (``attach``), the audit log has each file."""
    req = _locked(request_id)
    if req.initiator_id != actor.id:
        if db.session.scalar(select(func.count()).select_from(Request).where(Request.id == req.id, visibility(actor))):
            raise Forbidden(_("Only the initiator can add files to a request."))
        raise NotFound(_("Not found."))
    if req.status not in ("running", "returned"):
        raise BusinessRuleError(_("This request is already decided."))
    kinds = {f["key"]: f["type"] for f in req.flow.form}
    if kinds.get(field) != "attachment":
        raise _fields_error({"field": [_("Choose an attachment field of this form.")]})
    files = _checked_files(files, "file")
    if not files:
        raise _fields_error({"file": [_("Choose a file to upload.")]})
    if len(req.context.get("form", {}).get(field) or []) + len(files) > forms.FILES_MAX:
        raise _fields_error({"file": [_("Attach at most %(max)s files.", max=forms.FILES_MAX)]})
    before = len(req.context.get("form", {}).get(field) or [])
    _store_uploads(req, {field: files}, actor)
    added = req.context["form"][field][before:]
    engine.log(req, "attach", actor, req.current_node, field=field, files=added)
    db.session.flush()
    return added


def files_of(req: Request) -> list:
    """Every file of a request the caller may read (fields and comments), oldest first."""
    return attachments.rows(OWNER, req.id)


def open_file(user: User, request_id: int, attachment_id) -> attachments.Download:
    """A file of a request ``user`` may read (``get_request``), with its bytes; audited.
    ``NotFound`` for a request they may not read and for a file of another request."""
    req = get_request(user, request_id)
    return attachments.open_stored(OWNER, req.id, attachment_id, user)


# Delegation ---------------------------------------------------------------------------------------


def set_delegation(actor: User, delegate_id: int, starts_at: datetime, ends_at: datetime,
                   flow_keys: list[str] | None = None, user_id: int | None = None) -> Delegation:
    """While ``actor`` (or, for an admin, ``user_id``) is away, ``delegate_id`` approves for them."""
    owner_id = user_id if user_id is not None else actor.id
    if owner_id != actor.id and not actor.is_admin:
        raise Forbidden(_("You do not have permission to do this."))
    delegate = _target_user(delegate_id, "delegate_id")
    errors = {}
    if delegate.id == owner_id:
        errors["delegate_id"] = [_("Choose someone else.")]
    if starts_at.tzinfo is None or ends_at.tzinfo is None or ends_at <= starts_at:
        errors["ends_at"] = [_("The end is before the start.")]
    if flow_keys is not None and (not isinstance(flow_keys, list) or not all(isinstance(k, str) for k in flow_keys)):
        errors["flow_keys"] = [_("A list of flow keys.")]
    if errors:
        raise _fields_error(errors)
    delegation = Delegation(user_id=owner_id, delegate_id=delegate.id, starts_at=starts_at, ends_at=ends_at,
                            flow_keys=flow_keys)
    db.session.add(delegation)
    db.session.flush()
    audit.record("create", resource="approval.delegation", record_id=delegation.id,
                 summary=f"{owner_id} -> {delegate.id}", actor=actor)
    return delegation


# Time limits --------------------------------------------------------------------------------------


def sweep_time_limits(now: datetime | None = None) -> int:
    """Apply each overdue task's time-limit action (remind, escalate, auto-approve, auto-reject) once;
    returns how many tasks were handled. Run by the ``approval.time_limits`` periodic job."""
    now = now or clock.now()
    due = db.session.execute(select(Task.id, Task.request_id).where(
        Task.status == "pending", Task.due_at <= now, Task.reminded_at.is_(None)).order_by(Task.due_at, Task.id)
        .limit(500)).all()
    handled = 0
    for task_id, request_id in due:
        req = engine.lock_request(request_id)
        task = db.session.get(Task, task_id, populate_existing=True)
        if req is None or task.status != "pending" or task.reminded_at is not None:
            continue
        node = engine.node_map(req.flow)[task.node_key]
        limit = node.get("time_limit") or {}
        action = limit.get("action", "remind")
        handled += 1
        if action == "approve":
            task.status, task.acted_at, task.reminded_at = "auto", now, now
            engine.inbox_close(task, status="done")
            engine.log(req, "auto_approve", None, task.node_key, task)
            engine.node_after_approval(req, task)
        elif action == "reject":
            task.status, task.acted_at, task.reminded_at = "rejected", now, now
            engine.inbox_close(task, status="cancelled")
            engine.log(req, "auto_reject", None, task.node_key, task)
            engine.node_after_rejection(req, task)
        elif action == "escalate" and (targets := [u for u in engine.resolve(limit.get("escalate_to") or {}, req, task.node_key)
                                                   if u not in (req.initiator_id, task.assignee_id)]):
            task.status, task.acted_at, task.reminded_at = "cancelled", now, now
            engine.inbox_close(task, status="cancelled")
            new = _clone(task, targets[0], "escalate")
            engine.log(req, "escalate", None, task.node_key, task, user_id=targets[0], new_task_id=new.id)
            engine.activate(req, new, node)
        else:
            task.reminded_at = now
            inbox.upsert(engine.PLUGIN, f"task:{task.id}:overdue", task.assignee_id, "reminder",
                         _("Overdue: %(title)s", title=req.title), url=engine.request_url(req.id),
                         subject_type=engine.SUBJECT_TYPE, subject_id=req.id, extra={"task_id": task.id})
            engine.log(req, "overdue_remind", None, task.node_key, task)
        db.session.flush()
    return handled


def sweep_job() -> None:
    """The periodic job: sweep and commit (the worker commits what the function leaves)."""
    sweep_time_limits()


def tasks_of(req: Request) -> list[Task]:
    return list(db.session.scalars(select(Task).where(Task.request_id == req.id).order_by(Task.id)))


def pending_task_for(user: User, req: Request) -> Task | None:
    """The pending task of ``req`` that ``user`` may act on now (theirs or delegated to them)."""
    if req.initiator_id == user.id:
        return None
    for task in db.session.scalars(select(Task).where(Task.request_id == req.id, Task.status == "pending").order_by(Task.id)):
        if can_act(user, task, req.flow_key):
            return task
    return None


def is_open(status: str) -> bool:
    return status in OPEN


def approved_status(status: str) -> bool:
    return status in APPROVED
