"""Importing CSV/XLSX files into a Resource (dry run, apply, rejects, undo) and exporting XLSX.

The sample third-party plugin's ``notes.note`` stands in for any business object: its natural key
is the title. sales1 and sales2 get an extra role granting ``notes.note.import`` (own scope); the
employee role already lets each create, update and delete their own notes.
"""
from __future__ import annotations

import csv
import io

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from core import resources as records
from core.audit.models import AuditEntry
from core.extensions import db
from core.imports.models import Import
from core.org.models import Role, User
from core.permissions.services import set_field_rules, set_grants

from tests.conftest import PASSWORD, Client

PLUGINS = ("approval", "crm", "srm", "hr", "notes")
IMPORT_URL = "/notes/notes/import"


@pytest.fixture
def app(make_app):
    """Every plugin plus ``notes``, the demo company, and import permission for sales1 and sales2."""
    from core.demo import create_demo_company

    app = make_app(plugins=PLUGINS)
    with app.app_context():
        create_demo_company(PASSWORD)
        admin = user("admin")
        role = Role(key="importer", name="导入")
        db.session.add(role)
        db.session.flush()
        set_grants(admin, role.id, {"notes.note.import": "own"})
        for name in ("sales1", "sales2"):
            member = user(name)
            member.roles = [*member.roles, role]
        db.session.commit()
    return app


def user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def login(app, name: str) -> Client:
    client = Client(app)
    assert client.login(name).status_code == 302
    return client


def note_resource():
    return records.get_resource("notes.note")


def add_note(app, owner: str, title: str, body: str = "") -> int:
    with app.app_context():
        obj = records.create(note_resource(), user(owner), {"title": title, "body": body})
        db.session.commit()
        return obj.id


def notes(app) -> dict[str, tuple]:
    """``{id: (title, body, owner username)}`` of every note."""
    with app.app_context():
        rows = db.session.execute(select(note_resource().model.id, note_resource().model.title,
                                         note_resource().model.body, User.username)
                                  .join(User, User.id == note_resource().model.owner_id)).all()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def csv_bytes(rows, encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def upload(client: Client, filename: str, data: bytes):
    return client.post(IMPORT_URL, {"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data")


def preview_id(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rsplit("/", 1)[1])


#: Two good rows and two bad ones: row 3 has no title, row 5 names an owner who does not exist.
MIXED = [
    ["标题", "内容", "负责人"],
    ["华东区周报", "拜访 3 家客户", ""],
    ["", "没有标题", ""],
    ["华南区周报", "回款 20 万", "sales1"],
    ["无主便签", "负责人写错了", "不存在的人"],
]


def test_dry_run_writes_nothing_and_shows_each_bad_row_with_its_reason(app):
    client = login(app, "sales1")
    before = notes(app)
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(MIXED)))
    assert notes(app) == before  # nothing written

    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.status, imp.total_rows, imp.to_insert, imp.to_update, imp.rejected) == ("previewed", 4, 2, 0, 2)
        assert sorted({e["row"] for e in imp.errors}) == [3, 5]
        assert imp.mapping == ["title", "body", "owner_id"]
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "此项为必填项。" in page  # row 3: the schema's own message for the missing title
    assert "不存在的人" in page  # row 5: the owner that was not found
    assert "<td>3</td>" in page and "<td>5</td>" in page


def test_apply_imports_the_good_rows_and_the_rejects_file_lists_the_bad_ones_with_reasons(app):
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(MIXED)))
    assert client.post(f"/imports/{import_id}/apply").status_code == 302

    titles = {title: owner for title, _body, owner in notes(app).values()}
    assert titles["华东区周报"] == "sales1" and titles["华南区周报"] == "sales1"
    assert "无主便签" not in titles and "" not in titles

    response = client.get(f"/imports/{import_id}/rejects.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["标题", "内容", "负责人"] and len(rows[0]) == 4  # + the reason column
    assert [r[:3] for r in rows[1:]] == [["", "没有标题", ""], ["无主便签", "负责人写错了", "不存在的人"]]
    assert all(r[3] for r in rows[1:])
    assert "标题" in rows[1][3] and "负责人" in rows[2][3] and "不存在的人" in rows[2][3]

    with app.app_context():
        summary = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "import"))
        assert summary.resource == "notes.note" and summary.actor_name
        assert summary.changes["inserted"] == 2 and summary.changes["rejected"] == 2
        created = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "create", AuditEntry.resource == "notes.note"))
        assert created == 2  # each record audited by the generic service


def test_gbk_csv_with_english_headers_is_read(app):
    client = login(app, "sales1")
    data = csv_bytes([["Title", " content "], ["广州客户回访", "满意度高"]], encoding="gbk")
    import_id = preview_id(upload(client, "notes.csv", data))
    client.post(f"/imports/{import_id}/apply")
    assert ("广州客户回访", "满意度高", "sales1") in notes(app).values()


def test_xlsx_with_field_names_and_an_unknown_column_is_read(app):
    client = login(app, "sales1")
    data = xlsx_bytes([["title", "body", "备注"], ["深圳展会", 2026, "忽略我"], [None, None, None]])
    import_id = preview_id(upload(client, "notes.xlsx", data))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert imp.unknown_columns == ["备注"] and imp.total_rows == 1
    client.post(f"/imports/{import_id}/apply")
    assert ("深圳展会", "2026", "sales1") in notes(app).values()


def test_a_file_that_is_not_csv_or_xlsx_is_refused(app):
    client = login(app, "sales1")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)
    response = upload(client, "notes.csv", png)
    assert response.status_code == 422
    assert "CSV" in response.get_data(as_text=True)
    fake_zip = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(fake_zip, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert upload(client, "notes.xlsx", fake_zip.getvalue()).status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_natural_key_updates_the_record_in_scope_and_never_another_users(app):
    mine = add_note(app, "sales1", "周报", "旧内容")
    theirs = add_note(app, "sales2", "周报", "陈静的内容")
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "notes.csv", csv_bytes([["标题", "内容"], ["周报", "新内容"]])))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.to_update) == (0, 1)
    client.post(f"/imports/{import_id}/apply")
    after = notes(app)
    assert after[mine] == ("周报", "新内容", "sales1")
    assert after[theirs] == ("周报", "陈静的内容", "sales2")


def test_a_row_giving_the_record_to_someone_outside_the_scope_is_rejected_and_not_written(app):
    client = login(app, "sales1")
    before = notes(app)
    import_id = preview_id(upload(client, "notes.csv", csv_bytes([["标题", "负责人"], ["给别人", "陈静"]])))
    client.post(f"/imports/{import_id}/apply")
    assert notes(app) == before
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert imp.rejected == 1 and imp.inserted == 0
        assert imp.rejects[0]["reason"]


def test_undo_removes_created_records_and_restores_updated_ones(app):
    mine = add_note(app, "sales1", "周报", "旧内容")
    client = login(app, "sales1")
    data = csv_bytes([["标题", "内容"], ["周报", "新内容"], ["新便签", "导入的"]])
    import_id = preview_id(upload(client, "notes.csv", data))
    client.post(f"/imports/{import_id}/apply")
    assert len(notes(app)) == 3  # the demo's welcome note, mine, the new one

    assert client.post(f"/imports/{import_id}/undo").status_code == 302
    after = notes(app)
    assert after[mine] == ("周报", "旧内容", "sales1")
    assert "新便签" not in {t for t, _b, _o in after.values()}
    with app.app_context():
        assert db.session.get(Import, import_id).status == "undone"
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "undo_import")) is not None
    assert client.post(f"/imports/{import_id}/undo").status_code == 422  # only once


def test_undo_leaves_a_record_changed_since_and_says_so(app):
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "notes.csv", csv_bytes([["标题"], ["会被改的"], ["不会被改的"]])))
    client.post(f"/imports/{import_id}/apply")
    changed = next(i for i, (t, _b, _o) in notes(app).items() if t == "会被改的")
    with app.app_context():
        records.update(note_resource(), user("sales1"), changed, {"body": "导入后又改了"})
        db.session.commit()
    client.post(f"/imports/{import_id}/undo")
    titles = {t for t, _b, _o in notes(app).values()}
    assert "会被改的" in titles and "不会被改的" not in titles
    with app.app_context():
        assert [n["id"] for n in db.session.get(Import, import_id).not_undone] == [changed]
    assert f"#{changed}" in client.get(f"/imports/{import_id}").get_data(as_text=True)


def test_without_import_permission_the_pages_answer_403(app):
    client = login(app, "buyer1")  # employee: creates own notes, may not import
    assert client.get(IMPORT_URL).status_code == 403
    assert upload(client, "notes.csv", csv_bytes([["标题"], ["x"]])).status_code == 403
    assert client.get(IMPORT_URL + "/template.xlsx").status_code == 403
    assert "/notes/notes/import" not in client.get("/notes/notes").get_data(as_text=True)


def test_someone_elses_import_is_not_found(app):
    import_id = preview_id(upload(login(app, "sales1"), "notes.csv", csv_bytes([["标题"], ["x"]])))
    other = login(app, "sales2")
    assert other.get(f"/imports/{import_id}").status_code == 404
    assert other.post(f"/imports/{import_id}/apply").status_code == 404
    assert notes(app) and "x" not in {t for t, _b, _o in notes(app).values()}


def test_templates_have_the_headers_in_the_users_language_and_the_example_row(app):
    client = login(app, "sales1")
    page = client.get("/notes/notes").get_data(as_text=True)
    assert IMPORT_URL in page and "export.xlsx" in page
    workbook = load_workbook(io.BytesIO(client.get(IMPORT_URL + "/template.xlsx").data), read_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    assert rows[0] == ("标题", "内容", "负责人")
    assert rows[1][:2] == ("周例会纪要", "本周重点：华东区回款。")
    text = client.get(IMPORT_URL + "/template.csv").data.decode("utf-8-sig")
    assert text.splitlines()[0] == "标题,内容,负责人"


def test_xlsx_export_is_a_workbook_with_masked_values_masked_and_is_audited(app):
    add_note(app, "sales1", "拜访记录", "13812345678")
    with app.app_context():
        admin = user("admin")
        role = Role(key="masked", name="遮蔽")
        db.session.add(role)
        db.session.flush()
        set_grants(admin, role.id, {f"notes.note.{a}": "own" for a in ("read", "export")})
        set_field_rules(admin, role.id, {("notes.note", "body"): "masked"})
        member = user("sales1")
        member.roles = [role]
        db.session.commit()
    client = login(app, "sales1")
    response = client.get("/api/v1/notes/notes/export.xlsx")
    assert response.status_code == 200
    rows = list(load_workbook(io.BytesIO(response.data), read_only=True).worksheets[0].iter_rows(values_only=True))
    header = list(rows[0])
    assert "标题" in header and "内容" in header
    body = rows[1][header.index("内容")]
    assert body == "138****5678" and "13812345678" not in response.data.decode("latin-1")
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "export"))
        assert entry.changes["format"] == "xlsx"


def test_a_list_longer_than_an_xlsx_sheet_is_refused_before_anything_is_written(app, monkeypatch):
    from core import xlsx

    for title in ("一", "二"):
        add_note(app, "sales1", title, "")
    monkeypatch.setattr(xlsx, "MAX_ROWS", 2)  # the header and one note
    client = login(app, "sales1")
    response = client.get("/api/v1/notes/notes/export.xlsx")
    assert response.status_code == 422
    assert "CSV" in response.get_json()["error"]["message"]
    assert client.get("/api/v1/notes/notes/export.xlsx?title__contains=一").status_code == 200
    assert client.get("/api/v1/notes/notes/export.csv").status_code == 200  # CSV has no such limit
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry.changes).where(AuditEntry.action == "export")).all()
        assert [e.get("format") for e in entries] == ["xlsx", None]  # the refused one left no entry
