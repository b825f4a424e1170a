"""Import CSV/XLSX files into any ``Resource``: dry run, apply, rejects file, undo.

Every row goes through the same services as the API (``core.resources.create`` / ``update``), so
validation, record scopes, field rules and the audit trail are the ones every other write gets.

1. ``preview`` reads the file (CSV in UTF-8 with or without BOM, or GBK/GB18030 as Chinese Excel
   saves it; or the first sheet of an XLSX), matches each header to a field by its name or its
   label in English or Chinese, and tries every row inside a savepoint that is rolled back:
   nothing is written, every row's errors are kept on the ``Import`` row.
2. ``apply`` writes the good rows (each in its own savepoint): a row whose natural key matches a
   record the user may update changes that record, any other row creates one. Rows that fail are
   kept with their reason for the rejects file. One ``import`` audit entry sums it up.
3. ``undo`` deletes the records the import created and puts back the values it overwrote, each
   only while the record is still at the version the import left it at.

TODO(jobs): ``apply`` runs in the request. It already counts ``done_rows`` / ``total_rows`` and
takes only ids, so a huey task can run it once ``core.jobs`` offers a way to enqueue one-off tasks
that the worker also registers.
"""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import date, datetime, time

import marshmallow
from flask_babel import force_locale, gettext as _, lazy_gettext as _l
from sqlalchemy import exc as sa_exc, or_, select

from core import audit, clock, resources as records
from core.errors import DomainError, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.imports.models import Import
from core.permissions import can, require, scope_filter
from core.permissions.fields import field_rules

__all__ = ["Import", "preview", "apply", "undo", "get_import", "rejects_csv", "template", "write_xlsx", "label",
           "importable_fields", "parse", "require_import"]

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Labels of the fields the core manages (the same msgids the record pages use).
_SYSTEM_LABELS = {"id": "ID", "owner_id": _l("Owner"), "department_id": _l("Department"), "created_at": _l("Created"),
                  "updated_at": _l("Updated"), "version": _l("Version")}
_YES = {"是", "yes", "y", "true", "1", "√", "✓"}
_NO = {"否", "no", "n", "false", "0", ""}
_ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


# Fields and headers ------------------------------------------------------------------------------


def label(resource, name: str) -> str:
    """A field's label in the current language (``metadata={"label": ...}``), else a known name."""
    field = resource.schema._declared_fields.get(name)
    text = field.metadata.get("label") if field is not None else None
    if text:
        return str(text)
    return str(_SYSTEM_LABELS.get(name, name))


def importable_fields(resource, user) -> list[str]:
    """Fields a file may fill for ``user``: writable in the schema and not hidden, masked or read-only."""
    rules = field_rules(resource, user)
    return [name for name, field in resource.schema._declared_fields.items()
            if not field.dump_only and name not in records.SYSTEM_FIELDS
            and rules.get(name) not in ("hidden", "masked", "readonly")]


def _normal(text) -> str:
    return re.sub(r"\s+", "", str(text or "")).strip("*").lower()


def _names_for(resource, name: str) -> set[str]:
    names = {_normal(name)}
    for locale in ("en", "zh_CN"):
        with force_locale(locale):
            names.add(_normal(label(resource, name)))
    return names


def match_headers(resource, user, headers: list[str]) -> tuple[list[str | None], list[str]]:
    """For each header, the field it fills (``None``: ignored); and the headers nothing matched."""
    known = {}
    for name in importable_fields(resource, user):
        for alias in _names_for(resource, name):
            known.setdefault(alias, name)
    mapping, unknown, taken = [], [], set()
    for header in headers:
        name = known.get(_normal(header))
        if name in taken:
            name = None  # a second column for the same field: the first one wins
        mapping.append(name)
        if name is None and str(header).strip():
            unknown.append(str(header))
        taken.add(name)
    return mapping, unknown


# Reading files -----------------------------------------------------------------------------------


def parse(filename: str, data: bytes) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` of a CSV or XLSX file, cells as text; blank rows left out.

    The type is told by the content, not the name: an XLSX is a zip holding ``[Content_Types].xml``,
    a CSV must decode as text. Anything else is a ``ValidationError`` for the ``file`` field.
    """
    if data[:4] == b"PK\x03\x04":
        table = _read_xlsx(data)
    else:
        table = _read_csv(data)
    table = [row for row in table if any(cell for cell in row)]
    if not table:
        raise _file_error(_("The file is empty."))
    headers, rows = table[0], table[1:]
    width = len(headers)
    return headers, [(row + [""] * width)[:width] for row in rows]


def _file_error(message: str) -> ValidationError:
    return ValidationError(message, fields={"file": [message]})


def _read_csv(data: bytes) -> list[list[str]]:
    if b"\x00" in data:
        raise _file_error(_("Upload a CSV or XLSX file (Excel: save as .xlsx or CSV)."))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _file_error(_("Upload a CSV or XLSX file (Excel: save as .xlsx or CSV)."))
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    try:
        return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error:
        raise _file_error(_("Upload a CSV or XLSX file (Excel: save as .xlsx or CSV).")) from None


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "[Content_Types].xml" not in archive.namelist():
                raise _file_error(_("Upload a CSV or XLSX file (Excel: save as .xlsx or CSV)."))
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            return [[_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
        finally:
            workbook.close()
    except ValidationError:
        raise
    except Exception:  # a damaged or foreign zip: whatever openpyxl raises, it is the file's fault
        raise _file_error(_("The XLSX file could not be read.")) from None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value).strip()


# Rows --------------------------------------------------------------------------------------------


def _user_by_name(text: str, user):
    """``owner_id`` from a file: a username or a display name (or the id itself)."""
    from core.org.models import User

    if text.isdigit():
        return int(text)
    ids = db.session.scalars(select(User.id).where(or_(User.username == text, User.display_name == text)).limit(2)).all()
    return ids[0] if len(ids) == 1 else None


def _lookups(resource) -> dict:
    return {"owner_id": _user_by_name, **resource.import_lookups}


def _row_data(resource, user, mapping, cells) -> dict:
    """A row's cells as the input ``create``/``update`` take; names looked up; empty cells left out."""
    data, errors = {}, {}
    lookups = _lookups(resource)
    declared = resource.schema._declared_fields
    for name, text in zip(mapping, cells):
        text = (text or "").strip()
        if name is None or text == "":
            continue
        field = declared[name]
        if name in lookups:
            found = lookups[name](text, user)
            if found is None:
                errors[name] = [_("Nothing called “%(value)s” was found.", value=text)]
                continue
            data[name] = found
        elif isinstance(field, marshmallow.fields.Boolean):
            data[name] = True if text.lower() in _YES else False if text.lower() in _NO else text
        elif isinstance(field, marshmallow.fields.Date) and "T" in text:
            data[name] = text.split("T", 1)[0]  # an Excel date cell reads as midnight
        else:
            data[name] = text
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    return data


def _existing(resource, user, data) -> int | None:
    """The id of the one record ``user`` may update whose natural key is the row's; none: ``None``."""
    key = resource.natural_key
    if not key or data.get(key) in (None, "") or not can(user, resource.permission("update")):
        return None
    try:
        value = resource.schema._declared_fields[key].deserialize(data[key])
    except marshmallow.ValidationError:
        return None  # the create that follows reports the field
    ids = db.session.scalars(select(resource.model.id).where(
        scope_filter(resource, "update", user), getattr(resource.model, key) == value).limit(2)).all()
    if len(ids) > 1:
        raise ValidationError(_("Please correct the highlighted fields."), fields={key: [
            _("Several records have this value; the row cannot say which one to update.")]})
    return ids[0] if ids else None


def _write(resource, user, data) -> tuple[str, object, dict | None]:
    """Create or update one record from a row: ``(kind, record, before-values of the fields written)``."""
    record_id = _existing(resource, user, data)
    if record_id is None:
        return "insert", records.create(resource, user, data), None
    current = records.get(resource, user, record_id, action="update")
    before = records.snapshot(resource, current)
    obj = records.update(resource, user, record_id, data, version=current.version)
    return "update", obj, {k: before.get(k) for k in data}


def _messages(resource, exc: Exception) -> list[tuple[str, str]]:
    """``[(field label, message)]`` for a row that failed."""
    if isinstance(exc, DomainError):
        if exc.fields:
            return [(label(resource, name) if name != "_schema" else "", str(message))
                    for name, messages in exc.fields.items()
                    for message in (messages if isinstance(messages, list) else [messages])]
        return [("", str(exc.message))]
    return [("", _("The database refused this row (is a value a duplicate?)."))]


def _try(resource, user, mapping, cells, keep: bool):
    """Run one row in a savepoint; keep it or roll it back. Returns ``(kind, obj, before)`` or the error."""
    savepoint = db.session.begin_nested()
    try:
        result = _write(resource, user, _row_data(resource, user, mapping, cells))
    except (DomainError, sa_exc.IntegrityError, sa_exc.DataError) as exc:
        if savepoint.is_active:
            savepoint.rollback()
        return exc
    if keep:
        savepoint.commit()
    else:
        savepoint.rollback()
    return result


def require_import(resource, user) -> None:
    require(user, resource.permission("import"))
    if not (can(user, resource.permission("create")) or can(user, resource.permission("update"))):
        raise Forbidden(_("You do not have permission to do this."))


# The three steps ---------------------------------------------------------------------------------


def preview(resource, user, filename: str, data: bytes) -> Import:
    """Read the file and dry-run every row: nothing is written but the ``Import`` row (status ``previewed``)."""
    require_import(resource, user)
    headers, rows = parse(filename, data)
    mapping, unknown = match_headers(resource, user, headers)
    if not any(mapping):
        raise _file_error(_("No column matches a field. Download the template to see the headers."))
    errors, counts = [], {"insert": 0, "update": 0}
    for number, cells in enumerate(rows, start=2):  # row 1 holds the headers
        result = _try(resource, user, mapping, cells, keep=False)
        if isinstance(result, Exception):
            errors += [{"row": number, "field": f, "message": m} for f, m in _messages(resource, result)]
        else:
            counts[result[0]] += 1
    imp = Import(resource=resource.key, user_id=user.id, filename=(filename or "")[:255], status="previewed",
                 total_rows=len(rows), to_insert=counts["insert"], to_update=counts["update"],
                 rejected=len({e["row"] for e in errors}), headers=headers, mapping=mapping,
                 unknown_columns=unknown, rows=rows, errors=errors)
    db.session.add(imp)
    db.session.flush()
    return imp


def get_import(import_id, user) -> Import:
    """The import ``user`` made (an administrator sees every one); otherwise ``NotFound``."""
    imp = db.session.get(Import, import_id) if str(import_id).isdigit() else None
    if imp is None or (imp.user_id != user.id and not user.is_admin):
        raise NotFound(_("Not found."))
    records.get_resource(imp.resource)  # its plugin may have been disabled since
    return imp


def apply(import_id, user) -> Import:
    """Write the previewed rows that pass; keep the others with their reason. Audited."""
    imp = get_import(import_id, user)
    resource = records.get_resource(imp.resource)
    require_import(resource, user)
    if imp.status != "previewed":
        raise ValidationError(_("This import has already been applied."))
    imp.status, imp.done_rows = "done", 0
    db.session.flush()  # the first write opens the transaction the savepoints nest in
    rejects, created, updated = [], [], []
    for number, cells in enumerate(imp.rows or [], start=2):
        result = _try(resource, user, imp.mapping, cells, keep=True)
        if isinstance(result, Exception):
            reason = "; ".join(f"{f}: {m}" if f else m for f, m in _messages(resource, result))
            rejects.append({"row": number, "cells": cells, "reason": reason})
        else:
            kind, obj, before = result
            if kind == "insert":
                created.append([obj.id, obj.version])
            else:
                updated.append({"id": obj.id, "version": obj.version, "before": before})
        imp.done_rows = number - 1
    imp.rejects, imp.created, imp.updated_records = rejects, created, updated
    imp.inserted, imp.updated, imp.rejected = len(created), len(updated), len(rejects)
    imp.rows, imp.finished_at = None, clock.now()  # the cells of the good rows now live in their records
    audit.record("import", resource=resource.key, summary=imp.filename,
                 changes={"import": imp.id, "inserted": imp.inserted, "updated": imp.updated, "rejected": imp.rejected},
                 actor=user)
    db.session.flush()
    return imp


def undo(import_id, user) -> Import:
    """Delete what the import created and restore what it overwrote, where nobody changed it since."""
    imp = get_import(import_id, user)
    resource = records.get_resource(imp.resource)
    if imp.status != "done":
        raise ValidationError(_("Only an applied import can be undone."))
    imp.status = "undone"
    db.session.flush()
    not_undone = []

    def attempt(record_id, step):
        savepoint = db.session.begin_nested()
        try:
            step()
            savepoint.commit()
        except DomainError as exc:
            if savepoint.is_active:
                savepoint.rollback()
            not_undone.append({"id": record_id, "reason": str(exc.message)})

    for record_id, version in imp.created:
        attempt(record_id, lambda: records.delete(resource, user, record_id, version=version))
    for change in imp.updated_records:
        attempt(change["id"], lambda: records.update(resource, user, change["id"], change["before"],
                                                     version=change["version"]))
    imp.not_undone, imp.finished_at = not_undone, clock.now()
    audit.record("undo_import", resource=resource.key, summary=imp.filename,
                 changes={"import": imp.id, "not_undone": [n["id"] for n in not_undone]}, actor=user)
    db.session.flush()
    return imp


# Files out ---------------------------------------------------------------------------------------


def rejects_csv(imp: Import) -> str:
    """The rejected rows as CSV (with a BOM, for Excel): the original columns plus the reason."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([*imp.headers, _("Reason for rejection")])
    for reject in imp.rejects:
        writer.writerow([*(_safe_csv(c) for c in reject["cells"]), reject["reason"]])
    return buffer.getvalue()


def _safe_csv(text: str) -> str:
    """A cell Excel will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _cell(value):
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return _ILLEGAL_XML.sub("", str(value))


def write_xlsx(target, headers: list[str], rows) -> None:
    """Write one sheet to ``target`` (a binary file) row by row: openpyxl's write-only mode keeps
    memory flat. Text is always stored as text, so a value starting with ``=`` is never a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()

    def cells(values):
        out = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=_cell(value))
            if isinstance(cell.value, str):
                cell.data_type = "s"
            out.append(cell)
        return out

    sheet.append(cells(headers))
    for row in rows:
        sheet.append(cells(row))
    workbook.save(target)


def template(resource, user, kind: str) -> bytes:
    """An empty import file (headers in the user's language) with the resource's example row."""
    names = importable_fields(resource, user)
    example = resource.sample(0)
    headers = [label(resource, n) for n in names]
    row = ["" if example.get(n) is None else example.get(n) for n in names]
    if kind == "xlsx":
        buffer = io.BytesIO()
        write_xlsx(buffer, headers, [row])
        return buffer.getvalue()
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(headers)
    writer.writerow(row)
    return buffer.getvalue().encode("utf-8")
