"""CRM rules: credit codes, duplicates, merge, lead assignment and conversion, the public pool, hand-over,
field masking and scopes — on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import clock, resources as records
from core.audit.models import AuditEntry
from core.errors import BusinessRuleError, Conflict, ValidationError
from core.extensions import db
from core.inbox.models import Todo
from core.org.models import User
from plugins.crm import creditcode, services
from plugins.crm.models import Contact, Customer, FollowUp, Lead, Opportunity, Ticket
from plugins.crm.resources import CONTACT, CUSTOMER, FOLLOWUP


def user(name):
    return db.session.scalar(select(User).where(User.username == name))


def customer_for(owner, n, **extra):
    data = {**CUSTOMER.sample(n), **extra}
    return records.create(CUSTOMER, user(owner), data)


# Credit codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110000600037341L", creditcode.make(7)])
def test_valid_credit_codes_pass_the_checksum(code):
    assert creditcode.is_valid(code)


@pytest.mark.parametrize("code", ["91350100M000100Y44", "91350100M000100Y4", "91350100M000100I43", "", "x" * 18])
def test_invalid_credit_codes_fail_the_checksum(code):
    assert not creditcode.is_valid(code)


def test_api_refuses_a_customer_with_a_bad_credit_code(as_user):
    rep = as_user("sales1")
    response = rep.api("post", "/api/v1/crm/customers", json={"name": "坏代码公司", "credit_code": "91350100M000100Y44"})
    assert response.status_code == 422
    assert "credit_code" in response.get_json()["error"]["fields"]
    ok = rep.api("post", "/api/v1/crm/customers", json={"name": "好代码公司", "credit_code": "91350100m000100y43 "})
    assert ok.status_code == 201 and ok.get_json()["credit_code"] == "91350100M000100Y43"


# Duplicates -------------------------------------------------------------------------------------


def test_same_credit_code_is_always_refused_even_from_another_reps_scope(app, as_user):
    with app.app_context():
        customer_for("sales2", 1)
        db.session.commit()
    response = as_user("sales1").api("post", "/api/v1/crm/customers",
                                     json={"name": "别的名字", "credit_code": CUSTOMER.sample(1)["credit_code"]})
    assert response.status_code == 422
    assert "credit_code" in response.get_json()["error"]["fields"]


def test_similar_name_warns_by_default_and_blocks_when_configured(make_app):
    from core.demo import create_demo_company
    from tests.conftest import PASSWORD, Client

    for mode, expected in (("warn", 201), ("block", 422)):
        app = make_app(CRM_DUPLICATES=mode)
        with app.app_context():
            create_demo_company(PASSWORD)
            if not db.session.scalar(select(Customer.id).where(Customer.name == "上海华信科技有限公司")):
                customer_for("sales2", 1, name="上海华信科技有限公司")
            db.session.commit()
        rep = Client(app)
        rep.login("sales1")
        found = rep.api("get", "/api/v1/crm/customers/duplicates?name=上海 华信科技（集团）股份有限公司").get_json()
        assert [d["reason"] for d in found["items"]] == ["name"] and found["mode"] == mode
        response = rep.api("post", "/api/v1/crm/customers", json={"name": f"上海华信科技集团有限公司{'' if mode == 'warn' else ''}"})
        assert response.status_code == expected, response.get_json()
        with app.app_context():
            db.session.query(Customer).filter(Customer.name == "上海华信科技集团有限公司").delete()
            db.session.commit()


def test_duplicates_by_contact_mobile_are_found(app):
    with app.app_context():
        c = customer_for("sales1", 2)
        records.create(CONTACT, user("sales1"), {"name": "赵六", "mobile": "13900001111", "customer_id": c.id})
        db.session.commit()
        found = services.find_duplicates(mobiles=["13900001111"])
        assert [(d["id"], d["reason"]) for d in found] == [(c.id, "mobile")]
        assert services.find_duplicates(name="完全不同的名字") == []


def test_normalised_names_ignore_legal_form_brackets_case_and_spaces():
    assert services.normalise_name("ABC 科技（上海）有限责任公司") == services.normalise_name("abc科技上海")
    assert services.similar("深圳远航物流有限公司", "深圳远航物流集团股份有限公司")
    assert not services.similar("深圳远航物流有限公司", "广州海纳电子有限公司")


# Related records in scope -----------------------------------------------------------------------


def test_contact_of_a_customer_outside_ones_scope_is_refused(app, as_user):
    with app.app_context():
        theirs = customer_for("sales2", 3).id
        mine = customer_for("sales1", 4).id
        db.session.commit()
    rep = as_user("sales1")
    refused = rep.api("post", "/api/v1/crm/contacts", json={"name": "钱七", "customer_id": theirs})
    assert refused.status_code == 422
    assert "customer_id" in refused.get_json()["error"]["fields"]
    assert rep.api("post", "/api/v1/crm/contacts", json={"name": "钱七", "customer_id": mine}).status_code == 201


# Merge ------------------------------------------------------------------------------------------


def test_merge_moves_every_related_record_to_the_survivor_and_is_audited(app, as_user):
    with app.app_context():
        rep = user("sales1")
        survivor = customer_for("sales1", 10, credit_code=None)
        dup = customer_for("sales1", 11)
        code = dup.credit_code
        records.create(CONTACT, rep, {"name": "甲", "customer_id": dup.id})
        records.create(FOLLOWUP, rep, {"content": "拜访", "customer_id": dup.id})
        db.session.add_all([Opportunity(name="项目", customer_id=dup.id, owner_id=rep.id),
                            Ticket(subject="投诉", customer_id=dup.id, owner_id=rep.id)])
        db.session.commit()
        ids = survivor.id, dup.id
    response = as_user("salesmgr").api("post", "/api/v1/crm/customers/merge",
                                       json={"survivor_id": ids[0], "duplicate_ids": [ids[1]]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["moved"]["contact"] == 1
    with app.app_context():
        for model in (Contact, FollowUp, Opportunity, Ticket):
            assert db.session.scalar(select(func.count()).select_from(model).where(model.customer_id == ids[1])) == 0
            assert db.session.scalar(select(func.count()).select_from(model).where(model.customer_id == ids[0])) == 1
        merged = db.session.get(Customer, ids[1])
        assert (merged.status, merged.merged_into_id) == ("merged", ids[0])
        assert db.session.get(Customer, ids[0]).credit_code == code
        actions = db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.resource == "crm.customer", AuditEntry.record_id.in_(ids))).all()
        assert actions.count("merge") == 2


def test_a_rep_cannot_merge_customers(app, as_user):
    with app.app_context():
        a, b = customer_for("sales1", 12).id, customer_for("sales1", 13).id
        db.session.commit()
    response = as_user("sales1").api("post", "/api/v1/crm/customers/merge", json={"survivor_id": a, "duplicate_ids": [b]})
    assert response.status_code == 403


# Follow-up reminders ----------------------------------------------------------------------------


def test_follow_up_with_a_next_date_puts_a_reminder_in_the_owners_inbox(app, as_user):
    with app.app_context():
        customer = customer_for("sales1", 14)
        db.session.commit()
        cid = customer.id
    rep = as_user("sales1")
    response = rep.api("post", "/api/v1/crm/followups", json={"content": "电话沟通", "customer_id": cid,
                                                               "next_at": "2031-05-01T09:00:00+08:00"})
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        todo = db.session.scalar(select(Todo).where(Todo.plugin == "crm", Todo.subject_type == "crm.followup",
                                                    Todo.subject_id == response.get_json()["id"]))
        assert todo is not None and todo.assignee_id == user("sales1").id and todo.kind == "reminder"
        assert todo.due_at == datetime(2031, 5, 1, 1, 0, tzinfo=UTC)
        assert db.session.get(Customer, cid).last_followup_at is not None


# Lead assignment --------------------------------------------------------------------------------


def _reps(app, n=3):
    """Make ``n`` active sales reps (rep0..) and return their ids."""
    from core.demo import create_demo_company
    from core.org.models import Role
    from tests.conftest import PASSWORD

    create_demo_company(PASSWORD)
    role = db.session.scalar(select(Role).where(Role.key == "sales_rep"))
    ids = []
    for i in range(n):
        u = User(username=f"rep{i}", display_name=f"rep{i}", active=True,
                 department_id=user("sales1").department_id)
        u.roles = [role]
        db.session.add(u)
        db.session.flush()
        ids.append(u.id)
    return ids


def test_round_robin_assigns_1000_leads_evenly_skipping_inactive_reps(make_app):
    app = make_app(plugins=["approval", "crm"], CRM_ASSIGN_RULES=[{"users": ["rep0", "rep1", "rep2", "rep3"]}],
                   CRM_LEAD_CAPACITY=10000)
    with app.app_context():
        ids = _reps(app, 4)
        db.session.get(User, ids[3]).active = False
        for n in range(1000):
            services.capture_lead({"name": f"线索{n}", "province": "上海"})
        assigned = services.assign_leads()
        db.session.commit()
        counts = [list(assigned.values()).count(i) for i in ids]
        assert len(assigned) == 1000
        assert counts[3] == 0 and max(counts[:3]) - min(counts[:3]) <= 1
        todos = db.session.scalar(select(func.count()).select_from(Todo).where(Todo.plugin == "crm", Todo.kind == "task"))
        assert todos == 1000


def test_capacity_is_respected_and_leftover_leads_stay_unassigned(make_app):
    app = make_app(plugins=["approval", "crm"], CRM_ASSIGN_RULES=[{"users": ["rep0", "rep1"]}],
                   CRM_LEAD_CAPACITY=300, CRM_ASSIGN_STRATEGY="least_loaded")
    with app.app_context():
        ids = _reps(app, 2)
        for n in range(1000):
            services.capture_lead({"name": f"线索{n}"})
        assigned = services.assign_leads()
        db.session.commit()
        assert sorted(list(assigned.values()).count(i) for i in ids) == [300, 300]
        assert db.session.scalar(select(func.count()).select_from(Lead).where(Lead.owner_id.is_(None))) == 400


def test_assignment_rules_route_by_province(make_app):
    app = make_app(plugins=["approval", "crm"], CRM_ASSIGN_RULES=[{"province": "广东", "users": ["rep1"]},
                                                                   {"users": ["rep0"]}])
    with app.app_context():
        ids = _reps(app, 2)
        gd = services.capture_lead({"name": "粤", "province": "广东"})
        sh = services.capture_lead({"name": "沪", "province": "上海"})
        assigned = services.assign_leads()
        assert assigned == {gd.id: ids[1], sh.id: ids[0]}


# Lead conversion --------------------------------------------------------------------------------


def test_converting_a_lead_creates_customer_contact_and_opportunity(app, as_user):
    with app.app_context():
        lead = services.capture_lead({"name": "孙先生", "company": "苏州转化测试有限公司", "mobile": "13500001234",
                                      "province": "江苏"})
        lead.owner_id, lead.status = user("sales1").id, "assigned"
        db.session.commit()
        lead_id = lead.id
    response = as_user("sales1").api("post", f"/api/v1/crm/leads/{lead_id}/convert",
                                     json={"opportunity": {"name": "首单", "amount": "50000"}})
    assert response.status_code == 201, response.get_json()
    ids = response.get_json()
    with app.app_context():
        customer = db.session.get(Customer, ids["customer_id"])
        assert customer.name == "苏州转化测试有限公司" and customer.owner_id == user("sales1").id
        contact = db.session.get(Contact, ids["contact_id"])
        assert (contact.customer_id, contact.mobile, contact.is_primary) == (customer.id, "13500001234", True)
        assert db.session.get(Opportunity, ids["opportunity_id"]).probability == 10
        assert db.session.get(Lead, lead_id).status == "converted"
    again = as_user("sales1").api("post", f"/api/v1/crm/leads/{lead_id}/convert", json={})
    assert again.status_code == 422


def test_a_failed_conversion_leaves_nothing_behind(app):
    with app.app_context():
        lead = services.capture_lead({"name": "周先生", "company": "失败测试有限公司"})
        lead.owner_id, lead.status = user("sales1").id, "assigned"
        db.session.commit()
        before = db.session.scalar(select(func.count()).select_from(Customer))
        with pytest.raises(ValidationError):
            services.convert_lead(user("sales1"), lead.id, {"name": "", "amount": "1"})
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Customer)) == before
        assert db.session.get(Lead, lead.id).status == "assigned"


# Public pool ------------------------------------------------------------------------------------


def test_idle_customers_are_warned_then_returned_to_the_pool(app):
    start = datetime(2030, 1, 1, 2, tzinfo=UTC)
    clock.set_now(start)
    with app.app_context():
        c = customer_for("sales1", 20, level="C")  # C: 30 days, warned 7 days before
        db.session.commit()
        key = f"customer:{c.id}:pool_warning"

        def warning():
            return db.session.scalar(select(Todo).where(Todo.source_key == key))

        clock.set_now(start + timedelta(days=20))
        services.recycle_pool()
        assert warning() is None
        clock.set_now(start + timedelta(days=24))
        services.recycle_pool()
        first = warning()
        assert first.assignee_id == user("sales1").id and first.status == "open"
        assert first.due_at == start + timedelta(days=30)
        assert db.session.get(Customer, c.id).owner_id == user("sales1").id
        clock.set_now(start + timedelta(days=31))
        assert services.recycle_pool()["recycled"] >= 1
        db.session.commit()
        assert db.session.get(Customer, c.id).owner_id is None
        assert warning().status == "cancelled"
        audit_actions = db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.resource == "crm.customer", AuditEntry.record_id == c.id)).all()
        assert "recycle" in audit_actions


def test_a_follow_up_keeps_a_customer_out_of_the_pool(app):
    start = datetime(2030, 1, 1, 2, tzinfo=UTC)
    clock.set_now(start)
    with app.app_context():
        c = customer_for("sales1", 21, level="C")
        db.session.commit()
        clock.set_now(start + timedelta(days=25))
        records.create(FOLLOWUP, user("sales1"), {"content": "回访", "customer_id": c.id})
        db.session.commit()
        clock.set_now(start + timedelta(days=40))
        services.recycle_pool()
        assert db.session.get(Customer, c.id).owner_id == user("sales1").id


def test_claim_limits_and_claiming_another_reps_customer_is_refused(make_app):
    from core.demo import create_demo_company
    from tests.conftest import PASSWORD

    app = make_app(plugins=["approval", "crm"], CRM_CLAIM_DAILY_LIMIT=2)
    with app.app_context():
        create_demo_company(PASSWORD)
        pool = [customer_for("sales2", 30 + i, owner_id=None) for i in range(4)]
        for c in pool:
            c.owner_id = c.department_id = None
        taken = customer_for("sales2", 40)
        db.session.commit()
        rep = user("sales1")
        with pytest.raises(Conflict):
            services.claim(rep, taken.id)  # 撞单
        services.claim(rep, pool[0].id)
        services.claim(rep, pool[1].id)
        with pytest.raises(BusinessRuleError):
            services.claim(rep, pool[2].id)  # daily limit
        with pytest.raises(BusinessRuleError):
            services.claim(rep, pool[0].id)  # already mine
        clock.set_now(clock.now() + timedelta(days=1))
        services.claim(rep, pool[2].id)
        db.session.commit()
        assert db.session.get(Customer, pool[2].id).owner_id == rep.id
        app.config["YITI"]["CRM_CLAIM_TOTAL_LIMIT"] = 3
        clock.set_now(clock.now() + timedelta(days=1))
        with pytest.raises(BusinessRuleError):
            services.claim(rep, pool[3].id)  # total limit


def test_claim_through_the_api(app, as_user):
    with app.app_context():
        c = customer_for("sales2", 41)
        c.owner_id = c.department_id = None
        db.session.commit()
        cid = c.id
    rep = as_user("sales1")
    assert cid in [row["id"] for row in rep.api("get", "/api/v1/crm/pool?per_page=200").get_json()["items"]]
    assert rep.api("post", f"/api/v1/crm/customers/{cid}/claim").status_code == 200
    other = as_user("sales2").api("post", f"/api/v1/crm/customers/{cid}/claim")
    assert other.status_code == 409


# Hand-over --------------------------------------------------------------------------------------


def test_hand_over_moves_customers_open_opportunities_leads_and_todos(app, as_user):
    with app.app_context():
        rep = user("sales1")
        c = customer_for("sales1", 50)
        records.create(CONTACT, rep, {"name": "联系人", "customer_id": c.id})
        open_opp = Opportunity(name="进行中", customer_id=c.id, owner_id=rep.id, stage="proposal")
        won_opp = Opportunity(name="已赢", customer_id=c.id, owner_id=rep.id, stage="won")
        lead = Lead(name="线索", owner_id=rep.id, status="assigned")
        db.session.add_all([open_opp, won_opp, lead])
        from core import inbox

        inbox.upsert("crm", "lead:x:assigned", rep.id, "task", "线索")
        db.session.commit()
        ids = c.id, open_opp.id, won_opp.id, lead.id
        from_id, to_id = rep.id, user("sales2").id
    assert as_user("sales1").api("post", "/api/v1/crm/handover",
                                 json={"from_user_id": from_id, "to_user_id": to_id}).status_code == 403
    response = as_user("salesmgr").api("post", "/api/v1/crm/handover", json={"from_user_id": from_id, "to_user_id": to_id})
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        assert db.session.get(Customer, ids[0]).owner_id == to_id
        assert db.session.get(Opportunity, ids[1]).owner_id == to_id
        assert db.session.get(Opportunity, ids[2]).owner_id == from_id  # closed ones stay in the record
        assert db.session.get(Lead, ids[3]).owner_id == to_id
        assert db.session.scalar(select(Todo.status).where(Todo.source_key == "lead:x:assigned",
                                                           Todo.assignee_id == to_id)) == "open"
        assert db.session.scalar(select(Todo.status).where(Todo.source_key == "lead:x:assigned",
                                                           Todo.assignee_id == from_id)) == "cancelled"
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "hand_over")) is not None


# Field rules and scopes -------------------------------------------------------------------------


def test_contact_mobile_is_masked_for_a_non_sales_reader(app, as_user):
    with app.app_context():
        c = customer_for("sales1", 60)
        contact = records.create(CONTACT, user("sales1"), {"name": "吴经理", "mobile": "13812345678",
                                                            "customer_id": c.id})
        db.session.commit()
        cid = contact.id
    seen = as_user("finance1").api("get", f"/api/v1/crm/contacts/{cid}").get_json()
    assert seen["mobile"] != "13812345678" and "***" in seen["mobile"]
    assert as_user("sales1").api("get", f"/api/v1/crm/contacts/{cid}").get_json()["mobile"] == "13812345678"
    assert as_user("gm").api("get", f"/api/v1/crm/contacts/{cid}").get_json()["mobile"] == "13812345678"


def test_reps_see_only_their_customers_and_the_manager_sees_both(app, as_user):
    with app.app_context():
        a, b = customer_for("sales1", 70).id, customer_for("sales2", 71).id
        db.session.commit()

    def ids(name):
        return {row["id"] for row in as_user(name).api("get", "/api/v1/crm/customers?per_page=200").get_json()["items"]}

    assert a in ids("sales1") and b not in ids("sales1")
    assert b in ids("sales2") and a not in ids("sales2")
    assert {a, b} <= ids("salesmgr")
    assert as_user("sales1").api("get", f"/api/v1/crm/customers/{b}").status_code == 404
    assert as_user("hr1").api("get", "/api/v1/crm/customers").status_code == 403


def test_menu_shows_crm_only_to_those_who_read_it(as_user):
    assert "/crm/customers" in as_user("sales1").get("/").get_data(as_text=True)
    assert "/crm/customers" not in as_user("hr1").get("/").get_data(as_text=True)


def test_hook_demo_data_is_idempotent(make_app):
    from core.demo import create_demo_company
    from tests.conftest import PASSWORD

    app = make_app(plugins=["approval", "crm"], DEMO_RECORDS=True)
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
        counts = [db.session.scalar(select(func.count()).select_from(m)) for m in (Customer, Lead, Opportunity)]
        assert counts[0] >= 200 and counts[1] >= 50 and counts[2] >= 80
        create_demo_company(PASSWORD)
        db.session.commit()
        assert [db.session.scalar(select(func.count()).select_from(m)) for m in (Customer, Lead, Opportunity)] == counts
        codes = db.session.scalars(select(Customer.credit_code).where(Customer.credit_code.is_not(None))).all()
        assert all(creditcode.is_valid(code) for code in codes)
