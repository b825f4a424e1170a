"""The portal pages every resource gets, through the sample ``notes.note`` resource."""
from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from core.audit.models import AuditEntry
from core.extensions import db
from core.org.models import Role, User

from tests.core.conftest import login

LIST = "/notes/notes"




def add_note(client, title, body=""):
    response = client.api("post", "/api/v1/notes/notes", json={"title": title, "body": body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def text(response) -> str:
    return response.get_data(as_text=True)


def test_list_shows_only_records_in_scope_with_owner_names(company):
    rep, other = login(company, "sales1"), login(company, "sales2")
    add_note(rep, "华东拜访计划")
    add_note(other, "华南拜访计划")
    page = text(rep.get(LIST))
    assert "华东拜访计划" in page and "华南拜访计划" not in page
    assert "张伟" in page  # the owner's name, not an id


def test_list_searches_filters_sorts_and_pages(company):
    rep = login(company, "sales1")
    for n in range(25):
        add_note(rep, f"周报 {n:02d}", body="回款" if n % 2 else "")
    first = text(rep.get(f"{LIST}?sort=title"))
    assert first.index("周报 00") < first.index("周报 01")
    assert "周报 24" not in first  # page size 20
    second = text(rep.get(f"{LIST}?sort=title&page=2"))
    assert "周报 24" in second and "周报 00" not in second
    searched = text(rep.get(f"{LIST}?q=回款"))
    assert "周报 01" in searched and "周报 02" not in searched
    filtered = text(rep.get(f"{LIST}?title__contains=周报 1"))
    assert "周报 10" in filtered and "周报 20" not in filtered
    bad = rep.get(f"{LIST}?sort=password")
    assert bad.status_code == 422
    for query in ("updated_at__gte=2026%2F12%2F7", "page=abc"):
        refused = rep.get(f"{LIST}?{query}")
        page = text(refused)
        # The list itself, its form kept, with what to correct: not a bare error page.
        assert refused.status_code == 422 and 'role="search"' in page and "请修正标红的字段" in page
        assert 'class="alert alert-danger"' in page and "周报 00" not in page


def test_the_filter_form_sent_with_blank_boxes_filters_nothing_and_a_day_bound_covers_the_day(company):
    from core import clock

    # 17:30 UTC is already tomorrow in Asia/Shanghai: the day a user types is their own day.
    clock.set_now(datetime(2026, 12, 7, 17, 30, tzinfo=UTC))
    rep = login(company, "sales1")
    add_note(rep, "今天的记录")
    blank = text(rep.get(f"{LIST}?q=&title__contains=&updated_at__gte=&updated_at__lte="))
    assert "今天的记录" in blank  # blank boxes are no filter, not "is empty"
    form = text(rep.get(LIST))
    assert 'name="updated_at__gte" value="" type="date"' in form or 'type="date" id="flt-updated_at-gte"' in form
    assert "今天的记录" in text(rep.get(f"{LIST}?updated_at__gte=2026-12-08&updated_at__lte=2026-12-08"))
    assert "今天的记录" not in text(rep.get(f"{LIST}?updated_at__gte=2026-12-07&updated_at__lte=2026-12-07"))
    assert "今天的记录" not in text(rep.get(f"{LIST}?updated_at__lte=2000-01-01"))


def test_a_page_past_the_last_says_so_and_links_back_to_the_first(company):
    rep = login(company, "sales1")
    add_note(rep, "唯一便签")
    past = text(rep.get(f"{LIST}?page=99&q=唯一"))
    assert "已超出最后一页" in past and "暂无数据" not in past
    assert re.search(r'<a href="/notes/notes\?q=%E5%94%AF%E4%B8%80&(amp;)?page=1">返回第一页</a>', past), past
    assert "暂无数据" in text(rep.get(f"{LIST}?q=没有这个"))


def test_the_columns_offered_leave_out_the_version_and_the_custom_fields(company):
    page = text(login(company, "sales1").get("/crm/customers"))
    offered = re.findall(r'name="columns" value="([^"]+)"', page)
    assert "name" in offered and "owner_id" in offered
    assert "version" not in offered and "custom" not in offered


def test_chosen_columns_are_remembered_per_user(company):
    rep = login(company, "sales1")
    add_note(rep, "列设置")
    rep.get(f"{LIST}?columns=title&columns=body")
    page = text(rep.get(LIST))
    headers = re.findall(r'<th scope="col">(?:<a [^>]*>)?([^<]+)', page)
    assert [h.strip() for h in headers] == ["标题", "内容"]
    other = text(login(company, "sales2").get(LIST))
    assert "更新时间" in other  # the other user keeps the default columns


def test_detail_shows_fields_and_history_with_masked_values(company):
    rep = login(company, "sales1")
    note = add_note(rep, "13800138000", "客户电话")
    rep.api("patch", f"/api/v1/notes/notes/{note['id']}", json={"title": "13900139000", "version": 1})
    detail = text(rep.get(f"{LIST}/{note['id']}"))
    assert "13900139000" in detail and "客户电话" in detail
    history = text(rep.get(f"{LIST}/{note['id']}?tab=history"))
    assert "13800138000" in history and "13900139000" in history
    # A reader whose role masks the title sees it masked on the page and in the history.
    with company.app_context():
        from core.permissions.services import set_field_rules, set_grants

        admin = db.session.scalar(select(User).where(User.username == "admin"))
        role = Role(key="peek", name="查看")
        db.session.add(role)
        db.session.flush()
        set_grants(admin, role.id, {"notes.note.read": "all"})
        set_field_rules(admin, role.id, {("notes.note", "title"): "masked"})
        legal = db.session.scalar(select(User).where(User.username == "legal1"))
        legal.roles = [role]
        db.session.commit()
    reader = login(company, "legal1")
    for url in (f"{LIST}/{note['id']}", f"{LIST}/{note['id']}?tab=history", LIST):
        body = text(reader.get(url))
        assert "13900139000" not in body and "13800138000" not in body, url
    assert "139****9000" in text(reader.get(f"{LIST}/{note['id']}"))


def test_form_errors_come_back_per_field_in_chinese_and_nothing_is_written(company):
    rep = login(company, "sales1")
    response = rep.post(f"{LIST}/new", {"title": "", "body": "x"})
    assert response.status_code == 422
    page = text(response)
    assert 'is-invalid" id="f-title"' in page
    assert "长度应为 1 至 200 个字符。" in page
    assert "x</textarea>" in page  # what the user typed is kept
    with company.app_context():
        from yiti_notes.models import Note

        assert db.session.scalar(select(Note).where(Note.body == "x")) is None


def test_create_edit_and_delete_through_the_pages(company):
    rep = login(company, "sales1")
    created = rep.post(f"{LIST}/new", {"title": "新建便签", "body": "内容"})
    assert created.status_code == 302
    url = created.headers["Location"]
    record_id = int(url.rstrip("/").rsplit("/", 1)[1])
    edit_page = text(rep.get(f"{url}/edit"))
    assert 'name="version" value="1"' in edit_page
    assert rep.post(f"{url}/edit", {"title": "改名", "body": "内容", "version": "1"}).status_code == 302
    assert "改名" in text(rep.get(url))
    assert rep.post(f"{url}/delete", {"version": "2"}).status_code == 302
    assert rep.get(url).status_code == 404
    with company.app_context():
        actions = db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.resource == "notes.note", AuditEntry.record_id == record_id).order_by(AuditEntry.id)).all()
    assert actions == ["create", "update", "delete"]


def test_stale_form_is_a_409_that_keeps_the_typing_and_offers_a_reload(company):
    rep, manager = login(company, "sales1"), login(company, "admin")
    note = add_note(rep, "原标题")
    url = f"{LIST}/{note['id']}"
    assert manager.post(f"{url}/edit", {"title": "管理员改的", "version": "1"}).status_code == 302
    stale = rep.post(f"{url}/edit", {"title": "我改的", "body": "", "version": "1"})
    assert stale.status_code == 409
    page = text(stale)
    assert "admin" in page and "重新加载" in page
    assert 'value="我改的"' in page
    assert "管理员改的" in text(rep.get(url))


def test_records_out_of_scope_are_not_found_on_every_page(company):
    rep, other = login(company, "sales1"), login(company, "sales2")
    note = add_note(other, "别人的")
    url = f"{LIST}/{note['id']}"
    assert rep.get(url).status_code == 404
    assert rep.get(f"{url}/edit").status_code == 404
    assert rep.post(f"{url}/edit", {"title": "偷改", "version": "1"}).status_code == 404
    assert rep.post(f"{url}/delete", {"version": "1"}).status_code == 404
    assert "别人的" in text(other.get(url))


def test_buttons_follow_permissions(company):
    rep = login(company, "sales1")
    note = add_note(rep, "按钮")
    page = text(rep.get(f"{LIST}/{note['id']}"))
    assert "/edit" in page and "/delete" in page
    gm = login(company, "gm")  # the gm template reads and exports everything, edits nothing
    page = text(gm.get(f"{LIST}/{note['id']}"))
    assert "/edit" not in page and "/delete" not in page
    with company.app_context():
        db.session.scalar(select(User).where(User.username == "legal1")).roles = []
        db.session.commit()
    nobody = login(company, "legal1")
    assert nobody.get(LIST).status_code == 403
    assert nobody.get(f"{LIST}/new").status_code == 403
