"""Demo flows: 费用报销, 出差申请, 用印申请, 采购申请 — published, created once."""
from __future__ import annotations

from sqlalchemy import select

from core.extensions import db
from plugins.approval import services
from plugins.approval.models import Flow

MANAGER = {"key": "manager", "type": "approval", "name": "直属上级", "approvers": {"source": "manager", "level": 1},
           "mode": "sequential", "empty": "skip"}

FLOWS = [
    {
        "key": "expense", "name": "费用报销", "description": "差旅、招待等费用报销",
        "form": [
            {"key": "amount", "label": "报销金额", "type": "money", "required": True},
            {"key": "reason", "label": "事由", "type": "textarea", "required": True},
            {"key": "spent_on", "label": "发生日期", "type": "date"},
            {"key": "invoices", "label": "发票", "type": "attachment"},
        ],
        "nodes": [
            MANAGER,
            {"key": "over_5000", "type": "condition", "branches": [
                {"name": "金额大于 5000", "priority": 1, "rule": {"field": "amount", "op": ">", "value": 5000},
                 "nodes": [
                     {"key": "finance", "type": "approval", "name": "财务", "mode": "any",
                      "approvers": {"source": "role", "role": "finance"}, "empty": "admin"},
                     {"key": "gm", "type": "approval", "name": "总经理", "mode": "any",
                      "approvers": {"source": "role", "role": "gm"}, "empty": "admin"},
                 ]},
                {"name": "其他", "default": True, "nodes": []},
            ]},
        ],
        "settings": {"allow_withdraw": False},
    },
    {
        "key": "travel", "name": "出差申请", "description": "出差行程与预算",
        "form": [
            {"key": "destination", "label": "目的地", "type": "text", "required": True},
            {"key": "dates", "label": "出差日期", "type": "daterange", "required": True},
            {"key": "budget", "label": "预算", "type": "money"},
            {"key": "reason", "label": "事由", "type": "textarea", "required": True},
        ],
        "nodes": [
            {**MANAGER, "time_limit": {"hours": 24, "action": "remind"}},
            {"key": "cc_hr", "type": "cc", "name": "抄送人事", "cc": [{"source": "role", "role": "hr"}]},
        ],
        "settings": {"allow_withdraw": True},
    },
    {
        "key": "seal", "name": "用印申请", "description": "公章、合同章、财务章用印",
        "form": [
            {"key": "seal_type", "label": "印章类型", "type": "select", "required": True,
             "options": ["公章", "合同章", "财务章"]},
            {"key": "document", "label": "文件名称", "type": "text", "required": True},
            {"key": "copies", "label": "份数", "type": "number", "required": True},
        ],
        "nodes": [
            {"key": "head", "type": "approval", "name": "部门负责人", "approvers": {"source": "dept_head", "level": 1},
             "mode": "sequential", "empty": "skip"},
            {"key": "legal", "type": "approval", "name": "法务", "approvers": {"source": "role", "role": "legal"},
             "mode": "any", "empty": "admin", "reject": {"policy": "initiator"}},
        ],
        "settings": {},
    },
    {
        "key": "purchase", "name": "采购申请", "description": "物品与服务采购",
        "form": [
            {"key": "items", "label": "采购明细", "type": "table", "columns": [
                {"key": "name", "label": "品名", "type": "text", "required": True},
                {"key": "quantity", "label": "数量", "type": "number", "required": True},
                {"key": "price", "label": "单价", "type": "money", "required": True},
            ]},
            {"key": "amount", "label": "总金额", "type": "money", "required": True},
            {"key": "reason", "label": "用途", "type": "textarea", "required": True},
        ],
        "nodes": [
            MANAGER,
            {"key": "purchasing", "type": "approval", "name": "采购部", "mode": "any",
             "approvers": {"source": "role", "role": "buyer"}, "empty": "admin"},
            {"key": "over_20000", "type": "condition", "branches": [
                {"name": "金额大于 20000", "priority": 1, "rule": {"field": "amount", "op": ">", "value": 20000},
                 "nodes": [{"key": "board", "type": "approval", "name": "财务与总经理会签", "mode": "all",
                            "approvers": {"source": "role", "role": "finance"}, "empty": "admin",
                            "cc": [{"source": "role", "role": "gm"}]}]},
                {"name": "其他", "default": True, "nodes": []},
            ]},
        ],
        "settings": {},
    },
]


def create_demo_flows(company) -> None:
    """Publish each demo flow whose key does not exist yet (idempotent)."""
    for definition in FLOWS:
        if db.session.scalar(select(Flow.id).where(Flow.key == definition["key"]).limit(1)) is None:
            services.save_flow(None, {**definition, "publish": True})
