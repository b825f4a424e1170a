"""How people read a record's values: the portal pages and the list exports show the same thing.

A stored record holds codes and ids: ``status`` ``active``, ``owner_id`` 7, ``customer_id`` 42, a
UTC time. People read 正常, 张伟, the customer's name and their own local time. ``Reading`` turns
one into the other for a resource and a reader: names of users and departments, titles of
referenced records (through the reader's scope, ``core.references``), labels of choices, lists as
``重点、VIP``, Yes/No. A list export written this way imports back: the import takes labels,
names and titles as well as codes and ids.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import marshmallow
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from core import references
from core.extensions import db
from core.schemas import choices as field_choices

__all__ = ["Reading"]


class Reading:
    """The names and labels ``user`` reads ``resource``'s values by; ``read(rows)`` before ``name``/``text``."""

    def __init__(self, resource, user):
        self.resource, self.user = resource, user
        self.targets = references.references_of(resource)
        self.kinds = {**{f: "user" for f in references.user_fields(resource)},
                      **{f: "department" for f in references.department_fields(resource)}}
        declared = resource.schema._declared_fields
        self.choices = {name: {code: str(label) for code, label in found}
                        for name, field in declared.items() if (found := field_choices(field))}
        self.times = {name for name, field in declared.items() if isinstance(field, marshmallow.fields.DateTime)}
        self.amounts = {name for name, field in declared.items() if isinstance(field, marshmallow.fields.Decimal)}
        self.zone = ZoneInfo(getattr(user, "timezone", None) or current_app.config["YITI"]["DEFAULT_TIMEZONE"])
        self._people, self._titles = {}, {}

    def read(self, rows: list[dict]) -> None:
        """Look up the names ``rows`` refer to: a query for each kind, not one a row. The records'
        titles are those of these rows only (an export reads batch after batch); users and
        departments are kept, there are few of them."""
        from core.org.models import Department
        from core.org.services import display_names

        wanted = {"user": set(), "department": set()}
        for field, kind in self.kinds.items():
            wanted[kind].update(row[field] for row in rows if type(row.get(field)) is int
                                and (kind, row[field]) not in self._people)
        self._people.update((("user", uid), name) for uid, name in display_names(wanted["user"]).items())
        if wanted["department"]:
            self._people.update((("department", did), name) for did, name in db.session.execute(
                select(Department.id, Department.name).where(Department.id.in_(wanted["department"]))))
        self._titles = references.titles(self.resource, self.user, rows)

    def name(self, field: str, value):
        """The name of the user, department or record ``value`` is in ``field``; ``None``: not a
        reference, or one the reader may not know by name."""
        if field in self.kinds:
            return self._people.get((self.kinds[field], value))
        if field in self.targets:
            return self._titles.get((field, value))
        return None

    def text(self, field: str, value):
        """``value`` as a spreadsheet cell shows it to people: text, or a number for amounts and counts."""
        return self.cell(field)(value)

    def cell(self, field: str):
        """``text`` of ``field``'s values as a function of the value alone: what to do with the
        field is chosen once, not for each of an export's cells."""
        if field in self.kinds or field in self.targets:
            return lambda value: self._reference(field, value)
        if field in self.choices:
            labels = self.choices[field]
            return lambda value: None if value is None or value == "" else labels.get(value, value)
        if field in self.times:
            return self._time
        if field in self.amounts:
            return self._amount
        return self._value

    def _reference(self, field: str, value):
        if value is None or value == "":
            return None
        found = self.name(field, value)
        return found if found is not None else (value if field in self.kinds else f"#{value}")

    def _time(self, value):
        if type(value) is not str:
            return self._value(value)
        try:
            return datetime.fromisoformat(value).astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value or None  # a masked value

    def _amount(self, value):
        if type(value) is not str:
            return self._value(value)
        try:
            return Decimal(value)
        except InvalidOperation:
            return value or None  # a masked value

    @staticmethod
    def _value(value):
        if type(value) is str:
            return value or None
        if value is None:
            return None
        if isinstance(value, bool):
            return _("Yes") if value else _("No")
        if isinstance(value, list):
            return "、".join(str(v) for v in value) or None
        if isinstance(value, dict):
            return "; ".join(f"{k}: {v}" for k, v in value.items()) or None
        return value
