"""The OpenAPI 3 document of ``/api/v1`` and the page that shows it (``/api/docs``).

The document is built with apispec from the very marshmallow schemas the API validates and dumps
with, so it cannot drift from what the handlers accept: each schema is split into what a client
reads (every field but ``load_only`` ones) and what it may write (no ``dump_only`` field, none the
core manages, nothing else either since unknown fields are refused). Every registered ``Resource``
gets its list, get, create, update, delete, history and CSV export operations, with the filters it
declares. The document is built on first request per app and language and kept in
``app.extensions``; enabling a plugin needs a restart anyway.
"""
from __future__ import annotations

from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version as package_version

import marshmallow
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _, lazy_gettext as _l
from flask_login import current_user, login_required

from core.api import bp
from core.auth import tokens
from core.org.schemas import INT32, DepartmentIn, DepartmentOut, RoleOut, UserIn, UserOut
from core.registry import resources
from core.resources import MAX_PER_PAGE, SYSTEM_FIELDS, column_kind

OPENAPI_VERSION = "3.0.3"
CACHE_KEY = "yiti.openapi"
COMPARISONS = ("gte", "lte", "gt", "lt")
#: Keys apispec adds to a property that describe one direction only; each component here is one direction.
_DIRECTIONAL = ("readOnly", "writeOnly")

ERRORS = {
    "400": ("BadRequest", _l("The request could not be understood (not JSON, or no CSRF token with the session).")),
    "401": ("Unauthorized", _l("Log in first, or send a valid token.")),
    "403": ("Forbidden", _l("You do not have permission to do this.")),
    "404": ("NotFound", _l("Not found, or outside what you may see.")),
    "409": ("Conflict", _l("The record was changed by someone else since you read it.")),
    "422": ("UnprocessableEntity", _l("Input is invalid; the fields say why.")),
}


def document() -> dict:
    """The OpenAPI document for this app, in the request's language (built once, then cached)."""
    cache = current_app.extensions.setdefault(CACHE_KEY, {})
    key = (str(get_locale()), request.script_root)
    if key not in cache:
        cache[key] = _build(request.script_root)
    return cache[key]


def _version() -> str:
    try:
        return package_version("yiti-oa")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _numbers_as_json(value):
    """Decimal bounds (``Range(min=Decimal("0.00"))``) as JSON numbers, not strings."""
    if isinstance(value, dict):
        return {k: _numbers_as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_json(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _decimal_text(converter, field, ret, **_kwargs) -> dict:
    """Money travels as exact decimal text ("12800.00"), never as a binary float: say so."""
    if isinstance(field, marshmallow.fields.Decimal) and field.as_string:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "default"):
            ret.pop(key, None)
        return {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$"}
    return {}


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _bounds_as_numbers(prop: dict) -> dict:
    """apispec writes a Decimal field's range as text ("0.00"); OpenAPI wants numbers."""
    keys = _BOUNDS + (("default",) if prop.get("type") in ("number", "integer") else ())
    for key in keys:
        if isinstance(prop.get(key), str):
            prop[key] = _numbers_as_json(Decimal(prop[key]))
    return prop


class _Builder:
    """Turns marshmallow schemas into named components and adds the operations."""

    def __init__(self, script_root: str):
        self.marshmallow = MarshmallowPlugin()
        self.spec = APISpec(
            title="Yiti OA API",
            version=_version(),
            openapi_version=OPENAPI_VERSION,
            plugins=[self.marshmallow],
            info={"description": _(
                "The REST API of Yiti OA. Lists answer {\"items\", \"total\", \"page\", \"per_page\"}; "
                "errors answer {\"error\": {\"code\", \"message\", \"fields\"}}. Updates must say which version "
                "they were based on (If-Match header or version field); a stale one is a 409.")},
            servers=[{"url": f"{script_root}/api/v1"}],
            security=[{"bearerAuth": []}, {"cookieAuth": []}],
        )
        self.converter = self.marshmallow.converter
        self.converter.add_attribute_function(_decimal_text)

    # Components -----------------------------------------------------------------------------

    def property_of(self, field: marshmallow.fields.Field) -> dict:
        prop = _bounds_as_numbers(_numbers_as_json(dict(self.converter.field2property(field))))
        for key in _DIRECTIONAL:
            prop.pop(key, None)
        return prop

    def read_schema(self, name: str, schema: type[marshmallow.Schema]) -> dict:
        """What a client reads: every field but ``load_only`` ones, none required (field rules may hide any)."""
        instance = schema()
        properties = {}
        for field_name, field in instance.fields.items():
            if field.load_only:
                continue
            prop = self.property_of(field)
            prop.pop("default", None)
            if field_name != "id":
                prop["nullable"] = True  # a record may hold no value in any field but its id
            properties[field.data_key or field_name] = prop
        self.spec.components.schema(name, component={"type": "object", "properties": properties})
        return {"$ref": f"#/components/schemas/{name}"}

    def write_schema(self, name: str, schema: type[marshmallow.Schema], *, partial: bool,
                     version: bool = False, skip: tuple[str, ...] = (), example: dict | None = None) -> dict:
        """What a client may send: no ``dump_only`` field and none in ``skip``; ``partial``: nothing required."""
        instance = schema()
        properties, required = {}, []
        for field_name, field in instance.fields.items():
            if field.dump_only or field_name in skip:
                continue
            key = field.data_key or field_name
            properties[key] = self.property_of(field)
            if field.required and not partial:
                required.append(key)
        if version:
            properties["version"] = {"type": "integer", "description": _(
                "The version you read; or send it in the If-Match header.")}
        component = {"type": "object", "properties": properties}
        if required:
            component["required"] = required
        if _refuses_unknown(instance):
            component["additionalProperties"] = False
        if example:
            component["example"] = example
        self.spec.components.schema(name, component=component)
        return {"$ref": f"#/components/schemas/{name}"}

    def list_of(self, name: str, item: dict) -> dict:
        self.spec.components.schema(name, component={
            "type": "object",
            "required": ["items", "total", "page", "per_page"],
            "properties": {
                "items": {"type": "array", "items": item},
                "total": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            },
        })
        return {"$ref": f"#/components/schemas/{name}"}

    def common_components(self) -> None:
        components = self.spec.components
        components.security_scheme("bearerAuth", {
            "type": "http", "scheme": "bearer",
            "description": _("A personal or integration API token: Authorization: Bearer <token>."),
        })
        components.security_scheme("cookieAuth", {
            "type": "apiKey", "in": "cookie", "name": current_app.config["SESSION_COOKIE_NAME"],
            "description": _("The browser session after logging in. Requests that change data must also send "
                             "the page's CSRF token in the X-CSRFToken header."),
        })
        components.schema("Error", component={
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "example": "validation_error"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "description": _("Messages per field name (a list of messages, or nested for nested fields)."),
                        "additionalProperties": True,
                    },
                },
                "additionalProperties": True,
            }},
        })
        for status, (name, description) in ERRORS.items():
            components.response(name, {
                "description": str(description),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
        components.parameter("page", "query", {
            "schema": {"type": "integer", "minimum": 1, "default": 1}, "description": _("Page number, from 1.")})
        components.parameter("per_page", "query", {
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "description": _("Rows per page (at most %(max)s).", max=MAX_PER_PAGE)})
        components.parameter("If-Match", "header", {
            "schema": {"type": "string", "pattern": "^(W/)?\"?[0-9]+\"?$"},
            "description": _("The version you read (the ETag of GET), e.g. \"3\"."),
        })

    # Operations -----------------------------------------------------------------------------

    @staticmethod
    def responses(ok: str, body: dict | None, *errors: str, media: str = "application/json",
                  description: str = "") -> dict:
        answer: dict = {"description": description or _("Success.")}
        if body is not None:
            answer["content"] = {media: {"schema": body}}
        out = {ok: answer}
        for status in ("401", *errors):
            out[status] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
        return out

    @staticmethod
    def json_body(schema: dict) -> dict:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def core_paths(self) -> None:
        user, department = self.read_schema("User", UserOut), self.read_schema("Department", DepartmentOut)
        role = self.read_schema("Role", RoleOut)
        user_in = self.write_schema("UserCreate", UserIn, partial=False, skip=("version",), example={
            "username": "wangfang", "display_name": "王芳", "email": "wangfang@example.com",
            "department_id": 1, "roles": ["employee"], "password": "Change-Me-2026"})
        user_patch = self.write_schema("UserUpdate", UserIn, partial=True)
        department_in = self.write_schema("DepartmentCreate", DepartmentIn, partial=False, skip=("version",),
                                          example={"name": "华北区", "code": "sales-north", "parent_id": 1})
        department_patch = self.write_schema("DepartmentUpdate", DepartmentIn, partial=True)
        tag = ["core"]
        user_id = _path_id("user_id")
        department_id = _path_id("department_id")
        page = ["page", "per_page"]
        if_match = "If-Match"

        self.spec.path("/core/users", operations={
            "get": {"tags": tag, "operationId": "core_user_list", "summary": _("List users"),
                    "parameters": page + [
                        _query("q", {"type": "string"}, _("Words in the username or display name.")),
                        _query("department_id", {"type": "integer"}, _("Only users of this department.")),
                        _query("active", {"type": "string", "enum": ["true", "false"]}, _("Only active or inactive users."))],
                    "responses": self.responses("200", self.list_of("UserList", user), "422")},
            "post": {"tags": tag, "operationId": "core_user_create", "summary": _("Create a user (administrators)"),
                     "requestBody": self.json_body(user_in),
                     "responses": self.responses("201", user, "400", "403", "409", "422")},
        })
        self.spec.path("/core/users/{user_id}", operations={
            "get": {"tags": tag, "operationId": "core_user_get", "summary": _("Read a user"), "parameters": [user_id],
                    "responses": self.responses("200", user, "404")},
            "patch": {"tags": tag, "operationId": "core_user_update", "summary": _("Change a user (administrators)"),
                      "parameters": [user_id, if_match], "requestBody": self.json_body(user_patch),
                      "responses": self.responses("200", user, "400", "403", "404", "409", "422")},
        })
        self.spec.path("/core/departments", operations={
            "get": {"tags": tag, "operationId": "core_department_list", "summary": _("List departments"),
                    "parameters": page + [_query("parent_id", {"type": "integer"}, _("Only the children of this department."))],
                    "responses": self.responses("200", self.list_of("DepartmentList", department), "422")},
            "post": {"tags": tag, "operationId": "core_department_create",
                     "summary": _("Create a department (administrators)"), "requestBody": self.json_body(department_in),
                     "responses": self.responses("201", department, "400", "403", "409", "422")},
        })
        self.spec.path("/core/departments/{department_id}", operations={
            "get": {"tags": tag, "operationId": "core_department_get", "summary": _("Read a department"),
                    "parameters": [department_id], "responses": self.responses("200", department, "404")},
            "patch": {"tags": tag, "operationId": "core_department_update",
                      "summary": _("Change or move a department (administrators)"),
                      "parameters": [department_id, if_match], "requestBody": self.json_body(department_patch),
                      "responses": self.responses("200", department, "400", "403", "404", "409", "422")},
            "delete": {"tags": tag, "operationId": "core_department_delete",
                       "summary": _("Delete an empty department (administrators)"), "parameters": [department_id],
                       "responses": self.responses("204", None, "400", "403", "404", "409", "422",
                                                   description=_("Deleted."))},
        })
        self.spec.path("/core/roles", operations={
            "get": {"tags": tag, "operationId": "core_role_list", "summary": _("List roles"), "parameters": page,
                    "responses": self.responses("200", self.list_of("RoleList", role), "422")},
        })
        self.spec.tag({"name": "core", "description": _("Users, departments and roles.")})

    def token_paths(self) -> None:
        """``/auth/tokens``: exchange a password for a personal API token; list and revoke one's tokens."""
        token = self.read_schema("ApiToken", tokens.TokenOut)
        self.spec.components.schema("NewApiToken", component={"allOf": [token, {
            "type": "object", "required": ["token"],
            "properties": {"token": {"type": "string", "description": _("The secret, shown this once only.")}},
        }]})
        request_in = self.write_schema("ApiTokenRequest", tokens.TokenRequestIn, partial=False, example={
            "username": "sales1", "password": "…", "name": "ERP sync", "scope": "read", "expires_in_days": 90})
        tag = ["auth"]
        self.spec.path("/auth/tokens", operations={
            "get": {"tags": tag, "operationId": "auth_token_list", "summary": _("List my API tokens"),
                    "parameters": ["page", "per_page"],
                    "responses": self.responses("200", self.list_of("ApiTokenList", token), "422")},
            "post": {"tags": tag, "operationId": "auth_token_create",
                     "summary": _("Get a new API token with a username and password"), "security": [],
                     "requestBody": self.json_body(request_in),
                     "responses": {**self.responses("201", {"$ref": "#/components/schemas/NewApiToken"}, "400", "422"),
                                   "429": {"description": _("Too many failed attempts; try again later."),
                                           "content": {"application/json": {
                                               "schema": {"$ref": "#/components/schemas/Error"}}}}}},
        })
        self.spec.path("/auth/tokens/{token_id}", operations={
            "delete": {"tags": tag, "operationId": "auth_token_revoke", "summary": _("Revoke an API token"),
                       "parameters": [_path_id("token_id")],
                       "responses": self.responses("204", None, "400", "403", "404", description=_("Revoked."))},
        })
        self.spec.tag({"name": "auth", "description": _("Personal API tokens.")})

    def search_paths(self) -> None:
        """``/search``: the header's global search over every resource the caller may read."""
        text = {"type": "string"}
        hit = {"type": "object", "required": ["resource", "label", "id", "title", "url"], "properties": {
            "resource": text, "label": text, "id": {"type": "integer"}, "title": text, "url": text}}
        group = {"type": "object", "required": ["plugin", "label", "items", "more"], "properties": {
            "plugin": text, "label": text, "items": {"type": "array", "items": hit},
            "more": {"type": "object", "description": _("Resources with more hits: their filtered list."),
                     "additionalProperties": {"type": "object", "properties": {"label": text, "url": text}}}}}
        answer = {"type": "object", "required": ["q", "groups"], "properties": {
            "q": text, "groups": {"type": "array", "items": group}}}
        self.spec.path("/search", operations={
            "get": {"tags": ["core"], "operationId": "core_search",
                    "summary": _("Search every record you may read, grouped by module"),
                    "parameters": [
                        {**_query("q", {"type": "string", "minLength": 1, "maxLength": 100},
                                  _("Words to find; masked and hidden fields are never searched.")), "required": True},
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                               _("Hits per resource."))],
                    "responses": self.responses("200", answer, "422")},
        })

    def import_paths(self) -> None:
        """``/imports/{import_id}``: how far an import is (large files are checked and applied by the worker)."""
        count = {"type": "integer"}
        when = {"type": "string", "format": "date-time", "nullable": True}
        status = {"type": "object", "properties": {
            "id": count, "resource": {"type": "string"}, "filename": {"type": "string"},
            "status": {"type": "string", "enum": ["checking", "previewed", "applying", "done", "undone", "failed"]},
            "background": {"type": "boolean"}, "total_rows": count, "done_rows": count, "percent": count,
            "to_insert": count, "to_update": count, "inserted": count, "updated": count, "rejected": count,
            "error": {"type": "string", "nullable": True}, "created_at": {"type": "string", "format": "date-time"},
            "progress_at": when, "finished_at": when}}
        self.spec.path("/imports/{import_id}", operations={
            "get": {"tags": ["core"], "operationId": "core_import_get",
                    "summary": _("Read an import's status and progress"), "parameters": [_path_id("import_id")],
                    "responses": self.responses("200", status, "404")},
        })

    def resource_paths(self, resource) -> None:
        """The generic operations of one ``Resource`` (see ``core/api/resources.py``)."""
        base = _camel(resource.plugin) + _camel(resource.name)
        item = self.read_schema(base, resource.schema)
        create = self.write_schema(f"{base}Create", resource.schema, partial=False, skip=SYSTEM_FIELDS,
                                   example=_example(resource))
        patch = self.write_schema(f"{base}Update", resource.schema, partial=True, version=True, skip=SYSTEM_FIELDS)
        listing = self.list_of(f"{base}List", item)
        tag = [resource.key]
        op = f"{resource.plugin}_{resource.name}"
        path = f"/{resource.plugin}/{resource.plural}"
        record_id = _path_id("record_id")
        if_match = "If-Match"
        filters = self.filter_parameters(resource)
        allowed = ", ".join(sorted(set(resource.sort_fields or resource.list_columns) | {"id", "created_at", "updated_at"}))
        search = [
            _query("q", {"type": "string"}, _("Words that must all appear in: %(fields)s.",
                                               fields=", ".join(resource.search_fields) or "-")),
            _query("sort", {"type": "string", "example": resource.default_sort},
                   _("Comma-separated fields, '-' first for descending; one of: %(fields)s.", fields=allowed)),
        ]
        page = ["page", "per_page"]
        label = str(resource.label_plural)
        self.spec.path(path, operations={
            "get": {"tags": tag, "operationId": f"{op}_list", "summary": _("List %(what)s", what=label),
                    "parameters": page + search + filters,
                    "responses": self.responses("200", listing, "403", "422")},
            "post": {"tags": tag, "operationId": f"{op}_create", "summary": _("Create (%(what)s)", what=label),
                     "requestBody": self.json_body(create),
                     "responses": self.responses("201", item, "400", "403", "409", "422")},
        })
        self.spec.path(f"{path}/{{record_id}}", operations={
            "get": {"tags": tag, "operationId": f"{op}_get", "summary": _("Read one (%(what)s)", what=label),
                    "parameters": [record_id], "responses": {
                        **self.responses("200", item, "403", "404"),
                        "200": {"description": _("Success."), "content": {"application/json": {"schema": item}},
                                "headers": {"ETag": {"schema": {"type": "string"},
                                                     "description": _("The record's version, for If-Match.")}}}}},
            "patch": {"tags": tag, "operationId": f"{op}_update", "summary": _("Change (%(what)s)", what=label),
                      "description": _("Send only the fields to change, and the version you read (If-Match header "
                                       "or version field)."),
                      "parameters": [record_id, if_match], "requestBody": self.json_body(patch),
                      "responses": self.responses("200", item, "400", "403", "404", "409", "422")},
            "delete": {"tags": tag, "operationId": f"{op}_delete", "summary": _("Delete (%(what)s)", what=label),
                       "parameters": [record_id, if_match],
                       "responses": self.responses("204", None, "400", "403", "404", "409", "422",
                                                   description=_("Deleted."))},
        })
        self.spec.path(f"{path}/{{record_id}}/history", operations={
            "get": {"tags": tag, "operationId": f"{op}_history", "summary": _("History (%(what)s)", what=label),
                    "parameters": [record_id],
                    "responses": self.responses("200", {"$ref": "#/components/schemas/History"}, "403", "404")},
        })
        self.spec.path(f"{path}/export.csv", operations={
            "get": {"tags": tag, "operationId": f"{op}_export", "summary": _("Export as CSV (%(what)s)", what=label),
                    "parameters": search + filters,
                    "responses": self.responses("200", {"type": "string"}, "403", "422", media="text/csv",
                                                description=_("The filtered list as UTF-8 CSV."))},
        })
        self.spec.path(f"{path}/export.xlsx", operations={
            "get": {"tags": tag, "operationId": f"{op}_export_xlsx", "summary": _("Export as XLSX (%(what)s)", what=label),
                    "parameters": search + filters,
                    "responses": self.responses(
                        "200", {"type": "string", "format": "binary"}, "403", "422",
                        media="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        description=_("The filtered list as an Excel workbook."))},
        })
        self.spec.tag({"name": resource.key, "description": label})

    def filter_parameters(self, resource) -> list[dict]:
        """``field``, ``field__in``, comparisons and (for text) ``field__contains`` for each declared filter."""
        declared = resource.schema._declared_fields
        parameters = []
        for name in resource.filters:
            field = declared[name]
            prop = self.property_of(field)
            for key in ("default", "nullable", "example"):
                prop.pop(key, None)
            parameters.append(_query(name, prop, _("Equal to (empty: no value).")))
            parameters.append(_query(f"{name}__in", {"type": "string"}, _("One of these comma-separated values.")))
            for op in COMPARISONS:
                parameters.append(_query(f"{name}__{op}", prop, {"gte": "≥", "lte": "≤", "gt": ">", "lt": "<"}[op]))
            if column_kind(resource, name) == "text":
                parameters.append(_query(f"{name}__contains", {"type": "string"}, _("Contains this text.")))
        return parameters

    def history_component(self) -> None:
        self.spec.components.schema("History", component={
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "at", "actor", "action", "changes"],
                "properties": {
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "actor": {"type": "string"},
                    "action": {"type": "string", "example": "update"},
                    "changes": {"type": "object", "additionalProperties": True,
                                "description": _("Each changed field as [old, new].")},
                },
            }}},
        })


def _build(script_root: str) -> dict:
    builder = _Builder(script_root)
    builder.common_components()
    builder.history_component()
    builder.core_paths()
    builder.token_paths()
    builder.import_paths()
    builder.search_paths()
    from core.api import discussion

    discussion.openapi_components(builder)
    from core.notify import openapi as notify_openapi

    notify_openapi.openapi_paths(builder)
    for resource in resources().values():
        builder.resource_paths(resource)
        discussion.openapi_paths(builder, resource)
    return builder.spec.to_dict()


def _refuses_unknown(schema: marshmallow.Schema) -> bool:
    return schema.unknown == marshmallow.RAISE


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _example(resource) -> dict | None:
    try:
        return resource.sample(0) or None
    except Exception:  # an example is documentation: a broken one must not break the document
        return None


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": INT32}, "example": 1}


def _query(name: str, schema: dict, description: str = "") -> dict:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


# Views ------------------------------------------------------------------------------------------


@bp.get("/openapi.json")
@login_required
def openapi_document():
    """The OpenAPI 3 document, to logged-in users and token holders like the rest of the API."""
    return jsonify(document())


def api_docs():
    """The browsable API reference (Swagger UI, vendored), reading ``/api/v1/openapi.json``."""
    if not current_user.is_authenticated:
        # Under /api/ the login manager answers JSON; a page should send the person to log in.
        return redirect(url_for("auth.login", next=request.path))
    return render_template("api_docs.html", spec_url=url_for("api.openapi_document"))


@bp.record_once
def _register_docs_page(state) -> None:
    """``/api/docs`` sits beside ``/api/v1``, so it is added to the app rather than the blueprint."""
    state.app.add_url_rule("/api/docs", endpoint="api_docs", view_func=api_docs)
