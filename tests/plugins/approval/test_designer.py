"""The designer pages: design a form and flow as a draft, publish it, simulate it; and the
initiator's edit-and-resubmit page. Validation comes back as field errors with the bad part's path."""
from __future__ import annotations

import json
import re
from html import unescape

from sqlalchemy import func, select

from core.audit.models import AuditEntry
from core.extensions import db
from core.org.services import find_user
from plugins.approval.models import Event, Flow, Request

DEFINITION = {
    "key": "leave", "name": "请假申请", "description": "年假、事假",
    "form": [
        {"key": "kind", "label": "类型", "label_en": "Kind", "type": "select", "required": True, "options": ["年假", "事假"]},
        {"key": "days", "label": "天数", "type": "number", "required": True},
        {"key": "handover", "label": "交接人", "type": "user"},
        {"key": "items", "label": "明细", "type": "table", "columns": [{"key": "d", "label": "日期", "type": "date"}]},
    ],
    "nodes": [
        {"key": "manager", "type": "approval", "name": "直属上级", "approvers": {"source": "manager", "level": 1},
         "mode": "sequential", "empty": "skip", "dedupe": True, "reject": {"policy": "initiator"}, "cc": []},
        {"key": "long", "type": "condition", "name": "", "branches": [
            {"name": "超过 3 天", "priority": 1, "rule": {"all": [{"field": "days", "op": ">", "value": 3}]},
             "nodes": [{"key": "hr", "type": "approval", "name": "人事", "approvers": {"source": "role", "role": "hr"},
                        "mode": "any", "empty": "admin"}]},
            {"name": "其他", "default": True, "nodes": []}]},
    ],
    "settings": {"allow_withdraw": True},
}


def versions(app, key):
    with app.app_context():
        return [(f.version, f.status) for f in db.session.scalars(select(Flow).where(Flow.key == key).order_by(Flow.version))]


def test_only_flow_managers_open_the_designer(as_user):
    assert as_user("admin").get("/approval/designer/new").status_code == 200
    assert as_user("sales1").get("/approval/designer/new").status_code == 403
    assert as_user("sales1").post("/approval/designer/save", {"definition": json.dumps(DEFINITION)}).status_code == 403


def test_the_designer_page_carries_the_definition_and_loads_its_script(as_user, app):
    admin = as_user("admin")
    with app.app_context():
        flow_id = db.session.scalar(select(Flow.id).where(Flow.key == "expense"))
    page = admin.get(f"/approval/designer/{flow_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "/approval/designer/static/designer.js" in html and "<script>" not in html
    definition = json.loads(unescape(re.search(r'data-definition="([^"]*)"', html).group(1)))
    assert definition["nodes"][1]["key"] == "over_5000" and definition["form"][0]["label"] == "报销金额"
    assert admin.get("/approval/designer/static/designer.js").status_code == 200


def test_saving_a_design_adds_a_draft_then_publishing_makes_it_startable(as_user, app):
    admin = as_user("admin")
    response = admin.post("/approval/designer/save", {"definition": json.dumps(DEFINITION), "publish": "0"})
    assert response.status_code == 302
    assert versions(app, "leave") == [(1, "draft")]
    assert "请假申请" not in as_user("sales1").get("/approval/start").get_data(as_text=True)
    response = admin.post("/approval/designer/save", {"definition": json.dumps(DEFINITION), "publish": "1"})
    assert response.status_code == 302
    assert versions(app, "leave") == [(1, "draft"), (2, "published")]
    sales1 = as_user("sales1")
    assert "请假申请" in sales1.get("/approval/start").get_data(as_text=True)
    response = sales1.post("/approval/start/leave", {"kind": "年假", "days": "5"})
    assert response.status_code == 302
    with app.app_context():
        req = db.session.scalar(select(Request).where(Request.flow_key == "leave"))
        assert req.path == ["manager", "hr"] and req.flow.version == 2
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.resource == "approval.flow", AuditEntry.action == "publish")) >= 1


def test_a_bad_design_is_refused_with_errors_at_their_paths_and_nothing_saved(as_user, app):
    bad = json.loads(json.dumps(DEFINITION))
    bad["form"][0]["options"] = []
    bad["form"][1]["key"] = "kind"
    bad["nodes"][1]["branches"][0]["rule"]["all"][0]["op"] = "~"
    bad["nodes"][0]["approvers"] = {"source": "role"}
    response = as_user("admin").post("/approval/designer/save", {"definition": json.dumps(bad)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for path in ("form[0].options", "form[1].key", "nodes[1].branches[0].rule.all[0].op", "nodes[0].approvers.role"):
        assert f"<code>{path}</code>" in html, path
    assert versions(app, "leave") == []
    back = json.loads(unescape(re.search(r'data-definition="([^"]*)"', html).group(1)))
    assert back["form"][0]["label"] == "类型" and back["nodes"][0]["approvers"] == {"source": "role"}  # back for fixing
    assert as_user("admin").post("/approval/designer/save", {"definition": "{not json"}).status_code == 422
    response = as_user("admin").post("/approval/designer/save", {"definition": json.dumps({**DEFINITION, "key": "Bad Key"})})
    assert response.status_code == 422 and "<code>key</code>" in response.get_data(as_text=True)


def test_the_simulate_page_shows_the_path_and_creates_no_request(as_user, app):
    admin = as_user("admin")
    with app.app_context():
        flow_id = db.session.scalar(select(Flow.id).where(Flow.key == "expense"))
        sales1 = find_user("sales1").id
        before = db.session.scalar(select(func.count()).select_from(Request))
    page = admin.post(f"/approval/designer/{flow_id}/simulate",
                      {"initiator_id": str(sales1), "amount": "8000", "reason": "客户拜访"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    path = html[html.index("list-group-numbered"):]
    for name in ("直属上级", "李经理", "金额大于 5000", "财务", "孙丽", "总经理", "王总"):
        assert name in path, name
    assert path.index("李经理") < path.index("孙丽") < path.index("王总")
    page = admin.post(f"/approval/designer/{flow_id}/simulate", {"initiator_id": str(sales1), "amount": "-1"})
    assert page.status_code == 422
    assert as_user("sales1").get(f"/approval/designer/{flow_id}/simulate").status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Request)) == before


def test_the_initiator_edits_a_returned_request_and_resubmits_it_from_the_first_step(as_user, app):
    sales1 = as_user("sales1")
    assert sales1.post("/approval/start/expense", {"amount": "8000", "reason": "初稿"}).status_code == 302
    with app.app_context():
        req_id = db.session.scalar(select(Request.id).where(Request.flow_key == "expense").order_by(Request.id.desc()))
    manager = as_user("salesmgr")
    detail = manager.get(f"/approval/requests/{req_id}").get_data(as_text=True)
    task_id = re.search(r'name="task_id" value="(\d+)"', detail).group(1)
    manager.post(f"/approval/requests/{req_id}/act", {"action": "return", "task_id": task_id, "node": "@initiator",
                                                       "comment": "金额有误"})
    page = sales1.get(f"/approval/requests/{req_id}/resubmit")
    assert page.status_code == 200 and "初稿" in page.get_data(as_text=True)  # prefilled
    assert manager.get(f"/approval/requests/{req_id}/resubmit").status_code == 302  # not theirs to resubmit
    assert sales1.post(f"/approval/requests/{req_id}/resubmit", {"amount": "abc", "reason": "x"}).status_code == 422
    assert sales1.post(f"/approval/requests/{req_id}/resubmit", {"amount": "3000", "reason": "改稿"}).status_code == 302
    with app.app_context():
        req = db.session.get(Request, req_id)
        assert (req.status, req.path, req.context["form"]["amount"]) == ("running", ["manager"], "3000.00")
        assert "resubmit" in [e.action for e in db.session.scalars(select(Event).where(Event.request_id == req_id))]
    assert sales1.get(f"/approval/requests/{req_id}/resubmit").status_code == 302  # running again: nothing to edit
