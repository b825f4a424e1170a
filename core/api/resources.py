"""The REST API every ``Resource`` gets: ``/api/v1/<plugin>/<plural>[/<id>]``.

Handlers stay thin: they parse the request and call the generic services in ``core.resources``,
which apply the scope, the field rules, validation, optimistic locking and the audit trail.
"""
from __future__ import annotations

import csv
import io

from flask import Response, jsonify, request, stream_with_context
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import audit, resources as records, xlsx
from core.display import Reading
from core.imports import service as imports
from core.api import bp
from core.api.helpers import envelope, json_body
from core.errors import ValidationError
from core.extensions import db

EXPORT_BATCH = 500


def _version_from_header() -> int | None:
    header = request.headers.get("If-Match", "").strip().removeprefix("W/").strip('"')
    if not header:
        return None
    if not header.isdigit():
        raise ValidationError(_("If-Match must be the record's version number."),
                              fields={"version": [_("Not a valid integer.")]})
    return int(header)


def _required_version(body: dict | None = None) -> int:
    """Writes must say which version they were based on (``If-Match`` or ``version``)."""
    version = _version_from_header()
    if version is None and body is not None:
        version = body.get("version")
    if version is None:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"version": [_("Send the version you read (If-Match header or version field).")]})
    return version


@bp.get("/<name:plugin>/<name:plural>")
@login_required
def resource_list(plugin: str, plural: str):
    resource = records.by_path(plugin, plural)
    page = records.list_page(resource, current_user, request.args)
    return jsonify(envelope(page.items, page.total, page.page, page.per_page))


@bp.post("/<name:plugin>/<name:plural>")
@login_required
def resource_create(plugin: str, plural: str):
    resource = records.by_path(plugin, plural)
    obj = records.create(resource, current_user, json_body())
    db.session.commit()
    return jsonify(records.dump(resource, current_user, obj)), 201


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>")
@login_required
def resource_get(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    obj = records.get(resource, current_user, record_id)
    response = jsonify(records.dump(resource, current_user, obj))
    response.headers["ETag"] = f'"{obj.version}"'
    return response


@bp.patch("/<name:plugin>/<name:plural>/<int:record_id>")
@login_required
def resource_update(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    body = json_body()
    version = _required_version(body)
    obj = records.update(resource, current_user, record_id, body, version=version)
    db.session.commit()
    return jsonify(records.dump(resource, current_user, obj))


@bp.delete("/<name:plugin>/<name:plural>/<int:record_id>")
@login_required
def resource_delete(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    records.delete(resource, current_user, record_id, version=_version_from_header())
    db.session.commit()
    return "", 204


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>/history")
@login_required
def resource_history(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    records.get(resource, current_user, record_id)  # the same scope as reading the record
    entries = audit.history(resource.key, record_id, viewer=current_user)
    return jsonify({"items": [
        {"id": e.id, "at": e.at.isoformat(), "actor": e.actor_name, "action": e.action, "changes": e.changes}
        for e in entries
    ]})


def _printable(args) -> dict:
    """Query parameters as the audit trail can store them (PostgreSQL's JSON holds no NUL character)."""
    return {k.replace("\x00", ""): v.replace("\x00", "") for k, v in args.items()}


#: Fields a list export puts after the record's own (the schema may declare them first).
_KEPT_BY_THE_SYSTEM = ("owner_id", "department_id", "created_at", "updated_at")


def _export_fields(resource, user) -> list[str]:
    """The fields a list export has: every one the user may see but the version counter, the id
    first and the owner, department and times last."""
    fields = [f for f in records.visible_fields(resource, user) if f != "version"]
    last = [f for f in _KEPT_BY_THE_SYSTEM if f in fields]
    first = ["id"] if "id" in fields else []
    return first + [f for f in fields if f not in first and f not in last] + last


def _people_rows(resource, user, query, fields):
    """Batches of the list's rows as people read them (``core.display.Reading``: names, labels,
    local times), which the import reads back."""
    reading = Reading(resource, user)
    cells = [(f, reading.cell(f)) for f in fields]
    for batch in records.dumped_batches(resource, user, query, EXPORT_BATCH):
        reading.read(batch)
        yield [[cell(row.get(f)) for f, cell in cells] for row in batch]


def _csv_cell(value):
    """A CSV cell: empty for none; text Excel would run as a formula quoted (``imports.safe_csv``)."""
    if value is None:
        return ""
    return imports.safe_csv(value) if type(value) is str else value


@bp.get("/<name:plugin>/<name:plural>/export.csv")
@login_required
def resource_export(plugin: str, plural: str):
    """The current filtered list as CSV, streamed in batches, as the user may see it and reads it
    (headers in their language, names and labels for ids and codes, local times); audited."""
    resource = records.by_path(plugin, plural)
    query = records.list_query(resource, current_user, request.args, action="export")
    audit.record("export", resource=resource.key, summary=str(resource.label_plural),
                 changes={"filters": _printable(request.args)}, actor=current_user)
    db.session.commit()
    user = current_user._get_current_object()
    fields = _export_fields(resource, user)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")  # a BOM so that Excel opens UTF-8 Chinese text correctly
        writer.writerow([records.field_label(resource, f) for f in fields])
        for batch in _people_rows(resource, user, query, fields):
            writer.writerows([_csv_cell(v) for v in row] for row in batch)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    filename = f"{resource.plugin}-{resource.plural}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<name:plugin>/<name:plural>/export.xlsx")
@login_required
def resource_export_xlsx(plugin: str, plural: str):
    """The current filtered list as XLSX, as the user may see it and reads it (as the CSV); audited.

    Rows go from the database in batches into the workbook (``core.xlsx``), which is written to a
    temporary file: memory stays flat however long the list is, and the file is then streamed.
    """
    import tempfile

    from flask import send_file

    resource = records.by_path(plugin, plural)
    query = records.list_query(resource, current_user, request.args, action="export")
    if records.count(query) >= xlsx.MAX_ROWS:  # the header takes a row
        raise xlsx.too_many_rows()
    audit.record("export", resource=resource.key, summary=str(resource.label_plural),
                 changes={"filters": _printable(request.args), "format": "xlsx"}, actor=current_user)
    db.session.commit()
    user = current_user._get_current_object()
    fields = _export_fields(resource, user)
    rows = (row for batch in _people_rows(resource, user, query, fields) for row in batch)

    spool = tempfile.TemporaryFile()
    try:
        imports.write_xlsx(spool, [records.field_label(resource, f) for f in fields], rows)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return send_file(spool, mimetype=xlsx.MIMETYPE, as_attachment=True,
                     download_name=f"{resource.plugin}-{resource.plural}.xlsx")
