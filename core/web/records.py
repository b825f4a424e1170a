"""Portal pages every ``Resource`` gets: list, detail (with History), create/edit form, delete.

URLs are ``/<plugin>/<plural>[/<id>[/edit|/delete]]``. Like the API, the pages only call the
generic services in ``core.resources``, so scopes, field rules, validation, optimistic locking
and the audit trail are the same everywhere.
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import marshmallow
from markupsafe import Markup
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import format_datetime, gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from core import audit, inbox, references, resources as records
from core.display import Reading
from core.org.services import display_names
from core.errors import BusinessRuleError, Conflict, Forbidden, ValidationError
from core.extensions import db
from core.permissions import can, scope_filter
from core.permissions.fields import field_rules
from core.preferences import get_preference, set_preference
from core.schemas import choices as field_choices, list_from_text

bp = Blueprint("records", __name__)


def input_kind(field: marshmallow.fields.Field) -> str:
    """How a form shows a schema field."""
    choices = field_choices(field)
    if choices:
        return "select"
    if isinstance(field, marshmallow.fields.Boolean):
        return "checkbox"
    if isinstance(field, (marshmallow.fields.Integer, marshmallow.fields.Decimal, marshmallow.fields.Float)):
        return "number"
    if isinstance(field, marshmallow.fields.DateTime):
        return "datetime-local"
    if isinstance(field, marshmallow.fields.Date):
        return "date"
    if isinstance(field, marshmallow.fields.Email):
        return "email"
    longest = max((v.max or 0 for v in field.validators if isinstance(v, marshmallow.validate.Length)), default=0)
    return "textarea" if longest > 500 else "text"


def form_fields(resource, user) -> list[dict]:
    """The fields a form shows: writable ones, with read-only and masked ones disabled.

    A user field (an owner, an assignee) is a choice of the active users; a reference to another
    resource's record is a text box taking its name, code or id, suggesting matches as one types
    (``options``) from the records the user may read.
    """
    rules = field_rules(resource, user)
    people, targets = references.user_fields(resource), references.references_of(resource)
    shown = []
    for name, field in resource.schema._declared_fields.items():
        if field.dump_only or rules.get(name) == "hidden" or name in records.SYSTEM_FIELDS:
            continue
        spec = {"name": name, "label": records.field_label(resource, name), "kind": input_kind(field),
                "choices": field_choices(field), "required": field.required,
                "disabled": rules.get(name) in ("readonly", "masked")}
        if name in people:
            spec.update(kind="select", choices=_active_users())
        elif name in targets:
            target = targets[name]
            spec.update(kind="reference", options_url=url_for(
                "records.options", plugin=target.plugin, plural=target.plural, box=name))
        shown.append(spec)
    return sorted(shown, key=lambda spec: spec["name"] == "owner_id")  # the record's own fields first


def _active_users() -> list[tuple[int, str]]:
    """``[(id, "name (username)")]`` of the active users, read once a request."""
    from core.org.models import User

    if "active_users" not in g:
        g.active_users = [(uid, f"{name} ({username})") for uid, name, username in db.session.execute(
            select(User.id, User.display_name, User.username).where(User.active.is_(True)).order_by(User.display_name))]
    return g.active_users


def _keeping_current(resource, fields: list[dict], values: dict) -> list[dict]:
    """``fields`` with each user choice also offering the user it holds now (one deactivated since
    is still the owner: the form must not quietly empty the field)."""
    from core.org.models import User

    people = references.user_fields(resource)
    for spec in fields:
        current = values.get(spec["name"])
        if spec["name"] in people and type(current) is int and all(c != current for c, _t in spec["choices"]):
            user = db.session.get(User, current)
            if user is not None:
                spec["choices"] = [*spec["choices"], (user.id, f"{user.display_name} ({user.username})")]
    return fields


def _form_to_data(resource, user, form) -> dict:
    """A submitted form as the dict the schema loads: empty text is ``None`` where allowed, a
    reference typed as a name or code is the id of the one record it names (else a field error)."""
    data, errors = {}, {}
    targets = references.references_of(resource)
    for spec in form_fields(resource, user):
        name = spec["name"]
        if spec["disabled"]:
            continue
        field = resource.schema._declared_fields[name]
        if spec["kind"] == "checkbox":
            data[name] = name in form
            continue
        if name not in form:
            continue
        value = form.get(name, "").strip()
        if isinstance(field, marshmallow.fields.List):
            data[name] = list_from_text(value)
            continue
        if value == "":
            if field.allow_none:
                data[name] = None
            elif field.required:
                data[name] = value
            continue
        if name in targets and value == form.get(f"{name}__shown", "").strip():
            continue  # the record shown when the form was opened, left as it was: not looked up again
        if name in targets:
            try:
                found = references.find(targets[name], user, value)
            except ValidationError as exc:
                errors[name] = exc.fields["_lookup"]
                continue
            if found is None:
                errors[name] = [_("Nothing called “%(value)s” was found.", value=value)]
                continue
            value = found
        data[name] = value
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    return data


def _form_values(resource, row: dict) -> dict:
    """A record's values as its form shows them: lists as ``a, b``; a reference by its title (``#id``
    when the reader may not know it by name), with what was shown kept (``<field>__shown``) so
    that a box left as it was keeps its record without being looked up again."""
    titles = references.titles(resource, current_user, [row])
    targets = references.references_of(resource)
    values = {}
    for key, value in row.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif key in targets and type(value) is int:
            value = titles.get((key, value), f"#{value}")
            values[f"{key}__shown"] = value
        values[key] = value
    return values


def _displayer(resource, rows: list[dict]):
    """``display(value, field, link=True)`` for a page: what ``core.display.Reading`` reads, with
    referenced records linked to their page and times in the reader's locale."""
    reading = Reading(resource, current_user)
    reading.read(rows)

    def display(value, field=None, link=True):
        if value is None:
            return value
        if field in reading.kinds:
            found = reading.name(field, value)
            return found if found is not None else value
        if field in reading.targets:
            title = reading.name(field, value)
            if title is None:
                return f"#{value}"
            if not link:
                return title
            target = reading.targets[field]
            url = url_for("records.detail", plugin=target.plugin, plural=target.plural, record_id=value)
            return Markup('<a href="{}">{}</a>').format(url, title)
        if field in reading.choices:
            return reading.choices[field].get(value, value)
        if field in reading.times and isinstance(value, str):
            try:
                return format_datetime(datetime.fromisoformat(value), "short")
            except ValueError:
                return value  # a masked value
        if field in reading.amounts and isinstance(value, str):
            try:
                value = Decimal(value)  # shown with separators, as an amount
            except ArithmeticError:
                return value  # a masked value
        return _display(value)

    return display


def _display(value):
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, list):
        return "、".join(str(v) for v in value)  # tags: 重点、VIP, not ['重点', 'VIP']
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


# List --------------------------------------------------------------------------------------------


@bp.get("/<name:plugin>/<name:plural>")
@login_required
def list_page(plugin: str, plural: str):
    resource = records.by_path(plugin, plural)
    visible = records.visible_fields(resource, current_user)
    columns = _columns(resource, visible)
    params = _filter_params(resource, request.args)
    try:
        page = records.list_page(resource, current_user, params)
        errors = {}
    except ValidationError as exc:  # a filter, sort or page the list cannot read: said next to the form
        page = records.Page(items=[], total=0, page=1, per_page=current_app.config["YITI"]["PAGE_SIZE"])
        errors = exc.fields or {"_form": [exc.message]}
    rows = page.items
    declared = resource.schema._declared_fields
    by_id = references.user_fields(resource) | references.department_fields(resource) | set(references.references_of(resource))
    filters = [{"name": f, "label": records.field_label(resource, f), "kind": records.column_kind(resource, f),
                "choices": field_choices(declared[f]) if f in declared else []}
               for f in resource.filters if f in visible and f not in by_id
               and field_rules(resource, current_user).get(f) != "masked"]
    # A filter by a related record (a customer's contacts, from its page) has no box: it is shown
    # by the record's name, kept when the form is sent, and can be taken off.
    linked = {f: params[f] for f in resource.filters if f in by_id and f in params}
    ids = {f: references.id_from_text(v) for f, v in linked.items()}
    display = _displayer(resource, rows + [{f: i for f, i in ids.items() if i is not None}])
    linked_filters = [{"name": f, "label": records.field_label(resource, f), "value": v,
                       "text": display(ids[f], f, False) if ids[f] is not None else v} for f, v in linked.items()]
    pages = max(1, -(-page.total // page.per_page))
    return render_template(
        "records/list.html", resource=resource, columns=columns, rows=rows, page=page, pages=pages,
        params=params, filters=filters, all_columns=[(f, records.field_label(resource, f)) for f in _choosable(resource, visible)],
        can_create=can(current_user, resource.permission("create")),
        can_export=can(current_user, resource.permission("export")), display=display, linked_filters=linked_filters,
        can_import=can(current_user, resource.permission("import")),
        label=lambda name: records.field_label(resource, name), errors=errors,
    ), 422 if errors else 200


def _filter_params(resource, args) -> dict:
    """The list's query as the filter form sends it, read as the API reads a query: a blank box is
    no filter (not "is empty"), and a day typed for a date-and-time bound covers the whole day."""
    params = {}
    for key, value in args.items():
        day = value.strip()
        if day == "":
            continue
        name, _sep, op = key.partition("__")
        if (op in ("gte", "lte") and name in resource.filters and records.column_kind(resource, name) == "datetime"
                and re.fullmatch(r"\d{4}-\d{2}-\d{2}", day)):
            value = day + ("T00:00:00" if op == "gte" else "T23:59:59.999999")
        params[key] = value
    return params


def _choosable(resource, visible: list[str]) -> list[str]:
    """The fields a list may show as a column: not the version counter, nor a field of many values (``custom``)."""
    declared = resource.schema._declared_fields
    return [f for f in visible if f != "version" and not isinstance(declared.get(f), marshmallow.fields.Dict)]


def _columns(resource, visible: list[str]) -> list[str]:
    """The columns the user chose for this list (remembered per user), else the declared ones."""
    key = f"columns:{resource.key}"
    if "columns" in request.args:
        chosen = [c for c in request.args.getlist("columns") if c in visible]
        if chosen:
            set_preference(current_user, key, chosen)
            db.session.commit()
            return chosen
    saved = get_preference(current_user, key)
    if saved:
        chosen = [c for c in saved if c in visible]
        if chosen:
            return chosen
    return [c for c in (resource.list_columns or visible[:6]) if c in visible]


# Detail ------------------------------------------------------------------------------------------


@bp.get("/<name:plugin>/<name:plural>/<int:record_id>")
@login_required
def detail(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    obj = records.get(resource, current_user, record_id)
    row = records.dump(resource, current_user, obj)
    may = {action: _may(resource, action, obj) for action in ("update", "delete")}
    history = audit.history(resource.key, obj.id, viewer=current_user)
    related = references.referring(resource, current_user, obj.id)
    todos = inbox.about(resource.key, obj.id)
    return render_template("records/detail.html", resource=resource, obj=obj, row=row, may=may, history=history,
                           title=resource.title_of(row), label=lambda name: records.field_label(resource, name),
                           display=_displayer(resource, [row]), tab=request.args.get("tab", "details"),
                           related=related, todos=todos, assignees=display_names(t.assignee_id for t in todos),
                           links=[link for link in resource.detail_links
                                  if link.permission is None or can(current_user, link.permission)])


def _may(resource, action: str, obj) -> bool:
    """Whether the user may ``action`` this record: the same SQL scope the write will use."""
    if not can(current_user, resource.permission(action)):
        return False
    query = select(resource.model.id).where(resource.model.id == obj.id, scope_filter(resource, action, current_user))
    return db.session.scalar(query) is not None


# Create and edit ---------------------------------------------------------------------------------


@bp.route("/<name:plugin>/<name:plural>/new", methods=["GET", "POST"])
@login_required
def create(plugin: str, plural: str):
    resource = records.by_path(plugin, plural)
    if not can(current_user, resource.permission("create")):
        raise Forbidden(_("You do not have permission to do this."))
    errors = {}
    values = {f["name"]: current_user.id for f in form_fields(resource, current_user)
              if f["name"] == "owner_id" and not f["disabled"]}  # a new record is the creator's own
    if request.method == "POST":
        try:
            obj = records.create(resource, current_user, _form_to_data(resource, current_user, request.form))
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("records.detail", plugin=plugin, plural=plural, record_id=obj.id))
        except (ValidationError, BusinessRuleError, Forbidden) as exc:
            db.session.rollback()
            errors = exc.fields or {"_form": [exc.message]}
            values = request.form.to_dict()
    return render_template("records/form.html", resource=resource, obj=None, fields=form_fields(resource, current_user),
                           values=values, errors=errors, conflict=None, title=None), 422 if errors else 200


@bp.get("/<name:plugin>/<name:plural>/options/<name:box>")
@login_required
def options(plugin: str, plural: str, box: str):
    """``<option>``s for a reference box (``<datalist>``) being typed in: up to ten records of this
    resource the user may read whose searched fields contain what the box named ``box`` holds."""
    resource = records.by_path(plugin, plural)
    text = request.args.get(box, "").strip()
    rows = records.dumped(resource, current_user, records.list_query(resource, current_user, {"q": text}).limit(10)) \
        if text else []  # no count: a box asks at every pause in typing
    key = resource.natural_key
    titled = field_rules(resource, current_user).get(resource.title_field) not in ("hidden", "masked")
    choices = [{"value": resource.title_of(row) if titled else (row.get(key) if key and row.get(key) else row["id"]),
                "hint": " · ".join(str(part) for part in (row.get(key) if key else None, f"#{row['id']}") if part)}
               for row in rows]
    return render_template("records/_options.html", choices=choices)


@bp.route("/<name:plugin>/<name:plural>/<int:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    obj = records.get(resource, current_user, record_id, action="update")
    errors, conflict = {}, None
    values = _form_values(resource, records.dump(resource, current_user, obj))
    if request.method == "POST":
        try:
            data = _form_to_data(resource, current_user, request.form)
            records.update(resource, current_user, record_id, data, version=request.form.get("version") or None)
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("records.detail", plugin=plugin, plural=plural, record_id=record_id))
        except Conflict as exc:
            db.session.rollback()
            conflict = exc
            values = {**request.form.to_dict(), "version": request.form.get("version")}
        except (ValidationError, BusinessRuleError, Forbidden) as exc:
            db.session.rollback()
            errors = exc.fields or {"_form": [exc.message]}
            values = request.form.to_dict()
    status = 409 if conflict else 422 if errors else 200
    fields = _keeping_current(resource, form_fields(resource, current_user), _form_values(resource, records.dump(
        resource, current_user, obj)))
    return render_template("records/form.html", resource=resource, obj=obj, fields=fields,
                           values=values, errors=errors, conflict=conflict,
                           title=resource.title_of(records.dump(resource, current_user, obj))), status


@bp.post("/<name:plugin>/<name:plural>/<int:record_id>/delete")
@login_required
def delete(plugin: str, plural: str, record_id: int):
    resource = records.by_path(plugin, plural)
    try:
        records.delete(resource, current_user, record_id, version=request.form.get("version") or None)
        db.session.commit()
    except (Conflict, BusinessRuleError) as exc:  # stale, or the plugin refuses (e.g. under approval)
        db.session.rollback()
        flash(exc.message, "danger")
        return redirect(url_for("records.detail", plugin=plugin, plural=plural, record_id=record_id))
    flash(_("Deleted."), "success")
    return redirect(url_for("records.list_page", plugin=plugin, plural=plural))


@bp.app_template_filter("urlencode_without")
def urlencode_without(params: dict, key: str) -> str:
    """Query string of ``params`` without ``key``, ending in ``&`` when not empty (for ``...&key=v``)."""
    from urllib.parse import urlencode

    rest = {k: v for k, v in params.items() if k != key}
    return urlencode(rest) + "&" if rest else ""
