"""The CRM sales path: opportunity stages (the kanban), contract approval, sales orders with their
invoice request (开票申请), and service-ticket SLAs with escalation.

The rules on a record being saved live in ``*_before_write`` functions the Resources declare, so
the generic form, the API, the import and the kanban all go through the same checks:

- an opportunity under approval cannot be edited or deleted; a won or lost one is closed; it is won only from
  the contract stage once its contract approval is approved; lost needs a reason; entering the
  contract stage starts the approval (``plugins.approval.api``), whose outcome arrives in
  ``on_approval_decided`` (a rejection sends it back to ``REJECTED_STAGE`` with the reason);
- an order's line amounts and total are computed (``Decimal``, to the cent); it may only hang off a
  won opportunity; confirming it puts an invoice request in every finance user's inbox, closed
  for all of them when someone marks the invoice issued; a confirmed order is fixed;
- a ticket's SLA due time follows from its priority (also when the priority of an open, not yet
  escalated ticket changes); ``escalate_overdue_tickets`` (a periodic job)
  escalates each overdue open ticket once to its assignee's team lead.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select

from core import audit, clock, inbox, resources as records
from core.errors import BusinessRuleError, ValidationError
from core.extensions import db
from core.permissions import require
import plugins.approval.api as approval
from plugins.crm import settings
from plugins.crm.models import Opportunity, Order, Ticket

SUBJECT = "crm.opportunity"
CLOSED_STAGES = ("won", "lost")
CENT = Decimal("0.01")

#: The contract approval the CRM ships (created through the approval API on setup; an admin may
#: publish new versions in the designer, which are then used).
CONTRACT_FLOW = {
    "name": "合同审批",
    "description": "商机进入合同审批阶段时自动发起：法务、财务审批，金额超过 100000 元再由总经理审批",
    "subject_type": SUBJECT,
    "form": [
        {"key": "amount", "label": "合同金额", "type": "money", "required": True},
        {"key": "opportunity", "label": "商机", "type": "text"},
    ],
    "nodes": [
        {"key": "legal", "type": "approval", "name": "法务", "mode": "any",
         "approvers": {"source": "role", "role": "legal"}, "empty": "admin"},
        {"key": "finance", "type": "approval", "name": "财务", "mode": "any",
         "approvers": {"source": "role", "role": "finance"}, "empty": "admin"},
        {"key": "over_100000", "type": "condition", "branches": [
            {"name": "金额大于 100000", "priority": 1, "rule": {"field": "amount", "op": ">", "value": 100000},
             "nodes": [{"key": "gm", "type": "approval", "name": "总经理", "mode": "any",
                        "approvers": {"source": "role", "role": "gm"}, "empty": "admin"}]},
            {"name": "其他", "default": True, "nodes": []},
        ]},
    ],
    "settings": {"allow_withdraw": True},
}


def _url(plural: str, record_id: int) -> str:
    return f"/crm/{plural}/{record_id}"


def ensure_contract_flow() -> bool:
    """Create the contract approval flow unless a flow with its key exists; returns whether it did."""
    return approval.ensure_flow(settings.get("CONTRACT_FLOW"), CONTRACT_FLOW)


# Opportunities ------------------------------------------------------------------------------------


def contract_approved(opportunity_id: int | None) -> bool:
    """Whether the latest approval about the opportunity is an approved contract approval."""
    if opportunity_id is None:
        return False
    state = approval.state(SUBJECT, opportunity_id)
    return bool(state) and state["flow_key"] == settings.get("CONTRACT_FLOW") and state["status"] == "approved"


def opportunity_before_write(user, opp: Opportunity, before: dict | None) -> None:
    """The stage rules (see the module docstring); entering the contract stage starts the approval."""
    if before is not None and approval.is_locked(SUBJECT, opp.id):
        raise BusinessRuleError(_("This opportunity is under contract approval; it cannot be changed until "
                                  "the approval is decided."))
    old, new = (before or {}).get("stage"), opp.stage
    if new == "lost" and not (opp.lost_reason or "").strip():
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"lost_reason": [_("Give the reason the opportunity was lost.")]})
    if old == new:
        return
    if old in CLOSED_STAGES:
        raise BusinessRuleError(_("This opportunity is closed (won or lost); its stage cannot change."))
    contract = settings.get("CONTRACT_STAGE")
    if new == "won" and (old != contract or not contract_approved(opp.id)):
        raise BusinessRuleError(_("An opportunity can be won only after its contract approval is approved."))
    if new == contract:
        _start_contract_approval(user, opp)


def opportunity_before_delete(user, opp: Opportunity) -> None:
    """An opportunity under contract approval cannot be deleted (as it cannot be edited): the
    approvers would be deciding on nothing. Withdraw the approval first, or wait for the decision."""
    if approval.is_locked(SUBJECT, opp.id):
        raise BusinessRuleError(_("This opportunity is under contract approval; it cannot be deleted until "
                                  "the approval is decided or withdrawn."))


def _start_contract_approval(user, opp: Opportunity) -> None:
    db.session.flush()  # the opportunity needs its id (and the request its snapshot)
    ensure_contract_flow()
    approval.start_for_subject(
        settings.get("CONTRACT_FLOW"), user, SUBJECT, opp.id,
        form={"amount": str(opp.amount), "opportunity": opp.name[:200]},
        context={"id": opp.id, "name": opp.name, "amount": str(opp.amount), "customer_id": opp.customer_id,
                 "owner_id": opp.owner_id},
        title=_("Contract approval: %(name)s", name=opp.name))
    opp.rejection_reason = ""


def move_stage(user, opportunity_id: int, stage: str, version, lost_reason: str | None = None) -> Opportunity:
    """Move an opportunity to ``stage`` at the ``version`` the user saw (a stale one is a 409).

    The kanban's drop: the same generic update (scope, validation, audit) and stage rules as the form.
    """
    if version is None:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"version": [_("Missing data for required field.")]})
    data = {"stage": stage}
    if lost_reason is not None:
        data["lost_reason"] = lost_reason
    from plugins.crm.resources import OPPORTUNITY

    return records.update(OPPORTUNITY, user, opportunity_id, data, version=version)


def _rejection_comment(request) -> str:
    db.session.expire(request, ["tasks"])
    rejected = [t for t in request.tasks if t.status == "rejected"]
    return (rejected[-1].comment or "").strip() if rejected else ""


def on_approval_decided(request, outcome: str) -> None:
    """The contract approval ended: approved leaves the opportunity ready to be won; rejected (or
    withdrawn) sends it back to ``REJECTED_STAGE`` with the reason, and tells its owner."""
    if request.subject_type != SUBJECT or request.flow_key != settings.get("CONTRACT_FLOW"):
        return
    opp = db.session.scalar(select(Opportunity).where(Opportunity.id == request.subject_id).with_for_update())
    if opp is None:
        return
    if outcome == "approved":
        audit.record("contract_approved", resource=SUBJECT, record_id=opp.id, summary=opp.name,
                     changes={"approval": [None, request.id]}, actor_name="system")
        if opp.owner_id:
            inbox.upsert("crm", f"opportunity:{opp.id}:approved:{request.id}", opp.owner_id, "task",
                         _("Contract approved, the opportunity can be won: %(name)s", name=opp.name),
                         url=_url("opportunities", opp.id), subject_type=SUBJECT, subject_id=opp.id)
        return
    if outcome not in ("rejected", "withdrawn"):
        return
    reason = _rejection_comment(request) if outcome == "rejected" else _("The approval was withdrawn.")
    reason = reason or _("No reason given.")
    before = opp.stage
    opp.stage = settings.get("REJECTED_STAGE")
    opp.rejection_reason = reason[:500]
    audit.record("contract_" + outcome, resource=SUBJECT, record_id=opp.id, summary=opp.name,
                 changes={"stage": [before, opp.stage], "rejection_reason": [None, opp.rejection_reason]},
                 actor_name="system")
    if opp.owner_id:
        inbox.upsert("crm", f"opportunity:{opp.id}:rejected:{request.id}", opp.owner_id, "task",
                     _("Contract approval rejected: %(name)s (%(reason)s)", name=opp.name, reason=reason[:100]),
                     url=_url("opportunities", opp.id), subject_type=SUBJECT, subject_id=opp.id)


# Orders -------------------------------------------------------------------------------------------


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def compute_lines(lines) -> tuple[list[dict], Decimal]:
    """Lines with their amount (quantity × unit price, to the cent, half up) and the order total."""
    result, total = [], Decimal("0.00")
    for line in lines or ():
        quantity, price = Decimal(str(line["quantity"])), _money(line["price"])
        amount = _money(quantity * price)
        result.append({"product": line["product"], "quantity": str(quantity), "price": str(price),
                       "amount": str(amount)})
        total += amount
    return result, total


_FIXED_WHEN_CONFIRMED = ("number", "customer_id", "opportunity_id", "amount", "lines", "status")


def order_before_write(user, order: Order, before: dict | None) -> None:
    """Computed amounts; a won opportunity only; a confirmed order is fixed; confirming asks for the invoice."""
    from plugins.crm.resources import ORDER

    if order.lines:
        order.lines, order.amount = compute_lines(order.lines)
    old_status = (before or {}).get("status")
    if old_status == "confirmed":
        now = records.snapshot(ORDER, order)
        if any(now.get(k) != before.get(k) for k in _FIXED_WHEN_CONFIRMED):
            raise BusinessRuleError(_("A confirmed order cannot be changed."))
        return
    if order.opportunity_id is not None and (before is None or before.get("opportunity_id") != order.opportunity_id):
        stage = db.session.scalar(select(Opportunity.stage).where(Opportunity.id == order.opportunity_id))
        if stage != "won":
            raise ValidationError(_("Please correct the highlighted fields."),
                                  fields={"opportunity_id": [_("Only a won opportunity can have sales orders.")]})
    if order.status == "confirmed":
        _confirm(user, order)


def finance_user_ids() -> list[int]:
    """Who gets invoice requests: the ``INVOICE_USERS`` group when set, else every active ``INVOICE_ROLE`` user."""
    from core.org.models import Role, User, user_roles

    names = list(settings.get("INVOICE_USERS") or ())
    query = select(User.id).where(User.active.is_(True))
    if names:
        query = query.where(User.username.in_(names))
    else:
        query = (query.join(user_roles, user_roles.c.user_id == User.id).join(Role, Role.id == user_roles.c.role_id)
                 .where(Role.key == settings.get("INVOICE_ROLE")))
    return list(db.session.scalars(query.order_by(User.id).distinct()))


def _confirm(user, order: Order) -> None:
    from plugins.crm.resources import ORDER

    if not order.lines or order.amount <= 0:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"lines": [_("An order needs at least one line with an amount to be confirmed.")]})
    order.confirmed_at, order.invoice_status = clock.now(), "requested"
    db.session.flush()
    title = _("Invoice request: order %(number)s, %(amount)s", number=order.number, amount=order.amount)
    for user_id in finance_user_ids():
        inbox.upsert("crm", f"order:{order.id}:invoice", user_id, "task", title, url=f"/crm/sales-orders/{order.id}",
                     subject_type=ORDER.key, subject_id=order.id)
    audit.record("confirm", resource=ORDER.key, record_id=order.id, summary=order.number,
                 changes={"status": ["draft", "confirmed"], "invoice_status": ["", "requested"]}, actor=user)


def _next_number(opp: Opportunity) -> str:
    count = db.session.scalar(select(func.count()).select_from(Order).where(Order.opportunity_id == opp.id))
    return f"SO-{clock.now():%Y%m%d}-{opp.id:05d}-{count + 1}"


def create_order(user, opportunity_id: int, lines, number: str | None = None) -> Order:
    """A draft sales order for a won opportunity the user may read, with its customer and ``lines``."""
    from plugins.crm.resources import OPPORTUNITY, ORDER

    require(user, ORDER.permission("create"))
    opp = records.get(OPPORTUNITY, user, opportunity_id)
    if opp.stage != "won":
        raise BusinessRuleError(_("Only a won opportunity can have sales orders."))
    return records.create(ORDER, user, {"number": number or _next_number(opp), "opportunity_id": opp.id,
                                        "customer_id": opp.customer_id, "lines": lines, "status": "draft"})


def confirm_order(user, order_id: int, version=None) -> Order:
    """Confirm a draft order (the same update as the form setting the status)."""
    from plugins.crm.resources import ORDER

    return records.update(ORDER, user, order_id, {"status": "confirmed"}, version=version)


def issue_invoice(user, order_id: int) -> Order:
    """Finance marks the invoice of a confirmed order issued: every finance user's request closes."""
    from plugins.crm.resources import ORDER

    require(user, "crm.order.invoice")
    order = records.get(ORDER, user, order_id, lock=True)
    if order.invoice_status == "issued":
        return order
    if order.invoice_status != "requested":
        raise BusinessRuleError(_("This order has no open invoice request."))
    order.invoice_status, order.invoice_issued_at = "issued", clock.now()
    inbox.close("crm", f"order:{order.id}:invoice", by=user)
    audit.record("invoice_issued", resource=ORDER.key, record_id=order.id, summary=order.number,
                 changes={"invoice_status": ["requested", "issued"]}, actor=user)
    db.session.flush()
    return order


# Tickets ------------------------------------------------------------------------------------------

OPEN_TICKETS = ("open", "in_progress")


def sla_due(priority: str, start) -> object:
    hours = dict(settings.get("SLA_HOURS")).get(priority, 24)
    return start + timedelta(hours=int(hours))


def _due_edited(before: dict, ticket: Ticket) -> bool:
    """Whether this write sets the SLA due time itself. The form shows it to the minute, so a
    difference under a minute is the form's rounding, not an edit."""
    old = before.get("sla_due_at")
    if ticket.sla_due_at is None or old is None:
        return ticket.sla_due_at is not None or old is not None
    return abs(ticket.sla_due_at - datetime.fromisoformat(old)) >= timedelta(minutes=1)


def ticket_before_write(user, ticket: Ticket, before: dict | None) -> None:
    """A new ticket's SLA due time follows from its priority (unless given); so does an open,
    not yet escalated ticket's when its priority changes (counted from when the ticket was opened,
    unless the same write sets the due time); closing a ticket closes its escalation item."""
    if before is None:
        if ticket.sla_due_at is None:
            ticket.sla_due_at = sla_due(ticket.priority, clock.now())
        return
    if (ticket.priority != before.get("priority") and ticket.status in OPEN_TICKETS
            and ticket.escalated_at is None and not _due_edited(before, ticket)):
        ticket.sla_due_at = sla_due(ticket.priority, ticket.created_at or clock.now())
    if ticket.status not in OPEN_TICKETS:
        inbox.close("crm", f"ticket:{ticket.id}:escalated", by=user)


def team_lead_of(user_id: int | None) -> int | None:
    """The head of the user's department, or of the nearest department above it headed by someone else."""
    from core.org.models import Department, User

    if user_id is None:
        return None
    path = db.session.scalar(select(Department.path).join(User, User.department_id == Department.id)
                             .where(User.id == user_id))
    ids = [int(p) for p in (path or "").strip("/").split("/") if p]
    if not ids:
        return None
    heads = dict(db.session.execute(select(Department.id, Department.head_id).where(Department.id.in_(ids))).all())
    return next((heads[i] for i in reversed(ids) if heads.get(i) and heads[i] != user_id), None)


def escalate_overdue_tickets(now=None) -> int:
    """Escalate each open ticket past its SLA due time, once: an inbox task for the assignee's (or
    owner's) team lead, ``escalated_at`` set, audited. Returns how many were escalated."""
    now = now or clock.now()
    tickets = db.session.scalars(
        select(Ticket).where(Ticket.status.in_(OPEN_TICKETS), Ticket.sla_due_at < now, Ticket.escalated_at.is_(None))
        .order_by(Ticket.sla_due_at, Ticket.id).limit(500).with_for_update()).all()
    for ticket in tickets:
        lead = team_lead_of(ticket.assignee_id or ticket.owner_id)
        ticket.escalated_at = now
        if lead is not None:
            inbox.upsert("crm", f"ticket:{ticket.id}:escalated", lead, "task",
                         _("Ticket past its SLA: %(subject)s", subject=ticket.subject),
                         url=_url("tickets", ticket.id), subject_type="crm.ticket", subject_id=ticket.id)
        audit.record("escalate", resource="crm.ticket", record_id=ticket.id, summary=ticket.subject,
                     changes={"escalated_at": [None, now.isoformat()], "escalated_to": [None, lead]},
                     actor_name="system")
    db.session.flush()
    return len(tickets)
