"""Approval news reaches people as notifications (the bell, and e-mail/robots by preference)."""
from __future__ import annotations

from sqlalchemy import select

from core.extensions import db
from core.notify.models import Notification
from plugins.approval import services
from tests.plugins.approval.conftest import act, approval, make_flow, uid, user, users


def titles(name) -> list[tuple[str, str]]:
    return [(n.kind, n.title) for n in db.session.scalars(
        select(Notification).where(Notification.recipient_id == uid(name)).order_by(Notification.id))]


def test_approver_and_initiator_are_notified_of_the_task_and_the_outcome(ctx):
    flow = make_flow([approval("n", users("salesmgr"))])
    req = services.start(flow.key, user("sales1"), {"amount": "100"})
    db.session.commit()
    assert [kind for kind, _title in titles("salesmgr")] == ["approval"]
    act("salesmgr", "approve", req)
    [(kind, title)] = titles("sales1")
    assert kind == "reminder" and req.title in title and title != req.title  # "Approved: ..." in some language
    url = db.session.scalar(select(Notification.url).where(Notification.recipient_id == uid("sales1")))
    assert url.startswith("/inbox/") and url.endswith("/open")
