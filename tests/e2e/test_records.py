"""A resource's generic pages in a real browser: create, edit, a stale edit, history, delete.

The sample third-party plugin's ``notes.note`` resource stands in for any business object.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.test_portal import load, log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(make_app):
    """Every plugin plus the sample ``notes`` plugin, with the demo company."""
    from core.demo import create_demo_company
    from core.extensions import db

    app = make_app(plugins=("approval", "crm", "srm", "hr", "notes"))
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def test_a_record_is_created_edited_traced_and_deleted_in_the_browser(page: Page, console, save_screenshot):
    page.goto("/notes/notes")
    log_in(page, "sales1", PASSWORD)
    expect(page.get_by_role("heading", name="团队便签", exact=True)).to_be_visible()

    load(page, page.get_by_role("link", name="新建", exact=True))
    load(page, page.get_by_role("button", name="保存", exact=True))  # empty title: a field error, nothing saved
    expect(page.get_by_text("长度应为 1 至 200 个字符。")).to_be_visible()
    page.get_by_label("标题").fill("华东区周报")
    page.get_by_label("内容").fill("本周拜访 3 家客户。")
    load(page, page.get_by_role("button", name="保存", exact=True))
    expect(page.get_by_role("heading", name="华东区周报", exact=True)).to_be_visible()
    expect(page.get_by_role("main").get_by_text("张伟", exact=True)).to_be_visible()  # the owner, by name

    load(page, page.get_by_role("link", name="编辑", exact=True))
    page.get_by_label("标题").fill("华东区周报（修订）")
    load(page, page.get_by_role("button", name="保存", exact=True))
    expect(page.get_by_role("heading", name="华东区周报（修订）", exact=True)).to_be_visible()

    load(page, page.get_by_role("link", name=re.compile("^历史")))
    history = page.get_by_role("list").filter(has_text="修改了")
    expect(history).to_contain_text("华东区周报")
    expect(history).to_contain_text("华东区周报（修订）")
    save_screenshot(page, "history")

    page.once("dialog", lambda dialog: dialog.accept())
    load(page, page.get_by_role("button", name="删除", exact=True))
    expect(page).to_have_url(re.compile(r"/notes/notes$"))
    expect(page.get_by_role("alert")).to_contain_text("删除成功")
    expect(page.get_by_role("link", name="华东区周报（修订）")).to_have_count(0)
    # Chromium logs the form's 422 answer as a failed resource load; anything else is a real error.
    assert [e for e in console.errors if "status of 422" not in e] == []


def test_a_stale_edit_is_refused_and_offers_to_reload(page: Page, browser, live_server, console):
    page.goto("/notes/notes/new")
    log_in(page, "sales1", PASSWORD)
    page.get_by_label("标题").fill("原稿")
    load(page, page.get_by_role("button", name="保存", exact=True))
    record = page.url
    page.goto(record + "/edit")  # this window reads version 1 ...

    # ... while the same person, in a second window, changes the record and saves first.
    other = browser.new_context(base_url=live_server, locale="zh-CN")
    second = other.new_page()
    second.goto("/login")
    log_in(second, "sales1", PASSWORD)
    second.goto(record + "/edit")
    second.get_by_label("标题").fill("第二个窗口的版本")
    load(second, second.get_by_role("button", name="保存", exact=True))
    other.close()

    page.get_by_label("标题").fill("第一个窗口的版本")
    response = load(page, page.get_by_role("button", name="保存", exact=True))
    assert response is not None and response.status == 409
    expect(page.get_by_role("alert")).to_contain_text("sales1")
    expect(page.get_by_label("标题")).to_have_value("第一个窗口的版本")  # the typing is kept
    load(page, page.get_by_role("link", name="重新加载最新版本"))
    expect(page.get_by_label("标题")).to_have_value("第二个窗口的版本")
    unexpected = [e for e in console.errors if "status of 409" not in e]
    assert unexpected == []


def test_a_contacts_customer_is_picked_by_typing_its_name(app, page: Page, console, save_screenshot):
    from sqlalchemy import select

    from core import resources as records
    from core.extensions import db
    from core.org.models import User
    from plugins.crm import creditcode

    with app.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        customer = records.get_resource("crm.customer")
        picked = records.create(customer, sales1, {"name": "浏览器选择客户有限公司", "credit_code": creditcode.make(8701)})
        records.create(customer, sales1, {"name": "另一家客户", "credit_code": creditcode.make(8702)})
        db.session.commit()
        picked_id, sales1_id = picked.id, sales1.id
    page.goto("/crm/contacts/new")
    log_in(page, "sales1", PASSWORD)
    page.get_by_label("联系人姓名").fill("选择客户的联系人")
    expect(page.get_by_label("负责人")).to_have_value(str(sales1_id))
    box = page.get_by_label("客户", exact=True)
    box.press_sequentially("浏览器", delay=30)
    options = page.locator("#dl-customer_id option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", "浏览器选择客户有限公司")
    box.fill("浏览器选择客户有限公司")  # what choosing the suggestion puts in the box
    load(page, page.get_by_role("button", name="保存", exact=True))
    expect(page.get_by_role("heading", name="选择客户的联系人", exact=True)).to_be_visible()
    link = page.get_by_role("main").get_by_role("link", name="浏览器选择客户有限公司")
    expect(link).to_have_attribute("href", f"/crm/customers/{picked_id}")
    save_screenshot(page, "contact-with-customer")
