"""The inbox page: 待办 / 已办 / 抄送我, filters, overdue marks, mark done, open the subject."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select

from core import clock, inbox
from core.errors import DomainError, Forbidden, NotFound
from core.web.views import local_path
from core.extensions import db
from core.inbox.models import KINDS, Todo

bp = Blueprint("inbox", __name__)

KIND_LABELS = {
    "approval": _l("Approval"),
    "task": _l("Task"),
    "cc": _l("CC"),
    "reminder": _l("Reminder"),
    "mention": _l("Mention"),
}


def _filters() -> dict:
    """The query-string filters that are set, for links that keep them."""
    return {key: request.args[key] for key in ("kind", "plugin", "overdue") if request.args.get(key)}


@bp.get("/inbox")
@login_required
def index():
    tab = request.args.get("tab", "todo")
    if tab not in inbox.TABS:
        tab = "todo"
    filters = _filters()
    kind = filters.get("kind") if filters.get("kind") in KINDS else None
    query = inbox.items_query(current_user, tab=tab, kind=kind, plugin=filters.get("plugin"),
                              overdue=tab != "done" and filters.get("overdue") == "1")
    page = db.paginate(query, per_page=current_app.config["YITI"]["PAGE_SIZE"], error_out=False, max_per_page=100)
    plugins = db.session.scalars(select(Todo.plugin).where(Todo.assignee_id == current_user.id)
                                 .distinct().order_by(Todo.plugin)).all()
    return render_template("inbox/index.html", tab=tab, page=page, filters=filters, counts=inbox.tab_counts(current_user),
                           kinds=KIND_LABELS, plugins=plugins, plugin_labels=_plugin_labels(), now=clock.now(),
                           manual_kinds=inbox.MANUAL_KINDS)


def _plugin_labels() -> dict:
    installed = current_app.extensions["plugins"].installed
    return {name: plugin.spec.label for name, plugin in installed.items()}


@bp.get("/inbox/<int:todo_id>/open")
@login_required
def open_item(todo_id: int):
    """Go to the item's subject, after checking the user may still read it."""
    todo = inbox.get_for(current_user, todo_id)
    if todo.subject_type and todo.subject_id is not None and not _may_read(todo):
        flash(_("You can no longer open what this item is about."), "warning")
        return redirect(url_for("inbox.index"))
    target = local_path(todo.url or "")
    if target is None:
        flash(_("This item has no page to open."), "warning")
        return redirect(url_for("inbox.index"))
    return redirect(target)


def _may_read(todo: Todo) -> bool:
    """The subject is a declared resource the user may read (in SQL); unknown subject types pass,
    as their own page checks access."""
    from core import resources
    from core.registry import resources as declared

    resource = declared().get(todo.subject_type)
    if resource is None:
        return True
    try:
        resources.get(resource, current_user, todo.subject_id)
    except (NotFound, Forbidden):
        return False
    return True


@bp.post("/inbox/<int:todo_id>/done")
@login_required
def mark_done(todo_id: int):
    try:
        todo = inbox.complete(current_user, todo_id)
        db.session.commit()
        flash(_("Marked as done: %(title)s", title=todo.title), "success")
    except NotFound:
        raise
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    tab = request.form.get("tab")
    return redirect(url_for("inbox.index", tab=tab if tab in inbox.TABS else "todo"))
