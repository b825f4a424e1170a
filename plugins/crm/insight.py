"""Customer 360° and the CRM reports: pages and their JSON API. Thin handlers over
``plugins.crm.customer360`` and ``plugins.crm.reports``, which hold the (scoped) queries.

    /crm/customers/<id>/360              the customer's 360° page
    /crm/reports                         the reports page (charts drawn by static/crm/insight-reports.js)
    /api/v1/crm/customers/<id>/360       the same 360° data as JSON
    /api/v1/crm/reports/<name>           funnel | leaderboard | customers | tickets, as JSON
"""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select

from core import audit, resources as records
from core.errors import Forbidden, ValidationError
from core.extensions import db
from core.permissions import can
from core.web.records import _displayer
from plugins.crm import customer360, reports
from plugins.crm.resources import CUSTOMER

bp = Blueprint("crm_insight", __name__, template_folder="templates", static_folder="static",
               static_url_path="/crm/static")


#: How the 360° page names an approval's state (``submitted`` is the timeline's "request started").
APPROVAL_STATUS = {"submitted": _l("Submitted"), "running": _l("In progress"), "returned": _l("Returned"),
                   "approved": _l("Approved"), "rejected": _l("Rejected"), "withdrawn": _l("Withdrawn"),
                   "cancelled": _l("Cancelled")}


def readable_reports(user) -> list[str]:
    """The names of the reports ``user`` may run (each needs read on its resource)."""
    return [name for name, (_report, resource) in reports.REPORTS.items() if can(user, resource.permission("read"))]


# Customer 360 ------------------------------------------------------------------------------------


@bp.get("/crm/customers/<int:record_id>/360")
@login_required
def customer360_page(record_id: int):
    view = customer360.overview(current_user, record_id, page=request.args.get("page", 1))
    owners = [row.get("owner_id") for section in view.sections for row in section.rows]
    actors = [item.actor_id for item in view.timeline] + [a["initiator_id"] for a in view.approvals]
    names = customer360.user_names(owners + actors)
    columns = {s.key: [c for c in s.resource.list_columns if c != "customer_id" and (not s.rows or c in s.rows[0])]
               for s in view.sections}
    return render_template(
        "crm/customer360.html", view=view, customer=CUSTOMER, title=CUSTOMER.title_of(view.row), names=names,
        columns=columns, displays={s.key: _displayer(s.resource, s.rows) for s in view.sections},
        customer_display=_displayer(CUSTOMER, [view.row]), label=records.field_label,
        approval_status=lambda status: str(APPROVAL_STATUS.get(status, status)))


@bp.get("/api/v1/crm/customers/<int:record_id>/360")
@login_required
def customer360_api(record_id: int):
    view = customer360.overview(current_user, record_id, page=request.args.get("page", 1),
                                per_page=request.args.get("per_page", customer360.TIMELINE_PER_PAGE))
    return jsonify({
        "customer": view.row,
        **{s.key: {"items": s.rows, "more": s.more} for s in view.sections},
        "approvals": [{**a, "created_at": a["created_at"].isoformat() if a["created_at"] else None,
                       "decided_at": a["decided_at"].isoformat() if a["decided_at"] else None}
                      for a in view.approvals],
        "timeline": {"items": [_timeline_json(item) for item in view.timeline], "page": view.page,
                     "more": view.more},
    })


def _timeline_json(item) -> dict:
    return {"at": item.at.isoformat(), "kind": item.kind, "resource": item.resource.key if item.resource else None,
            "record_id": item.record_id, "title": item.title, "action": item.action, "actor_id": item.actor_id,
            "text": item.text, "changes": audit.jsonable(item.changes), "request_id": item.request_id}


# Reports -----------------------------------------------------------------------------------------


@bp.get("/crm/reports")
@login_required
def reports_page():
    names = readable_reports(current_user)
    if not names:
        raise Forbidden(_("You do not have permission to do this."))
    errors = {}
    try:
        filters = reports.parse_filters(request.args)
    except ValidationError as exc:
        errors, filters = exc.fields or {}, reports.Filters()
    data = {name: reports.run(name, current_user, filters) for name in names}
    return render_template("crm/reports.html", data=data, filters=filters, errors=errors,
                           departments=_departments(), status_label=_ticket_status_label), 422 if errors else 200


def _departments() -> list[tuple[int, str, int]]:
    """``(id, name, depth)`` of every department for the filter (what is counted is still scoped)."""
    from core.org.models import Department

    rows = db.session.execute(select(Department.id, Department.name, Department.path).order_by(Department.path)).all()
    return [(i, name, max(0, (path or "").count("/") - 2)) for i, name, path in rows]


def _ticket_status_label(status: str) -> str:
    from plugins.crm.schemas import CHOICE_LABELS

    return str(CHOICE_LABELS.get(status, status))


@bp.get("/api/v1/crm/reports/<name>")
@login_required
def report_api(name: str):
    filters = reports.parse_filters(request.args)
    return jsonify(reports.run(name, current_user, filters))

