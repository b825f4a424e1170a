"""The REST API ``/api/v1/approval`` and the pages: validation (4xx, never 500), permissions, inbox."""
from __future__ import annotations

import pytest

from core.extensions import db
from core.org.services import find_user


def start_expense(client, amount="8000"):
    response = client.api("POST", "/api/v1/approval/requests",
                          json={"flow_key": "expense", "form": {"amount": amount, "reason": "客户拜访"}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def pending_task(client):
    items = client.api("GET", "/api/v1/inbox?kind=approval").get_json()["items"]
    return items


def test_expense_over_5000_goes_manager_then_finance_then_gm(as_user):
    sales1 = as_user("sales1")
    req = start_expense(sales1)
    assert (req["status"], req["flow_key"], req["timeline"][0]["action"]) == ("running", "expense", "submit")
    for name in ("salesmgr", "finance1", "gm"):
        client = as_user(name)
        items = pending_task(client)
        assert [(i["subject_type"], i["subject_id"]) for i in items] == [("approval.request", req["id"])]
        task = next(t for t in client.api("GET", f"/api/v1/approval/requests/{req['id']}").get_json()["tasks"]
                    if t["status"] == "pending")
        response = client.api("POST", f"/api/v1/approval/tasks/{task['id']}/approve", json={"comment": "同意"})
        assert response.status_code == 200, response.get_json()
    final = sales1.api("GET", f"/api/v1/approval/requests/{req['id']}").get_json()
    assert final["status"] == "approved"
    assert [t["status"] for t in final["tasks"]] == ["approved"] * 3
    outcome = sales1.api("GET", "/api/v1/inbox?kind=reminder").get_json()["items"]
    assert [i["subject_id"] for i in outcome] == [req["id"]]


def test_flows_list_and_save_with_rule_errors(as_user):
    flows = as_user("sales1").api("GET", "/api/v1/approval/flows").get_json()["items"]
    assert {"expense", "travel", "seal", "purchase"} <= {f["key"] for f in flows}
    assert all(f["status"] == "published" and f["version"] >= 1 for f in flows)
    assert as_user("sales1").api("POST", "/api/v1/approval/flows", json={"key": "x", "name": "x", "nodes": []}).status_code == 403
    admin = as_user("admin")
    bad = admin.api("POST", "/api/v1/approval/flows", json={"key": "x", "name": "X", "nodes": [
        {"key": "c", "type": "condition", "branches": [{"priority": 1, "rule": {"any": [{"field": "amount", "op": "??", "value": 1}]}, "nodes": []}]}]})
    assert bad.status_code == 422
    assert "nodes[0].branches[0].rule.any[0].op" in bad.get_json()["error"]["fields"]
    good = admin.api("POST", "/api/v1/approval/flows", json={
        "key": "leave_note", "name": "Leave note", "publish": True,
        "form": [{"key": "days", "label": "Days", "type": "number", "required": True}],
        "nodes": [{"key": "m", "type": "approval", "approvers": {"source": "manager", "level": 1}}]})
    assert good.status_code == 201 and good.get_json()["status"] == "published"


@pytest.mark.parametrize("body, field", [
    ({"flow_key": "expense", "form": {"reason": "x"}}, "amount"),
    ({"flow_key": "expense", "form": {"amount": "abc", "reason": "x"}}, "amount"),
    ({"flow_key": "expense", "form": {"amount": "1", "reason": "x", "hack": 1}}, "hack"),
    ({"flow_key": "expense", "form": "nope"}, "form"),
    ({"form": {}}, "flow_key"),
    ({"flow_key": "expense", "form": {"amount": "1e400", "reason": "x"}}, "amount"),
])
def test_bad_request_bodies_are_422_with_field_messages(as_user, body, field):
    response = as_user("sales1").api("POST", "/api/v1/approval/requests", json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]


def test_unknown_flows_tasks_and_actions_are_404(as_user):
    client = as_user("sales1")
    assert client.api("POST", "/api/v1/approval/requests", json={"flow_key": "nope", "form": {}}).status_code == 404
    assert client.api("POST", "/api/v1/approval/tasks/999999/approve", json={}).status_code == 404
    assert client.api("POST", "/api/v1/approval/tasks/99999999999/approve", json={}).status_code == 404
    assert client.api("GET", "/api/v1/approval/requests/424242").status_code == 404
    req = start_expense(client)
    assert client.api("POST", f"/api/v1/approval/requests/{req['id']}/explode", json={}).status_code == 404


def test_others_cannot_read_or_act_on_a_request(as_user):
    req = start_expense(as_user("sales1"))
    sales2 = as_user("sales2")
    assert sales2.api("GET", f"/api/v1/approval/requests/{req['id']}").status_code == 404
    task = req["tasks"][-1]
    assert sales2.api("POST", f"/api/v1/approval/tasks/{task['id']}/approve", json={}).status_code == 404
    assert as_user("sales1").api("POST", f"/api/v1/approval/tasks/{task['id']}/approve", json={}).status_code == 403
    # the gm reads every request (approval.request.read: all); the manager reads his department's
    assert as_user("gm").api("GET", f"/api/v1/approval/requests/{req['id']}").status_code == 200


def test_transfer_add_approver_and_return_through_the_api(as_user, app):
    req = start_expense(as_user("sales1"), "100")
    mgr = as_user("salesmgr")
    task = req["tasks"][-1]["id"]
    with app.app_context():
        hr1, legal1 = find_user("hr1").id, find_user("legal1").id
    assert mgr.api("POST", f"/api/v1/approval/tasks/{task}/transfer", json={"user_id": "x"}).status_code == 422
    moved = mgr.api("POST", f"/api/v1/approval/tasks/{task}/transfer", json={"user_id": hr1, "comment": "你来"})
    assert moved.status_code == 200
    new_task = moved.get_json()["task"]["id"]
    hr = as_user("hr1")
    added = hr.api("POST", f"/api/v1/approval/tasks/{new_task}/add-approver", json={"user_id": legal1, "position": "before"})
    assert added.status_code == 200
    legal_task = added.get_json()["task"]["id"]
    back = as_user("legal1").api("POST", f"/api/v1/approval/tasks/{legal_task}/return", json={"comment": "补充发票"})
    assert back.status_code == 200 and back.get_json()["request"]["status"] == "returned"
    again = as_user("sales1").api("POST", f"/api/v1/approval/requests/{req['id']}/resubmit",
                                  json={"form": {"amount": "120", "reason": "补充"}})
    assert again.status_code == 200 and again.get_json()["status"] == "running"
    assert again.get_json()["form"]["amount"] == "120.00"


def test_withdraw_through_the_api(as_user):
    client = as_user("sales1")
    req = start_expense(client)
    response = client.api("POST", f"/api/v1/approval/requests/{req['id']}/withdraw", json={"comment": "写错了"})
    assert response.status_code == 200 and response.get_json()["status"] == "withdrawn"
    assert pending_task(as_user("salesmgr")) == []


def test_delegation_through_the_api_is_validated(as_user):
    client = as_user("salesmgr")
    bad = client.api("POST", "/api/v1/approval/delegations",
                     json={"delegate_id": 1, "starts_at": "2026-01-02T00:00:00", "ends_at": "2026-01-01T00:00:00+08:00"})
    assert bad.status_code == 422 and "starts_at" in bad.get_json()["error"]["fields"]


def test_pages_start_an_expense_and_approve_it(as_user, app):
    sales1 = as_user("sales1")
    assert "费用报销" in sales1.get("/approval/start").get_data(as_text=True)
    page = sales1.get("/approval/start/expense")
    assert page.status_code == 200 and 'name="amount"' in page.get_data(as_text=True)
    invalid = sales1.post("/approval/start/expense", {"amount": "lots"})
    assert invalid.status_code == 422
    done = sales1.post("/approval/start/expense", {"amount": "300", "reason": "打车"})
    assert done.status_code == 302
    detail_url = done.headers["Location"]
    request_id = int(detail_url.rstrip("/").rsplit("/", 1)[1])
    assert "费用报销" in sales1.get("/approval/mine").get_data(as_text=True)
    mgr = as_user("salesmgr")
    page = mgr.get(detail_url).get_data(as_text=True)
    task_id = int(page.split('name="task_id" value="')[1].split('"')[0])
    assert mgr.post(f"/approval/requests/{request_id}/act", {"action": "approve", "task_id": str(task_id),
                                                             "comment": "ok"}).status_code == 302
    final = sales1.api("GET", f"/api/v1/approval/requests/{request_id}").get_json()
    assert final["status"] == "approved"
    assert as_user("sales2").get(detail_url).status_code == 404


def test_flow_admin_page_imports_json_and_reports_errors(as_user):
    admin = as_user("admin")
    assert admin.get("/approval/flows").status_code == 200
    assert as_user("sales1").get("/approval/flows").status_code == 403
    bad = admin.post("/approval/flows", {"definition": "{not json"})
    assert bad.status_code == 422
    bad_rule = admin.post("/approval/flows", {"definition": '{"key": "k", "name": "K", "nodes": [{"key": "c", "type": "condition", '
                                                           '"branches": [{"rule": {"all": [{"field": "a", "op": "?", "value": 1}]}, "nodes": []}]}]}'})
    assert bad_rule.status_code == 422 and "nodes[0].branches[0].rule.all[0].op" in bad_rule.get_data(as_text=True)


def test_inbox_api_gives_the_task_id_of_an_approval_item_so_a_client_can_act_on_it(as_user):
    req = start_expense(as_user("sales1"), amount="100")
    manager = as_user("salesmgr")
    items = pending_task(manager)
    assert len(items) == 1 and set(items[0]["extra"]) == {"task_id"}
    task_id = items[0]["task_id"]
    assert items[0]["extra"]["task_id"] == task_id and items[0]["subject_type"] == "approval.request"
    assert items[0]["kind"] == "approval" and items[0]["subject_id"] == req["id"]
    response = manager.api("POST", f"/api/v1/approval/tasks/{task_id}/approve", json={})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["request"]["id"] == req["id"]
    assert response.get_json()["request"]["status"] == "approved"
    done = manager.api("GET", "/api/v1/inbox?status=done").get_json()["items"]
    assert [i["task_id"] for i in done] == [task_id]
