"""Importing customers: the credit code is the natural key, and the duplicate rules hold for every row."""
from __future__ import annotations

import io
import re

import pytest
from flask_babel import force_locale

from sqlalchemy import inspect as sa_inspect, select

from core import resources as records, schemas
from core.errors import ValidationError
from core.extensions import db
from core.imports.models import Import
from core.permissions.services import set_grants
from plugins.crm import creditcode
from plugins.crm.models import Customer

from tests.core.test_imports import app, csv_bytes, login, preview_id, user  # noqa: F401
from tests.core.test_request_cost import statements

IMPORT_URL = "/crm/customers/import"


def _grant_import(app):
    with app.app_context():
        importer = next(r for r in user("sales1").roles if r.key == "importer")
        set_grants(user("admin"), importer.id, {"notes.note.import": "own", "crm.customer.import": "own"})
        db.session.commit()


def _upload(client, rows):
    return client.post(IMPORT_URL, {"file": (io.BytesIO(csv_bytes(rows)), "customers.csv")},
                       content_type="multipart/form-data")


def test_statuses_are_read_in_either_language_whatever_the_page_language_is(app):
    _grant_import(app)
    with app.app_context():
        user("sales1").language = "en"
        db.session.commit()
    client = login(app, "sales1")
    rows = [["Customer name", "状态", "Level"], ["双语客户甲", "休眠", ""], ["双语客户乙", "Lost customer", "b"],
            ["双语客户丙", "睡着了", ""], ["双语客户丁", "", "D"]]
    import_id = preview_id(_upload(client, rows))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.rejected) == (2, 2), imp.errors
        assert [e["row"] for e in imp.errors] == [4, 5]
        assert imp.errors[1]["message"] == "Must be one of: A, B, C."  # labelled as stored: no codes beside
        assert imp.errors[0]["message"] == ("Must be one of: Active, Dormant, or Lost customer "
                                            "(codes: active, dormant, lost).")
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        found = dict(db.session.execute(select(Customer.name, Customer.status).where(Customer.name.like("双语客户%"))).all())
    assert found == {"双语客户甲": "dormant", "双语客户乙": "lost"}
    with app.app_context():
        assert db.session.scalar(select(Customer.level).where(Customer.name == "双语客户乙")) == "B"
        with force_locale("zh_CN"):  # a Chinese reader sees the labels listed the Chinese way
            with pytest.raises(ValidationError) as refused:
                schemas.load(records.get_resource("crm.customer").schema(), {"name": "双语客户戊", "status": "睡着了"})
        assert refused.value.fields["status"] == ["必须是以下之一：正常、休眠或已流失（代码：active, dormant, lost）。"]


def test_a_row_with_the_credit_code_of_my_customer_updates_it_and_a_taken_code_is_refused_with_its_owner(app):
    _grant_import(app)
    mine, theirs = creditcode.make(8101), creditcode.make(8102)
    with app.app_context():
        customer = records.get_resource("crm.customer")
        records.create(customer, user("sales1"), {"name": "导入更新客户", "credit_code": mine, "level": "C"})
        records.create(customer, user("sales2"), {"name": "别人的客户", "credit_code": theirs})
        db.session.commit()
    client = login(app, "sales1")
    rows = [["客户名称", "统一社会信用代码", "客户等级"],
            ["导入更新客户", mine, "A"], ["抢别人的客户", theirs, "B"], ["全新客户", creditcode.make(8103), "B"]]
    import_id = preview_id(_upload(client, rows))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.to_update, imp.rejected) == (1, 1, 1), imp.errors
        assert [e["row"] for e in imp.errors] == [3]
        assert "别人的客户" in imp.errors[0]["message"]
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.inserted, imp.updated, imp.rejected) == (1, 1, 1)
        levels = dict(db.session.execute(select(Customer.credit_code, Customer.level)).all())
        assert levels[mine] == "A" and levels[creditcode.make(8103)] == "B"
        assert db.session.scalar(select(Customer.name).where(Customer.credit_code == theirs)) == "别人的客户"


def test_the_credit_codes_of_a_batch_are_checked_with_one_query_not_one_per_row(app):
    _grant_import(app)
    taken = creditcode.make(8200)
    with app.app_context():
        records.create(records.get_resource("crm.customer"), user("sales2"), {"name": "已登记客户", "credit_code": taken})
        db.session.commit()
    client = login(app, "sales1")
    rows = [["客户名称", "统一社会信用代码"], *[[f"批量客户{i}", creditcode.make(8201 + i)] for i in range(40)],
            ["重复登记客户", taken]]
    with statements(app) as seen:
        import_id = preview_id(_upload(client, rows))
    by_code = [s for s in seen if "FROM crm_customer" in s and "credit_code" in s.split("WHERE", 1)[-1]]
    assert len(by_code) <= 4, by_code  # the natural-key lookup and the duplicate check, per batch
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.rejected) == (40, 1)
        assert [e["row"] for e in imp.errors] == [42] and "已登记客户" in imp.errors[0]["message"]


def test_tags_and_statuses_are_read_as_people_type_them_and_as_exports_write_them(app):
    _grant_import(app)
    client = login(app, "sales1")
    rows = [["客户名称", "标签", "状态"],
            ["标签逗号客户", "重点, VIP", "正常"], ["标签JSON客户", '["重点"]', "休眠"], ["标签空客户", "", "active"]]
    import_id = preview_id(_upload(client, rows))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.rejected) == (3, 0), imp.errors
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        found = {name: (tags, status) for name, tags, status in db.session.execute(
            select(Customer.name, Customer.tags, Customer.status).where(Customer.name.like("标签%")))}
    assert found == {"标签逗号客户": (["重点", "VIP"], "active"), "标签JSON客户": (["重点"], "dormant"),
                     "标签空客户": ([], "active")}
    # The export shows them as people read them.
    export = client.get("/api/v1/crm/customers/export.csv?q=标签逗号").get_data(as_text=True)
    assert ",正常,重点、VIP," in export


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_list_export_for_people_imports_back_unchanged(app, kind):
    """Labels as headers, names for the owner, labels for choices, 重点、VIP for tags: the import reads
    every one of them back, so an exported file re-imported changes nothing."""
    _grant_import(app)
    with app.app_context():
        customer = records.get_resource("crm.customer")
        for n, (status, tags) in enumerate((("dormant", ["重点", "VIP"]), ("active", []))):
            records.create(customer, user("sales1"), {"name": f"往返客户{n}", "credit_code": creditcode.make(8800 + n),
                                                       "status": status, "tags": tags, "level": "AB"[n]})
        db.session.commit()

        def stored():
            return db.session.execute(select(Customer.name, Customer.credit_code, Customer.status, Customer.tags,
                                             Customer.level, Customer.owner_id, Customer.version)
                                      .where(Customer.name.like("往返客户%")).order_by(Customer.name)).all()

        before = stored()
    client = login(app, "sales1")
    exported = client.get(f"/api/v1/crm/customers/export.{kind}?q=往返客户")
    assert exported.status_code == 200
    if kind == "csv":
        text = exported.get_data(as_text=True)
        assert text.splitlines()[0].startswith("\ufeffID,客户名称,") and "张伟" in text and "休眠" in text
    response = client.post(IMPORT_URL, {"file": (io.BytesIO(exported.get_data()), f"customers.{kind}")},
                           content_type="multipart/form-data")
    import_id = preview_id(response)
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.to_update, imp.rejected) == (0, 2, 0), imp.errors
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        after = stored()
    assert [row[:6] for row in after] == [row[:6] for row in before]


def test_tags_are_edited_in_the_form_as_a_list_typed_with_commas(app):
    client = login(app, "sales1")
    with app.app_context():
        customer = records.create(records.get_resource("crm.customer"), user("sales1"),
                                  {"name": "表单标签客户", "tags": ["老客户"]})
        db.session.commit()
        customer_id = customer.id
    page = client.get(f"/crm/customers/{customer_id}/edit").get_data(as_text=True)
    assert 'value="老客户"' in page and "[" not in page.split('name="tags"')[1].split(">")[0]
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    response = client.post(f"/crm/customers/{customer_id}/edit",
                           {"name": "表单标签客户", "tags": "重点，VIP", "level": "B", "status": "active", "version": version})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    with app.app_context():
        assert db.session.get(Customer, customer_id).tags == ["重点", "VIP"]
    detail = client.get(f"/crm/customers/{customer_id}").get_data(as_text=True)
    assert "重点、VIP" in detail and "[&#39;重点" not in detail


def _lane_import(app, client, rows) -> tuple[int, list[int]]:
    import_id = preview_id(_upload(client, rows))
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        from core.imports.models import ImportChange

        imp = db.session.get(Import, import_id)
        changes = db.session.execute(select(ImportChange.record_id, ImportChange.kind, ImportChange.version)
                                     .where(ImportChange.import_id == import_id).order_by(ImportChange.id)).all()
        return (imp.to_insert, imp.rejected, imp.inserted, imp.rejected), changes


def _written(app, changes) -> list[tuple]:
    """Each new customer's columns and its ``create`` audit entry, less what differs between two runs."""
    from core.audit.models import AuditEntry

    apart = {"id", "created_at", "updated_at", "name", "credit_code"}
    out = []
    with app.app_context():
        for record_id, kind, version in changes:
            obj = db.session.get(Customer, record_id)
            columns = {p.key: getattr(obj, p.key) for p in sa_inspect(Customer).column_attrs if p.key not in apart}
            entry = db.session.scalar(select(AuditEntry).where(AuditEntry.resource == "crm.customer",
                                                               AuditEntry.record_id == record_id))
            audited = (entry.action, entry.actor_name, entry.address,
                       {k: v for k, v in entry.changes.items() if k not in apart})
            out.append((kind, version, columns, audited, sorted(entry.changes)))
    return out


def test_customers_written_as_plain_rows_are_the_records_the_orm_path_writes(app, monkeypatch):
    from core.imports import service

    _grant_import(app)
    client = login(app, "sales1")

    def rows(run: int):
        return [["客户名称", "统一社会信用代码", "客户等级", "标签", "客户状态", "地址", "负责人"],
                [f"平行客户甲{run}", creditcode.make(8300 + run * 10), "A", "重点、VIP", "正常", "上海市", ""],
                [f"平行客户乙{run}", creditcode.make(8301 + run * 10), "", "", "", "", "sales1"],
                [f"平行客户丙{run}", "91310000BADCODE00", "B", "", "", "", ""],
                [f"平行客户丁{run}", creditcode.make(8302 + run * 10), "C", "续约", "休眠", "", ""]]

    with app.app_context():
        assert service._bulk(records.get_resource("crm.customer"))
    plain_counts, plain_changes = _lane_import(app, client, rows(1))
    monkeypatch.setattr(service, "_bulk", lambda resource: False)
    orm_counts, orm_changes = _lane_import(app, client, rows(2))
    assert plain_counts == orm_counts == (3, 1, 3, 1)
    plain, orm = _written(app, plain_changes), _written(app, orm_changes)
    assert plain == orm
    assert plain[0][2]["tags"] == ["重点", "VIP"] and plain[0][2]["owner_id"] == plain[1][2]["owner_id"]


@pytest.mark.parametrize("may_update", [True, False])
def test_a_credit_code_repeated_in_one_file_previews_as_it_applies(app, may_update):
    _grant_import(app)
    if not may_update:  # sales1 may create and import customers, not change them
        with app.app_context():
            importer = next(r for r in user("sales1").roles if r.key == "importer")
            set_grants(user("admin"), importer.id, {"crm.customer.import": "own", "crm.customer.create": "own",
                                                    "crm.customer.read": "own"})
            user("sales1").roles = [importer]
            db.session.commit()
    code = creditcode.make(8900)
    rows = [["客户名称", "统一社会信用代码", "客户等级"], ["重复代码客户", code, "A"], ["重复代码客户（新名）", code, "B"]]
    client = login(app, "sales1")
    import_id = preview_id(_upload(client, rows))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        previewed = (imp.to_insert, imp.to_update, imp.rejected)
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        imp = db.session.get(Import, import_id)
        applied = (imp.inserted, imp.updated, imp.rejected)
        stored = db.session.execute(select(Customer.name, Customer.level).where(Customer.credit_code == code)).all()
    assert previewed == applied == ((1, 1, 0) if may_update else (1, 0, 1))
    assert stored == ([("重复代码客户（新名）", "B")] if may_update else [("重复代码客户", "A")])
