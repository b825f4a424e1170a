"""``/api/v1/inbox``: the caller's own inbox items, and completing them."""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import clock, inbox
from core.api import bp
from core.api.helpers import envelope, page_args
from core.errors import ValidationError
from core.extensions import db


def _iso(value):
    return value.isoformat() if value is not None else None


def dump(todo, now) -> dict:
    """An item as the API shows it. ``task_id`` is the owning plugin's own task behind the item
    (``extra["task_id"]``, e.g. an approval task to approve or reject), ``None`` for other items."""
    extra = todo.extra or {}
    return {
        "id": todo.id, "kind": todo.kind, "plugin": todo.plugin, "title": todo.title, "url": todo.url,
        "subject_type": todo.subject_type, "subject_id": todo.subject_id, "due_at": _iso(todo.due_at),
        "status": todo.status, "overdue": todo.is_overdue(now), "created_at": _iso(todo.created_at),
        "done_at": _iso(todo.done_at), "task_id": extra.get("task_id"), "extra": extra,
    }


@bp.get("/inbox")
@login_required
def list_inbox():
    """``?status=open|done|cancelled`` (default open), ``?kind=``, ``?plugin=``, ``?overdue=true``."""
    overdue = request.args.get("overdue", "false").lower()
    if overdue not in ("true", "false", "1", "0"):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"overdue": [_("Not a valid boolean.")]})
    query = inbox.items_query(current_user, status=request.args.get("status", "open"),
                              kind=request.args.get("kind") or None, plugin=request.args.get("plugin") or None,
                              overdue=overdue in ("true", "1"))
    page, per_page = page_args()
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    offset = (page - 1) * per_page
    rows = db.session.scalars(query.limit(per_page).offset(offset)).all() if offset < total else []
    now = clock.now()
    return jsonify(envelope([dump(row, now) for row in rows], total, page, per_page))


@bp.post("/inbox/<int:todo_id>/done")
@login_required
def complete_inbox_item(todo_id: int):
    """Mark one of the caller's own items done (404 for anyone else's, 422 for approval items)."""
    todo = inbox.complete(current_user, todo_id)
    db.session.commit()
    return jsonify(dump(todo, clock.now()))
