"""No-code forms: a flow's form definition, checked when the flow is saved, and the values an
initiator submits, validated by a marshmallow schema built from that definition.

A definition is a list of fields::

    {"key": "amount", "label": "金额", "label_en": "Amount", "type": "money", "required": true}

``label`` is shown in Chinese and ``label_en`` (optional) when the user reads English.

Types: ``text textarea number money date daterange select user department attachment table``
(``select`` has ``options``; ``table`` — a detail table — has ``columns``, themselves fields).
Values are stored JSON-ready in the request's snapshot: money and numbers as decimal text
(``"8000.00"``), dates as ISO text, users and departments as ids, attachments as
``[{"id": 12, "name": "发票.pdf"}]`` (files stored by ``core.attachments`` under the owner
``approval.request`` and the request's id).

An ``attachment`` field's submitted value lists ids (or ``{"id": ...}`` objects) of files already
attached to the request — only a resubmitted request has any — and new files come separately as
uploads (``files={key: [FileStorage]}``), checked here and stored by the services once the request
exists.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import marshmallow
from flask_babel import gettext as _, lazy_gettext as _l
from marshmallow import fields, validate
from sqlalchemy import func, select

from core import attachments
from core.errors import ValidationError
from core.extensions import db
from core.org.models import Department, User
from core.schemas import Schema, load

FIELD_TYPES = ("text", "textarea", "number", "money", "date", "daterange", "select", "user", "department",
               "attachment", "table")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
INT32 = 2**31 - 1
FILES_MAX = 20
MONEY_MAX = Decimal("9999999999999999.99")  # Numeric(18, 2)


def check_definition(form, path: str = "form") -> dict[str, list[str]]:
    """Problems of a form definition as ``{path: [message]}`` (empty when it is fine)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(form, list):
        return {path: [_("Must be a list of fields.")]}
    seen = set()
    for index, item in enumerate(form):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            errors[where] = [_("Must be an object.")]
            continue
        unknown = sorted(set(item) - {"key", "label", "label_en", "type", "required", "options", "columns", "help"})
        if unknown:
            errors[f"{where}.{unknown[0]}"] = [_("Unknown field.")]
        key = item.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            errors[f"{where}.key"] = [_("Use letters, digits and _ (starting with a letter).")]
        elif key in seen:
            errors[f"{where}.key"] = [_("This key is used twice.")]
        seen.add(key)
        if not isinstance(item.get("label"), str) or not item["label"].strip():
            errors[f"{where}.label"] = [_("Missing data for required field.")]
        elif len(item["label"]) > 200:
            errors[f"{where}.label"] = [_("Enter at most %(max)s characters.", max=200)]
        if "label_en" in item and (not isinstance(item["label_en"], str) or len(item["label_en"]) > 200):
            errors[f"{where}.label_en"] = [_("Enter at most %(max)s characters.", max=200)]
        kind = item.get("type")
        if kind not in FIELD_TYPES:
            errors[f"{where}.type"] = [_("Must be one of: %(choices)s.", choices=", ".join(FIELD_TYPES))]
        if "required" in item and not isinstance(item["required"], bool):
            errors[f"{where}.required"] = [_("Not a valid boolean.")]
        if kind == "select":
            options = item.get("options")
            if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
                errors[f"{where}.options"] = [_("A select needs a list of options.")]
        if kind == "table":
            columns = item.get("columns")
            if not isinstance(columns, list) or not columns:
                errors[f"{where}.columns"] = [_("A detail table needs columns.")]
            elif any(isinstance(c, dict) and c.get("type") == "table" for c in columns):
                errors[f"{where}.columns"] = [_("A detail table cannot hold another table.")]
            elif any(isinstance(c, dict) and c.get("type") == "attachment" for c in columns):
                errors[f"{where}.columns"] = [_("A detail table cannot hold files; add an attachment field instead.")]
            else:
                errors.update(check_definition(columns, f"{where}.columns"))
    return errors


class _DateRange(fields.List):
    def __init__(self, **kwargs):
        super().__init__(fields.Date(), validate=validate.Length(equal=2), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(result) == 2 and result[0] > result[1]:
            raise marshmallow.ValidationError(_l("The end date is before the start date."))
        return result


class _AttachmentRef(fields.Field):
    """An attachment id: ``12`` or ``{"id": 12, ...}`` (what the request's form shows)."""

    default_error_messages = {"invalid": _l("Not a valid attachment.")}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT32:
            raise self.make_error("invalid")
        return value


def _field(item: dict):
    kind, required = item.get("type"), bool(item.get("required"))
    common = {"required": required, "allow_none": not required}
    if kind in ("text", "textarea"):
        return fields.String(validate=validate.Length(max=5000 if kind == "textarea" else 500), **common)
    if kind == "number":
        return fields.Decimal(as_string=True, allow_nan=False,
                              validate=validate.Range(min=-MONEY_MAX, max=MONEY_MAX), **common)
    if kind == "money":
        return fields.Decimal(places=2, as_string=True, allow_nan=False,
                              validate=validate.Range(min=Decimal(0), max=MONEY_MAX), **common)
    if kind == "date":
        return fields.Date(**common)
    if kind == "daterange":
        return _DateRange(**common)
    if kind == "select":
        return fields.String(validate=validate.OneOf(item.get("options") or []), **common)
    if kind in ("user", "department"):
        return fields.Integer(strict=True, validate=validate.Range(min=1, max=INT32), **common)
    if kind == "attachment":  # "required" is checked by clean(), which knows of the uploads
        return fields.List(_AttachmentRef(), validate=validate.Length(max=FILES_MAX), required=False, allow_none=True)
    if kind == "table":
        return fields.List(fields.Nested(schema_for(item.get("columns") or [])), validate=validate.Length(max=200), **common)
    raise ValueError(kind)


def schema_for(definition: list) -> Schema:
    return Schema.from_dict({item["key"]: _field(item) for item in definition}, name="ApprovalForm")()


def _jsonable(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _uploads(definition: list, files) -> tuple[dict, dict]:
    """The non-empty uploads per attachment field, and the errors of the bad ones (nothing stored)."""
    kinds = {item["key"]: item["type"] for item in definition}
    uploads, errors = {}, {}
    for key, items in (files or {}).items():
        items = [f for f in items if f is not None and getattr(f, "filename", None)]
        if not items:
            continue
        if kinds.get(key) != "attachment":
            errors[key] = [_("This field does not take files.")]
            continue
        messages = []
        for upload in items:
            try:
                attachments.check(upload)
            except ValidationError as exc:
                messages += [f"{attachments.clean_filename(upload.filename)}: {m}" for m in exc.fields.get("file", [exc.message])]
        if messages:
            errors[key] = messages
        uploads[key] = items
    return uploads, errors


def clean(definition: list, values, files: dict | None = None, known: dict[int, str] | None = None) -> dict:
    """The submitted ``values`` validated against ``definition``, JSON-ready; else ``ValidationError``.

    ``files``: new uploads per attachment field (checked by content and size, not stored; the
    caller stores them and adds them to the values, see ``services.start``). ``known``: the
    ``{id: name}`` of files already attached to the request that attachment fields may keep.
    Every bad field is reported at once, the uploads' among them.
    """
    if not isinstance(values, dict):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"form": [_("Must be an object.")]})
    uploads, errors = _uploads(definition, files)
    try:
        data = load(schema_for(definition), values)
    except ValidationError as exc:
        raise ValidationError(exc.message, fields={**exc.fields, **errors}) from None
    known = known or {}
    for item in definition:
        value = data.get(item["key"])
        if item["type"] == "attachment":
            ids = list(dict.fromkeys(value or []))
            if any(i not in known for i in ids):
                errors.setdefault(item["key"], []).append(_("Unknown attachment."))
            elif len(ids) + len(uploads.get(item["key"], [])) > FILES_MAX:
                errors.setdefault(item["key"], []).append(_("Attach at most %(max)s files.", max=FILES_MAX))
            elif item.get("required") and not ids and not uploads.get(item["key"]) and item["key"] not in errors:
                errors[item["key"]] = [_("Missing data for required field.")]
            data[item["key"]] = [{"id": i, "name": known[i]} for i in ids if i in known] or None
            if data[item["key"]] is None:
                data.pop(item["key"], None)
            continue
        if value is None:
            continue
        if item["type"] == "user" and not db.session.scalar(select(func.count()).select_from(User).where(User.id == value, User.active)):
            errors[item["key"]] = [_("Unknown user.")]
        if item["type"] == "department" and db.session.get(Department, value) is None:
            errors[item["key"]] = [_("Unknown department.")]
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    return _jsonable(data)
