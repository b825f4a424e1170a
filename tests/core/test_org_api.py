"""The organisation's JSON API: ``/api/v1/core/users``, ``/departments`` and ``/roles``."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.extensions import db
from core.org.models import Department, User

API = "/api/v1/core"
ENVELOPE = {"items", "total", "page", "per_page"}


@pytest.fixture
def admin(as_user):
    return as_user("admin")


@pytest.fixture
def ids(app):
    """Demo ids by username and by department code."""
    with app.app_context():
        users = dict(db.session.execute(select(User.username, User.id)).all())
        departments = dict(db.session.execute(select(Department.code, Department.id)).all())
    return {**users, **{f"dept:{code}": id_ for code, id_ in departments.items()}}


def in_db(app, model, object_id):
    with app.app_context():
        obj = db.session.get(model, object_id)
        return obj and {c.name: getattr(obj, c.name) for c in model.__table__.columns}


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in error["fields"], error
    return error


# Lists ------------------------------------------------------------------------------------------


def test_user_list_is_an_envelope_with_every_demo_user(admin):
    body = admin.api("get", f"{API}/users").get_json()
    assert set(body) == ENVELOPE
    assert body["total"] == 9
    assert (body["page"], body["per_page"]) == (1, 20)
    assert {u["username"] for u in body["items"]} == {"admin", "gm", "salesmgr", "sales1", "sales2", "buyer1",
                                                      "hr1", "finance1", "legal1"}


def test_user_list_is_paginated(admin):
    first = admin.api("get", f"{API}/users?per_page=4").get_json()
    third = admin.api("get", f"{API}/users?per_page=4&page=3").get_json()
    past = admin.api("get", f"{API}/users?per_page=4&page=99").get_json()
    assert (first["total"], first["per_page"], len(first["items"])) == (9, 4, 4)
    assert (third["page"], len(third["items"])) == (3, 1)
    assert (past["total"], past["items"]) == (9, [])
    pages = [admin.api("get", f"{API}/users?per_page=4&page={n}").get_json()["items"] for n in (1, 2, 3)]
    usernames = [u["username"] for page in pages for u in page]
    assert len(usernames) == len(set(usernames)) == 9


def test_per_page_is_clamped_and_page_starts_at_one(admin):
    body = admin.api("get", f"{API}/users?per_page=100000&page=-3").get_json()
    assert (body["page"], body["per_page"], len(body["items"])) == (1, 200, 9)


def test_user_list_searches_username_and_display_name(admin):
    by_name = admin.api("get", f"{API}/users?q=SALES").get_json()
    assert {u["username"] for u in by_name["items"]} == {"salesmgr", "sales1", "sales2"}
    assert by_name["total"] == 3
    by_display_name = admin.api("get", f"{API}/users?q=李经理").get_json()
    assert [u["username"] for u in by_display_name["items"]] == ["salesmgr"]
    # Wildcards are literal characters, not patterns.
    assert admin.api("get", f"{API}/users?q=_").get_json()["total"] == 0
    assert admin.api("get", f"{API}/users?q=%25").get_json()["total"] == 0


def test_user_list_filters_by_department_and_active(admin, ids, app):
    east = admin.api("get", f"{API}/users?department_id={ids['dept:sales-east']}").get_json()
    assert [u["username"] for u in east["items"]] == ["sales1"]
    admin.api("patch", f"{API}/users/{ids['sales2']}", json={"active": False})
    inactive = admin.api("get", f"{API}/users?active=false").get_json()
    active = admin.api("get", f"{API}/users?active=true").get_json()
    assert [u["username"] for u in inactive["items"]] == ["sales2"]
    assert active["total"] == 8


def test_department_list_is_ordered_by_path_and_filters_by_parent(admin, ids):
    body = admin.api("get", f"{API}/departments?per_page=50").get_json()
    assert set(body) == ENVELOPE and body["total"] == 9
    paths = [d["path"] for d in body["items"]]
    assert paths == sorted(paths)
    children = admin.api("get", f"{API}/departments?parent_id={ids['dept:sales']}").get_json()
    assert {d["code"] for d in children["items"]} == {"sales-east", "sales-south"}


def test_role_list_has_the_nine_built_in_roles(admin):
    body = admin.api("get", f"{API}/roles").get_json()
    assert set(body) == ENVELOPE and body["total"] == 9
    keys = [r["key"] for r in body["items"]]
    assert keys == ["admin", "gm", "sales_manager", "sales_rep", "buyer", "hr", "finance", "legal", "employee"]
    assert body["items"][0]["name"] == "系统管理员" and body["items"][0]["builtin"] is True


def test_any_logged_in_user_may_read_the_directory(as_user, ids):
    sales1 = as_user("sales1")
    assert sales1.api("get", f"{API}/users").status_code == 200
    assert sales1.api("get", f"{API}/departments").status_code == 200
    assert sales1.api("get", f"{API}/users/{ids['gm']}").get_json()["username"] == "gm"


# One record -------------------------------------------------------------------------------------


def test_get_one_user_and_one_department(admin, ids):
    user = admin.api("get", f"{API}/users/{ids['sales1']}").get_json()
    assert user["username"] == "sales1"
    assert user["display_name"] == "张伟"
    assert user["department_id"] == ids["dept:sales-east"]
    assert user["manager_id"] == ids["salesmgr"]
    assert user["roles"] == ["employee", "sales_rep"]
    assert user["timezone"] == "Asia/Shanghai"
    department = admin.api("get", f"{API}/departments/{ids['dept:sales']}").get_json()
    assert department["code"] == "sales"
    assert department["path"] == f"/{ids['dept:company']}/{ids['dept:sales']}/"


@pytest.mark.parametrize("url", [f"{API}/users/999999", f"{API}/departments/999999",
                                 f"{API}/users/99999999999999999999", f"{API}/departments/99999999999999999999"])
def test_an_unknown_id_is_404(admin, url):
    assert_error(admin.api("get", url), 404, "not_found")


def test_patching_or_deleting_an_unknown_id_is_404(admin):
    assert_error(admin.api("patch", f"{API}/users/999999", json={"display_name": "x"}), 404, "not_found")
    assert_error(admin.api("patch", f"{API}/departments/999999", json={"name": "x"}), 404, "not_found")
    assert_error(admin.api("delete", f"{API}/departments/999999"), 404, "not_found")
    assert_error(admin.api("delete", f"{API}/departments/99999999999999999999"), 404, "not_found")


def test_the_api_never_returns_password_hashes(admin, ids):
    responses = [
        admin.api("get", f"{API}/users?per_page=200"),
        admin.api("get", f"{API}/users/{ids['admin']}"),
        admin.api("post", f"{API}/users", json={"username": "newbie", "display_name": "新人", "password": "Blue-Kettle-77"}),
        admin.api("patch", f"{API}/users/{ids['sales1']}", json={"password": "Blue-Kettle-77"}),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        text = response.get_data(as_text=True)
        assert "password" not in text and "scrypt" not in text and "Blue-Kettle" not in text
        assert "session_epoch" not in text


# Create and update ------------------------------------------------------------------------------


def test_creating_a_user_answers_201_with_the_user(admin, ids, app):
    response = admin.api("post", f"{API}/users", json={
        "username": "wang.fang", "display_name": "王芳", "email": "wf@example.com",
        "department_id": ids["dept:hr"], "manager_id": ids["hr1"], "roles": ["hr", "employee"],
        "password": "Blue-Kettle-77",
    })
    assert response.status_code == 201
    body = response.get_json()
    assert body["username"] == "wang.fang" and body["roles"] == ["employee", "hr"] and body["version"] == 1
    stored = in_db(app, User, body["id"])
    assert stored["department_id"] == ids["dept:hr"] and stored["password_hash"]


def test_creating_a_department_answers_201_under_its_parent(admin, ids, app):
    response = admin.api("post", f"{API}/departments", json={"name": "上海组", "code": "sh",
                                                             "parent_id": ids["dept:sales-east"]})
    assert response.status_code == 201
    body = response.get_json()
    east = admin.api("get", f"{API}/departments/{ids['dept:sales-east']}").get_json()
    assert body["path"] == f"{east['path']}{body['id']}/"
    assert in_db(app, Department, body["id"])["name"] == "上海组"


def test_patch_with_if_match_updates_and_bumps_the_version(admin, ids, app):
    current = admin.api("get", f"{API}/users/{ids['sales1']}").get_json()
    response = admin.api("patch", f"{API}/users/{ids['sales1']}", json={"display_name": "张大伟"},
                         headers={"If-Match": f'"{current["version"]}"'})
    assert response.status_code == 200
    assert response.get_json()["display_name"] == "张大伟"
    assert response.get_json()["version"] == current["version"] + 1
    assert in_db(app, User, ids["sales1"])["display_name"] == "张大伟"


def test_patch_with_a_version_field_updates(admin, ids, app):
    current = admin.api("get", f"{API}/departments/{ids['dept:legal']}").get_json()
    response = admin.api("patch", f"{API}/departments/{ids['dept:legal']}",
                         json={"name": "法务合规部", "version": current["version"]})
    assert response.status_code == 200
    assert response.get_json()["version"] == current["version"] + 1
    assert in_db(app, Department, ids["dept:legal"])["name"] == "法务合规部"


@pytest.mark.parametrize("how", ["if-match", "body"])
def test_a_stale_version_is_409_and_changes_nothing(admin, ids, app, how):
    url = f"{API}/users/{ids['sales2']}"
    stale = admin.api("get", url).get_json()["version"]
    assert admin.api("patch", url, json={"display_name": "第一次", "version": stale}).status_code == 200
    body, headers = ({"display_name": "第二次"}, {"If-Match": str(stale)}) if how == "if-match" else \
        ({"display_name": "第二次", "version": stale}, None)
    error = assert_error(admin.api("patch", url, json=body, headers=headers), 409, "conflict")
    assert error["current_version"] == stale + 1
    stored = in_db(app, User, ids["sales2"])
    assert (stored["display_name"], stored["version"]) == ("第一次", stale + 1)


def test_a_stale_department_move_is_409_and_moves_nothing(admin, ids, app):
    url = f"{API}/departments/{ids['dept:sales-east']}"
    before = admin.api("get", url).get_json()
    admin.api("patch", url, json={"name": "华东大区"})
    response = admin.api("patch", url, json={"parent_id": ids["dept:gmo"]}, headers={"If-Match": str(before["version"])})
    assert_error(response, 409, "conflict")
    assert in_db(app, Department, ids["dept:sales-east"])["path"] == before["path"]


def test_moving_a_department_through_the_api_rewrites_child_paths(admin, ids):
    child = admin.api("post", f"{API}/departments", json={"name": "上海组", "parent_id": ids["dept:sales-east"]}).get_json()
    response = admin.api("patch", f"{API}/departments/{ids['dept:sales-east']}", json={"parent_id": ids["dept:gmo"]})
    assert response.status_code == 200
    gmo = admin.api("get", f"{API}/departments/{ids['dept:gmo']}").get_json()
    moved = admin.api("get", f"{API}/departments/{child['id']}").get_json()
    assert moved["path"] == f"{gmo['path']}{ids['dept:sales-east']}/{child['id']}/"


def test_moving_a_department_under_its_child_is_422_on_parent_id(admin, ids):
    response = admin.api("patch", f"{API}/departments/{ids['dept:sales']}", json={"parent_id": ids["dept:sales-east"]})
    assert_error(response, 422, "validation_error", "parent_id")


def test_deleting_departments(admin, ids, app):
    assert_error(admin.api("delete", f"{API}/departments/{ids['dept:sales']}"), 422, "business_rule")
    assert_error(admin.api("delete", f"{API}/departments/{ids['dept:legal']}"), 422, "business_rule")
    empty = admin.api("post", f"{API}/departments", json={"name": "临时"}).get_json()
    response = admin.api("delete", f"{API}/departments/{empty['id']}")
    assert response.status_code == 204
    assert in_db(app, Department, empty["id"]) is None
    assert in_db(app, Department, ids["dept:sales"]) is not None


def test_removing_ones_own_admin_role_is_refused(admin, ids, app):
    response = admin.api("patch", f"{API}/users/{ids['admin']}", json={"roles": ["employee"]})
    assert_error(response, 422, "business_rule")
    assert_error(admin.api("patch", f"{API}/users/{ids['admin']}", json={"active": False}), 422, "business_rule")
    assert admin.api("get", f"{API}/users/{ids['admin']}").get_json()["roles"] == ["admin"]


# Bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [("session_epoch", 5), ("password_hash", "scrypt:fake"), ("id", 1),
                                         ("is_admin", True), ("last_login_at", "2020-01-01T00:00:00")])
def test_unknown_fields_are_refused_not_written(admin, ids, app, field, value):
    before = in_db(app, User, ids["sales1"])
    response = admin.api("patch", f"{API}/users/{ids['sales1']}", json={"display_name": "张伟", field: value})
    assert_error(response, 422, "validation_error", field)
    assert in_db(app, User, ids["sales1"]) == before
    response = admin.api("post", f"{API}/users", json={"username": "newbie", "display_name": "新人", field: value})
    assert_error(response, 422, "validation_error", field)


def test_path_is_not_writable(admin, ids, app):
    response = admin.api("patch", f"{API}/departments/{ids['dept:hr']}", json={"path": "/1/"})
    assert_error(response, 422, "validation_error", "path")
    assert in_db(app, Department, ids["dept:hr"])["path"] != "/1/"


@pytest.mark.parametrize("body,field", [
    ({"display_name": "新人"}, "username"),
    ({"username": None, "display_name": "新人"}, "username"),
    ({"username": "newbie"}, "display_name"),
    ({"username": "newbie", "display_name": ""}, "display_name"),
    ({"username": "x" * 100_000, "display_name": "新人"}, "username"),
    ({"username": "newbie", "display_name": "长" * 100_000}, "display_name"),
    ({"username": "has space", "display_name": "新人"}, "username"),
    ({"username": {"nested": "object"}, "display_name": "新人"}, "username"),
    ({"username": ["newbie"], "display_name": "新人"}, "username"),
    ({"username": "newbie", "display_name": "新人", "department_id": "abc"}, "department_id"),
    ({"username": "newbie", "display_name": "新人", "department_id": {"id": 1}}, "department_id"),
    ({"username": "newbie", "display_name": "新人", "department_id": 99999999999999999999}, "department_id"),
    ({"username": "newbie", "display_name": "新人", "manager_id": 3000000000}, "manager_id"),
    ({"username": "newbie", "display_name": "新人", "manager_id": -1}, "manager_id"),
    ({"username": "newbie", "display_name": "新人", "roles": "admin"}, "roles"),
    ({"username": "newbie", "display_name": "新人", "roles": [{"key": "admin"}]}, "roles"),
    ({"username": "newbie", "display_name": "新人", "roles": ["admin\x00"]}, "roles"),
    ({"username": "newbie", "display_name": "新人", "roles": None}, "roles"),
    ({"username": "newbie", "display_name": "新人", "active": "perhaps"}, "active"),
    ({"username": "newbie", "display_name": "新人", "email": "not-an-email"}, "email"),
    ({"username": "newbie", "display_name": "新人", "email": "a" * 300 + "@example.com"}, "email"),
    ({"username": "newbie", "display_name": "新人", "mobile": "call me"}, "mobile"),
    ({"username": "newbie", "display_name": "新人", "language": "klingon"}, "language"),
    ({"username": "newbie", "display_name": "新人", "timezone": "Mars/Base"}, "timezone"),
    ({"username": "newbie", "display_name": "新人", "timezone": None}, "timezone"),
    ({"username": "newbie", "display_name": "坏\x00名字"}, "display_name"),
    ({"username": "newbie", "display_name": "新人", "password": "short"}, "password"),
    ({"username": "newbie", "display_name": "新人", "version": "abc"}, "version"),
])
def test_bad_user_input_is_422_naming_the_field(admin, app, body, field):
    assert_error(admin.api("post", f"{API}/users", json=body), 422, "validation_error", field)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "newbie")) is None


@pytest.mark.parametrize("body,field", [
    ({"code": "x"}, "name"),
    ({"name": None}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "新部门", "code": "sales"}, "code"),
    ({"name": "新部门", "code": "c" * 10_000}, "code"),
    ({"name": "新部门", "parent_id": "root"}, "parent_id"),
    ({"name": "新部门", "parent_id": 999999}, "parent_id"),
    ({"name": "新部门", "parent_id": 99999999999999999999}, "parent_id"),
    ({"name": "新部门", "head_id": 99999999999999999999}, "head_id"),
    ({"name": "新部门", "head_id": [1]}, "head_id"),
    ({"name": "新部门", "sort": 3000000000}, "sort"),
    ({"name": "新部门", "sort": 10 ** 30}, "sort"),
    ({"name": "新部门", "sort": None}, "sort"),
    ({"name": "新\x00部门"}, "name"),
    ({"name": {"zh": "新部门"}}, "name"),
])
def test_bad_department_input_is_422_naming_the_field(admin, app, body, field):
    assert_error(admin.api("post", f"{API}/departments", json=body), 422, "validation_error", field)
    with app.app_context():
        assert len(db.session.scalars(select(Department)).all()) == 9


@pytest.mark.parametrize("headers", [{"If-Match": "abc"}, {"If-Match": "\u00b2"}, {"If-Match": "-1"}])
def test_a_malformed_if_match_is_422_on_version(admin, ids, headers):
    response = admin.api("patch", f"{API}/users/{ids['sales1']}", json={"display_name": "x"}, headers=headers)
    assert_error(response, 422, "validation_error", "version")


@pytest.mark.parametrize("data,content_type", [
    ("not json at all", "application/json"),
    ('["a", "list"]', "application/json"),
    ('"a string"', "application/json"),
    ("null", "application/json"),
    ("username=newbie", "application/x-www-form-urlencoded"),
    ("", "text/plain"),
])
def test_a_body_that_is_not_a_json_object_is_400(admin, ids, data, content_type):
    token = admin.token()
    for method, url in (("POST", f"{API}/users"), ("PATCH", f"{API}/users/{ids['sales1']}"),
                        ("POST", f"{API}/departments"), ("PATCH", f"{API}/departments/{ids['dept:hr']}")):
        response = admin.http.open(url, method=method, data=data, content_type=content_type,
                                   headers={"X-CSRFToken": token})
        assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("query", ["page=abc", "per_page=x", "page=99999999999999999999", "page=1e3",
                                   "department_id=99999999999999999999", "department_id=abc", "active=maybe",
                                   "q=%00", "q=" + "x" * 5000, "q=%25%5F%5C"])
def test_garbage_query_strings_never_cause_a_500(admin, query):
    for url in (f"{API}/users?{query}", f"{API}/departments?{query.replace('department_id', 'parent_id')}",
                f"{API}/roles?{query}"):
        response = admin.api("get", url)
        assert response.status_code in (200, 422), (url, response.status_code)
        if response.status_code == 200:
            assert set(response.get_json()) == ENVELOPE


def test_page_numbers_that_are_not_integers_are_422(admin):
    assert_error(admin.api("get", f"{API}/users?page=abc"), 422, "validation_error", "page")


# Access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,body", [
    ("post", "/users", {"username": "newbie", "display_name": "新人"}),
    ("patch", "/users/<sales1>", {"display_name": "改名"}),
    ("patch", "/users/<salesmgr>", {"roles": ["admin"]}),
    ("post", "/departments", {"name": "新部门"}),
    ("patch", "/departments/<dept:sales>", {"name": "改名"}),
    ("delete", "/departments/<dept:legal>", None),
])
def test_non_admins_cannot_write(as_user, ids, app, method, path, body):
    client = as_user("salesmgr")
    url = API + re.sub(r"<([^>]+)>", lambda m: str(ids[m.group(1)]), path)
    assert_error(client.api(method, url, json=body), 403, "forbidden")
    with app.app_context():
        assert db.session.get(User, ids["sales1"]).display_name == "张伟"
        assert "admin" not in db.session.get(User, ids["salesmgr"]).role_keys
        assert db.session.get(Department, ids["dept:sales"]).name == "销售部"
        assert db.session.get(Department, ids["dept:legal"]) is not None
        assert db.session.scalar(select(Department).where(Department.name == "新部门")) is None


@pytest.mark.parametrize("method,path", [("get", "/users"), ("get", "/users/1"), ("post", "/users"),
                                         ("patch", "/users/1"), ("get", "/departments"), ("post", "/departments"),
                                         ("delete", "/departments/1"), ("get", "/roles")])
def test_anonymous_requests_are_401(anonymous, method, path):
    response = anonymous.api(method, API + path, json={"name": "x"})
    assert_error(response, 401, "unauthorized")


def test_a_write_without_the_csrf_token_is_refused(admin, ids, app):
    response = admin.http.patch(f"{API}/users/{ids['sales1']}", json={"display_name": "改名"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf"
    assert in_db(app, User, ids["sales1"])["display_name"] == "张伟"


# Language ---------------------------------------------------------------------------------------


def test_error_messages_are_in_chinese_for_a_zh_cn_session(admin):
    admin.post("/lang/zh_CN")
    error = assert_error(admin.api("post", f"{API}/users", json={"display_name": "新人", "bogus": 1}),
                         422, "validation_error", "username")
    assert error["message"] == "请修正标红的字段。"
    assert error["fields"]["username"] == ["此项为必填项。"]
    assert error["fields"]["bogus"] == ["不允许的字段。"]
    error = assert_error(admin.api("post", f"{API}/users", json={"username": "newbie", "display_name": "新人",
                                                                 "timezone": "Mars/Base"}), 422, "validation_error")
    assert error["fields"]["timezone"] == ["请输入有效的时区，例如 Asia/Shanghai。"]
    error = assert_error(admin.api("post", f"{API}/users", json={"username": "SALES1", "display_name": "新人"}),
                         422, "validation_error")
    assert error["fields"]["username"] == ["该用户名已被占用。"]


def test_error_messages_are_in_english_for_an_english_session(admin):
    admin.post("/lang/en")
    error = assert_error(admin.api("post", f"{API}/users", json={"display_name": "新人"}), 422, "validation_error")
    assert error["fields"]["username"] == ["Missing data for required field."]
    assert error["message"] == "Please correct the highlighted fields."
