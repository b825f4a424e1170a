"""The inbox in a real browser: a plugin's item shows in the menu count, opens its subject, is done, moves to 已办.

The notes plugin (tests/thirdparty) assigns a review task to the owner's manager when a note is
created. Labels are looked up in the app's Chinese catalogue, so the test reads what a user reads.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from core.extensions import db
from tests.conftest import PASSWORD
from tests.e2e.test_portal import load, zh

pytestmark = pytest.mark.e2e

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")


@pytest.fixture
def app(make_app):
    """The shared demo company, with the notes plugin enabled (the live server serves this app)."""
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def test_a_plugins_inbox_item_is_counted_opened_completed_and_moves_to_done(app, page: Page, console, save_screenshot):
    with app.test_request_context():
        from core.org.services import find_user
        from yiti_notes.services import create_note

        create_note(find_user("sales1"), "华东区周报")  # asks sales1's manager, salesmgr, to review it
        db.session.commit()
    inbox, todo_tab, done_tab, mark_done = (zh(app, m) for m in ("Inbox", "To do", "Done", "Mark as done"))

    page.goto("/login")
    page.get_by_label("用户名", exact=True).fill("salesmgr")
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    load(page, page.get_by_role("button", name="登录", exact=True))

    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name=f"{inbox} 1", exact=True)).to_be_visible()  # the open count
    load(page, nav.get_by_role("link", name=f"{inbox} 1", exact=True))
    expect(page.get_by_role("heading", name=inbox, exact=True)).to_be_visible()
    main = page.get_by_role("main")  # the menu entry and the first tab may both read 待办
    expect(main.get_by_role("link", name=re.compile(rf"^{todo_tab}"))).to_have_attribute("aria-current", "page")
    save_screenshot(page, "todo")

    # Opening the item leads to the note itself (access checked on the way).
    load(page, page.get_by_role("link", name="华东区周报", exact=True))
    expect(page).to_have_url(re.compile(r"/notes/\d+$"))
    expect(page.get_by_role("heading", name="华东区周报", exact=True)).to_be_visible()

    # Back in the inbox, complete it: it leaves 待办 and the count disappears.
    load(page, nav.get_by_role("link", name=f"{inbox} 1", exact=True))
    load(page, page.get_by_role("button", name=mark_done, exact=True))
    expect(page.get_by_role("link", name="华东区周报", exact=True)).to_have_count(0)
    expect(nav.get_by_role("link", name=inbox, exact=True)).to_be_visible()

    # 已办 lists it.
    load(page, main.get_by_role("link", name=done_tab, exact=True))
    expect(main.get_by_role("link", name=done_tab, exact=True)).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("link", name="华东区周报", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=mark_done, exact=True)).to_have_count(0)
    save_screenshot(page, "done")
    assert console.errors == []
