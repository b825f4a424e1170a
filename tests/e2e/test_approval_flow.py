"""Approvals in a browser: an expense of 8,000 goes sales1 → salesmgr → 财务 → 总经理 through the
inbox and sales1 hears the outcome; a second one is returned to sales1, edited and resubmitted.
And the designer: an admin designs a form and a flow, publishes it, and an employee finds it under
发起审批. Labels come from the app's Chinese catalogue, so the test reads what a user reads."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.test_portal import load, open_menu, signed_in_page as login, zh


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def start_approval(app, page: Page) -> None:
    """Top bar → 审批 → 发起审批."""
    open_menu(page, zh(app, "Approvals"))
    load(page, page.get_by_role("navigation").get_by_role("link", name=zh(app, "Start approval"), exact=True))


def submit_expense(app, page: Page, amount: str, reason: str, invoice: str | None = None) -> None:
    start_approval(app, page)
    card = page.locator(".card").filter(has=page.get_by_role("heading", name="费用报销", exact=True))
    load(page, card.get_by_role("link", name=zh(app, "Fill in"), exact=True))
    page.get_by_label("报销金额").fill(amount)
    page.get_by_label("事由").fill(reason)
    if invoice:
        page.get_by_label("发票", exact=True).set_input_files(files=[{"name": invoice, "mimeType": "application/pdf",
                                                                      "buffer": PDF}])
    load(page, page.get_by_role("button", name=zh(app, "Submit"), exact=True))
    expect(page.get_by_text(zh(app, "In progress"), exact=True)).to_be_visible()


def decide_from_inbox(app, browser, live_server, username, title, button="Approve", save=None, file=None):
    page = login(browser, live_server, username)
    load(page, page.get_by_role("navigation").get_by_role("link", name=re.compile("^" + zh(app, "Inbox"))))
    load(page, page.get_by_role("link", name=title, exact=True))
    if file:  # the initiator's attachment is there to open
        expect(page.get_by_role("link", name=file, exact=True)).to_be_visible()
    page.get_by_label(zh(app, "Comment"), exact=True).fill("同意" if button == "Approve" else "请补充发票")
    if save:
        save(page, f"{username}-decides")
    load(page, page.get_by_role("button", name=zh(app, button), exact=True))
    expect(page.get_by_role("button", name=zh(app, button), exact=True)).to_have_count(0)  # decided: no more buttons
    page.context.close()


def test_expense_goes_through_manager_finance_and_gm_and_a_returned_one_is_resubmitted(
        app, browser, live_server, page: Page, console, save_screenshot):
    title = "费用报销 · 张伟"  # the flow name and sales1's display name
    sales1 = login(browser, live_server, "sales1")
    submit_expense(app, sales1, "8000", "客户拜访差旅", invoice="发票.pdf")
    first_url = sales1.url

    for name in ("salesmgr", "finance1", "gm"):  # the manager, then 财务 and 总经理 (over 5,000)
        decide_from_inbox(app, browser, live_server, name, title, save=save_screenshot,
                          file="发票.pdf" if name == "salesmgr" else None)

    sales1.reload()
    expect(sales1.get_by_text(zh(app, "Approved"), exact=True).first).to_be_visible()
    # sales1 is told of the outcome: an inbox item, and a notification in the centre.
    load(sales1, sales1.get_by_role("navigation").get_by_role("link", name=re.compile("^" + zh(app, "Inbox"))))
    outcome = zh(app, "Approved: %(title)s", title=title)
    expect(sales1.get_by_role("link", name=outcome, exact=True)).to_be_visible()
    sales1.goto("/notifications")
    expect(sales1.get_by_role("main").get_by_role("link", name=outcome, exact=True).first).to_be_visible()
    save_screenshot(sales1, "sales1-outcome")

    # A second request: the manager returns it to sales1, who edits it and resubmits.
    submit_expense(app, sales1, "3000", "打车费")
    second_url = sales1.url
    assert second_url != first_url
    manager = login(browser, live_server, "salesmgr")
    manager.goto(second_url)
    manager.get_by_label(zh(app, "Comment"), exact=True).fill("请补充发票")
    manager.get_by_label(zh(app, "Return to"), exact=True).select_option(label=zh(app, "The initiator"))
    load(manager, manager.get_by_role("button", name=zh(app, "Return"), exact=True))
    manager.context.close()

    load(sales1, sales1.get_by_role("navigation").get_by_role("link", name=re.compile("^" + zh(app, "Inbox"))))
    load(sales1, sales1.get_by_role("link", name=zh(app, "Returned to you: %(title)s", title=title), exact=True))
    expect(sales1.get_by_text(zh(app, "Returned"), exact=True).first).to_be_visible()
    load(sales1, sales1.get_by_role("link", name=zh(app, "Edit and resubmit"), exact=True))
    expect(sales1.get_by_label("事由")).to_have_value("打车费")  # the values come back to edit
    sales1.get_by_label("事由").fill("打车费（已补发票）")
    load(sales1, sales1.get_by_role("button", name=zh(app, "Resubmit"), exact=True))
    expect(sales1.get_by_text(zh(app, "In progress"), exact=True)).to_be_visible()
    expect(sales1.get_by_text(zh(app, "Resubmitted"), exact=True)).to_be_visible()  # on the timeline
    expect(sales1.get_by_text("打车费（已补发票）", exact=True)).to_be_visible()
    save_screenshot(sales1, "sales1-resubmitted")

    decide_from_inbox(app, browser, live_server, "salesmgr", title)  # back at the first step
    sales1.reload()
    expect(sales1.get_by_text(zh(app, "Approved"), exact=True).first).to_be_visible()
    sales1.context.close()
    assert console.errors == []


def test_an_admin_designs_a_form_and_flow_and_an_employee_submits_it(
        app, browser, live_server, page: Page, console, save_screenshot):
    admin = login(browser, live_server, "admin")
    admin.on("console", console.on_console)
    admin.on("pageerror", console.on_page_error)
    admin.goto("/approval/flows")
    load(admin, admin.get_by_role("link", name=zh(app, "New flow"), exact=True))
    admin.get_by_label(zh(app, "Key"), exact=True).fill("training")
    admin.get_by_label(zh(app, "Name"), exact=True).first.fill("培训申请")

    admin.get_by_role("button", name=zh(app, "Add field"), exact=True).click()
    field = admin.get_by_role("group").filter(has_text="field1").first
    field.get_by_label(zh(app, "Label (Chinese)")).fill("课程名称")
    field.get_by_label(zh(app, "Required")).check()
    admin.get_by_role("button", name=zh(app, "Add field"), exact=True).click()
    second = admin.get_by_role("group").filter(has_text="field2").first
    second.get_by_label(zh(app, "Label (Chinese)")).fill("费用")
    second.get_by_label(zh(app, "Key")).fill("fee")
    second.get_by_label(zh(app, "Type")).select_option(label=zh(app, "Money"))

    admin.get_by_role("button", name=zh(app, "Add approval step"), exact=True).click()
    step = admin.get_by_role("group", name=re.compile(zh(app, "Approval step")))
    step.get_by_label(zh(app, "Name"), exact=True).fill("人事审批")
    step.get_by_label(zh(app, "Approvers"), exact=True).select_option(label=zh(app, "Role"))
    step.get_by_label(zh(app, "Role"), exact=True).select_option(value="hr")
    step.get_by_label(zh(app, "Mode"), exact=True).select_option(label=zh(app, "Any one approves (或签)"))
    save_screenshot(admin, "designer")
    load(admin, admin.get_by_role("button", name=zh(app, "Save and publish"), exact=True))
    expect(admin.get_by_text(re.compile("training"))).to_be_visible()

    # Simulate before anyone submits: hr1 would approve.
    load(admin, admin.get_by_role("link", name=zh(app, "Simulate"), exact=True))
    admin.get_by_label(zh(app, "Initiator"), exact=True).select_option(label="张伟 (sales1)")
    admin.get_by_label("课程名称").fill("项目管理")
    admin.get_by_label("费用").fill("1200")
    load(admin, admin.get_by_role("button", name=zh(app, "Run simulation"), exact=True))
    path = admin.get_by_role("list", name=zh(app, "Path"))
    expect(path).to_contain_text("人事审批")
    expect(path).to_contain_text("赵敏")
    save_screenshot(admin, "simulate")
    admin.context.close()

    sales1 = login(browser, live_server, "sales1")
    start_approval(app, sales1)
    card = sales1.locator(".card").filter(has=sales1.get_by_role("heading", name="培训申请", exact=True))
    load(sales1, card.get_by_role("link", name=zh(app, "Fill in"), exact=True))
    sales1.get_by_label("课程名称").fill("项目管理")
    sales1.get_by_label("费用").fill("1200")
    load(sales1, sales1.get_by_role("button", name=zh(app, "Submit"), exact=True))
    expect(sales1.get_by_text(zh(app, "In progress"), exact=True)).to_be_visible()
    sales1.context.close()
    assert console.errors == []
