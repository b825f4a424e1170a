"""Customer 360° and the CRM reports: scoped to the reader, masked where the rules say, a bounded
number of queries, and report figures checked against hand-computed values — on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from core import clock, resources as records
from core.extensions import db
from core.org.models import Department, User
from plugins.approval import api as approval
from plugins.crm.models import Customer, Opportunity, Ticket
from plugins.crm.resources import CONTACT, CUSTOMER, FOLLOWUP, OPPORTUNITY, ORDER, TICKET
from tests.plugins.approval.conftest import approval as approval_node, make_flow, users

MOBILE = "13812345678"


def user(name):
    return db.session.scalar(select(User).where(User.username == name))


def dept(code):
    return db.session.scalar(select(Department).where(Department.code == code))


# Customer 360 ------------------------------------------------------------------------------------


@pytest.fixture
def customer360_data(app):
    """sales1's customer with a contact, follow-ups, an order, a ticket and their own opportunity;
    sales2 (another department) owns a second opportunity on the same customer. Both opportunities
    have an approval; sales2 also has a customer of their own."""
    with app.app_context():
        rep = user("sales1")
        customer = records.create(CUSTOMER, rep, CUSTOMER.sample(501))
        db.session.flush()
        contact = records.create(CONTACT, rep, {"name": "吴经理", "mobile": MOBILE, "customer_id": customer.id})
        records.create(FOLLOWUP, rep, {"content": "首次拜访，介绍产品", "customer_id": customer.id,
                                       "happened_at": "2026-03-02T10:00:00+08:00"})
        records.create(FOLLOWUP, rep, {"content": "电话确认报价", "customer_id": customer.id,
                                       "happened_at": "2026-03-05T10:00:00+08:00"})
        mine = records.create(OPPORTUNITY, rep, {"name": "我的项目", "amount": "1000.00", "customer_id": customer.id})
        records.create(ORDER, rep, {"number": "SO-360-1", "amount": "1000.00", "customer_id": customer.id})
        records.create(TICKET, rep, {"subject": "安装咨询", "customer_id": customer.id})
        other = records.create(OPPORTUNITY, user("admin"), {"name": "别人的项目", "amount": "9000.00",
                                                            "customer_id": customer.id,
                                                            "owner_id": user("sales2").id})
        db.session.flush()
        make_flow([approval_node("mgr", users("salesmgr"))], key="deal")
        approval.start_for_subject("deal", rep, "crm.opportunity", mine.id, form={"amount": "1000"}, title="我的审批")
        approval.start_for_subject("deal", user("sales2"), "crm.opportunity", other.id, form={"amount": "9000"},
                                   title="别人的审批")
        elsewhere = records.create(CUSTOMER, user("sales2"), CUSTOMER.sample(502))
        db.session.commit()
        return {"customer": customer.id, "contact": contact.id, "mine": mine.id, "other": other.id,
                "elsewhere": elsewhere.id}


def test_rep_sees_their_customer_360_but_not_an_opportunity_owned_elsewhere(as_user, customer360_data):
    ids = customer360_data
    body = as_user("sales1").api("get", f"/api/v1/crm/customers/{ids['customer']}/360").get_json()
    assert body["customer"]["id"] == ids["customer"]
    assert [o["id"] for o in body["opportunities"]["items"]] == [ids["mine"]]
    assert [c["id"] for c in body["contacts"]["items"]] == [ids["contact"]]
    assert len(body["followups"]["items"]) == 2 and len(body["orders"]["items"]) == 1
    assert len(body["tickets"]["items"]) == 1
    assert [a["title"] for a in body["approvals"]] == ["我的审批"]
    timeline = body["timeline"]["items"]
    assert not any(i["resource"] == "crm.opportunity" and i["record_id"] == ids["other"] for i in timeline)
    assert "别人的" not in str(body)
    kinds = {i["kind"] for i in timeline}
    assert kinds == {"followup", "audit", "approval"}
    times = [i["at"] for i in timeline]
    assert times == sorted(times, reverse=True)
    # the follow-ups are on the timeline once, as themselves, not again as "created" audit entries
    assert not any(i["resource"] == "crm.followup" and i["action"] == "create" for i in timeline)


def test_manager_sees_both_opportunities_and_approvals(as_user, customer360_data):
    body = as_user("salesmgr").api("get", f"/api/v1/crm/customers/{customer360_data['customer']}/360").get_json()
    assert {o["id"] for o in body["opportunities"]["items"]} == {customer360_data["mine"], customer360_data["other"]}
    assert {a["title"] for a in body["approvals"]} == {"我的审批", "别人的审批"}


def test_rep_of_another_department_gets_404_for_the_customer_360(as_user, customer360_data):
    sales2 = as_user("sales2")
    assert sales2.api("get", f"/api/v1/crm/customers/{customer360_data['customer']}/360").status_code == 404
    assert sales2.get(f"/crm/customers/{customer360_data['customer']}/360").status_code == 404
    assert as_user("sales1").get(f"/crm/customers/{customer360_data['elsewhere']}/360").status_code == 404
    assert as_user("hr1").api("get", f"/api/v1/crm/customers/{customer360_data['customer']}/360").status_code == 403


def test_masked_mobile_stays_masked_in_the_360_lists_and_timeline(as_user, customer360_data):
    response = as_user("finance1").api("get", f"/api/v1/crm/customers/{customer360_data['customer']}/360")
    body = response.get_json()
    assert response.status_code == 200
    assert body["contacts"]["items"][0]["mobile"] == "138****5678"
    created = [i for i in body["timeline"]["items"] if i["resource"] == "crm.contact" and i["action"] == "create"]
    assert created and created[0]["changes"]["mobile"] == [None, "138****5678"]
    assert MOBILE not in response.get_data(as_text=True)
    assert "opportunities" not in body and "followups" not in body  # finance reads neither
    page = as_user("finance1").get(f"/crm/customers/{customer360_data['customer']}/360").get_data(as_text=True)
    assert "138****5678" in page and MOBILE not in page
    assert MOBILE in as_user("sales1").get(f"/crm/customers/{customer360_data['customer']}/360").get_data(as_text=True)


def test_customer_detail_page_links_to_the_360_page(as_user, customer360_data):
    cid = customer360_data["customer"]
    rep = as_user("sales1")
    detail = rep.get(f"/crm/customers/{cid}").get_data(as_text=True)
    assert f'href="/crm/customers/{cid}/360"' in detail
    page = rep.get(f"/crm/customers/{cid}/360")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "我的项目" in html and "首次拜访，介绍产品" in html and "我的审批" in html and "别人的项目" not in html


def _count_queries(app, username, url):
    from tests.conftest import Client

    client = Client(app)
    client.login(username)
    client.api("get", url)  # warm up: the session's first request loads the user
    statements = []

    def count(_conn, _cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.api("get", url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    return len(statements)


def test_customer_360_runs_a_bounded_number_of_queries(app, customer360_data):
    cid = customer360_data["customer"]
    url = f"/api/v1/crm/customers/{cid}/360"
    before = _count_queries(app, "salesmgr", url)
    page_before = _count_queries(app, "salesmgr", f"/crm/customers/{cid}/360")
    with app.app_context():
        rep = user("sales1")
        for n in range(15):
            records.create(CONTACT, rep, {"name": f"联系人{n}", "mobile": f"1390000{n:04d}", "customer_id": cid})
            records.create(FOLLOWUP, rep, {"content": f"跟进{n}", "customer_id": cid})
            records.create(OPPORTUNITY, rep, {"name": f"项目{n}", "amount": "10.00", "customer_id": cid})
            records.create(TICKET, rep, {"subject": f"工单{n}", "customer_id": cid})
        db.session.commit()
    assert _count_queries(app, "salesmgr", url) == before
    assert _count_queries(app, "salesmgr", f"/crm/customers/{cid}/360") == page_before
    assert before <= 30 and page_before <= 40, (before, page_before)


def test_timeline_pages_do_not_overlap_and_bad_pages_are_field_errors(as_user, customer360_data):
    rep = as_user("sales1")
    url = f"/api/v1/crm/customers/{customer360_data['customer']}/360"
    everything = rep.api("get", url + "?per_page=100").get_json()["timeline"]["items"]
    first = rep.api("get", url + "?per_page=3").get_json()["timeline"]
    second = rep.api("get", url + "?per_page=3&page=2").get_json()["timeline"]
    assert first["more"] and first["items"] + second["items"] == everything[:6]
    for bad in ("page=0", "page=x", "page=100000"):
        response = rep.api("get", f"{url}?{bad}")
        assert response.status_code == 422 and "page" in response.get_json()["error"]["fields"]


# Reports -----------------------------------------------------------------------------------------


@pytest.fixture
def report_data(app):
    """Opportunities, customers and tickets of sales1 (华东) and sales2 (华南), created directly."""
    with app.app_context():
        s1, s2 = user("sales1"), user("sales2")
        created = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
        rows = [  # (owner, stage, amount, expected_close)
            (s1, "initial", "100.00", None), (s1, "qualified", "200.00", None), (s1, "proposal", "300.00", None),
            (s1, "won", "1000.50", date(2026, 1, 15)), (s1, "won", "2000.25", date(2026, 2, 3)),
            (s1, "lost", "50.00", None),
            (s2, "initial", "10.00", None), (s2, "won", "5000.00", date(2026, 1, 20)), (s2, "contract", "70.00", None),
        ]
        for n, (owner, stage, amount, close) in enumerate(rows):
            db.session.add(Opportunity(name=f"报表项目{n}", stage=stage, amount=Decimal(amount), expected_close=close,
                                       owner_id=owner.id, department_id=owner.department_id, created_at=created,
                                       updated_at=created))
        for n, (owner, province, level, industry) in enumerate([
                (s1, "上海", "A", "制造业"), (s1, "上海", "B", "制造业"), (s1, "江苏", "A", "医药"),
                (s2, "广东", "C", "物流")]):
            db.session.add(Customer(name=f"报表客户{n}", province=province, level=level, industry=industry,
                                    owner_id=owner.id, department_id=owner.department_id, created_at=created,
                                    updated_at=created))
        due = datetime(2026, 3, 11, 4, 0, tzinfo=UTC)
        for n, (owner, status, updated, satisfaction) in enumerate([
                (s1, "resolved", due - timedelta(hours=2), 5),   # met
                (s1, "closed", due + timedelta(hours=2), 2),     # breached (closed late)
                (s1, "open", created, None),                     # breached: overdue now
                (s2, "open", created, None)]):
            db.session.add(Ticket(subject=f"报表工单{n}", status=status, sla_due_at=due, satisfaction=satisfaction,
                                  owner_id=owner.id, department_id=owner.department_id, created_at=created,
                                  updated_at=updated))
        db.session.commit()
    clock.set_now(datetime(2026, 3, 20, 4, 0, tzinfo=UTC))


def report(client, name, query=""):
    response = client.api("get", f"/api/v1/crm/reports/{name}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_funnel_counts_conversion_and_amounts_per_reader(as_user, report_data):
    mine = report(as_user("sales1"), "funnel")
    stages = {s["stage"]: s for s in mine["stages"]}
    assert [s["stage"] for s in mine["stages"]] == ["initial", "qualified", "proposal", "contract", "won"]
    assert [s["count"] for s in mine["stages"]] == [1, 1, 1, 0, 2]
    assert [s["reached"] for s in mine["stages"]] == [5, 4, 3, 2, 2]
    assert [s["conversion"] for s in mine["stages"]] == [None, "80.0", "75.0", "66.7", "100.0"]
    assert stages["won"]["amount"] == "3000.75" and mine["lost"] == {"count": 1, "amount": "50.00"}
    assert mine["total"] == 6 and mine["win_rate"] == "66.7"
    everyone = report(as_user("gm"), "funnel")
    assert [s["count"] for s in everyone["stages"]] == [2, 1, 1, 1, 3] and everyone["total"] == 9
    assert {s["stage"]: s["amount"] for s in everyone["stages"]}["won"] == "8000.75"
    assert report(as_user("salesmgr"), "funnel") == everyone  # the manager's tree holds both reps


def test_leaderboard_ranks_reps_by_won_amount_per_month(as_user, report_data):
    board = report(as_user("gm"), "leaderboard")
    assert board["months"] == ["2026-01", "2026-02"]
    assert [(r["name"], r["total"], r["count"]) for r in board["reps"]] == [("陈静", "5000.00", 1), ("张伟", "3000.75", 2)]
    assert board["reps"][1]["by_month"] == {"2026-01": "1000.50", "2026-02": "2000.25"}
    mine = report(as_user("sales1"), "leaderboard")
    assert [r["name"] for r in mine["reps"]] == ["张伟"]
    january = report(as_user("gm"), "leaderboard", "?from=2026-01-01&to=2026-01-31")
    assert [(r["name"], r["total"]) for r in january["reps"]] == [("陈静", "5000.00"), ("张伟", "1000.50")]


def test_department_filter_narrows_within_the_scope_only(app, as_user, report_data):
    with app.app_context():
        east, south = dept("sales-east").id, dept("sales-south").id
    manager = as_user("salesmgr")
    assert [r["name"] for r in report(manager, "leaderboard", f"?department_id={east}")["reps"]] == ["张伟"]
    assert report(manager, "customers", f"?department_id={south}")["total"] == 1
    # a rep asking for another department's figures gets nothing, not that department's numbers
    assert report(as_user("sales1"), "funnel", f"?department_id={south}")["total"] == 0
    assert report(as_user("sales1"), "funnel", "?department_id=999999")["total"] == 0


def test_customers_by_region_level_and_industry(as_user, report_data):
    mine = report(as_user("sales1"), "customers")
    assert mine["total"] == 3
    assert mine["region"] == [{"name": "上海", "count": 2}, {"name": "江苏", "count": 1}]
    assert sorted((r["name"], r["count"]) for r in mine["level"]) == [("A", 2), ("B", 1)]
    assert sorted((r["name"], r["count"]) for r in mine["industry"]) == [("制造业", 2), ("医药", 1)]
    assert report(as_user("gm"), "customers")["total"] == 4
    assert report(as_user("gm"), "customers", "?to=2026-03-09")["total"] == 0


def test_tickets_volume_sla_and_satisfaction(as_user, report_data):
    mine = report(as_user("sales1"), "tickets")
    assert mine["total"] == 3 and mine["volume"] == [{"month": "2026-03", "count": 3}]
    assert mine["status"] == {"resolved": 1, "closed": 1, "open": 1}
    assert mine["sla"] == {"met": 1, "breached": 2, "pending": 0, "met_rate": "33.3"}
    assert mine["satisfaction"] == {"average": "3.50", "rated": 2,
                                    "scores": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}}
    assert report(as_user("gm"), "tickets")["sla"]["breached"] == 3


def test_report_input_errors_and_permissions(as_user, report_data):
    gm = as_user("gm")
    bad = gm.api("get", "/api/v1/crm/reports/funnel?from=2026-13-01&department_id=x")
    assert bad.status_code == 422 and {"from", "department_id"} <= set(bad.get_json()["error"]["fields"])
    backwards = gm.api("get", "/api/v1/crm/reports/funnel?from=2026-03-02&to=2026-03-01")
    assert backwards.status_code == 422 and "to" in backwards.get_json()["error"]["fields"]
    assert gm.api("get", "/api/v1/crm/reports/nothing").status_code == 404
    assert as_user("hr1").api("get", "/api/v1/crm/reports/funnel").status_code == 403
    assert as_user("hr1").get("/crm/reports").status_code == 403
    # finance reads customers but not opportunities or tickets
    finance = as_user("finance1")
    assert finance.api("get", "/api/v1/crm/reports/customers").status_code == 200
    assert finance.api("get", "/api/v1/crm/reports/funnel").status_code == 403


def test_reports_page_shows_the_readers_figures_and_the_menu_links_it(as_user, report_data):
    rep = as_user("sales1")
    assert "/crm/reports" in rep.get("/").get_data(as_text=True)
    html = rep.get("/crm/reports").get_data(as_text=True)
    assert 'id="crm-report-data"' in html and "3000.75" in html and "陈静" not in html
    assert rep.get("/crm/reports?from=bad").status_code == 422
    assert "/crm/reports" not in as_user("hr1").get("/").get_data(as_text=True)
