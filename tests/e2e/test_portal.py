"""The portal in a real browser: log in, switch language, the admin pages, log out, login throttling.

Everything is found the way a user finds it: by label, role and visible (Chinese) text. The
browser prefers zh-CN, so pages come in Chinese unless the user switches.

Every click that loads a page waits for that page to finish loading (``expect_navigation``), so
the next step never acts on the old page or before Bootstrap's deferred script wires the menus.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, Response, expect

pytestmark = pytest.mark.e2e

PASSWORD = "Correct-Horse-42"  # every demo user's password in the `app` fixture (tests/conftest.py)
WRONG_PASSWORD = "Wrong-Horse-99"
ACCOUNT_LIMIT = 5  # LOGIN_LIMIT_ACCOUNT's default: "5 per 15 minutes"


def load(page: Page, target: Locator) -> Response | None:
    """Click ``target`` and wait until the page it leads to has loaded; returns the page's response."""
    with page.expect_navigation() as navigation:
        target.click()
    return navigation.value


def zh(app, msgid: str, **values) -> str:
    """``msgid`` as the Chinese interface shows it (so a test survives rewording of the catalogue)."""
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale("zh_CN"):
        return gettext(msgid, **values)


def signed_in_page(browser, live_server, username: str) -> Page:
    """A page in a browser context of its own (a second person at their own desk), logged in."""
    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login")
    log_in(page, username, PASSWORD)
    return page


def open_menu(page: Page, name: str) -> None:
    """Open a navbar dropdown by the text on its toggle (which an open menu's item may repeat)."""
    toggle = page.get_by_role("button", name=name, exact=True).and_(page.locator("[aria-expanded]"))
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")


def log_in(page: Page, username: str, password: str) -> Response | None:
    """Fill in and submit the login form (in Chinese); returns the response the browser ends on."""
    page.get_by_label("用户名", exact=True).fill(username)
    page.get_by_label("密码", exact=True).fill(password)
    return load(page, page.get_by_role("button", name="登录", exact=True))


def test_admin_logs_in_switches_language_opens_plugins_and_org_tree_and_logs_out(page: Page, console, save_screenshot):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    log_in(page, "admin", PASSWORD)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="首页", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="系统管理员", exact=True)).to_be_visible()
    save_screenshot(page, "home")

    # Switch to English from the navbar's language menu.
    open_menu(page, "中文")
    load(page, page.get_by_role("button", name="English", exact=True))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
    open_menu(page, "系统管理员")  # a display name is not translated
    expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()
    page.keyboard.press("Escape")

    # And back to Chinese.
    open_menu(page, "English")
    load(page, page.get_by_role("button", name="中文", exact=True))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="首页", exact=True)).to_be_visible()

    # 系统管理 → 插件: one row per plugin.
    open_menu(page, "系统管理")
    load(page, page.get_by_role("link", name="插件", exact=True))
    expect(page).to_have_url(re.compile(r"/admin/plugins$"))
    expect(page.get_by_role("heading", name="插件", exact=True)).to_be_visible()
    rows = page.get_by_role("row")
    for name in ("approval", "crm", "srm", "hr"):
        expect(rows.filter(has=page.locator("code", has_text=re.compile(rf"^{name}$")))).to_have_count(1)
    crm = rows.filter(has=page.locator("code", has_text=re.compile(r"^crm$")))
    expect(crm).to_contain_text("客户管理")
    expect(crm).to_contain_text("已启用")

    # 系统管理 → 组织架构: the demo company's departments.
    open_menu(page, "系统管理")
    load(page, page.get_by_role("link", name="组织架构", exact=True))
    expect(page).to_have_url(re.compile(r"/admin/departments$"))
    expect(page.get_by_role("heading", name="组织架构", exact=True)).to_be_visible()
    for department in ("销售部", "华东区", "华南区"):
        expect(page.get_by_role("link", name=department, exact=True)).to_be_visible()

    # Log out from the user menu.
    open_menu(page, "系统管理员")
    load(page, page.get_by_role("button", name="退出登录", exact=True))
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("用户名", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="系统管理员", exact=True)).to_have_count(0)
    # Logged out means logged out: the home page sends the browser back to the login form.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))

    assert console.errors == [], "console errors on the portal's pages:\n" + "\n".join(console.errors)


def test_wrong_password_shows_error_and_repeated_failures_are_throttled(page: Page, console):
    page.goto("/login")
    alert = page.get_by_role("alert")

    for _attempt in range(ACCOUNT_LIMIT):
        response = log_in(page, "admin", WRONG_PASSWORD)
        assert response is not None and response.status == 200
        expect(alert).to_have_text("用户名或密码错误。")
        # The username is kept, the password is not.
        expect(page.get_by_label("用户名", exact=True)).to_have_value("admin")
        expect(page.get_by_label("密码", exact=True)).to_have_value("")

    # The account has used up its attempts: even the right password is refused for now.
    for password in (WRONG_PASSWORD, PASSWORD):
        response = log_in(page, "admin", password)
        assert response is not None and response.status == 429
        expect(page).to_have_url(re.compile(r"/login$"))
        expect(alert).to_have_text("登录失败次数过多，请 15 分钟后重试。")
    expect(page.get_by_role("button", name="系统管理员", exact=True)).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))

    # Chromium logs each 429 page load as "Failed to load resource"; anything else is a real error.
    unexpected = [error for error in console.errors if "status of 429" not in error]
    assert unexpected == [], "console errors on the login page:\n" + "\n".join(unexpected)


def test_portal_is_usable_at_phone_width(page: Page, console, save_screenshot):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/login")
    log_in(page, "admin", PASSWORD)
    expect(page.get_by_role("heading", name="首页", exact=True)).to_be_visible()
    # The navigation folds behind the toggler and opens from it.
    toggler = page.get_by_role("button", name="菜单", exact=True)
    expect(toggler).to_be_visible()
    expect(page.get_by_role("button", name="系统管理", exact=True)).to_be_hidden()
    toggler.click()
    expect(toggler).to_have_attribute("aria-expanded", "true")
    # Bootstrap animates the menu open ("collapsing"); it takes clicks once it is "show".
    expect(page.locator("#main-nav")).to_have_class(re.compile(r"(^|\s)show(\s|$)"))
    open_menu(page, "系统管理")
    load(page, page.get_by_role("link", name="用户", exact=True))
    expect(page.get_by_role("heading", name="用户", exact=True)).to_be_visible()
    save_screenshot(page, "users-phone")
    # Nothing is wider than the screen: the page never scrolls sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    assert console.errors == []
