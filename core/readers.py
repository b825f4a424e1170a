"""Records read as rows: one ``SELECT`` of the columns a schema dumps, serialized field by field.

A list page, an export and the API list do not need ORM objects: building one per row and then
running marshmallow's ``dump`` over it costs more than the query (``python -m bench api_rps``).
When every field a schema dumps is a plain column of the model, serialized by one of
marshmallow's own value fields, a ``RowReader`` selects exactly those columns and calls each
field's own ``_serialize`` on the value, so the output is the one ``schema.dump`` gives (a test
checks this for every registered resource). A schema with anything else (a ``Method`` or
``Nested`` field, a field of a property, a ``pre_dump``/``post_dump`` hook, a custom
``_serialize``) gets ``None`` here, and the caller loads ORM objects as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from marshmallow import fields
from sqlalchemy import inspect as sa_inspect

#: Fields whose value needs the whole object, a nested schema or a constant, not the column's value.
_NEEDS_OBJECT = (fields.Method, fields.Function, fields.Nested, fields.Pluck, fields.Constant)


@dataclass(frozen=True)
class RowReader:
    """The columns to select (labelled with the field names) and how to turn a row into a dumped dict."""

    columns: tuple
    #: ``(output key, position in the row, serialize(value) or None when the value is used as it is)``
    plan: tuple
    #: The model attribute read at each position (for records already loaded).
    attributes: tuple

    def dump(self, rows) -> list[dict]:
        """Rows of ``select(*self.columns)`` as ``schema.dump(..., many=True)`` would give them."""
        plan = self.plan
        out = []
        for row in rows:
            item = {}
            for key, position, convert in plan:
                value = row[position]
                item[key] = value if convert is None or value is None else convert(value)
            out.append(item)
        return out

    def dump_objects(self, objs) -> list[dict]:
        """Records already loaded (a write's audit snapshot) as ``schema.dump(..., many=True)`` would give them."""
        return self.dump([getattr(obj, attribute) for attribute in self.attributes] for obj in objs)


def _plain(field) -> bool:
    """A field marshmallow serializes from the value alone, with its own code (recursively for containers)."""
    if isinstance(field, _NEEDS_OBJECT):
        return False
    serialize = type(field)._serialize
    if getattr(serialize, "__module__", None) != fields.__name__:
        return False  # a project field with its own serialization: only marshmallow knows what it does
    inner = [getattr(field, name, None) for name in ("inner", "key_field", "value_field")]
    inner += list(getattr(field, "tuple_fields", ()) or ())
    return all(_plain(f) for f in inner if f is not None)


def _converter(field):
    """``serialize(value)`` for a non-None value, or ``None`` when marshmallow returns it unchanged."""
    kind = type(field)
    if kind is fields.Raw:
        return None
    if kind is fields.String:
        return lambda value: value if type(value) is str else str(value)
    if kind is fields.Integer and not field.as_string:
        return lambda value: value if type(value) is int else int(value)
    if kind in (fields.DateTime, fields.Date) and field.format in (None, "iso", "iso8601"):
        # marshmallow's own functions: a datetime in a Date field gives the date, as it does there
        return datetime.isoformat if kind is fields.DateTime else date.isoformat
    serialize = field._serialize
    return lambda value: serialize(value, None, None)


@lru_cache(maxsize=512)
def row_reader(schema_class, model, hidden: frozenset) -> RowReader | None:
    """The ``RowReader`` of ``schema_class`` over ``model`` without the ``hidden`` fields, or ``None``
    when some field cannot be read from a column alone (the caller then dumps ORM objects)."""
    schema = schema_class(exclude=tuple(sorted(hidden & set(schema_class._declared_fields))))
    if any(schema._hooks[tag] for tag in ("pre_dump", "post_dump")):
        return None
    mapper = sa_inspect(model)
    columns, plan, attributes = [], [], []
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        if "." in attribute or attribute not in mapper.column_attrs or not _plain(field):
            return None
        plan.append((field.data_key or name, len(columns), _converter(field)))
        columns.append(getattr(model, attribute).label(f"c{len(columns)}"))
        attributes.append(attribute)
    return RowReader(columns=tuple(columns), plan=tuple(plan), attributes=tuple(attributes))

