"""The unified inbox: the service plugins call, the page (待办 / 已办 / 抄送我) and ``/api/v1/inbox``."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from core import clock, inbox
from core.audit.models import AuditEntry
from core.events import OutboxMessage
from core.extensions import db
from core.inbox.models import Todo
from core.org.services import find_user

from tests.conftest import PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai


@pytest.fixture
def notes_app(make_app):
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def client_for(app, username, language="en"):
    client = Client(app)
    assert client.login(username).status_code == 302
    client.post(f"/lang/{language}")
    return client


def add(app, assignee, key, kind="task", title=None, due_at=None, url="/", plugin="notes", **extra) -> int:
    with app.app_context():
        todo = inbox.upsert(plugin, key, find_user(assignee), kind, title or key, url=url, due_at=due_at, **extra)
        db.session.commit()
        return todo.id


def shown_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-todo="(\d+)"', html)]


def test_upsert_is_idempotent_and_unique_per_assignee(notes_app):
    with notes_app.app_context():
        gm, mgr = find_user("gm"), find_user("salesmgr")
        first = inbox.upsert("notes", "note:1:review", gm, "task", "Review", url="/notes/1")
        again = inbox.upsert("notes", "note:1:review", gm.id, "task", "Review (edited)", url="/notes/1",
                             due_at=T0)
        other = inbox.upsert("notes", "note:1:review", mgr, "task", "Review", url="/notes/1")
        db.session.commit()
        assert first.id == again.id != other.id
        rows = db.session.scalars(select(Todo).order_by(Todo.id)).all()
        assert [(r.assignee_id, r.title, r.due_at) for r in rows] == [(gm.id, "Review (edited)", T0), (mgr.id, "Review", None)]
        # Only the two new items announced themselves (for notifications); the update did not.
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.event == "core.todo_assigned")) == 2
        with pytest.raises(ValueError):
            inbox.upsert("notes", "x", gm, "memo", "unknown kind")


def test_upsert_keeps_the_sources_extra_until_it_gives_a_new_one(notes_app):
    with notes_app.app_context():
        gm = find_user("gm")
        todo = inbox.upsert("notes", "note:2:review", gm, "task", "Review", extra={"task_id": 7})
        inbox.upsert("notes", "note:2:review", gm, "task", "Review (edited)")
        db.session.commit()
        assert db.session.get(Todo, todo.id).extra == {"task_id": 7}
        inbox.upsert("notes", "note:2:review", gm, "task", "Review", extra={"task_id": 8})
        db.session.commit()
        assert db.session.get(Todo, todo.id).extra == {"task_id": 8}
        with pytest.raises(ValueError):
            inbox.upsert("notes", "note:2:review", gm, "task", "Review", extra=["not", "a", "dict"])


def test_upsert_reopens_a_cancelled_item_but_leaves_a_done_one_done(notes_app):
    with notes_app.app_context():
        gm = find_user("gm")
        inbox.upsert("notes", "a", gm, "task", "A")
        inbox.upsert("notes", "b", gm, "task", "B")
        inbox.close("notes", "a", status="cancelled")
        inbox.close("notes", "b", by=gm)
        a = inbox.upsert("notes", "a", gm, "task", "A again")
        b = inbox.upsert("notes", "b", gm, "task", "B again")
        assert (a.status, a.done_at, b.status) == ("open", None, "done")
        assert inbox.upsert("notes", "b", gm, "task", "B", reopen=True).status == "open"


def test_close_closes_only_open_items_and_records_who(notes_app):
    with notes_app.app_context():
        gm, mgr = find_user("gm"), find_user("salesmgr")
        for user in (gm, mgr):
            inbox.upsert("approval", "instance:7:step:1", user, "approval", "Approve contract")
        assert inbox.close("approval", "instance:7:step:1", by=mgr, assignee=mgr) == 1
        assert inbox.close("approval", "instance:7:step:1", status="cancelled") == 1  # gm's copy: no longer needed
        assert inbox.close("approval", "instance:7:step:1") == 0  # nothing open is left
        db.session.commit()
        rows = {r.assignee_id: r for r in db.session.scalars(select(Todo))}
        assert (rows[mgr.id].status, rows[mgr.id].done_by_id) == ("done", mgr.id)
        assert (rows[gm.id].status, rows[gm.id].done_by_id) == ("cancelled", None)
        assert rows[mgr.id].done_at is not None
        with pytest.raises(ValueError):
            inbox.close("approval", "instance:7:step:1", status="open")


def test_counts_leave_cc_copies_out_of_the_todo_count(notes_app):
    for key, kind in (("t1", "task"), ("t2", "reminder"), ("c1", "cc"), ("c2", "cc")):
        add(notes_app, "gm", key, kind)
    done = add(notes_app, "gm", "t3", "task")
    add(notes_app, "salesmgr", "t1", "task")
    with notes_app.app_context():
        gm = find_user("gm")
        inbox.complete(gm, done)
        assert inbox.open_count(gm) == 2
        assert inbox.tab_counts(gm) == {"todo": 2, "cc": 2}


def test_tabs_show_todo_done_and_cc(notes_app):
    task = add(notes_app, "gm", "t1", "task")
    approval = add(notes_app, "gm", "a1", "approval", plugin="approval")
    copy = add(notes_app, "gm", "c1", "cc")
    finished = add(notes_app, "gm", "t2", "task")
    add(notes_app, "salesmgr", "t9", "task")  # someone else's
    gm = client_for(notes_app, "gm")
    assert gm.post(f"/inbox/{finished}/done", {"tab": "todo"}).status_code == 302
    assert sorted(shown_ids(gm.get("/inbox").get_data(as_text=True))) == sorted([task, approval])
    assert shown_ids(gm.get("/inbox?tab=done").get_data(as_text=True)) == [finished]
    assert shown_ids(gm.get("/inbox?tab=cc").get_data(as_text=True)) == [copy]
    # Filters: by kind and by module (plugin).
    assert shown_ids(gm.get("/inbox?tab=todo&kind=approval").get_data(as_text=True)) == [approval]
    assert shown_ids(gm.get("/inbox?tab=todo&plugin=notes").get_data(as_text=True)) == [task]
    # The approval item has no "mark done" button: the approval engine closes it.
    page = gm.get("/inbox").get_data(as_text=True)
    assert f"/inbox/{task}/done" in page and f"/inbox/{approval}/done" not in page


def test_overdue_is_a_query_on_the_moved_clock(notes_app):
    clock.set_now(T0)
    late = add(notes_app, "gm", "late", due_at=T0 + timedelta(hours=1))
    add(notes_app, "gm", "later", due_at=T0 + timedelta(days=5))
    add(notes_app, "gm", "whenever")
    gm = client_for(notes_app, "gm")
    assert ">Overdue<" not in gm.get("/inbox").get_data(as_text=True)
    clock.set_now(T0 + timedelta(hours=2))  # (within the session's time-outs)
    with notes_app.app_context():
        assert [t.id for t in inbox.overdue()] == [late]
        assert db.session.scalar(select(Todo.status).where(Todo.id == late)) == "open"  # nothing stored
    page = gm.get("/inbox").get_data(as_text=True)
    assert page.count(">Overdue<") == 1
    assert shown_ids(gm.get("/inbox?overdue=1").get_data(as_text=True)) == [late]
    listed = gm.api("GET", "/api/v1/inbox").get_json()["items"]
    assert {i["id"]: i["overdue"] for i in listed}[late] is True
    assert [i["id"] for i in gm.api("GET", "/api/v1/inbox?overdue=true").get_json()["items"]] == [late]


def test_due_dates_show_in_the_users_time_zone(notes_app):
    add(notes_app, "gm", "due", due_at=T0)
    gm = client_for(notes_app, "gm")
    assert "9:30" in gm.get("/inbox").get_data(as_text=True)  # Asia/Shanghai, the demo users' zone
    with notes_app.app_context():
        find_user("gm").timezone = "Europe/Berlin"
        db.session.commit()
    page = gm.get("/inbox").get_data(as_text=True)
    assert "2:30" in page and "9:30" not in page
    assert 'datetime="2026-03-02T01:30:00+00:00"' in page


def test_api_lists_own_items_and_completes_them(notes_app):
    clock.set_now(T0)
    task = add(notes_app, "gm", "note:5:review", "task", title="Review note", url="/notes/5",
               subject_type="notes.note", subject_id=5, due_at=T0 + timedelta(hours=4))
    add(notes_app, "gm", "c1", "cc")
    add(notes_app, "salesmgr", "mine", "task")
    gm = client_for(notes_app, "gm")
    body = gm.api("GET", "/api/v1/inbox").get_json()
    assert (body["total"], body["page"]) == (2, 1)
    item = {i["id"]: i for i in body["items"]}[task]
    assert item == {
        "id": task, "kind": "task", "plugin": "notes", "title": "Review note", "url": "/notes/5",
        "subject_type": "notes.note", "subject_id": 5, "due_at": "2026-03-02T05:30:00+00:00", "status": "open",
        "overdue": False, "created_at": "2026-03-02T01:30:00+00:00", "done_at": None, "task_id": None, "extra": {},
    }
    assert [i["kind"] for i in gm.api("GET", "/api/v1/inbox?kind=cc").get_json()["items"]] == ["cc"]
    done = gm.api("POST", f"/api/v1/inbox/{task}/done")
    assert done.status_code == 200 and done.get_json()["status"] == "done"
    assert [i["id"] for i in gm.api("GET", "/api/v1/inbox?status=done").get_json()["items"]] == [task]
    assert task not in [i["id"] for i in gm.api("GET", "/api/v1/inbox").get_json()["items"]]
    assert gm.api("POST", f"/api/v1/inbox/{task}/done").status_code == 200  # again: nothing changes
    with notes_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "complete", AuditEntry.record_id == task)) == 1


@pytest.mark.parametrize("query, field", [("status=closed", "status"), ("kind=memo", "kind"),
                                          ("overdue=maybe", "overdue"), ("page=x", "page")])
def test_api_rejects_bad_filters_with_field_messages(notes_app, query, field):
    response = client_for(notes_app, "gm").api("GET", f"/api/v1/inbox?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def test_other_users_get_404_for_someone_elses_item(notes_app):
    item = add(notes_app, "salesmgr", "private", "task", url="/notes/")
    sales1 = client_for(notes_app, "sales1")
    assert sales1.api("POST", f"/api/v1/inbox/{item}/done").status_code == 404
    assert sales1.api("POST", "/api/v1/inbox/99999999999/done").status_code == 404
    assert sales1.get(f"/inbox/{item}/open").status_code == 404
    assert sales1.post(f"/inbox/{item}/done").status_code == 404
    assert item not in shown_ids(sales1.get("/inbox").get_data(as_text=True))
    with notes_app.app_context():
        assert db.session.get(Todo, item).status == "open"
    assert Client(notes_app).api("GET", "/api/v1/inbox").status_code == 401


def test_approval_items_cannot_be_completed_by_hand(notes_app):
    item = add(notes_app, "gm", "instance:1:step:1", "approval", plugin="approval")
    gm = client_for(notes_app, "gm")
    response = gm.api("POST", f"/api/v1/inbox/{item}/done")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "business_rule"
    gm.post(f"/inbox/{item}/done")
    with notes_app.app_context():
        assert db.session.get(Todo, item).status == "open"


def test_nav_shows_the_open_count_with_one_count_query(notes_app):
    gm = client_for(notes_app, "gm")
    assert 'data-menu-badge="inbox"' not in gm.get("/").get_data(as_text=True)  # nothing open: no badge
    first = add(notes_app, "gm", "t1")
    add(notes_app, "gm", "t2")
    add(notes_app, "gm", "c1", "cc")  # copies are not counted
    with notes_app.app_context():
        engine = db.engine
    statements = []

    def record(conn, cursor, statement, *args):
        if "core_todo" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        home = gm.get("/").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert re.search(r'data-menu-badge="inbox">2<', home)
    assert len(statements) == 1 and "count" in statements[0].lower()
    gm.post(f"/inbox/{first}/done")
    assert re.search(r'data-menu-badge="inbox">1<', gm.get("/").get_data(as_text=True))


def test_opening_an_item_rechecks_access_to_its_subject(notes_app):
    sales1 = client_for(notes_app, "sales1")
    sales1.post("/notes/", {"title": "华东区周报"})
    with notes_app.app_context():
        [review] = inbox.items(find_user("salesmgr"), tab="todo")
        assert (review.kind, review.subject_type, review.url) == ("task", "notes.note", f"/notes/{review.subject_id}")
        review_id, note_id = review.id, review.subject_id
    manager = client_for(notes_app, "salesmgr")
    opened = manager.get(f"/inbox/{review_id}/open")
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/notes/{note_id}")
    assert "华东区周报" in manager.get(f"/notes/{note_id}").get_data(as_text=True)
    # A note of purchasing is outside the sales manager's scope: the item stays, the door stays shut.
    buyer = client_for(notes_app, "buyer1")
    buyer.post("/notes/", {"title": "采购计划"})
    with notes_app.app_context():
        from yiti_notes.models import Note

        foreign = db.session.scalar(select(Note.id).where(Note.title == "采购计划"))
    outside = add(notes_app, "salesmgr", "peek", url=f"/notes/{foreign}", subject_type="notes.note", subject_id=foreign)
    refused = manager.get(f"/inbox/{outside}/open")
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/inbox")
    assert manager.get(f"/notes/{foreign}").status_code == 404
    # Only paths on this site are followed.
    external = add(notes_app, "salesmgr", "ext", url="https://evil.example/")
    assert manager.get(f"/inbox/{external}/open").headers["Location"].endswith("/inbox")


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example/", "/\t/evil.example/", "/\\evil.example"])
def test_opening_an_item_never_leaves_the_site(notes_app, url):
    item = add(notes_app, "gm", f"away-{len(url)}", "task", url=url)
    response = client_for(notes_app, "gm").get(f"/inbox/{item}/open")
    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
