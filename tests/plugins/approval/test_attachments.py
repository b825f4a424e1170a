"""Files on approval requests: the 发票 field of the demo expense flow, comments with files, the API.

sales1 submits an expense of 8,000 (salesmgr approves first); sales2 (another department, no part
in the request) is the attacker: every file URL of the request is a 404 for them.
"""
from __future__ import annotations

import io
import json

from sqlalchemy import func, select

from core.attachments.models import Attachment
from core.audit.models import AuditEntry
from core.extensions import db
from plugins.approval.models import Event, Request

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 100 + b"This program cannot be run in DOS mode."


def page_start(client, amount="8000", files=()):
    data = {"amount": amount, "reason": "客户拜访", "invoices": [(io.BytesIO(content), name) for content, name in files]}
    return client.post("/approval/start/expense", data, content_type="multipart/form-data")


def api_multipart(client, url, data):
    return client.http.post(url, data=data, headers={"X-CSRFToken": client.token()}, content_type="multipart/form-data")


def request_row(app, request_id) -> Request:
    with app.app_context():
        req = db.session.get(Request, request_id)
        db.session.expunge(req)
        return req


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def started(app, client, files) -> int:
    response = page_start(client, files=files)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def test_files_chosen_on_the_start_form_are_stored_and_listed_with_download_links(app, as_user):
    sales1 = as_user("sales1")
    form = sales1.get("/approval/start/expense").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in form and 'type="file" multiple' in form and 'name="invoices"' in form
    request_id = started(app, sales1, [(PDF, "发票.pdf"), (PNG, "小票.png")])

    invoices = request_row(app, request_id).context["form"]["invoices"]
    assert [ref["name"] for ref in invoices] == ["发票.pdf", "小票.png"]
    with app.app_context():
        rows = db.session.scalars(select(Attachment).where(Attachment.resource == "approval.request",
                                                           Attachment.record_id == request_id)
                                  .order_by(Attachment.id)).all()
        assert [ref["id"] for ref in invoices] == [a.id for a in rows]
        assert [a.content_type for a in rows] == ["application/pdf", "image/png"]
        audited = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "attach")
                                     .order_by(AuditEntry.id)).all()
        assert [(e.resource, e.record_id, e.summary, e.actor_name) for e in audited] == [
            ("approval.request", request_id, "发票.pdf", "sales1"), ("approval.request", request_id, "小票.png", "sales1")]

    detail = sales1.get(f"/approval/requests/{request_id}").get_data(as_text=True)
    link = f'/approval/requests/{request_id}/files/{invoices[0]["id"]}'
    assert f'href="{link}"' in detail and "发票.pdf" in detail
    download = sales1.get(link)
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")
    api = sales1.api("GET", f"/api/v1/approval/requests/{request_id}").get_json()
    assert api["form"]["invoices"] == invoices
    assert [a["filename"] for a in api["attachments"]] == ["发票.pdf", "小票.png"]
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "download"))
        assert (entry.resource, entry.record_id, entry.actor_name) == ("core.attachment", invoices[0]["id"], "sales1")


def test_an_executable_named_pdf_is_a_field_error_and_nothing_is_created(app, as_user):
    sales1 = as_user("sales1")
    before = count(app, Request), count(app, Attachment)
    response = page_start(sales1, files=[(PDF, "ok.pdf"), (EXE, "发票.pdf")])
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="f-invoices"' in html and "发票.pdf:" in html and "is-invalid" in html
    # Through the API, with another bad field: both are reported, nothing is written.
    payload = json.dumps({"flow_key": "expense", "form": {"amount": "abc", "reason": "x"}})
    bad = api_multipart(sales1, "/api/v1/approval/requests",
                        {"payload": payload, "invoices": [(io.BytesIO(EXE), "发票.pdf")]})
    assert bad.status_code == 422, bad.get_json()
    assert {"amount", "invoices"} <= set(bad.get_json()["error"]["fields"])
    assert (count(app, Request), count(app, Attachment)) == before
    with app.app_context():
        assert not db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "attach"))


def test_files_are_downloaded_by_the_initiator_approvers_and_admins_and_nobody_else(app, as_user):
    request_id = started(app, as_user("sales1"), [(PDF, "发票.pdf")])
    file_id = request_row(app, request_id).context["form"]["invoices"][0]["id"]
    page, api = f"/approval/requests/{request_id}/files/{file_id}", \
        f"/api/v1/approval/requests/{request_id}/attachments/{file_id}"
    for name in ("sales1", "salesmgr", "admin"):
        client = as_user(name)
        assert client.get(page).data == PDF, name
        assert client.get(api).status_code == 200, name
    attacker = as_user("sales2")
    assert attacker.get(page).status_code == 404
    assert attacker.get(api).status_code == 404
    assert attacker.get(f"/api/v1/approval/requests/{request_id}/attachments").status_code == 404
    # Their own request's URL with someone else's file id: still not found.
    own = started(app, attacker, [(PNG, "mine.png")])
    assert attacker.get(f"/approval/requests/{own}/files/{file_id}").status_code == 404
    assert attacker.get(f"/api/v1/approval/requests/{own}/attachments/{file_id}").status_code == 404
    with app.app_context():
        downloads = db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "download"))
        assert downloads == 6


def test_a_comment_carries_files_shown_on_the_timeline(app, as_user):
    request_id = started(app, as_user("sales1"), [])
    manager = as_user("salesmgr")
    response = manager.post(f"/approval/requests/{request_id}/act",
                            {"action": "comment", "comment": "请看附件", "files": [(io.BytesIO(PDF), "说明.pdf")]},
                            content_type="multipart/form-data")
    assert response.status_code == 302
    refused = manager.post(f"/approval/requests/{request_id}/act",
                           {"action": "comment", "comment": "x", "files": [(io.BytesIO(EXE), "a.pdf")]},
                           content_type="multipart/form-data")
    assert refused.status_code == 302
    # The API: multipart with a comment part and files parts (the initiator answers with a file only).
    api = api_multipart(as_user("sales1"), f"/api/v1/approval/requests/{request_id}/comments",
                        {"files": [(io.BytesIO(PNG), "补充.png")]})
    assert api.status_code == 200, api.get_json()
    with app.app_context():
        comments = db.session.scalars(select(Event).where(Event.request_id == request_id, Event.action == "comment")
                                      .order_by(Event.id)).all()
        assert [(e.comment, [f["name"] for f in e.details["files"]]) for e in comments] == [
            ("请看附件", ["说明.pdf"]), ("", ["补充.png"])]
        assert count(app, Attachment) == 2  # the refused comment stored nothing
        file_id = comments[0].details["files"][0]["id"]
    detail = as_user("sales1").get(f"/approval/requests/{request_id}").get_data(as_text=True)
    assert f'/approval/requests/{request_id}/files/{file_id}' in detail and "说明.pdf" in detail
    assert as_user("sales1").get(f"/approval/requests/{request_id}/files/{file_id}").data == PDF
    assert as_user("sales2").get(f"/approval/requests/{request_id}/files/{file_id}").status_code == 404


def test_api_clients_start_with_json_and_attach_files_afterwards(app, as_user):
    sales1 = as_user("sales1")
    created = sales1.api("POST", "/api/v1/approval/requests",
                         json={"flow_key": "expense", "form": {"amount": "8000", "reason": "客户拜访"}})
    assert created.status_code == 201
    request_id = created.get_json()["id"]
    url = f"/api/v1/approval/requests/{request_id}/attachments"
    added = api_multipart(sales1, url, {"field": "invoices", "file": [(io.BytesIO(PDF), "发票.pdf")]})
    assert added.status_code == 201, added.get_json()
    body = added.get_json()
    assert [ref["name"] for ref in body["items"]] == ["发票.pdf"]
    assert body["request"]["form"]["invoices"] == body["items"]
    assert body["request"]["timeline"][-1]["action"] == "attach"
    assert api_multipart(sales1, url, {"field": "reason", "file": [(io.BytesIO(PDF), "a.pdf")]}).status_code == 422
    assert "file" in api_multipart(sales1, url, {"field": "invoices", "file": [(io.BytesIO(EXE), "a.pdf")]}) \
        .get_json()["error"]["fields"]
    assert api_multipart(as_user("salesmgr"), url, {"field": "invoices", "file": [(io.BytesIO(PDF), "a.pdf")]}) \
        .status_code == 403
    assert api_multipart(as_user("sales2"), url, {"field": "invoices", "file": [(io.BytesIO(PDF), "a.pdf")]}) \
        .status_code == 404
    # A JSON client cannot point a field at files that are not the request's.
    forged = sales1.api("POST", "/api/v1/approval/requests", json={
        "flow_key": "expense", "form": {"amount": "10", "reason": "x", "invoices": [body["items"][0]["id"]]}})
    assert forged.status_code == 422 and "invoices" in forged.get_json()["error"]["fields"]
    assert count(app, Attachment) == 1


def test_a_returned_request_keeps_or_drops_its_files_and_takes_new_ones_when_resubmitted(app, as_user):
    sales1 = as_user("sales1")
    request_id = started(app, sales1, [(PDF, "旧发票.pdf"), (PNG, "旧小票.png")])
    old = request_row(app, request_id).context["form"]["invoices"]
    manager = as_user("salesmgr")
    task = next(t for t in manager.api("GET", f"/api/v1/approval/requests/{request_id}").get_json()["tasks"]
                if t["status"] == "pending")
    assert manager.api("POST", f"/api/v1/approval/tasks/{task['id']}/return", json={"comment": "补发票"}).status_code == 200
    page = sales1.get(f"/approval/requests/{request_id}/resubmit").get_data(as_text=True)
    assert 'value="%d"' % old[0]["id"] in page and "旧发票.pdf" in page
    response = sales1.post(f"/approval/requests/{request_id}/resubmit",
                           {"amount": "8000", "reason": "客户拜访", "invoices": [str(old[0]["id"]), (io.BytesIO(PDF), "新发票.pdf")]},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    req = request_row(app, request_id)
    assert req.status == "running"
    assert [ref["name"] for ref in req.context["form"]["invoices"]] == ["旧发票.pdf", "新发票.pdf"]
