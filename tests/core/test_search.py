"""Global search: every readable resource, scoped in SQL, masked and hidden fields never matched."""
from __future__ import annotations

from core import resources as records

from tests.conftest import Client
from tests.core.conftest import login
from tests.core.test_record_permissions import only_role, seed



def contacts(app):
    with app.app_context():
        return records.get_resource("crm.contact")


def hits(client, text: str) -> dict[str, set[int]]:
    response = client.api("get", f"/api/v1/search?q={text}&limit=20")
    assert response.status_code == 200, response.get_json()
    found: dict[str, set[int]] = {}
    for group in response.get_json()["groups"]:
        for item in group["items"]:
            found.setdefault(item["resource"], set()).add(item["id"])
    return found


def test_search_reaches_only_records_in_scope(company):
    resource = contacts(company)
    ids = seed(company, resource)
    only_role(company, resource, "department_tree")
    # Every sample contact is called 王经理<n>: one word matches all three.
    assert hits(login(company, "sales1"), "王经理").get("crm.contact") == {ids["sales1"]}
    assert hits(login(company, "salesmgr"), "王经理").get("crm.contact") == set(ids.values())


def test_search_groups_hits_by_module_with_links_to_the_records(company):
    resource = contacts(company)
    ids = seed(company, resource)
    only_role(company, resource, "all")
    body = login(company, "sales1").api("get", "/api/v1/search?q=王经理1").get_json()
    [group] = body["groups"]
    assert group["plugin"] == "crm" and group["label"]
    [item] = group["items"]
    assert item == {"resource": "crm.contact", "label": item["label"], "id": ids["sales2"],
                    "title": "王经理1", "url": f"/crm/contacts/{ids['sales2']}"}


def test_masked_field_is_never_matched_and_hidden_title_stays_hidden(company):
    resource = contacts(company)
    ids = seed(company, resource)
    only_role(company, resource, "all", field_rules={"mobile": "masked"})
    manager = login(company, "salesmgr")
    assert hits(manager, "13800130001") == {}  # sales2's mobile: a masked field answers nothing
    assert hits(manager, "wang1@example.com") == {"crm.contact": {ids["sales2"]}}
    only_role(company, resource, "all", field_rules={"name": "hidden"})
    assert hits(manager, "王经理") == {}
    body = manager.api("get", "/api/v1/search?q=wang1@example.com").get_json()
    assert body["groups"][0]["items"][0]["title"] == f"#{ids['sales2']}"


def test_no_read_permission_finds_nothing(company):
    resource = contacts(company)
    seed(company, resource)
    only_role(company, resource, None)
    assert hits(login(company, "sales1"), "王经理") == {}


def test_bad_search_input_is_a_field_error(company):
    client = login(company, "sales1")
    for query, name in (("", "q"), ("?q=%20", "q"), ("?q=x&limit=0", "limit"), ("?q=x&limit=abc", "limit")):
        response = client.api("get", f"/api/v1/search{query}")
        assert response.status_code == 422
        assert name in response.get_json()["error"]["fields"]
    assert Client(company).api("get", "/api/v1/search?q=x").status_code == 401


def test_header_suggestions_and_results_page(company):
    resource = contacts(company)
    ids = seed(company, resource)
    only_role(company, resource, "all")
    client = login(company, "sales1")
    page = client.get("/").get_data(as_text=True)
    assert 'data-global-search' in page and "/search/suggest" in page
    suggest = client.get("/search/suggest?q=王经理2").get_data(as_text=True)
    assert f"/crm/contacts/{ids['salesmgr']}" in suggest and "/search?q=" in suggest
    assert "王经理1" not in suggest
    results = client.get("/search?q=<script>").get_data(as_text=True)
    assert "<script>\"" not in results and "&lt;script&gt;" in results
    assert client.get("/search?q=王经理").status_code == 200
