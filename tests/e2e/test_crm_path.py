"""The whole CRM path in a browser: a lead arrives through the public form and lands in sales1's
inbox; it is converted; the opportunity crosses the kanban into contract approval; legal1,
finance1 and gm approve from their inboxes; it is won; an order is confirmed; finance1 sees the
invoice request; sales2 cannot open any of it; salesmgr sees the opportunity and it in the funnel."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.extensions import db
from tests.e2e.test_portal import load, signed_in_page as login, zh

OPPORTUNITY = "华东新锐年度采购项目"


def approve_from_inbox(app, browser, live_server, username):
    page = login(browser, live_server, username)
    page.goto("/inbox")
    title = zh(app, "Contract approval: %(name)s", name=OPPORTUNITY)
    load(page, page.get_by_role("link", name=title, exact=True))
    load(page, page.get_by_role("button", name=zh(app, "Approve"), exact=True))
    page.context.close()


def drag(page: Page, card_name: str, stage_label: str) -> None:
    card = page.get_by_role("article", name=card_name)
    column = page.get_by_role("region", name=stage_label)
    card.drag_to(column.locator("[data-drop]"))


def test_lead_to_invoice_request(app, browser, live_server, page: Page, console, save_screenshot):
    # 1. A visitor leaves their details on the public form (no login).
    page.goto("/crm/leads/form")
    page.get_by_label(zh(app, "Your name")).fill("刘先生")
    page.get_by_label(zh(app, "Company")).fill("杭州新锐贸易有限公司")
    page.get_by_label(zh(app, "Mobile")).fill("13912345678")
    page.wait_for_timeout(3200)  # a person takes a few seconds; the form refuses anything faster
    load(page, page.get_by_role("button", name=zh(app, "Send"), exact=True))
    expect(page.get_by_role("heading", name=zh(app, "Thank you"))).to_be_visible()

    # 2. sales1 finds it in the inbox and converts it (with an opportunity).
    rep = login(browser, live_server, "sales1")
    rep.goto("/inbox")
    expect(rep.get_by_role("link", name=zh(app, "New lead: %(name)s", name="刘先生"), exact=True)).to_be_visible()
    with app.app_context():
        from plugins.crm.models import Lead

        lead_id = db.session.scalar(select(Lead.id).where(Lead.name == "刘先生"))
    converted = rep.evaluate("""async ([leadId, name]) => {
        const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
        const r = await fetch(`/api/v1/crm/leads/${leadId}/convert`, {method: "POST",
            headers: {"Content-Type": "application/json", "X-CSRFToken": token},
            body: JSON.stringify({opportunity: {name, amount: "120000.00"}})});
        return [r.status, await r.json()];
    }""", [lead_id, OPPORTUNITY])
    assert converted[0] == 201, converted
    opp_id = converted[1]["opportunity_id"]

    # 3. Across the kanban: winning now is refused with a clear message; then into contract approval.
    rep.goto("/crm/kanban")
    drag(rep, OPPORTUNITY, zh(app, "Won"))
    expect(rep.get_by_role("alert")).to_be_visible()
    expect(rep.get_by_role("region", name=zh(app, "Initial contact")).get_by_role("article", name=OPPORTUNITY)).to_be_visible()
    drag(rep, OPPORTUNITY, zh(app, "Needs confirmed"))
    expect(rep.get_by_role("status")).to_be_visible()
    drag(rep, OPPORTUNITY, zh(app, "Contract approval"))
    expect(rep.get_by_role("status")).to_contain_text(zh(app, "Contract approval"))
    rep.reload()
    expect(rep.get_by_role("region", name=zh(app, "Contract approval")).get_by_role("article", name=OPPORTUNITY)).to_be_visible()
    save_screenshot(rep, "kanban-contract")

    # 4. legal1, finance1 and (over 100,000) gm approve from their inboxes.
    for approver in ("legal1", "finance1", "gm"):
        approve_from_inbox(app, browser, live_server, approver)

    # 5. Won, then a sales order, confirmed.
    rep.goto("/crm/kanban")
    drag(rep, OPPORTUNITY, zh(app, "Won"))
    expect(rep.get_by_role("status")).to_contain_text(zh(app, "Won"))
    rep.reload()
    won = rep.get_by_role("region", name=zh(app, "Won")).get_by_role("article", name=OPPORTUNITY)
    load(rep, won.get_by_role("link", name=zh(app, "Create sales order")))
    rep.get_by_label(f"{zh(app, 'Product')} 1", exact=True).fill("年度服务包")
    rep.get_by_label(f"{zh(app, 'Quantity')} 1", exact=True).fill("2")
    rep.get_by_label(f"{zh(app, 'Unit price')} 1", exact=True).fill("60000.00")
    load(rep, rep.get_by_role("button", name=zh(app, "Create sales order")))
    expect(rep.locator("[data-order-total]")).to_have_text("¥120,000.00")
    load(rep, rep.get_by_role("button", name=zh(app, "Confirm order")))
    expect(rep.locator("[data-invoice-status]")).to_have_text(zh(app, "Invoice requested"))
    order_url = rep.url
    save_screenshot(rep, "order")

    # 6. finance1 sees the invoice request and opens the order.
    finance = login(browser, live_server, "finance1")
    finance.goto("/inbox")
    load(finance, finance.get_by_role("link", name=re.compile(re.escape(zh(app, "Invoice request: order %(number)s, %(amount)s",
                                                                                number="SO-", amount="")[:6]))))
    expect(finance.get_by_role("button", name=zh(app, "Mark invoice issued"))).to_be_visible()

    # 7. sales2 cannot open any of it.
    other = login(browser, live_server, "sales2")
    for url in (f"/crm/opportunities/{opp_id}", order_url, f"/crm/leads/{lead_id}", f"/crm/opportunities/{opp_id}/order"):
        assert other.goto(url).status == 404, url
    other.goto("/crm/kanban")
    expect(other.get_by_role("article", name=OPPORTUNITY)).to_have_count(0)

    # 8. salesmgr sees it on the kanban and in the funnel: one won opportunity of 120,000.00.
    manager = login(browser, live_server, "salesmgr")
    manager.goto("/crm/kanban")
    expect(manager.get_by_role("region", name=zh(app, "Won")).get_by_role("article", name=OPPORTUNITY)).to_be_visible()
    manager.goto("/crm/reports")
    funnel = manager.get_by_role("region", name=zh(app, "Sales funnel"))
    won = funnel.get_by_role("row").filter(has=manager.get_by_role("rowheader", name=zh(app, "Won"), exact=True))
    expect(won).to_contain_text("120000.00")
    expect(won.get_by_role("cell").first).to_have_text("1")
    assert console.errors == []
