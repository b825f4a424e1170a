"""Schemathesis fuzzes every operation of ``/api/v1/openapi.json`` on the demo company (with the notes plugin).

It sends what the document allows (positive) and what it forbids (negative), as the administrator
with a read-write API token (the ``bearerAuth`` scheme; a token request needs no CSRF header and
ignores the random session cookies the fuzzer also sends), and requires that no answer is a 5xx
and every answer — status, content type and body — is one the document declares. Examples are
bounded (``YITI_FUZZ_EXAMPLES`` per operation and mode, 20 by default) and derandomized, so a run
is repeatable and stays well under a minute per engine; raise the number locally to dig deeper.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from core.auth import tokens
from core.extensions import db
from core.org import services

from tests.conftest import PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")
EXAMPLES = int(os.environ.get("YITI_FUZZ_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def company(make_app):
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def _run(operation, mode, app, headers, keep) -> str | None:
    """Fuzz one operation in one mode; the first failure as text, or ``None``."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode).filter(keep))
    def fuzz(case):
        case.call_and_validate(app=app, headers=headers, checks=CHECKS)

    try:
        fuzz()
    except (Exception, BaseExceptionGroup) as exc:  # failed checks, or an exception the app raised
        return f"{operation.label} [{mode.value}]: {exc.__class__.__name__}: {str(exc)[:3000]}"
    return None


def test_fuzzed_api_requests_get_no_server_error_and_only_documented_answers(company):
    with company.app_context():
        admin = services.find_user("admin")
        token, secret = tokens.create_token(admin, "fuzz", "read-write", None)
        admin_id, token_id = admin.id, token.id
        db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    client = company.test_client()
    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    schema = schemathesis.openapi.from_dict(document)

    def keep(case) -> bool:
        # Deactivating the administrator or revoking the fuzzer's own token would turn the rest of
        # the run into a wall of 401s; every other user, token and record is fair game.
        own = {"/core/users/{user_id}": admin_id, "/auth/tokens/{token_id}": token_id}.get(case.operation.path)
        return own is None or next(iter(case.path_parameters.values()), None) != own

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the core's 13 and the notes resource's 7
    failures = [failure for operation in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if (failure := _run(operation, mode, company, headers, keep))]
    assert not failures, "\n\n".join(failures)

    # Still authenticated at the end: the run exercised the API rather than a wall of 401s.
    assert client.get("/api/v1/core/users", headers=headers).status_code == 200


# What the fuzzer found, pinned as plain tests (each was a 500 before) --------------------------


def _admin(app) -> Client:
    client = Client(app)
    assert client.login("admin").status_code == 302
    return client


def test_departments_without_a_code_do_not_clash(company):
    admin = _admin(company)
    for name in ("华北区", "西北区"):
        response = admin.api("post", "/api/v1/core/departments", json={"name": name, "code": ""})
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["code"] is None


@pytest.mark.parametrize("path", ["/api/v1/notes/notes/2147483648", "/api/v1/notes/notes/18446744073709551616",
                                  "/api/v1/notes/notes/18446744073709551616/history"])
def test_record_ids_no_column_can_hold_are_not_found(company, path):
    admin = _admin(company)
    assert admin.api("get", path).status_code == 404
    if not path.endswith("/history"):
        assert admin.api("patch", path, json={"title": "x"}, headers={"If-Match": "1"}).status_code == 404
        assert admin.api("delete", path).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"title": "周报", "owner_id": 987654}, "owner_id"),  # no such user
    ({"title": "周报", "owner_id": 2**40}, "owner_id"),  # no INTEGER column holds it
    ({"title": "周\x00报"}, "title"),  # PostgreSQL stores no NUL characters
])
def test_note_values_the_database_would_refuse_are_field_errors(company, body, field):
    response = _admin(company).api("post", "/api/v1/notes/notes", json=body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


@pytest.mark.parametrize("query, status", [
    ("updated_at__gt=", 200),  # an empty bound is no bound
    ("updated_at__gte=2020-01-01T00:00:00", 200),  # no time zone: the user's
    ("q=%E5%91%A8%00", 200),  # NUL in a search is dropped
    ("owner_id__contains=1", 422),  # contains is for text
    ("owner_id=99999999999", 422),
    ("title=%00", 422),
    ("page=1000000000000", 200),  # past the end: empty, not an OFFSET overflow
])
def test_list_filters_answer_bad_values_with_field_errors(company, query, status):
    admin = _admin(company)
    for url in (f"/api/v1/notes/notes?{query}", f"/api/v1/notes/notes/export.csv?{query}"):
        response = admin.api("get", url)
        assert response.status_code == status, (url, response.get_data(as_text=True)[:300])
