"""Imports write their rows in batches (``core.imports.service._part``) with the guarantees of one row at a time.

A batch's new records go in with one multi-row INSERT and one audit INSERT; if the database
refuses the batch, its rows are tried one by one so the error lands on the right row. Rows of one
file with the same natural key still behave as they would one after the other, the audit entries
are the ones ``records.create`` writes, and undo takes back every batch.
"""
from __future__ import annotations

import pytest
from flask_babel import gettext
from sqlalchemy import select

from core import resources as records
from core.audit.models import AuditEntry
from core.extensions import db
from core.imports import service
from core.imports.models import Import, ImportChange
from core.permissions.services import set_grants

from tests.core.test_imports import (app, add_note, csv_bytes, login, note_resource, notes, preview_id,  # noqa: F401
                                     upload, user)


def written(import_id: int, kind: str) -> list[tuple]:
    """``(record id, version, before)`` of each record of ``kind`` the import wrote, in order."""
    return db.session.execute(select(ImportChange.record_id, ImportChange.version, ImportChange.before)
                              .where(ImportChange.import_id == import_id, ImportChange.kind == kind)
                              .order_by(ImportChange.id)).all()


def _customer_rows(codes):
    return [["客户名称", "统一社会信用代码"], *[[f"批量导入客户{i}", code] for i, code in enumerate(codes)]]


def test_a_batch_the_database_refuses_is_retried_row_by_row_and_the_error_lands_on_its_row(app, monkeypatch):
    from plugins.crm import creditcode
    from plugins.crm.models import Customer

    taken = creditcode.make(7001)
    with app.app_context():
        customer = records.get_resource("crm.customer")
        importer = next(r for r in user("sales1").roles if r.key == "importer")
        set_grants(user("admin"), importer.id, {"notes.note.import": "own", "crm.customer.import": "own"})
        # sales2's customer: outside sales1's update scope, so the row with its code is an insert the
        # unique index refuses (outside a request the schema's duplicate check does not run).
        records.create(customer, user("sales2"), {"name": "华南已有客户", "credit_code": taken})
        db.session.commit()

    batches = []
    together = service._insert_together

    def spy(run, datas, keep):
        outcome = together(run, datas, keep)
        batches.append((len(datas), type(outcome).__name__))
        return outcome

    monkeypatch.setattr(service, "_insert_together", spy)
    codes = [creditcode.make(7002), creditcode.make(7003), taken, creditcode.make(7004)]
    with app.app_context():
        customer = records.get_resource("crm.customer")
        imp = service.preview(customer, user("sales1"), "c.csv", csv_bytes(_customer_rows(codes)))
        assert (imp.to_insert, imp.rejected) == (3, 1)
        assert [e["row"] for e in imp.errors] == [4]
        assert imp.errors[0]["message"] == gettext("The database refused this row (is a value a duplicate?).")
        assert batches[0] == (4, "IntegrityError") and len(batches) == 5  # the batch, then each row
        db.session.commit()
        import_id = imp.id
    with app.app_context():
        imp = service.apply(import_id, user("sales1"))
        assert (imp.inserted, imp.rejected) == (3, 1)
        assert [r["row"] for r in imp.rejects] == [4]
        db.session.commit()
        mine = db.session.scalars(select(Customer.credit_code).where(Customer.owner_id == user("sales1").id)).all()
        assert sorted(mine) == sorted(c for c in codes if c != taken)
        owner = db.session.scalar(select(Customer.owner_id).where(Customer.credit_code == taken))
        assert owner == user("sales2").id  # the other rep's customer is untouched


def test_rows_of_one_file_with_the_same_natural_key_behave_as_one_after_the_other(app):
    client = login(app, "sales1")
    before = notes(app)
    rows = [["标题", "内容"], ["周报", "第一版"], ["日报", "一"], ["周报", "第二版"], ["周报", "第三版"]]
    import_id = preview_id(upload(client, "notes.csv", csv_bytes(rows)))
    with app.app_context():
        imp = db.session.get(Import, import_id)
        # The dry run keeps nothing between rows, yet counts a repeated title as the update the apply makes.
        assert (imp.to_insert, imp.to_update, imp.rejected) == (2, 2, 0)
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert (imp.inserted, imp.updated, imp.rejected) == (2, 2, 0)
        assert [before for _id, _v, before in written(import_id, "update")] == [{"title": "周报", "body": "第一版"},
                                                                          {"title": "周报", "body": "第二版"}]
    new = {t: b for i, (t, b, _o) in notes(app).items() if i not in before}
    assert new == {"周报": "第三版", "日报": "一"}


def _entries(app, action: str, title_prefix: str) -> list[tuple]:
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action,
                                                              AuditEntry.summary.startswith(title_prefix))
                                     .order_by(AuditEntry.id)).all()
        return [(e.actor_id, e.actor_name, e.address, e.action, e.resource, e.summary, e.changes) for e in entries]


def test_a_batch_writes_the_same_audit_entries_as_records_create(app):
    client = login(app, "sales1")
    rows = [["标题", "内容", "负责人"], ["审计甲", "内容甲", ""], ["审计乙", "", "sales1"], ["审计丙", "丙", "张伟"]]
    import_id = preview_id(upload(client, "notes.csv", csv_bytes(rows)))
    client.post(f"/imports/{import_id}/apply")
    imported = _entries(app, "create", "审计")
    with app.app_context():
        ids = [i for i, _v, _b in written(import_id, "insert")]
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "create",
                                                              AuditEntry.resource == "notes.note",
                                                              AuditEntry.record_id.in_(ids))).all()
        assert sorted(e.record_id for e in entries) == sorted(ids)  # each entry names its record
    assert client.post(f"/imports/{import_id}/undo").status_code == 302

    with app.test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        from flask_login import login_user

        me = user("sales1")
        sales1_id = me.id
        login_user(me)
        for data in ({"title": "审计甲", "body": "内容甲"}, {"title": "审计乙", "owner_id": sales1_id},
                     {"title": "审计丙", "body": "丙", "owner_id": sales1_id}):
            records.create(note_resource(), me, data)
        db.session.commit()
    one_by_one = _entries(app, "create", "审计")[len(imported):]
    assert len(imported) == 3 and imported == one_by_one
    assert imported[0][:2] == (sales1_id, "sales1") and imported[0][6]["title"] == [None, "审计甲"]


def test_undo_takes_back_every_batch(app):
    app.config["YITI"]["IMPORT_BATCH_ROWS"] = 2
    client = login(app, "sales1")
    before = notes(app)
    rows = [["标题", "内容"], *[[f"批次{i}", str(i)] for i in range(7)]]
    import_id = preview_id(upload(client, "notes.csv", csv_bytes(rows)))
    client.post(f"/imports/{import_id}/apply")
    assert len(notes(app)) == len(before) + 7
    assert client.post(f"/imports/{import_id}/undo").status_code == 302
    assert notes(app) == before
    with app.app_context():
        imp = db.session.get(Import, import_id)
        assert imp.status == "undone" and imp.not_undone == []
        deleted = db.session.scalars(select(AuditEntry.record_id).where(AuditEntry.action == "delete",
                                                                       AuditEntry.resource == "notes.note")).all()
        assert sorted(deleted) == sorted(i for i, _v, _b in written(import_id, "insert"))


@pytest.mark.parametrize("batch_rows", [1, 500])
def test_undo_deletes_a_record_the_import_created_and_then_changed_again(app, batch_rows):
    app.config["YITI"]["IMPORT_BATCH_ROWS"] = batch_rows
    client = login(app, "sales1")
    before = notes(app)
    rows = [["标题", "内容"], ["两次写入", "第一版"], ["两次写入", "第二版"]]
    import_id = preview_id(upload(client, "notes.csv", csv_bytes(rows)))
    client.post(f"/imports/{import_id}/apply")
    assert sorted(v for k, v in notes(app).items() if k not in before) == [("两次写入", "第二版", "sales1")]
    assert client.post(f"/imports/{import_id}/undo").status_code == 302
    assert notes(app) == before
    with app.app_context():
        assert db.session.get(Import, import_id).not_undone == []


def test_undo_gives_a_record_updated_twice_the_values_it_had_before_the_import(app):
    app.config["YITI"]["IMPORT_BATCH_ROWS"] = 1
    mine = add_note(app, "sales1", "周报", "原来的")
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "notes.csv", csv_bytes([["标题", "内容"], ["周报", "一"], ["周报", "二"]])))
    client.post(f"/imports/{import_id}/apply")
    assert notes(app)[mine] == ("周报", "二", "sales1")
    assert client.post(f"/imports/{import_id}/undo").status_code == 302
    assert notes(app)[mine] == ("周报", "原来的", "sales1")


def test_undo_leaves_a_new_record_that_got_the_id_of_a_deleted_imported_one(app):
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "notes.csv", csv_bytes([["标题", "内容"], ["导入的", "x"]])))
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        (imported,) = [i for i, _v, _b in written(import_id, "insert")]
        records.delete(note_resource(), user("sales1"), imported, version=1)
        db.session.commit()
        newer = records.create(note_resource(), user("sales1"), {"title": "后来新建的", "body": "y"})
        if db.engine.dialect.name == "sqlite":
            assert newer.id == imported  # SQLite gives the deleted record's id to the next one
        db.session.commit()
        newer_id = newer.id
    assert client.post(f"/imports/{import_id}/undo").status_code == 302
    assert notes(app)[newer_id] == ("后来新建的", "y", "sales1")
    with app.app_context():
        assert [n["id"] for n in db.session.get(Import, import_id).not_undone] == [imported]
