"""Importing a spreadsheet in a real browser: preview with the bad rows, rejects file, export, undo.

Texts new with the import pages are matched in English or Chinese (``either``), so the test holds
before and after their translations reach the catalogue.
"""
from __future__ import annotations

import csv
import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.test_portal import load, log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(make_app):
    """Every plugin plus ``notes``, the demo company, and sales1 allowed to import notes."""
    from sqlalchemy import select

    from core.demo import create_demo_company
    from core.extensions import db
    from core.org.models import Role, User
    from core.permissions.services import set_grants

    app = make_app(plugins=("approval", "crm", "srm", "hr", "notes"))
    with app.app_context():
        create_demo_company(PASSWORD)
        role = Role(key="importer", name="导入")
        db.session.add(role)
        db.session.flush()
        set_grants(db.session.scalar(select(User).where(User.username == "admin")), role.id, {"notes.note.import": "own"})
        member = db.session.scalar(select(User).where(User.username == "sales1"))
        member.roles = [*member.roles, role]
        db.session.commit()
    return app


def either(english: str, chinese: str) -> re.Pattern:
    return re.compile(f"^({re.escape(english)}|{re.escape(chinese)})$")


def spreadsheet() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in (["标题", "内容", "负责人"], ["华东区周报", "拜访 3 家客户", "sales1"], [None, "没有标题", None],
                ["华南区周报", "回款 20 万", "张伟"], ["写错负责人", "无", "不存在的人"]):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_an_xlsx_is_previewed_imported_exported_and_undone_in_the_browser(page: Page, console, save_screenshot):
    page.goto("/notes/notes")
    log_in(page, "sales1", PASSWORD)
    load(page, page.get_by_role("link", name="导入", exact=True))

    page.get_by_label(either("CSV or XLSX file", "CSV 或 XLSX 文件")).set_input_files(files=[{
        "name": "便签.xlsx", "buffer": spreadsheet(),
        "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}])
    load(page, page.get_by_role("button", name=either("Check file", "检查文件")))
    errors = page.get_by_role("table")
    expect(errors.get_by_role("row")).to_have_count(3)  # the header and the two bad rows
    expect(errors.get_by_role("row").nth(1)).to_contain_text("3")
    expect(errors.get_by_role("row").nth(2)).to_contain_text("5")
    expect(errors).to_contain_text("不存在的人")
    save_screenshot(page, "preview")
    import_page = page.url

    load(page, page.get_by_role("button", name=either("Import 2 rows", "导入 2 行")))
    with page.expect_download() as download:
        page.get_by_role("link", name=either("Download rejected rows", "下载被拒绝的行")).click()
    with open(download.value.path(), encoding="utf-8-sig") as rejects:
        rows = list(csv.reader(rejects))
    assert [r[0] for r in rows[1:]] == ["", "写错负责人"] and all(r[3] for r in rows[1:])

    load(page, page.get_by_role("link", name=either("Back to the list", "返回列表")))
    expect(page.get_by_role("link", name="华东区周报", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="华南区周报", exact=True)).to_be_visible()
    with page.expect_download() as export:
        page.get_by_role("link", name=either("Export XLSX", "导出 XLSX")).click()
    sheet = load_workbook(io.BytesIO(export.value.path().read_bytes()), read_only=True).worksheets[0]
    titles = {cell for row in sheet.iter_rows(values_only=True) for cell in row}
    assert {"华东区周报", "华南区周报"} <= titles

    page.goto(import_page)
    page.once("dialog", lambda dialog: dialog.accept())
    load(page, page.get_by_role("button", name=either("Undo import", "撤销导入")))
    expect(page.get_by_role("alert")).to_be_visible()
    page.goto("/notes/notes")
    expect(page.get_by_role("link", name="华东区周报", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="华南区周报", exact=True)).to_have_count(0)
    assert console.errors == []
