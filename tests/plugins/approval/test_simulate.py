"""Simulating a flow: the path, the approvers and the skipped nodes, without creating anything —
computed by the same functions the real start uses, so the two agree."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.errors import Forbidden, ValidationError
from core.extensions import db
from core.inbox.models import Todo
from core.org.models import User
from plugins.approval import services
from plugins.approval.models import Event, Flow, Request, Task
from tests.plugins.approval.conftest import approval, make_flow, pending, uid, user, users


def expense():
    return services.published_flow("expense")


def counts():
    return [db.session.scalar(select(func.count()).select_from(m)) for m in (Request, Task, Event, Todo)]


def username(user_id):
    return db.session.get(User, user_id).username


def by_key(result):
    return {step["key"]: step for step in result["steps"]}


def acting(step):
    return [u for u, reason in step["assignees"] if reason is None]


def test_simulating_an_expense_over_5000_shows_the_branch_and_each_approver_and_writes_nothing(ctx):
    before = counts()
    result = services.simulate(user("admin"), expense().id, uid("sales1"), {"amount": "8000", "reason": "客户拜访"})
    assert counts() == before
    assert result["path"] == ["manager", "finance", "gm"]
    steps = by_key(result)
    condition = steps["over_5000"]
    assert (condition["type"], condition["name"], condition["default"]) == ("condition", "金额大于 5000", False)
    assert condition["checked"] == [{"index": 0, "name": "金额大于 5000", "matched": True}]
    assert acting(steps["manager"]) == [uid("salesmgr")]
    assert acting(steps["finance"]) == [uid("finance1")] and acting(steps["gm"]) == [uid("gm")]
    assert [s["outcome"] for s in result["steps"] if s["type"] == "approval"] == ["pending"] * 3


def test_simulating_a_small_expense_takes_the_default_branch_and_names_the_nodes_not_taken(ctx):
    result = services.simulate(user("admin"), expense().id, uid("sales1"), {"amount": "3000", "reason": "打车"})
    assert result["path"] == ["manager"]
    condition = by_key(result)["over_5000"]
    assert condition["default"] is True and condition["checked"][0]["matched"] is False
    assert condition["not_taken"] == ["finance", "gm"]


@pytest.mark.parametrize("who, amount", [("sales1", "8000"), ("sales1", "100"), ("salesmgr", "9000"), ("gm", "6000")])
def test_the_simulation_agrees_with_a_real_start(ctx, who, amount):
    form = {"amount": amount, "reason": "对比"}
    result = services.simulate(user("admin"), expense().id, uid(who), form)
    req = services.start("expense", user(who), form)
    db.session.commit()
    assert result["path"] == req.path
    first = next(s for s in result["steps"] if s["type"] == "approval" and s["outcome"] in ("pending", "empty_to_admin"))
    people = acting(first) or first["admins"]
    if first["mode"] == "sequential":
        people = people[:1]
    assert pending(req) == sorted((first["key"], username(u)) for u in people)


def test_skipped_nodes_say_why(ctx):
    flow = make_flow([
        approval("self", users("sales1")),                       # the initiator only
        approval("first", users("salesmgr")),
        approval("again", users("salesmgr")),                    # dedupe
        approval("nobody", {"source": "role", "role": "none"}, empty="approve"),
        approval("to_admin", {"source": "role", "role": "none"}, empty="admin"),
    ])
    result = services.simulate(user("admin"), flow.id, uid("sales1"), {"amount": "1"})
    steps = by_key(result)
    assert (steps["self"]["outcome"], steps["self"]["assignees"]) == ("all_skipped", [(uid("sales1"), "self")])
    assert (steps["again"]["outcome"], steps["again"]["assignees"]) == ("all_skipped", [(uid("salesmgr"), "dedupe")])
    assert steps["nobody"]["outcome"] == "empty_approved"
    assert (steps["to_admin"]["outcome"], steps["to_admin"]["admins"]) == ("empty_to_admin", [uid("admin")])


def test_a_draft_can_be_simulated_before_it_is_published(ctx):
    draft = services.save_flow(user("admin"), {"key": "drafty", "name": "草稿", "form": [],
                                               "nodes": [approval("n", {"source": "manager", "level": 2})]})
    db.session.commit()
    assert draft.status == "draft"
    result = services.simulate(user("admin"), draft.id, uid("sales1"), {})
    assert acting(by_key(result)["n"]) == [uid("salesmgr"), uid("gm")]


def test_simulation_validates_the_form_and_the_initiator(ctx):
    with pytest.raises(ValidationError) as error:
        services.simulate(user("admin"), expense().id, uid("sales1"), {"amount": "abc"})
    assert set(error.value.fields) == {"amount", "reason"}
    with pytest.raises(ValidationError) as error:
        services.simulate(user("admin"), expense().id, 2**31 - 1, {"amount": "1", "reason": "x"})
    assert set(error.value.fields) == {"initiator_id"}


def test_only_flow_managers_may_simulate(ctx):
    with pytest.raises(Forbidden):
        services.simulate(user("sales1"), expense().id, uid("sales1"), {"amount": "1", "reason": "x"})
    assert db.session.scalar(select(func.count()).select_from(Flow)) >= 4
