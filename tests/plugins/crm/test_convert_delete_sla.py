"""The lead conversion page, refusing to delete an opportunity under contract approval, and a
ticket's SLA following a priority change — on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from core import clock
from core.demo import create_demo_company
from core.audit.models import AuditEntry
from core.extensions import db
from core.org.models import User
from plugins.approval.models import Request
from plugins.crm import sales, services
from plugins.crm.models import Contact, Customer, Lead, Opportunity, Ticket
from tests.conftest import PASSWORD, Client

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def user(name):
    return db.session.scalar(select(User).where(User.username == name))


def lead_of(app, owner="sales1", company="苏州转化测试有限公司", **extra):
    with app.app_context():
        lead = services.capture_lead({"name": "孙先生", "company": company, "mobile": "13500001234",
                                      "email": "sun@example.com", "province": "江苏", **extra})
        rep = user(owner)
        lead.owner_id, lead.department_id, lead.status = rep.id, rep.department_id, "assigned"
        db.session.commit()
        return lead.id


def counts(app):
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Customer, Contact, Opportunity))


# Lead conversion page ---------------------------------------------------------------------------


def test_the_lead_page_links_to_a_conversion_that_creates_customer_contact_and_opportunity(app, as_user):
    lead_id = lead_of(app)
    rep = as_user("sales1")
    detail = rep.get(f"/crm/leads/{lead_id}").get_data(as_text=True)
    assert f'href="/crm/leads/{lead_id}/convert"' in detail
    page = rep.get(f"/crm/leads/{lead_id}/convert")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "苏州转化测试有限公司" in text and "孙先生" in text and "13500001234" in text
    response = rep.post(f"/crm/leads/{lead_id}/convert", {"with_opportunity": "y", "opportunity_name": "首单",
                                                          "amount": "50000", "expected_close": "2026-06-30"})
    assert response.status_code == 302
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        assert lead.status == "converted"
        assert response.headers["Location"].endswith(f"/crm/customers/{lead.customer_id}")
        customer = db.session.get(Customer, lead.customer_id)
        assert customer.name == "苏州转化测试有限公司" and customer.owner_id == user("sales1").id
        contact = db.session.scalar(select(Contact).where(Contact.customer_id == customer.id))
        assert (contact.name, contact.mobile, contact.is_primary) == ("孙先生", "13500001234", True)
        opp = db.session.scalar(select(Opportunity).where(Opportunity.customer_id == customer.id))
        assert (opp.name, opp.amount, str(opp.expected_close)) == ("首单", Decimal("50000.00"), "2026-06-30")
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "convert", AuditEntry.record_id == lead_id)) == 1
    # Converted: the page says so and a second post creates nothing.
    before = counts(app)
    again = rep.post(f"/crm/leads/{lead_id}/convert", {"with_opportunity": "y", "opportunity_name": "二单"})
    assert again.status_code == 200 and counts(app) == before
    assert f'/crm/customers/{customer.id}"' in again.get_data(as_text=True)


def test_without_the_opportunity_box_only_customer_and_contact_are_created(app, as_user):
    lead_id = lead_of(app)
    before = counts(app)
    response = as_user("sales1").post(f"/crm/leads/{lead_id}/convert", {"opportunity_name": "ignored", "amount": "x"})
    assert response.status_code == 302
    assert counts(app) == (before[0] + 1, before[1] + 1, before[2])


def test_bad_opportunity_fields_are_shown_at_the_fields_and_nothing_is_written(app, as_user):
    lead_id = lead_of(app)
    before = counts(app)
    response = as_user("sales1").post(f"/crm/leads/{lead_id}/convert",
                                      {"with_opportunity": "y", "opportunity_name": "", "amount": "-5"})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'id="f-opportunity_name" name="opportunity_name"' in text
    assert text.count("is-invalid") == 2 and text.count("invalid-feedback") == 2
    assert 'value="-5"' in text  # what was typed stays
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Lead, lead_id).status == "assigned"


def test_the_api_reports_the_opportunitys_field_errors_under_opportunity(app, as_user):
    lead_id = lead_of(app)
    response = as_user("sales1").api("post", f"/api/v1/crm/leads/{lead_id}/convert",
                                     json={"opportunity": {"name": "", "amount": "1"}})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"opportunity"}
    assert "name" in response.get_json()["error"]["fields"]["opportunity"]


def test_a_similar_customer_is_pointed_out_and_blocks_when_duplicates_are_blocked(make_app):
    app = make_app(CRM_DUPLICATES="block")
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    rep = Client(app)
    rep.login("sales1")
    assert rep.api("post", "/api/v1/crm/customers", json={"name": "苏州转化测试有限公司"}).status_code == 201
    lead_id = lead_of(app, company="苏州 转化测试有限公司")
    page = rep.get(f"/crm/leads/{lead_id}/convert").get_data(as_text=True)
    assert "data-similar-customers" in page and "苏州转化测试有限公司" in page
    before = counts(app)
    response = rep.post(f"/crm/leads/{lead_id}/convert", {})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'role="alert"' in text and "苏州转化测试有限公司" in text
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Lead, lead_id).status == "assigned"


def test_another_departments_rep_gets_404_and_a_reader_without_the_permission_no_button(app, as_user):
    lead_id = lead_of(app)
    other = as_user("sales2")
    assert other.get(f"/crm/leads/{lead_id}/convert").status_code == 404
    before = counts(app)
    assert other.post(f"/crm/leads/{lead_id}/convert", {"with_opportunity": "y", "opportunity_name": "抢单"}).status_code == 404
    assert counts(app) == before
    gm = as_user("gm")  # reads every lead, may not convert
    detail = gm.get(f"/crm/leads/{lead_id}")
    assert detail.status_code == 200 and f"/crm/leads/{lead_id}/convert" not in detail.get_data(as_text=True)
    assert gm.get(f"/crm/leads/{lead_id}/convert").status_code == 403
    with app.app_context():
        assert db.session.get(Lead, lead_id).status == "assigned"
    # The rep's manager converts within the department tree.
    assert as_user("salesmgr").post(f"/crm/leads/{lead_id}/convert", {}).status_code == 302


# Deleting an opportunity under approval ---------------------------------------------------------


def test_an_opportunity_under_contract_approval_cannot_be_deleted(app, as_user):
    rep = as_user("sales1")
    opp = rep.api("post", "/api/v1/crm/opportunities", json={"name": "年度框架采购", "amount": "50000.00"}).get_json()
    version = rep.api("get", f"/api/v1/crm/opportunities/{opp['id']}").get_json()["version"]
    assert rep.api("post", f"/api/v1/crm/opportunities/{opp['id']}/stage",
                   json={"stage": "contract", "version": version}).status_code == 200
    admin = as_user("admin")
    refused = admin.api("delete", f"/api/v1/crm/opportunities/{opp['id']}")
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "business_rule"
    page = admin.post(f"/crm/opportunities/{opp['id']}/delete", {})
    assert page.status_code == 302 and page.headers["Location"].endswith(f"/crm/opportunities/{opp['id']}")
    with app.app_context():
        assert db.session.get(Opportunity, opp["id"]) is not None
        req = db.session.scalar(select(Request).where(Request.subject_type == "crm.opportunity",
                                                      Request.subject_id == opp["id"]))
        assert req.status == "running"
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "delete", AuditEntry.record_id == opp["id"],
            AuditEntry.resource == "crm.opportunity")) == 0
        # Once the approval is no longer running, it can go.
        from plugins.approval import services as approvals

        approvals.cancel(None, req.id)
        db.session.commit()
    assert admin.api("delete", f"/api/v1/crm/opportunities/{opp['id']}").status_code in (200, 204)
    with app.app_context():
        assert db.session.get(Opportunity, opp["id"]) is None


# Ticket SLA on a priority change -----------------------------------------------------------------


def ticket(rep, priority="high", **extra):
    response = rep.api("post", "/api/v1/crm/tickets", json={"subject": "设备无法开机", "priority": priority, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def patch(rep, ticket_id, **values):
    version = rep.api("get", f"/api/v1/crm/tickets/{ticket_id}").get_json()["version"]
    response = rep.api("patch", f"/api/v1/crm/tickets/{ticket_id}", json={**values, "version": version})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def due(body):
    return datetime.fromisoformat(body["sla_due_at"])


def test_a_priority_change_moves_the_sla_due_time_counted_from_when_the_ticket_was_opened(app, as_user):
    clock.set_now(T0)
    rep = as_user("sales1")
    t = ticket(rep)
    assert due(t) == T0 + timedelta(hours=8)
    clock.set_now(T0 + timedelta(hours=2))
    assert due(patch(rep, t["id"], priority="urgent")) == T0 + timedelta(hours=4)
    assert due(patch(rep, t["id"], priority="low", status="in_progress")) == T0 + timedelta(hours=72)
    assert due(patch(rep, t["id"], subject="设备无法开机（复现）")) == T0 + timedelta(hours=72)  # no priority change
    with app.app_context():
        changes = [e.changes for e in db.session.scalars(select(AuditEntry).where(
            AuditEntry.resource == "crm.ticket", AuditEntry.record_id == t["id"], AuditEntry.action == "update")
            .order_by(AuditEntry.id))]
        assert "sla_due_at" in changes[0] and "sla_due_at" in changes[1] and "sla_due_at" not in changes[2]
    # Raised to urgent after four hours: overdue at once, so the next sweep escalates it.
    clock.set_now(T0 + timedelta(hours=5))
    patch(as_user("sales1"), t["id"], priority="urgent")  # (a new session: the old one has idled out)
    with app.app_context():
        assert sales.escalate_overdue_tickets() == 1
        db.session.commit()


def test_a_due_time_set_in_the_same_write_wins(app, as_user):
    clock.set_now(T0)
    rep = as_user("sales1")
    t = ticket(rep)
    chosen = T0 + timedelta(days=2)
    assert due(patch(rep, t["id"], priority="urgent", sla_due_at=chosen.isoformat())) == chosen


def test_a_resolved_or_escalated_ticket_keeps_its_due_time(app, as_user):
    clock.set_now(T0)
    rep = as_user("sales1")
    resolved = ticket(rep)
    patch(rep, resolved["id"], status="resolved")
    assert due(patch(rep, resolved["id"], priority="urgent")) == T0 + timedelta(hours=8)
    escalated = ticket(rep)
    clock.set_now(T0 + timedelta(hours=9))
    with app.app_context():
        assert sales.escalate_overdue_tickets() == 1
        db.session.commit()
        assert db.session.get(Ticket, escalated["id"]).escalated_at is not None
    assert due(patch(as_user("sales1"), escalated["id"], priority="low")) == T0 + timedelta(hours=8)
