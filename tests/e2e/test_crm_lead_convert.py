"""Converting a lead in a real browser: from the lead's detail page to the new customer, with an
opportunity, and no JavaScript error on the way."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.extensions import db
from core.org.models import User
from plugins.crm import services
from plugins.crm.models import Lead, Opportunity
from tests.conftest import PASSWORD
from tests.e2e.test_portal import load, log_in

pytestmark = pytest.mark.e2e


def test_a_rep_converts_a_lead_with_an_opportunity_from_its_detail_page(app, page: Page, console, save_screenshot):
    with app.app_context():
        rep = db.session.scalar(select(User).where(User.username == "sales1"))
        lead = services.capture_lead({"name": "孙先生", "company": "苏州浏览器测试有限公司", "mobile": "13500001234"})
        lead.owner_id, lead.department_id, lead.status = rep.id, rep.department_id, "assigned"
        db.session.commit()
        lead_id = lead.id
    page.goto(f"/crm/leads/{lead_id}")
    log_in(page, "sales1", PASSWORD)
    load(page, page.get_by_role("link", name=re.compile("^(转为客户|Convert to customer)$")))
    expect(page).to_have_url(re.compile(rf"/crm/leads/{lead_id}/convert$"))
    expect(page.get_by_role("main")).to_contain_text("苏州浏览器测试有限公司")
    page.get_by_label(re.compile("^(同时创建商机|Also create an opportunity)$")).check()
    page.get_by_label(re.compile("^(商机名称|Opportunity name)$")).fill("首单")
    page.get_by_label(re.compile("^(金额|Amount)$")).fill("-1")
    save_screenshot(page, "form")
    load(page, page.get_by_role("button", name=re.compile("^(转为客户|Convert to customer)$")))
    expect(page.locator(".invalid-feedback")).to_have_count(1)  # the amount, shown at its field
    save_screenshot(page, "error")
    page.get_by_label(re.compile("^(金额|Amount)$")).fill("50000")
    load(page, page.get_by_role("button", name=re.compile("^(转为客户|Convert to customer)$")))
    expect(page).to_have_url(re.compile(r"/crm/customers/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("苏州浏览器测试有限公司")
    save_screenshot(page, "customer")
    with app.app_context():
        converted = db.session.get(Lead, lead_id)
        assert converted.status == "converted"
        assert db.session.scalar(select(Opportunity.name).where(Opportunity.customer_id == converted.customer_id)) == "首单"
    # Chromium logs the form's 422 answer as a failed resource load; anything else is a real error.
    assert [e for e in console.errors if "status of 422" not in e] == []
