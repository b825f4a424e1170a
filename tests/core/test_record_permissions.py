"""The attacker's tests, run against **every registered resource** of every enabled plugin.

For each resource a throw-away role grants one scope; the demo users sales1 (华东区), sales2 (华南区)
and salesmgr (销售部, the parent of both) each own one record. Whatever the request — list, get,
update, delete, export, search — a user reaches exactly the records their scope allows, and an
id outside it answers 404. Masked and hidden fields never leave the server in any response.
"""
from __future__ import annotations

import threading

from sqlalchemy import func, select, update

from core import resources as records
from core.audit.models import AuditEntry
from core.extensions import db
from core.org.models import Role, User
from core.permissions.services import set_field_rules, set_grants

from tests.conftest import Client

OWNERS = ("sales1", "sales2", "salesmgr")


def user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def only_role(app, resource, scope: str | None, field_rules: dict | None = None) -> None:
    """Give sales1, sales2 and salesmgr one role: every action of ``resource`` in ``scope``."""
    with app.app_context():
        admin = user("admin")
        role = db.session.scalar(select(Role).where(Role.key == "tester"))
        if role is None:
            role = Role(key="tester", name="测试角色")
            db.session.add(role)
            db.session.flush()
        grants = {resource.permission(a): scope for a in resource.actions} if scope else {}
        set_grants(admin, role.id, grants)
        set_field_rules(admin, role.id, {(resource.key, f): r for f, r in (field_rules or {}).items()})
        for name in OWNERS:
            user(name).roles = [role]
        db.session.commit()


def seed(app, resource) -> dict[str, int]:
    """One record owned by each of OWNERS (in the owner's department); returns their ids."""
    ids = {}
    with app.app_context():
        admin = user("admin")
        for n, name in enumerate(OWNERS):
            owner = user(name)
            obj = records.create(resource, admin, resource.sample(n))
            ids[name] = obj.id
            # Hand it to the owner without a new version: every test then starts from version 1.
            db.session.execute(update(resource.model).where(resource.model.id == obj.id)
                               .values(owner_id=owner.id, department_id=owner.department_id)
                               .execution_options(synchronize_session=False))
        db.session.commit()
    return ids


def api_path(resource) -> str:
    return f"/api/v1/{resource.plugin}/{resource.plural}"


def listed(client, resource, query="") -> set[int]:
    response = client.api("get", f"{api_path(resource)}?per_page=200{query}")
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["items"]}


def exported(client, resource) -> str:
    response = client.get(f"{api_path(resource)}/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    return response.get_data(as_text=True)


def every_resource(app):
    with app.app_context():
        found = list(records.resources().values())
    assert found, "no resource is registered: the attacker tests would prove nothing"
    return found


def string_fields(resource) -> list[str]:
    """Writable text fields the sample fills in (what masking tests look for)."""
    from marshmallow import fields

    sample = resource.sample(0)
    return [name for name, f in resource.schema._declared_fields.items()
            if isinstance(f, fields.String) and not f.dump_only and isinstance(sample.get(name), str)
            and len(sample[name]) >= 4]


# Scopes -----------------------------------------------------------------------------------------


def test_own_scope_reaches_only_ones_own_records_in_every_request(company):
    for resource in every_resource(company):
        ids = seed(company, resource)
        only_role(company, resource, "own")
        rep = Client(company)
        rep.login("sales1")
        mine, theirs = ids["sales1"], ids["sales2"]
        assert listed(rep, resource) & set(ids.values()) == {mine}, resource.key
        assert rep.api("get", f"{api_path(resource)}/{mine}").status_code == 200
        for method, body in (("get", None), ("patch", {"version": 1}), ("delete", None)):
            response = rep.api(method, f"{api_path(resource)}/{theirs}", json=body)
            assert response.status_code == 404, (resource.key, method, response.status_code)
            assert response.get_json()["error"]["code"] == "not_found"
        assert rep.api("get", f"{api_path(resource)}/{theirs}/history").status_code == 404
        csv_text = exported(rep, resource)
        assert csv_text.count("\n") == 2, (resource.key, csv_text)  # header + my record
        title = resource.sample(1).get(resource.title_field)
        if isinstance(title, str) and resource.title_field in resource.search_fields:
            assert listed(rep, resource, f"&q={title}") <= {mine}
        # Filtering by another owner's id does not widen the scope either.
        other = company.app_context()
        with other:
            sales2 = user("sales2").id
        if "owner_id" in resource.filters:
            assert listed(rep, resource, f"&owner_id={sales2}") == set()
        with company.app_context():
            still = db.session.scalar(select(func.count()).select_from(resource.model)
                                      .where(resource.model.id == theirs))
        assert still == 1, "a refused delete must not delete"


def test_department_scope_adds_the_department_but_not_its_neighbours(company):
    for resource in every_resource(company):
        ids = seed(company, resource)
        only_role(company, resource, "department")
        rep = Client(company)
        rep.login("sales1")
        assert listed(rep, resource) & set(ids.values()) == {ids["sales1"]}, resource.key  # 华东区 holds only sales1's
        manager = Client(company)
        manager.login("salesmgr")
        assert listed(manager, resource) & set(ids.values()) == {ids["salesmgr"]}, resource.key  # not the sub-departments


def test_department_tree_scope_includes_sub_departments(company):
    for resource in every_resource(company):
        ids = seed(company, resource)
        only_role(company, resource, "department_tree")
        manager = Client(company)
        manager.login("salesmgr")
        assert listed(manager, resource) & set(ids.values()) == set(ids.values()), resource.key
        rep = Client(company)
        rep.login("sales2")
        assert listed(rep, resource) & set(ids.values()) == {ids["sales2"]}, resource.key
        response = rep.api("patch", f"{api_path(resource)}/{ids['salesmgr']}", json={"version": 1})
        assert response.status_code == 404


def test_no_permission_means_no_access_anywhere(company):
    for resource in every_resource(company):
        ids = seed(company, resource)
        only_role(company, resource, None)
        rep = Client(company)
        rep.login("sales1")
        path = api_path(resource)
        assert rep.api("get", path).status_code == 403
        assert rep.api("post", path, json=resource.sample(5)).status_code == 403
        assert rep.get(f"{path}/export.csv").status_code == 403
        for method in ("get", "patch", "delete"):
            assert rep.api(method, f"{path}/{ids['sales1']}", json={"version": 1}).status_code in (403, 404)


def test_a_write_cannot_move_a_record_out_of_ones_scope(company):
    for resource in every_resource(company):
        if "owner_id" not in resource.schema._declared_fields:
            continue
        ids = seed(company, resource)
        only_role(company, resource, "own")
        rep = Client(company)
        rep.login("sales1")
        with company.app_context():
            sales2 = user("sales2").id
        response = rep.api("patch", f"{api_path(resource)}/{ids['sales1']}", json={"version": 1, "owner_id": sales2})
        assert response.status_code == 403, resource.key
        created = rep.api("post", api_path(resource), json={**resource.sample(7), "owner_id": sales2})
        assert created.status_code == 403, resource.key
        with company.app_context():
            assert db.session.get(resource.model, ids["sales1"]).owner_id == user("sales1").id


# Field rules ------------------------------------------------------------------------------------


def test_masked_and_hidden_fields_never_leave_the_server(company):
    for resource in every_resource(company):
        texts = string_fields(resource)
        if not texts:
            continue
        masked = texts[0]
        hidden = texts[1] if len(texts) > 1 else None
        rules = {masked: "masked", **({hidden: "hidden"} if hidden else {})}
        ids = seed(company, resource)
        only_role(company, resource, "own", rules)
        rep = Client(company)
        rep.login("sales1")
        secret = resource.sample(0)[masked]
        record = rep.api("get", f"{api_path(resource)}/{ids['sales1']}").get_json()
        assert record[masked] != secret and "***" in record[masked]
        if hidden:
            assert hidden not in record
        bodies = [
            rep.api("get", api_path(resource)).get_data(as_text=True),
            exported(rep, resource),
            rep.api("get", f"{api_path(resource)}/{ids['sales1']}/history").get_data(as_text=True),
        ]
        for body in bodies:
            assert secret not in body, resource.key
            if hidden:
                assert resource.sample(0)[hidden] not in body
        # Searching by the masked value finds nothing; writing it is refused field by field.
        if masked in resource.search_fields:
            assert listed(rep, resource, f"&q={secret}") == set()
        response = rep.api("patch", f"{api_path(resource)}/{ids['sales1']}", json={"version": 1, masked: "x1234"})
        assert response.status_code == 422
        assert masked in response.get_json()["error"]["fields"]


def test_least_restrictive_rule_of_the_roles_that_read_wins(company):
    resource = every_resource(company)[-1]
    field = string_fields(resource)[0]
    ids = seed(company, resource)
    only_role(company, resource, "all", {field: "masked"})
    with company.app_context():
        admin = user("admin")
        open_role = Role(key="reader", name="读者")
        db.session.add(open_role)
        db.session.flush()
        set_grants(admin, open_role.id, {resource.permission("read"): "all"})
        sales1 = user("sales1")
        sales1.roles = sales1.roles + [open_role]
        db.session.commit()
    rep = Client(company)
    rep.login("sales1")
    record = rep.api("get", f"{api_path(resource)}/{ids['sales2']}").get_json()
    assert record[field] == resource.sample(1)[field]  # one reading role shows it in full


def test_schemas_whitelist_writable_fields(company):
    for resource in every_resource(company):
        ids = seed(company, resource)
        only_role(company, resource, "all")
        rep = Client(company)
        rep.login("sales1")
        for field, value in (("id", 999), ("version", 7), ("created_by_id", 1), ("is_admin", True)):
            response = rep.api("patch", f"{api_path(resource)}/{ids['sales1']}", json={"version": 1, field: value}
                               if field != "version" else {"version": 1, "created_at": "2020-01-01T00:00:00Z"})
            assert response.status_code == 422, (resource.key, field)
            assert response.get_json()["error"]["fields"]


# Audit and optimistic locking -------------------------------------------------------------------


def test_every_write_is_audited_with_field_level_changes(company):
    for resource in every_resource(company):
        only_role(company, resource, "own")
        rep = Client(company)
        rep.login("sales1")
        created = rep.api("post", api_path(resource), json=resource.sample(3))
        assert created.status_code == 201, created.get_json()
        record = created.get_json()
        field = string_fields(resource)[0]
        updated = rep.api("patch", f"{api_path(resource)}/{record['id']}", json={field: "改过的内容"},
                          headers={"If-Match": str(record["version"])})
        assert updated.status_code == 200, updated.get_json()
        assert updated.get_json()["version"] == record["version"] + 1
        assert rep.api("delete", f"{api_path(resource)}/{record['id']}").status_code == 204
        with company.app_context():
            entries = db.session.scalars(select(AuditEntry).where(
                AuditEntry.resource == resource.key, AuditEntry.record_id == record["id"]).order_by(AuditEntry.id)).all()
            assert [e.action for e in entries] == ["create", "update", "delete"]
            assert entries[1].changes == {field: [resource.sample(3)[field], "改过的内容"]}
            assert {e.actor_name for e in entries} == {"sales1"}
            assert all(e.address == "127.0.0.1" for e in entries)


def test_update_without_a_version_is_refused(company):
    resource = every_resource(company)[0]
    ids = seed(company, resource)
    only_role(company, resource, "own")
    rep = Client(company)
    rep.login("sales1")
    response = rep.api("patch", f"{api_path(resource)}/{ids['sales1']}", json={})
    assert response.status_code == 422
    assert "version" in response.get_json()["error"]["fields"]


def test_stale_write_is_a_409_naming_who_changed_it(company):
    for resource in every_resource(company):
        ids = seed(company, resource)
        only_role(company, resource, "all")
        field = string_fields(resource)[0]
        first, second = Client(company), Client(company)
        first.login("sales2")
        second.login("sales1")
        path = f"{api_path(resource)}/{ids['sales1']}"
        assert first.api("patch", path, json={"version": 1, field: "先改"}).status_code == 200
        stale = second.api("patch", path, json={"version": 1, field: "后改"})
        assert stale.status_code == 409
        error = stale.get_json()["error"]
        assert error["code"] == "conflict" and error["changed_by"] == "sales2" and error["current_version"] == 2
        assert second.api("get", path).get_json()[field] == "先改"


def test_simultaneous_updates_from_the_same_version_let_exactly_one_win(company):
    resource = every_resource(company)[0]
    ids = seed(company, resource)
    only_role(company, resource, "all")
    field = string_fields(resource)[0]
    clients = [Client(company), Client(company)]
    for client, name in zip(clients, ("sales1", "sales2")):
        client.login(name)
        client.token()
    path = f"{api_path(resource)}/{ids['salesmgr']}"
    barrier = threading.Barrier(2)
    statuses = []

    def update(client, value):
        barrier.wait()
        statuses.append(client.api("patch", path, json={"version": 1, field: value}).status_code)

    threads = [threading.Thread(target=update, args=(c, f"并发{i}")) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 409]
    with company.app_context():
        updates = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.resource == resource.key, AuditEntry.record_id == ids["salesmgr"], AuditEntry.action == "update"))
        assert updates == 1
        assert db.session.get(resource.model, ids["salesmgr"]).version == 2


# Hooks -------------------------------------------------------------------------------------------


def test_hook_register_resources(company):
    with company.app_context():
        registered = records.resources()
        note = registered["notes.note"]
        permissions = company.extensions["yiti.permissions"]
    assert note.plural == "notes"
    assert {f"notes.note.{a}" for a in note.actions} <= set(permissions)
    admin = Client(company)
    admin.login("admin")
    assert admin.api("get", "/api/v1/notes/notes").status_code == 200
    assert admin.api("get", "/api/v1/notes/nothing").status_code == 404


def test_hook_register_roles(company):
    with company.app_context():
        from core.permissions import scope_of

        assert scope_of(user("sales1"), "notes.note.read") == "own"  # the employee template
        assert scope_of(user("salesmgr"), "notes.note.read") == "department_tree"  # widest of two roles
        assert scope_of(user("gm"), "notes.note.read") == "all"
        assert scope_of(user("sales1"), "notes.board.pin") is None
        # Applying again adds nothing, and a grant an admin removed stays removed.
        from core.permissions.services import apply_role_templates, role_grants

        employee = db.session.scalar(select(Role).where(Role.key == "employee"))
        grants = role_grants(employee)
        grants.pop("notes.note.delete")
        set_grants(user("admin"), employee.id, grants)
        assert apply_role_templates() == 0
        assert "notes.note.delete" not in role_grants(employee)
