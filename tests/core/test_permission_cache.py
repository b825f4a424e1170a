"""Permissions cached per process under a stamp: fewer queries, yet a change on any server applies at once."""
from __future__ import annotations

from sqlalchemy import delete, event, select

from core.demo import create_demo_company
from core.extensions import db
from core.org.models import Role, User
from core.permissions.cache import PermissionStamp
from core.permissions.models import RoleGrant
from core.permissions.services import set_grants

from tests.conftest import PASSWORD
from tests.core.conftest import WITH_NOTES, login


def stamp() -> int:
    return db.session.scalar(select(PermissionStamp.value).where(PermissionStamp.id == 1)) or 0


def grant_queries(app):
    """A list that collects every statement reading role grants on ``app``'s engine."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if "core_role_grant" in statement:
            seen.append(statement)

    return seen


def notes_role(app, scope: str | None) -> None:
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        role = db.session.scalar(select(Role).where(Role.key == "note_taker"))
        if role is None:
            role = Role(key="note_taker", name="便签")
            db.session.add(role)
            db.session.flush()
            sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
            sales1.roles = [role]
        set_grants(admin, role.id, {"notes.note.read": scope} if scope else {})
        db.session.commit()


def test_second_request_reads_no_grants_and_a_change_on_another_server_applies_at_once(make_app):
    server_a = make_app(plugins=WITH_NOTES)
    with server_a.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    server_b = make_app(plugins=WITH_NOTES, schema=None)  # same database, another process's view of it
    notes_role(server_a, "own")
    client = login(server_a, "sales1")
    seen = grant_queries(server_a)
    assert client.api("get", "/api/v1/notes/notes").status_code == 200
    first = len(seen)
    assert first >= 1
    assert client.api("get", "/api/v1/notes/notes").status_code == 200
    assert len(seen) == first, "the second request must reuse the grants read under the same stamp"

    notes_role(server_b, None)  # an admin on the other server revokes the grant
    assert client.api("get", "/api/v1/notes/notes").status_code == 403
    notes_role(server_b, "all")
    assert client.api("get", "/api/v1/notes/notes").status_code == 200


def test_every_kind_of_permission_change_moves_the_stamp_and_a_rollback_takes_it_back(company):
    with company.app_context():
        before = stamp()
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        role = db.session.scalar(select(Role).where(Role.key == "admin"))
        sales1.roles = list(sales1.roles) + [role]
        db.session.flush()
        assert stamp() == before + 1
        db.session.rollback()
        assert stamp() == before

        db.session.execute(delete(RoleGrant).where(RoleGrant.permission == "nothing.such"))
        db.session.commit()
        assert stamp() == before + 1

        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        sales1.display_name = "张三"  # not a permission change
        db.session.commit()
        assert stamp() == before + 1

        from core.org.models import Department

        department = db.session.scalar(select(Department).where(Department.parent_id.is_not(None)))
        department.name = department.name + "（新）"
        db.session.commit()
        assert stamp() == before + 2
