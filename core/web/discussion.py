"""Attachments and comments on every record's detail page (the "附件" section, the History thread).

Page routes under ``/<plugin>/<plural>/<id>/``: ``attachments`` (upload, POST), ``attachments/<n>``
(download), ``attachments/<n>/delete`` (POST), ``comments`` (POST). They call the services in
``core.attachments`` and ``core.comments``, which check access through the record's scope.
Templates include ``records/_attachments.html`` and ``records/_comments.html`` with the data of
``discussion(resource, obj)``, so a plugin's own detail page can show the same sections.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import attachments, comments, resources as records
from core.errors import ValidationError
from core.extensions import db

bp = Blueprint("discussion", __name__)


def download_response(download: attachments.Download):
    """The file as a download, never shown inline: ``Content-Disposition: attachment`` with the
    original name (RFC 5987 ``filename*`` for Chinese names), the stored type, ``nosniff`` and a
    sandboxing CSP in case a browser opens it anyway."""
    attachment = download.attachment
    response = send_file(download.handle, mimetype=attachment.content_type, as_attachment=True,
                         download_name=attachment.filename, conditional=False, etag=False, max_age=0)
    response.content_length = attachment.size
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.app_template_global()
def discussion(resource, obj) -> dict:
    """What the detail page's attachment section and comment thread show, for a record the
    viewer has already been allowed to read (the page got ``obj`` through ``records.get``)."""
    thread = comments.list_for(resource, obj.id, current_user)
    files = attachments.rows(resource.key, obj.id)
    names = comments.authors(thread)
    uploaders = {a.uploaded_by_id for a in files if a.uploaded_by_id} - set(names)
    if uploaders:
        from core.org.services import display_names

        names.update(display_names(uploaders))
    return {"attachments": files, "comments": thread, "names": names, "render": comments.render,
            "size": attachments.human_size, "accept": attachments.accept_attribute(),
            "max_mb": attachments.max_mb(), "types": ", ".join(k.name for k in attachments.kinds())}


def _detail(plugin: str, plural: str, record_id: int, **kwargs):
    return redirect(url_for("records.detail", plugin=plugin, plural=plural, record_id=record_id, **kwargs))


def _first_message(exc: ValidationError, field: str) -> str:
    messages = exc.fields.get(field) or [exc.message]
    return str(messages[0])


@bp.post("/<name:plugin>/<name:plural>/<int:record_id>/attachments")
@login_required
def upload(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    try:
        attachment = attachments.save(resource, record_id, request.files.get("file"), current_user)
        db.session.commit()
        flash(_("Attached %(name)s.", name=attachment.filename), "success")
    except ValidationError as exc:
        db.session.rollback()
        flash(_first_message(exc, "file"), "danger")
    return _detail(plugin, plural, record_id)


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>/attachments/<int:attachment_id>")
@login_required
def download(plugin: str, plural: str, record_id: int, attachment_id: int):
    resource = records.by_path(plugin, plural)
    result = attachments.open_for_download(resource, record_id, attachment_id, current_user)
    db.session.commit()  # the audit entry, before the bytes go out
    return download_response(result)


@bp.post("/<name:plugin>/<name:plural>/<int:record_id>/attachments/<int:attachment_id>/delete")
@login_required
def remove(plugin: str, plural: str, record_id: int, attachment_id: int):
    resource = records.by_path(plugin, plural)
    attachment = attachments.remove(resource, record_id, attachment_id, current_user)
    db.session.commit()
    flash(_("Removed %(name)s.", name=attachment.filename), "success")
    return _detail(plugin, plural, record_id)


@bp.post("/<name:plugin>/<name:plural>/<int:record_id>/comments")
@login_required
def comment(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    try:
        posted = comments.post(resource, record_id, current_user, request.form.get("body", ""))
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        flash(_first_message(exc, "body"), "danger")
        return _detail(plugin, plural, record_id, tab="history", _anchor="discussion")
    return _detail(plugin, plural, record_id, tab="history", _anchor=f"comment-{posted.id}")
