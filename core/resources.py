"""Business objects declared once: a ``Resource`` gives the core what it needs for API, pages and rules.

A plugin returns ``Resource`` objects from ``register_resources``; the core derives from each its
permissions (``<plugin>.<name>.<action>``), its REST API under ``/api/v1/<plugin>/<plural>``, and
the generic services below, which are the only way records are read and written: every query
goes through ``permissions.scope_filter``, every record shown goes through the field rules, every
write is validated by the resource's schema, re-selected through the scope and audited.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

import marshmallow
from flask import current_app
from flask_babel import gettext as _, lazy_gettext as _l
from sqlalchemy import (BigInteger, Date, DateTime, Integer, Numeric, SmallInteger, String, Text, TypeDecorator, and_, func,
                        inspect as sa_inspect, or_, select)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from core import audit
from core.errors import Conflict, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.permissions import require, scope_filter, scope_of
from core.readers import row_reader
from core.permissions.fields import apply_rules, check_writable, field_rules, read_schema
from core.plugins.spec import Permission
from core.registry import resources
from core.schemas import load

ACTIONS = ("read", "create", "update", "delete", "export", "import")
#: Fields the core manages; a schema may show them but a client never writes them directly.
SYSTEM_FIELDS = ("id", "created_at", "updated_at", "created_by_id", "version")
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Resource:
    """A business object a plugin declares once.

    ``schema`` is a marshmallow schema class listing every field a client may see; fields marked
    ``dump_only`` are shown but never written, and anything not in it can be neither. ``example``
    is valid input for ``create`` (documentation, and the generic permission tests use it).
    """

    plugin: str
    name: str
    model: type
    schema: type
    plural: str
    label: object
    label_plural: object
    title_field: str = "name"
    list_columns: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    search_fields: tuple[str, ...] = ()
    sort_fields: tuple[str, ...] = ()
    default_sort: str = "-updated_at"
    natural_key: str | None = None
    example: dict | object = field(default_factory=dict, hash=False, compare=False)
    actions: tuple[str, ...] = ACTIONS
    extra_permissions: tuple[Permission, ...] = ()
    #: For import: ``{field: lookup(text, user) -> id or None}`` to accept a name or code in a file
    #: where the schema wants the id of a related record (``owner_id`` takes a username or display
    #: name without being listed here). ``None`` means "no such record": a field error for that row.
    import_lookups: dict = field(default_factory=dict, hash=False, compare=False)
    #: ``before_write(user, obj, before)``: the plugin's rules for a record about to be saved, called by
    #: ``create`` (``before`` is ``None``) and ``update`` (``before`` is the snapshot read) after the
    #: values are set and before the flush; it may change ``obj`` (computed fields) or raise a domain
    #: error to refuse the write. Every write path (API, pages, import, services) goes through it.
    before_write: object = field(default=None, hash=False, compare=False)
    #: Extra buttons on the record's detail page, from the plugin's own pages (e.g. a customer's
    #: 360° view): ``DetailLink``s, each shown when the reader holds its permission.
    detail_links: tuple = field(default=(), hash=False, compare=False)
    #: ``before_delete(user, obj)``: called by ``delete`` once the record is read (in scope, locked,
    #: at the client's version) and before it goes; raise a domain error to refuse the delete.
    before_delete: object = field(default=None, hash=False, compare=False)
    #: ``preload(user, datas)``: a context manager an import enters around validating a batch of
    #: rows (``datas``, the inputs ``create``/``update`` will get): a schema check that reads the
    #: database for each row (a duplicate check, say) may read it here once for all of them and
    #: answer from that inside the block.
    preload: object = field(default=None, hash=False, compare=False)
    #: Whether a bulk import may write new records as plain rows (``new_rows``: one ``INSERT`` of
    #: their column values, no ORM objects, no flush) instead of building and flushing a record
    #: each. Set it only for a model no code reacts to as its objects are flushed (a session's
    #: ``before_flush``/``after_flush`` listener, an ORM ``@validates`` or constructor of its
    #: own); a resource with ``before_write`` is always written as records.
    bulk_insert: bool = False

    def __post_init__(self):
        if self.bulk_insert and self.before_write is not None:
            raise ValueError(f"{self.key}: bulk_insert skips before_write; declare one or the other")

    @property
    def key(self) -> str:
        """``<plugin>.<name>``: what permissions, field rules and the audit trail call it."""
        return f"{self.plugin}.{self.name}"

    def permission(self, action: str) -> str:
        return f"{self.key}.{action}"

    def permissions(self) -> list[Permission]:
        """The permissions this resource defines: one per action, plus its custom ones."""
        return [Permission(self.permission(a), f"{self.label_plural}: {a}") for a in self.actions] + list(
            self.extra_permissions)

    def sample(self, n: int = 0) -> dict:
        """Valid create input; ``example`` may be a function of ``n`` for unique fields."""
        return self.example(n) if callable(self.example) else dict(self.example)

    def title(self, obj) -> str:
        """The record's name for the audit trail (stored, shown to admins)."""
        return str(getattr(obj, self.title_field, None) or f"#{obj.id}")

    def title_of(self, row: dict) -> str:
        """The record's name from a dumped row, so a masked title stays masked on pages."""
        return str(row.get(self.title_field) or f"#{row.get('id', '')}")


@dataclass(frozen=True)
class DetailLink:
    """A button on a record's detail page: ``url_for(endpoint, record_id=<the record's id>)``.

    Shown to readers holding ``permission`` (``None``: everyone who sees the record); the page it
    opens checks access again, so the button is a convenience, never the control.
    """

    label: object
    endpoint: str
    permission: str | None = None


#: Labels of the fields the core manages, for any resource whose schema shows them without one.
_SYSTEM_LABELS = {"id": "ID", "owner_id": _l("Owner"), "department_id": _l("Department"), "created_at": _l("Created"),
                  "updated_at": _l("Updated"), "version": _l("Version"), "custom": _l("Custom fields")}


def field_label(resource: Resource, name: str) -> str:
    """A field's label in the current language (``metadata={"label": _l(...)}``), else a known name, else the name."""
    field = resource.schema._declared_fields.get(name)
    text = field.metadata.get("label") if field is not None else None
    if text:
        return str(text)
    return str(_SYSTEM_LABELS.get(name, name))


def get_resource(key: str) -> Resource:
    try:
        return resources()[key]
    except KeyError:
        raise NotFound(_("Not found.")) from None


def by_path(plugin: str, plural: str) -> Resource:
    """The resource served at ``/api/v1/<plugin>/<plural>``."""
    for resource in resources().values():
        if resource.plugin == plugin and resource.plural == plural:
            return resource
    raise NotFound(_("Not found."))


# Reading -----------------------------------------------------------------------------------------


def scoped(resource: Resource, user, action: str = "read"):
    """``SELECT`` of the rows ``user`` may ``action`` (no permission: no rows, deny by default)."""
    return select(resource.model).where(scope_filter(resource, action, user))


def get(resource: Resource, user, record_id, action: str = "read", lock: bool = False):
    """The record with ``record_id`` if ``user`` may ``action`` it; otherwise ``NotFound``.

    An out-of-scope record and a missing one look the same: nobody learns that an id exists.
    """
    require(user, resource.permission(action))
    record_id = _record_key(record_id)
    if record_id is None:
        raise NotFound(_("Not found."))
    id_column = resource.model.id.property.columns[0]
    if record_id < 1 or _column_problem(id_column, record_id, references=False):
        raise NotFound(_("Not found."))  # no row has such an id: the database could not even compare it
    query = scoped(resource, user, action).where(resource.model.id == record_id)
    if lock:
        query = query.with_for_update()
    obj = db.session.scalar(query)
    if obj is None:
        raise NotFound(_("Not found."))
    return obj


def dump(resource: Resource, user, objs, many: bool = False):
    """Records as ``user`` may see them: hidden fields left out, masked ones masked."""
    rules = field_rules(resource, user)
    hidden = frozenset(f for f, rule in rules.items() if rule == "hidden")
    schema = read_schema(resource.schema, hidden)
    if many:
        return [apply_rules(row, rules) for row in schema.dump(objs, many=True)]
    return apply_rules(schema.dump(objs), rules)


def dumped(resource: Resource, user, query) -> list[dict]:
    """The records ``query`` (a scoped ``select(resource.model)``) selects, dumped as ``user`` may see them.

    The same as ``dump`` of the loaded objects, without loading them when the schema allows
    (``core.readers``): only the columns shown are selected.
    """
    reader, rules = _reader(resource, user)
    if reader is None:
        return dump(resource, user, db.session.scalars(query).all(), many=True)
    rows = reader.dump(_execute(query.with_only_columns(*reader.columns)))
    return [apply_rules(row, rules) for row in rows] if rules else rows


def dumped_batches(resource: Resource, user, query, size: int):
    """``dumped`` in lists of up to ``size`` rows, streamed from the database: memory stays flat (exports)."""
    reader, rules = _reader(resource, user)
    if reader is None:
        for batch in db.session.scalars(query.execution_options(yield_per=size)).partitions():
            yield dump(resource, user, batch, many=True)
        return
    result = _execute(query.with_only_columns(*reader.columns).execution_options(yield_per=size))
    for batch in result.partitions():
        rows = reader.dump(batch)
        yield [apply_rules(row, rules) for row in rows] if rules else rows


def _execute(statement):
    """A Core statement run on the session's connection (its transaction), pending changes flushed first.

    What ``session.execute`` does for a statement of plain columns, without the ORM's result
    machinery around it (a fifth of a list request's time).
    """
    db.session.flush()
    return db.session.connection().execute(statement)


def _reader(resource: Resource, user):
    rules = field_rules(resource, user)
    hidden = frozenset(f for f, rule in rules.items() if rule == "hidden")
    return row_reader(resource.schema, resource.model, hidden), rules


def visible_fields(resource: Resource, user) -> list[str]:
    """The names of the fields ``user`` may see (masked ones included), in schema order."""
    rules = field_rules(resource, user)
    hidden = frozenset(f for f, rule in rules.items() if rule == "hidden")
    return [name for name, f in read_schema(resource.schema, hidden).dump_fields.items()]


@dataclass
class Page:
    """One page of a list: ``items`` are the records dumped as the user may see them."""

    items: list
    total: int
    page: int
    per_page: int


def list_query(resource: Resource, user, params: dict, action: str = "read"):
    """The scoped, filtered, searched and sorted query for a list; ``params`` is the query string."""
    require(user, resource.permission(action))
    query = scoped(resource, user, action)
    rules = field_rules(resource, user)
    query = query.where(*_filters(resource, params, rules, user))
    search = (params.get("q") or "").replace("\x00", "").strip()  # no stored text holds NUL; PostgreSQL refuses it
    if search:
        query = query.where(_search(resource, search, rules))
    return query.order_by(*_sort(resource, params.get("sort"), rules))


def list_page(resource: Resource, user, params: dict) -> Page:
    """One page of records plus the total: one page query and one count, both scoped."""
    page, per_page = _page_args(params)
    query = list_query(resource, user, params)
    total = count(query)
    offset = (page - 1) * per_page
    # A page past the end is empty; asking the database for it could overflow its OFFSET.
    items = dumped(resource, user, query.limit(per_page).offset(offset)) if offset < total else []
    return Page(items=items, total=total, page=page, per_page=per_page)


def count(query) -> int:
    """How many records ``query`` (a ``list_query``) finds."""
    # The list query reads one table, so counting its rows needs no subquery around it.
    return _execute(query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)).scalar()


def _page_args(params) -> tuple[int, int]:
    try:
        page = max(1, int(params.get("page") or 1))
        per_page = min(MAX_PER_PAGE, max(1, int(params.get("per_page") or current_app.config["YITI"]["PAGE_SIZE"])))
    except ValueError:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"page": [_("Not a valid integer.")]}) from None
    return page, per_page


_OPERATORS = ("in", "gte", "lte", "gt", "lt", "contains")


def _filters(resource: Resource, params: dict, rules: dict, user=None) -> list:
    """``field=v``, ``field__in=a,b``, ``field__gte=``/``__lte=``/``__gt=``/``__lt=``, ``field__contains=`` (text).

    Values are read by the field's schema and checked against the column (a number it cannot hold
    or text with NUL is a field error, not a database error); a datetime without a time zone is
    taken in the user's.
    """
    conditions, errors = [], {}
    fields = resource.schema._declared_fields
    for raw_key, raw in params.items():
        name, _sep, op = raw_key.partition("__")
        if name not in resource.filters or rules.get(name) in ("hidden", "masked"):
            continue
        if op and op not in _OPERATORS:
            errors[raw_key] = [_("Unknown filter operator.")]
            continue
        column = getattr(resource.model, name)
        if op == "contains" and column_kind(resource, name) != "text":
            errors[raw_key] = [_("Unknown filter operator.")]
            continue

        def read(text):
            value = fields[name].deserialize(text)
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=_user_zone(user))
            if problem := _column_problem(column.property.columns[0], value, references=False):
                raise marshmallow.ValidationError([problem])
            return value

        try:
            if "\x00" in str(raw):
                raise marshmallow.ValidationError([_("Not a valid string.")])
            if op == "contains":
                conditions.append(column.contains(str(raw), autoescape=True))
            elif op == "in":
                values = [read(v.strip()) for v in str(raw).split(",") if v.strip()]
                conditions.append(column.in_(values))
            else:
                value = read(raw) if raw != "" else None
                if value is None and op:
                    continue  # an empty bound (a blank "from" box) is no bound
                if isinstance(value, bool) and op:
                    raise marshmallow.ValidationError([_("This field can only be compared for equality.")])
                if op == "":
                    conditions.append(column.is_(None) if value is None else column == value)
                elif op in ("gte", "gt"):
                    conditions.append(column >= value if op == "gte" else column > value)
                else:
                    conditions.append(column <= value if op == "lte" else column < value)
        except marshmallow.ValidationError as exc:
            errors[raw_key] = [str(m) for m in exc.messages] if isinstance(exc.messages, list) else [str(exc.messages)]
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    return conditions


def _search(resource: Resource, text: str, rules: dict):
    """Every word must appear in one of the searchable fields the user may see in full."""
    columns = [getattr(resource.model, f) for f in resource.search_fields if f not in rules]
    if not columns:
        return and_(False)
    words = text.split()[:5]
    return and_(*[or_(*[func.lower(c).contains(w.lower(), autoescape=True) for c in columns]) for w in words])


def _sort(resource: Resource, raw: str | None, rules: dict) -> list:
    allowed = set(resource.sort_fields or resource.list_columns) | {"id", "created_at", "updated_at"}
    order = []
    for part in (raw or resource.default_sort).split(","):
        part = part.strip()
        name = part.lstrip("-")
        if name not in allowed or rules.get(name) in ("hidden", "masked"):
            raise ValidationError(_("Please correct the highlighted fields."),
                                  fields={"sort": [_("Cannot sort by %(field)s.", field=name)]})
        column = getattr(resource.model, name)
        order.append(column.desc() if part.startswith("-") else column.asc())
    order.append(resource.model.id.desc())  # a stable order for pagination
    return order


# Writing -----------------------------------------------------------------------------------------

_UPDATING: ContextVar[tuple[str, int | None] | None] = ContextVar("yiti_updating_record", default=None)


def updating_id(resource_key: str) -> int | None:
    """The id of the ``resource_key`` record ``update`` is validating input for, while its schema
    runs; ``None`` for a create (or while another resource's record is being updated).

    A schema check that compares with other records (a duplicate check) leaves this one out.
    """
    updating = _UPDATING.get()
    return updating[1] if updating is not None and updating[0] == resource_key else None


def _record_key(record_id) -> int | None:
    """``record_id`` as the integer it names, or ``None`` when it names none (``get`` answers 404)."""
    try:
        return int(record_id)
    except (TypeError, ValueError):
        return None


def _load(resource: Resource, user, data: dict, partial: bool, schema=None) -> tuple[dict, int | None]:
    if not isinstance(data, dict):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"_schema": [_("Invalid input type.")]})
    data = dict(data)
    version = data.pop("version", None)
    errors = check_writable(data, field_rules(resource, user))
    for name in SYSTEM_FIELDS:
        if name in data:
            errors.setdefault(name, [_("This field is read-only.")])
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    clean = load(schema if schema is not None else resource.schema(), data, partial=partial)
    _check_columns(resource, user, clean)
    return clean, version


#: The values each integer column type can hold; a larger number would be a database error.
_INTEGER_RANGES = ((SmallInteger, 2**15 - 1), (BigInteger, 2**63 - 1), (Integer, 2**31 - 1))


def _check_columns(resource: Resource, user, clean: dict) -> None:
    """Refuse, as field errors, values the database would refuse with an error (a 500).

    A plugin's schema says what a field means; the column says what can be stored. Text with NUL
    characters (PostgreSQL refuses them), text longer than the column, numbers the column type
    cannot hold and references to rows that do not exist are caught here for every resource, so
    no schema has to repeat its table. A datetime without a time zone is taken in the user's.
    """
    errors = {}
    columns = _stored_columns(resource.model)
    for name, value in list(clean.items()):
        stored = columns.get(name)
        if stored is None or value is None:
            continue
        column, plain_text_under = stored
        if type(value) is str and len(value) < plain_text_under and "\x00" not in value:
            continue  # the common case, decided without the general checks below
        if isinstance(value, datetime) and value.tzinfo is None:
            clean[name] = value = value.replace(tzinfo=_user_zone(user))
        if problem := _column_problem(column, value):
            errors[name] = [problem]
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)


@lru_cache(maxsize=256)
def _stored_columns(model) -> dict[str, tuple]:
    """``{attribute: (column, n)}`` of ``model``'s columns: text shorter than ``n`` characters and
    without NUL is what the column holds as it is (``n`` is 0 for a referencing column: its value
    is checked to exist)."""
    plan = {}
    for name, column in sa_inspect(model).columns.items():
        length = getattr(column.type, "length", None) if isinstance(column.type, String) else None
        plan[name] = (column, 0 if column.foreign_keys else (length + 1 if length else float("inf")))
    return plan


def _column_problem(column, value, references: bool = True) -> str | None:
    kind = column.type
    if isinstance(value, str):
        if "\x00" in value:
            return _("Not a valid string.")
        length = getattr(kind, "length", None)
        if isinstance(kind, String) and length and len(value) > length:
            return _("Enter at most {max} characters.").format(max=length)
    elif isinstance(value, int) and not isinstance(value, bool) and isinstance(kind, Integer):
        limit = next(limit for type_, limit in _INTEGER_RANGES if isinstance(kind, type_))
        if not -limit - 1 <= value <= limit:
            return _("Enter a number between {min} and {max}.").format(min=-limit - 1, max=limit)
    elif isinstance(value, Decimal) and isinstance(kind, Numeric) and kind.precision and value.is_finite():
        if abs(value) >= Decimal(10) ** (kind.precision - (kind.scale or 0)):
            return _("The number is too large.")
    for foreign_key in column.foreign_keys if references else ():
        target = foreign_key.column
        if isinstance(value, int) and db.session.scalar(select(target).where(target == value).limit(1)) is None:
            return _("Does not exist.")
    return None


def _user_zone(user):
    from zoneinfo import ZoneInfo

    return ZoneInfo(getattr(user, "timezone", None) or current_app.config["YITI"]["DEFAULT_TIMEZONE"])


def snapshot(resource: Resource, obj) -> dict:
    """The schema fields of ``obj`` in stored form, less the ones the system keeps (what the audit trail compares)."""
    return snapshots(resource, [obj])[0]


def snapshots(resource: Resource, objs) -> list[dict]:
    """``snapshot`` of each of ``objs`` (read by the row reader's plan where the schema allows)."""
    reader = row_reader(resource.schema, resource.model, frozenset())
    dumped = reader.dump_objects(objs) if reader is not None else resource.schema().dump(list(objs), many=True)
    return [audit.jsonable({k: v for k, v in d.items() if k not in SYSTEM_FIELDS}) for d in dumped]


def _must_stay_in_scope(resource: Resource, user, obj, action: str) -> None:
    try:
        db.session.flush()
    except IntegrityError:
        # A unique value already used (or a reference the schema could not check): the client's
        # data clashes with what is stored. Nothing is written; the request is rolled back.
        db.session.rollback()
        raise Conflict(_("This clashes with an existing record: a value that must be unique is already used.")) from None
    visible = db.session.scalar(
        select(resource.model.id).where(resource.model.id == obj.id, scope_filter(resource, action, user)))
    if visible is None:
        raise Forbidden(_("The record would be outside what you may edit (owner or department)."))


def create(resource: Resource, user, data: dict):
    """Validate ``data``, create the record owned by ``user`` (unless it says otherwise), audit it."""
    obj = new_record(resource, user, load_new(resource, user, data))
    db.session.add(obj)
    if resource.before_write is not None:
        with db.session.no_autoflush:  # a rule that reads settings must not write the row half-made
            resource.before_write(user, obj, None)
    _must_stay_in_scope(resource, user, obj, "create")
    audit.record("create", resource=resource.key, record_id=obj.id, summary=resource.title(obj),
                 changes=audit.diff({}, snapshot(resource, obj)), actor=user)
    return obj


def load_new(resource: Resource, user, data: dict, schema=None) -> dict:
    """``data`` validated for ``create`` (permission, writable fields, schema, columns): the clean values.

    ``schema``: an instance of ``resource.schema`` to reuse (a bulk import loads many rows with one).
    """
    require(user, resource.permission("create"))
    clean, _version = _load(resource, user, data, partial=False, schema=schema)
    return clean


def new_record(resource: Resource, user, clean: dict):
    """The unsaved record ``create`` makes of ``clean`` values: owner, department and creator filled in.

    ``create`` adds it, runs ``before_write``, checks the create scope and audits; a bulk import
    (``core.imports``) does the same for a batch of them at once.
    """
    obj = resource.model(**clean)
    if hasattr(obj, "owner_id") and obj.owner_id is None:
        obj.owner_id = user.id
    if hasattr(obj, "department_id") and obj.department_id is None:
        obj.department_id = _department_of(obj.owner_id, user)
    if hasattr(obj, "created_by_id"):
        obj.created_by_id = user.id
    return obj


def new_rows(resource: Resource, user, cleans: list[dict], departments: dict | None = None) -> list[dict] | None:
    """The column values of the records ``new_record`` would make of ``cleans``, every column filled
    (the model's defaults taken as the ``INSERT`` would take them), keyed by attribute;
    ``None`` when that cannot be known ahead of the ``INSERT`` (a column the database fills itself)
    or a record would do more than hold them (an ORM ``@validates`` hook, an insert listener, a
    constructor of its own, a value that is not a column).

    ``departments`` (one import's) remembers each owner's department, so each costs one query.
    """
    plan = _row_plan(resource.model)
    if plan is None:
        return None
    attributes, defaults = plan
    if any(not set(clean) <= set(attributes) for clean in cleans):
        return None  # a value the model takes other than as a column (a property, a relationship)
    departments = {} if departments is None else departments
    rows = []
    for clean in cleans:
        try:
            row = {name: value(None) if callable(value) else value for name, value in defaults.items() if name not in clean}
        except (AttributeError, TypeError):
            return None  # a default that reads the statement being executed: only the INSERT knows
        row.update(clean)
        if "owner_id" in attributes and row.get("owner_id") is None:
            row["owner_id"] = user.id
        if "department_id" in attributes and row.get("department_id") is None:
            owner = row.get("owner_id")
            if owner not in departments:
                departments[owner] = _department_of(owner, user)
            row["department_id"] = departments[owner]
        if "created_by_id" in attributes:
            row["created_by_id"] = user.id
        rows.append({name: row.get(name) for name in attributes})
    return rows


@lru_cache(maxsize=256)
def _row_plan(model) -> tuple[tuple[str, ...], dict] | None:
    """``(attributes, {attribute: default})`` of ``model``'s columns, or ``None`` when a column has a
    database-side default or a default that is not a plain value or function (its value unknown here)."""
    mapper = sa_inspect(model)
    if mapper.validators or mapper.dispatch.before_insert or mapper.dispatch.after_insert:
        return None  # an ORM ``@validates`` hook or insert listener runs only for a record
    if mapper.class_manager.original_init is not db.Model.__init__:
        return None  # a constructor of its own
    attributes, defaults = [], {}
    for prop in mapper.column_attrs:
        if len(prop.columns) != 1:
            return None
        column = prop.columns[0]
        if column.server_default is not None or column.table is not mapper.local_table or column.key != prop.key:
            return None
        attributes.append(prop.key)
        default = column.default
        if default is None:
            continue
        if default.is_scalar:
            defaults[prop.key] = default.arg
        elif default.is_callable:
            defaults[prop.key] = default.arg  # SQLAlchemy wraps it to take the execution context
        else:
            return None  # a SQL expression or a sequence: the database's own
    return tuple(attributes), defaults


def _department_of(owner_id, user):
    if owner_id is None or owner_id == user.id:
        return user.department_id
    from core.org.models import User

    return db.session.scalar(select(User.department_id).where(User.id == owner_id))


def update(resource: Resource, user, record_id, data: dict, version: int | None = None):
    """Change the fields in ``data`` of a record ``user`` may update, at the version they read.

    The row is re-selected through the update scope (404 outside it) and locked; a version other
    than the current one is a 409 saying who changed it and when; nothing is written then.
    """
    return update_with_before(resource, user, record_id, data, version)[0]


def update_with_before(resource: Resource, user, record_id, data: dict, version: int | None = None):
    """``update``, returning ``(record, snapshot before the change)`` (what an import keeps to undo it)."""
    token = _UPDATING.set((resource.key, _record_key(record_id)))
    try:
        clean, body_version = _load(resource, user, data, partial=True)
    finally:
        _UPDATING.reset(token)
    version = version if version is not None else body_version
    obj = get(resource, user, record_id, action="update", lock=True)
    check_version(resource, obj, version)
    before = snapshot(resource, obj)
    for key, value in clean.items():
        setattr(obj, key, value)
    if "owner_id" in clean and "department_id" not in clean and hasattr(obj, "department_id"):
        obj.department_id = _department_of(obj.owner_id, user)
    if resource.before_write is not None:
        with db.session.no_autoflush:
            resource.before_write(user, obj, before)
    try:
        _must_stay_in_scope(resource, user, obj, "update")
    except StaleDataError:
        db.session.rollback()
        raise _conflict(resource, record_id) from None
    changes = audit.diff(before, snapshot(resource, obj))
    if changes:
        audit.record("update", resource=resource.key, record_id=obj.id, summary=resource.title(obj),
                     changes=changes, actor=user)
    return obj, before


def delete(resource: Resource, user, record_id, version: int | None = None) -> None:
    """Delete a record ``user`` may delete; the audit entry keeps its last values."""
    obj = get(resource, user, record_id, action="delete", lock=True)
    check_version(resource, obj, version)
    if resource.before_delete is not None:
        resource.before_delete(user, obj)
    audit.record("delete", resource=resource.key, record_id=obj.id, summary=resource.title(obj),
                 changes=audit.diff(snapshot(resource, obj), {}), actor=user)
    db.session.delete(obj)
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise _conflict(resource, record_id) from None


def check_version(resource: Resource, obj, version) -> None:
    """A 409 when the client read ``obj`` at another version (``None``: the client did not say)."""
    if version is None:
        return
    try:
        stale = int(version) != obj.version
    except (TypeError, ValueError):
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"version": [_("Not a valid integer.")]}) from None
    if stale:
        raise _conflict(resource, obj.id, obj.version)


def _conflict(resource: Resource, record_id, current_version=None) -> Conflict:
    """The 409 for a stale write: who changed the record last, and when."""
    from core.audit.models import AuditEntry

    last = db.session.scalar(
        select(AuditEntry).where(AuditEntry.resource == resource.key, AuditEntry.record_id == int(record_id))
        .order_by(AuditEntry.id.desc()).limit(1))
    return Conflict(
        _("This record was changed by %(name)s at %(time)s. Reload it and apply your change again.",
          name=last.actor_name if last else "?", time=_format_time(last.at) if last else "?"),
        current_version=current_version,
        changed_by=last.actor_name if last else None,
        changed_at=last.at.isoformat() if last else None,
    )


def _format_time(value: datetime) -> str:
    from flask_babel import format_datetime

    return format_datetime(value, "short")


def column_kind(resource: Resource, name: str) -> str:
    """``text``, ``number``, ``date``, ``datetime``, ``bool`` or ``other``: how a page shows a filter."""
    column = getattr(resource.model, name).property.columns[0]
    kind = column.type
    if isinstance(kind, TypeDecorator) and isinstance(kind.impl_instance, (DateTime, Date)):
        kind = kind.impl_instance  # UTCDateTime: a date and time like any other
    if isinstance(kind, (String, Text)):
        return "text"
    if isinstance(kind, Numeric):
        return "number"
    if isinstance(kind, DateTime):
        return "datetime"
    if isinstance(kind, Date):
        return "date"
    python = getattr(kind, "python_type", None) if not hasattr(kind, "impl") else None
    return {int: "number", float: "number", Decimal: "number", bool: "bool", date: "date"}.get(python, "other")
