"""The API reference page in a real browser: reached from the user menu, rendered by the vendored
Swagger UI under the Content-Security-Policy (a CSP violation shows up as a console error), and
able to call the API with the browser's session."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_portal import PASSWORD, load, log_in, open_menu

pytestmark = pytest.mark.e2e


def test_api_reference_opens_from_the_user_menu_and_renders_every_operation_without_console_errors(
        page: Page, console, save_screenshot):
    page.goto("/api/docs")
    expect(page).to_have_url(re.compile(r"/login\?next=/api/docs$"))  # a page, not a JSON 401
    log_in(page, "admin", PASSWORD)
    expect(page).to_have_url(re.compile(r"/api/docs$"))

    page.goto("/")
    open_menu(page, "系统管理员")
    load(page, page.get_by_role("link", name="API", exact=True))
    expect(page).to_have_url(re.compile(r"/api/docs$"))

    expect(page.get_by_role("heading", name=re.compile(r"^Yiti OA API"))).to_be_visible()
    for method, path in (("GET", "/core/users"), ("POST", "/core/departments"), ("GET", "/core/roles"),
                         ("DELETE", "/auth/tokens/{token_id}")):
        operation = page.locator(".opblock-summary").filter(has_text=method).filter(
            has=page.get_by_text(path, exact=True))
        expect(operation).to_be_visible()
    save_screenshot(page, "api-docs")

    # "Try it out" on GET /core/roles reaches the API through the documented server URL.
    roles = page.locator(".opblock").filter(has=page.get_by_text("/core/roles", exact=True))
    roles.locator(".opblock-summary").click()
    roles.get_by_role("button", name="Try it out").click()
    roles.get_by_role("button", name="Execute").click()
    expect(roles.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    expect(roles.locator(".live-responses-table")).to_contain_text('"items"')

    assert console.errors == []
