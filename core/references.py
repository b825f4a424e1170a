"""Fields that hold the id of another record: shown by name, typed by name.

A contact's ``customer_id`` is a number in the database and the API, but people know the customer
by its name or its code. A field is a reference when its column is a foreign key: to the table
of a registered resource (``references_of``), to the users (``user_fields``: an owner, an
assignee) or to the departments. Pages show the referenced record's title (``titles``), and an
import cell or a form box may give its natural key, its title or its id (``find``). Records are
read through the reader's own read scope, so a name never tells anyone about a record they may
not read, and a title the reader may not see (a hidden or masked field) is not shown: the page
says the id instead.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import inspect as sa_inspect, or_, select

from core.errors import ValidationError
from core.extensions import db
from core.permissions import scope_filter
from core.permissions.fields import field_rules

__all__ = ["id_from_text", "references_of", "user_fields", "department_fields", "titles", "find", "Related", "referring"]


def _targets(resource) -> dict:
    """``{field: name of the table its foreign key points at}`` for ``resource``'s schema fields."""
    columns = sa_inspect(resource.model).columns
    found = {}
    for name in resource.schema._declared_fields:
        column = columns.get(name)
        keys = list(column.foreign_keys) if column is not None else []
        if len(keys) == 1:
            found[name] = keys[0].column.table.name
    return found


def references_of(resource) -> dict:
    """``{field: Resource}``: the fields of ``resource`` that hold the id of a registered resource's record."""
    from core.registry import resources

    by_table = {}
    for other in resources().values():
        by_table.setdefault(other.model.__table__.name, other)
    return {name: by_table[table] for name, table in _targets(resource).items() if table in by_table}


def user_fields(resource) -> set[str]:
    """Fields of ``resource`` that hold a user's id (owner, creator, assignee)."""
    return {name for name, table in _targets(resource).items() if table == "core_user"}


def department_fields(resource) -> set[str]:
    """Fields of ``resource`` that hold a department's id."""
    return {name for name, table in _targets(resource).items() if table == "core_department"}


def titles(resource, user, rows: list[dict]) -> dict:
    """``{(field, id): title}`` of the records ``rows`` refer to that ``user`` may read: one query a field."""
    names = {}
    for name, target in references_of(resource).items():
        ids = {row[name] for row in rows if type(row.get(name)) is int}
        column = _known_by(target, user, target.title_field)
        if not ids or column is None:
            continue
        for record_id, title in db.session.execute(select(target.model.id, column).where(
                target.model.id.in_(ids), scope_filter(target, "read", user))):
            names[(name, record_id)] = str(title)
    return names


def id_from_text(text: str) -> int | None:
    """``text`` as a record's id: plain ASCII digits (or ``#`` and digits, as pages and exports show
    an id), within an INTEGER key; else ``None`` (``"²".isdigit()`` is true, yet no id)."""
    digits = text[1:] if text.startswith("#") else text
    if digits.isascii() and digits.isdigit() and len(digits) <= 10 and 0 < int(digits) < 2**31:
        return int(digits)
    return None


def _known_by(target, user, name: str | None):
    """``target``'s column ``name`` if the reader may match records by it (not hidden, not masked), else ``None``."""
    if not name or field_rules(target, user).get(name) in ("hidden", "masked"):
        return None
    return getattr(target.model, name, None)


def find(target, user, text: str) -> int | None:
    """The id of the one record of ``target`` ``user`` may read that ``text`` names: by its id
    (``42`` or ``#42``), its natural key or its title, the last two only where the reader may see
    them. ``None``: none does. Several: a ``ValidationError``."""
    text = text.strip()
    if "\x00" in text:
        return None
    model, scope = target.model, scope_filter(target, "read", user)
    number = id_from_text(text)
    if number is not None:
        found = db.session.scalar(select(model.id).where(model.id == number, scope))
        if found is not None:
            return found
    matches = [column == text for column in (_known_by(target, user, target.natural_key),
                                             _known_by(target, user, target.title_field)) if column is not None]
    if not matches:
        return None
    ids = db.session.scalars(select(model.id).where(or_(*matches), scope).limit(2)).all()
    if len(ids) > 1:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"_lookup": [
            _("Several records are called “%(value)s”: give the code or the ID instead.", value=text)]})
    return ids[0] if ids else None


@dataclass
class Related:
    """The records of ``resource`` whose ``field`` refers to one record: the newest ``rows`` (dumped
    as the reader may see them) of ``total``."""

    resource: object
    field: str
    rows: list
    total: int


def referring(resource, user, record_id: int, limit: int = 5) -> list[Related]:
    """For each field of a registered resource that refers to ``resource``: the records ``user`` may
    read that refer to record ``record_id`` (a customer's contacts, opportunities, tickets...).
    Two queries a field (the newest ``limit`` and the count), in the reader's scope; fields with
    none are left out."""
    from core import resources as records
    from core.permissions import can
    from core.registry import resources

    found = []
    for other in resources().values():
        if not can(user, other.permission("read")):
            continue
        for name, target in references_of(other).items():
            if target.key != resource.key:
                continue
            query = records.scoped(other, user).where(getattr(other.model, name) == record_id)
            total = records.count(query)
            if total:
                rows = records.dumped(other, user, query.order_by(other.model.id.desc()).limit(limit))
                found.append(Related(resource=other, field=name, rows=rows, total=total))
    return found
