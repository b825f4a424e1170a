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
from plugins.approval.models import Flow, Request

__all__ = ["start_for_subject", "state", "is_locked", "cancel_for_subject", "requests_for_subjects", "RUNNING"]

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


def requests_for_subjects(subjects: dict, limit: int = 200) -> list[dict]:
    """The requests about any of several subjects, newest first, in one query (no query per subject).

    ``subjects`` maps a subject type to its ids: a list, or a ``SELECT`` of one id column (so a
    caller passes its own scoped query and the ids never travel through Python). Each request is
    ``request_id``, ``subject_type``, ``subject_id``, ``title``, ``flow_key``, ``status``,
    ``current_node``, ``initiator_id``, ``created_at``, ``decided_at``. The caller decides who may
    see them: only ask about subjects the reader may read.
    """
    from sqlalchemy import and_, or_

    conditions = [and_(Request.subject_type == subject_type, Request.subject_id.in_(ids))
                  for subject_type, ids in subjects.items()]
    if not conditions:
        return []
    rows = db.session.execute(
        select(Request.id, Request.subject_type, Request.subject_id, Request.title, Request.flow_key, Request.status,
               Request.current_node, Request.initiator_id, Request.created_at, Request.decided_at)
        .where(or_(*conditions)).order_by(Request.created_at.desc(), Request.id.desc()).limit(limit)).all()
    return [{"request_id": r.id, "subject_type": r.subject_type, "subject_id": r.subject_id, "title": r.title,
             "flow_key": r.flow_key, "status": r.status, "current_node": r.current_node,
             "initiator_id": r.initiator_id, "created_at": r.created_at, "decided_at": r.decided_at} for r in rows]


def ensure_flow(key: str, definition: dict) -> bool:
    """Publish ``definition`` (``name``, ``form``, ``nodes``, optionally ``description``,
    ``subject_type``, ``settings``) as flow ``key`` unless a flow with that key exists already.

    For plugins that ship a flow their own code starts (e.g. the CRM's contract approval): an
    admin's later versions of the flow are kept, never overwritten. Returns whether it was created.
    The definition is validated like one saved in the designer (``ValidationError`` otherwise).
    """
    if db.session.scalar(select(Flow.id).where(Flow.key == key).limit(1)) is not None:
        return False
    services.save_flow(None, {**definition, "key": key, "publish": True})
    return True
