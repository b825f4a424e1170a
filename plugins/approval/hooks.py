"""Hook implementations of the approval plugin: thin, they register things and forward to services."""
from __future__ import annotations

from datetime import timedelta

from flask_babel import lazy_gettext as _l

from core.plugins import MenuItem, PeriodicJob, Permission, RoleTemplate, hookimpl


@hookimpl
def register_models():
    from plugins.approval.models import MODELS

    return MODELS


@hookimpl
def register_blueprints(app):
    from plugins.approval.designer import bp as designer_bp
    from plugins.approval.views import api_bp, bp

    return [api_bp, bp, designer_bp]


@hookimpl
def register_permissions():
    return [
        Permission("approval.flow.manage", _l("Design and publish approval flows")),
        Permission("approval.request.create", _l("Submit approval requests")),
        Permission("approval.request.read", _l("Read approval requests of others")),
    ]


@hookimpl
def register_roles():
    return [
        RoleTemplate("employee", grants={"approval.request.create": "all", "approval.request.read": "own"}),
        RoleTemplate("sales_manager", grants={"approval.request.read": "department_tree"}),
        RoleTemplate("finance", grants={"approval.request.read": "all"}),
        RoleTemplate("gm", grants={"approval.request.read": "all"}),
    ]


@hookimpl
def register_menu(user):
    from core.permissions import can

    items = []
    if can(user, "approval.request.create"):
        items.append(MenuItem("approval.start", _l("Start approval"), "approval.start_index", order=20,
                              group=_l("Approvals")))
    items.append(MenuItem("approval.mine", _l("My requests"), "approval.mine", order=21, group=_l("Approvals")))
    if can(user, "approval.flow.manage"):
        items.append(MenuItem("approval.flows", _l("Approval flows"), "approval.flows", order=40, section="admin"))
    return items


@hookimpl
def register_jobs():
    from plugins.approval.services import sweep_job

    return [PeriodicJob("approval.time_limits", sweep_job, every=timedelta(minutes=5))]


@hookimpl
def demo_data(company):
    from plugins.approval.demo import create_demo_flows

    create_demo_flows(company)
