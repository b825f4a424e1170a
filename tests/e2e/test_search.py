"""The header's global search in a real browser: type, walk the suggestions with the keyboard, open one."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.test_portal import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(make_app):
    from core import resources as records
    from core.demo import create_demo_company
    from core.extensions import db
    from core.org.models import User
    from sqlalchemy import select

    app = make_app()
    with app.app_context():
        create_demo_company(PASSWORD)
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        customer = records.get_resource("crm.customer")
        records.create(customer, sales1, customer.sample(1) | {"name": "苏州星河精密机械有限公司"})
        db.session.commit()
    return app


def test_header_search_finds_a_customer_with_the_keyboard(page: Page, console):
    page.goto("/")
    log_in(page, "sales1", PASSWORD)
    page.keyboard.press("/")
    box = page.get_by_role("searchbox", name="搜索")
    expect(box).to_be_focused()
    box.press_sequentially("星河")
    hit = page.get_by_role("option", name="苏州星河精密机械有限公司")
    expect(hit).to_be_visible()
    box.press("ArrowDown")
    expect(hit).to_be_focused()
    hit.press("Enter")
    expect(page.get_by_role("heading", name="苏州星河精密机械有限公司")).to_be_visible()
    box.fill("不存在的公司")
    box.press("Enter")
    expect(page.get_by_text("没有找到")).to_be_visible()
    assert console.errors == []
