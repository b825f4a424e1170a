"""Group robots: signatures checked by a fake platform server, errors, rate limit with digest,
secrets kept out of logs and stored encrypted, URL host allow-list, the admin page."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from flask_babel import gettext
from sqlalchemy import func, select, text

from core import clock, notify
from core.audit.models import AuditEntry
from core.extensions import db
from core.notify import robots
from core.notify.models import Delivery, Robot
from core.notify.robots import Card, dingtalk_sign, feishu_sign
from core.notify.sweep import sweep
from core.org.services import find_user

from tests.conftest import PASSWORD, Client
from tests.core.notify_fakes import RobotServer, expected_dingtalk_sign, expected_feishu_sign

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
SECRET = "SEC-test-secret-0123456789"


def test_signatures_match_independently_computed_and_known_vectors():
    # Known vectors, computed once outside this code base (python hmac, documented algorithms).
    assert dingtalk_sign(SECRET, 1700000000000) == "Jxly5Yeg4V8Osh+g++4CX7Xmg1ILsKKqFh5lG0mzzLM="
    assert feishu_sign(SECRET, 1700000000) == "A4wCiGv2LquJvYmgaFbyyGFmTYFuc96u2QMp2ppLd+s="
    for timestamp in (1, 1711111111111, 1799999999999):
        assert dingtalk_sign("another", timestamp) == expected_dingtalk_sign("another", str(timestamp))
        assert feishu_sign("another", timestamp // 1000) == expected_feishu_sign("another", str(timestamp // 1000))
    assert dingtalk_sign(SECRET, 1700000000000) != feishu_sign(SECRET, 1700000000)  # the roles differ


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


def admin_client(app) -> Client:
    client = Client(app)
    assert client.login("admin").status_code == 302
    client.post("/lang/en")
    return client


def add_robot(platform, url, secret=None, kinds=("task",), **extra) -> int:
    from core.notify import admin

    robot = admin.save_robot(find_user("admin"), None, {"name": f"{platform} group", "platform": platform,
                                                        "webhook_url": url, "secret": secret, "kinds": list(kinds),
                                                        **extra})
    db.session.commit()
    return robot.id


def notify_sales1(count=1, kind="task"):
    sales1 = find_user("sales1")
    for number in range(count):
        notify.send(sales1, kind, f"Item {number + 1}", url=f"/x/{number + 1}")
    db.session.commit()


def statuses() -> dict:
    return dict(db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())


def test_each_platform_gets_a_signed_markdown_card_with_a_link_back(rapp, server):
    server.secrets.update({"ding1": SECRET, "fs1": SECRET})
    with rapp.app_context():
        add_robot("dingtalk", server.url("dingtalk", "ding1"), SECRET, keyword="OA")
        add_robot("feishu", server.url("feishu", "fs1"), SECRET)
        add_robot("wecom", server.url("wecom", "wc1"))
        notify_sales1()
        assert sweep()["sent"] == 3
        assert statuses() == {"sent": 3}
    by_platform = {r["platform"]: r for r in server.requests}
    ding, feishu, wecom = by_platform["dingtalk"], by_platform["feishu"], by_platform["wecom"]
    assert ding["signature_ok"] is True and ding["query"]["timestamp"] == str(int(T0.timestamp() * 1000))
    assert ding["body"]["msgtype"] == "markdown" and "Item 1" in ding["body"]["markdown"]["title"]
    assert "(https://oa.example.com/x/1)" in ding["body"]["markdown"]["text"] and "OA" in ding["body"]["markdown"]["text"]
    assert "张伟" in ding["body"]["markdown"]["text"]  # whom it is for
    assert feishu["signature_ok"] is True and feishu["body"]["timestamp"] == str(int(T0.timestamp()))
    assert "sign" not in feishu["query"] and feishu["body"]["msg_type"] == "interactive"
    button = feishu["body"]["card"]["elements"][1]["actions"][0]
    assert button["url"] == "https://oa.example.com/x/1"
    assert wecom["body"]["msgtype"] == "markdown" and "https://oa.example.com/x/1" in wecom["body"]["markdown"]["content"]
    assert "sign" not in wecom["query"] and "timestamp" not in wecom["body"]


def test_bad_signature_is_a_configuration_error_not_retried_and_shown(rapp, server):
    server.secrets.update({"ding1": "the-real-secret", "fs1": "the-real-secret"})
    with rapp.app_context():
        ding = add_robot("dingtalk", server.url("dingtalk", "ding1"), "a-wrong-secret")
        feishu = add_robot("feishu", server.url("feishu", "fs1"), "a-wrong-secret")
        wecom = add_robot("wecom", server.url("wecom", "bad-key"))
        notify_sales1(2)
        assert sweep()["dead"] == 6
        assert len(server.requests) == 3  # one try per robot: the second message is not even attempted
        clock.set_now(T0 + timedelta(hours=2))
        assert sweep() == {"sent": 0, "folded": 0, "retried": 0, "dead": 0, "skipped": 0}
        assert len(server.requests) == 3
        errors = {r.id: r.last_error for r in db.session.scalars(select(Robot))}
        assert "310000" in errors[ding] and "19021" in errors[feishu] and "93000" in errors[wecom]
    page = admin_client(rapp).get("/admin/notifications").get_data(as_text=True)
    assert "sign not match" in page and "invalid webhook url" in page and "Recent delivery failures" in page


def test_rate_limited_reply_is_retried_later(rapp, server):
    server.script["ding1"] = [{"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}]
    with rapp.app_context():
        add_robot("dingtalk", server.url("dingtalk", "ding1"))
        notify_sales1()
        assert sweep()["retried"] == 1
        [row] = db.session.scalars(select(Delivery)).all()
        assert row.status == "pending" and row.next_attempt_at >= T0 + timedelta(seconds=60)
        assert db.session.scalar(select(Robot.last_error)) is None  # not a configuration problem
        assert sweep()["sent"] == 0  # not due yet
        clock.set_now(T0 + timedelta(minutes=2))
        assert sweep()["sent"] == 1
        assert len(server.requests) == 2


def test_a_burst_of_30_is_20_messages_the_last_a_digest(rapp, server):
    with rapp.app_context():
        add_robot("wecom", server.url("wecom", "wc1"))
        notify_sales1(30)
        counts = sweep()
        assert (counts["sent"], counts["folded"]) == (20, 10)
        assert len(server.requests) == 20
        singles = [r["body"]["markdown"]["content"] for r in server.requests[:19]]
        assert all("Item" in s for s in singles) and "Item 19" in singles[-1]
        digest = server.requests[19]["body"]["markdown"]["content"]
        assert gettext("%(count)s more notifications", count=11) in digest and "Item 20" in digest and "Item 29" in digest
        assert statuses() == {"sent": 20, "folded": 10}
        notify_sales1(1)
        clock.set_now(T0 + timedelta(seconds=30))
        assert sweep()["sent"] == 0  # the minute's budget is spent
        clock.set_now(T0 + timedelta(seconds=61))
        assert sweep()["sent"] == 1
        assert len(server.requests) == 21


def test_robot_budget_is_counted_in_the_database(rapp, server):
    """Another worker process posted 18 in this minute: this sweep may post only 2 (1 + a digest)."""
    with rapp.app_context():
        robot_id = add_robot("wecom", server.url("wecom", "wc1"))
        notify_sales1(18)
        db.session.execute(text("UPDATE core_notification_delivery SET status = 'sent', sent_at = :at"),
                           {"at": T0 - timedelta(seconds=10)})
        db.session.commit()
        notify_sales1(5)
        assert sweep()["sent"] == 2
        assert gettext("%(count)s more notifications", count=4) in server.requests[1]["body"]["markdown"]["content"]
        assert robot_id


def test_secrets_never_reach_the_logs_and_are_stored_encrypted(rapp, server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "tok-SHOULD-NOT-LEAK-42"
    with rapp.app_context():
        robot_id = add_robot("dingtalk", f"http://127.0.0.1:1/robot/send?access_token={token}", SECRET)  # refused port
        notify_sales1()
        assert sweep()["retried"] == 1
        row = db.session.execute(text("SELECT webhook_url, secret FROM core_robot WHERE id = :id"), {"id": robot_id}).one()
        assert SECRET not in row.secret and token not in row.webhook_url
        robot = db.session.get(Robot, robot_id)
        assert robot.secret == SECRET and token in robot.webhook_url
        trail = db.session.scalars(select(AuditEntry.changes).where(AuditEntry.resource == "core.robot")).all()
        assert trail and all(SECRET not in str(c) and token not in str(c) for c in trail)
        assert trail[0]["secret"] == [None, "changed"]
        [delivery] = db.session.scalars(select(Delivery)).all()
        assert token not in delivery.last_error and "sign=" not in delivery.last_error
    client = admin_client(rapp)
    page = client.get("/admin/notifications").get_data(as_text=True)
    form = client.get(f"/admin/notifications/robots/{robot_id}").get_data(as_text=True)
    client.post(f"/admin/notifications/robots/{robot_id}/test")
    for leaked in (SECRET, token, "sign="):
        assert leaked not in caplog.text
        assert leaked not in page and leaked not in form


def test_robot_urls_are_limited_to_the_allowed_hosts(rapp, server):
    client = admin_client(rapp)
    response = client.post("/admin/notifications/robots/new", {
        "name": "Evil", "platform": "dingtalk", "webhook_url": "https://evil.example.com/robot/send?access_token=x",
        "kinds": "task", "enabled": "on"})
    assert response.status_code == 422
    assert "Robots may only post to these hosts: 127.0.0.1." in response.get_data(as_text=True)
    for platform, url in (("dingtalk", "https://127.0.0.1@evil.example.com/robot/send?access_token=x"),
                          ("wecom", server.url("wecom", "k").replace("key=k", "nokey=1")),
                          ("feishu", "ftp://127.0.0.1/open-apis/bot/v2/hook/x")):
        response = client.post("/admin/notifications/robots/new", {"name": "X", "platform": platform,
                                                                    "webhook_url": url, "kinds": "task"})
        assert response.status_code == 422, url
    with rapp.app_context():
        assert db.session.scalar(select(func.count()).select_from(Robot)) == 0
        # Saved when allowed, then the allow-list changed: refused at send time too, without a request.
        robot_id = add_robot("wecom", server.url("wecom", "wc1"))
        rapp.config["YITI"]["ROBOT_HOSTS"] = ["qyapi.weixin.qq.com"]
        notify_sales1()
        assert sweep()["dead"] == 1
        assert server.requests == []
        # The worker writes in the installation's language.
        assert db.session.get(Robot, robot_id).last_error == gettext(
            "Robots may only post to these hosts: %(hosts)s.", hosts="qyapi.weixin.qq.com")


def test_default_allow_list_accepts_the_platform_hosts_only(make_app):
    app = make_app(plugins=())
    with app.app_context():
        assert robots.check_url("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=abc") is None
        assert robots.check_url("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc") is None
        assert robots.check_url("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/abc") is None
        assert robots.check_url("feishu", "https://open.larksuite.com/open-apis/bot/v2/hook/abc") is None
        assert robots.check_url("dingtalk", "http://oapi.dingtalk.com/robot/send?access_token=abc")  # not https
        assert robots.check_url("dingtalk", "https://127.0.0.1/robot/send?access_token=abc")
        assert robots.check_url("dingtalk", "https://oapi.dingtalk.com.evil.cn/robot/send?access_token=abc")


def test_admin_edits_robot_keeps_secret_and_sends_test_message(rapp, server):
    server.secrets["ding1"] = SECRET
    client = admin_client(rapp)
    with rapp.app_context():
        sales = find_user("salesmgr").department_id
    response = client.post("/admin/notifications/robots/new", {
        "name": "销售群", "platform": "dingtalk", "webhook_url": server.url("dingtalk", "ding1"), "secret": SECRET,
        "kinds": ["task", "approval"], "department_id": str(sales), "enabled": "on"})
    assert response.status_code == 302
    with rapp.app_context():
        robot_id = db.session.scalar(select(Robot.id))
    # Edit without re-typing the URL or the secret: both are kept.
    response = client.post(f"/admin/notifications/robots/{robot_id}", {
        "name": "销售群", "platform": "dingtalk", "kinds": ["approval"], "department_id": str(sales), "enabled": "on"})
    assert response.status_code == 302
    page = client.post(f"/admin/notifications/robots/{robot_id}/test", follow_redirects=True).get_data(as_text=True)
    assert "The test message was sent." in page
    assert server.requests[-1]["signature_ok"] is True
    with rapp.app_context():
        robot = db.session.get(Robot, robot_id)
        assert robot.kinds == ["approval"] and robot.secret == SECRET
    server.secrets["ding1"] = "rotated-on-the-platform"
    page = client.post(f"/admin/notifications/robots/{robot_id}/test", follow_redirects=True).get_data(as_text=True)
    assert "The test message failed" in page and "sign not match" in page
    assert Client(rapp).get("/admin/notifications/robots/new").status_code == 302  # anonymous: log in first
    sales1 = Client(rapp)
    sales1.login("sales1")
    assert sales1.post(f"/admin/notifications/robots/{robot_id}/test").status_code == 403


def test_disabled_robot_posts_nothing(rapp, server):
    with rapp.app_context():
        robot_id = add_robot("wecom", server.url("wecom", "wc1"))
        notify_sales1()
        db.session.get(Robot, robot_id).enabled = False
        db.session.commit()
        assert sweep()["dead"] == 1
        notify_sales1()
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 1  # no new delivery for it
        assert server.requests == []


def test_card_without_a_link_has_no_markdown_link():
    robot = type("R", (), {"platform": "wecom", "webhook_url": "http://127.0.0.1/cgi-bin/webhook/send?key=k",
                           "secret": None, "keyword": None})()
    url, body = robots.build_request(robot, Card("T", "text"), 0)
    assert "](" not in body["markdown"]["content"]
