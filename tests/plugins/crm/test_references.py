"""References between records (``core.references``): a contact's customer is typed by its name or
credit code in an import and shown by its name on pages, always through the reader's own scope."""
from __future__ import annotations

import html
import io
import re

from flask_babel import force_locale, gettext
from sqlalchemy import select

from core import resources as records
from core.extensions import db
from core.imports.models import Import
from core.permissions.services import set_field_rules, set_grants
from plugins.crm import creditcode
from plugins.crm.models import Contact

from tests.core.test_imports import app, csv_bytes, login, preview_id, user  # noqa: F401


def _customers(app) -> dict:
    """sales1's two customers (one name used twice) and sales2's one, by a short name."""
    with app.app_context():
        customer = records.get_resource("crm.customer")
        importer = next(r for r in user("sales1").roles if r.key == "importer")
        set_grants(user("admin"), importer.id, {"crm.customer.import": "own", "crm.contact.import": "own"})
        made = {
            "mine": records.create(customer, user("sales1"), {"name": "引用测试客户", "credit_code": creditcode.make(8601)}),
            "twin1": records.create(customer, user("sales1"), {"name": "同名客户", "credit_code": creditcode.make(8602)}),
            "twin2": records.create(customer, user("sales1"), {"name": "同名客户", "credit_code": creditcode.make(8603)}),
            "theirs": records.create(customer, user("sales2"), {"name": "别人的引用客户", "credit_code": creditcode.make(8604)}),
        }
        db.session.commit()
        return {key: (obj.id, obj.name, obj.credit_code) for key, obj in made.items()}


def test_an_import_links_a_contact_to_its_customer_by_name_code_or_id_within_the_importers_scope(app):
    found = _customers(app)
    client = login(app, "sales1")
    rows = [["联系人姓名", "客户", "手机"],
            ["按名称", "引用测试客户", "13800000001"],
            ["按代码", found["twin1"][2], "13800000002"],
            ["按编号", str(found["twin2"][0]), "13800000003"],
            ["同名", "同名客户", "13800000004"],
            ["越权", "别人的引用客户", "13800000005"],
            ["越权编号", str(found["theirs"][0]), "13800000006"]]
    response = client.post("/crm/contacts/import", {"file": (io.BytesIO(csv_bytes(rows)), "contacts.csv")},
                           content_type="multipart/form-data")
    import_id = preview_id(response)
    with app.app_context(), force_locale("zh_CN"):
        imp = db.session.get(Import, import_id)
        assert (imp.to_insert, imp.rejected) == (3, 3), imp.errors
        by_row = {e["row"]: e["message"] for e in imp.errors}
        assert set(by_row) == {5, 6, 7}
        assert by_row[5] == gettext("Several records are called “%(value)s”: give the code or the ID instead.",
                                    value="同名客户")
        assert by_row[6] == gettext("Nothing called “%(value)s” was found.", value="别人的引用客户")
        assert "别人的引用客户" not in by_row[7]  # an id outside the scope tells nothing about the record
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():
        linked = dict(db.session.execute(select(Contact.name, Contact.customer_id).where(
            Contact.name.in_(["按名称", "按代码", "按编号"]))).all())
    assert linked == {"按名称": found["mine"][0], "按代码": found["twin1"][0], "按编号": found["twin2"][0]}


def test_pages_show_a_referenced_record_by_its_title_linked_and_only_to_who_may_read_it(app):
    found = _customers(app)
    with app.app_context():
        contact = records.get_resource("crm.contact")
        mine = records.create(contact, user("sales1"), {"name": "看得见客户的人", "customer_id": found["mine"][0]})
        # An administrator files a contact of sales1's under sales2's customer: sales1 may read the
        # contact, not the customer.
        other = records.create(contact, user("admin"), {"name": "看不见客户的人", "customer_id": found["theirs"][0],
                                                        "owner_id": user("sales1").id})
        db.session.commit()
        mine_id, other_id = mine.id, other.id
    client = login(app, "sales1")
    page = client.get("/crm/contacts").get_data(as_text=True)
    assert f'<a href="/crm/customers/{found["mine"][0]}">引用测试客户</a>' in page
    assert "别人的引用客户" not in page and f"#{found['theirs'][0]}" in page
    detail = client.get(f"/crm/contacts/{other_id}").get_data(as_text=True)
    assert "别人的引用客户" not in detail and f"#{found['theirs'][0]}" in detail
    assert "引用测试客户" in client.get(f"/crm/contacts/{mine_id}").get_data(as_text=True)

    with app.app_context():  # a title the reader may not see is not shown through a reference either
        role = next(r for r in user("sales1").roles if r.key == "sales_rep")
        set_field_rules(user("admin"), role.id, {("crm.customer", "name"): "masked"})
        db.session.commit()
    page = client.get("/crm/contacts").get_data(as_text=True)
    assert "引用测试客户" not in page and f"#{found['mine'][0]}" in page


def test_forms_take_a_reference_by_name_and_an_owner_from_a_list_of_people(app):
    found = _customers(app)
    client = login(app, "sales1")
    with app.app_context():
        sales1_id = user("sales1").id
    form = client.get("/crm/contacts/new").get_data(as_text=True)
    assert f'<option value="{sales1_id}" selected>张伟 (sales1)</option>' in form  # the creator owns a new record
    assert 'name="customer_id" type="text"' in form and 'list="dl-customer_id"' in form

    base = {"name": "表单联系人", "owner_id": str(sales1_id)}
    for typed, message in (("同名客户", "Several records are called"), ("别人的引用客户", "Nothing called"),
                           ("不存在的客户", "Nothing called")):
        with app.app_context(), force_locale("zh_CN"):
            expected = gettext("Several records are called “%(value)s”: give the code or the ID instead.", value=typed) \
                if message.startswith("Several") else gettext("Nothing called “%(value)s” was found.", value=typed)
        response = client.post("/crm/contacts/new", {**base, "customer_id": typed})
        page = response.get_data(as_text=True)
        assert response.status_code == 422 and expected in page and f'value="{typed}"' in page  # typed text kept
    response = client.post("/crm/contacts/new", {**base, "customer_id": "引用测试客户"})
    assert response.status_code == 302
    contact_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        assert db.session.get(Contact, contact_id).customer_id == found["mine"][0]
    edit = client.get(f"/crm/contacts/{contact_id}/edit").get_data(as_text=True)
    assert 'name="customer_id" type="text"' in edit and 'value="引用测试客户"' in edit
    response = client.post(f"/crm/contacts/{contact_id}/edit", {**base, "version": "1", "customer_id": found["twin1"][2]})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Contact, contact_id).customer_id == found["twin1"][0]


def test_a_reference_box_suggests_only_records_the_user_may_read(app):
    found = _customers(app)
    client = login(app, "sales1")
    options = client.get("/crm/customers/options/customer_id?customer_id=客户").get_data(as_text=True)
    assert '<option value="引用测试客户">' in options and f"#{found['mine'][0]}" in options
    assert options.count('<option value="同名客户">') == 2 and found["twin2"][2] in options  # told apart by code
    assert "别人的引用客户" not in options
    assert client.get("/crm/customers/options/customer_id").get_data(as_text=True).strip() == ""
    assert login(app, "sales2").get("/crm/customers/options/x?x=引用测试").get_data(as_text=True).strip() == ""


def test_a_records_page_lists_the_records_that_refer_to_it_and_what_waits_on_someone(app):
    from core import inbox

    found = _customers(app)
    mine = found["mine"][0]
    with app.app_context():
        contact = records.get_resource("crm.contact")
        for n in range(6):
            records.create(contact, user("sales1"), {"name": f"相关联系人{n}", "customer_id": mine})
        # sales2's contact on sales1's customer: outside sales1's contact scope, neither listed nor counted
        records.create(contact, user("admin"), {"name": "别人的相关联系人", "customer_id": mine, "owner_id": user("sales2").id})
        inbox.upsert("crm", f"test:{mine}", user("salesmgr"), "task", "核对客户资料", url=f"/crm/customers/{mine}",
                     subject_type="crm.customer", subject_id=mine)
        db.session.commit()
    client = login(app, "sales1")
    page = client.get(f"/crm/customers/{mine}").get_data(as_text=True)
    section = page.split('id="related-heading"', 1)[1]
    assert "相关联系人5" in section and "相关联系人0" not in section  # the newest five
    assert '<span class="badge text-bg-light border">6</span>' in section and "别人的相关联系人" not in section
    assert f'href="/crm/contacts?customer_id={mine}"' in section
    waiting = page.split('id="todos-heading"', 1)[1]
    assert "核对客户资料" in waiting and "李经理" in waiting

    listed = client.get(f"/crm/contacts?customer_id={mine}").get_data(as_text=True)
    assert "引用测试客户" in listed.split('<div class="table-responsive">')[0]  # the filter, by name
    assert f'<input type="hidden" name="customer_id" value="{mine}">' in listed  # kept by the filter form
    assert "相关联系人0" in listed and "别人的相关联系人" not in listed
    other = client.get(f"/crm/contacts?customer_id={found['theirs'][0]}").get_data(as_text=True)
    assert "别人的引用客户" not in other and f"#{found['theirs'][0]}" in other


def test_a_reference_is_never_matched_by_a_field_the_user_may_not_see(app):
    found = _customers(app)
    with app.app_context():
        role = next(r for r in user("sales1").roles if r.key == "sales_rep")
        set_field_rules(user("admin"), role.id, {("crm.customer", "credit_code"): "hidden"})
        db.session.commit()
    client = login(app, "sales1")
    base = {"name": "隐藏代码联系人", "owner_id": ""}
    by_code = client.post("/crm/contacts/new", {**base, "customer_id": found["mine"][2]})
    assert by_code.status_code == 422  # a hidden code cannot be confirmed by guessing it
    assert client.post("/crm/contacts/new", {**base, "customer_id": "引用测试客户"}).status_code == 302
    assert client.post("/crm/contacts/new", {**base, "customer_id": f"#{found['mine'][0]}"}).status_code == 302


def test_odd_text_in_a_reference_box_is_a_field_error_not_a_crash(app):
    _customers(app)
    client = login(app, "sales1")
    for typed in ("²", "9" * 5000, "客户\x00", "#", "#99999999999"):
        response = client.post("/crm/contacts/new", {"name": "奇怪输入", "customer_id": typed})
        assert response.status_code == 422, (typed[:20], response.status_code)
    rows = [["联系人姓名", "客户"], ["奇怪一", "²"], ["奇怪二", "9" * 5000]]
    import_id = preview_id(client.post("/crm/contacts/import", {"file": (io.BytesIO(csv_bytes(rows)), "c.csv")},
                                       content_type="multipart/form-data"))
    with app.app_context():
        assert db.session.get(Import, import_id).rejected == 2


def test_an_edit_keeps_a_reference_and_an_owner_it_did_not_touch(app):
    found = _customers(app)
    with app.app_context():
        contact = records.get_resource("crm.contact")
        hidden_customer = records.create(contact, user("admin"), {
            "name": "客户看不见的联系人", "customer_id": found["theirs"][0], "owner_id": user("sales1").id})
        of_sales2 = records.create(contact, user("admin"), {"name": "停用者的联系人", "owner_id": user("sales2").id,
                                                            "customer_id": found["theirs"][0]})
        user("sales2").active = False
        db.session.commit()
        ids = hidden_customer.id, of_sales2.id
        sales2_id = user("sales2").id

    def save(client, contact_id, **changes):
        form = client.get(f"/crm/contacts/{contact_id}/edit").get_data(as_text=True)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))
        selected = re.search(r'name="owner_id".*?<option value="(\d+)" selected', form, re.S)
        data = {k: html.unescape(v) for k, v in fields.items() if k != "csrf_token"}
        data["owner_id"] = selected.group(1) if selected else ""
        return client.post(f"/crm/contacts/{contact_id}/edit", {**data, **changes})

    rep = login(app, "sales1")
    assert f'value="#{found["theirs"][0]}"' in rep.get(f"/crm/contacts/{ids[0]}/edit").get_data(as_text=True)
    assert save(rep, ids[0], title="采购").status_code == 302  # the customer it may not read is kept, unread
    assert save(login(app, "admin"), ids[1], title="经理").status_code == 302  # the deactivated owner is offered
    with app.app_context():
        kept = {c.id: (c.customer_id, c.owner_id, c.title) for c in db.session.scalars(
            select(Contact).where(Contact.id.in_(ids)))}
    assert kept[ids[0]][0] == found["theirs"][0] and kept[ids[0]][2] == "采购"
    assert kept[ids[1]] == (found["theirs"][0], sales2_id, "经理")
