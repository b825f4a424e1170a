"""Comments with @mentions under a record's History tab.

On a note of sales1 (华东区): salesmgr (销售部, reads his departments' notes) and gm (reads all
notes) may read it; sales2 (华南区) and buyer1 (采购部) may not, so mentioning them must not
tell them the note exists.
"""
from __future__ import annotations

from sqlalchemy import select

from core import comments
from core.audit.models import AuditEntry
from core.comments.models import Comment
from core.extensions import db
from core.inbox.models import Todo
from core.org.models import User

from tests.core.conftest import login


def new_note(client, title="华东区大客户跟进") -> int:
    response = client.api("post", "/api/v1/notes/notes", json={"title": title, "body": "正文"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def post(client, note_id: int, body: str):
    return client.api("post", f"/api/v1/notes/notes/{note_id}/comments", json={"body": body})


def mentions(app) -> dict[str, list]:
    """``{username: [(title, url, subject)]}`` of every mention item in the inbox."""
    with app.app_context():
        rows = db.session.execute(select(User.username, Todo.title, Todo.url, Todo.subject_type, Todo.subject_id)
                                  .join(User, User.id == Todo.assignee_id).where(Todo.kind == "mention")).all()
    found: dict[str, list] = {}
    for username, *item in rows:
        found.setdefault(username, []).append(tuple(item))
    return found


def test_mentioning_colleagues_notifies_only_those_who_may_read_the_record(company):
    client = login(company, "sales1")
    note = new_note(client)
    response = post(client, note, "@salesmgr @王总 请看一下；@陈静 和 @buyer1 也看看。@sales1")
    assert response.status_code == 201, response.get_json()
    comment_id = response.get_json()["id"]
    found = mentions(company)
    assert sorted(found) == ["gm", "salesmgr"]  # not sales2, buyer1 (no access), not the author
    title, url, subject_type, subject_id = found["salesmgr"][0]
    assert "张伟" in title and "华东区大客户跟进" in title
    assert url == f"/notes/notes/{note}?tab=history#comment-{comment_id}"
    assert (subject_type, subject_id) == ("notes.note", note)


def test_the_mentioned_reader_opens_the_record_from_the_inbox(company):
    client = login(company, "sales1")
    note = new_note(client)
    comment_id = post(client, note, "@李经理请审阅").get_json()["id"]  # a display name, then more text
    manager = login(company, "salesmgr")
    with company.app_context():
        todo = db.session.scalar(select(Todo).where(Todo.kind == "mention"))
    opened = manager.get(f"/inbox/{todo.id}/open")
    assert opened.status_code == 302
    assert opened.headers["Location"] == f"/notes/notes/{note}?tab=history#comment-{comment_id}"
    page = manager.get(f"/notes/notes/{note}?tab=history").get_data(as_text=True)
    assert "李经理请审阅" in page


def test_mentions_resolve_to_active_users_only_and_not_email_addresses(company):
    with company.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        gm = db.session.scalar(select(User).where(User.username == "gm"))
        assert [u.username for u in comments.mentioned_users("请 @SALESMGR 看")] == ["salesmgr"]
        assert comments.mentioned_users("写信给 gm@example.com") == []
        assert comments.mentioned_users("@salesmgrx 不是任何人") == []
        assert {u.username for u in comments.mentioned_users("@张伟，@王总。")} == {"sales1", "gm"}
        gm.active = False
        db.session.flush()
        assert comments.mentioned_users("@gm") == []
        db.session.rollback()
        assert sales1.active


def test_someone_outside_the_records_scope_can_neither_read_nor_post_comments(company):
    owner, outsider = login(company, "sales1"), login(company, "sales2")
    note = new_note(owner)
    post(owner, note, "内部讨论")
    assert outsider.api("get", f"/api/v1/notes/notes/{note}/comments").status_code == 404
    assert post(outsider, note, "@sales1 hi").status_code == 404
    assert outsider.post(f"/notes/notes/{note}/comments", {"body": "hi"}).status_code == 404
    with company.app_context():
        assert [c.body for c in db.session.scalars(select(Comment))] == ["内部讨论"]
    assert mentions(company) == {}


def test_a_reader_may_comment_and_everyone_who_may_read_sees_the_thread(company):
    owner, manager = login(company, "sales1"), login(company, "salesmgr")
    note = new_note(owner)
    assert post(manager, note, "请尽快报价 @张伟").status_code == 201
    items = owner.api("get", f"/api/v1/notes/notes/{note}/comments").get_json()["items"]
    assert [(i["author"], i["body"]) for i in items] == [("李经理", "请尽快报价 @张伟")]
    assert list(mentions(company)) == ["sales1"]


def test_comment_bodies_are_escaped_on_the_page(company):
    client = login(company, "sales1")
    note = new_note(client)
    response = client.post(f"/notes/notes/{note}/comments",
                           {"body": "<script>alert(1)</script><img src=x onerror=alert(2)>\n@salesmgr 第二行"})
    assert response.status_code == 302 and "tab=history#comment-" in response.headers["Location"]
    page = client.get(f"/notes/notes/{note}?tab=history").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;<br>" in page
    assert '<span class="mention">@salesmgr</span>' in page


def test_render_escapes_a_mention_that_carries_markup():
    html = str(comments.render('@"><b>x</b> & @张伟'))
    assert "<b>" not in html and "&amp;" in html and '<span class="mention">@张伟</span>' in html


def test_an_empty_or_overlong_comment_is_a_field_error(company):
    client = login(company, "sales1")
    note = new_note(client)
    for body in ("", "   ", "长" * (comments.BODY_MAX + 1), 42, None):
        response = post(client, note, body)
        assert response.status_code == 422, body
        assert list(response.get_json()["error"]["fields"]) == ["body"]
    assert client.api("post", f"/api/v1/notes/notes/{note}/comments",
                      json={"body": "好", "author_id": 1}).status_code == 422
    page = client.post(f"/notes/notes/{note}/comments", {"body": " "}, follow_redirects=True)
    assert "alert-danger" in page.get_data(as_text=True)
    with company.app_context():
        assert db.session.scalars(select(Comment)).all() == []


def test_a_comment_without_the_csrf_token_is_refused(company):
    client = login(company, "sales1")
    note = new_note(client)
    assert client.http.post(f"/notes/notes/{note}/comments", data={"body": "hi"}).status_code == 400
    with company.app_context():
        assert db.session.scalars(select(Comment)).all() == []


def test_comments_are_audited_with_who_was_notified(company):
    client = login(company, "sales1")
    note = new_note(client)
    comment_id = post(client, note, "@salesmgr @陈静 请看").get_json()["id"]
    with company.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "comment"))
    assert (entry.resource, entry.record_id, entry.actor_name) == ("notes.note", note, "sales1")
    assert entry.changes == {"comment_id": [None, comment_id], "mentioned": [None, ["salesmgr"]]}
