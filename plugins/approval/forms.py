"""No-code forms: a flow's form definition, checked when the flow is saved, and the values an
initiator submits, validated by a marshmallow schema built from that definition.

A definition is a list of fields::

    {"key": "amount", "label": "金额", "type": "money", "required": true}

Types: ``text textarea number money date daterange select user department attachment table``
(``select`` has ``options``; ``table`` — a detail table — has ``columns``, themselves fields).
Values are stored JSON-ready in the request's snapshot: money and numbers as decimal text
(``"8000.00"``), dates as ISO text, users and departments as ids.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import marshmallow
from flask_babel import gettext as _, lazy_gettext as _l
from marshmallow import fields, validate
from sqlalchemy import func, select

from core.errors import ValidationError
from core.extensions import db
from core.org.models import Department, User
from core.schemas import Schema, load

FIELD_TYPES = ("text", "textarea", "number", "money", "date", "daterange", "select", "user", "department",
               "attachment", "table")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
INT32 = 2**31 - 1
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
        unknown = sorted(set(item) - {"key", "label", "type", "required", "options", "columns", "help"})
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
    if kind == "attachment":
        return fields.List(fields.String(validate=validate.Length(max=500)), validate=validate.Length(max=20), **common)
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


def clean(definition: list, values) -> dict:
    """The submitted ``values`` validated against ``definition``, JSON-ready; else ``ValidationError``."""
    if not isinstance(values, dict):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"form": [_("Must be an object.")]})
    data = load(schema_for(definition), values)
    errors = {}
    for item in definition:
        value = data.get(item["key"])
        if value is None:
            continue
        if item["type"] == "user" and not db.session.scalar(select(func.count()).select_from(User).where(User.id == value, User.active)):
            errors[item["key"]] = [_("Unknown user.")]
        if item["type"] == "department" and db.session.get(Department, value) is None:
            errors[item["key"]] = [_("Unknown department.")]
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    return _jsonable(data)
