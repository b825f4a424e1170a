"""The CRM reports page and the customer 360° page in a real browser: the charts draw (ECharts
canvases under the Content-Security-Policy) and nothing logs a JavaScript error."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.test_portal import load, log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(make_app):
    """Every plugin with the demo company and its sample CRM records."""
    from core.demo import create_demo_company
    from core.extensions import db

    app = make_app(DEMO_RECORDS=True)
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def test_reports_draw_their_charts_and_customer_360_opens_from_the_detail_page(page: Page, console, save_screenshot):
    page.goto("/crm/reports")
    log_in(page, "salesmgr", PASSWORD)
    expect(page).to_have_url(re.compile(r"/crm/reports$"))
    # ECharts (1 MB) loads deferred; on a busy CI box that can take longer than expect()'s default 5 s
    for chart in ("funnel", "leaderboard", "customers.region", "tickets.sla"):
        expect(page.locator(f'[data-report-chart="{chart}"] canvas')).to_have_count(1, timeout=20_000)
    funnel = page.get_by_role("table").first
    expect(funnel).to_contain_text("初步接洽")  # a stage label from the CRM settings
    page.get_by_label(re.compile("^(From|从)$")).fill("2020-01-01")
    load(page, page.get_by_role("button", name=re.compile("^(应用|Apply)$")))
    expect(page).to_have_url(re.compile(r"from=2020-01-01"))
    expect(page.locator('[data-report-chart="funnel"] canvas')).to_have_count(1, timeout=20_000)
    save_screenshot(page, "reports")

    page.goto("/crm/customers")
    load(page, page.get_by_role("main").get_by_role("link").filter(has_text="有限公司").first)
    load(page, page.get_by_role("link", name=re.compile("Customer 360|客户 ?360")))
    expect(page).to_have_url(re.compile(r"/crm/customers/\d+/360$"))
    expect(page.get_by_role("heading", name=re.compile("Activity timeline|动态时间线"))).to_be_visible()
    save_screenshot(page, "customer360")
    assert console.errors == []
