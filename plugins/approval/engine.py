"""Walking a flow: which nodes a request passes, who approves each, when a node is done.

A flow's ``nodes`` is a list; each node has a unique ``key`` and a ``type``:

``approval``
    ``approvers`` (a source, below), ``mode`` (``sequential`` 依次, ``all`` 会签, ``any`` 或签,
    ``ratio`` with ``ratio`` 0..1), ``empty`` (no approver found: ``skip``, ``approve`` or
    ``admin``), ``dedupe`` (default true: an approver who already approved earlier is skipped),
    ``time_limit`` (``{"hours": 24, "action": "remind"|"escalate"|"approve"|"reject",
    "escalate_to": source}``), ``reject`` (``{"policy": "end"|"initiator"|"node", "node": key}``)
    and ``cc`` (a list of sources copied when the node is reached).
``cc``
    ``cc``: a list of sources copied when the request gets there.
``condition``
    ``branches``: ``[{"name", "priority", "rule", "nodes"}, ..., {"default": true, "nodes"}]``;
    the branch with the lowest priority number whose rule matches is taken, else the default.

Approver sources: ``{"source": "users", "users": [id, ...]}``, ``{"source": "role", "role": key}``,
``{"source": "dept_head", "level": n}`` (the head of the initiator's department n levels up),
``{"source": "manager", "level": n}`` (the initiator's manager chain up to level n),
``{"source": "form_field", "field": key}``, ``{"source": "initiator_choice"}`` (chosen when
submitting, per node key).

Conditions are decided once, on the snapshot, when the request starts (or is resubmitted): the
resulting list of node keys is the request's ``path``. Every function here works on a request the
caller has locked (``lock_request``) and leaves the commit to the caller.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from core import clock, inbox
from core.extensions import db
from core.org.models import Department, Role, User, user_roles
from plugins.approval import rules
from plugins.approval.models import APPROVED, OPEN, CC, Delegation, Event, Request, Task

MODES = ("sequential", "all", "any", "ratio")
EMPTY_POLICIES = ("skip", "approve", "admin")
TIME_ACTIONS = ("remind", "escalate", "approve", "reject")
REJECT_POLICIES = ("end", "initiator", "node")
SOURCES = ("users", "role", "dept_head", "manager", "form_field", "initiator_choice")
NODE_TYPES = ("approval", "cc", "condition")
PLUGIN = "approval"
SUBJECT_TYPE = "approval.request"


# Flow definitions ---------------------------------------------------------------------------------


def iter_nodes(nodes):
    """Every node of a node list, branches included, depth first."""
    for node in nodes or ():
        if not isinstance(node, dict):
            continue
        yield node
        if node.get("type") == "condition":
            for branch in node.get("branches") or ():
                if isinstance(branch, dict):
                    yield from iter_nodes(branch.get("nodes"))


def node_map(flow) -> dict[str, dict]:
    return {node["key"]: node for node in iter_nodes(flow.nodes)}


def check_nodes(nodes, form_keys: set[str]) -> dict[str, list[str]]:
    """Problems of a node list as ``{path: [message]}``; rule errors point into the rule."""
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()

    def add(path, message):
        errors.setdefault(path, []).append(message)

    def check_source(spec, path):
        if not isinstance(spec, dict) or spec.get("source") not in SOURCES:
            add(f"{path}.source", _("Must be one of: %(choices)s.", choices=", ".join(SOURCES)))
            return
        kind = spec["source"]
        if kind == "users":
            users = spec.get("users")
            if not isinstance(users, list) or not users or not all(isinstance(u, int) and not isinstance(u, bool) for u in users):
                add(f"{path}.users", _("A list of user ids."))
        elif kind == "role" and not isinstance(spec.get("role"), str):
            add(f"{path}.role", _("A role key."))
        elif kind in ("dept_head", "manager"):
            level = spec.get("level", 1)
            if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 20:
                add(f"{path}.level", _("A level from 1 to 20."))
        elif kind == "form_field" and spec.get("field") not in form_keys:
            add(f"{path}.field", _("Not a field of the form."))

    def walk(items, path):
        if not isinstance(items, list):
            add(path, _("Must be a list of nodes."))
            return
        for index, node in enumerate(items):
            where = f"{path}[{index}]"
            if not isinstance(node, dict):
                add(where, _("Must be an object."))
                continue
            key = node.get("key")
            if not isinstance(key, str) or not key or len(key) > 64 or key.startswith("@"):
                add(f"{where}.key", _("Each node needs a key (up to 64 characters)."))
            elif key in seen:
                add(f"{where}.key", _("This key is used twice."))
            seen.add(key)
            kind = node.get("type")
            if kind not in NODE_TYPES:
                add(f"{where}.type", _("Must be one of: %(choices)s.", choices=", ".join(NODE_TYPES)))
                continue
            if kind == "approval":
                check_source(node.get("approvers"), f"{where}.approvers")
                if node.get("mode", "sequential") not in MODES:
                    add(f"{where}.mode", _("Must be one of: %(choices)s.", choices=", ".join(MODES)))
                if node.get("mode") == "ratio":
                    ratio = node.get("ratio")
                    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 1:
                        add(f"{where}.ratio", _("A share between 0 and 1."))
                if node.get("empty", "skip") not in EMPTY_POLICIES:
                    add(f"{where}.empty", _("Must be one of: %(choices)s.", choices=", ".join(EMPTY_POLICIES)))
                limit = node.get("time_limit")
                if limit is not None:
                    if not isinstance(limit, dict) or not isinstance(limit.get("hours"), (int, float)) \
                            or isinstance(limit.get("hours"), bool) or not 0 < limit["hours"] <= 24 * 365:
                        add(f"{where}.time_limit.hours", _("A number of hours."))
                    elif limit.get("action", "remind") not in TIME_ACTIONS:
                        add(f"{where}.time_limit.action", _("Must be one of: %(choices)s.", choices=", ".join(TIME_ACTIONS)))
                    elif limit.get("action") == "escalate":
                        check_source(limit.get("escalate_to"), f"{where}.time_limit.escalate_to")
                reject = node.get("reject") or {}
                if not isinstance(reject, dict) or reject.get("policy", "end") not in REJECT_POLICIES:
                    add(f"{where}.reject.policy", _("Must be one of: %(choices)s.", choices=", ".join(REJECT_POLICIES)))
            if kind in ("approval", "cc"):
                cc = node.get("cc", [] if kind == "approval" else None)
                if not isinstance(cc, list) or (kind == "cc" and not cc):
                    add(f"{where}.cc", _("A list of sources."))
                else:
                    for i, spec in enumerate(cc):
                        check_source(spec, f"{where}.cc[{i}]")
            if kind == "condition":
                branches = node.get("branches")
                if not isinstance(branches, list) or not branches:
                    add(f"{where}.branches", _("A condition needs branches."))
                    continue
                defaults = 0
                for b, branch in enumerate(branches):
                    bpath = f"{where}.branches[{b}]"
                    if not isinstance(branch, dict):
                        add(bpath, _("Must be an object."))
                        continue
                    if branch.get("default"):
                        defaults += 1
                    else:
                        if not isinstance(branch.get("priority", 0), int):
                            add(f"{bpath}.priority", _("Not a valid integer."))
                        for rule_path, message in rules.validate(branch.get("rule"), f"{bpath}.rule"):
                            add(rule_path, message)
                    walk(branch.get("nodes", []), f"{bpath}.nodes")
                if defaults > 1:
                    add(f"{where}.branches", _("Only one branch can be the default."))

    walk(nodes, "nodes")
    keys = seen
    for node in iter_nodes(nodes if isinstance(nodes, list) else []):
        reject = node.get("reject") if node.get("type") == "approval" else None
        if isinstance(reject, dict) and reject.get("policy") == "node" and reject.get("node") not in keys:
            add(f"nodes.{node.get('key')}.reject.node", _("Not a node of this flow."))
    return errors


def trace(nodes, snapshot: dict) -> list[dict]:
    """The steps a request with ``snapshot`` takes through ``nodes``, in order, without side effects.

    Each approval or cc node on the way is ``{"type", "key"}``; each condition is
    ``{"type": "condition", "key", "branch": index, "name", "default": bool, "checked": [{"index",
    "name", "matched"}], "not_taken": [node keys of the other branches]}``, followed by the steps of
    the branch it chose. ``plan`` (the real start) and the designer's simulation both read this.
    """
    steps: list[dict] = []
    for node in nodes:
        if node["type"] != "condition":
            steps.append({"type": node["type"], "key": node["key"]})
            continue
        branches = node.get("branches") or []
        ruled = sorted((i for i, b in enumerate(branches) if not b.get("default")),
                       key=lambda i: branches[i].get("priority", 0))
        checked, chosen = [], None
        for index in ruled:
            matched = rules.evaluate(branches[index].get("rule") or {"all": []}, snapshot)
            checked.append({"index": index, "name": branches[index].get("name") or "", "matched": matched})
            if matched:
                chosen = index
                break
        if chosen is None:
            chosen = next((i for i, b in enumerate(branches) if b.get("default")), None)
        not_taken = [n["key"] for i, b in enumerate(branches) if i != chosen
                     for n in iter_nodes(b.get("nodes")) if n.get("type") != "condition"]
        step = {"type": "condition", "key": node["key"], "branch": chosen, "checked": checked, "not_taken": not_taken,
                "name": branches[chosen].get("name") or "" if chosen is not None else "",
                "default": bool(chosen is not None and branches[chosen].get("default"))}
        steps.append(step)
        if chosen is not None:
            steps += trace(branches[chosen].get("nodes") or [], snapshot)
    return steps


def plan(nodes, snapshot: dict) -> list[str]:
    """The keys of the approval and cc nodes a request with ``snapshot`` passes, in order."""
    return [step["key"] for step in trace(nodes, snapshot) if step["type"] != "condition"]


def decide_node(node: dict, ids: list[int], initiator_id: int, approved_before: set[int], admin_ids) -> dict:
    """Who gets a task at an approval node, and what happens when nobody does — without side effects.

    ``ids`` are the resolved approvers, ``approved_before`` the users whose earlier approval stands
    (dedupe), ``admin_ids`` a callable giving the administrators (asked only when needed). Returns
    ``{"assignees": [(user_id, skip_reason or None)], "outcome", "admins", "mode"}``; ``outcome`` is
    ``pending`` (someone must act), ``all_skipped``, ``empty_to_admin``, ``empty_approved`` or
    ``empty_skipped``. The real walk (``_create_tasks``) and the simulation both use it.
    """
    deduped = approved_before if node.get("dedupe", True) else set()
    assignees = [(user_id, "self" if user_id == initiator_id else "dedupe" if user_id in deduped else None)
                 for user_id in ids]
    mode = node.get("mode", "sequential")
    if any(reason is None for _user, reason in assignees):
        return {"assignees": assignees, "outcome": "pending", "admins": [], "mode": mode}
    if ids:
        return {"assignees": assignees, "outcome": "all_skipped", "admins": [], "mode": mode}
    policy = node.get("empty", "skip")
    if policy == "admin":
        targets = [i for i in admin_ids() if i != initiator_id]
        if targets:
            return {"assignees": [], "outcome": "empty_to_admin", "admins": targets, "mode": "any"}
        policy = "skip"
    return {"assignees": [], "outcome": "empty_approved" if policy == "approve" else "empty_skipped",
            "admins": [], "mode": mode}


# Approvers ----------------------------------------------------------------------------------------


def _active(ids) -> list[int]:
    """``ids`` without inactive or unknown users and repeats, order kept."""
    ids = [i for i in dict.fromkeys(ids) if isinstance(i, int) and 0 < i < 2**31]
    if not ids:
        return []
    active = set(db.session.scalars(select(User.id).where(User.id.in_(ids), User.active)))
    return [i for i in ids if i in active]


def resolve(spec: dict, req: Request, node_key: str = "") -> list[int]:
    """User ids the approver source ``spec`` names for ``req``, in order."""
    kind = spec.get("source")
    ctx = req.context
    if kind == "users":
        return _active(spec.get("users") or [])
    if kind == "role":
        return _active(db.session.scalars(
            select(user_roles.c.user_id).join(Role, Role.id == user_roles.c.role_id)
            .where(Role.key == spec.get("role")).order_by(user_roles.c.user_id)))
    if kind == "manager":
        chain, seen = [], {req.initiator_id}
        user = db.session.get(User, req.initiator_id)
        while user is not None and user.manager_id and len(chain) < spec.get("level", 1):
            if user.manager_id in seen:
                break  # a loop in the org chart
            seen.add(user.manager_id)
            chain.append(user.manager_id)
            user = db.session.get(User, user.manager_id)
        return _active(chain)
    if kind == "dept_head":
        initiator = db.session.get(User, req.initiator_id)
        if initiator is None or initiator.department is None:
            return []
        ids = [int(part) for part in initiator.department.path.strip("/").split("/") if part]
        departments = {d.id: d for d in db.session.scalars(select(Department).where(Department.id.in_(ids)))}
        heads = []
        for department_id in reversed(ids):
            head = departments[department_id].head_id if department_id in departments else None
            if head and head != req.initiator_id and head not in heads:
                heads.append(head)
        level = spec.get("level", 1)
        return _active(heads[level - 1:level])
    if kind == "form_field":
        value = (ctx.get("form") or {}).get(spec.get("field"))
        return _active(value if isinstance(value, list) else [value])
    if kind == "initiator_choice":
        return _active((ctx.get("chosen") or {}).get(node_key) or [])
    return []


def admins() -> list[int]:
    """Active system administrators: where a node with the ``admin`` empty-approver policy goes."""
    return _active(db.session.scalars(
        select(user_roles.c.user_id).join(Role, Role.id == user_roles.c.role_id)
        .where(Role.key == "admin").order_by(user_roles.c.user_id)))


# Timeline, inbox, locking ----------------------------------------------------------------------------


def log(req: Request, action: str, actor=None, node_key=None, task=None, comment: str = "", **details) -> Event:
    event = Event(request_id=req.id, at=clock.now(), actor_id=getattr(actor, "id", actor), action=action,
                  node_key=node_key, task_id=task.id if task is not None else None, comment=comment or "",
                  details=details)
    db.session.add(event)
    return event


def request_url(req_id: int) -> str:
    return f"/approval/requests/{req_id}"


def _task_key(task: Task) -> str:
    return f"task:{task.id}"


def inbox_open(req: Request, task: Task) -> None:
    inbox.upsert(PLUGIN, _task_key(task), task.assignee_id, "approval", req.title, url=request_url(req.id),
                 subject_type=SUBJECT_TYPE, subject_id=req.id, due_at=task.due_at, extra={"task_id": task.id})


def inbox_close(task: Task, by=None, status: str = "done") -> None:
    inbox.close(PLUGIN, _task_key(task), by=by, status=status)


def lock_request(request_id: int) -> Request | None:
    """The request, locked against concurrent decisions until the transaction ends.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite: a no-op ``UPDATE`` that takes the database's
    write lock first (waiting out the busy timeout), so the reads that follow are current.
    """
    if not 0 < request_id < 2**31:
        return None
    query = select(Request).where(Request.id == request_id).execution_options(populate_existing=True)
    if db.session.get_bind().dialect.name == "postgresql":
        return db.session.scalar(query.with_for_update(of=Request))
    table = Request.__table__
    db.session.execute(update(table).where(table.c.id == request_id).values(id=table.c.id))
    return db.session.scalar(query)


def node_tasks(req: Request, node_key: str | None = None) -> list[Task]:
    """The tasks of the request's current (or given) node in its current round, fresh from the database."""
    return list(db.session.scalars(
        select(Task).where(Task.request_id == req.id, Task.node_key == (node_key or req.current_node),
                           Task.round == req.round)
        .order_by(Task.seq, Task.id).execution_options(populate_existing=True)))


def delegate_for(user_id: int, flow_key: str):
    """The active delegation of ``user_id`` for ``flow_key`` now, if any."""
    now = clock.now()
    for delegation in db.session.scalars(
            select(Delegation).where(Delegation.user_id == user_id, Delegation.starts_at <= now,
                                     Delegation.ends_at > now).order_by(Delegation.id.desc())):
        if delegation.covers(flow_key, now):
            return delegation
    return None


def activate(req: Request, task: Task, node: dict) -> None:
    """Make ``task`` pending: apply a delegation, set the time limit, put it in the inbox."""
    delegation = delegate_for(task.assignee_id, req.flow_key)
    if delegation is not None and delegation.delegate_id != req.initiator_id and task.on_behalf_of_id is None:
        task.on_behalf_of_id, task.assignee_id, task.origin = task.assignee_id, delegation.delegate_id, "delegate"
        log(req, "delegate", None, task.node_key, task, user_id=task.assignee_id, on_behalf_of_id=task.on_behalf_of_id)
    task.status = "pending"
    limit = node.get("time_limit")
    if limit and task.origin != "escalate":
        task.due_at = clock.now() + timedelta(hours=limit["hours"])
    db.session.flush()
    inbox_open(req, task)


# Walking ------------------------------------------------------------------------------------------


def add_cc(req: Request, specs, node_key: str) -> None:
    ids = []
    for spec in specs or ():
        ids += resolve(spec, req, node_key)
    existing = set(db.session.scalars(select(CC.user_id).where(CC.request_id == req.id, CC.node_key == node_key)))
    for user_id in dict.fromkeys(ids):
        if user_id in existing or user_id == req.initiator_id:
            continue
        db.session.add(CC(request_id=req.id, user_id=user_id, node_key=node_key, created_at=clock.now()))
        inbox.upsert(PLUGIN, f"cc:{req.id}", user_id, "cc", req.title, url=request_url(req.id),
                     subject_type=SUBJECT_TYPE, subject_id=req.id)
        log(req, "cc", None, node_key, user_id=user_id)


def _already_approved(req: Request, node_key: str) -> set[int]:
    """Users whose approval in an earlier node of the path still stands (dedupe, 自动去重)."""
    before = req.path[:req.path.index(node_key)] if node_key in req.path else []
    if not before:
        return set()
    rows = db.session.execute(select(Task.node_key, Task.round, Task.assignee_id, Task.on_behalf_of_id, Task.status)
                              .where(Task.request_id == req.id, Task.node_key.in_(before))).all()
    latest: dict[str, int] = {}
    for key, round_, *_rest in rows:
        latest[key] = max(latest.get(key, 0), round_)
    return {assignee for key, round_, assignee, _behalf, status in rows
            if round_ == latest[key] and status in ("approved",)}


def enter(req: Request, index: int, actor=None) -> None:
    """Walk the path from ``index``: copy, create tasks, skip empty nodes; finish at the end."""
    nodes = node_map(req.flow)
    for key in req.path[index:]:
        node = nodes[key]
        req.current_node = key
        add_cc(req, node.get("cc"), key)
        if node["type"] == "cc":
            continue
        if _create_tasks(req, node):
            db.session.flush()
            return
    req.current_node = None
    finish(req, "approved", actor)


def _create_tasks(req: Request, node: dict) -> bool:
    """Tasks for an approval node; ``True`` when someone must act (else the node is passed)."""
    key = node["key"]
    ids = resolve(node["approvers"], req, key)
    decision = decide_node(node, ids, req.initiator_id,
                           _already_approved(req, key) if node.get("dedupe", True) else set(), admins)
    tasks = []
    for seq, (user_id, reason) in enumerate(decision["assignees"], start=1):
        task = Task(request_id=req.id, node_key=key, round=req.round, seq=seq, assignee_id=user_id, origin="rule",
                    status="skipped" if reason else "waiting", created_at=clock.now())
        db.session.add(task)
        if reason:
            db.session.flush()
            log(req, "skip", None, key, task, reason=reason, user_id=user_id)
        else:
            tasks.append(task)
    outcome = decision["outcome"]
    if outcome == "all_skipped":
        log(req, "node_passed", None, key, reason="all_skipped")
        return False
    if outcome in ("empty_approved", "empty_skipped"):
        log(req, outcome, None, key)
        return False
    if outcome == "empty_to_admin":
        log(req, "empty_to_admin", None, key)
        for seq, user_id in enumerate(decision["admins"], start=1):
            task = Task(request_id=req.id, node_key=key, round=req.round, seq=seq, assignee_id=user_id,
                        origin="rule", status="waiting", created_at=clock.now())
            db.session.add(task)
            tasks.append(task)
        node = {**node, "mode": "any"}
    db.session.flush()
    mode = node.get("mode", "sequential")
    for task in tasks[:1] if mode == "sequential" else tasks:
        activate(req, task, node)
    return True


def finish(req: Request, outcome: str, actor=None) -> None:
    """End the request with ``outcome`` (approved, rejected, withdrawn, cancelled) and tell everyone."""
    req.status = outcome
    req.current_node = None
    req.decided_at = clock.now()
    for task in db.session.scalars(select(Task).where(Task.request_id == req.id, Task.status.in_(OPEN))
                                   .execution_options(populate_existing=True)):
        task.status = "cancelled"
        inbox_close(task, status="cancelled")
    inbox.close(PLUGIN, f"request:{req.id}:resubmit", status="cancelled")
    log(req, outcome, actor)
    if outcome in ("approved", "rejected"):
        title = _("Approved: %(title)s", title=req.title) if outcome == "approved" \
            else _("Rejected: %(title)s", title=req.title)
        inbox.upsert(PLUGIN, f"request:{req.id}:outcome", req.initiator_id, "reminder", title,
                     url=request_url(req.id), subject_type=SUBJECT_TYPE, subject_id=req.id, reopen=True)
    db.session.flush()
    current_app.extensions["plugins"].hook.approval_decided(request=req, outcome=outcome)


def node_after_approval(req: Request, task: Task, actor=None) -> None:
    """``task`` was approved: wake its parent (加签 before), or move on when the node is done."""
    node = node_map(req.flow)[task.node_key]
    if task.origin == "add_sign" and task.parent_id:
        parent = db.session.get(Task, task.parent_id, populate_existing=True)
        if parent is not None and parent.status == "waiting":
            activate(req, parent, node)
            return
    tasks = [t for t in node_tasks(req, task.node_key) if t.status not in ("cancelled", "skipped")]
    main = [t for t in tasks if t.origin != "add_sign"]
    mode = node.get("mode", "sequential")
    approved = [t for t in main if t.status in APPROVED]
    if mode in ("any", "ratio"):
        enough = bool(approved) if mode == "any" else len(approved) / max(1, _base(req, task.node_key)) >= node["ratio"] - 1e-9
        if not enough:
            return
        keep = {t.id for t in tasks if t.origin == "add_sign" and t.parent_id in {a.id for a in approved}}
        for other in tasks:
            if other.status in OPEN and other.id not in keep:
                other.status = "cancelled"
                inbox_close(other, status="cancelled")
                log(req, "cancel_task", None, other.node_key, other, reason="node_decided")
    open_tasks = [t for t in tasks if t.status in OPEN]
    if any(t.status == "pending" for t in open_tasks):
        return
    waiting = [t for t in open_tasks if t.status == "waiting"]
    if waiting:
        activate(req, min(waiting, key=lambda t: (t.seq, t.id)), node)
        return
    log(req, "node_approved", None, task.node_key)
    enter(req, req.path.index(task.node_key) + 1, actor)


def _base(req: Request, node_key: str) -> int:
    """How many approvers a ratio node counts: its rule (and transferred or delegated) tasks."""
    return sum(1 for t in node_tasks(req, node_key)
               if t.origin != "add_sign" and t.status not in ("skipped",)
               and not (t.status == "cancelled" and _was_transferred(t)))


def _was_transferred(task: Task) -> bool:
    return db.session.scalar(select(Event.id).where(Event.task_id == task.id, Event.action.in_(("transfer", "escalate")))) is not None


def node_after_rejection(req: Request, task: Task, actor=None) -> None:
    """``task`` was rejected: in a ratio node wait while the ratio can still be met; else apply
    the node's reject policy."""
    node = node_map(req.flow)[task.node_key]
    if node.get("mode") == "ratio" and task.origin != "add_sign":
        tasks = [t for t in node_tasks(req, task.node_key) if t.origin != "add_sign"]
        possible = sum(1 for t in tasks if t.status in APPROVED or t.status in OPEN)
        if possible / max(1, _base(req, task.node_key)) >= node["ratio"] - 1e-9:
            return
    policy = (node.get("reject") or {}).get("policy", "end")
    log(req, "node_rejected", None, task.node_key, policy=policy)
    if policy == "initiator":
        send_back(req, "@initiator", actor)
    elif policy == "node":
        send_back(req, node["reject"]["node"], actor)
    else:
        finish(req, "rejected", actor)


def send_back(req: Request, target: str, actor=None) -> None:
    """Cancel what is open and go back to ``target``: ``@initiator`` (to edit and resubmit) or a node key."""
    for task in db.session.scalars(select(Task).where(Task.request_id == req.id, Task.status.in_(OPEN))
                                   .execution_options(populate_existing=True)):
        task.status = "cancelled"
        inbox_close(task, status="cancelled")
    req.round += 1
    if target == "@initiator" or target not in req.path:
        req.status, req.current_node = "returned", None
        inbox.upsert(PLUGIN, f"request:{req.id}:resubmit", req.initiator_id, "task",
                     _("Returned to you: %(title)s", title=req.title), url=request_url(req.id),
                     subject_type=SUBJECT_TYPE, subject_id=req.id, reopen=True)
        log(req, "returned_to_initiator", actor)
        db.session.flush()
        return
    log(req, "returned_to_node", actor, target)
    enter(req, req.path.index(target), actor)
