"""The unified inbox: every plugin's to-dos in one table, written only through this service.

A plugin names each item by ``(plugin, source_key, assignee)``: ``upsert`` with the same triple
updates the item instead of adding a second one, so re-running a job or re-submitting a form is
harmless. Both ``upsert`` and ``close`` work in the caller's transaction (they commit with the
business change or not at all).

Re-entry rules of ``upsert``: title, url, kind, subject and due date are updated; a *cancelled*
item is opened again (its source wants it back, e.g. an approval returned to this approver); a
*done* item stays done unless ``reopen=True`` (a retried job must not undo someone's work).
Done items are kept, never deleted. A new (or reopened) item emits ``core.todo_assigned`` and
notifies its assignee (``core.notify.todo_assigned``: the bell, e-mail, robots) in the same transaction. *Overdue* is a query (``open and due_at < now``), not a state.
"""
from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import and_, func, select, update

from core import audit, clock
from core.errors import BusinessRuleError, NotFound, ValidationError
from core.extensions import db
from core.inbox.models import KINDS, STATUSES, Todo

__all__ = ["KINDS", "STATUSES", "Todo", "upsert", "close", "open_count", "tab_counts", "items", "overdue",
           "get_for", "complete", "about"]

#: The kinds a person completes by hand; approval items are closed by the approval engine.
MANUAL_KINDS = ("task", "cc", "reminder", "mention")


def _user_id(user) -> int:
    return user if isinstance(user, int) else user.id


def upsert(plugin: str, source_key: str, assignee, kind: str, title: str, url: str = "",
           subject_type: str | None = None, subject_id: int | None = None, due_at: datetime | None = None,
           reopen: bool = False, extra: dict | None = None) -> Todo:
    """Create or update the item ``(plugin, source_key, assignee)`` and return it.

    ``assignee`` is a user or a user id; ``due_at`` an aware datetime or ``None``; ``extra`` a small
    JSON object the API returns with the item (``{"task_id": 7}``), kept when an upsert omits it. Race-safe: two
    transactions upserting the same triple leave one row (``INSERT ... ON CONFLICT DO NOTHING``).
    """
    if kind not in KINDS:
        raise ValueError(f"inbox kind {kind!r} is not one of {', '.join(KINDS)}")
    assignee_id = _user_id(assignee)
    now = clock.now()
    values = {"kind": kind, "title": title[:300], "url": url or "", "subject_type": subject_type,
              "subject_id": subject_id, "due_at": due_at}
    if extra is not None:
        if not isinstance(extra, dict):
            raise ValueError("inbox extra must be a dict")
        values["extra"] = extra
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    inserted = db.session.execute(
        insert(Todo.__table__)
        .values(plugin=plugin, source_key=source_key, assignee_id=assignee_id, status="open",
                created_at=now, updated_at=now, **values)
        .on_conflict_do_nothing(index_elements=["plugin", "source_key", "assignee_id"])
        .returning(Todo.__table__.c.id)
    ).scalar() is not None
    todo = db.session.scalar(
        select(Todo).where(Todo.plugin == plugin, Todo.source_key == source_key, Todo.assignee_id == assignee_id)
        .execution_options(populate_existing=True)
    )
    for key, value in values.items():
        setattr(todo, key, value)
    reopened = todo.status == "cancelled" or (reopen and todo.status == "done")
    if reopened:
        todo.status, todo.done_at, todo.done_by_id = "open", None, None
    db.session.flush()
    if inserted or reopened:
        from core import events

        events.emit("core.todo_assigned", todo_id=todo.id, plugin=plugin, kind=kind, assignee_id=assignee_id,
                    title=todo.title, url=todo.url, due_at=due_at)
        from core import notify

        notify.todo_assigned(todo)  # the bell, e-mail and robots, by the assignee's preferences
    return todo


def close(plugin: str, source_key: str, by=None, assignee=None, status: str = "done") -> int:
    """Close the open items of ``source_key`` (only ``assignee``'s when given); return how many.

    ``status`` is ``done`` (the work was done, by ``by``) or ``cancelled`` (it is no longer needed,
    e.g. another approver decided first). Closing what is already closed changes nothing.
    """
    if status not in ("done", "cancelled"):
        raise ValueError("status must be 'done' or 'cancelled'")
    query = (update(Todo).where(Todo.plugin == plugin, Todo.source_key == source_key, Todo.status == "open")
             .values(status=status, done_at=clock.now(), updated_at=clock.now(),
                     done_by_id=_user_id(by) if by is not None else None)
             .execution_options(synchronize_session="fetch"))
    if assignee is not None:
        query = query.where(Todo.assignee_id == _user_id(assignee))
    return db.session.execute(query).rowcount


def _todo_tab(user):
    return and_(Todo.assignee_id == _user_id(user), Todo.status == "open", Todo.kind != "cc")


def open_count(user) -> int:
    """How many open items (cc copies aside) wait for ``user``: one indexed ``COUNT``, for the menu."""
    return db.session.scalar(select(func.count()).select_from(Todo).where(_todo_tab(user)))


def tab_counts(user) -> dict:
    """``{"todo": n, "cc": m}``: open to-dos and unread copies, in one query."""
    is_cc = Todo.kind == "cc"
    rows = db.session.execute(
        select(is_cc, func.count()).where(Todo.assignee_id == _user_id(user), Todo.status == "open")
        .group_by(is_cc)
    ).all()
    counts = {"todo": 0, "cc": 0}
    for cc, count in rows:
        counts["cc" if cc else "todo"] += count
    return counts


TABS = ("todo", "done", "cc")


def items_query(user, tab: str | None = None, status: str | None = None, kind: str | None = None,
                plugin: str | None = None, overdue: bool = False):
    """The ``SELECT`` of ``user``'s items, newest relevant first.

    ``tab``: ``todo`` (open, no cc), ``done`` (done, no cc), ``cc`` (copies, open and read);
    or ``status`` for the raw list the API offers. Unknown values are a ``ValidationError``.
    """
    if tab is not None and tab not in TABS:
        raise ValidationError(_("Unknown tab."), fields={"tab": [_("Must be one of: %(choices)s.", choices=", ".join(TABS))]})
    if status is not None and status not in STATUSES:
        raise ValidationError(_("Unknown status."),
                              fields={"status": [_("Must be one of: %(choices)s.", choices=", ".join(STATUSES))]})
    if kind and kind not in KINDS:
        raise ValidationError(_("Unknown kind."), fields={"kind": [_("Must be one of: %(choices)s.", choices=", ".join(KINDS))]})
    query = select(Todo).where(Todo.assignee_id == _user_id(user))
    done_order = (Todo.done_at.desc(), Todo.id.desc())
    due_order = (Todo.due_at.is_(None), Todo.due_at, Todo.id.desc())
    order = due_order
    if tab == "todo":
        query = query.where(Todo.status == "open", Todo.kind != "cc")
    elif tab == "done":
        query, order = query.where(Todo.status == "done", Todo.kind != "cc"), done_order
    elif tab == "cc":
        query = query.where(Todo.status.in_(("open", "done")), Todo.kind == "cc")
        order = (Todo.status.desc(), Todo.created_at.desc(), Todo.id.desc())  # unread ("open") first
    if status is not None:
        query = query.where(Todo.status == status)
        if status != "open":
            order = done_order
    if kind:
        query = query.where(Todo.kind == kind)
    if plugin:
        query = query.where(Todo.plugin == plugin)
    if overdue:
        query = query.where(Todo.status == "open", Todo.due_at < clock.now())
    return query.order_by(*order)


def items(user, tab: str | None = None, status: str | None = None, kind: str | None = None,
          plugin: str | None = None, overdue: bool = False, limit: int = 200) -> list[Todo]:
    """``user``'s items (see ``items_query``), at most ``limit``."""
    return list(db.session.scalars(items_query(user, tab, status, kind, plugin, overdue).limit(limit)))


def overdue(plugin: str | None = None, kind: str | None = None, limit: int = 1000) -> list[Todo]:
    """Open items past their due date, oldest due first (for reminder jobs)."""
    query = select(Todo).where(Todo.status == "open", Todo.due_at < clock.now())
    if plugin:
        query = query.where(Todo.plugin == plugin)
    if kind:
        query = query.where(Todo.kind == kind)
    return list(db.session.scalars(query.order_by(Todo.due_at, Todo.id).limit(limit)))


def about(subject_type: str, subject_id: int, limit: int = 20) -> list[Todo]:
    """The open items about one record (``subject_type`` is its resource's key), whoever they are for,
    soonest due first: what its page shows as waiting on someone."""
    return list(db.session.scalars(select(Todo).where(
        Todo.subject_type == subject_type, Todo.subject_id == subject_id, Todo.status == "open")
        .order_by(Todo.due_at.is_(None), Todo.due_at, Todo.id).limit(limit)))


def get_for(user, todo_id: int) -> Todo:
    """The item ``todo_id`` if it is assigned to ``user``; otherwise ``NotFound`` (same for missing)."""
    todo = db.session.scalar(select(Todo).where(Todo.id == todo_id, Todo.assignee_id == _user_id(user))) \
        if -2**31 <= todo_id < 2**31 else None
    if todo is None:
        raise NotFound(_("Not found."))
    return todo


def complete(user, todo_id: int) -> Todo:
    """``user`` marks their own item done. Approval items cannot be (the approval decides them)."""
    todo = get_for(user, todo_id)
    if todo.kind not in MANUAL_KINDS:
        raise BusinessRuleError(_("Approval items are completed by approving or rejecting them."))
    if todo.status != "open":
        return todo  # done already (or withdrawn by its source): nothing to do
    todo.status, todo.done_at, todo.done_by_id = "done", clock.now(), _user_id(user)
    audit.record("complete", resource="core.todo", record_id=todo.id, summary=todo.title[:255],
                 changes={"status": ["open", "done"]}, actor=user)
    db.session.flush()
    return todo
