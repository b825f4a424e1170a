"""Decisions under load: many simultaneous calls decide a task once and advance a node once."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from core.errors import DomainError
from core.extensions import db
from plugins.approval import services
from plugins.approval.models import Event, Task
from tests.plugins.approval.conftest import approval, make_flow, uid, user, users  # noqa: F401


def run_together(app, calls):
    """Run each ``call()`` in its own thread with its own app context (and session), all at once."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def worker(index, call):
        with app.app_context():
            barrier.wait()
            try:
                call()
                db.session.commit()
                outcomes[index] = "ok"
            except DomainError as exc:
                db.session.rollback()
                outcomes[index] = exc.code
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                outcomes[index] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_fifty_simultaneous_approvals_of_one_task_decide_it_once(app):
    with app.app_context():
        flow = make_flow([approval("a", users("salesmgr")), approval("b", users("finance1"))])
        req = services.start(flow.key, user("sales1"), {"amount": "1"})
        db.session.commit()
        task_id = db.session.scalar(select(Task.id).where(Task.request_id == req.id, Task.status == "pending"))
        req_id = req.id

    def approve():
        services.approve(user("salesmgr"), task_id, "ok")

    outcomes = run_together(app, [approve] * 50)
    assert set(outcomes) == {"ok"}, outcomes  # the repeats are idempotent no-ops
    with app.app_context():
        assert count(Event, Event.request_id == req_id, Event.action == "approve") == 1
        assert count(Event, Event.request_id == req_id, Event.action == "node_approved") == 1
        assert count(Task, Task.request_id == req_id, Task.node_key == "b") == 1
        assert count(Task, Task.request_id == req_id, Task.status == "pending") == 1


def test_an_all_of_node_with_five_approvers_deciding_at_once_advances_exactly_once(app):
    names = ["salesmgr", "finance1", "legal1", "hr1", "buyer1"]
    with app.app_context():
        flow = make_flow([approval("a", users(*names), "all"), approval("b", users("gm"))])
        req = services.start(flow.key, user("sales1"), {"amount": "1"})
        db.session.commit()
        req_id = req.id
        tasks = {t.assignee_id: t.id for t in services.tasks_of(req) if t.status == "pending"}
        people = {uid(n): n for n in names}
    assert len(tasks) == 5

    def approver(user_id):
        def call():
            services.approve(user(people[user_id]), tasks[user_id])
        return call

    outcomes = run_together(app, [approver(u) for u in tasks])
    assert outcomes == ["ok"] * 5
    with app.app_context():
        assert count(Event, Event.request_id == req_id, Event.action == "approve") == 5
        assert count(Event, Event.request_id == req_id, Event.action == "node_approved") == 1
        assert count(Task, Task.request_id == req_id, Task.node_key == "b") == 1
        req = services.get_request(user("gm"), req_id)
        assert req.status == "running" and req.current_node == "b"


def test_simultaneous_approve_and_reject_of_one_task_leave_one_decision(app):
    with app.app_context():
        flow = make_flow([approval("a", users("salesmgr"))])
        req = services.start(flow.key, user("sales1"), {"amount": "1"})
        db.session.commit()
        task_id = db.session.scalar(select(Task.id).where(Task.request_id == req.id))
        req_id = req.id

    outcomes = run_together(app, [lambda: services.approve(user("salesmgr"), task_id),
                                  lambda: services.reject(user("salesmgr"), task_id)] * 5)
    assert outcomes.count("conflict") >= 1 and set(outcomes) <= {"ok", "conflict"}, outcomes
    with app.app_context():
        decided = count(Event, Event.request_id == req_id, Event.action.in_(("approve", "reject")))
        assert decided == 1
