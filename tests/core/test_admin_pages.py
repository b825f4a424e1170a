"""Admin pages for users, departments and roles (server-rendered, in Chinese by default)."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from core.extensions import db
from core.org import services
from core.org.models import Department, User


@pytest.fixture
def admin(as_user):
    return as_user("admin")


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def user_row(app, username):
    with app.app_context():
        user = services.find_user(username)
        return user and {
            "id": user.id, "display_name": user.display_name, "department_id": user.department_id,
            "manager_id": user.manager_id, "active": user.active, "roles": user.role_keys,
            "version": user.version, "timezone": user.timezone, "password_hash": user.password_hash,
        }


def department(app, code=None, name=None):
    with app.app_context():
        where = Department.code == code if code else Department.name == name
        found = db.session.scalar(select(Department).where(where))
        return found and {"id": found.id, "name": found.name, "code": found.code, "parent_id": found.parent_id,
                          "path": found.path, "version": found.version, "sort": found.sort}


def listed_usernames(page_html: str) -> list[str]:
    return re.findall(r'href="/admin/users/\d+">([^<]+)</a>', page_html)


def field_value(page_html: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page_html)
    return match and html.unescape(match.group(1))


def field_error(page_html: str, name: str) -> bool:
    return re.search(rf'<input class="[^"]*is-invalid[^"]*" id="f-{name}"|<select class="[^"]*is-invalid[^"]*" id="f-{name}"',
                     page_html) is not None


# Access -----------------------------------------------------------------------------------------

ADMIN_PAGES = ["/admin/users", "/admin/users/new", "/admin/users/1", "/admin/departments",
               "/admin/departments/new", "/admin/departments/1", "/admin/roles"]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_non_admins_get_403_on_admin_pages(as_user, url):
    for username in ("sales1", "gm"):
        assert as_user(username).get(url).status_code == 403


@pytest.mark.parametrize("url,data", [("/admin/users/new", {"username": "intruder", "display_name": "x"}),
                                      ("/admin/departments/new", {"name": "黑部门"}),
                                      ("/admin/departments/1/delete", {})])
def test_non_admins_cannot_post_admin_forms(as_user, app, url, data):
    assert as_user("salesmgr").post(url, data).status_code == 403
    assert user_row(app, "intruder") is None
    assert department(app, name="黑部门") is None
    assert department(app, code="company") is not None


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_anonymous_visitors_are_sent_to_log_in(anonymous, url):
    response = anonymous.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert "next=" in response.headers["Location"]


# Users ------------------------------------------------------------------------------------------


def test_users_page_lists_every_user_in_chinese(admin):
    response = admin.get("/admin/users")
    assert response.status_code == 200
    page = text_of(response)
    assert sorted(listed_usernames(page)) == sorted(["admin", "gm", "salesmgr", "sales1", "sales2", "buyer1", "hr1",
                                                     "finance1", "legal1"])
    assert "<h1" in page and "用户" in page and "共 9 个用户" in page
    assert "张伟" in page and "华东区" in page and "销售代表" in page


def test_users_page_searches_by_username_and_name(admin):
    assert sorted(listed_usernames(text_of(admin.get("/admin/users?q=Sales")))) == ["sales1", "sales2", "salesmgr"]
    assert listed_usernames(text_of(admin.get("/admin/users?q=陈静"))) == ["sales2"]
    empty = text_of(admin.get("/admin/users?q=nobody-like-this"))
    assert listed_usernames(empty) == [] and "没有符合条件的用户。" in empty


def test_users_search_treats_wildcards_literally(admin):
    for term in ("_", "%", "s_les1"):
        page = text_of(admin.get("/admin/users", query_string={"q": term}))
        assert listed_usernames(page) == [], term


def test_users_page_filters_by_department(admin, app):
    sales = department(app, "sales-south")
    assert listed_usernames(text_of(admin.get(f"/admin/users?department_id={sales['id']}"))) == ["sales2"]


def test_users_search_with_htmx_returns_only_the_rows(admin):
    full = text_of(admin.get("/admin/users?q=sales1"))
    partial = text_of(admin.get("/admin/users?q=sales1", headers={"HX-Request": "true"}))
    assert "<html" in full and 'id="user-rows"' in full
    assert "<html" not in partial and 'id="user-rows"' not in partial and "<form" not in partial
    assert "<table" in partial and listed_usernames(partial) == ["sales1"]


@pytest.mark.parametrize("query", ["q=%00", "page=99999999999999999999", "page=abc", "department_id=99999999999999999999",
                                   "department_id=-1"])
def test_users_page_survives_garbage_query_strings(admin, query):
    assert admin.get(f"/admin/users?{query}").status_code == 200


def test_creating_a_user_through_the_form(admin, app):
    hr = department(app, "hr")
    manager = user_row(app, "hr1")
    response = admin.post("/admin/users/new", {
        "username": "wang.fang", "display_name": "王芳", "email": "wf@example.com", "mobile": "13800000000",
        "department_id": str(hr["id"]), "manager_id": str(manager["id"]), "language": "", "timezone": "Asia/Shanghai",
        "active": "on", "roles": ["hr", "employee"], "password": "Blue-Kettle-77",
    })
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/users")
    created = user_row(app, "wang.fang")
    assert created["display_name"] == "王芳"
    assert (created["department_id"], created["manager_id"]) == (hr["id"], manager["id"])
    assert created["roles"] == {"hr", "employee"} and created["active"] and created["password_hash"]
    assert "保存成功。" in text_of(admin.get("/admin/users"))


def test_new_user_form_offers_the_default_time_zone_and_every_role(admin):
    page = text_of(admin.get("/admin/users/new"))
    assert field_value(page, "timezone") == "Asia/Shanghai"
    assert len(re.findall(r'name="roles" value="', page)) == 9
    assert "系统管理员" in page and "普通员工" in page


def test_a_user_form_with_errors_re_renders_with_the_typed_values(admin, app):
    response = admin.post("/admin/users/new", {
        "username": "SALES1", "display_name": "冒名者", "email": "not-an-email", "timezone": "Mars/Base",
        "active": "on", "roles": ["sales_rep"], "password": "Blue-Kettle-77",
    })
    assert response.status_code == 200
    page = text_of(response)
    assert "请修正标红的字段。" in page
    assert field_value(page, "username") == "SALES1"
    assert field_value(page, "display_name") == "冒名者"
    assert field_value(page, "timezone") == "Mars/Base"
    assert field_error(page, "email") and field_error(page, "timezone")
    assert re.search(r'value="sales_rep" id="role-sales_rep" checked', page)
    assert not re.search(r'value="admin" id="role-admin" checked', page)
    assert field_value(page, "password") == ""  # never echoed back
    assert "Blue-Kettle-77" not in page
    with app.app_context():
        assert db.session.scalar(select(User).where(User.display_name == "冒名者")) is None


@pytest.mark.parametrize("data,field,message", [
    ({"username": "sales1", "display_name": "重复"}, "username", "该用户名已被占用。"),
    ({"username": "newbie", "display_name": ""}, "display_name", None),
    ({"username": "newbie", "display_name": "新人", "department_id": "abc"}, "department_id", "请输入有效的整数。"),
    ({"username": "newbie", "display_name": "新人", "department_id": "99999999999999999999"}, "department_id", "所选项不存在。"),
    ({"username": "newbie", "display_name": "新人", "timezone": "Mars/Base"}, "timezone", "请输入有效的时区，例如 Asia/Shanghai。"),
    ({"username": "newbie", "display_name": "坏\x00名字"}, "display_name", None),
    ({"username": "newbie", "display_name": "新人", "password": "123"}, "password", None),
])
def test_user_form_field_errors_are_shown_next_to_the_field(admin, app, data, field, message):
    response = admin.post("/admin/users/new", {"timezone": "Asia/Shanghai", "active": "on", **data})
    assert response.status_code == 200
    page = text_of(response)
    assert field_error(page, field), field
    if message:
        assert message in page
    assert user_row(app, "newbie") is None


def test_an_unknown_role_in_the_form_is_shown_as_a_roles_error(admin, app):
    response = admin.post("/admin/users/new", {"username": "newbie", "display_name": "新人", "timezone": "Asia/Shanghai",
                                               "roles": ["wizard"]})
    assert response.status_code == 200
    assert "wizard" in text_of(response)
    assert user_row(app, "newbie") is None


def test_editing_a_user_through_the_form(admin, app):
    before = user_row(app, "sales2")
    east = department(app, "sales-east")
    page = text_of(admin.get(f"/admin/users/{before['id']}"))
    assert field_value(page, "username") == "sales2" and field_value(page, "display_name") == "陈静"
    assert field_value(page, "version") == str(before["version"])
    response = admin.post(f"/admin/users/{before['id']}", {
        "username": "sales2", "display_name": "陈静静", "department_id": str(east["id"]),
        "manager_id": str(before["manager_id"]), "timezone": "Asia/Shanghai", "active": "on",
        "roles": ["sales_rep"], "version": str(before["version"]),
    })
    assert response.status_code == 302
    after = user_row(app, "sales2")
    assert after["display_name"] == "陈静静" and after["department_id"] == east["id"]
    assert after["roles"] == {"sales_rep"} and after["version"] == before["version"] + 1
    assert after["password_hash"] == before["password_hash"]  # an empty password field keeps the password


def test_unticking_active_deactivates_the_user(admin, app):
    before = user_row(app, "legal1")
    response = admin.post(f"/admin/users/{before['id']}", {
        "username": "legal1", "display_name": "周强", "timezone": "Asia/Shanghai", "roles": ["legal"],
        "version": str(before["version"]),
    })
    assert response.status_code == 302
    assert user_row(app, "legal1")["active"] is False


def test_editing_a_user_with_a_stale_version_changes_nothing(admin, app):
    before = user_row(app, "buyer1")
    admin.post(f"/admin/users/{before['id']}", {"username": "buyer1", "display_name": "刘洋洋",
                                                "timezone": "Asia/Shanghai", "active": "on", "roles": ["buyer"],
                                                "version": str(before["version"])})
    response = admin.post(f"/admin/users/{before['id']}", {"username": "buyer1", "display_name": "覆盖",
                                                           "timezone": "Asia/Shanghai", "active": "on",
                                                           "roles": ["buyer"], "version": str(before["version"])})
    assert response.status_code == 409
    assert user_row(app, "buyer1")["display_name"] == "刘洋洋"


def test_the_user_form_does_not_offer_a_user_as_their_own_manager(admin, app):
    gm = user_row(app, "gm")
    page = text_of(admin.get(f"/admin/users/{gm['id']}"))
    manager_select = re.search(r'<select[^>]*name="manager_id".*?</select>', page, re.S).group(0)
    assert f'value="{gm["id"]}"' not in manager_select
    assert "(salesmgr)" in manager_select


def test_an_admin_cannot_take_away_their_own_admin_role_in_the_form(admin, app):
    me = user_row(app, "admin")
    response = admin.post(f"/admin/users/{me['id']}", {"username": "admin", "display_name": "系统管理员",
                                                       "timezone": "Asia/Shanghai", "active": "on",
                                                       "roles": ["employee"], "version": str(me["version"])})
    assert response.status_code == 200
    assert "不能移除自己的系统管理员角色。" in text_of(response)
    assert user_row(app, "admin")["roles"] == {"admin"}


def test_an_admin_cannot_deactivate_themselves_in_the_form(admin, app):
    me = user_row(app, "admin")
    response = admin.post(f"/admin/users/{me['id']}", {"username": "admin", "display_name": "系统管理员",
                                                       "timezone": "Asia/Shanghai", "roles": ["admin"],
                                                       "version": str(me["version"])})
    assert response.status_code == 200
    assert "不能停用自己的账号。" in text_of(response)
    assert user_row(app, "admin")["active"] is True


@pytest.mark.parametrize("url", ["/admin/users/999999", "/admin/users/99999999999999999999",
                                 "/admin/departments/999999", "/admin/departments/99999999999999999999"])
def test_unknown_ids_are_404_pages(admin, url):
    assert admin.get(url).status_code == 404


# Departments ------------------------------------------------------------------------------------


def test_departments_page_lists_the_tree_indented(admin):
    response = admin.get("/admin/departments")
    assert response.status_code == 200
    page = text_of(response)
    assert "组织架构" in page
    rows = re.findall(r'<li class="[^"]*depth-(\d)[^"]*">(.*?)</li>', page, re.S)
    tree = [(re.search(r'class="fw-semibold">([^<]+)</a>', row).group(1), int(depth)) for depth, row in rows]
    # Parents before children; siblings by sort order, then name.
    assert tree == [("一体示例科技有限公司", 0), ("人事部", 1), ("总经办", 1), ("法务部", 1), ("财务部", 1),
                    ("采购部", 1), ("销售部", 1), ("华东区", 2), ("华南区", 2)]
    sales_row = dict((name, row) for (name, _depth), (_d, row) in zip(tree, rows))["销售部"]
    assert "负责人: 李经理" in " ".join(sales_row.split()) and "1 人" in sales_row


def test_creating_a_department_through_the_form(admin, app):
    east = department(app, "sales-east")
    new_form = text_of(admin.get(f"/admin/departments/new?parent_id={east['id']}"))
    assert re.search(rf'<option value="{east["id"]}" selected>', new_form)
    response = admin.post("/admin/departments/new", {"name": "上海组", "code": "sh", "parent_id": str(east["id"]),
                                                     "head_id": "", "sort": ""})
    assert response.status_code == 302
    created = department(app, "sh")
    assert created["parent_id"] == east["id"] and created["path"] == f"{east['path']}{created['id']}/"
    assert created["sort"] == 0
    tree = text_of(admin.get("/admin/departments"))
    assert "上海组" in tree and "保存成功。" in tree
    assert re.search(r'depth-3[^"]*">\s*<span>\s*<a [^>]*>上海组</a>', tree)


def test_a_department_form_with_errors_re_renders_with_the_typed_values(admin, app):
    response = admin.post("/admin/departments/new", {"name": "重复编码部", "code": "sales", "parent_id": "", "sort": "7"})
    assert response.status_code == 200
    page = text_of(response)
    assert field_error(page, "code") and "该编码已被使用。" in page
    assert field_value(page, "name") == "重复编码部" and field_value(page, "sort") == "7"
    assert department(app, name="重复编码部") is None


@pytest.mark.parametrize("data,field", [({"name": ""}, "name"), ({"name": "x", "sort": "abc"}, "sort"),
                                        ({"name": "x", "sort": "99999999999999999999"}, "sort"),
                                        ({"name": "x", "parent_id": "99999999999999999999"}, "parent_id"),
                                        ({"name": "x", "head_id": "nobody"}, "head_id")])
def test_department_form_field_errors_are_200_not_500(admin, app, data, field):
    response = admin.post("/admin/departments/new", data)
    assert response.status_code == 200
    assert field_error(text_of(response), field)
    with app.app_context():
        assert len(db.session.scalars(select(Department)).all()) == 9


def test_editing_and_moving_a_department_through_the_form(admin, app):
    east, gmo = department(app, "sales-east"), department(app, "gmo")
    child = create_child_department(app, east["id"])
    page = text_of(admin.get(f"/admin/departments/{east['id']}"))
    assert field_value(page, "name") == "华东区"
    response = admin.post(f"/admin/departments/{east['id']}", {
        "name": "华东大区", "code": "sales-east", "parent_id": str(gmo["id"]), "head_id": "", "sort": "0",
        "version": str(east["version"]),
    })
    assert response.status_code == 302
    moved = department(app, "sales-east")
    assert moved["name"] == "华东大区" and moved["parent_id"] == gmo["id"]
    assert moved["path"] == f"{gmo['path']}{east['id']}/"
    assert department(app, child)["path"] == f"{gmo['path']}{east['id']}/{department(app, child)['id']}/"


def create_child_department(app, parent_id) -> str:
    with app.app_context():
        services.create_department(None, {"name": "上海组", "code": "sh", "parent_id": parent_id})
        db.session.commit()
    return "sh"


def test_the_department_form_does_not_offer_its_own_subtree_as_parent(admin, app):
    sales, east, gmo = department(app, "sales"), department(app, "sales-east"), department(app, "gmo")
    page = text_of(admin.get(f"/admin/departments/{sales['id']}"))
    parent_select = re.search(r'<select[^>]*name="parent_id".*?</select>', page, re.S).group(0)
    assert f'value="{sales["id"]}"' not in parent_select and f'value="{east["id"]}"' not in parent_select
    assert f'value="{gmo["id"]}"' in parent_select


def test_moving_a_department_under_its_child_through_the_form_is_a_field_error(admin, app):
    sales, east = department(app, "sales"), department(app, "sales-east")
    response = admin.post(f"/admin/departments/{sales['id']}", {"name": "销售部", "code": "sales",
                                                                "parent_id": str(east["id"]),
                                                                "version": str(sales["version"])})
    assert response.status_code == 200
    page = text_of(response)
    assert field_error(page, "parent_id")
    assert "不能将部门移到其自身或其下级部门之下。" in page
    assert department(app, "sales")["path"] == sales["path"]


def test_deleting_an_empty_department_through_the_form(admin, app):
    with app.app_context():
        empty = services.create_department(None, {"name": "临时组"})
        db.session.commit()
        empty_id = empty.id
    response = admin.post(f"/admin/departments/{empty_id}/delete")
    assert response.status_code == 302
    assert department(app, name="临时组") is None
    assert "删除成功。" in text_of(admin.get("/admin/departments"))


@pytest.mark.parametrize("code", ["sales", "finance"])
def test_deleting_a_department_with_children_or_members_is_refused_with_a_message(admin, app, code):
    target = department(app, code)
    response = admin.post(f"/admin/departments/{target['id']}/delete")
    assert response.status_code == 302
    assert department(app, code) is not None
    assert "请先将该部门的下级部门和成员移至其他部门，再删除该部门。" in text_of(admin.get("/admin/departments"))


def test_deleting_an_unknown_department_is_404(admin):
    assert admin.post("/admin/departments/999999/delete").status_code == 404


# Roles ------------------------------------------------------------------------------------------


def test_roles_page_lists_the_nine_built_in_roles_in_chinese(admin):
    response = admin.get("/admin/roles")
    assert response.status_code == 200
    page = text_of(response)
    rows = re.findall(r"<tr><td><a [^>]*>([^<]+)</a></td><td><code>([^<]+)</code></td><td>(\d+)</td>", page)
    assert [name for name, _key, _people in rows] == ["系统管理员", "总经理", "销售经理", "销售代表", "采购", "人事",
                                                      "财务", "法务", "普通员工"]
    people = {key: int(count) for _name, key, count in rows}
    assert people["admin"] == 1 and people["sales_rep"] == 2 and people["employee"] == 8


def test_roles_page_follows_the_english_session_language(admin):
    admin.post("/lang/en")
    page = text_of(admin.get("/admin/roles"))
    names = re.findall(r"<tr><td><a [^>]*>([^<]+)</a></td><td><code>", page)
    assert names[:4] == ["System administrator", "General manager", "Sales manager", "Sales representative"]
    assert names[-1] == "Employee"
