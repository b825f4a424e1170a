"""Logging in and out, sessions, passwords and login throttling."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import redis
from sqlalchemy import select

from core import clock, config
from core.demo import create_demo_company
from core.extensions import db
from core.org import services
from core.org.models import User

PASSWORD = "Correct-Horse-42"  # the demo company's password in tests (tests/conftest.py)
NEW_PASSWORD = "Blue-Kettle-Morning-7"
REDIS_DBS = {"sqlite": 13, "postgresql": 14}  # one per engine: the two may run at once
EN = {"Accept-Language": "en"}
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def browser(request):
    """``browser(app)``: a new browser-like client (tests/conftest.py's ``Client``) for any app.

    Conftest modules cannot be imported by name (there are several), so take the class from the
    registered conftest plugin.
    """
    shared = request.config.pluginmanager.get_plugin(str(Path(__file__).parents[1] / "conftest.py"))
    return shared.Client


@pytest.fixture
def demo_app(make_app):
    """``demo_app(**settings)``: an app with every plugin, these settings and the demo company."""

    def build(**settings):
        app = make_app(**settings)
        with app.app_context():
            create_demo_company(PASSWORD)
            db.session.commit()
        return app

    return build


def login(client, username, password=PASSWORD, next=None, address=None, headers=None):
    """Post the login form (from ``address`` when given) and return the response."""
    url = "/login" if next is None else "/login?" + "next=" + next
    kwargs = {"headers": headers or {}}
    if address:
        kwargs["environ_base"] = {"REMOTE_ADDR": address}
    response = client.post(url, {"username": username, "password": password}, **kwargs)
    client._token = None  # a successful login starts a new session, with a new CSRF token
    return response


def location(response) -> str:
    """The redirect target's path (and query), wherever the Location header points."""
    parts = urlsplit(response.headers["Location"])
    assert parts.netloc in ("", "localhost"), f"redirected off-site to {response.headers['Location']}"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def logged_in(client) -> bool:
    """True when the client's session is logged in (the home page answers instead of sending to login)."""
    response = client.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and location(response).startswith("/login"), response.status
    return False


def text(response) -> str:
    return response.get_data(as_text=True)


def user(app, username) -> User:
    with app.app_context():
        found = db.session.scalar(select(User).where(User.username == username))
        db.session.expunge(found)
        return found


# Logging in -------------------------------------------------------------------------------------


def test_login_redirects_to_the_same_site_next_page(anonymous):
    response = login(anonymous, "salesmgr", next="/admin/users%3Fq%3Dsales")

    assert response.status_code == 302
    assert location(response) == "/admin/users?q=sales"
    assert logged_in(anonymous)


def test_login_without_next_goes_home(anonymous):
    response = login(anonymous, "sales1")

    assert response.status_code == 302
    assert location(response) == "/"


@pytest.mark.parametrize("target", [
    "http://evil.com/phish",
    "https://evil.com",
    "//evil.com",
    "//evil.com/login",
    "/\\evil.com",
    "https:/\\evil.com",
    "/\t/evil.com",
    " //evil.com",
    "javascript:alert(1)",
])
def test_login_never_redirects_to_another_site(anonymous, target):
    response = login(anonymous, "sales1", next=quote(target, safe=""))

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert logged_in(anonymous)


def test_logged_in_user_opening_login_page_is_sent_on(as_user):
    client = as_user("sales1")

    assert location(client.get("/login?next=/account")) == "/account"
    assert location(client.get("/login?next=//evil.com/x")) == "/"


def test_wrong_password_is_refused_with_a_chinese_message_by_default(anonymous):
    response = login(anonymous, "sales1", "Wrong-Password-1")

    assert response.status_code == 200
    assert "用户名或密码错误。" in text(response)
    assert not logged_in(anonymous)


def test_wrong_password_message_follows_the_browser_language(anonymous):
    response = login(anonymous, "sales1", "Wrong-Password-1", headers=EN)

    assert response.status_code == 200
    assert "Wrong username or password." in text(response)
    assert "用户名或密码错误" not in text(response)
    assert not logged_in(anonymous)


def test_wrong_password_message_follows_the_language_chosen_in_the_session(anonymous):
    anonymous.post("/lang/en")

    response = login(anonymous, "sales1", "Wrong-Password-1", headers={"Accept-Language": "zh-CN"})

    assert "Wrong username or password." in text(response)
    assert not logged_in(anonymous)


def test_failed_login_keeps_the_typed_username_but_never_the_password(anonymous):
    response = login(anonymous, "sales1", "Wrong-Password-1")

    assert 'value="sales1"' in text(response)
    assert "Wrong-Password-1" not in text(response)


def test_failed_login_is_logged_without_the_password(anonymous, caplog):
    caplog.set_level("INFO", logger="yiti.auth")

    login(anonymous, "sales1", "Wrong-Password-1", address="10.4.4.4")

    assert "failed login for 'sales1' from 10.4.4.4" in caplog.text
    assert "Wrong-Password-1" not in caplog.text


def test_unknown_user_cannot_log_in(anonymous):
    response = login(anonymous, "nobody", PASSWORD)

    assert response.status_code == 200
    assert "用户名或密码错误。" in text(response)
    assert not logged_in(anonymous)


def test_empty_credentials_do_not_log_in(anonymous):
    assert login(anonymous, "", "").status_code == 200
    assert login(anonymous, "sales1", "").status_code == 200
    assert not logged_in(anonymous)


def test_inactive_user_cannot_log_in_even_with_the_right_password(app, anonymous):
    with app.app_context():
        services.find_user("sales2").active = False
        db.session.commit()

    response = login(anonymous, "sales2")

    assert response.status_code == 200
    assert "用户名或密码错误。" in text(response)
    assert not logged_in(anonymous)


def test_username_is_not_case_sensitive_at_login(anonymous):
    assert login(anonymous, "  Sales1 ").status_code == 302
    assert logged_in(anonymous)


def test_login_records_the_time_of_the_last_login(app, anonymous):
    clock.set_now(T0)

    login(anonymous, "hr1")

    stamp = user(app, "hr1").last_login_at
    assert (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)) == T0  # SQLite returns naive UTC


def test_login_starts_a_fresh_session_keeping_only_the_language(app, anonymous):
    anonymous.post("/lang/en")
    with anonymous.http.session_transaction() as session:
        session["planted"] = "by-an-attacker"

    login(anonymous, "sales1")

    with anonymous.http.session_transaction() as session:
        assert "planted" not in session
        assert session["lang"] == "en"
        assert session["_user_id"] == f"{user(app, 'sales1').id}:0"


# API authentication -----------------------------------------------------------------------------


def test_api_without_login_answers_401_json(anonymous):
    response = anonymous.get("/api/v1/core/users", headers=EN)

    assert response.status_code == 401
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == "unauthorized"
    assert error["message"] == "Log in first."


def test_api_answers_a_logged_in_session(as_user):
    response = as_user("admin").get("/api/v1/core/users")

    assert response.status_code == 200
    assert "admin" in [item["username"] for item in response.get_json()["items"]]


def test_page_without_login_redirects_to_login_with_next(anonymous):
    response = anonymous.get("/admin/users?q=x")

    assert response.status_code == 302
    assert location(response) == "/login?next=/admin/users?q%3Dx"


# Passwords --------------------------------------------------------------------------------------


def test_passwords_are_stored_as_scrypt_hashes_never_in_plain(app, as_user):
    stored = user(app, "sales1").password_hash
    assert stored.startswith("scrypt:")
    assert PASSWORD not in stored

    client = as_user("sales1")
    client.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                      "confirm_password": NEW_PASSWORD})
    changed = user(app, "sales1").password_hash
    assert changed.startswith("scrypt:") and changed != stored
    assert NEW_PASSWORD not in changed


def test_production_default_hash_is_a_strong_scrypt():
    method = config.DEFAULTS["PASSWORD_HASH"]
    assert method.startswith("scrypt:")
    assert int(method.split(":")[1]) >= 2**15


def test_two_users_with_one_password_get_different_hashes(app):
    assert user(app, "sales1").password_hash != user(app, "sales2").password_hash


@pytest.mark.parametrize(("new_password", "message"), [
    ("Ab-1xyz", "Use at least 8 characters."),
    ("Password123", "This password is too common; choose another."),
    ("aaaaaaaaaaaa", "This password is too common; choose another."),
    ("my-Sales1-secret!", "The password must not contain the username."),
])
def test_password_policy_refuses_weak_new_passwords_with_a_field_message(app, as_user, new_password, message):
    client = as_user("sales1")

    response = client.post("/account/password", {"current_password": PASSWORD, "new_password": new_password,
                                                 "confirm_password": new_password}, headers=EN)

    assert response.status_code == 200
    page = text(response)
    assert message in page
    assert 'id="f-new_password"' in page and "is-invalid" in page
    assert user(app, "sales1").session_epoch == 0
    assert login(type(client)(app), "sales1", PASSWORD).status_code == 302
    assert login(type(client)(app), "sales1", new_password).status_code == 200


def test_password_policy_messages_are_translated(as_user):
    response = as_user("sales1").post("/account/password", {
        "current_password": PASSWORD, "new_password": "short", "confirm_password": "short"})

    assert "密码长度至少为 8 位。" in text(response)


def test_admin_cannot_create_a_user_with_a_common_password(as_user):
    response = as_user("admin").api("POST", "/api/v1/core/users", headers=EN, json={
        "username": "newbie", "display_name": "Newbie", "password": "12345678"})

    assert response.status_code == 422
    assert "This password is too common; choose another." in response.get_json()["error"]["fields"]["password"]


def test_password_minimum_length_is_a_setting(demo_app, browser):
    client = browser(demo_app(PASSWORD_MIN_LENGTH=len(PASSWORD)))
    assert login(client, "sales1").status_code == 302

    response = client.post("/account/password", {"current_password": PASSWORD, "new_password": "Blue-Kettle-77",
                                                 "confirm_password": "Blue-Kettle-77"}, headers=EN)

    assert response.status_code == 200
    assert "Use at least 16 characters." in text(response)


# Changing one's own password --------------------------------------------------------------------


def change_password(client, current=PASSWORD, new=NEW_PASSWORD, confirm=None, **kwargs):
    response = client.post("/account/password", {"current_password": current, "new_password": new,
                                                 "confirm_password": new if confirm is None else confirm}, **kwargs)
    client._token = None  # a successful change starts a new session
    return response


def test_password_change_logs_out_other_sessions_but_keeps_the_current_one(app, as_user):
    laptop = as_user("sales1")
    phone = as_user("sales1")
    colleague = as_user("sales2")

    response = change_password(laptop)

    assert response.status_code == 302 and location(response) == "/"
    assert logged_in(laptop)
    assert not logged_in(phone)
    assert phone.get("/api/v1/core/users").status_code == 401
    assert logged_in(colleague)
    # the surviving session still submits forms (its new CSRF token is valid)
    assert laptop.post("/lang/en").status_code == 302


def test_password_change_replaces_the_old_password(app, as_user, browser):
    change_password(as_user("sales1"))

    assert login(browser(app), "sales1", PASSWORD).status_code == 200
    assert login(browser(app), "sales1", NEW_PASSWORD).status_code == 302


def test_password_change_with_a_wrong_current_password_is_a_field_error(app, as_user):
    client = as_user("sales1")
    other = as_user("sales1")

    response = change_password(client, current="Not-My-Password-9", headers=EN)

    assert response.status_code == 200
    assert "The current password is wrong." in text(response)
    assert user(app, "sales1").session_epoch == 0
    assert logged_in(client) and logged_in(other)


def test_password_change_with_a_mismatched_confirmation_is_a_field_error(app, as_user, browser):
    client = as_user("sales1")

    response = change_password(client, confirm=NEW_PASSWORD + "x", headers=EN)

    assert response.status_code == 200
    assert "The two passwords do not match." in text(response)
    assert login(browser(app), "sales1", NEW_PASSWORD).status_code == 200


def test_guessing_the_current_password_is_throttled_like_a_login(app, as_user, browser):
    client = as_user("sales1")
    for attempt in range(5):
        assert change_password(client, current=f"Guess-Number-{attempt}").status_code == 200

    response = change_password(client, headers=EN)

    assert response.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in text(response)
    assert user(app, "sales1").session_epoch == 0
    assert login(browser(app), "sales1").status_code == 429  # one counter per account


def test_password_change_needs_a_login(anonymous):
    response = anonymous.get("/account/password")

    assert response.status_code == 302
    assert location(response) == "/login?next=/account/password"


def test_admin_password_reset_ends_the_users_sessions(app, as_user, browser):
    victim = as_user("sales1")
    admin = as_user("admin")
    sales1 = user(app, "sales1")

    response = admin.api("PATCH", f"/api/v1/core/users/{sales1.id}", json={"password": NEW_PASSWORD})

    assert response.status_code == 200
    assert not logged_in(victim)
    assert logged_in(admin)
    assert login(browser(app), "sales1", PASSWORD).status_code == 200
    assert login(browser(app), "sales1", NEW_PASSWORD).status_code == 302


def test_admin_password_reset_follows_the_password_policy(app, as_user):
    sales1 = user(app, "sales1")

    response = as_user("admin").api("PATCH", f"/api/v1/core/users/{sales1.id}", json={"password": "sales1-2026!"})

    assert response.status_code == 422
    assert "password" in response.get_json()["error"]["fields"]
    assert user(app, "sales1").password_hash == sales1.password_hash


# Deactivation and logout ------------------------------------------------------------------------


def test_deactivated_users_session_ends_at_the_next_request(app, as_user):
    client = as_user("sales2")
    assert logged_in(client)

    with app.app_context():
        services.find_user("sales2").active = False
        db.session.commit()

    assert not logged_in(client)
    assert client.get("/api/v1/core/users").status_code == 401


def test_admin_deactivating_a_user_ends_their_session(app, as_user):
    client = as_user("sales2")
    sales2 = user(app, "sales2")

    response = as_user("admin").api("PATCH", f"/api/v1/core/users/{sales2.id}", json={"active": False})

    assert response.status_code == 200
    assert not logged_in(client)


def test_logout_is_post_only(as_user):
    client = as_user("sales1")

    assert client.get("/logout").status_code == 405
    assert logged_in(client)


def test_logout_ends_the_session(as_user):
    client = as_user("sales1")

    response = client.post("/logout")

    assert response.status_code == 302 and location(response) == "/login"
    assert not logged_in(client)
    assert client.get("/api/v1/core/users").status_code == 401


def test_logout_keeps_the_language_choice(as_user):
    client = as_user("sales1")
    client.post("/lang/en")

    client.post("/logout")
    client._token = None  # logging out ends the session and its CSRF token

    assert "Wrong username or password." in text(login(client, "sales1", "Wrong-Password-1"))


# Session time-outs ------------------------------------------------------------------------------


def test_idle_session_expires_after_the_idle_time_out(anonymous):
    clock.set_now(T0)
    login(anonymous, "sales1")

    clock.set_now(T0 + timedelta(minutes=119))
    assert logged_in(anonymous)
    clock.set_now(T0 + timedelta(minutes=119 + 121))
    response = anonymous.get("/")

    assert response.status_code == 302 and location(response) == "/login?next=/"
    assert "登录已过期，请重新登录。" in text(anonymous.get("/login"))
    assert not logged_in(anonymous)


def test_expired_session_comes_back_to_the_same_page_after_login(as_user):
    clock.set_now(T0)
    client = as_user("admin")
    clock.set_now(T0 + timedelta(hours=3))

    response = client.get("/admin/users?q=sales")

    assert location(response) == "/login?next=/admin/users?q%3Dsales"
    assert location(login(client, "admin", next="/admin/users%3Fq%3Dsales")) == "/admin/users?q=sales"


def test_activity_keeps_the_session_alive_until_the_absolute_time_out(anonymous):
    clock.set_now(T0)
    login(anonymous, "sales1")

    for minutes in range(100, 12 * 60, 100):  # every 100 minutes, under the 120-minute idle limit
        clock.set_now(T0 + timedelta(minutes=minutes))
        assert logged_in(anonymous), f"logged out after {minutes} minutes of activity"
    clock.set_now(T0 + timedelta(hours=12, minutes=1))

    assert not logged_in(anonymous)


def test_session_time_outs_are_settings(demo_app, browser):
    client = browser(demo_app(SESSION_IDLE_MINUTES=5, SESSION_ABSOLUTE_HOURS=1))
    clock.set_now(T0)
    login(client, "sales1")

    clock.set_now(T0 + timedelta(minutes=4))
    assert logged_in(client)
    clock.set_now(T0 + timedelta(minutes=10))
    assert not logged_in(client)

    login(client, "sales1")
    for minutes in range(14, 60, 4):
        clock.set_now(T0 + timedelta(minutes=minutes))
        assert logged_in(client)
    clock.set_now(T0 + timedelta(minutes=10 + 61))
    assert not logged_in(client)


def test_expired_api_session_answers_401_json(anonymous):
    clock.set_now(T0)
    login(anonymous, "admin")
    clock.set_now(T0 + timedelta(hours=3))

    response = anonymous.get("/api/v1/core/users", headers=EN)

    assert response.status_code == 401
    assert response.get_json()["error"] == {"code": "session_expired",
                                            "message": "Your session has expired. Please log in again."}
    assert anonymous.get("/api/v1/core/users").status_code == 401


# Login throttling -------------------------------------------------------------------------------


def test_sixth_attempt_on_an_account_is_refused_even_with_the_right_password(anonymous):
    for _ in range(5):
        assert login(anonymous, "sales1", "Wrong-Password-1").status_code == 200

    response = login(anonymous, "sales1", PASSWORD, headers=EN)

    assert response.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in text(response)
    assert not logged_in(anonymous)


def test_throttled_login_message_is_translated(anonymous):
    for _ in range(5):
        login(anonymous, "sales1", "Wrong-Password-1")

    response = login(anonymous, "sales1", PASSWORD)

    assert response.status_code == 429
    assert "登录失败次数过多，请 15 分钟后重试。" in text(response)


def test_account_throttle_ignores_the_case_of_the_username(anonymous):
    for name in ("sales1", "SALES1", "Sales1", " sales1", "sAles1"):
        login(anonymous, name, "Wrong-Password-1")

    assert login(anonymous, "sales1").status_code == 429


def test_account_throttle_leaves_other_accounts_from_the_same_address_alone(anonymous, browser, app):
    for _ in range(6):
        login(anonymous, "sales1", "Wrong-Password-1", address="10.1.1.1")

    colleague = browser(app)
    assert login(colleague, "sales2", address="10.1.1.1").status_code == 302
    assert logged_in(colleague)


def test_address_throttle_blocks_every_account_from_that_address(demo_app, browser):
    app = demo_app(LOGIN_LIMIT_IP="4 per 15 minutes")
    attacker = browser(app)
    for name in ("sales1", "sales2", "buyer1", "nobody"):
        assert login(attacker, name, "Wrong-Password-1", address="10.2.2.2").status_code == 200

    assert login(attacker, "hr1", address="10.2.2.2").status_code == 429
    assert not logged_in(attacker)
    elsewhere = browser(app)
    assert login(elsewhere, "hr1", address="10.3.3.3").status_code == 302


def test_successful_login_clears_the_accounts_failures(anonymous, browser, app):
    for _ in range(4):
        login(anonymous, "sales1", "Wrong-Password-1")
    assert login(anonymous, "sales1").status_code == 302

    client = browser(app)
    for _ in range(4):
        assert login(client, "sales1", "Wrong-Password-1").status_code == 200
    assert login(client, "sales1").status_code == 302


def test_account_may_log_in_again_after_the_window_passes(anonymous, monkeypatch):
    for _ in range(5):
        login(anonymous, "sales1", "Wrong-Password-1")
    assert login(anonymous, "sales1").status_code == 429

    later = time.time() + 15 * 60 + 1
    monkeypatch.setattr(time, "time", lambda: later)  # the rate-limit storage reads the real clock

    assert login(anonymous, "sales1").status_code == 302
    assert logged_in(anonymous)


@pytest.fixture
def redis_url(engine_name):
    """A Redis database for throttle counters, emptied afterwards."""
    url = f"redis://127.0.0.1:6379/{REDIS_DBS[engine_name]}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is needed at {url}: {exc}")
    yield url
    client.flushdb()
    client.close()


def test_login_throttle_is_shared_by_app_servers_through_redis(make_app, browser, redis_url):
    # A fresh username and address, so counters left in this Redis database by an earlier run cannot collide.
    name, address = f"u{uuid.uuid4().hex[:10]}", f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    first = make_app(REDIS_URL=redis_url)
    with first.app_context():
        services.create_user(None, {"username": name, "display_name": "Shared", "password": PASSWORD})
        db.session.commit()
    server_one = browser(first)
    for _ in range(5):
        assert login(server_one, name, "Wrong-Password-1", address=address).status_code == 200
    keys = redis.Redis.from_url(redis_url).keys(f"*{name}*")
    assert keys, "the failures are not counted in Redis"

    second = make_app(REDIS_URL=redis_url, schema=None)  # another server on the same database
    response = login(browser(second), name, PASSWORD, address=address)

    assert response.status_code == 429


def test_a_cookie_copied_before_logout_is_refused_after_it(app, as_user):
    client = as_user("sales1")
    stolen = client.http.get_cookie("yiti_session").value
    assert client.get("/").status_code == 200
    other_device = as_user("sales1")  # logging out here must not end that session
    assert client.post("/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie("yiti_session", stolen)
    response = replay.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert replay.get("/api/v1/inbox").status_code == 401
    assert other_device.get("/").status_code == 200
