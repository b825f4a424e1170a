"""A record page in a real browser: attach a file, download it, and mention a colleague in a comment."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core import resources as records
from core.extensions import db
from core.org.models import User

from tests.conftest import PASSWORD
from tests.e2e.test_portal import load, log_in

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def app(make_app):
    """Every plugin plus the sample ``notes`` plugin, with the demo company."""
    from core.demo import create_demo_company

    app = make_app(plugins=("approval", "crm", "srm", "hr", "notes"))
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def test_a_file_is_attached_downloaded_and_a_colleague_is_mentioned(app, page: Page, console, save_screenshot, tmp_path):
    with app.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        note = records.create(records.get_resource("notes.note"), sales1, {"title": "华东区周报"})
        db.session.commit()
        note_id = note.id
    contract = tmp_path / "合同 2026.pdf"
    contract.write_bytes(PDF)

    page.goto(f"/notes/notes/{note_id}")
    log_in(page, "sales1", PASSWORD)
    expect(page.get_by_role("heading", name="华东区周报", exact=True)).to_be_visible()
    page.get_by_label(re.compile("^(文件|File)$")).set_input_files(str(contract))
    load(page, page.get_by_role("button", name=re.compile("^(上传|Upload)$")))
    link = page.get_by_role("link", name="合同 2026.pdf", exact=True)
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "合同 2026.pdf"
    assert open(download.value.path(), "rb").read() == PDF
    save_screenshot(page, "attachments")

    load(page, page.get_by_role("link", name=re.compile("^历史")))
    page.get_by_role("textbox", name=re.compile("^(添加评论|Add a comment)")).fill("<b>请看</b> @李经理 报价在附件里")
    load(page, page.get_by_role("button", name=re.compile("^(发表评论|Post comment)$")))
    thread = page.locator("#discussion")
    expect(thread).to_contain_text("<b>请看</b> @李经理 报价在附件里")  # shown as typed, not as markup
    expect(thread.locator(".mention")).to_have_text("@李经理")
    save_screenshot(page, "comment")
    assert console.errors == []

    page.context.clear_cookies()
    page.goto("/inbox")
    log_in(page, "salesmgr", PASSWORD)
    item = page.get_by_text(re.compile("张伟.*华东区周报"))
    expect(item).to_be_visible()
