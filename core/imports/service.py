"""Import CSV/XLSX files into any ``Resource``: dry run, apply, rejects file, undo.

Every row goes through the same services as the API (``core.resources.create`` / ``update``), so
validation, record scopes, field rules and the audit trail are the ones every other write gets.

1. ``preview`` reads the file (CSV in UTF-8 with or without BOM, or GBK/GB18030 as Chinese Excel
   saves it; or the first sheet of an XLSX), matches each header to a field by its name or its
   label in English or Chinese, and tries every row inside savepoints that are rolled back:
   nothing is written, every row's errors are kept on the ``Import`` row.
2. ``apply`` writes the good rows: a row whose natural key matches a record the user may update
   changes that record, any other row creates one. Rows that fail are kept with their reason for
   the rejects file. One ``import`` audit entry sums it up.

Both take the rows in batches (see "Batches" below): the new records of a batch are validated row
by row and written, scope-checked and audited together; a batch the database refuses is retried
row by row, so every error still names its row.
3. ``undo`` deletes the records the import created and puts back the values it overwrote, each
   only while the record is still at the version the import left it at.

A file of more than ``IMPORT_BACKGROUND_ROWS`` rows is checked and applied by the worker
(``core.imports.jobs``) instead of the request: the page polls its progress (``done_rows`` of
``total_rows``, committed every ``IMPORT_BATCH_ROWS`` rows). The file is read row by row (CSV
reader, openpyxl read-only), never held as a list of rows. A background apply commits in batches
with the ids it wrote; if it fails, ``fail`` takes those back and marks the import ``failed``.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace

import marshmallow
from flask import current_app
from flask_babel import force_locale, gettext as _
from sqlalchemy import exc as sa_exc, func, insert, or_, select, update

from core import audit, clock, references, resources as records, xlsx
from core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.imports.models import ACTIVE, Import, ImportChange
from core.schemas import choice_reader, list_from_text
from core.models import reserve_ids
from core.permissions import can, require, scope_filter
from core.permissions.fields import field_rules
from core.readers import row_reader

__all__ = ["Import", "preview", "check", "apply", "write", "fail", "undo", "read", "count_rows", "background_rows", "get_import", "rejects_csv", "template", "write_xlsx",
           "importable_fields", "parse", "require_import"]

_YES = {"是", "yes", "y", "true", "1", "√", "✓"}
_NO = {"否", "no", "n", "false", "0", ""}
#: Bad rows whose messages a dry run keeps (it counts them all).
MAX_ERROR_ROWS = 1000


# Fields and headers ------------------------------------------------------------------------------


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
            names.add(_normal(records.field_label(resource, name)))
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
    """``(headers, rows)`` of a CSV or XLSX file, cells as text; blank rows left out (see ``read``)."""
    headers, rows = read(data)
    return headers, list(rows)


def read(data: bytes) -> tuple[list[str], Iterator[list[str]]]:
    """``(headers, rows)`` of a CSV or XLSX file, the rows read one by one as they are asked for.

    Cells are text, each row padded or cut to the headers' width; blank rows are left out. The type
    is told by the content, not the name: an XLSX is a zip holding ``[Content_Types].xml``, a CSV
    must decode as text. Anything else is a ``ValidationError`` for the ``file`` field. An XLSX is
    read in openpyxl's read-only mode, so memory stays flat however many rows the sheet has.
    """
    table = _xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _csv_rows(data)
    table = (row for row in table if any(cell for cell in row))
    headers = next(table, None)
    if headers is None:
        raise _file_error(_("The file is empty."))
    width = len(headers)
    return headers, ((row + [""] * width)[:width] for row in table)


def count_rows(data: bytes) -> int:
    """How many data rows ``read`` will give; for an XLSX the sheet's own dimension when it has one."""
    if data[:4] == b"PK\x03\x04":
        estimate = _xlsx_dimension(data)
        if estimate is not None:
            return estimate
    _headers, rows = read(data)
    return sum(1 for _row in rows)


def _file_error(message: str) -> ValidationError:
    return ValidationError(message, fields={"file": [message]})


def _csv_rows(data: bytes) -> Iterator[list[str]]:
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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def rows():
        try:
            for row in reader:
                yield [cell.strip() for cell in row]
        except csv.Error:
            raise _file_error(_("Upload a CSV or XLSX file (Excel: save as .xlsx or CSV).")) from None

    return rows()


def _open_xlsx(data: bytes):
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "[Content_Types].xml" not in archive.namelist():
                raise _file_error(_("Upload a CSV or XLSX file (Excel: save as .xlsx or CSV)."))
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ValidationError:
        raise
    except Exception:  # a damaged or foreign zip: whatever openpyxl raises, it is the file's fault
        raise _file_error(_("The XLSX file could not be read.")) from None


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    workbook = _open_xlsx(data)

    def rows():
        try:
            for row in workbook.worksheets[0].iter_rows(values_only=True):
                yield [_text(value) for value in row]
        except ValidationError:
            raise
        except Exception:
            raise _file_error(_("The XLSX file could not be read.")) from None
        finally:
            workbook.close()

    return rows()


def _xlsx_dimension(data: bytes) -> int | None:
    workbook = _open_xlsx(data)
    try:
        sheet = workbook.worksheets[0]
        return max(0, sheet.max_row - 1) if sheet.max_row else None
    except Exception:
        return None
    finally:
        workbook.close()


#: How XLSX writes a character XML cannot hold (``_x000D_`` for a carriage return; ``_x005F_``
#: is the underscore that keeps text looking like such a code from being read as one).
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _text(value) -> str:
    """A cell read from an XLSX file as the text a CSV cell would give."""
    if value is None:
        return ""
    if type(value) is str:
        if "_x" in value:  # openpyxl leaves these codes in inline strings (what exports write)
            value = _OOXML_ESCAPE.sub(lambda m: chr(int(m[1], 16)), value)
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value).strip()


# Rows --------------------------------------------------------------------------------------------


def _user_by_name(text: str, user):
    """A user's id from a file (an owner, an assignee): a username or a display name (or the id itself)."""
    from core.org.models import User

    if (number := references.id_from_text(text)) is not None:
        return number
    ids = db.session.scalars(select(User.id).where(or_(User.username == text, User.display_name == text)).limit(2)).all()
    return ids[0] if len(ids) == 1 else None


def _lookups(resource) -> dict:
    """``{field: lookup(text, user) -> id or None}``: users by name, other records by code or title
    (``core.references``), then the resource's own ``import_lookups``."""
    found = {name: _user_by_name for name in references.user_fields(resource)}
    for name, target in references.references_of(resource).items():
        found[name] = lambda text, user, target=target: references.find(target, user, text)
    return {**found, **resource.import_lookups}


#: Names looked up (``owner_id``, ``import_lookups``) an import remembers, so a name repeated on
#: many rows is looked up once; beyond this many distinct names each is looked up again.
MAX_REMEMBERED = 10_000


def _cell_readers(resource) -> dict:
    """``{field: read(text)}``: how a cell's text becomes the input of each field that is not looked
    up (a list split, a yes/no, an Excel date cell's day, a choice's label as its code); made once
    per import, so a choice field's labels are read once, not once per cell."""
    readers = {}
    for name, field in resource.schema._declared_fields.items():
        if isinstance(field, marshmallow.fields.List):
            readers[name] = list_from_text
        elif isinstance(field, marshmallow.fields.Boolean):
            readers[name] = _yes_no
        elif isinstance(field, marshmallow.fields.Date):
            readers[name] = _day  # an Excel date cell reads as midnight
        else:
            readers[name] = choice_reader(field)
    return readers


def _yes_no(text: str):
    lowered = text.lower()
    return True if lowered in _YES else False if lowered in _NO else text


def _day(text: str) -> str:
    return text.split("T", 1)[0]


def _row_data(resource, user, mapping, cells, memo: dict | None = None, lookups: dict | None = None,
              readers: dict | None = None) -> dict:
    """A row's cells as the input ``create``/``update`` take; names looked up; empty cells left out.

    ``memo`` (one import's) keeps what each looked-up name gave, so each distinct name costs one
    query; ``lookups`` is ``_lookups(resource)`` and ``readers`` ``_cell_readers(resource)`` (an
    import's, made once).
    """
    data, errors = {}, {}
    lookups = _lookups(resource) if lookups is None else lookups
    readers = _cell_readers(resource) if readers is None else readers
    for name, text in zip(mapping, cells):
        text = (text or "").strip()
        if name is None or text == "":
            continue
        if name in lookups:
            if memo is not None and (name, text) in memo:
                found = memo[(name, text)]
            else:
                try:
                    found = lookups[name](text, user)
                except DomainError as exc:  # several records go by that name
                    errors[name] = [str(m) for messages in (exc.fields or {"": [exc.message]}).values() for m in messages]
                    continue
                if memo is not None and len(memo) < MAX_REMEMBERED:
                    memo[(name, text)] = found
            if found is None:
                errors[name] = [_("Nothing called “%(value)s” was found.", value=text)]
                continue
            data[name] = found
        else:
            data[name] = readers[name](text)
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    return data


def _key_value(resource, data):
    """The row's natural key as stored (the field's own reading of the text); ``None``: none or not valid."""
    key = resource.natural_key
    if not key or data.get(key) in (None, ""):
        return None
    try:
        return resource.schema._declared_fields[key].deserialize(data[key])
    except marshmallow.ValidationError:
        return None


def _update(resource, user, record_id, data) -> tuple[str, object, dict]:
    obj, before = records.update_with_before(resource, user, record_id, data)
    return "update", obj, {k: before.get(k) for k in data}


def _messages(resource, exc: Exception) -> list[tuple[str, str]]:
    """``[(field label, message)]`` for a row that failed."""
    if isinstance(exc, DomainError):
        if exc.fields:
            return [(records.field_label(resource, name) if name != "_schema" else "", str(message))
                    for name, messages in exc.fields.items()
                    for message in (messages if isinstance(messages, list) else [messages])]
        return [("", str(exc.message))]
    return [("", _("The database refused this row (is a value a duplicate?)."))]


def _in_savepoint(step, keep: bool):
    """Run ``step()`` in a savepoint; keep it or roll it back. Returns what it returned or the row's error."""
    savepoint = db.session.begin_nested()
    try:
        result = step()
    except (DomainError, sa_exc.IntegrityError, sa_exc.DataError) as exc:
        if savepoint.is_active:
            savepoint.rollback()
        if not db.session().in_transaction():
            # Something rolled back the whole transaction, not just this row's savepoint: the rows
            # before this one are gone too, so going on would report records that do not exist.
            raise RuntimeError("an import row rolled back the whole transaction") from exc
        return exc
    if keep:
        savepoint.commit()
    else:
        savepoint.rollback()
    return result


# Batches -----------------------------------------------------------------------------------------
#
# The rows are taken ``IMPORT_BATCH_ROWS`` at a time, and each batch is cut before a row whose
# natural key an earlier row of the same part has (that row must see the record the earlier one
# wrote, as it would one row at a time). A part costs a handful of statements, not a handful per
# row: one select of the existing records for all its natural keys (scoped), the updates one by one
# (``records.update``, each in a savepoint), and the new records validated row by row in Python
# (``records.load_new``: schema, writable fields, columns, references; inside the resource's
# ``preload`` block, so a schema check that reads the database reads it once for the part), added together and flushed
# in one multi-row ``INSERT``, checked against the create scope with one select (``scope_filter``)
# and audited with one multi-row ``INSERT`` of the same entries ``records.create`` writes. A
# resource declared ``bulk_insert`` skips the ORM for its new records: their column values
# (``records.new_rows``) go in with one ``INSERT`` and the audit snapshot is read from them. If the
# database or the scope refuses the part's new records, its savepoint is rolled back and they are
# tried one by one, so the error lands on its row.


class _Run:
    """One pass over a file's rows: who imports what, and the names it has looked up."""

    def __init__(self, resource, user, mapping: list):
        self.resource, self.user, self.mapping, self.memo = resource, user, mapping, {}
        self.lookups, self.readers = _lookups(resource), _cell_readers(resource)
        self.updates = bool(resource.natural_key) and can(user, resource.permission("update"))
        self.key_cell = mapping.index(resource.natural_key) if resource.natural_key in mapping else None
        self.unique = _unique_sets(resource.model)
        self.schema = resource.schema()
        self.keys, self.departments = {}, {}
        #: Natural keys of the records a dry run's earlier rows created (and rolled back).
        self.created = set()

    def key(self, data: dict):
        """``_key_value`` of ``data``, each distinct text read once per chunk (a key field may check a checksum)."""
        text = data.get(self.resource.natural_key)
        if not isinstance(text, str):
            return _key_value(self.resource, data)
        if text not in self.keys:
            self.keys[text] = _key_value(self.resource, data)
        return self.keys[text]

    def parts(self, chunk: list) -> Iterator[list]:
        """``chunk`` (``[(number, cells)]``) cut before each row repeating a natural key of its part."""
        part, seen = [], set()
        self.keys = {}
        for number, cells in chunk:
            key = None
            if self.key_cell is not None:
                key = self.key({self.resource.natural_key: (cells[self.key_cell] or "").strip()})
            if key is not None and key in seen:
                yield part
                part, seen = [], set()
            if key is not None:
                seen.add(key)
            part.append((number, cells))
        if part:
            yield part

    def existing(self, datas: list) -> dict:
        """``{natural key: [ids]}`` of the records the user may update that have the keys of ``datas``."""
        if not self.updates:
            return {}
        values = {v for v in (self.key(d) for d in datas) if v is not None}
        if not values:
            return {}
        model = self.resource.model
        column = getattr(model, self.resource.natural_key)
        found = {}
        for record_id, value in db.session.execute(select(model.id, column).where(
                scope_filter(self.resource, "update", self.user), column.in_(values))):
            found.setdefault(value, []).append(record_id)
        return found


def _preloaded(run: _Run, datas: list):
    """The resource's ``preload`` block for validating ``datas`` together (none declared: nothing)."""
    if run.resource.preload is None:
        return contextlib.nullcontext()
    return run.resource.preload(run.user, datas)


def _unique_sets(model) -> list[tuple[str, ...]]:
    """The attributes of each unique index or constraint of ``model``'s table (its primary key aside)."""
    from sqlalchemy import UniqueConstraint, inspect as sa_inspect

    mapper, table = sa_inspect(model), model.__table__
    sets = [tuple(index.columns) for index in table.indexes if index.unique]
    sets += [tuple(con.columns) for con in table.constraints if isinstance(con, UniqueConstraint)]
    sets += [(column,) for column in table.columns if column.unique]
    return list(dict.fromkeys(tuple(mapper.get_property_by_column(c).key for c in columns) for columns in sets))


def _repeats(unique: list[tuple[str, ...]], cleans: list[dict]) -> bool:
    """Whether two of ``cleans`` have the same values for one of the ``unique`` sets (the database would refuse)."""
    for names in unique:
        seen = set()
        for clean in cleans:
            values = tuple(clean.get(name) for name in names)
            if None in values:
                continue
            if values in seen:
                return True
            seen.add(values)
    return False


def _chunks(resource, user, mapping: list, rows, keep: bool) -> Iterator[list]:
    """``[(number, cells, result)]`` for each ``IMPORT_BATCH_ROWS`` rows; ``result`` is ``(kind, obj, before)`` or the row's error."""
    run = _Run(resource, user, mapping)
    numbered = enumerate(rows, start=2)  # row 1 holds the headers
    size = max(1, current_app.config["YITI"]["IMPORT_BATCH_ROWS"])
    while chunk := list(itertools.islice(numbered, size)):
        out = []
        for part in run.parts(chunk):
            out += [(number, cells, result) for (number, cells), result in zip(part, _part(run, part, keep))]
        yield out


def _part(run: _Run, rows: list, keep: bool) -> list:
    """Try ``rows`` (no natural key twice) together; each row's ``(kind, obj, before)`` or its error."""
    resource, user = run.resource, run.user
    results, datas = [None] * len(rows), [None] * len(rows)
    for i, (_number, cells) in enumerate(rows):
        try:
            datas[i] = _row_data(resource, user, run.mapping, cells, run.memo, run.lookups, run.readers)
        except DomainError as exc:
            results[i] = exc
    existing = run.existing([d for d in datas if d is not None])
    inserts, updates = [], []
    for i, data in enumerate(datas):
        if data is None:
            continue
        ids = existing.get(run.key(data), []) if existing else []
        if len(ids) > 1:
            results[i] = ValidationError(_("Please correct the highlighted fields."), fields={resource.natural_key: [
                _("Several records have this value; the row cannot say which one to update.")]})
        elif ids:
            updates.append((i, ids[0]))
        else:
            inserts.append(i)
    if updates:
        with _preloaded(run, [datas[i] for i, _id in updates]):
            for i, record_id in updates:
                results[i] = _in_savepoint(lambda: _update(resource, user, record_id, datas[i]), keep)
    for i, result in zip(inserts, _insert(run, [datas[i] for i in inserts], keep)):
        results[i] = result
    if not keep:
        _as_after_earlier_rows(run, [datas[i] for i in inserts], inserts, results)
    return results


def _as_after_earlier_rows(run: _Run, datas: list, inserts: list, results: list) -> None:
    """A dry run rolls each part back, so a row repeating the natural key of a record an earlier row
    of the file creates was tried as new: count it as what the apply makes of it. That is an update
    of that record when the user may update, else (the key being unique) a row the database refuses."""
    name = run.resource.natural_key
    if not name:
        return
    for i, data in zip(inserts, datas):
        key = run.key(data)
        if key is None or not isinstance(results[i], tuple):
            continue
        if key not in run.created:
            run.created.add(key)
        elif run.updates:
            results[i] = ("update", *results[i][1:])
        elif (name,) in run.unique:
            results[i] = Conflict(_("This clashes with an existing record: a value that must be unique is already used."))


def _insert(run: _Run, datas: list, keep: bool) -> list:
    """Create a record of each of ``datas`` together; if that is refused, one by one. Each row's result."""
    if not datas:
        return []
    outcome = _insert_together(run, datas, keep)
    if not isinstance(outcome, Exception):
        return outcome
    if len(datas) == 1:
        return [outcome]
    return [result for data in datas for result in _insert(run, [data], keep)]


def _insert_together(run: _Run, datas: list, keep: bool):
    """Each row's ``("insert", obj, None)`` or its error; or, if the records cannot all be written, why
    (nothing of them is then kept): the database refused, one is outside the create scope, or a
    ``before_write`` refused one (its changes might not be its own alone)."""
    resource, user, model = run.resource, run.user, run.resource.model
    results, cleans = [None] * len(datas), []
    with _preloaded(run, datas):
        for i, data in enumerate(datas):
            try:
                cleans.append((i, records.load_new(resource, user, data, schema=run.schema)))
            except DomainError as exc:
                results[i] = exc
    if not cleans:
        return results
    if len(cleans) > 1 and _repeats(run.unique, [clean for _i, clean in cleans]):
        return Conflict(_("This clashes with an existing record: a value that must be unique is already used."))
    savepoint = db.session.begin_nested()
    try:
        ids = reserve_ids(db.session, model, len(cleans))  # one INSERT for the lot, not one per row
        objs = _insert_rows(run, cleans, ids) if ids is not None and _bulk(resource) else None
        if objs is None:
            objs = _insert_records(run, cleans, ids)
        ids = [obj.id for _i, obj in objs]
        visible = set(db.session.scalars(select(model.id).where(model.id.in_(ids), scope_filter(resource, "create", user))))
        if len(visible) != len(ids):
            raise Forbidden(_("The record would be outside what you may edit (owner or department)."))
        if keep:  # a dry run's entries would be rolled back with its rows: not worth writing
            audit.record_many("create", resource=resource.key, actor=user, items=[
                (obj.id, resource.title(obj), audit.diff({}, after))
                for (_i, obj), after in zip(objs, records.snapshots(resource, [obj for _i, obj in objs]))])
    except (DomainError, sa_exc.IntegrityError, sa_exc.DataError) as exc:
        # A failed flush leaves the savepoint inactive, but it still has to be rolled back.
        if savepoint.is_active or savepoint._rollback_can_be_called():
            savepoint.rollback()
        if not db.session().in_transaction():
            raise RuntimeError("an import batch rolled back the whole transaction") from exc
        return exc
    if keep:
        savepoint.commit()
    else:
        savepoint.rollback()
    for i, obj in objs:
        results[i] = ("insert", obj, None)
    return results


def _bulk(resource) -> bool:
    """Whether new records of ``resource`` are written as plain rows (``Resource.bulk_insert``), which
    needs every field of its audit snapshot to be a column (``row_reader``)."""
    return resource.bulk_insert and row_reader(resource.schema, resource.model, frozenset()) is not None


def _insert_records(run: _Run, cleans: list, ids: list | None) -> list:
    """``[(i, record)]``: a record made of each clean row (``records.new_record``), added and flushed."""
    resource, user = run.resource, run.user
    objs = []
    for k, (i, clean) in enumerate(cleans):
        obj = records.new_record(resource, user, clean)
        if ids is not None:
            obj.id = ids[k]
        db.session.add(obj)
        if resource.before_write is not None:
            resource.before_write(user, obj, None)
        objs.append((i, obj))
    db.session.flush()
    return objs


def _insert_rows(run: _Run, cleans: list, ids: list) -> list | None:
    """``[(i, row)]``: the clean rows written with one ``INSERT`` of their column values
    (``records.new_rows``), each row readable as its record's attributes (``id``, ``version``,
    the title; the audit snapshot). ``None`` when the model's rows cannot be made ahead."""
    rows = records.new_rows(run.resource, run.user, [clean for _i, clean in cleans], run.departments)
    if rows is None:
        return None
    key = run.resource.model.__table__.autoincrement_column.key
    for row, record_id in zip(rows, ids):
        row[key] = record_id
    db.session.execute(insert(run.resource.model.__table__), rows)
    return [(i, SimpleNamespace(**row)) for (i, _clean), row in zip(cleans, rows)]


def require_import(resource, user) -> None:
    require(user, resource.permission("import"))
    if not (can(user, resource.permission("create")) or can(user, resource.permission("update"))):
        raise Forbidden(_("You do not have permission to do this."))


# The three steps ---------------------------------------------------------------------------------


def background_rows() -> int:
    """Files with more data rows than this are checked and applied by the worker (``IMPORT_BACKGROUND_ROWS``)."""
    return current_app.config["YITI"]["IMPORT_BACKGROUND_ROWS"]


def preview(resource, user, filename: str, data: bytes) -> Import:
    """Read the file and dry-run every row: nothing is written but the ``Import`` row.

    A file of up to ``IMPORT_BACKGROUND_ROWS`` rows is checked here (status ``previewed``); a
    larger one is left ``checking`` for ``core.imports.jobs`` to check in the worker: commit, then
    ``jobs.enqueue(imp)``. Either way the file itself is kept on the row until it is applied.
    """
    require_import(resource, user)
    headers, _rows = read(data)
    mapping, unknown = match_headers(resource, user, headers)
    if not any(mapping):
        raise _file_error(_("No column matches a field. Download the template to see the headers."))
    imp = Import(resource=resource.key, user_id=user.id, filename=(filename or "")[:255], status="checking",
                 total_rows=count_rows(data), headers=headers, mapping=mapping, unknown_columns=unknown, data=data)
    imp.background = imp.total_rows > background_rows()
    db.session.add(imp)
    db.session.flush()
    if not imp.background:
        check(imp, resource, user)
    return imp


def _progress(imp: Import, done: int, progress) -> None:
    """Every ``IMPORT_BATCH_ROWS`` rows: the count on the row, and ``progress()`` (the worker commits)."""
    if progress is not None and done % current_app.config["YITI"]["IMPORT_BATCH_ROWS"] == 0:
        imp.done_rows, imp.progress_at = done, clock.now()
        progress()
        _begin_with_a_write(imp)


class ImportStopped(Exception):
    """The import is no longer in the step its worker runs (``fail_stale`` failed it meanwhile)."""


def _begin_with_a_write(imp: Import) -> None:
    """Open the transaction the rows' savepoints nest in with a write. SQLite's driver begins a
    transaction only at a write: a ``SAVEPOINT`` issued first would be the transaction, and its
    ``RELEASE`` a commit of that row on its own.

    The write also locks the import's row for the batch, and finds it still in the step being
    run; otherwise ``ImportStopped``: nothing more of it is written.
    """
    db.session.flush()
    moved = db.session.execute(update(Import).where(Import.id == imp.id, Import.status == imp.status)
                               .values(progress_at=clock.now()).execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        raise ImportStopped(imp.id)


def check(imp: Import, resource, user, progress=None) -> Import:
    """The dry run: try every row of the file in savepoints that are rolled back; count and keep the errors.

    Only the first ``MAX_ERROR_ROWS`` bad rows keep their messages (the count covers them all).
    """
    _headers, rows = read(imp.data)
    mapping = list(imp.mapping)
    _begin_with_a_write(imp)
    errors, counts, rejected, done = [], {"insert": 0, "update": 0}, 0, 0
    for chunk in _chunks(resource, user, mapping, rows, keep=False):
        for number, _cells, result in chunk:
            if isinstance(result, Exception):
                rejected += 1
                if rejected <= MAX_ERROR_ROWS:
                    errors += [{"row": number, "field": f, "message": m} for f, m in _messages(resource, result)]
            else:
                counts[result[0]] += 1
        done += len(chunk)
        _progress(imp, done, progress)
    imp.status, imp.total_rows, imp.done_rows, imp.progress_at = "previewed", done, done, clock.now()
    imp.to_insert, imp.to_update, imp.rejected, imp.errors = counts["insert"], counts["update"], rejected, errors
    db.session.flush()
    return imp


def get_import(import_id, user) -> Import:
    """The import ``user`` made (an administrator sees every one); otherwise ``NotFound``."""
    number = references.id_from_text(str(import_id))  # an INTEGER key: larger ids cannot exist
    imp = db.session.get(Import, number) if number is not None else None
    if imp is None or (imp.user_id != user.id and not user.is_admin):
        raise NotFound(_("Not found."))
    records.get_resource(imp.resource)  # its plugin may have been disabled since
    return imp


def apply(import_id, user) -> Import:
    """Write the previewed rows that pass; keep the others with their reason. Audited.

    A large import (``imp.background``) is only marked ``applying`` here: commit, then
    ``jobs.enqueue(imp)``; the worker writes it with ``write``.
    """
    imp = get_import(import_id, user)
    resource = records.get_resource(imp.resource)
    require_import(resource, user)
    if imp.status != "previewed":
        raise ValidationError(_("This import has already been applied."))
    imp.status, imp.done_rows, imp.progress_at = "applying", 0, clock.now()
    db.session.flush()  # the first write opens the transaction the savepoints nest in
    if imp.background:
        return imp
    return write(imp, resource, user)


def write(imp: Import, resource, user, progress=None) -> Import:
    """Apply the rows of ``imp``'s file in batches (each row's error kept on its row), as ``user``.

    With ``progress`` (the worker) the work is committed every ``IMPORT_BATCH_ROWS`` rows together
    with the ids written so far, so that a failure can take back exactly what was committed
    (``fail``). Without it everything happens in the caller's one transaction.
    """
    _headers, rows = read(imp.data)
    mapping = list(imp.mapping)
    _begin_with_a_write(imp)
    rejects, counts, done = [], {"insert": 0, "update": 0}, 0
    for chunk in _chunks(resource, user, mapping, rows, keep=True):
        changes = []
        for number, cells, result in chunk:
            if isinstance(result, Exception):
                reason = "; ".join(f"{f}: {m}" if f else m for f, m in _messages(resource, result))
                rejects.append({"row": number, "cells": cells, "reason": reason})
            else:
                kind, obj, before = result
                counts[kind] += 1
                changes.append({"import_id": imp.id, "kind": kind, "record_id": obj.id, "version": obj.version,
                                "before": before})
        if changes:  # committed with the batch's records, so a failure takes back exactly these
            db.session.execute(insert(ImportChange.__table__), changes)
        done += len(chunk)
        _progress(imp, done, progress)
    imp.rejects = rejects
    imp.inserted, imp.updated, imp.rejected = counts["insert"], counts["update"], len(rejects)
    imp.status, imp.done_rows, imp.progress_at, imp.finished_at = "done", done, clock.now(), clock.now()
    imp.data = None  # the cells of the good rows now live in their records
    audit.record("import", resource=resource.key, summary=imp.filename,
                 changes={"import": imp.id, "inserted": imp.inserted, "updated": imp.updated, "rejected": imp.rejected},
                 actor=user)
    db.session.flush()
    return imp


def fail(import_id, user, message: str) -> Import:
    """Mark an import the worker could not finish ``failed`` and take back what it committed.

    Call after rolling back. Records it created are deleted and values it overwrote restored, each
    only while still at the version the import left (as ``undo``); what could not be taken back is
    listed in ``not_undone``. The failure is audited.
    """
    imp = db.session.scalar(select(Import).where(Import.id == import_id).with_for_update())
    if imp.status not in ACTIVE:
        return imp  # it finished, or was failed, meanwhile
    resource = records.get_resource(imp.resource)
    not_undone = _revert(imp, resource, user, force=True) if imp.status == "applying" else []
    imp.status, imp.error, imp.finished_at, imp.data = "failed", message[:2000], clock.now(), None
    imp.not_undone = not_undone
    audit.record("import_failed", resource=resource.key, summary=imp.filename,
                 changes={"import": imp.id, "error": imp.error, "not_undone": [n["id"] for n in not_undone]},
                 actor=user)
    db.session.flush()
    return imp


def fail_stale() -> list[int]:
    """The ``core.stale_imports`` job: imports the worker has not moved for ``IMPORT_STALE_MINUTES``
    (it was stopped or restarted mid-file, or never took the job) are failed like a job that
    failed: what they committed is taken back and the owner sees why. Returns their ids."""
    from flask_babel import force_locale

    from core.org.models import User

    limit = clock.now() - timedelta(minutes=current_app.config["YITI"]["IMPORT_STALE_MINUTES"])
    stale = db.session.scalars(select(Import.id).where(
        Import.status.in_(ACTIVE), func.coalesce(Import.progress_at, Import.created_at) < limit)
        .order_by(Import.id)).all()
    db.session.commit()
    for import_id in stale:
        imp = db.session.get(Import, import_id)
        owner = db.session.get(User, imp.user_id) if imp.user_id else None
        with force_locale(getattr(owner, "language", None) or current_app.config["YITI"]["DEFAULT_LANGUAGE"]):
            fail(import_id, owner, _("The import stopped: the background worker made no progress for %(minutes)s "
                                     "minutes (was it restarted?). What it had written was taken back; import the "
                                     "file again.", minutes=current_app.config["YITI"]["IMPORT_STALE_MINUTES"]))
        db.session.commit()
    return list(stale)


def undo(import_id, user) -> Import:
    """Delete what the import created and restore what it overwrote, where nobody changed it since."""
    imp = get_import(import_id, user)
    resource = records.get_resource(imp.resource)
    if imp.status != "done":
        raise ValidationError(_("Only an applied import can be undone."))
    imp.status = "undone"
    db.session.flush()
    imp.not_undone, imp.finished_at = _revert(imp, resource, user), clock.now()
    audit.record("undo_import", resource=resource.key, summary=imp.filename,
                 changes={"import": imp.id, "not_undone": [n["id"] for n in imp.not_undone]}, actor=user)
    db.session.flush()
    return imp


def _revert(imp: Import, resource, user, force: bool = False) -> list[dict]:
    """Take back the records ``imp`` wrote (``ImportChange``) through the services; ``[{"id", "reason"}]`` left.

    A record is taken back only while it is as the import left it (its last version). A record the
    import created is deleted, even if a later row of the file changed it again; one it updated
    gets the values it had before the import's first change to it. ``force`` (a failed import
    taking back its own rows) deletes the records it created even if ``user`` may not delete
    records; still only at the version the import left, and audited.
    """
    not_undone = []

    def remove(record_id, version):
        obj = db.session.get(resource.model, record_id)
        if obj is None or obj.version != version or not _made_by(imp, obj):
            raise Conflict(_("The record was changed after the import."))
        if not force:
            return records.delete(resource, user, record_id, version=version)
        audit.record("delete", resource=resource.key, record_id=obj.id, summary=resource.title(obj),
                     changes=audit.diff(records.snapshot(resource, obj), {}), actor=user)
        db.session.delete(obj)
        db.session.flush()

    def attempt(record_id, step):
        savepoint = db.session.begin_nested()
        try:
            step()
            savepoint.commit()
        except DomainError as exc:
            if savepoint.is_active:
                savepoint.rollback()
            not_undone.append({"id": record_id, "reason": str(exc.message)})

    for record_id, (created, version, before) in _changes_by_record(imp).items():
        if created:
            attempt(record_id, lambda: remove(record_id, version))
        else:
            attempt(record_id, lambda: records.update(resource, user, record_id, before, version=version))
    return not_undone


def _made_by(imp: Import, obj) -> bool:
    """Whether ``obj`` can be the record the import created under its id. SQLite gives a deleted
    record's id to the next new one: a record made after the import finished is someone else's."""
    made = getattr(obj, "created_at", None)
    if made is None:
        return True
    return imp.created_at <= made and (imp.finished_at is None or made <= imp.finished_at)


def _changes_by_record(imp: Import, batch: int = 500) -> dict[int, tuple[bool, int, dict]]:
    """``{record id: (created by the import, last version it left, values before its first change)}``
    in the order the import first wrote each record, read ``batch`` changes at a time."""
    found: dict[int, tuple[bool, int, dict]] = {}
    last = 0
    while True:
        rows = db.session.execute(
            select(ImportChange.id, ImportChange.kind, ImportChange.record_id, ImportChange.version, ImportChange.before)
            .where(ImportChange.import_id == imp.id, ImportChange.id > last)
            .order_by(ImportChange.id).limit(batch)).all()
        if not rows:
            return found
        for _id, kind, record_id, version, before in rows:
            created, _version, earliest = found.get(record_id, (kind == "insert", version, {}))
            for key, value in (before or {}).items() if kind == "update" else ():
                earliest.setdefault(key, value)  # a later row's "before" is the import's own value
            found[record_id] = (created, version, earliest)
        last = rows[-1][0]


# Files out ---------------------------------------------------------------------------------------


def rejects_csv(imp: Import) -> str:
    """The rejected rows as CSV (with a BOM, for Excel): the original columns plus the reason."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([*imp.headers, _("Reason for rejection")])
    for reject in imp.rejects:
        writer.writerow([*(safe_csv(c) for c in reject["cells"]), reject["reason"]])
    return buffer.getvalue()


def safe_csv(text: str) -> str:
    """A cell Excel will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def write_xlsx(target, headers: list[str], rows) -> None:
    """Write one sheet to ``target`` (a binary file) row by row (``core.xlsx``: memory flat, text
    kept as text); lists and dicts are written as JSON text."""
    lines = ([export_value(v) for v in row] for row in rows)
    xlsx.write(target, [(None, itertools.chain([headers], lines))])


def export_value(value):
    """A value as a list export's cell holds it: a list or dict as JSON text (what the import reads
    back), anything else as it is."""
    if type(value) not in (list, dict):
        return value
    return json.dumps(value, ensure_ascii=False) if value else ("[]" if type(value) is list else "{}")


def template(resource, user, kind: str) -> bytes:
    """An empty import file (headers in the user's language) with the resource's example row."""
    names = importable_fields(resource, user)
    example = resource.sample(0)
    headers = [records.field_label(resource, n) for n in names]
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
