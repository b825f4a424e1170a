"""Attachments and comments of every resource's records in the REST API.

``GET/POST /api/v1/<plugin>/<plural>/<id>/attachments`` (upload: multipart field ``file``),
``GET/DELETE .../attachments/<attachment_id>`` (download / remove),
``GET/POST .../comments`` (post: ``{"body": "..."}``). Access is the record's: read to list,
download and comment, update to upload and remove; a record outside the scope is a 404.
"""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import attachments, comments, resources as records
from core.api import bp
from core.api.helpers import json_body
from core.errors import ValidationError
from core.extensions import db
from core.web.discussion import download_response


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>/attachments")
@login_required
def attachment_list(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    return jsonify({"items": [attachments.dump(a) for a in attachments.list_for(resource, record_id, current_user)]})


@bp.post("/<name:plugin>/<name:plural>/<int:record_id>/attachments")
@login_required
def attachment_upload(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    attachment = attachments.save(resource, record_id, request.files.get("file"), current_user)
    db.session.commit()
    return jsonify(attachments.dump(attachment)), 201


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>/attachments/<int:attachment_id>")
@login_required
def attachment_download(plugin: str, plural: str, record_id: int, attachment_id: int):
    resource = records.by_path(plugin, plural)
    result = attachments.open_for_download(resource, record_id, attachment_id, current_user)
    db.session.commit()
    return download_response(result)


@bp.delete("/<name:plugin>/<name:plural>/<int:record_id>/attachments/<int:attachment_id>")
@login_required
def attachment_delete(plugin: str, plural: str, record_id: int, attachment_id: int):
    resource = records.by_path(plugin, plural)
    attachments.remove(resource, record_id, attachment_id, current_user)
    db.session.commit()
    return "", 204


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>/comments")
@login_required
def comment_list(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    thread = comments.list_for(resource, record_id, current_user)
    names = comments.authors(thread)
    return jsonify({"items": [comments.dump(c, names) for c in thread]})


@bp.post("/<name:plugin>/<name:plural>/<int:record_id>/comments")
@login_required
def comment_create(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    body = json_body()
    unknown = set(body) - {"body"}
    if unknown:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={name: [_("Unknown field.")] for name in sorted(unknown)})
    comment = comments.post(resource, record_id, current_user, body.get("body"))
    db.session.commit()
    return jsonify(comments.dump(comment, {current_user.id: current_user.display_name})), 201


# OpenAPI ------------------------------------------------------------------------------------------


def openapi_components(builder) -> None:
    """The ``Attachment`` and ``Comment`` schemas of the document (``core.api.openapi``)."""
    builder.spec.components.schema("Attachment", component={
        "type": "object",
        "required": ["id", "filename", "size", "content_type", "sha256", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "filename": {"type": "string"}, "size": {"type": "integer"},
            "content_type": {"type": "string"}, "sha256": {"type": "string"},
            "uploaded_by_id": {"type": "integer", "nullable": True}, "created_at": {"type": "string", "format": "date-time"},
        },
    })
    builder.spec.components.schema("Comment", component={
        "type": "object",
        "required": ["id", "body", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "author_id": {"type": "integer", "nullable": True},
            "author": {"type": "string", "nullable": True},
            "body": {"type": "string", "description": _("Plain text; escape it when showing it as HTML.")},
            "created_at": {"type": "string", "format": "date-time"},
        },
    })


def openapi_paths(builder, resource) -> None:
    """The attachment and comment operations of one resource's records."""
    from core.api.openapi import _path_id

    tag, label = [resource.key], str(resource.label_plural)
    op = f"{resource.plugin}_{resource.name}"
    path = f"/{resource.plugin}/{resource.plural}/{{record_id}}"
    record_id, attachment_id = _path_id("record_id"), _path_id("attachment_id")
    attachment = {"$ref": "#/components/schemas/Attachment"}
    comment = {"$ref": "#/components/schemas/Comment"}

    def items(schema):
        return {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": schema}}}

    builder.spec.path(f"{path}/attachments", operations={
        "get": {"tags": tag, "operationId": f"{op}_attachments", "summary": _("Attachments (%(what)s)", what=label),
                "parameters": [record_id], "responses": builder.responses("200", items(attachment), "403", "404")},
        "post": {"tags": tag, "operationId": f"{op}_attach", "summary": _("Attach a file (%(what)s)", what=label),
                 "description": _("Needs update permission on the record. The file's content must be one of the "
                                  "accepted kinds and agree with its name's extension."),
                 "parameters": [record_id],
                 "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                     "type": "object", "required": ["file"],
                     "properties": {"file": {"type": "string", "format": "binary"}}}}}},
                 "responses": builder.responses("201", attachment, "400", "403", "404", "422")},
    })
    builder.spec.path(f"{path}/attachments/{{attachment_id}}", operations={
        "get": {"tags": tag, "operationId": f"{op}_attachment_download",
                "summary": _("Download an attachment (%(what)s)", what=label),
                "parameters": [record_id, attachment_id],
                "responses": builder.responses("200", {"type": "string", "format": "binary"}, "403", "404",
                                               media="application/octet-stream",
                                               description=_("The file, as Content-Disposition: attachment."))},
        "delete": {"tags": tag, "operationId": f"{op}_attachment_delete",
                   "summary": _("Remove an attachment (%(what)s)", what=label),
                   "parameters": [record_id, attachment_id],
                   "responses": builder.responses("204", None, "403", "404", description=_("Removed."))},
    })
    builder.spec.path(f"{path}/comments", operations={
        "get": {"tags": tag, "operationId": f"{op}_comments", "summary": _("Comments (%(what)s)", what=label),
                "parameters": [record_id], "responses": builder.responses("200", items(comment), "403", "404")},
        "post": {"tags": tag, "operationId": f"{op}_comment", "summary": _("Comment (%(what)s)", what=label),
                 "description": _("@username or @name notifies colleagues who may read the record."),
                 "parameters": [record_id],
                 "requestBody": builder.json_body({
                     "type": "object", "required": ["body"], "additionalProperties": False,
                     "properties": {"body": {"type": "string", "minLength": 1, "maxLength": comments.BODY_MAX}}}),
                 "responses": builder.responses("201", comment, "400", "403", "404", "422")},
    })
