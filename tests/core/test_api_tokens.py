"""Personal API tokens: created with a password or on the profile page, used as ``Authorization: Bearer``."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from core import clock
from core.audit.models import AuditEntry
from core.auth.tokens import ApiToken
from core.demo import create_demo_company
from core.extensions import db
from core.org.models import User
from tests.conftest import PASSWORD, Client

EN = {"Accept-Language": "en"}
NEW_TOKEN = re.compile(r'value="(yiti_[A-Za-z0-9_\-]+)"')


@pytest.fixture
def app(make_app):
    """Every plugin plus the sample ``notes`` plugin, with the demo company."""
    app = make_app(plugins=("approval", "crm", "srm", "hr", "notes"))
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def request_token(app, username="sales1", password=PASSWORD, name="script", **extra):
    """``POST /api/v1/auth/tokens`` from a client with no session, as a script would."""
    return app.test_client().post("/api/v1/auth/tokens", headers=EN,
                                  json={"username": username, "password": password, "name": name, **extra})


def new_token(app, username="sales1", scope="read-write", **extra) -> str:
    response = request_token(app, username, scope=scope, **extra)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", **EN}


def call(app, method, url, token, json=None):
    """An API call carrying only the token: no cookie, no CSRF header."""
    return app.test_client().open(url, method=method, json=json, headers=bearer(token))


def token_row(app, name="script") -> ApiToken:
    with app.app_context():
        row = db.session.scalar(select(ApiToken).where(ApiToken.name == name))
        db.session.expunge(row)
        return row


def note_count(app, title) -> int:
    with app.app_context():
        return db.session.scalar(text("SELECT count(*) FROM notes_note WHERE title = :t"), {"t": title})


def set_active(app, username, active):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        user.active = active
        db.session.commit()


# Getting a token --------------------------------------------------------------------------------


def test_token_request_with_the_password_returns_the_token_once_with_its_settings(app):
    response = request_token(app, name="nightly export", scope="read", expires_in_days=30)

    assert response.status_code == 201
    body = response.get_json()
    assert body["token"].startswith("yiti_") and len(body["token"]) > 40
    assert body["name"] == "nightly export" and body["scope"] == "read"
    assert body["id"] and body["expires_at"]
    row = token_row(app, "nightly export")
    assert row.expires_at - row.created_at == timedelta(days=30)
    listed = call(app, "GET", "/api/v1/auth/tokens", body["token"]).get_json()["items"]
    assert [item["name"] for item in listed] == ["nightly export"]
    assert "token" not in listed[0] and "token_hash" not in listed[0]
    assert body["token"] not in str(listed)


def test_token_defaults_to_read_only_for_ninety_days(app):
    body = request_token(app).get_json()

    assert body["scope"] == "read"
    row = token_row(app)
    assert row.expires_at - row.created_at == timedelta(days=90)


def test_token_may_be_made_to_never_expire(app):
    assert request_token(app, expires_in_days=None).get_json()["expires_at"] is None


def test_token_request_sets_no_session_cookie(app):
    response = request_token(app)

    assert response.status_code == 201
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("body, field", [
    ({"username": "sales1", "password": PASSWORD}, "name"),
    ({"username": "sales1", "password": PASSWORD, "name": ""}, "name"),
    ({"username": "sales1", "password": PASSWORD, "name": "x" * 101}, "name"),
    ({"username": "sales1", "password": PASSWORD, "name": "x", "scope": "admin"}, "scope"),
    ({"username": "sales1", "password": PASSWORD, "name": "x", "expires_in_days": 0}, "expires_in_days"),
    ({"username": "sales1", "password": PASSWORD, "name": "x", "expires_in_days": 10000}, "expires_in_days"),
    ({"username": "sales1", "password": PASSWORD, "name": "x", "expires_in_days": "soon"}, "expires_in_days"),
    ({"password": PASSWORD, "name": "x"}, "username"),
    ({"username": "sales1", "name": "x"}, "password"),
    ({"username": "sales1", "password": PASSWORD, "name": "x", "role": "admin"}, "role"),
])
def test_invalid_token_requests_answer_422_naming_the_field(app, body, field):
    response = app.test_client().post("/api/v1/auth/tokens", json=body, headers=EN)

    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_token_request_that_is_not_json_answers_400(app):
    response = app.test_client().post("/api/v1/auth/tokens", data="username=sales1", headers=EN)

    assert response.status_code == 400


def test_wrong_password_gets_no_token(app):
    response = request_token(app, password="Wrong-Password-1")

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0
        failed = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")).all()
        assert [entry.summary for entry in failed] == ["sales1"]


def test_inactive_user_gets_no_token_even_with_the_right_password(app):
    set_active(app, "sales1", False)

    assert request_token(app).status_code == 401


def test_sixth_token_request_after_five_wrong_passwords_is_throttled_even_when_right(app):
    for _ in range(5):
        assert request_token(app, password="Wrong-Password-1").status_code == 401

    response = request_token(app)

    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_attempts"
    assert int(response.headers["Retry-After"]) > 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_token_requests_and_the_login_form_share_one_failure_counter(app):
    for _ in range(5):
        request_token(app, password="Wrong-Password-1")

    browser = Client(app)
    assert browser.post("/login", {"username": "sales1", "password": PASSWORD}).status_code == 429


def test_a_successful_token_request_clears_the_accounts_failures(app):
    for _ in range(4):
        request_token(app, password="Wrong-Password-1")
    assert request_token(app).status_code == 201

    for _ in range(4):
        request_token(app, password="Wrong-Password-1")

    assert request_token(app, name="second").status_code == 201


def test_token_request_needs_no_csrf_token_even_from_a_browser_session(app, as_user):
    browser = as_user("sales1")

    response = browser.http.post("/api/v1/auth/tokens", json={"username": "sales1", "password": PASSWORD, "name": "cli"})

    assert response.status_code == 201


# Storage ----------------------------------------------------------------------------------------


def test_database_holds_only_a_sha256_of_the_token(app):
    token = new_token(app)

    with app.app_context():
        rows = db.session.execute(text("SELECT * FROM core_api_token")).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0].values())
    assert token not in stored
    assert token[len("yiti_"):] not in stored
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(rows[0]["prefix"]) and len(rows[0]["prefix"]) <= 16


def test_every_token_is_different(app):
    first, second = new_token(app), new_token(app)

    assert first != second


# Using a token ----------------------------------------------------------------------------------


def test_token_authenticates_core_and_plugin_api_requests_as_its_user(app):
    token = new_token(app, "sales1", scope="read")

    users = call(app, "GET", "/api/v1/core/users", token)
    notes = call(app, "GET", "/api/v1/notes/notes", token)

    assert users.status_code == 200 and users.get_json()["total"] > 0
    assert notes.status_code == 200


def test_token_requests_set_no_session_cookie(app):
    token = new_token(app)

    response = call(app, "GET", "/api/v1/core/users", token)

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_read_write_token_writes_without_a_csrf_header_as_its_user(app):
    token = new_token(app, "sales1", scope="read-write")

    response = call(app, "POST", "/api/v1/notes/notes", token, json={"title": "From a script"})

    assert response.status_code == 201
    with app.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        assert response.get_json()["owner_id"] == sales1.id
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.resource == "notes.note"))
        assert entry.actor_name == "sales1"


def test_read_token_can_read_but_not_write(app):
    token = new_token(app, "sales1", scope="read")

    assert call(app, "GET", "/api/v1/notes/notes", token).status_code == 200
    response = call(app, "POST", "/api/v1/notes/notes", token, json={"title": "Not allowed"})

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "insufficient_scope"
    assert note_count(app, "Not allowed") == 0


def test_read_token_cannot_delete_or_revoke_either(app):
    reader = new_token(app, "sales1", scope="read")
    writer_id = request_token(app, name="writer", scope="read-write").get_json()["id"]

    assert call(app, "DELETE", f"/api/v1/auth/tokens/{writer_id}", reader).status_code == 403
    assert token_row(app, "writer").revoked_at is None


def test_token_carries_its_users_record_scope_unchanged(app):
    sales2 = new_token(app, "sales2", scope="read-write")
    call(app, "POST", "/api/v1/notes/notes", sales2, json={"title": "Sales2 private note"})
    sales1 = new_token(app, "sales1", scope="read-write")

    titles = [n["title"] for n in call(app, "GET", "/api/v1/notes/notes", sales1).get_json()["items"]]

    assert "Sales2 private note" not in titles
    assert call(app, "POST", "/api/v1/core/departments", sales1, json={"name": "Not mine to create"}).status_code == 403


def test_bearer_token_decides_even_when_a_session_cookie_comes_along(app, as_user):
    admin = as_user("admin")
    reader = new_token(app, "sales1", scope="read")

    response = admin.http.post("/api/v1/core/departments", json={"name": "Via admin cookie"}, headers={
        "Authorization": f"Bearer {reader}", "X-CSRFToken": admin.token()})

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "insufficient_scope"
    assert admin.api("GET", "/api/v1/core/users").status_code == 200  # the session itself is untouched


def test_session_cookie_api_write_without_csrf_header_still_fails(app, as_user):
    sales1 = as_user("sales1")

    refused = sales1.http.post("/api/v1/notes/notes", json={"title": "Forged"})

    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf"
    assert note_count(app, "Forged") == 0
    assert sales1.api("POST", "/api/v1/notes/notes", json={"title": "Genuine"}).status_code == 201


def test_bearer_header_outside_the_api_is_ignored(app):
    token = new_token(app)

    page = app.test_client().get("/account", headers=bearer(token))

    assert page.status_code == 302 and "/login" in page.headers["Location"]


@pytest.mark.parametrize("header", [
    "Bearer yiti_not-a-real-token",
    "Bearer ",
    "Bearer not-even-ours",
    "bearer yiti_" + "x" * 500,
])
def test_unknown_tokens_answer_401_json(app, header):
    response = app.test_client().get("/api/v1/core/users", headers={"Authorization": header, **EN})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_bad_token_on_a_write_answers_401_not_a_csrf_error(app):
    response = call(app, "POST", "/api/v1/notes/notes", "yiti_wrong", json={"title": "No"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"


def test_expired_token_answers_401(app):
    token = new_token(app, expires_in_days=1)
    assert call(app, "GET", "/api/v1/core/users", token).status_code == 200

    clock.set_now(clock.now() + timedelta(days=1, minutes=1))

    response = call(app, "GET", "/api/v1/core/users", token)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"
    assert call(app, "GET", "/api/v1/auth/tokens", new_token(app)).get_json()["items"][1]["status"] == "expired"


def test_token_of_a_deactivated_user_answers_401(app):
    token = new_token(app, "sales1")

    set_active(app, "sales1", False)

    assert call(app, "GET", "/api/v1/core/users", token).status_code == 401


def test_token_keeps_working_past_the_session_time_outs(app):
    token = new_token(app)

    clock.set_now(clock.now() + timedelta(hours=13))

    assert call(app, "GET", "/api/v1/core/users", token).status_code == 200


def test_last_used_is_recorded_at_most_once_a_minute(app):
    token = new_token(app)
    assert token_row(app).last_used_at is None
    start = clock.now()
    clock.set_now(start)

    call(app, "GET", "/api/v1/core/users", token)
    assert token_row(app).last_used_at == start
    clock.set_now(start + timedelta(seconds=30))
    call(app, "GET", "/api/v1/core/users", token)
    assert token_row(app).last_used_at == start

    clock.set_now(start + timedelta(seconds=61))
    call(app, "GET", "/api/v1/core/users", token)
    assert token_row(app).last_used_at == start + timedelta(seconds=61)


def test_last_used_is_kept_when_the_request_itself_fails(app):
    token = new_token(app, scope="read-write")

    response = call(app, "POST", "/api/v1/notes/notes", token, json={"title": ""})

    assert response.status_code == 422
    assert token_row(app).last_used_at is not None


# Listing and revoking ---------------------------------------------------------------------------


def test_token_list_shows_only_my_own_tokens(app):
    mine = new_token(app, "sales1")
    request_token(app, "sales2", name="theirs")

    names = [item["name"] for item in call(app, "GET", "/api/v1/auth/tokens", mine).get_json()["items"]]

    assert names == ["script"]


def test_revoked_token_answers_401(app):
    token = new_token(app, "sales1")
    token_id = token_row(app).id

    assert call(app, "DELETE", f"/api/v1/auth/tokens/{token_id}", token).status_code == 204

    assert call(app, "GET", "/api/v1/core/users", token).status_code == 401
    assert token_row(app).revoked_at is not None


def test_another_user_cannot_revoke_my_token(app):
    mine = new_token(app, "sales1")
    my_id = token_row(app).id
    theirs = new_token(app, "sales2")

    response = call(app, "DELETE", f"/api/v1/auth/tokens/{my_id}", theirs)

    assert response.status_code == 404
    assert call(app, "GET", "/api/v1/core/users", mine).status_code == 200


def test_an_administrator_can_revoke_anyones_token(app):
    mine = new_token(app, "sales1")
    my_id = token_row(app).id

    assert call(app, "DELETE", f"/api/v1/auth/tokens/{my_id}", new_token(app, "admin")).status_code == 204
    assert call(app, "GET", "/api/v1/core/users", mine).status_code == 401


@pytest.mark.parametrize("token_id", [999999, 2**31, 2**63])
def test_revoking_an_unknown_token_answers_404(app, token_id):
    assert call(app, "DELETE", f"/api/v1/auth/tokens/{token_id}", new_token(app)).status_code == 404


def test_revoke_with_a_session_needs_the_csrf_header(app, as_user):
    sales1 = as_user("sales1")
    token = new_token(app, "sales1")
    token_id = token_row(app).id

    assert sales1.http.delete(f"/api/v1/auth/tokens/{token_id}").status_code == 400
    assert call(app, "GET", "/api/v1/core/users", token).status_code == 200
    assert sales1.api("DELETE", f"/api/v1/auth/tokens/{token_id}").status_code == 204
    assert call(app, "GET", "/api/v1/core/users", token).status_code == 401


def test_creating_and_revoking_tokens_is_audited_without_the_secret(app):
    token = new_token(app, "sales1")
    token_id = token_row(app).id
    call(app, "DELETE", f"/api/v1/auth/tokens/{token_id}", token)
    call(app, "DELETE", f"/api/v1/auth/tokens/{token_id}", new_token(app, "admin"))  # already revoked: no entry

    with app.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action.in_(("token_create", "token_revoke")),
                                                              AuditEntry.record_id == sales1.id)
                                     .order_by(AuditEntry.id)).all()
        assert [(e.action, e.resource, e.actor_name) for e in entries] == [
            ("token_create", "core.user", "sales1"), ("token_revoke", "core.user", "sales1")]
        assert entries[0].changes["scope"] == [None, "read-write"]
        everything = " ".join(f"{e.summary} {e.changes}" for e in db.session.scalars(select(AuditEntry)))
    assert token not in everything and token[len("yiti_"):] not in everything


def test_deleting_a_user_deletes_their_tokens(app):
    new_token(app, "sales1")

    with app.app_context():
        db.session.execute(text("DELETE FROM core_user_role WHERE user_id = (SELECT id FROM core_user WHERE username = 'sales1')"))
        db.session.execute(text("UPDATE core_user SET manager_id = NULL WHERE manager_id = (SELECT id FROM core_user WHERE username = 'sales1')"))
        db.session.execute(text("DELETE FROM core_user WHERE username = 'sales1'"))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


# The profile page -------------------------------------------------------------------------------


def test_profile_page_creates_a_token_and_shows_it_only_once(app, as_user):
    sales1 = as_user("sales1")

    response = sales1.post("/account/tokens", {"name": "Excel sync", "scope": "read-write", "expires_in_days": "30"},
                           headers=EN)

    assert response.status_code == 201
    page = response.get_data(as_text=True)
    token = NEW_TOKEN.search(page).group(1)
    assert "it will not be shown again" in page
    again = sales1.get("/account", headers=EN).get_data(as_text=True)
    assert token not in again
    assert "Excel sync" in again and token[:13] in again
    assert call(app, "POST", "/api/v1/notes/notes", token, json={"title": "From Excel"}).status_code == 201
    row = token_row(app, "Excel sync")
    assert row.scope == "read-write" and row.expires_at - row.created_at == timedelta(days=30)


def test_profile_page_token_never_expires_when_chosen(app, as_user):
    as_user("sales1").post("/account/tokens", {"name": "Forever", "scope": "read", "expires_in_days": ""})

    assert token_row(app, "Forever").expires_at is None


def test_profile_page_lists_tokens_with_their_status(app, as_user):
    new_token(app, "sales1", name="Old one", expires_in_days=1)
    token = new_token(app, "sales1", name="Revoked one")
    call(app, "DELETE", f"/api/v1/auth/tokens/{token_row(app, 'Revoked one').id}", token)
    new_token(app, "sales2", name="Not mine")
    clock.set_now(clock.now() + timedelta(days=2))
    new_token(app, "sales1", name="Fresh one")
    sales1 = as_user("sales1")

    page = sales1.get("/account", headers=EN).get_data(as_text=True)

    assert "Not mine" not in page
    for name, status in (("Old one", "Expired"), ("Revoked one", "Revoked"), ("Fresh one", "Active")):
        row = re.search(rf"<tr>\s*<td>{name}</td>.*?</tr>", page, re.S).group(0)
        assert status in row


def test_profile_page_refuses_a_token_without_a_name(app, as_user):
    sales1 = as_user("sales1")

    response = sales1.post("/account/tokens", {"name": "  ", "scope": "read", "expires_in_days": "90"}, headers=EN)

    assert response.status_code == 422
    assert "Please correct the highlighted fields." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_profile_page_token_form_needs_a_csrf_token(app, as_user):
    sales1 = as_user("sales1")

    assert sales1.http.post("/account/tokens", data={"name": "Forged"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_profile_page_revokes_my_token_but_not_anothers(app, as_user):
    sales1 = as_user("sales1")
    token = new_token(app, "sales1", name="mine")
    theirs = new_token(app, "sales2", name="theirs")

    assert sales1.post(f"/account/tokens/{token_row(app, 'theirs').id}/revoke").status_code == 404
    response = sales1.post(f"/account/tokens/{token_row(app, 'mine').id}/revoke", headers=EN)

    assert response.status_code == 302
    assert call(app, "GET", "/api/v1/core/users", token).status_code == 401
    assert call(app, "GET", "/api/v1/core/users", theirs).status_code == 200
    page = sales1.get("/account", headers=EN).get_data(as_text=True)
    assert "The token mine is revoked." in page


def test_profile_revoke_button_asks_for_confirmation(app, as_user):
    sales1 = as_user("sales1")
    new_token(app, "sales1")

    page = sales1.get("/account").get_data(as_text=True)

    assert re.search(r'<form method="post" action="/account/tokens/\d+/revoke" data-confirm="[^"]+">', page)
