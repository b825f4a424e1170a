"""CRM portal pages beyond the generic ones: the opportunity kanban, the public lead form, the
sales-order page (create from a won opportunity, confirm, mark the invoice issued) and the lead
conversion page.

Thin: they parse input, call ``plugins.crm.sales`` / ``services`` and render. Every record read
goes through the Resource scopes (``core.resources``).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import resources as records
from core.errors import DomainError, NotFound, ValidationError
from core.extensions import csrf, db
from core.permissions import can, scope_filter
from core.schemas import load
from plugins.crm import leadform, sales, services, settings
from plugins.crm.models import Customer, Opportunity
from plugins.crm.resources import CUSTOMER, LEAD, OPPORTUNITY, ORDER

bp = Blueprint("crm_pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/crm/static")

CARDS_PER_STAGE = 50


# Kanban -------------------------------------------------------------------------------------------


@bp.get("/crm/kanban")
@login_required
def kanban():
    """Opportunities by stage (the newest ``CARDS_PER_STAGE`` of each), within the user's read scope."""
    if not can(current_user, OPPORTUNITY.permission("read")):
        abort(403)
    scope = scope_filter(OPPORTUNITY, "read", current_user)
    stages = settings.stages()
    counts = dict(db.session.execute(select(Opportunity.stage, func.count()).where(scope)
                                     .group_by(Opportunity.stage)).all())
    totals = dict(db.session.execute(select(Opportunity.stage, func.sum(Opportunity.amount)).where(scope)
                                     .group_by(Opportunity.stage)).all())
    ranked = (select(Opportunity.id, func.row_number().over(partition_by=Opportunity.stage,
                                                             order_by=(Opportunity.updated_at.desc(), Opportunity.id.desc()))
                     .label("n")).where(scope).subquery())
    rows = db.session.execute(
        select(Opportunity, Customer.name).outerjoin(Customer, Customer.id == Opportunity.customer_id)
        .join(ranked, ranked.c.id == Opportunity.id).where(ranked.c.n <= CARDS_PER_STAGE)
        .order_by(Opportunity.updated_at.desc(), Opportunity.id.desc())).all()
    cards = {key: [] for key, _label, _p in stages}
    for opp, customer_name in rows:
        cards.setdefault(opp.stage, []).append({"opp": opp, "customer": customer_name})
    columns = [{"key": key, "label": label, "probability": p, "cards": cards.get(key, []), "count": counts.get(key, 0),
                "total": totals.get(key) or Decimal("0")} for key, label, p in stages]
    return render_template("crm/kanban.html", columns=columns, can_move=can(current_user, OPPORTUNITY.permission("update")),
                           can_order=can(current_user, ORDER.permission("create")),
                           contract_stage=settings.get("CONTRACT_STAGE"))


# Public lead form -----------------------------------------------------------------------------------


def _form_page(values=None, errors=None, message=None, status=200):
    token, nonce = leadform.issue()
    response = make_response(render_template("crm/lead_form.html", values=values or {}, errors=errors or {},
                                             message=message, token=token, honeypot=leadform.HONEYPOT), status)
    response.set_cookie(leadform.COOKIE, nonce, max_age=int(float(settings.get("LEAD_FORM_MAX_HOURS")) * 3600),
                        httponly=True, samesite="Strict", secure=request.is_secure, path="/crm/leads/form")
    return response


@bp.get("/crm/leads/form")
def lead_form():
    return _form_page()


@bp.post("/crm/leads/form")
@csrf.exempt  # public, no session to protect: the signed token plus its same-site cookie stop cross-site posts
def lead_form_submit():
    if not leadform.allowed(request.remote_addr):
        return _form_page(message=_("Too many submissions from your network. Please try again later."), status=429)
    values = {k: (request.form.get(k) or "").strip() for k in ("name", "company", "mobile", "email", "province")}
    problem = leadform.check(request.form.get("token", ""), request.cookies.get(leadform.COOKIE))
    if problem:
        return _form_page(values, message=problem, status=400)
    if request.form.get(leadform.HONEYPOT):
        # A bot filled the field people cannot see: answer as if it worked, keep nothing.
        return render_template("crm/lead_thanks.html")
    try:
        clean = load(leadform.WebLeadSchema(), values)
    except ValidationError as exc:
        return _form_page(values, errors=exc.fields, message=exc.message, status=422)
    lead = services.capture_lead({**clean, "source": _("Web form")})
    services.assign_leads(None, [lead.id])
    db.session.commit()
    return render_template("crm/lead_thanks.html")


# Sales orders -------------------------------------------------------------------------------------


def _lines_from_form() -> list[dict]:
    lines = []
    for product, quantity, price in zip(request.form.getlist("product"), request.form.getlist("quantity"),
                                        request.form.getlist("price")):
        if product.strip() or quantity.strip() or price.strip():
            lines.append({"product": product.strip(), "quantity": quantity.strip(), "price": price.strip()})
    return lines


@bp.route("/crm/opportunities/<int:record_id>/order", methods=["GET", "POST"])
@login_required
def new_order(record_id: int):
    """A sales order for a won opportunity: up to five lines (product, quantity, unit price)."""
    opp = records.get(OPPORTUNITY, current_user, record_id)
    errors, lines = {}, []
    if request.method == "POST":
        lines = _lines_from_form()
        try:
            order = sales.create_order(current_user, opp.id, lines)
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.fields
            flash(exc.message, "danger")
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            flash(_("Sales order %(number)s created.", number=order.number), "success")
            return redirect(url_for("crm_pages.order_page", record_id=order.id))
    return render_template("crm/order_new.html", opp=opp, lines=lines + [{}] * (5 - len(lines)), errors=errors)


@bp.get("/crm/sales-orders/<int:record_id>")
@login_required
def order_page(record_id: int):
    order = records.get(ORDER, current_user, record_id)
    opp = None
    if order.opportunity_id:
        opp = db.session.scalar(records.scoped(OPPORTUNITY, current_user).where(Opportunity.id == order.opportunity_id))
    customer = db.session.scalar(records.scoped(CUSTOMER, current_user).where(Customer.id == order.customer_id)) \
        if order.customer_id else None
    may_update = db.session.scalar(select(ORDER.model.id).where(ORDER.model.id == order.id,
                                                                 scope_filter(ORDER, "update", current_user))) is not None
    return render_template("crm/order.html", order=order, opp=opp, customer=customer,
                           can_confirm=may_update and order.status == "draft",
                           can_invoice=can(current_user, "crm.order.invoice") and order.invoice_status == "requested")


@bp.post("/crm/sales-orders/<int:record_id>/confirm")
@login_required
def confirm_order(record_id: int):
    try:
        order = sales.confirm_order(current_user, record_id, request.form.get("version") or None)
        db.session.commit()
        flash(_("Order %(number)s confirmed; finance has the invoice request.", number=order.number), "success")
    except NotFound:
        raise
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message if not exc.fields else "; ".join(m for ms in exc.fields.values() for m in ms), "danger")
    return redirect(url_for("crm_pages.order_page", record_id=record_id))


@bp.post("/crm/sales-orders/<int:record_id>/invoice-issued")
@login_required
def invoice_issued(record_id: int):
    try:
        order = sales.issue_invoice(current_user, record_id)
        db.session.commit()
        flash(_("Invoice of order %(number)s marked issued.", number=order.number), "success")
    except NotFound:
        raise
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    return redirect(url_for("crm_pages.order_page", record_id=record_id))


# Lead conversion ----------------------------------------------------------------------------------


@bp.route("/crm/leads/<int:record_id>/convert", methods=["GET", "POST"])
@login_required
def convert_lead(record_id: int):
    """Turn a lead into a customer with its primary contact and, when asked, an opportunity, in one step.

    The page shows what will be created from the lead (as the user may see it: masked fields stay
    masked); ``services.convert_lead`` checks the permission and scope again and does the writing.
    """
    lead = records.get(LEAD, current_user, record_id, action="convert")
    row = records.dump(LEAD, current_user, lead)
    values = {"with_opportunity": False, "opportunity_name": "", "amount": "", "expected_close": ""}
    errors, opportunity_errors, status = {}, {}, 200
    if request.method == "POST" and lead.status not in ("converted", "invalid"):
        values = {"with_opportunity": bool(request.form.get("with_opportunity")),
                  **{k: (request.form.get(k) or "").strip() for k in ("opportunity_name", "amount", "expected_close")}}
        opportunity = None
        if values["with_opportunity"]:
            opportunity = {"name": values["opportunity_name"]}
            opportunity.update({k: values[k] for k in ("amount", "expected_close") if values[k]})
        try:
            result = services.convert_lead(current_user, lead.id, opportunity)
            db.session.commit()
        except NotFound:
            raise
        except ValidationError as exc:
            db.session.rollback()
            errors = dict(exc.fields)
            opportunity_errors = errors.pop("opportunity", {})
            if "name" in opportunity_errors:
                opportunity_errors["opportunity_name"] = opportunity_errors.pop("name")
            flash(exc.message, "danger")
            status = 422
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            status = 422
        else:
            flash(_("Lead %(name)s converted to a customer.", name=lead.name), "success")
            return redirect(url_for("records.detail", plugin=CUSTOMER.plugin, plural=CUSTOMER.plural,
                                    record_id=result["customer_id"]))
        lead = records.get(LEAD, current_user, record_id, action="convert")
    customer = None
    if lead.customer_id:
        customer = db.session.scalar(records.scoped(CUSTOMER, current_user).where(Customer.id == lead.customer_id))
    # What the lead itself would put in the customer or contact (a duplicate name, say): not editable
    # here, so listed above the form with the customer's field labels.
    problems = [("" if name.startswith("_") else records.field_label(CUSTOMER, name), message)
                for name, messages in errors.items() for message in (messages if isinstance(messages, list) else [messages])]
    similar = []
    if lead.status not in ("converted", "invalid"):
        # As the customer form warns: names only, across all customers (someone else's is the point).
        similar = services.find_duplicates(lead.company or lead.name, mobiles=[lead.mobile or ""])[:5]
    return render_template("crm/lead_convert.html", lead=lead, row=row, values=values, problems=problems,
                           errors=opportunity_errors, customer=customer, similar=similar,
                           can_convert=lead.status not in ("converted", "invalid")), status


@bp.app_template_filter("crm_money")
def crm_money(value) -> str:
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)
