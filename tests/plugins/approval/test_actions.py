"""Actions on requests: approve, reject policies, withdraw, transfer, 加签, 退回, 催办, comment,
delegation, time limits and the inbox kept in step."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core import clock
from core.errors import BusinessRuleError, Conflict, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.inbox.models import Todo
from plugins.approval import services
from plugins.approval.models import Event, Task
from tests.plugins.approval.conftest import act, approval, make_flow, pending, task_of, uid, user, users

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def start(flow, who="sales1", form=None):
    req = services.start(flow.key, user(who), form if form is not None else {"amount": "100"})
    db.session.commit()
    return req


def two_steps(**first):
    return make_flow([approval("a", users("salesmgr"), **first), approval("b", users("finance1"))])


def events(req, action):
    return db.session.scalars(select(Event).where(Event.request_id == req.id, Event.action == action)).all()


def todo(source_key, assignee):
    return db.session.scalar(select(Todo).where(Todo.plugin == "approval", Todo.source_key == source_key,
                                                Todo.assignee_id == uid(assignee)))


def test_each_pending_task_is_an_approval_item_in_its_assignees_inbox(ctx):
    req = start(two_steps())
    task = task_of(req, "salesmgr")
    item = todo(f"task:{task.id}", "salesmgr")
    assert (item.kind, item.status, item.subject_type, item.subject_id) == ("approval", "open", "approval.request", req.id)
    act("salesmgr", "approve", req)
    db.session.refresh(item)
    assert item.status == "done" and item.done_by_id == uid("salesmgr")
    assert todo(f"task:{task_of(req, 'finance1').id}", "finance1").status == "open"


def test_the_initiator_hears_the_outcome(ctx):
    req = start(two_steps())
    act("salesmgr", "approve", req)
    act("finance1", "approve", req)
    item = todo(f"request:{req.id}:outcome", "sales1")
    assert item.kind == "reminder" and item.status == "open"


def test_approving_twice_is_harmless_and_recorded_once(ctx):
    req = start(two_steps())
    task = task_of(req, "salesmgr")
    services.approve(user("salesmgr"), task.id)
    db.session.commit()
    services.approve(user("salesmgr"), task.id)
    db.session.commit()
    assert len(events(req, "approve")) == 1
    with pytest.raises(Conflict):
        services.reject(user("salesmgr"), task.id)
    db.session.rollback()


def test_only_the_assignee_may_act_and_never_the_initiator(ctx):
    req = start(two_steps())
    task = task_of(req, "salesmgr")
    with pytest.raises(Forbidden):
        services.approve(user("sales1"), task.id)
    db.session.rollback()
    with pytest.raises(NotFound):  # cannot even see it
        services.approve(user("sales2"), task.id)
    db.session.rollback()
    with pytest.raises(ValidationError):
        services.transfer(user("salesmgr"), task.id, uid("sales1"))
    db.session.rollback()


def test_waiting_tasks_cannot_be_decided_before_their_turn(ctx):
    req = start(make_flow([approval("n", users("salesmgr", "finance1"))]))
    waiting = [t for t in services.tasks_of(req) if t.assignee_id == uid("finance1")][0]
    with pytest.raises(BusinessRuleError):
        services.approve(user("finance1"), waiting.id)
    db.session.rollback()


def test_reject_ends_the_request_by_default(ctx):
    req = start(two_steps())
    act("salesmgr", "reject", req, "too expensive")
    assert req.status == "rejected" and req.decided_at is not None
    assert events(req, "reject")[0].comment == "too expensive"


def test_reject_back_to_the_initiator_who_edits_and_resubmits(ctx):
    req = start(two_steps(reject={"policy": "initiator"}))
    act("salesmgr", "reject", req)
    assert req.status == "returned" and pending(req) == []
    assert todo(f"request:{req.id}:resubmit", "sales1").kind == "task"
    services.resubmit(user("sales1"), req.id, {"amount": "90"})
    db.session.commit()
    assert req.status == "running" and req.round == 2 and req.context["form"]["amount"] == "90.00"
    assert pending(req) == [("a", "salesmgr")]
    assert todo(f"request:{req.id}:resubmit", "sales1").status == "done"
    act("salesmgr", "approve", req)
    act("finance1", "approve", req)
    assert req.status == "approved"


def test_reject_back_to_a_node_walks_again_from_there(ctx):
    flow = make_flow([approval("a", users("salesmgr")),
                      approval("b", users("finance1"), reject={"policy": "node", "node": "a"})])
    req = start(flow)
    act("salesmgr", "approve", req)
    act("finance1", "reject", req)
    assert req.status == "running" and req.round == 2 and pending(req) == [("a", "salesmgr")]
    act("salesmgr", "approve", req)
    assert pending(req) == [("b", "finance1")]  # the earlier approval of a is stale: no dedupe here


def test_withdraw_before_any_decision(ctx):
    req = start(two_steps())
    task = task_of(req, "salesmgr")
    services.withdraw(user("sales1"), req.id)
    db.session.commit()
    assert req.status == "withdrawn"
    assert todo(f"task:{task.id}", "salesmgr").status == "cancelled"
    services.withdraw(user("sales1"), req.id)  # again: nothing happens
    assert len(events(req, "withdrawn")) == 1


def test_withdraw_after_a_decision_only_when_the_flow_allows_it(ctx):
    req = start(two_steps())
    act("salesmgr", "approve", req)
    with pytest.raises(BusinessRuleError):
        services.withdraw(user("sales1"), req.id)
    db.session.rollback()
    allowed = make_flow([approval("a", users("salesmgr")), approval("b", users("finance1"))],
                        settings={"allow_withdraw": True})
    req2 = start(allowed)
    act("salesmgr", "approve", req2)
    services.withdraw(user("sales1"), req2.id)
    db.session.commit()
    assert req2.status == "withdrawn"
    with pytest.raises(Forbidden):
        services.withdraw(user("salesmgr"), req.id)
    db.session.rollback()


def test_transfer_hands_the_task_to_someone_else(ctx):
    req = start(two_steps())
    new = act("salesmgr", "transfer", req, uid("hr1"), "please handle")
    assert pending(req) == [("a", "hr1")] and new.origin == "transfer"
    assert [t.status for t in services.tasks_of(req) if t.assignee_id == uid("salesmgr")] == ["cancelled"]
    act("hr1", "approve", req)
    assert pending(req) == [("b", "finance1")]


def test_add_approver_before_me_then_the_task_comes_back(ctx):
    req = start(two_steps())
    act("salesmgr", "add_approver", req, uid("legal1"), "before")
    assert pending(req) == [("a", "legal1")]
    act("legal1", "approve", req)
    assert pending(req) == [("a", "salesmgr")]
    act("salesmgr", "approve", req)
    assert pending(req) == [("b", "finance1")]


def test_add_approver_after_me_holds_the_node_until_they_approve(ctx):
    req = start(make_flow([approval("a", users("salesmgr", "hr1"), "any"), approval("b", users("finance1"))]))
    act("salesmgr", "add_approver", req, uid("legal1"), "after")
    assert pending(req) == [("a", "legal1")]  # any-of: hr1 is no longer needed, legal1 is
    act("legal1", "approve", req)
    assert pending(req) == [("b", "finance1")]


def test_return_to_an_earlier_node(ctx):
    req = start(make_flow([approval("a", users("salesmgr")), approval("b", users("finance1")),
                           approval("c", users("gm"))]))
    act("salesmgr", "approve", req)
    act("finance1", "approve", req)
    with pytest.raises(ValidationError):
        services.return_to(user("gm"), task_of(req, "gm").id, "c")
    db.session.rollback()
    act("gm", "return_to", req, "b", "check the invoice")
    assert pending(req) == [("b", "finance1")] and req.round == 2
    assert task_of(req, "finance1").round == 2


def test_remind_puts_a_reminder_in_the_approvers_inbox(ctx):
    req = start(make_flow([approval("a", users("salesmgr", "finance1"), "all")]))
    assert services.remind(user("sales1"), req.id) == 2
    db.session.commit()
    reminders = db.session.scalars(select(Todo).where(Todo.kind == "reminder", Todo.subject_id == req.id)).all()
    assert sorted(t.assignee_id for t in reminders) == sorted([uid("salesmgr"), uid("finance1")])
    with pytest.raises(Forbidden):
        services.remind(user("salesmgr"), req.id)
    db.session.rollback()


def test_comments_go_on_the_timeline_of_readers_only(ctx):
    req = start(two_steps())
    services.comment(user("salesmgr"), req.id, "looks fine")
    db.session.commit()
    assert events(req, "comment")[0].comment == "looks fine"
    with pytest.raises(NotFound):
        services.comment(user("sales2"), req.id, "nosy")
    db.session.rollback()


# Delegation ----------------------------------------------------------------------------------------


def test_a_delegate_gets_new_tasks_while_the_approver_is_away(ctx):
    flow = two_steps()
    clock.set_now(T0)
    services.set_delegation(user("salesmgr"), uid("hr1"), T0 - timedelta(hours=1), T0 + timedelta(days=3), [flow.key])
    db.session.commit()
    req = start(flow)
    task = task_of(req, "hr1")
    assert (task.origin, task.on_behalf_of_id) == ("delegate", uid("salesmgr"))
    act("hr1", "approve", req)
    assert pending(req) == [("b", "finance1")]
    clock.set_now(T0 + timedelta(days=4))  # back from holiday: no more delegation
    req2 = start(flow)
    assert pending(req2) == [("a", "salesmgr")]


def test_a_delegation_for_other_flows_does_not_apply(ctx):
    clock.set_now(T0)
    services.set_delegation(user("salesmgr"), uid("hr1"), T0 - timedelta(hours=1), T0 + timedelta(days=3), ["travel"])
    db.session.commit()
    req = start(two_steps())
    assert pending(req) == [("a", "salesmgr")]


def test_a_delegate_may_act_on_a_task_assigned_before_the_delegation(ctx):
    clock.set_now(T0)
    req = start(two_steps())
    task = task_of(req, "salesmgr")
    services.set_delegation(user("salesmgr"), uid("hr1"), T0, T0 + timedelta(days=1))
    db.session.commit()
    services.approve(user("hr1"), task.id)
    db.session.commit()
    assert events(req, "approve")[0].details["on_behalf_of_id"] == uid("salesmgr")


# Time limits -----------------------------------------------------------------------------------------


def timed(action, **extra):
    limit = {"hours": 24, "action": action, **extra}
    return make_flow([approval("a", users("salesmgr"), time_limit=limit), approval("b", users("finance1"))])


def test_time_limit_remind_happens_once(ctx):
    clock.set_now(T0)
    req = start(timed("remind"))
    assert task_of(req, "salesmgr").due_at == T0 + timedelta(hours=24)
    assert services.sweep_time_limits(T0 + timedelta(hours=23)) == 0
    clock.set_now(T0 + timedelta(hours=25))
    assert services.sweep_time_limits() == 1
    db.session.commit()
    assert services.sweep_time_limits() == 0
    assert todo(f"task:{task_of(req, 'salesmgr').id}:overdue", "salesmgr").kind == "reminder"


def test_time_limit_escalates_to_someone_else(ctx):
    clock.set_now(T0)
    req = start(timed("escalate", escalate_to={"source": "role", "role": "gm"}))
    clock.set_now(T0 + timedelta(hours=25))
    services.sweep_time_limits()
    db.session.commit()
    assert pending(req) == [("a", "gm")]


@pytest.mark.parametrize("action, status, next_pending", [("approve", "running", [("b", "finance1")]),
                                                          ("reject", "rejected", [])])
def test_time_limit_decides_automatically(ctx, action, status, next_pending):
    clock.set_now(T0)
    req = start(timed(action))
    clock.set_now(T0 + timedelta(hours=25))
    services.sweep_time_limits()
    db.session.commit()
    db.session.refresh(req)
    assert req.status == status and pending(req) == next_pending
    first = db.session.scalar(select(Task).where(Task.request_id == req.id, Task.node_key == "a"))
    assert first.status == ("auto" if action == "approve" else "rejected")


def test_hook_register_jobs_declares_the_time_limit_sweep(ctx):
    from core import jobs

    assert "approval.time_limits" in jobs.periodic_jobs(ctx)
