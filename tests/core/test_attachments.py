"""Attachments on any record: checked by content, stored by hash, read only through the record's scope.

The sample third-party ``notes`` plugin stands in for any resource: sales1 (华东区) and sales2
(华南区) each own their notes; salesmgr (销售部, above both) may read both departments' notes but
update only his own.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import attachments, backup
from core.attachments.models import Attachment
from core.attachments.sniff import sniff
from core.audit.models import AuditEntry
from core.extensions import db

from tests.conftest import PASSWORD
from tests.core.conftest import WITH_NOTES, login
from tests.core.test_backup import other_database  # noqa: F401  (a fixture: an empty database of the other engine)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 100 + b"This program cannot be run in DOS mode."


def office(folder: str) -> bytes:
    """A minimal OOXML package: ``[Content_Types].xml`` plus a main part in ``folder``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(f"{folder}document.xml", "<document/>")
    return buffer.getvalue()


def new_note(client, title="客户拜访纪要") -> int:
    response = client.api("post", "/api/v1/notes/notes", json={"title": title, "body": "正文"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def upload(client, note_id: int, content: bytes, name: str):
    return client.http.post(f"/api/v1/notes/notes/{note_id}/attachments",
                            data={"file": (io.BytesIO(content), name)},
                            headers={"X-CSRFToken": client.token()}, content_type="multipart/form-data")


def file_error(response) -> str:
    assert response.status_code == 422, response.get_data(as_text=True)
    return " ".join(response.get_json()["error"]["fields"]["file"])


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


# Content ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, name, kind", [
    (PDF, "a.pdf", "pdf"), (PNG, "a.png", "png"), (b"\xff\xd8\xff\xe0JFIF", "a.jpg", "jpg"),
    (b"GIF89a....", "a.gif", "gif"), (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "a.webp", "webp"),
    (office("word/"), "a.docx", "docx"), (office("xl/"), "a.xlsx", "xlsx"), (office("ppt/"), "a.pptx", "pptx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "a.xls", "xls"),
    ("名称,金额\n华东,100\n".encode("gbk"), "a.csv", "csv"), ("会议纪要\n".encode(), "a.txt", "txt"),
    (EXE, "a.pdf", "executable"), (b"<!DOCTYPE html><html><script>alert(1)</script>", "a.txt", "html"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "a.txt", "svg"),
    (b"\x00\x01\x02binary", "a.txt", None),
])
def test_files_are_recognised_by_their_bytes(content, name, kind):
    found = sniff(io.BytesIO(content), name.rpartition(".")[2])
    assert (found.name if found else None) == kind


def test_an_executable_named_pdf_is_refused_and_nothing_is_stored(company):
    client = login(company, "sales1")
    note = new_note(client)
    response = upload(client, note, EXE, "合同.pdf")
    assert "docx, gif, jpg" in file_error(response)  # the message lists what is accepted
    assert list(response.get_json()["error"]["fields"]) == ["file"]
    assert count(company, Attachment) == 0
    assert not (Path(company.instance_path) / "attachments").exists() or not any(
        p.is_file() for p in (Path(company.instance_path) / "attachments").rglob("*"))


@pytest.mark.parametrize("content, name", [
    (PDF, "报价.png"),                              # the name does not agree with the content
    (b"<html><body>hi</body></html>", "page.txt"),  # HTML, whatever its name
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg"),
    (office(""), "a.docx"),                          # a plain zip named like a Word file
    (b"", "empty.pdf"),
    (PDF, "no-extension"),
    (b"\x7fELF\x02\x01\x01", "tool.txt"),
])
def test_bad_files_get_a_field_error_on_file(company, content, name):
    client = login(company, "sales1")
    note = new_note(client)
    file_error(upload(client, note, content, name))
    assert count(company, Attachment) == 0


def test_a_missing_file_is_a_field_error(company):
    client = login(company, "sales1")
    note = new_note(client)
    response = client.http.post(f"/api/v1/notes/notes/{note}/attachments", data={},
                                headers={"X-CSRFToken": client.token()}, content_type="multipart/form-data")
    assert "Choose a file" in file_error(response) or "选择" in file_error(response)


def test_a_file_over_the_size_limit_is_refused(make_app):
    from core.demo import create_demo_company

    app = make_app(plugins=WITH_NOTES, ATTACHMENTS_MAX_MB=1)
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    client = login(app, "sales1")
    note = new_note(client)
    big = PDF + b"0" * (1024 * 1024)
    assert "1 MB" in file_error(upload(client, note, big, "big.pdf"))
    assert upload(client, note, PDF + b"0" * (1024 * 1024 - len(PDF)), "exactly-1mb.pdf").status_code == 201


# Storage ------------------------------------------------------------------------------------------


def test_uploads_are_stored_by_content_and_identical_content_is_kept_once(company):
    client = login(company, "sales1")
    first, second = new_note(client, "一"), new_note(client, "二")
    a = upload(client, first, PDF, "合同.pdf").get_json()
    b = upload(client, second, PDF, "合同副本.pdf").get_json()
    digest = hashlib.sha256(PDF).hexdigest()
    assert a["sha256"] == b["sha256"] == digest and a["id"] != b["id"]
    root = Path(company.instance_path) / "attachments"
    stored = [p for p in root.rglob("*") if p.is_file()]
    assert stored == [root / digest[:2] / digest[2:4] / digest]
    assert stored[0].read_bytes() == PDF
    assert a["filename"] == "合同.pdf" and a["size"] == len(PDF) and a["content_type"] == "application/pdf"


def test_a_path_in_the_file_name_is_dropped(company):
    client = login(company, "sales1")
    note = new_note(client)
    body = upload(client, note, PDF, "..\\..\\etc/passwd/报告.pdf").get_json()
    assert body["filename"] == "报告.pdf"


# Access -------------------------------------------------------------------------------------------


def test_download_sends_the_file_as_an_attachment_with_its_chinese_name(company):
    client = login(company, "sales1")
    note = new_note(client)
    att = upload(client, note, PDF, "2026年 合同.pdf").get_json()
    response = client.get(f"/api/v1/notes/notes/{note}/attachments/{att['id']}")
    assert response.status_code == 200
    assert response.data == PDF
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''2026%E5%B9%B4%20%E5%90%88%E5%90%8C.pdf" in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Length"] == str(len(PDF))
    page = client.get(f"/notes/notes/{note}/attachments/{att['id']}")
    assert page.status_code == 200 and page.data == PDF and page.headers["Content-Disposition"].startswith("attachment")


def test_another_departments_attachment_is_not_found(company):
    owner, attacker = login(company, "sales1"), login(company, "sales2")
    note = new_note(owner)
    att = upload(owner, note, PDF, "报价单.pdf").get_json()
    own_note = new_note(attacker, "我的")
    base = f"/api/v1/notes/notes/{note}/attachments"
    assert attacker.api("get", base).status_code == 404
    assert attacker.get(f"{base}/{att['id']}").status_code == 404
    assert attacker.get(f"/notes/notes/{note}/attachments/{att['id']}").status_code == 404
    assert upload(attacker, note, PDF, "x.pdf").status_code == 404
    assert attacker.api("delete", f"{base}/{att['id']}").status_code == 404
    # The attachment's id under a record the attacker may read is no way round either.
    assert attacker.get(f"/api/v1/notes/notes/{own_note}/attachments/{att['id']}").status_code == 404
    assert count(company, Attachment) == 1


def test_a_manager_may_read_but_not_change_a_reps_attachments(company):
    owner, manager = login(company, "sales1"), login(company, "salesmgr")
    note = new_note(owner)
    att = upload(owner, note, PDF, "报价单.pdf").get_json()
    base = f"/api/v1/notes/notes/{note}/attachments"
    assert [a["id"] for a in manager.api("get", base).get_json()["items"]] == [att["id"]]
    assert manager.get(f"{base}/{att['id']}").data == PDF
    assert upload(manager, note, PNG, "x.png").status_code == 404       # update scope: his own notes only
    assert manager.api("delete", f"{base}/{att['id']}").status_code == 404


def test_removing_an_attachment_hides_it_and_keeps_the_row(company):
    client = login(company, "sales1")
    note = new_note(client)
    att = upload(client, note, PDF, "旧版.pdf").get_json()
    base = f"/api/v1/notes/notes/{note}/attachments"
    assert client.api("delete", f"{base}/{att['id']}").status_code == 204
    assert client.api("get", base).get_json()["items"] == []
    assert client.get(f"{base}/{att['id']}").status_code == 404
    assert client.api("delete", f"{base}/{att['id']}").status_code == 404
    with company.app_context():
        assert db.session.get(Attachment, att["id"]).deleted_at is not None


def test_upload_download_and_removal_are_audited(company):
    client = login(company, "sales1")
    note = new_note(client)
    att = upload(client, note, PDF, "合同.pdf").get_json()
    client.get(f"/api/v1/notes/notes/{note}/attachments/{att['id']}")
    client.api("delete", f"/api/v1/notes/notes/{note}/attachments/{att['id']}")
    with company.app_context():
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action.in_(("attach", "download", "detach")))
                                     .order_by(AuditEntry.id)).all()
        assert [(e.action, e.resource, e.actor_name) for e in entries] == [
            ("attach", "notes.note", "sales1"), ("download", "core.attachment", "sales1"),
            ("detach", "notes.note", "sales1")]
        assert entries[0].record_id == note and entries[0].changes["attachment"] == [None, "合同.pdf"]
        assert entries[1].record_id == att["id"]


# Pages --------------------------------------------------------------------------------------------


def test_the_detail_page_lists_attachments_and_uploads_with_its_form(company):
    client = login(company, "sales1")
    note = new_note(client)
    page = client.get(f"/notes/notes/{note}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="csrf_token"' in page
    response = client.post(f"/notes/notes/{note}/attachments", {"file": (io.BytesIO(PDF), "<img src=x onerror=alert(1)>报价.pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get(f"/notes/notes/{note}").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;报价.pdf" in page and "<img src=x" not in page
    refused = client.post(f"/notes/notes/{note}/attachments", {"file": (io.BytesIO(EXE), "a.pdf")},
                          content_type="multipart/form-data", follow_redirects=True)
    assert refused.status_code == 200 and 'alert-danger' in refused.get_data(as_text=True)
    assert count(company, Attachment) == 1


def test_a_reader_who_may_not_update_sees_no_upload_form(company):
    owner, manager = login(company, "sales1"), login(company, "salesmgr")
    note = new_note(owner)
    upload(owner, note, PDF, "合同.pdf")
    page = manager.get(f"/notes/notes/{note}").get_data(as_text=True)
    assert "合同.pdf" in page and 'enctype="multipart/form-data"' not in page


def test_an_upload_without_the_csrf_token_is_refused(company):
    client = login(company, "sales1")
    note = new_note(client)
    response = client.http.post(f"/notes/notes/{note}/attachments", data={"file": (io.BytesIO(PDF), "a.pdf")},
                                content_type="multipart/form-data")
    assert response.status_code == 400
    assert count(company, Attachment) == 0


# Backups ------------------------------------------------------------------------------------------


def test_a_backup_archives_uploaded_files_and_restores_them_where_downloads_find_them(company, tmp_path):
    client = login(company, "sales1")
    note = new_note(client)
    att = upload(client, note, PDF, "合同.pdf").get_json()
    digest = att["sha256"]
    archive = tmp_path / "backup.zip"
    with company.app_context():
        manifest = backup.create_backup(archive)
    relative = f"{digest[:2]}/{digest[2:4]}/{digest}"
    assert manifest["files"] == {relative: digest}
    assert manifest["tables"]["core_attachment"]["rows"] == 1
    with zipfile.ZipFile(archive) as opened:
        assert opened.read(f"files/{relative}") == PDF
    stored = Path(company.instance_path) / "attachments" / relative
    stored.unlink()
    assert client.get(f"/api/v1/notes/notes/{note}/attachments/{att['id']}").status_code == 404  # lost: not a 500
    with company.app_context():
        backup._restore_files(archive, manifest)
    assert client.get(f"/api/v1/notes/notes/{note}/attachments/{att['id']}").data == PDF


def test_a_backup_restored_into_a_new_database_keeps_uploaded_files(make_app, other_database, tmp_path):
    """The whole round trip, into the other engine (needs the migrations of every new core table)."""
    from core import create_app
    from core.demo import create_demo_company

    from tests.conftest import FAST_HASH

    app = make_app(plugins=WITH_NOTES, schema="migrate")
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    client = login(app, "sales1")
    note = new_note(client)
    att = upload(client, note, PDF, "合同.pdf").get_json()
    archive = tmp_path / "backup.zip"
    with app.app_context():
        backup.create_backup(archive)
    target = create_app({"TESTING": True, "DATABASE_URL": other_database, "PLUGINS": list(WITH_NOTES),
                         "INSTANCE_PATH": str(tmp_path / "restored-instance"), "PASSWORD_HASH": FAST_HASH,
                         "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789"})
    try:
        with target.app_context():
            backup.restore_backup(archive)
        response = login(target, "sales1").get(f"/api/v1/notes/notes/{note}/attachments/{att['id']}")
        assert response.status_code == 200 and response.data == PDF
    finally:
        with target.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


def test_service_api_for_plugins(company):
    """``store``/``rows`` for a plugin's own objects; ``save``/``list_for`` check the record's scope."""
    from werkzeug.datastructures import FileStorage

    from core.errors import NotFound
    from core.org.models import User

    client = login(company, "sales1")
    note = new_note(client)
    with company.app_context():
        sales1 = db.session.scalar(select(User).where(User.username == "sales1"))
        sales2 = db.session.scalar(select(User).where(User.username == "sales2"))
        saved = attachments.save("notes.note", note, FileStorage(io.BytesIO(PDF), "a.pdf"), sales1)
        assert [a.id for a in attachments.list_for("notes.note", note, sales1)] == [saved.id]
        with pytest.raises(NotFound):
            attachments.list_for("notes.note", note, sales2)
        with pytest.raises(NotFound):
            attachments.save("notes.note", note, FileStorage(io.BytesIO(PDF), "a.pdf"), sales2)
        own = attachments.store("approval.comment", 7, FileStorage(io.BytesIO(PNG), "截图.png"), sales2)
        db.session.commit()
        assert [a.id for a in attachments.rows("approval.comment", 7)] == [own.id]
        download = attachments.open_for_download("notes.note", note, saved.id, sales1)
        assert b"".join(download.chunks()) == PDF


# S3-compatible storage ----------------------------------------------------------------------------


@pytest.fixture
def fake_s3():
    """A local fake S3 server (moto) on 127.0.0.1 and a free port; yields its URL, bucket ``yiti``."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    client.create_bucket(Bucket="yiti")
    yield url, client
    server.stop()


def test_attachments_can_live_in_an_s3_compatible_bucket(make_app, fake_s3):
    from core.demo import create_demo_company

    url, s3 = fake_s3
    app = make_app(plugins=WITH_NOTES, ATTACHMENTS_STORAGE="s3", S3_ENDPOINT_URL=url, S3_BUCKET="yiti",
                   S3_ACCESS_KEY="test", S3_SECRET_KEY="test", S3_REGION="us-east-1")
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    client = login(app, "sales1")
    first, second = new_note(client, "一"), new_note(client, "二")
    att = upload(client, first, PDF, "合同.pdf").get_json()
    assert upload(client, second, PDF, "副本.pdf").status_code == 201
    digest = hashlib.sha256(PDF).hexdigest()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="yiti").get("Contents", [])]
    assert keys == [f"{digest[:2]}/{digest[2:4]}/{digest}"]  # stored once, by content
    assert s3.head_object(Bucket="yiti", Key=keys[0])["ContentType"] == "application/pdf"
    assert not (Path(app.instance_path) / "attachments").exists()
    response = client.get(f"/api/v1/notes/notes/{first}/attachments/{att['id']}")
    assert response.status_code == 200 and response.data == PDF
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert login(app, "sales2").get(f"/api/v1/notes/notes/{first}/attachments/{att['id']}").status_code == 404
    s3.delete_object(Bucket="yiti", Key=keys[0])
    assert client.get(f"/api/v1/notes/notes/{first}/attachments/{att['id']}").status_code == 404
