"""The organisation services: departments (a materialized-path tree), users and roles."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.errors import BusinessRuleError, Conflict, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.org import services
from core.org.models import Department, User
from core.org.roles import DEFAULT_ROLES, ensure_default_roles


@pytest.fixture
def ctx(app):
    """The demo company's app, inside an application context."""
    with app.app_context():
        yield app


def dept(code: str) -> Department:
    return db.session.scalar(select(Department).where(Department.code == code))


def user(name: str) -> User:
    return services.find_user(name)


def subtree_codes(department: Department) -> set[str]:
    rows = db.session.scalars(select(Department.code).where(Department.path.like(f"{department.path}%")))
    return set(rows)


def new_dept(name, parent=None, **extra):
    return services.create_department(user("admin"), {"name": name, "parent_id": parent.id if parent else None, **extra})


# Departments ------------------------------------------------------------------------------------


def test_department_paths_are_slash_separated_ids_from_the_root(ctx):
    company, sales, east = dept("company"), dept("sales"), dept("sales-east")
    assert company.path == f"/{company.id}/"
    assert sales.path == f"/{company.id}/{sales.id}/"
    assert east.path == f"/{company.id}/{sales.id}/{east.id}/"
    assert re.fullmatch(r"(/\d+)+/", east.path)
    assert (company.depth, sales.depth, east.depth) == (0, 1, 2)


def test_creating_a_department_under_a_parent_extends_the_parents_path(ctx):
    east = dept("sales-east")
    shanghai = new_dept("上海组", east, code="sh")
    assert shanghai.parent_id == east.id
    assert shanghai.path == f"{east.path}{shanghai.id}/"
    top = new_dept("独立事业部")
    assert top.path == f"/{top.id}/"


def test_moving_a_department_rewrites_its_subtree_paths(ctx):
    east, south, gmo = dept("sales-east"), dept("sales-south"), dept("gmo")
    shanghai = new_dept("上海组", east, code="sh")
    pudong = new_dept("浦东小组", shanghai, code="pd")
    db.session.commit()

    services.update_department(user("admin"), east.id, {"parent_id": gmo.id})
    db.session.commit()

    east, shanghai, pudong = dept("sales-east"), dept("sh"), dept("pd")
    assert east.parent_id == gmo.id
    assert east.path == f"{gmo.path}{east.id}/"
    assert shanghai.path == f"{gmo.path}{east.id}/{shanghai.id}/"
    assert pudong.path == f"{gmo.path}{east.id}/{shanghai.id}/{pudong.id}/"
    # The subtree query finds exactly the moved branch in its new place, and the old parent lost it.
    assert subtree_codes(east) == {"sales-east", "sh", "pd"}
    assert subtree_codes(gmo) == {"gmo", "sales-east", "sh", "pd"}
    assert subtree_codes(dept("sales")) == {"sales", "sales-south"}
    # Nothing outside the branch was touched.
    assert dept("sales-south").path == south.path


def test_moving_a_department_to_the_top_level(ctx):
    sales, east = dept("sales"), dept("sales-east")
    services.update_department(user("admin"), sales.id, {"parent_id": None})
    db.session.commit()
    sales, east = dept("sales"), dept("sales-east")
    assert sales.parent_id is None
    assert sales.path == f"/{sales.id}/"
    assert east.path == f"/{sales.id}/{east.id}/"
    assert subtree_codes(dept("company")) == {"company", "gmo", "purchasing", "hr", "finance", "legal"}


def test_subtree_query_does_not_match_departments_whose_id_shares_a_prefix(ctx):
    # /1/ must not match /12/: the trailing slash keeps prefixes apart.
    company = dept("company")
    for index in range(12):
        new_dept(f"部门{index}", code=f"x{index}")
    assert subtree_codes(company) == {"company", "gmo", "sales", "sales-east", "sales-south",
                                      "purchasing", "hr", "finance", "legal"}


@pytest.mark.parametrize("target", ["itself", "child", "grandchild"])
def test_moving_a_department_under_itself_or_a_descendant_is_a_parent_id_error(ctx, target):
    sales = dept("sales")
    shanghai = new_dept("上海组", dept("sales-east"), code="sh")
    db.session.commit()
    parent = {"itself": sales, "child": dept("sales-east"), "grandchild": shanghai}[target]
    paths_before = {d.code: d.path for d in db.session.scalars(select(Department))}

    with pytest.raises(ValidationError) as caught:
        services.update_department(user("admin"), sales.id, {"parent_id": parent.id})
    assert list(caught.value.fields) == ["parent_id"]
    db.session.rollback()
    assert {d.code: d.path for d in db.session.scalars(select(Department))} == paths_before
    assert dept("sales").parent_id == dept("company").id


def test_moving_to_an_unknown_parent_is_a_parent_id_error(ctx):
    with pytest.raises(ValidationError) as caught:
        services.update_department(user("admin"), dept("sales").id, {"parent_id": 999999})
    assert "parent_id" in caught.value.fields


def test_a_department_with_members_cannot_be_deleted(ctx):
    finance = dept("finance")
    with pytest.raises(BusinessRuleError):
        services.delete_department(user("admin"), finance.id)
    db.session.rollback()
    assert dept("finance") is not None


def test_a_department_with_sub_departments_cannot_be_deleted(ctx):
    empty_parent = new_dept("空部门")
    new_dept("子部门", empty_parent)
    db.session.commit()
    with pytest.raises(BusinessRuleError):
        services.delete_department(user("admin"), empty_parent.id)
    db.session.rollback()
    assert db.session.get(Department, empty_parent.id) is not None


def test_an_empty_department_is_deleted(ctx):
    empty = new_dept("空部门", dept("company"))
    db.session.commit()
    department_id = empty.id
    services.delete_department(user("admin"), department_id)
    db.session.commit()
    assert db.session.get(Department, department_id) is None


def test_deleting_an_unknown_department_is_not_found(ctx):
    with pytest.raises(NotFound):
        services.delete_department(user("admin"), 999999)


def test_department_codes_are_unique(ctx):
    with pytest.raises(ValidationError) as caught:
        new_dept("另一个销售部", code="sales")
    assert list(caught.value.fields) == ["code"]
    db.session.rollback()
    with pytest.raises(ValidationError) as caught:
        services.update_department(user("admin"), dept("hr").id, {"code": "finance"})
    assert list(caught.value.fields) == ["code"]
    db.session.rollback()
    # Keeping one's own code is not a clash.
    services.update_department(user("admin"), dept("hr").id, {"code": "hr", "name": "人力资源部"})
    assert dept("hr").name == "人力资源部"


def test_a_department_needs_a_name(ctx):
    with pytest.raises(ValidationError) as caught:
        services.create_department(user("admin"), {"name": ""})
    assert "name" in caught.value.fields


def test_department_tree_orders_parents_before_their_children(ctx):
    new_dept("上海组", dept("sales-east"), code="sh")
    tree = services.department_tree()
    position = {department.code: index for index, (department, _depth) in enumerate(tree)}
    depth = {department.code: d for department, d in tree}
    assert len(tree) == 10
    for department, _depth in tree:
        if department.parent_id is not None:
            parent = db.session.get(Department, department.parent_id)
            assert position[parent.code] < position[department.code]
    assert depth == {"company": 0, "gmo": 1, "sales": 1, "sales-east": 2, "sales-south": 2, "sh": 3,
                     "purchasing": 1, "hr": 1, "finance": 1, "legal": 1}
    # A subtree is contiguous: 华东区 and its 上海组 come straight after 销售部.
    assert [position["sales-east"], position["sh"]] == [position["sales"] + 1, position["sales"] + 2]


def test_department_tree_orders_siblings_by_sort_then_name(ctx):
    company = dept("company")
    services.update_department(user("admin"), dept("legal").id, {"sort": -1})
    children = [d.code for d, depth in services.department_tree() if d.parent_id == company.id]
    assert children[0] == "legal"


# Users ------------------------------------------------------------------------------------------


def test_creating_a_user_stores_roles_and_a_hashed_password(ctx):
    created = services.create_user(user("admin"), {
        "username": "wang.fang", "display_name": "王芳", "department_id": dept("hr").id,
        "manager_id": user("hr1").id, "roles": ["hr", "employee"], "password": "Blue-Kettle-77",
    })
    db.session.commit()
    found = user("WANG.FANG")
    assert found.id == created.id
    assert found.role_keys == {"hr", "employee"}
    assert found.password_hash and "Blue-Kettle-77" not in found.password_hash
    assert services.authenticate("wang.fang", "Blue-Kettle-77").id == created.id
    assert services.authenticate("wang.fang", "wrong-password-1") is None


def test_usernames_are_unique_ignoring_case(ctx):
    with pytest.raises(ValidationError) as caught:
        services.create_user(user("admin"), {"username": "SALES1", "display_name": "冒名者"})
    assert list(caught.value.fields) == ["username"]
    db.session.rollback()
    with pytest.raises(ValidationError) as caught:
        services.update_user(user("admin"), user("sales2").id, {"username": "Sales1"})
    assert list(caught.value.fields) == ["username"]
    db.session.rollback()
    # Changing the case of one's own username is allowed.
    services.update_user(user("admin"), user("sales2").id, {"username": "Sales2"})
    assert user("sales2").username == "Sales2"


def test_a_user_cannot_report_to_themselves(ctx):
    salesmgr = user("salesmgr")
    with pytest.raises(ValidationError) as caught:
        services.update_user(user("admin"), salesmgr.id, {"manager_id": salesmgr.id})
    assert list(caught.value.fields) == ["manager_id"]


def test_a_user_cannot_report_indirectly_to_themselves(ctx):
    # sales1 -> salesmgr -> gm: gm may not report to sales1 (or to salesmgr).
    for subordinate in ("sales1", "salesmgr"):
        with pytest.raises(ValidationError) as caught:
            services.update_user(user("admin"), user("gm").id, {"manager_id": user(subordinate).id})
        assert list(caught.value.fields) == ["manager_id"]
        db.session.rollback()
    assert user("gm").manager_id is None
    # Reporting to someone outside one's own chain is fine.
    services.update_user(user("admin"), user("gm").id, {"manager_id": user("admin").id})
    assert user("gm").manager_id == user("admin").id


def test_an_unknown_role_is_a_roles_error(ctx):
    with pytest.raises(ValidationError) as caught:
        services.create_user(user("admin"), {"username": "newbie", "display_name": "新人", "roles": ["employee", "wizard"]})
    assert list(caught.value.fields) == ["roles"]
    assert "wizard" in caught.value.fields["roles"][0]
    db.session.rollback()
    with pytest.raises(ValidationError) as caught:
        services.update_user(user("admin"), user("sales1").id, {"roles": ["superuser"]})
    assert list(caught.value.fields) == ["roles"]
    db.session.rollback()
    assert user("sales1").role_keys == {"sales_rep", "employee"}


def test_unknown_department_or_manager_is_a_field_error(ctx):
    for field in ("department_id", "manager_id"):
        with pytest.raises(ValidationError) as caught:
            services.create_user(user("admin"), {"username": "newbie", "display_name": "新人", field: 999999})
        assert list(caught.value.fields) == [field]
        db.session.rollback()


def test_an_admin_cannot_remove_their_own_admin_role(ctx):
    admin = user("admin")
    with pytest.raises(BusinessRuleError):
        services.update_user(admin, admin.id, {"roles": ["employee"]})
    db.session.rollback()
    assert user("admin").is_admin
    # Keeping admin while adding another role is fine.
    services.update_user(admin, admin.id, {"roles": ["admin", "employee"]})
    assert user("admin").role_keys == {"admin", "employee"}


def test_an_admin_cannot_deactivate_themselves(ctx):
    admin = user("admin")
    with pytest.raises(BusinessRuleError):
        services.update_user(admin, admin.id, {"active": False})
    db.session.rollback()
    assert user("admin").active


def test_an_admin_can_remove_another_admins_role_and_deactivate_them(ctx):
    services.update_user(None, user("gm").id, {"roles": ["admin", "gm"]})
    gm_epoch = user("gm").session_epoch
    services.update_user(user("admin"), user("gm").id, {"roles": ["gm"], "active": False})
    db.session.commit()
    gm = user("gm")
    assert not gm.is_admin and not gm.active
    assert gm.session_epoch == gm_epoch + 1  # logged out everywhere


@pytest.mark.parametrize("action", ["create_user", "update_user", "create_department", "update_department",
                                    "delete_department"])
def test_a_non_admin_actor_is_forbidden(ctx, action):
    actor = user("salesmgr")
    calls = {
        "create_user": lambda: services.create_user(actor, {"username": "newbie", "display_name": "新人"}),
        "update_user": lambda: services.update_user(actor, user("sales1").id, {"display_name": "改名"}),
        "create_department": lambda: services.create_department(actor, {"name": "新部门"}),
        "update_department": lambda: services.update_department(actor, dept("sales").id, {"name": "改名"}),
        "delete_department": lambda: services.delete_department(actor, dept("legal").id),
    }
    with pytest.raises(Forbidden):
        calls[action]()
    db.session.rollback()
    assert user("newbie") is None
    assert user("sales1").display_name == "张伟"
    assert dept("sales").name == "销售部"
    assert dept("legal") is not None


def test_updating_a_user_with_a_stale_version_is_a_conflict_and_changes_nothing(ctx):
    sales1 = user("sales1")
    version = sales1.version
    services.update_user(user("admin"), sales1.id, {"display_name": "张伟伟", "version": version})
    db.session.commit()
    assert user("sales1").version == version + 1

    with pytest.raises(Conflict) as caught:
        services.update_user(user("admin"), sales1.id, {"display_name": "覆盖", "mobile": "13900000000",
                                                        "version": version})
    assert caught.value.status == 409
    assert caught.value.to_dict()["error"]["code"] == "conflict"
    db.session.rollback()
    sales1 = user("sales1")
    assert (sales1.display_name, sales1.version) == ("张伟伟", version + 1)
    assert sales1.mobile != "13900000000"


def test_updating_a_department_with_a_stale_version_is_a_conflict_and_changes_nothing(ctx):
    east = dept("sales-east")
    stale = east.version
    services.update_department(user("admin"), east.id, {"name": "华东大区", "version": stale})
    db.session.commit()
    path = dept("sales-east").path
    with pytest.raises(Conflict):
        services.update_department(user("admin"), east.id, {"parent_id": dept("gmo").id, "version": stale})
    db.session.rollback()
    east = dept("sales-east")
    assert (east.name, east.path, east.version) == ("华东大区", path, stale + 1)


def test_each_update_bumps_the_version(ctx):
    hr = dept("hr")
    before = hr.version
    services.update_department(user("admin"), hr.id, {"name": "人力资源部"})
    db.session.commit()
    assert dept("hr").version == before + 1


def test_time_zone_defaults_to_shanghai(ctx):
    created = services.create_user(user("admin"), {"username": "newbie", "display_name": "新人"})
    db.session.commit()
    assert user("newbie").timezone == "Asia/Shanghai"
    # A partial update that does not mention the time zone keeps the one chosen.
    services.update_user(user("admin"), created.id, {"timezone": "Europe/Berlin"})
    services.update_user(user("admin"), created.id, {"display_name": "新同事"})
    db.session.commit()
    assert user("newbie").timezone == "Europe/Berlin"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "asia/shanghai", "../../etc/passwd"])
def test_an_invalid_time_zone_is_a_timezone_error(ctx, zone):
    with pytest.raises(ValidationError) as caught:
        services.create_user(user("admin"), {"username": "newbie", "display_name": "新人", "timezone": zone})
    assert list(caught.value.fields) == ["timezone"]
    db.session.rollback()
    with pytest.raises(ValidationError) as caught:
        services.update_user(user("admin"), user("sales1").id, {"timezone": zone})
    assert list(caught.value.fields) == ["timezone"]


def test_unknown_fields_are_refused_not_written(ctx):
    sales1 = user("sales1")
    for field, value in (("session_epoch", 99), ("password_hash", "x"), ("is_admin", True), ("id", 1)):
        with pytest.raises(ValidationError) as caught:
            services.update_user(user("admin"), sales1.id, {field: value})
        assert list(caught.value.fields) == [field]
        db.session.rollback()
    assert user("sales1").session_epoch == 0


def test_a_weak_password_is_a_password_error(ctx):
    with pytest.raises(ValidationError) as caught:
        services.create_user(user("admin"), {"username": "newbie", "display_name": "新人", "password": "123"})
    assert list(caught.value.fields) == ["password"]


def test_an_admin_password_reset_ends_the_users_sessions(ctx):
    before = user("sales1").session_epoch
    services.update_user(user("admin"), user("sales1").id, {"password": "Blue-Kettle-77"})
    db.session.commit()
    assert user("sales1").session_epoch == before + 1
    assert services.authenticate("sales1", "Blue-Kettle-77") is not None


# Roles ------------------------------------------------------------------------------------------


def test_built_in_roles_are_created_once(ctx):
    first = ensure_default_roles()
    again = ensure_default_roles()
    assert [role.key for role in first] == [key for key, _label in DEFAULT_ROLES]
    assert [role.id for role in again] == [role.id for role in first]
    assert {role.name for role in first} == {"系统管理员", "总经理", "销售经理", "销售代表", "采购", "人事", "财务",
                                             "法务", "普通员工"}
    assert all(role.builtin for role in first)
