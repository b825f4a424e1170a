"""Web security: cookies, headers, CSRF, escaping, the language switch and health checks."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.extensions import db
from core.org import services
from core.org.models import Department

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p for top in ("core", "plugins") for p in (ROOT / top).rglob("*.html"))
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def csp(response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: [sources]}."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request.path}"
    policy = {}
    for part in header.split(";"):
        name, *sources = part.split()
        policy[name] = sources
    return policy


def departments_named(app, name) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Department).where(Department.name == name))


def password_hash(app, username) -> str:
    with app.app_context():
        return services.find_user(username).password_hash


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("yiti_session=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


# Cookies and headers ----------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(anonymous):
    response = anonymous.post("/login", {"username": "sales1", "password": "Correct-Horse-42"})

    cookie = session_cookie(response)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP in development: a Secure cookie would never come back


def test_session_cookie_is_secure_under_https(make_app):
    app = make_app(HTTPS=True)

    cookie = session_cookie(app.test_client().get("/login", base_url="https://localhost"))

    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_turns_secure_cookies_on_by_default(make_app):
    app = make_app(ENV="production")

    response = app.test_client().get("/login", base_url="https://localhost")

    assert "Secure" in session_cookie(response)
    assert "Strict-Transport-Security" in response.headers


@pytest.mark.parametrize("url", ["/login", "/", "/admin/departments", "/account/password", "/no-such-page"])
def test_every_html_page_has_a_strict_content_security_policy(as_user, url):
    response = as_user("admin").get(url)

    assert response.mimetype == "text/html"
    policy = csp(response)
    script_src = policy.get("script-src", policy.get("default-src"))
    assert script_src and "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert all(source == "'self'" for source in script_src)  # vendored scripts only, no CDN
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] in ("strict-origin-when-cross-origin", "same-origin", "no-referrer")
    assert "Strict-Transport-Security" not in response.headers


def test_error_pages_carry_the_security_headers_too(anonymous):
    response = anonymous.get("/no-such-page")

    assert response.status_code == 404
    assert csp(response)["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_are_not_cached_by_the_browser(as_user):
    assert as_user("admin").get("/admin/users").headers["Cache-Control"] == "no-store"


def test_hsts_is_sent_only_under_https(make_app):
    plain = make_app().test_client().get("/login")
    assert "Strict-Transport-Security" not in plain.headers

    secure = make_app(HTTPS=True).test_client().get("/login", base_url="https://localhost")
    max_age = re.search(r"max-age=(\d+)", secure.headers["Strict-Transport-Security"])
    assert max_age and int(max_age.group(1)) >= 180 * 24 * 3600


def test_templates_have_no_inline_script_the_policy_would_block():
    assert TEMPLATES, "no templates found"
    offenders = []
    for path in TEMPLATES:
        source = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", source, re.IGNORECASE):
            # A data block (type="application/json") is never executed, so the policy has no say.
            if "src=" not in tag and 'type="application/json"' not in tag:
                offenders.append(f"{path.relative_to(ROOT)}: inline {tag}")
        for handler in re.findall(r"\son[a-z]+\s*=\s*[\"']", source, re.IGNORECASE):
            offenders.append(f"{path.relative_to(ROOT)}: event handler attribute{handler}")
        if re.search(r"href\s*=\s*[\"']\s*javascript:", source, re.IGNORECASE):
            offenders.append(f"{path.relative_to(ROOT)}: javascript: URL")
    assert offenders == []


# CSRF -------------------------------------------------------------------------------------------


def test_form_post_without_csrf_token_is_refused_and_changes_nothing(app, as_user):
    admin = as_user("admin")

    response = admin.http.post("/admin/departments/new", data={"name": "Forged department"})

    assert response.status_code == 400
    assert departments_named(app, "Forged department") == 0
    assert admin.post("/admin/departments/new", {"name": "Real department"}).status_code == 302
    assert departments_named(app, "Real department") == 1


def test_form_post_with_another_sessions_token_is_refused(app, as_user, anonymous):
    admin = as_user("admin")
    foreign = anonymous.token()

    response = admin.http.post("/admin/departments/new", data={"name": "Forged department", "csrf_token": foreign})

    assert response.status_code == 400
    assert departments_named(app, "Forged department") == 0


def test_login_form_needs_a_csrf_token(anonymous):
    response = anonymous.http.post("/login", data={"username": "sales1", "password": "Correct-Horse-42"})

    assert response.status_code == 400
    assert anonymous.get("/").status_code == 302  # still logged out


def test_logout_without_csrf_token_does_not_log_out(as_user):
    client = as_user("sales1")

    assert client.http.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_password_change_without_csrf_token_is_refused(app, as_user):
    client = as_user("sales1")
    before = password_hash(app, "sales1")

    response = client.http.post("/account/password", data={
        "current_password": "Correct-Horse-42", "new_password": "Blue-Kettle-Morning-7",
        "confirm_password": "Blue-Kettle-Morning-7"})

    assert response.status_code == 400
    assert password_hash(app, "sales1") == before


def test_json_api_with_session_needs_the_csrf_header(app, as_user):
    admin = as_user("admin")

    refused = admin.http.post("/api/v1/core/departments", json={"name": "Forged API department"})

    assert refused.status_code == 400
    assert refused.is_json and refused.get_json()["error"]["code"] == "csrf"
    assert departments_named(app, "Forged API department") == 0
    accepted = admin.api("POST", "/api/v1/core/departments", json={"name": "API department"})
    assert accepted.status_code == 201
    assert departments_named(app, "API department") == 1


def test_json_api_delete_without_csrf_header_is_refused(app, as_user):
    admin = as_user("admin")
    created = admin.api("POST", "/api/v1/core/departments", json={"name": "Keep me"}).get_json()

    assert admin.http.delete(f"/api/v1/core/departments/{created['id']}").status_code == 400
    assert departments_named(app, "Keep me") == 1


# Escaping ---------------------------------------------------------------------------------------


def test_department_names_are_escaped_in_pages(app, as_user):
    admin = as_user("admin")
    assert admin.post("/admin/departments/new", {"name": SCRIPT}).status_code == 302

    page = admin.get("/admin/departments").get_data(as_text=True)

    assert ESCAPED in page
    assert SCRIPT not in page


def test_display_names_are_escaped_on_every_page_that_shows_them(app, as_user):
    with app.app_context():
        services.find_user("sales1").display_name = SCRIPT
        db.session.commit()
    client = as_user("sales1")

    for url in ("/", "/account"):  # home: the welcome widget and the menu; profile: the form
        page = client.get(url).get_data(as_text=True)
        assert SCRIPT not in page, url
        assert "&lt;script&gt;" in page, url
    admin_page = as_user("admin").get("/admin/users").get_data(as_text=True)
    assert SCRIPT not in admin_page and ESCAPED in admin_page


def test_no_template_turns_escaping_off():
    offenders = []
    for path in TEMPLATES:
        source = path.read_text(encoding="utf-8")
        if re.search(r"\|\s*safe\b", source) or re.search(r"\{%-?\s*autoescape\s+false", source):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_autoescaping_is_on_for_templates(app):
    with app.test_request_context():
        from flask import render_template_string

        assert render_template_string("{{ value }}", value=SCRIPT) == ESCAPED


# Languages --------------------------------------------------------------------------------------


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True)).group(1)


def test_interface_is_chinese_by_default(anonymous):
    page = anonymous.get("/login")

    assert html_lang(page) == "zh-CN"
    assert "登录" in page.get_data(as_text=True)


def test_language_switch_turns_the_interface_english(anonymous):
    response = anonymous.post("/lang/en", {"next": "/login"})

    assert response.status_code == 302 and response.headers["Location"] == "/login"
    page = anonymous.get("/login")
    assert html_lang(page) == "en"
    assert ">Log in<" in page.get_data(as_text=True)
    anonymous.post("/lang/zh_CN")
    assert html_lang(anonymous.get("/login")) == "zh-CN"


def test_browser_language_is_used_until_the_user_chooses(anonymous):
    assert html_lang(anonymous.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})) == "en"
    assert html_lang(anonymous.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})) == "zh-CN"


def test_logged_in_users_language_choice_is_kept_on_the_user(app, as_user):
    client = as_user("sales1")

    client.post("/lang/en")

    assert html_lang(client.get("/")) == "en"
    with app.app_context():
        assert services.find_user("sales1").language == "en"
    other_browser = as_user("sales1")  # a new session: the saved choice, not the default
    assert html_lang(other_browser.get("/")) == "en"


def test_unknown_language_is_ignored(app, as_user):
    client = as_user("sales1")

    assert client.post("/lang/fr").status_code == 302

    assert html_lang(client.get("/")) == "zh-CN"
    with app.app_context():
        assert services.find_user("sales1").language is None


def test_language_switch_never_redirects_to_another_site(anonymous):
    for target in ("https://evil.com/", "//evil.com"):
        response = anonymous.post("/lang/en", {"next": target})
        assert response.headers["Location"] == "/"


def test_language_switch_needs_a_csrf_token(app, as_user):
    client = as_user("sales1")

    assert client.http.post("/lang/en").status_code == 400
    with app.app_context():
        assert services.find_user("sales1").language is None


# Health checks ----------------------------------------------------------------------------------


def test_healthz_answers_without_login(anonymous):
    response = anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_the_icon_is_served_without_login_where_pages_name_it_and_where_browsers_guess_it(anonymous):
    login = anonymous.get("/login")
    assert 'rel="icon" href="/static/favicon.svg"' in login.get_data(as_text=True)
    guessed = anonymous.get("/favicon.ico")
    assert guessed.status_code == 301 and guessed.headers["Location"].endswith("/static/favicon.svg")
    icon = anonymous.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data


def test_readyz_is_ready_when_every_branch_is_migrated(make_app):
    app = make_app(schema="migrate")

    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_names_the_pending_branches_when_the_database_is_not_migrated(make_app):
    app = make_app(schema="create")  # tables without Alembic's record of them

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    with app.app_context():
        from core import migrate

        branches = migrate.branches()
    assert "core" in branches
    assert body["checks"]["migrations"] == "pending: " + ", ".join(branches)


def test_readyz_names_only_the_branches_still_behind(make_app):
    make_app(plugins=["approval"], schema="migrate")
    app = make_app(plugins=["approval", "crm"], schema=None)  # crm enabled later, not yet upgraded

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["migrations"] == "pending: crm"


def test_readyz_reports_an_unreachable_database(make_app):
    app = make_app(schema=None, DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error: ")
