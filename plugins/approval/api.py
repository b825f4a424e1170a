"""What other plugins may use of the approval plugin (the only module they import).

    from plugins.approval import api as approval

    req = approval.start_for_subject("purchase", user, "srm.order", order.id, form={"amount": "12000"})
    approval.state("srm.order", order.id)      # {"request_id", "status", "flow_key", "current_node", ...}
    approval.is_locked("srm.order", order.id)  # True while a request about it runs: refuse edits

The outcome arrives through the ``approval_decided(request, outcome)`` hook, inside the deciding
transaction. Everything here works in the caller's transaction and leaves the commit to it.
"""
from __future__ import annotations

from sqlalchemy import select

from core.extensions import db
from plugins.approval import services
from plugins.approval.models import Request

__all__ = ["start_for_subject", "state", "is_locked", "cancel_for_subject", "RUNNING"]

#: Request statuses during which the subject is under approval.
RUNNING = ("running", "returned")


def start_for_subject(flow_key: str, initiator, subject_type: str, subject_id: int, form: dict | None = None,
                      context: dict | None = None, title: str | None = None):
    """Start a request on the published ``flow_key`` about ``(subject_type, subject_id)``.

    ``form`` are the values of the flow's form (conditions read them), ``context`` a JSON-ready
    snapshot of the subject kept with the request (read as ``subject.<field>`` by conditions).
    """
    return services.start(flow_key, initiator, form or {}, subject=(subject_type, subject_id),
                          subject_data=context, title=title)


def _latest(subject_type: str, subject_id: int) -> Request | None:
    return db.session.scalar(select(Request).where(Request.subject_type == subject_type,
                                                   Request.subject_id == subject_id)
                             .order_by(Request.id.desc()).limit(1))


def state(subject_type: str, subject_id: int) -> dict | None:
    """The latest request about a subject: ``request_id``, ``status``, ``flow_key``,
    ``current_node``, ``decided_at``; ``None`` when there is none."""
    req = _latest(subject_type, subject_id)
    if req is None:
        return None
    return {"request_id": req.id, "status": req.status, "flow_key": req.flow_key, "current_node": req.current_node,
            "decided_at": req.decided_at}


def is_locked(subject_type: str, subject_id: int) -> bool:
    """Whether a request about the subject is still running (the subject should not be edited)."""
    return db.session.scalar(select(Request.id).where(Request.subject_type == subject_type,
                                                      Request.subject_id == subject_id,
                                                      Request.status.in_(RUNNING)).limit(1)) is not None


def cancel_for_subject(subject_type: str, subject_id: int) -> int:
    """Cancel the running requests about a subject (it was deleted); returns how many."""
    ids = list(db.session.scalars(select(Request.id).where(Request.subject_type == subject_type,
                                                           Request.subject_id == subject_id,
                                                           Request.status.in_(RUNNING))))
    for request_id in ids:
        services.cancel(None, request_id)
    return len(ids)
