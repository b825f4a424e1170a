"""Notifications in a real browser: the bell counts what is unread, the centre opens the subject,
settings stick; an admin sets up a DingTalk robot and its test message arrives signed (or the
platform's refusal shows on the page). Labels come from the app's catalogue, as a user reads them.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core import notify
from core.extensions import db
from core.notify.models import Notification
from tests.conftest import PASSWORD
from tests.core.notify_fakes import RobotServer
from tests.e2e.test_portal import load, log_in as portal_log_in, zh

pytestmark = pytest.mark.e2e

SECRET = "SEC0123456789abcdef-e2e"
SCREENSHOTS = "/tmp/notifyreview-{}.png"


@pytest.fixture
def app(make_app):
    """Every plugin and the demo company; robots may post to the fake platform on 127.0.0.1."""
    app = make_app(ROBOT_HOSTS=["127.0.0.1"])
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


@pytest.fixture
def robot_server():
    with RobotServer() as fake:
        yield fake


def log_in(page: Page, username: str) -> None:
    page.goto("/login")
    portal_log_in(page, username, PASSWORD)


def bell(app, page: Page, unread: int):
    """The header's bell link, as a screen reader names it with ``unread`` notifications."""
    name = zh(app, "Notifications")
    if unread:
        name += f" ({zh(app, '%(count)s unread', count=unread)})"
    return page.get_by_role("navigation").get_by_role("link", name=name, exact=True)


def test_an_approval_reaches_the_approver_through_the_bell_and_settings_stick(app, page: Page, console):
    with app.test_request_context():
        from core.org.services import find_user
        from plugins.approval import services

        request_id = services.start("expense", find_user("sales1"), {"amount": "800", "reason": "客户招待"}).id
        db.session.commit()
        manager = find_user("salesmgr")
        title = db.session.scalar(select(Notification.title).where(Notification.recipient_id == manager.id)
                                  .order_by(Notification.id.desc()))
        unread = notify.unread_count(manager)
    assert unread >= 1

    log_in(page, "salesmgr")
    expect(bell(app, page, unread)).to_be_visible()
    expect(bell(app, page, unread).get_by_text(str(unread), exact=True)).to_be_visible()  # the red badge
    load(page, bell(app, page, unread))
    expect(page.get_by_role("heading", name=zh(app, "Notifications"), exact=True)).to_be_visible()
    page.screenshot(path=SCREENSHOTS.format("centre"), full_page=True)

    # The notification leads to the request itself (through the inbox, which re-checks access).
    load(page, page.get_by_role("main").get_by_role("link", name=title, exact=True).first)
    expect(page).to_have_url(re.compile(rf"/approval/requests/{request_id}$"))
    expect(bell(app, page, unread - 1)).to_be_visible()  # read now: the count drops

    # Settings: no e-mail for approvals; it sticks.
    page.goto("/account/notifications")
    email_for_approvals = page.get_by_label(f"{zh(app, 'E-mail')}: {zh(app, 'Approval')}", exact=True)
    robot_for_tasks = page.get_by_label(f"{zh(app, 'Group robot')}: {zh(app, 'Task')}", exact=True)
    expect(email_for_approvals).to_be_checked()
    email_for_approvals.uncheck()
    load(page, page.get_by_role("button", name=zh(app, "Save"), exact=True))
    expect(page.get_by_text(zh(app, "Your notification settings are saved."))).to_be_visible()
    page.reload()
    expect(email_for_approvals).not_to_be_checked()
    expect(robot_for_tasks).to_be_checked()
    with app.app_context():
        from core.org.services import find_user

        assert notify.preferences(find_user("salesmgr"))["approval"] == ["robot"]
    assert console.errors == []


def test_admin_sets_up_a_dingtalk_robot_and_its_test_message_arrives_signed(app, page: Page, console, robot_server):
    robot_server.secrets["e2e-token"] = SECRET
    send_test = zh(app, "Send test message")
    log_in(page, "admin")
    page.goto("/admin/notifications")
    load(page, page.get_by_role("link", name=zh(app, "New robot"), exact=True))
    page.get_by_label(zh(app, "Name") + " *", exact=True).fill("销售群机器人")  # * marks a required field
    expect(page.get_by_label(zh(app, "Platform"), exact=True)).to_have_value("dingtalk")
    page.get_by_label(zh(app, "Webhook address") + " *", exact=True).fill(robot_server.url("dingtalk", "e2e-token"))
    page.get_by_label(zh(app, "Signing secret"), exact=True).fill(SECRET)
    load(page, page.get_by_role("button", name=zh(app, "Save"), exact=True))

    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="销售群机器人", exact=True))
    expect(row).to_contain_text("/robot/send?…")  # the address without its token
    load(page, row.get_by_role("button", name=send_test, exact=True))
    expect(page.get_by_text(zh(app, "The test message was sent."))).to_be_visible()
    [posted] = robot_server.requests
    assert posted["signature_ok"] is True and posted["platform"] == "dingtalk"
    assert posted["body"]["msgtype"] == "markdown" and "销售群机器人" in posted["body"]["markdown"]["text"]

    # A wrong secret: the platform refuses, and the page says why (next to the robot, too).
    load(page, row.get_by_role("link", name="销售群机器人", exact=True))
    page.get_by_label(zh(app, "Signing secret"), exact=True).fill("SEC-not-the-right-one")
    load(page, page.get_by_role("button", name=zh(app, "Save"), exact=True))
    load(page, row.get_by_role("button", name=send_test, exact=True))
    failed = zh(app, "The test message failed: %(error)s", error="")
    expect(page.get_by_role("alert").filter(has_text=failed)).to_contain_text("sign not match")
    expect(row).to_contain_text("sign not match")
    assert len(robot_server.requests) == 2 and robot_server.requests[1]["signature_ok"] is False
    page.screenshot(path=SCREENSHOTS.format("admin"), full_page=True)
    content = page.content()
    assert SECRET not in content and "e2e-token" not in content
    assert console.errors == []
