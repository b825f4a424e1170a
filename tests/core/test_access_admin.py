"""Admin pages for access: the role matrix, field rules, effective permissions and the audit log."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.audit.models import AuditEntry
from core.extensions import db
from core.org.models import Role, User

from tests.conftest import Client
from tests.core.conftest import login





def role_id(app, key):
    with app.app_context():
        return db.session.scalar(select(Role.id).where(Role.key == key))


def entries(app, **where):
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        for name, value in where.items():
            query = query.where(getattr(AuditEntry, name) == value)
        return db.session.scalars(query).all()


def test_role_matrix_change_applies_at_the_next_request_and_is_audited(company):
    admin, rep, other = login(company, "admin"), login(company, "sales1"), login(company, "sales2")
    created = other.api("post", "/api/v1/notes/notes", json={"title": "华南周报"})
    assert created.status_code == 201
    titles = lambda: {item["title"] for item in rep.api("get", "/api/v1/notes/notes").get_json()["items"]}  # noqa: E731
    assert "华南周报" not in titles()  # own scope

    employee = role_id(company, "employee")
    page = admin.get(f"/admin/roles/{employee}").get_data(as_text=True)
    assert 'name="perm:notes.note.read"' in page
    form = {f"perm:notes.note.{a}": "own" for a in ("create", "update", "delete", "export")}
    response = admin.post(f"/admin/roles/{employee}", {**form, "perm:notes.note.read": "all"})
    assert response.status_code == 302

    assert "华南周报" in titles()  # the very next request
    change = entries(company, action="permission_change")[-1]
    assert change.actor_name == "admin" and change.record_id == employee
    assert change.changes["notes.note.read"] == ["own", "all"]


def test_unknown_scope_in_the_matrix_is_a_field_error_and_changes_nothing(company):
    admin = login(company, "admin")
    employee = role_id(company, "employee")
    response = admin.post(f"/admin/roles/{employee}", {"perm:notes.note.read": "galaxy"})
    assert response.status_code == 200
    assert "notes.note.read" in response.get_data(as_text=True)
    with company.app_context():
        from core.permissions.services import role_grants

        assert role_grants(db.session.get(Role, employee))["notes.note.read"] == "own"


def test_field_rules_tab_masks_a_field_for_the_role(company):
    admin, rep = login(company, "admin"), login(company, "sales1")
    note = rep.api("post", "/api/v1/notes/notes", json={"title": "13800138000"}).get_json()
    employee = role_id(company, "employee")
    page = admin.get(f"/admin/roles/{employee}?tab=fields").get_data(as_text=True)
    assert 'name="field:notes.note:title"' in page
    assert admin.post(f"/admin/roles/{employee}", {"tab": "fields", "field:notes.note:title": "masked"}).status_code == 302
    assert rep.api("get", f"/api/v1/notes/notes/{note['id']}").get_json()["title"] == "138****8000"
    change = entries(company, action="permission_change")[-1]
    assert change.changes == {"field:notes.note.title": [None, "masked"]}


def test_new_custom_role_can_be_created_and_opened(company):
    admin = login(company, "admin")
    response = admin.post("/admin/roles/new", {"key": "auditor", "name": "内审"})
    assert response.status_code == 302
    opened = admin.get(response.headers["Location"])
    assert "内审" in opened.get_data(as_text=True)
    assert entries(company, resource="core.role", action="create")[-1].summary == "内审"


def test_effective_permissions_say_which_roles_grant_what(company):
    admin = login(company, "admin")
    with company.app_context():
        salesmgr = db.session.scalar(select(User.id).where(User.username == "salesmgr"))
    page = admin.get(f"/admin/users/{salesmgr}/permissions").get_data(as_text=True)
    assert "notes.note.read" in page
    assert "部门及下级" in page  # the widest scope of the two roles, in Chinese
    assert "销售经理 (department_tree)" in page and "普通员工 (own)" in page


def test_access_pages_are_for_administrators_only(company):
    rep = login(company, "sales1")
    employee = role_id(company, "employee")
    for url in (f"/admin/roles/{employee}", "/admin/audit", "/admin/audit/export.csv", "/admin/users/1/permissions"):
        assert rep.get(url).status_code == 403
    assert rep.post(f"/admin/roles/{employee}", {"perm:notes.note.read": "all"}).status_code == 403


def test_logins_failures_and_logouts_are_audited(company):
    client = Client(company)
    client.post("/login", {"username": "sales1", "password": "wrong-password-1"})
    client.login("sales1")
    client.post("/logout")
    actions = [(e.action, e.actor_name) for e in entries(company, resource="core.user")
               if e.action in ("login", "login_failed", "logout")]
    assert actions[-3:] == [("login_failed", "sales1"), ("login", "sales1"), ("logout", "sales1")]


def test_org_changes_are_audited_with_old_and_new_values(company):
    admin = login(company, "admin")
    with company.app_context():
        user = db.session.scalar(select(User).where(User.username == "sales1"))
        user_id, version = user.id, user.version
    response = admin.api("patch", f"/api/v1/core/users/{user_id}", json={"display_name": "张伟伟", "version": version})
    assert response.status_code == 200
    change = entries(company, resource="core.user", action="update")[-1]
    assert change.changes == {"display_name": ["张伟", "张伟伟"]}


def test_audit_log_page_filters_and_exports(company):
    admin = login(company, "admin")
    Client(company).post("/login", {"username": "gm", "password": "nope-nope-1"})
    page = admin.get("/admin/audit?action=login_failed").get_data(as_text=True)
    assert "gm" in page and "login_failed" in page
    assert "<code>permission_change</code>" not in page
    exported = admin.get("/admin/audit/export.csv?action=login_failed")
    assert exported.status_code == 200
    rows = exported.get_data(as_text=True).strip().splitlines()
    assert rows[0].lstrip("\ufeff").startswith("id,at,actor")
    assert len(rows) == 2 and ",gm," in rows[1]
    assert entries(company, resource="core.audit", action="export")[-1].actor_name == "admin"


def test_the_audit_trail_is_append_only(company):
    with company.app_context():
        entry = db.session.scalars(select(AuditEntry)).first()
        entry.summary = "rewritten history"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.scalars(select(AuditEntry)).first())
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.flush()
        db.session.rollback()
