"""Notifications: inbox items notify by preference, the centre (bell, page, API), e-mail via SMTP."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask_babel import gettext
from sqlalchemy import select, text

from core import clock, inbox, notify
from core.audit.models import AuditEntry
from core.extensions import db
from core.notify import admin as notify_admin
from core.notify.models import Delivery, MailSettings, Notification
from core.notify.sweep import sweep
from core.org.services import find_user

from tests.conftest import PASSWORD, Client
from tests.core.notify_fakes import SmtpServer

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@pytest.fixture
def napp(make_app):
    app = make_app(plugins=(), ROBOT_HOSTS=["127.0.0.1"], BASE_URL="https://oa.example.com/")
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    clock.set_now(T0)
    return app


def login(app, username, language=None) -> Client:
    client = Client(app)
    assert client.login(username).status_code == 302
    if language:
        client.post(f"/lang/{language}")
    return client


def setup_mail(port, **extra):
    admin = find_user("admin")
    notify_admin.save_mail(admin, {"enabled": True, "host": "127.0.0.1", "port": port, "security": "none",
                                   "sender": "oa@example.com", **extra})
    db.session.commit()


def add_robot(platform, url, **extra):
    robot = notify_admin.save_robot(find_user("admin"), None, {"name": f"{platform} robot", "platform": platform,
                                                               "webhook_url": url, "kinds": ["task", "approval"],
                                                               **extra})
    db.session.commit()
    return robot.id


def deliveries(channel=None):
    query = select(Delivery).order_by(Delivery.id)
    if channel:
        query = query.where(Delivery.channel == channel)
    return db.session.scalars(query).all()


# Inbox items -> notifications -------------------------------------------------------------------


def test_new_inbox_item_notifies_assignee_in_the_same_transaction(napp):
    with napp.app_context():
        setup_mail(2525)
        sales1 = find_user("sales1")
        todo = inbox.upsert("core", "t:1", sales1, "task", "Call the customer", url="/x/1")
        db.session.rollback()  # the business change did not happen: neither did its notification
        assert db.session.scalar(select(Notification.id)) is None
        todo = inbox.upsert("core", "t:1", sales1, "task", "Call the customer", url="/x/1")
        inbox.upsert("core", "t:1", sales1, "task", "Call the customer (edited)", url="/x/1")  # re-entry: no second one
        db.session.commit()
        rows = db.session.scalars(select(Notification)).all()
        assert [(n.recipient_id, n.kind, n.title, n.url) for n in rows] == [
            (sales1.id, "task", "Call the customer", f"/inbox/{todo.id}/open")]
        assert [d.channel for d in deliveries()] == ["email"]
        assert notify.unread_count(sales1) == 1


def test_preferences_choose_the_channels_per_kind(napp):
    with napp.app_context():
        setup_mail(2525)
        robot_id = add_robot("wecom", "http://127.0.0.1:9/cgi-bin/webhook/send?key=k1",
                             department_id=find_user("salesmgr").department_id)
        sales1, hr1 = find_user("sales1"), find_user("hr1")
        notify.set_preferences(sales1, {"task": ["robot"], "approval": ["email", "robot"]})
        db.session.commit()
        notify.send(sales1, "task", "A task")        # robot only: e-mail turned off for tasks
        notify.send(sales1, "approval", "Approve")    # both
        notify.send(sales1, "cc", "A copy")           # in-app only: the robot does not post copies
        notify.send(hr1, "task", "HR task")           # e-mail only: hr1 is outside the robot's department
        db.session.commit()
        got = {(n.title, d.channel, d.robot_id) for d, n in db.session.execute(
            select(Delivery, Notification).join(Notification, Notification.id == Delivery.notification_id))}
        assert got == {("A task", "robot", robot_id), ("Approve", "email", None), ("Approve", "robot", robot_id),
                       ("HR task", "email", None)}
        assert db.session.scalar(select(Notification.id).where(Notification.title == "A copy")) is not None
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.resource == "core.notification_preferences"))
        assert entry.changes["task"] == [["email", "robot"], ["robot"]]


def test_preferences_page_saves_the_choice(napp):
    client = login(napp, "sales1", "en")
    page = client.get("/account/notifications").get_data(as_text=True)
    assert 'name="task:email" id="pref-task-email" checked' in page
    response = client.post("/account/notifications", {"approval:email": "on", "task:robot": "on"})
    assert response.status_code == 302
    with napp.app_context():
        chosen = notify.preferences(find_user("sales1"))
        assert chosen["approval"] == ["email"] and chosen["task"] == ["robot"] and chosen["mention"] == []
    bad = client.api("put", "/api/v1/notifications/preferences", json={"task": ["fax"]})
    assert bad.status_code == 422 and "task" in bad.get_json()["error"]["fields"]


# The centre -------------------------------------------------------------------------------------


def test_bell_page_and_api_show_only_own_notifications(napp):
    with napp.app_context():
        mine = notify.send(find_user("sales1"), "notice", "Yours", url="/inbox").id
        notify.send(find_user("sales1"), "notice", "Also yours")
        theirs = notify.send(find_user("sales2"), "notice", "Not yours").id
        db.session.commit()
    client = login(napp, "sales1", "en")
    home = client.get("/").get_data(as_text=True)
    assert 'data-notification-count>2<' in home
    page = client.get("/notifications").get_data(as_text=True)
    assert "Yours" in page and "Not yours" not in page
    listed = client.api("get", "/api/v1/notifications").get_json()
    assert listed["total"] == 2 and listed["unread"] == 2 and {i["title"] for i in listed["items"]} == {"Yours", "Also yours"}
    assert client.api("post", f"/api/v1/notifications/{theirs}/read").status_code == 404
    assert client.get(f"/notifications/{theirs}/open").status_code == 404
    opened = client.get(f"/notifications/{mine}/open")
    assert opened.status_code == 302 and opened.headers["Location"] == "/inbox"
    assert client.api("get", "/api/v1/notifications?unread=true").get_json()["total"] == 1
    assert client.api("get", "/api/v1/notifications?unread=maybe").status_code == 422
    assert client.post("/notifications/read-all").status_code == 302
    assert 'data-notification-count' not in client.get("/").get_data(as_text=True)
    with napp.app_context():
        assert notify.unread_count(find_user("sales2")) == 1


# E-mail -----------------------------------------------------------------------------------------


def test_email_is_sent_in_the_recipients_language_with_text_and_html(napp):
    with SmtpServer(username="mailer", password="s3cret-pass") as smtp, napp.app_context():
        setup_mail(smtp.port, username="mailer", password="s3cret-pass")
        sales1, gm = find_user("sales1"), find_user("gm")
        sales1.language, gm.language = "en", "zh_CN"
        inbox.upsert("core", "t:en", sales1, "task", "Visit ACME", url="/x")
        inbox.upsert("core", "t:zh", gm, "approval", "采购申请", url="/y")
        db.session.commit()
        counts = sweep()
        assert counts["sent"] == 2
        by_to = {m["To"].addresses[0].addr_spec: m for m in smtp.messages}
        english, chinese = by_to["sales1@example.com"], by_to["gm@example.com"]
        for message in (english, chinese):
            assert message.get_content_type() == "multipart/alternative"
            assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert english["Subject"] == "[Yiti OA] Visit ACME"
        assert chinese["Subject"] == "[一体OA] 采购申请"
        text_en = english.get_body(("plain",)).get_content()
        html_zh = chinese.get_body(("html",)).get_content()
        assert "Task: Visit ACME" in text_en and "https://oa.example.com/inbox/" in text_en
        assert "审批" in html_zh and 'href="https://oa.example.com/inbox/' in html_zh
        assert {d.status for d in deliveries("email")} == {"sent"}
        assert sweep()["sent"] == 0  # nothing is sent twice


def test_smtp_login_failure_is_a_configuration_error_shown_to_the_admin(napp):
    with SmtpServer(username="mailer", password="right") as smtp, napp.app_context():
        setup_mail(smtp.port, username="mailer", password="wrong")
        notify.send(find_user("sales1"), "task", "Hello")
        db.session.commit()
        assert sweep()["dead"] == 1
        refused = gettext("The SMTP server refused the user name or password.")  # the worker's language
        [row] = deliveries("email")
        assert row.status == "dead" and row.attempts == 1 and row.last_error == refused
        assert db.session.get(MailSettings, 1).last_error == refused
        assert smtp.messages == []
    page = login(napp, "admin", "en").get("/admin/notifications").get_data(as_text=True)
    assert refused in page


def test_unreachable_smtp_is_retried_with_backoff_then_dead(napp):
    with napp.app_context():
        setup_mail(1)  # nothing listens on port 1
        notify.send(find_user("sales1"), "task", "Hello")
        db.session.commit()
        assert sweep()["retried"] == 1
        [row] = deliveries("email")
        assert row.status == "pending" and row.next_attempt_at == T0 + timedelta(seconds=30)
        assert sweep()["retried"] == 0  # not due yet
        db.session.execute(text("UPDATE core_notification_delivery SET attempts = 7"))
        db.session.commit()
        clock.set_now(T0 + timedelta(hours=1))
        assert sweep()["dead"] == 1


def test_mail_password_is_stored_encrypted_and_audited_as_changed(napp):
    with napp.app_context():
        setup_mail(2525, username="mailer", password="p4ss-Very-Secret")
        raw = db.session.execute(text("SELECT password FROM core_mail_settings")).scalar()
        assert raw and "p4ss-Very-Secret" not in raw
        assert db.session.get(MailSettings, 1).password == "p4ss-Very-Secret"
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.resource == "core.mail_settings"))
        assert entry.changes["password"] == ["changed", "changed"] and "p4ss" not in str(entry.changes)


def test_admin_mail_form_rejects_bad_input_with_field_errors(napp):
    client = login(napp, "admin", "en")
    response = client.post("/admin/notifications/mail", {"enabled": "on", "port": "99999", "security": "tls",
                                                         "sender": "not-an-address"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "is-invalid" in page and "Not a valid email address." in page
    with napp.app_context():
        assert db.session.get(MailSettings, 1) is None
    assert login(napp, "sales1").get("/admin/notifications").status_code == 403


def test_admin_test_email_goes_to_the_admins_own_address(napp):
    with SmtpServer() as smtp:
        with napp.app_context():
            setup_mail(smtp.port)
        client = login(napp, "admin", "en")
        response = client.post("/admin/notifications/mail/test", follow_redirects=True)
        assert "A test e-mail was sent to admin@example.com" in response.get_data(as_text=True)
        assert [m["To"].addresses[0].addr_spec for m in smtp.messages] == ["admin@example.com"]


# Approval outcome -------------------------------------------------------------------------------


def test_plugins_notify_through_the_public_send(napp):
    with napp.app_context():
        row = notify.send(find_user("sales1").id, "notice", "Your request was approved", body="OK", url="/r/1")
        db.session.commit()
        assert (row.kind, row.title, row.body, row.url) == ("notice", "Your request was approved", "OK", "/r/1")
        with pytest.raises(ValueError):
            notify.send(find_user("sales1"), "spam", "x")
