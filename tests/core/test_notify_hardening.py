"""Notifications under attack and under load: what a hostile title, webhook address or non-admin
can and cannot do, and two sweepers at once (found in review of the notifications slice)."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask_babel import gettext
from sqlalchemy import func, insert, select

from core import clock, notify
from core.audit.models import AuditEntry
from core.crypto import encrypt
from core.extensions import db
from core.notify import admin as notify_admin
from core.notify import robots
from core.notify.models import Delivery, MailSettings, Notification, Robot
from core.notify.sweep import sweep
from core.org.services import find_user

from tests.conftest import PASSWORD, Client
from tests.core.notify_fakes import RobotServer, SmtpServer
from tests.core.test_notify_robots import SECRET, T0, add_robot, admin_client, notify_sales1, statuses


@pytest.fixture
def server():
    with RobotServer() as fake:
        yield fake


@pytest.fixture
def rapp(make_app):
    app = make_app(plugins=(), ROBOT_HOSTS=["127.0.0.1"], BASE_URL="https://oa.example.com")
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    clock.set_now(T0)
    return app


def login(app, username) -> Client:
    client = Client(app)
    assert client.login(username).status_code == 302
    client.post("/lang/en")
    return client


def setup_mail(port):
    notify_admin.save_mail(find_user("admin"), {"enabled": True, "host": "127.0.0.1", "port": port,
                                                "security": "none", "sender": "oa@example.com"})
    db.session.commit()


# Hostile text -----------------------------------------------------------------------------------

HOSTILE = '[点我领奖](https://evil.example/x) <at id=all></at> <@all> <font color="warning">!</font>'


def test_titles_and_bodies_cannot_put_links_mentions_or_tags_into_robot_posts(rapp, server):
    with rapp.app_context():
        for platform, token in (("dingtalk", "d1"), ("wecom", "w1"), ("feishu", "f1")):
            add_robot(platform, server.url(platform, token))
        sales1 = find_user("sales1")
        sales1.display_name = "张伟 [x](https://evil.example/n)"
        notify.send(sales1, "task", "报销\n\n# 标题 " + HOSTILE, body="![img](https://evil.example/p.png) " + HOSTILE,
                    url="/x/1) [more](https://evil.example/u")
        db.session.commit()
        assert sweep()["sent"] == 3
    posted = {r["platform"]: r["body"] for r in server.requests}
    texts = {"dingtalk": posted["dingtalk"]["markdown"]["text"], "wecom": posted["wecom"]["markdown"]["content"],
             "feishu": posted["feishu"]["card"]["elements"][0]["content"]}
    for platform, text in texts.items():
        assert "[点我领奖]" not in text and "](https://evil" not in text, platform
        assert text.count("](") == (0 if platform == "feishu" else 1), platform  # only our link back (Feishu: a button)
        assert "<at" not in text and "<@" not in text and "<font" not in text, platform
        assert "点我领奖" in text or platform == "feishu"  # the words stay readable (Feishu has the title in its header)
        assert "\n# 标题" not in text, platform  # a title is one line: it cannot start a heading
    # Our own link back is the one link; a ")" in the page address cannot close it early.
    assert texts["wecom"].count("](") == 1 and "(https://oa.example.com/x/1%29%20%5Bmore%5D" in texts["wecom"]
    assert posted["feishu"]["card"]["header"]["title"]["content"].startswith("任务: 报销 # 标题 [点我领奖]")


def test_a_title_with_line_breaks_is_one_line_and_cannot_add_mail_headers(rapp):
    with SmtpServer() as smtp, rapp.app_context():
        setup_mail(smtp.port)
        notify.send(find_user("sales1"), "task", "Invoice\r\nBcc: victim@evil.example\r\n\r\nHello")
        db.session.commit()
        assert sweep()["sent"] == 1
        [message] = smtp.messages
        assert message["Bcc"] is None and "victim@evil.example" not in smtp.envelopes[0][1]
        assert message["Subject"].endswith("Invoice Bcc: victim@evil.example Hello")


def test_an_e_mail_that_cannot_be_composed_does_not_stop_the_others(rapp, monkeypatch):
    from core.notify import mail

    real = mail.compose
    monkeypatch.setattr(mail, "compose", lambda row, user, n, *a: (_ for _ in ()).throw(RuntimeError("boom"))
                        if n.title == "Broken" else real(row, user, n, *a))
    with SmtpServer() as smtp, rapp.app_context():
        setup_mail(smtp.port)
        notify.send(find_user("sales1"), "task", "Broken")
        notify.send(find_user("sales2"), "task", "Fine")
        db.session.commit()
        counts = sweep()
        assert (counts["retried"], counts["sent"]) == (1, 1)
        assert [m["Subject"] for m in smtp.messages] == ["[一体OA] Fine"]
        broken = db.session.scalar(select(Delivery).join(Notification).where(Notification.title == "Broken"))
        assert broken.status == "pending" and "RuntimeError" in broken.last_error


def test_titles_and_bodies_are_escaped_in_the_centre_the_email_and_the_admin_page(rapp):
    script = "<script>alert(1)</script>"
    with SmtpServer() as smtp, rapp.app_context():
        setup_mail(smtp.port)
        notify.send(find_user("sales1"), "task", script, body=script, url="/x")
        db.session.commit()
        sweep()
        html = smtp.messages[0].get_body(("html",)).get_content()
        assert script not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        db.session.execute(insert(Delivery).values(
            notification_id=db.session.scalar(select(Notification.id)), channel="email", status="dead", attempts=1,
            idempotency_key="k-dead", next_attempt_at=T0, created_at=T0, last_error=script))
        db.session.commit()
    centre = login(rapp, "sales1").get("/notifications").get_data(as_text=True)
    assert script not in centre and centre.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    page = admin_client(rapp).get("/admin/notifications").get_data(as_text=True)
    assert script not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("url", ["/\t/evil.example", "/\n/evil.example", "/ /evil.example", "//evil.example",
                                 "https://evil.example/", "/\\evil.example"])
def test_opening_a_notification_never_leaves_the_site(rapp, url):
    with rapp.app_context():
        row_id = notify.send(find_user("sales1"), "notice", "Look", url=url).id
        db.session.commit()
    response = login(rapp, "sales1").get(f"/notifications/{row_id}/open")
    assert response.status_code == 302 and response.headers["Location"] == "/notifications"


# Webhook addresses ------------------------------------------------------------------------------


def test_an_address_with_spaces_or_control_characters_is_refused_and_never_crashes_or_leaks(rapp, server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "tok SHOULD-NOT-LEAK"
    bad = f"http://127.0.0.1:{server.port}/robot/send?access_token={token}"
    client = admin_client(rapp)
    for url in (bad, bad.replace(" ", "\t"), bad.replace(" ", "é")):
        response = client.post("/admin/notifications/robots/new", {"name": "X", "platform": "dingtalk",
                                                                    "webhook_url": url, "kinds": "task"})
        assert response.status_code == 422 and "Not a valid URL." in response.get_data(as_text=True)
    with rapp.app_context():
        # One saved before this check existed: the sweep marks it dead and goes on with the next robot.
        db.session.execute(insert(Robot).values(name="old", platform="dingtalk", webhook_url=encrypt(bad),
                                                kinds=["task"], enabled=True, created_at=T0, updated_at=T0))
        db.session.commit()
        good = add_robot("wecom", server.url("wecom", "w1"))
        notify_sales1()
        counts = sweep()
        assert (counts["dead"], counts["sent"]) == (1, 1)
        assert [r["token"] for r in server.requests] == ["w1"]
        old = db.session.scalar(select(Robot).where(Robot.name == "old"))
        assert old.last_error == gettext("Not a valid URL.") and good  # the worker speaks the default language
    page = client.post(f"/admin/notifications/robots/{old.id}/test", follow_redirects=True).get_data(as_text=True)
    assert "The test message failed: Not a valid URL." in page
    assert token not in caplog.text and "SHOULD-NOT-LEAK" not in page


class RedirectServer:
    """Answers every POST with a redirect to ``target`` (another allowed host: only not following it helps)."""

    def __init__(self, target: str):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_redirects_are_not_followed_and_are_a_configuration_error(rapp, server):
    with RedirectServer(server.url("wecom", "elsewhere")) as redirector, rapp.app_context():
        robot_id = add_robot("wecom", f"http://127.0.0.1:{redirector.port}/cgi-bin/webhook/send?key=k")
        notify_sales1(2)
        assert sweep()["dead"] == 2
        assert server.requests == []  # the redirect's target never heard of it
        assert db.session.get(Robot, robot_id).last_error == gettext(
            "The address answers with a redirect (HTTP %(status)s), which robots do not follow. "
            "Check the webhook address.", status=307)


# Admin pages ------------------------------------------------------------------------------------


def admin_audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.resource.in_(
        ("core.robot", "core.mail_settings", "core.notification_delivery"))))


def test_non_admins_get_403_on_every_admin_notification_url_and_change_nothing(rapp, server):
    with rapp.app_context():
        robot_id = add_robot("wecom", server.url("wecom", "w1"))
        db.session.execute(insert(Delivery).values(
            notification_id=notify.send(find_user("sales1"), "notice", "n").id, channel="robot", robot_id=robot_id,
            status="dead", attempts=8, idempotency_key="k1", next_attempt_at=T0, created_at=T0))
        db.session.commit()
        delivery_id = db.session.scalar(select(Delivery.id))
        rules = [rule for rule in rapp.url_map.iter_rules() if rule.rule.startswith("/admin/notifications")]
        audit_before = admin_audit_count()
    assert len(rules) >= 7
    ids = {"robot_id": robot_id, "delivery_id": delivery_id}
    form = {"name": "Hijack", "platform": "wecom", "webhook_url": server.url("wecom", "evil"), "kinds": "task",
            "enabled": "on", "host": "127.0.0.1", "port": "25", "security": "none", "sender": "x@evil.example"}
    for username in ("sales1", "salesmgr", "hr1"):
        client = login(rapp, username)
        for rule in rules:
            url = rule.rule
            for name, value in ids.items():
                url = url.replace(f"<int:{name}>", str(value))
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                response = client.get(url) if method == "GET" else client.post(url, form)
                assert response.status_code == 403, (username, method, url, response.status_code)
                assert "SEC-" not in response.get_data(as_text=True)
    anonymous = Client(rapp)
    assert anonymous.get("/admin/notifications").status_code == 302
    assert anonymous.post(f"/admin/notifications/robots/{robot_id}/test").status_code in (302, 400)
    with rapp.app_context():
        assert db.session.scalar(select(func.count()).select_from(Robot)) == 1
        assert db.session.get(Robot, robot_id).name == "wecom group"
        assert db.session.get(MailSettings, 1) is None
        assert db.session.get(Delivery, delivery_id).status == "dead"
        assert admin_audit_count() == audit_before
    assert server.requests == []  # no test message went out


def test_the_admin_page_shows_robot_secrets_and_tokens_masked_only(rapp, server):
    token = "tok-visible-nowhere-77"
    with rapp.app_context():
        robot_id = add_robot("dingtalk", server.url("dingtalk", token), SECRET)
        add_robot("feishu", server.url("feishu", token + "f"), SECRET)
    client = admin_client(rapp)
    for url in ("/admin/notifications", f"/admin/notifications/robots/{robot_id}"):
        page = client.get(url).get_data(as_text=True)
        assert token not in page and SECRET not in page
        assert "/robot/send?…" in page or "Leave empty to keep it" in page


# Two sweepers -----------------------------------------------------------------------------------


def test_two_sweepers_at_once_never_post_the_same_message_twice(rapp, server, monkeypatch):
    """Each post takes 100 s here, so five outlast a 120 s lease: the lease is renewed before every
    post, and a second sweeper starting in the middle finds the robot taken and posts nothing."""
    real_post = robots.post
    second: dict = {}

    def slow_post(robot, card, now_ms):
        clock.set_now(clock.now() + timedelta(seconds=100))
        if len(server.requests) == 2 and not second:
            def other_worker():
                with rapp.app_context():
                    second["counts"] = sweep()

            thread = threading.Thread(target=other_worker)
            thread.start()
            thread.join()
        real_post(robot, card, now_ms)

    monkeypatch.setattr(robots, "post", slow_post)
    with rapp.app_context():
        add_robot("wecom", server.url("wecom", "w1"))
        notify_sales1(5)
        assert sweep()["sent"] == 5
        assert second["counts"]["sent"] == 0 and second["counts"]["skipped"] == 1
        titles = [r["body"]["markdown"]["content"].split("\n")[0] for r in server.requests]
        assert len(titles) == 5 and len(set(titles)) == 5
        assert statuses() == {"sent": 5}


def test_a_sweeper_that_lost_its_robot_stops_posting(rapp, server, monkeypatch):
    """Its lease ran out and another sweeper took the robot over: it posts nothing more."""
    real_post = robots.post

    def post_then_lose_the_lease(robot, card, now_ms):
        real_post(robot, card, now_ms)
        db.session.execute(Robot.__table__.update().values(claim_token="someone-else"))
        db.session.commit()

    monkeypatch.setattr(robots, "post", post_then_lose_the_lease)
    with rapp.app_context():
        add_robot("wecom", server.url("wecom", "w1"))
        notify_sales1(3)
        counts = sweep()
        assert (counts["sent"], counts["skipped"]) == (1, 1)
        assert len(server.requests) == 1
        assert statuses() == {"sent": 1, "pending": 2}
        assert set(db.session.scalars(select(Delivery.attempts).where(Delivery.status == "pending"))) == {0}



def test_a_long_chinese_body_fits_wecoms_4096_bytes_and_keeps_the_link_and_keyword():
    robot = type("R", (), {"platform": "wecom", "webhook_url": "http://127.0.0.1/cgi-bin/webhook/send?key=k",
                           "secret": None, "keyword": "一体OA"})()
    card = robots.Card("报销单", "明细" * 3000, url="https://oa.example.com/x/1", link_label="打开")
    content = robots.build_request(robot, card, 0)[1]["markdown"]["content"]
    assert len(content.encode("utf-8")) <= robots.WECOM_MAX_BYTES
    assert content.endswith("[打开](https://oa.example.com/x/1)\n\n一体OA") and "…\n\n[打开]" in content
    short = robots.build_request(robot, robots.Card("T", "明细"), 0)[1]["markdown"]["content"]
    assert short == "**T**\n明细\n\n一体OA"
