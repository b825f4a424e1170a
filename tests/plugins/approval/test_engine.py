"""The approval engine: modes, branches, approver sources, empty approvers, dedupe, versions, the hook."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.errors import ValidationError
from core.extensions import db
from core.inbox.models import Todo
from plugins.approval import services
from plugins.approval.models import Event
from tests.plugins.approval.conftest import act, approval, make_flow, pending, uid, user, users


def start(flow, who="sales1", form=None, **kwargs):
    req = services.start(flow.key, user(who), form if form is not None else {"amount": "100"}, **kwargs)
    db.session.commit()
    return req


def actions(req):
    return [e.action for e in db.session.scalars(select(Event).where(Event.request_id == req.id).order_by(Event.id))]


# Modes ---------------------------------------------------------------------------------------------


def test_sequential_node_asks_each_approver_in_turn(ctx):
    req = start(make_flow([approval("n", users("salesmgr", "finance1"))]))
    assert pending(req) == [("n", "salesmgr")]
    act("salesmgr", "approve", req)
    assert pending(req) == [("n", "finance1")] and req.status == "running"
    act("finance1", "approve", req)
    assert req.status == "approved" and pending(req) == []


def test_all_of_node_waits_for_every_approver(ctx):
    req = start(make_flow([approval("n", users("salesmgr", "finance1", "legal1"), "all")]))
    assert pending(req) == [("n", "finance1"), ("n", "legal1"), ("n", "salesmgr")]
    act("legal1", "approve", req)
    act("salesmgr", "approve", req)
    assert req.status == "running" and pending(req) == [("n", "finance1")]
    act("finance1", "approve", req)
    assert req.status == "approved"


def test_all_of_node_is_rejected_by_one_rejection(ctx):
    req = start(make_flow([approval("n", users("salesmgr", "finance1"), "all")]))
    act("finance1", "reject", req, "no budget")
    assert req.status == "rejected" and pending(req) == []


def test_any_of_node_passes_with_the_first_approval_and_cancels_the_others(ctx):
    req = start(make_flow([approval("n", users("salesmgr", "finance1"), "any")]))
    other = [t for t in services.tasks_of(req) if t.assignee_id == uid("salesmgr")][0]
    act("finance1", "approve", req)
    assert req.status == "approved"
    db.session.refresh(other)
    assert other.status == "cancelled"
    todo = db.session.scalar(select(Todo).where(Todo.source_key == f"task:{other.id}"))
    assert todo.status == "cancelled"


def test_ratio_node_passes_when_the_share_is_reached_and_fails_when_it_cannot_be(ctx):
    flow = make_flow([approval("n", users("salesmgr", "finance1", "legal1"), "ratio", ratio=0.6)])
    req = start(flow)
    act("salesmgr", "approve", req)
    act("finance1", "reject", req)
    assert req.status == "running"  # 2 of 3 is still possible
    act("legal1", "approve", req)
    assert req.status == "approved"
    req2 = start(flow)
    act("salesmgr", "reject", req2)
    assert req2.status == "running"
    act("legal1", "reject", req2)
    assert req2.status == "rejected"


# Branches ------------------------------------------------------------------------------------------


def branching_flow():
    return make_flow([{"key": "c", "type": "condition", "branches": [
        {"name": "big", "priority": 2, "rule": {"field": "amount", "op": ">", "value": 1000},
         "nodes": [approval("big", users("finance1"))]},
        {"name": "huge", "priority": 1, "rule": {"field": "amount", "op": ">", "value": 10000},
         "nodes": [approval("huge", users("gm"))]},
        {"name": "else", "default": True, "nodes": [approval("small", users("salesmgr"))]},
    ]}])


@pytest.mark.parametrize("amount, node", [("50000", "huge"), ("5000", "big"), ("10", "small")])
def test_the_matching_branch_with_the_lowest_priority_number_wins_else_the_default(ctx, amount, node):
    req = start(branching_flow(), form={"amount": amount})
    assert [key for key, _ in pending(req)] == [node]


def test_expense_under_5000_needs_only_the_manager(ctx):
    req = start(services.published_flow("expense"), form={"amount": "5000.00", "reason": "taxi"})
    act("salesmgr", "approve", req)
    assert req.status == "approved"


# Approver sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ({"source": "role", "role": "finance"}, ["finance1"]),
    ({"source": "dept_head", "level": 1}, ["salesmgr"]),  # sales1 heads 华东区 himself: the next head up
    ({"source": "manager", "level": 2}, ["salesmgr", "gm"]),
    ({"source": "manager", "level": 1}, ["salesmgr"]),
])
def test_approver_sources_name_the_right_people(ctx, source, expected):
    req = start(make_flow([approval("n", source)]))
    names = []
    while pending(req):
        name = pending(req)[0][1]
        names.append(name)
        act(name, "approve", req)
    assert names == expected and req.status == "approved"


def test_a_user_field_of_the_form_names_the_approver(ctx):
    form = [{"key": "reviewer", "label": "Reviewer", "type": "user", "required": True}]
    flow = make_flow([approval("n", {"source": "form_field", "field": "reviewer"})], form=form)
    req = start(flow, form={"reviewer": uid("legal1")})
    assert pending(req) == [("n", "legal1")]


def test_the_initiator_chooses_the_approver_when_submitting(ctx):
    flow = make_flow([approval("pick", {"source": "initiator_choice"})])
    req = start(flow, chosen={"pick": [uid("hr1")]})
    assert pending(req) == [("pick", "hr1")]
    with pytest.raises(ValidationError) as error:
        services.start(flow.key, user("sales1"), {}, chosen={"other": [uid("hr1")]})
    assert "chosen.other" in error.value.fields


# Empty approvers, dedupe, self ------------------------------------------------------------------


def test_empty_approver_policies(ctx):
    none = {"source": "dept_head", "level": 2}  # above 销售部 nobody heads the company
    skip = start(make_flow([approval("n", none, empty="skip")]))
    assert skip.status == "approved" and "empty_skipped" in actions(skip)
    auto = start(make_flow([approval("n", none, empty="approve")]))
    assert auto.status == "approved" and "empty_approved" in actions(auto)
    admin = start(make_flow([approval("n", none, empty="admin")]))
    assert pending(admin) == [("n", "admin")]
    act("admin", "approve", admin)
    assert admin.status == "approved"


def test_an_approver_who_already_approved_is_skipped_later(ctx):
    flow = make_flow([approval("a", users("salesmgr")), approval("b", users("salesmgr", "finance1"), "all")])
    req = start(flow)
    act("salesmgr", "approve", req)
    assert pending(req) == [("b", "finance1")]
    assert "skip" in actions(req)


def test_dedupe_can_be_turned_off(ctx):
    flow = make_flow([approval("a", users("salesmgr")), approval("b", users("salesmgr"), dedupe=False)])
    req = start(flow)
    act("salesmgr", "approve", req)
    assert pending(req) == [("b", "salesmgr")]


def test_the_initiator_is_never_their_own_approver(ctx):
    req = start(make_flow([approval("n", users("sales1", "finance1"))]))
    assert pending(req) == [("n", "finance1")]
    skipped = [t for t in services.tasks_of(req) if t.assignee_id == uid("sales1")]
    assert [t.status for t in skipped] == ["skipped"]


# Copies, versions, validation, hook ----------------------------------------------------------------


def test_cc_recipients_get_a_copy_in_their_inbox(ctx):
    flow = make_flow([approval("n", users("salesmgr"), cc=[{"source": "role", "role": "hr"}]),
                      {"key": "tell", "type": "cc", "cc": [users("legal1")]}])
    req = start(flow)
    copies = db.session.scalars(select(Todo).where(Todo.kind == "cc", Todo.subject_id == req.id)).all()
    assert [t.assignee_id for t in copies] == [uid("hr1")]
    act("salesmgr", "approve", req)
    copies = db.session.scalars(select(Todo).where(Todo.kind == "cc", Todo.subject_id == req.id)).all()
    assert sorted(t.assignee_id for t in copies) == sorted([uid("hr1"), uid("legal1")])
    assert services.get_request(user("legal1"), req.id) == req  # a copy may read it


def test_a_running_request_keeps_its_flow_version(ctx):
    v1 = make_flow([approval("n", users("salesmgr"))], key="pinned")
    old = start(v1)
    v2 = make_flow([approval("n", users("finance1"))], key="pinned")
    assert (v1.status, v2.status, v2.version) == ("retired", "published", 2)
    new = start(v2)
    assert pending(old) == [("n", "salesmgr")] and pending(new) == [("n", "finance1")]
    act("salesmgr", "approve", old)
    assert old.status == "approved" and old.flow.version == 1


def test_a_flow_with_a_bad_rule_is_refused_with_the_path_of_the_bad_part(ctx):
    bad = [{"key": "c", "type": "condition", "branches": [
        {"priority": 1, "rule": {"all": [{"field": "amount", "op": ">", "value": 1},
                                         {"field": "amount", "op": "~", "value": 1}]}, "nodes": []}]}]
    with pytest.raises(ValidationError) as error:
        make_flow(bad)
    assert "nodes[0].branches[0].rule.all[1].op" in error.value.fields


def test_hook_approval_decided(ctx):
    heard = []

    class Listener:
        from core.plugins import hookimpl

        @hookimpl
        def approval_decided(self, request, outcome):
            heard.append((request.id, outcome, request.subject_type))

    pm = ctx.extensions["plugins"].pm
    listener = Listener()
    pm.register(listener, name="listener")
    try:
        flow = make_flow([approval("n", users("salesmgr"))])
        from plugins.approval import api

        req = api.start_for_subject(flow.key, user("sales1"), "crm.contract", 7, form={"amount": "1"})
        db.session.commit()
        assert api.is_locked("crm.contract", 7) and heard == []
        act("salesmgr", "approve", req)
        assert heard == [(req.id, "approved", "crm.contract")]
        assert not api.is_locked("crm.contract", 7)
        assert api.state("crm.contract", 7)["status"] == "approved"
    finally:
        pm.unregister(listener)
