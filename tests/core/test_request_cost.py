"""The fixed cost of an authenticated API read: few statements, no writes, permissions still exact.

A warm ``GET /api/v1/<plugin>/<plural>`` runs three statements whichever way it authenticates:
the caller (token or session user, with the user's roles and the permission stamp, in one round
trip), the count and the page. Nothing is written (a token's ``last_used_at`` at most once a minute).
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, select

from core.demo import create_demo_company
from core.extensions import db
from core.org.models import Role, User
from tests.conftest import PASSWORD
from tests.core.conftest import WITH_NOTES, login
from tests.core.test_permission_cache import notes_role

LIST = "/api/v1/notes/notes?per_page=20"


@contextmanager
def statements(app):
    """The SQL ``app`` sends to its database inside the block."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def listen(_conn, _cursor, statement, _parameters, _context, _many):
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def token_for(app, username: str) -> str:
    response = app.test_client().post("/api/v1/auth/tokens", json={
        "username": username, "password": PASSWORD, "name": "script", "scope": "read"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def add_note(app, owner: str, title: str) -> None:
    with app.app_context():
        from yiti_notes.models import Note

        user = db.session.scalar(select(User).where(User.username == owner))
        db.session.add(Note(title=title, body="", owner_id=user.id, department_id=user.department_id))
        db.session.commit()


def give_roles(app, username: str, *keys: str) -> None:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        user.roles = list(db.session.scalars(select(Role).where(Role.key.in_(keys))))
        db.session.commit()


def test_a_warm_token_list_request_runs_three_statements_and_writes_nothing(company):
    notes_role(company, "own")
    add_note(company, "sales1", "mine")
    client, headers = company.test_client(), bearer(token_for(company, "sales1"))
    assert client.get(LIST, headers=headers).status_code == 200  # the first use records last_used_at

    with statements(company) as seen:
        response = client.get(LIST, headers=headers)

    assert response.status_code == 200
    assert len(seen) == 3, seen
    assert "core_api_token" in seen[0] and "core_user_role" in seen[0] and "core_permission_stamp" in seen[0]
    assert not [s for s in seen if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")], seen


def test_a_warm_session_list_request_runs_three_statements_and_sets_no_cookie(company):
    notes_role(company, "own")
    add_note(company, "sales1", "mine")
    client = login(company, "sales1")
    assert client.api("get", LIST).status_code == 200

    with statements(company) as seen:
        response = client.api("get", LIST)

    assert response.status_code == 200
    assert len(seen) == 3, seen
    assert "core_user_role" in seen[0] and "core_permission_stamp" in seen[0] and "core_revoked_session" in seen[0]
    assert "Set-Cookie" not in response.headers  # the idle stamp is refreshed at most once a minute


def test_a_token_request_sees_a_grant_changed_on_another_server_at_once(make_app):
    server_a = make_app(plugins=WITH_NOTES)
    with server_a.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    server_b = make_app(plugins=WITH_NOTES, schema=None)  # same database, another process
    notes_role(server_a, "own")
    client, headers = server_a.test_client(), bearer(token_for(server_a, "sales1"))
    assert client.get(LIST, headers=headers).status_code == 200

    notes_role(server_b, None)
    assert client.get(LIST, headers=headers).status_code == 403

    notes_role(server_b, "own")
    assert client.get(LIST, headers=headers).status_code == 200


def test_roles_read_with_the_caller_keep_every_role_of_a_user_with_several(company):
    """The caller's roles are joined into the caller's query: all of them count, not just the first row's."""
    notes_role(company, "own")  # creates note_taker (own) and gives it to sales1
    add_note(company, "admin", "someone else's note")
    give_roles(company, "sales1", "note_taker", "admin")
    token = token_for(company, "sales1")

    for response in (company.test_client().get(LIST, headers=bearer(token)), login(company, "sales1").api("get", LIST)):
        assert response.status_code == 200
        titles = [item["title"] for item in response.get_json()["items"]]
        assert "someone else's note" in titles  # admin: every record, whatever note_taker's "own" says

    give_roles(company, "sales1", "note_taker")
    for response in (company.test_client().get(LIST, headers=bearer(token)), login(company, "sales1").api("get", LIST)):
        assert response.status_code == 200
        assert "someone else's note" not in [item["title"] for item in response.get_json()["items"]]
