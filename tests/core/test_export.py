"""Open export: every table (or one plugin's) as an XLSX workbook or a ZIP of CSVs, for admins, audited."""
from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, text

from core import crypto, export, xlsx
from core.audit.models import AuditEntry
from core.extensions import db

from tests.conftest import PASSWORD, Client

PLUGINS = ("approval",)


@pytest.fixture
def company_app(make_app):
    app = make_app(plugins=PLUGINS)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        # Awkward values: a formula-looking name, Chinese text, a decimal with scale.
        db.session.execute(text("UPDATE core_user SET display_name = :v WHERE username = 'sales1'"),
                           {"v": "=HYPERLINK(\"http://evil\")"})
        db.session.commit()
    return app


def admin(app):
    client = Client(app)
    assert client.login("admin").status_code == 302
    return client


def test_admin_exports_everything_as_one_workbook(company_app):
    response = admin(company_app).post("/admin/export", {"format": "xlsx", "plugin": ""})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="yiti-export-all-')
    assert response.mimetype == xlsx.MIMETYPE
    workbook = load_workbook(io.BytesIO(response.get_data()), read_only=True)
    assert {"core_user", "core_department", "approval_flow"} <= set(workbook.sheetnames)
    users = list(workbook["core_user"].iter_rows(values_only=True))
    header = users[0]
    assert "username" in header and "password_hash" not in header
    by_name = {row[header.index("username")]: row for row in users[1:]}
    assert len(by_name) == 9
    sales = by_name["sales1"]
    assert sales[header.index("display_name")] == '=HYPERLINK("http://evil")'  # text, not a formula
    created = sales[header.index("created_at")]
    assert isinstance(created, str) and created.endswith("+00:00")
    with company_app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).one()
        assert entry.actor_name == "admin" and entry.changes["tables"]["core_user"] == 9
        assert entry.changes["format"] == "xlsx"


def test_one_plugin_as_csv_files_with_bom(company_app):
    response = admin(company_app).post("/admin/export", {"format": "csv", "plugin": "approval"})
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = archive.namelist()
    assert "approval_flow.csv" in names
    assert all(n.startswith("approval_") and n.endswith(".csv") for n in names)
    raw = archive.read("approval_flow.csv")
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "id"


def test_values_are_readable(make_app, tmp_path):
    app = make_app(plugins=())
    from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Numeric, String, Table

    metadata = MetaData()
    table = Table("core_t_export", metadata, Column("id", Integer, primary_key=True), Column("amount", Numeric(18, 2)),
                  Column("day", Date), Column("at", DateTime(timezone=True)), Column("name", String(50)),
                  Column("secret", crypto.EncryptedText))
    with app.app_context():
        from datetime import UTC, date, datetime

        metadata.create_all(db.engine)
        db.session.execute(table.insert().values(id=1, amount=Decimal("12800.50"), day=date(2026, 11, 25),
                                                 at=datetime(2026, 11, 25, 8, 30, tzinfo=UTC), name="-1+1",
                                                 secret="6222020200001234"))
        db.session.commit()
        counts = export.write_xlsx(tmp_path / "t.xlsx", [table])
        export.write_csv_zip(tmp_path / "t.zip", [table])
        assert export.encrypted_in([table]) == ["core_t_export.secret"]
        db.session.commit()
        metadata.drop_all(db.engine)
    assert counts == {"core_t_export": 1}
    row = list(load_workbook(tmp_path / "t.xlsx", read_only=True)["core_t_export"].iter_rows(values_only=True))[1]
    assert row[:3] == (1, 12800.5, "2026-11-25")
    assert row[3] == "2026-11-25T08:30:00+00:00" and row[4] == "-1+1"
    assert row[5] == "6222020200001234"  # decrypted for the admin
    line = zipfile.ZipFile(tmp_path / "t.zip").read("core_t_export.csv").decode("utf-8-sig").splitlines()[1]
    assert line == "1,12800.50,2026-11-25,2026-11-25T08:30:00+00:00,'-1+1,6222020200001234"


def test_a_table_longer_than_a_sheet_goes_on_in_the_next_sheets(make_app, tmp_path, monkeypatch):
    app = make_app(plugins=())
    monkeypatch.setattr(xlsx, "MAX_ROWS", 3)  # a header and two rows per sheet
    from sqlalchemy import Column, Integer, MetaData, String, Table

    metadata = MetaData()
    long, empty = (Table(name, metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))
                   for name in ("core_t_long", "core_t_empty"))
    with app.app_context():
        metadata.create_all(db.engine)
        db.session.execute(long.insert(), [{"id": i, "name": f"n{i}"} for i in range(1, 6)])
        db.session.commit()
        counts = export.write_xlsx(tmp_path / "t.xlsx", [long, empty])
        db.session.commit()
        metadata.drop_all(db.engine)
    assert counts == {"core_t_long": 5, "core_t_empty": 0}
    book = load_workbook(tmp_path / "t.xlsx", read_only=True)
    assert book.sheetnames == ["core_t_long", "core_t_long (2)", "core_t_long (3)", "core_t_empty"]
    sheets = {name: list(book[name].iter_rows(values_only=True)) for name in book.sheetnames}
    assert sheets["core_t_long"] == [("id", "name"), (1, "n1"), (2, "n2")]
    assert sheets["core_t_long (2)"] == [("id", "name"), (3, "n3"), (4, "n4")]
    assert sheets["core_t_long (3)"] == [("id", "name"), (5, "n5")]
    assert sheets["core_t_empty"] == [("id", "name")]


def test_bad_choices_are_refused_without_an_export(company_app):
    client = admin(company_app)
    for form in ({"format": "pdf"}, {"format": "xlsx", "plugin": "srm"}, {"format": "csv", "plugin": "../core"}):
        response = client.post("/admin/export", form)
        assert response.status_code == 302
    with company_app.app_context():
        assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "export")) is None


def test_cli_export(company_app, tmp_path):
    from flask.cli import ScriptInfo

    from core.cli import cli

    runner = company_app.test_cli_runner()
    info = ScriptInfo(create_app=lambda: company_app)
    output = tmp_path / "core.xlsx"
    result = runner.invoke(cli, ["export", "--format", "xlsx", "--plugin", "core", "--output", str(output)], obj=info)
    assert result.exit_code == 0, result.output
    sheets = load_workbook(output, read_only=True).sheetnames
    assert "core_user" in sheets and not any(s.startswith("approval_") for s in sheets)
    result = runner.invoke(cli, ["export", "--plugin", "nope", "--output", str(tmp_path / "x.xlsx")], obj=info)
    assert result.exit_code != 0 and "Unknown or disabled plugin" in result.output
    with company_app.app_context():
        assert db.session.scalars(select(AuditEntry.actor_name).where(AuditEntry.action == "export")).all() == ["cli"]
