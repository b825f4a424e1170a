"""The OpenAPI 3 document at ``/api/v1/openapi.json`` and the API reference page at ``/api/docs``."""
from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from core.extensions import db
from core.registry import resources

from tests.conftest import PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")
#: Routes whose owners have not described them in ``core/api/openapi.py`` yet (work in progress).
NOT_YET_DOCUMENTED = {"/inbox", "/inbox/{todo_id}/done"}


@pytest.fixture
def company(make_app):
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def login(app, name="admin") -> Client:
    client = Client(app)
    assert client.login(name).status_code == 302
    return client


@pytest.fixture
def document(company):
    response = login(company, "sales1").get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_document_is_valid_openapi_3_with_the_core_and_every_resource(company, document):
    validate(document)  # raises on anything that is not a valid OpenAPI 3 document
    assert document["info"]["title"] == "Yiti OA API"
    assert document["servers"] == [{"url": "/api/v1"}]
    paths = document["paths"]
    assert set(paths["/core/users"]) == {"get", "post"}
    assert set(paths["/core/departments/{department_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/auth/tokens"]) == {"get", "post"}
    with company.app_context():
        declared = list(resources().values())
    assert "notes.note" in {r.key for r in declared}
    for resource in declared:
        base = f"/{resource.plugin}/{resource.plural}"
        assert set(paths[base]) == {"get", "post"}
        assert set(paths[f"{base}/{{record_id}}"]) == {"get", "patch", "delete"}
        assert set(paths[f"{base}/{{record_id}}/history"]) == {"get"}
        assert set(paths[f"{base}/export.csv"]["get"]["responses"]["200"]["content"]) == {"text/csv"}


def test_every_core_api_route_is_in_the_document(company, document):
    """The core's ``api`` blueprint, generic resource routes included (a plugin's own blueprint is its own to describe)."""
    with company.app_context():
        declared = list(resources().values())
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    missing = []
    for rule in company.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint == "api.openapi_document":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        concrete = ([path.replace("{plugin}", r.plugin).replace("{plural}", r.plural) for r in declared]
                    if "{plugin}" in path else [path])
        for each in concrete:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                if (each, method) not in documented and each not in NOT_YET_DOCUMENTED:
                    missing.append(f"{method} {each}")
    assert missing == []


def test_notes_request_bodies_hold_only_writable_fields_and_refuse_unknown_ones(document):
    schemas = document["components"]["schemas"]
    create, update, shown = schemas["NotesNoteCreate"], schemas["NotesNoteUpdate"], schemas["NotesNote"]
    # id, department_id, created_at, updated_at and version are dump_only in NoteSchema.
    assert set(create["properties"]) == {"title", "body", "owner_id"}
    assert create["required"] == ["title"]
    assert create["additionalProperties"] is False
    assert create["example"] == {"title": "周例会纪要", "body": "本周重点：华东区回款。"}
    assert set(update["properties"]) == {"title", "body", "owner_id", "version"}
    assert "required" not in update and update["additionalProperties"] is False
    assert {"id", "department_id", "version", "updated_at"} <= set(shown["properties"])
    assert "required" not in shown  # field rules may hide any field from a reader
    assert schemas["UserCreate"]["properties"]["password"] == {"type": "string"}  # load_only: written, never shown
    assert "password" not in schemas["User"]["properties"]


def test_notes_list_documents_paging_search_sort_and_each_filter_with_its_operators(document):
    operation = document["paths"]["/notes/notes"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"] if "name" in p}
    refs = {p["$ref"] for p in operation["parameters"] if "$ref" in p}
    assert refs == {"#/components/parameters/page", "#/components/parameters/per_page"}
    assert {"q", "sort"} <= set(parameters)
    for name in ("title", "owner_id", "department_id", "updated_at"):
        assert {name, f"{name}__in", f"{name}__gte", f"{name}__lte", f"{name}__gt", f"{name}__lt"} <= set(parameters)
    assert parameters["owner_id__gte"]["schema"]["type"] == "integer"
    assert parameters["updated_at__lt"]["schema"] == {"type": "string", "format": "date-time"}
    assert "title__contains" in parameters and "owner_id__contains" not in parameters  # text only
    listing = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert document["components"]["schemas"][listing.rsplit("/", 1)[1]]["required"] == ["items", "total", "page", "per_page"]


def test_errors_share_the_envelope_and_writes_document_conflicts(document):
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert set(error["properties"]["error"]["properties"]) == {"code", "message", "fields"}
    update = document["paths"]["/notes/notes/{record_id}"]["patch"]
    assert {"400", "401", "403", "404", "409", "422"} <= set(update["responses"])
    assert {"$ref": "#/components/parameters/If-Match"} in update["parameters"]
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "cookieAuth"}
    bearer = document["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")


def test_documented_create_example_is_accepted_by_the_api(company, document):
    example = document["components"]["schemas"]["NotesNoteCreate"]["example"]
    response = login(company, "sales1").api("post", "/api/v1/notes/notes", json=example)
    assert response.status_code == 201, response.get_json()


def test_document_needs_a_login_or_a_token(company):
    anonymous = Client(company).get("/api/v1/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    with company.app_context():
        from core.auth import tokens
        from core.org import services

        _token, secret = tokens.create_token(services.find_user("sales1"), "docs", "read", None)
        db.session.commit()
    with_token = company.test_client().get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {secret}"})
    assert with_token.status_code == 200 and with_token.get_json()["openapi"].startswith("3.")


def test_document_speaks_the_users_language(company):
    client = login(company)
    client.post("/lang/en")
    english = client.get("/api/v1/openapi.json").get_json()
    client.post("/lang/zh_CN")
    chinese = client.get("/api/v1/openapi.json").get_json()
    assert english["components"]["responses"]["Forbidden"]["description"] == "You do not have permission to do this."
    assert chinese["components"]["responses"]["Forbidden"]["description"] == "你没有执行此操作的权限。"


def test_docs_page_sends_anonymous_visitors_to_log_in_and_shows_the_reference_without_inline_script(company):
    anonymous = Client(company).get("/api/docs")
    assert anonymous.status_code == 302 and "/login?next=/api/docs" in anonymous.headers["Location"]
    page = login(company, "sales1").get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    assert "vendor/swagger-ui-5.35.0/swagger-ui-bundle.js" in html and "js/api-docs.js" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script: the CSP forbids it
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
