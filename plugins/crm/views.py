"""CRM actions beyond the generic resource API: thin handlers that parse input and call services.

Routes sit beside the generic ``/api/v1/crm/<plural>/<int:id>`` ones without colliding: Werkzeug
prefers the rule with more static parts (``/customers/merge``, ``/customers/<id>/claim``, ``/pool``).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import resources as records
from core.api.helpers import envelope, json_body, page_args
from core.errors import ValidationError
from core.extensions import db
from core.permissions import require
from plugins.crm import services
from plugins.crm.resources import CUSTOMER

api_bp = Blueprint("crm_api", __name__, url_prefix="/api/v1/crm")


def _int(body: dict, name: str) -> int:
    try:
        return int(body[name])
    except (KeyError, TypeError, ValueError):
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={name: [_("Not a valid integer.")]}) from None


def _ints(body: dict, name: str) -> list[int]:
    value = body.get(name)
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Please correct the highlighted fields."), fields={name: [_("Not a valid list.")]})
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={name: [_("Not a valid integer.")]}) from None


@api_bp.get("/customers/duplicates")
@login_required
def duplicates():
    require(current_user, CUSTOMER.permission("read"))
    mobiles = [m for m in request.args.getlist("mobile") if m]
    found = services.find_duplicates(request.args.get("name"), request.args.get("credit_code"), mobiles,
                                     exclude_id=request.args.get("exclude_id", type=int))
    return jsonify({"items": found, "mode": services.settings.get("DUPLICATES")})


@api_bp.post("/customers/merge")
@login_required
def merge():
    body = json_body()
    moved = services.merge_customers(current_user, _int(body, "survivor_id"), _ints(body, "duplicate_ids"))
    db.session.commit()
    return jsonify({"moved": moved})


@api_bp.post("/customers/<int:record_id>/claim")
@login_required
def claim(record_id: int):
    customer = services.claim(current_user, record_id)
    db.session.commit()
    return jsonify(records.dump(CUSTOMER, current_user, customer))


@api_bp.get("/pool")
@login_required
def pool():
    require(current_user, "crm.customer.claim")
    page, per_page = page_args()
    query = services.pool_query()
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    rows = [{"id": c.id, "name": c.name, "industry": c.industry, "province": c.province, "city": c.city,
             "level": c.level} for c in items]
    return jsonify(envelope(rows, total, page, per_page))


@api_bp.post("/leads/assign")
@login_required
def assign():
    body = json_body()
    ids = _ints(body, "lead_ids") if "lead_ids" in body else None
    assigned = services.assign_leads(current_user, ids)
    db.session.commit()
    return jsonify({"assigned": {str(k): v for k, v in assigned.items()}})


@api_bp.post("/leads/<int:record_id>/convert")
@login_required
def convert(record_id: int):
    body = json_body()
    opportunity = body.get("opportunity")
    if opportunity is not None and not isinstance(opportunity, dict):
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"opportunity": [_("Invalid input type.")]})
    result = services.convert_lead(current_user, record_id, opportunity)
    db.session.commit()
    return jsonify(result), 201


@api_bp.post("/handover")
@login_required
def handover():
    body = json_body()
    moved = services.hand_over(current_user, _int(body, "from_user_id"), _int(body, "to_user_id"))
    db.session.commit()
    return jsonify({"moved": moved})


# Sales path: the kanban's stage move, orders from won opportunities, invoice requests -----------


@api_bp.post("/opportunities/<int:record_id>/stage")
@login_required
def move_stage(record_id: int):
    """Move an opportunity to another stage at the version the client saw (409 when stale)."""
    from plugins.crm import sales
    from plugins.crm.resources import OPPORTUNITY

    body = json_body()
    lost_reason = body.get("lost_reason")
    if lost_reason is not None and not isinstance(lost_reason, str):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"lost_reason": [_("Not a valid string.")]})
    opp = sales.move_stage(current_user, record_id, body.get("stage"), body.get("version"), lost_reason)
    db.session.commit()
    return jsonify(records.dump(OPPORTUNITY, current_user, opp))


@api_bp.post("/opportunities/<int:record_id>/orders")
@login_required
def create_order(record_id: int):
    from plugins.crm import sales
    from plugins.crm.resources import ORDER

    body = json_body()
    number = body.get("number")
    if number is not None and not isinstance(number, str):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"number": [_("Not a valid string.")]})
    order = sales.create_order(current_user, record_id, body.get("lines") or [], number)
    db.session.commit()
    return jsonify(records.dump(ORDER, current_user, order)), 201


@api_bp.post("/orders/<int:record_id>/confirm")
@login_required
def confirm_order(record_id: int):
    from plugins.crm import sales
    from plugins.crm.resources import ORDER

    body = json_body()
    order = sales.confirm_order(current_user, record_id, body.get("version"))
    db.session.commit()
    return jsonify(records.dump(ORDER, current_user, order))


@api_bp.post("/orders/<int:record_id>/invoice-issued")
@login_required
def invoice_issued(record_id: int):
    from plugins.crm import sales
    from plugins.crm.resources import ORDER

    order = sales.issue_invoice(current_user, record_id)
    db.session.commit()
    return jsonify(records.dump(ORDER, current_user, order))
