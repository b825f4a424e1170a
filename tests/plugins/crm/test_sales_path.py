"""The CRM sales path: kanban stage moves, contract approval, orders with invoice requests, ticket SLA
escalation and the public lead form's defences — on SQLite and PostgreSQL."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core import clock
from core.audit.models import AuditEntry
from core.extensions import db
from core.inbox.models import Todo
from core.org.models import User
from plugins.approval import services as approvals
from plugins.approval.models import Request, Task
from plugins.crm import sales
from plugins.crm.models import Lead, Opportunity, Order, Ticket

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def uid(name):
    return db.session.scalar(select(User.id).where(User.username == name))


def new_opportunity(client, amount="50000.00", **extra):
    response = client.api("post", "/api/v1/crm/opportunities", json={"name": "年度框架采购", "amount": amount, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def move(client, opp_id, stage, **extra):
    version = client.api("get", f"/api/v1/crm/opportunities/{opp_id}").get_json()["version"]
    return client.api("post", f"/api/v1/crm/opportunities/{opp_id}/stage",
                      json={"stage": stage, "version": version, **extra})


def decide(app, opp_id, username, action="approve", comment=""):
    """``username`` acts on their pending task of the opportunity's running approval."""
    with app.app_context():
        req = db.session.scalar(select(Request).where(Request.subject_type == "crm.opportunity",
                                                      Request.subject_id == opp_id).order_by(Request.id.desc()))
        task = db.session.scalar(select(Task).where(Task.request_id == req.id, Task.assignee_id == uid(username),
                                                    Task.status == "pending"))
        assert task is not None, f"{username} has no pending task (node {req.current_node})"
        user = db.session.get(User, uid(username))
        getattr(approvals, action)(user, task.id, comment)
        db.session.commit()


def request_of(app, opp_id):
    with app.app_context():
        req = db.session.scalar(select(Request).where(Request.subject_type == "crm.opportunity",
                                                      Request.subject_id == opp_id).order_by(Request.id.desc()))
        return {"status": req.status, "node": req.current_node, "path": list(req.path)} if req else None


# Kanban moves and the contract approval ---------------------------------------------------------


def test_won_is_refused_until_the_contract_approval_is_approved(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep)
    assert move(rep, opp["id"], "won").status_code == 422  # not from an early stage
    moved = move(rep, opp["id"], "contract")
    assert moved.status_code == 200 and moved.get_json()["probability"] == 70
    assert request_of(app, opp["id"])["status"] == "running"
    refused = move(rep, opp["id"], "won")
    assert refused.status_code == 422 and refused.get_json()["error"]["message"]
    decide(app, opp["id"], "legal1")
    decide(app, opp["id"], "finance1")
    assert request_of(app, opp["id"])["status"] == "approved"  # 50,000: no general manager
    won = move(rep, opp["id"], "won")
    assert won.status_code == 200 and won.get_json()["stage"] == "won" and won.get_json()["probability"] == 100
    assert move(rep, opp["id"], "proposal").status_code == 422  # closed


def test_over_100000_the_general_manager_approves_too(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep, amount="100000.01")
    assert move(rep, opp["id"], "contract").status_code == 200
    decide(app, opp["id"], "legal1")
    decide(app, opp["id"], "finance1")
    state = request_of(app, opp["id"])
    assert state["status"] == "running" and state["node"] == "gm"
    assert move(rep, opp["id"], "won").status_code == 422
    decide(app, opp["id"], "gm")
    assert request_of(app, opp["id"])["status"] == "approved"
    assert move(rep, opp["id"], "won").status_code == 200


def test_exactly_100000_needs_no_general_manager(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep, amount="100000.00")
    move(rep, opp["id"], "contract")
    decide(app, opp["id"], "legal1")
    decide(app, opp["id"], "finance1")
    assert request_of(app, opp["id"])["status"] == "approved"


def test_rejection_sends_the_opportunity_back_with_the_reason_and_tells_the_owner(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep)
    move(rep, opp["id"], "contract")
    decide(app, opp["id"], "legal1", "reject", "违约条款需要修改")
    body = rep.api("get", f"/api/v1/crm/opportunities/{opp['id']}").get_json()
    assert body["stage"] == "proposal" and body["rejection_reason"] == "违约条款需要修改"
    with app.app_context():
        todo = db.session.scalar(select(Todo).where(Todo.plugin == "crm", Todo.assignee_id == uid("sales1"),
                                                    Todo.subject_type == "crm.opportunity", Todo.subject_id == opp["id"]))
        assert todo is not None and todo.status == "open" and "违约条款需要修改" in todo.title
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "contract_rejected", AuditEntry.record_id == opp["id"])) == 1
    # Back in contract: a new approval starts, and the reason is cleared.
    assert move(rep, opp["id"], "contract").status_code == 200
    assert request_of(app, opp["id"])["status"] == "running"
    assert rep.api("get", f"/api/v1/crm/opportunities/{opp['id']}").get_json()["rejection_reason"] == ""


def test_an_opportunity_under_approval_cannot_be_edited(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep)
    move(rep, opp["id"], "contract")
    current = rep.api("get", f"/api/v1/crm/opportunities/{opp['id']}").get_json()
    edit = rep.api("patch", f"/api/v1/crm/opportunities/{opp['id']}", json={"amount": "1.00", "version": current["version"]})
    assert edit.status_code == 422, edit.get_json()
    assert move(rep, opp["id"], "proposal").status_code == 422
    with app.app_context():
        assert db.session.get(Opportunity, opp["id"]).amount == Decimal("50000.00")
    decide(app, opp["id"], "legal1")
    decide(app, opp["id"], "finance1")
    current = rep.api("get", f"/api/v1/crm/opportunities/{opp['id']}").get_json()
    assert rep.api("patch", f"/api/v1/crm/opportunities/{opp['id']}",
                   json={"expected_close": "2026-09-30", "version": current["version"]}).status_code == 200


def test_the_generic_form_follows_the_same_stage_rules(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep)
    page = rep.get(f"/crm/opportunities/{opp['id']}/edit").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    rep.post(f"/crm/opportunities/{opp['id']}/edit", {"name": opp["name"], "amount": "50000.00", "stage": "won",
                                                      "version": version})
    with app.app_context():
        assert db.session.get(Opportunity, opp["id"]).stage == "initial"


def test_a_stale_version_is_a_conflict_and_another_reps_opportunity_is_not_found(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep)
    stale = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/stage",
                    json={"stage": "qualified", "version": opp["version"] + 5})
    assert stale.status_code == 409
    other = as_user("sales2")
    assert other.api("post", f"/api/v1/crm/opportunities/{opp['id']}/stage",
                     json={"stage": "qualified", "version": opp["version"]}).status_code == 404
    assert other.get("/crm/kanban").status_code == 200
    assert "年度框架采购" not in other.get("/crm/kanban").get_data(as_text=True)
    assert "年度框架采购" in as_user("salesmgr").get("/crm/kanban").get_data(as_text=True)
    missing = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/stage", json={"stage": "qualified"})
    assert missing.status_code == 422 and "version" in missing.get_json()["error"]["fields"]
    unknown = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/stage", json={"stage": "nope", "version": 1})
    assert unknown.status_code == 422 and "stage" in unknown.get_json()["error"]["fields"]


def test_lost_needs_a_reason(app, as_user):
    rep = as_user("sales1")
    opp = new_opportunity(rep)
    refused = move(rep, opp["id"], "lost")
    assert refused.status_code == 422 and "lost_reason" in refused.get_json()["error"]["fields"]
    lost = move(rep, opp["id"], "lost", lost_reason="预算取消")
    assert lost.status_code == 200 and lost.get_json()["probability"] == 0


# Orders and invoice requests --------------------------------------------------------------------


def won_opportunity(app, rep, amount="50000.00"):
    opp = new_opportunity(rep, amount=amount)
    move(rep, opp["id"], "contract")
    decide(app, opp["id"], "legal1")
    decide(app, opp["id"], "finance1")
    assert move(rep, opp["id"], "won").status_code == 200
    return opp


def test_orders_compute_amounts_and_only_a_won_opportunity_has_them(app, as_user):
    rep = as_user("sales1")
    early = new_opportunity(rep)
    refused = rep.api("post", f"/api/v1/crm/opportunities/{early['id']}/orders", json={"lines": []})
    assert refused.status_code == 422
    generic = rep.api("post", "/api/v1/crm/orders", json={"number": "SO-X-1", "opportunity_id": early["id"]})
    assert generic.status_code == 422 and "opportunity_id" in generic.get_json()["error"]["fields"]
    opp = won_opportunity(app, rep)
    bad = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/orders",
                  json={"lines": [{"product": "服务器", "quantity": "-1", "price": "10"}]})
    assert bad.status_code == 422 and "lines" in bad.get_json()["error"]["fields"]
    created = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/orders", json={"lines": [
        {"product": "服务器", "quantity": "3", "price": "33.33"},
        {"product": "维保", "quantity": "0.3333", "price": "10.00", "amount": "999999"}]})
    assert created.status_code == 201, created.get_json()
    order = created.get_json()
    assert order["amount"] == "103.32" and [line["amount"] for line in order["lines"]] == ["99.99", "3.33"]
    assert order["status"] == "draft" and order["customer_id"] == opp["customer_id"]


def test_confirming_an_order_puts_an_invoice_request_in_every_finance_inbox(app, as_user):
    rep = as_user("sales1")
    opp = won_opportunity(app, rep)
    order = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/orders",
                    json={"lines": [{"product": "年度服务包", "quantity": "1", "price": "50000.00"}]}).get_json()
    assert as_user("sales2").api("post", f"/api/v1/crm/orders/{order['id']}/confirm", json={}).status_code == 404
    confirmed = rep.api("post", f"/api/v1/crm/orders/{order['id']}/confirm", json={"version": order["version"]})
    assert confirmed.status_code == 200 and confirmed.get_json()["invoice_status"] == "requested"
    with app.app_context():
        todos = db.session.scalars(select(Todo).where(Todo.source_key == f"order:{order['id']}:invoice")).all()
        assert [t.assignee_id for t in todos] == [uid("finance1")] and todos[0].kind == "task"
    # A confirmed order is fixed; a rep cannot mark the invoice issued.
    current = rep.api("get", f"/api/v1/crm/orders/{order['id']}").get_json()
    assert rep.api("patch", f"/api/v1/crm/orders/{order['id']}",
                   json={"status": "draft", "version": current["version"]}).status_code == 422
    assert rep.api("post", f"/api/v1/crm/orders/{order['id']}/invoice-issued", json={}).status_code == 403
    finance = as_user("finance1")
    assert "年度服务包" in finance.get(f"/crm/sales-orders/{order['id']}").get_data(as_text=True)
    issued = finance.api("post", f"/api/v1/crm/orders/{order['id']}/invoice-issued", json={})
    assert issued.status_code == 200 and issued.get_json()["invoice_status"] == "issued"
    with app.app_context():
        todo = db.session.scalar(select(Todo).where(Todo.source_key == f"order:{order['id']}:invoice"))
        assert todo.status == "done" and todo.done_by_id == uid("finance1")
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.resource == "crm.order", AuditEntry.action.in_(("confirm", "invoice_issued")))) == 2


def test_an_order_without_lines_cannot_be_confirmed(app, as_user):
    rep = as_user("sales1")
    opp = won_opportunity(app, rep)
    order = rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/orders", json={}).get_json()
    refused = rep.api("post", f"/api/v1/crm/orders/{order['id']}/confirm", json={"version": order["version"]})
    assert refused.status_code == 422 and "lines" in refused.get_json()["error"]["fields"]
    with app.app_context():
        assert db.session.get(Order, order["id"]).status == "draft"
        assert db.session.scalar(select(func.count()).select_from(Todo).where(Todo.subject_type == "crm.order")) == 0


# Ticket SLA -------------------------------------------------------------------------------------


def test_sla_due_follows_priority_and_an_overdue_ticket_is_escalated_once(app, as_user):
    clock.set_now(T0)
    rep = as_user("sales1")
    ticket = rep.api("post", "/api/v1/crm/tickets", json={"subject": "设备无法开机", "priority": "high",
                                                          "assignee_id": None}).get_json()
    assert datetime.fromisoformat(ticket["sla_due_at"]) == T0 + timedelta(hours=8)
    with app.app_context():
        clock.set_now(T0 + timedelta(hours=7))
        assert sales.escalate_overdue_tickets() == 0
        clock.set_now(T0 + timedelta(hours=9))
        assert sales.escalate_overdue_tickets() == 1
        db.session.commit()
        assert sales.escalate_overdue_tickets() == 0  # once
        db.session.commit()
        # sales1 heads 华东区 himself: the lead above him (销售部, salesmgr) gets it.
        todo = db.session.scalar(select(Todo).where(Todo.source_key == f"ticket:{ticket['id']}:escalated"))
        assert todo.assignee_id == uid("salesmgr") and todo.kind == "task"
        assert db.session.get(Ticket, ticket["id"]).escalated_at is not None
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "escalate", AuditEntry.record_id == ticket["id"])) == 1


def test_a_resolved_ticket_is_not_escalated(app, as_user):
    clock.set_now(T0)
    rep = as_user("sales1")
    ticket = rep.api("post", "/api/v1/crm/tickets", json={"subject": "咨询", "priority": "urgent"}).get_json()
    rep.api("patch", f"/api/v1/crm/tickets/{ticket['id']}", json={"status": "resolved", "version": ticket["version"]})
    with app.app_context():
        clock.set_now(T0 + timedelta(days=3))
        assert sales.escalate_overdue_tickets() == 0


# Public lead form -------------------------------------------------------------------------------

TOKEN = re.compile(r'name="token" value="([^"]+)"')
VISITOR = {"name": "刘先生", "company": "杭州新锐贸易有限公司", "mobile": "13912345678", "province": "浙江"}


def fill(client, wait=5, **values):
    clock.set_now(T0)
    page = client.http.get("/crm/leads/form")
    assert page.status_code == 200
    token = TOKEN.search(page.get_data(as_text=True)).group(1)
    clock.set_now(T0 + timedelta(seconds=wait))
    return client.http.post("/crm/leads/form", data={"token": token, **VISITOR, "website": "", **values})


def leads(app):
    with app.app_context():
        return db.session.scalars(select(Lead).order_by(Lead.id)).all()


def test_the_public_form_creates_a_lead_assigned_to_a_rep_with_an_inbox_task(app, anonymous):
    response = fill(anonymous)
    assert response.status_code == 200, response.get_data(as_text=True)
    with app.app_context():
        [lead] = db.session.scalars(select(Lead)).all()
        assert lead.name == "刘先生" and lead.status == "assigned" and lead.owner_id == uid("sales1")
        todo = db.session.scalar(select(Todo).where(Todo.source_key == f"lead:{lead.id}:assigned"))
        assert todo.assignee_id == uid("sales1") and todo.kind == "task"


def test_the_honeypot_and_a_too_fast_form_create_nothing(app, anonymous):
    assert fill(anonymous, website="http://spam.example").status_code == 200  # looks fine to the bot
    too_fast = fill(anonymous, wait=1)
    assert too_fast.status_code == 400 and 'role="alert"' in too_fast.get_data(as_text=True)
    assert leads(app) == []


def test_a_cross_site_post_without_the_forms_cookie_or_token_is_refused(app, anonymous):
    page = anonymous.http.get("/crm/leads/form")
    token = TOKEN.search(page.get_data(as_text=True)).group(1)
    anonymous.http.delete_cookie("crm_lead_form", path="/crm/leads/form")
    clock.set_now(clock.now() + timedelta(seconds=10))
    assert anonymous.http.post("/crm/leads/form", data={"token": token, **VISITOR}).status_code == 400
    assert anonymous.http.post("/crm/leads/form", data={"token": "forged", **VISITOR}).status_code == 400
    assert leads(app) == []


def test_bad_input_gets_field_messages(app, anonymous):
    response = fill(anonymous, name="", mobile="12345")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="lead-name-error"' in html and 'id="lead-mobile-error"' in html
    assert leads(app) == []


def test_submissions_are_rate_limited_per_address(make_app):
    from core.demo import create_demo_company
    from tests.conftest import PASSWORD, Client

    app = make_app(CRM_LEAD_FORM_RATE="2 per hour")
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    visitor = Client(app)
    assert fill(visitor).status_code == 200
    assert fill(visitor, mobile="13912345679").status_code == 200
    limited = fill(visitor, mobile="13912345670")
    assert limited.status_code == 429
    assert len(leads(app)) == 2


def test_the_contract_flow_is_created_once_through_the_approval_api(app):
    import plugins.approval.api as approval_api
    from plugins.approval.models import Flow

    with app.app_context():
        flows = db.session.scalars(select(Flow).where(Flow.key == "contract")).all()
        assert [(f.version, f.status) for f in flows] == [(1, "published")]  # made by the demo-data hook
        assert [n["key"] for n in flows[0].nodes] == ["legal", "finance", "over_100000"]
        assert approval_api.ensure_flow("contract", {"name": "x", "nodes": []}) is False
        assert db.session.scalar(select(func.count()).select_from(Flow).where(Flow.key == "contract")) == 1
