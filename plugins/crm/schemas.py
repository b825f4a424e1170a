"""What a client may read and write of each CRM object (marshmallow; anything not listed is refused).

Two rules need the database and run when the schema loads in a request (the API and the portal
pages): a referenced customer, contact or opportunity must be one the acting user may read (else
"Does not exist.", the same answer as for a missing id), and a customer's credit code must be
unique (and, with ``DUPLICATES = block``, its name not too similar to another's). Services that
write outside a request check the same through ``services.check_related``.
"""
from __future__ import annotations

import marshmallow
from flask import has_request_context
from flask_babel import gettext as _, lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validates_schema

from core import resources as records
from core.schemas import OneOf, length
from plugins.crm import creditcode, settings

LEVELS = ("A", "B", "C")
CUSTOMER_STATUSES = ("active", "dormant", "lost", "merged")
CONTACT_KINDS = ("call", "visit", "wechat", "email", "meeting")
LEAD_STATUSES = ("new", "assigned", "converted", "invalid")
ORDER_STATUSES = ("draft", "confirmed")
TICKET_KINDS = ("inquiry", "complaint", "suggestion")
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_STATUSES = ("open", "in_progress", "resolved", "closed")


#: How pages show the stored codes (the API keeps the codes).
CHOICE_LABELS = {
    "active": _l("Active"), "dormant": _l("Dormant"), "lost": _l("Lost customer"), "merged": _l("Merged"),
    "call": _l("Phone call"), "visit": _l("Visit"), "wechat": _l("WeChat"), "email": _l("E-mail"),
    "meeting": _l("Meeting"), "new": _l("New"), "assigned": _l("Assigned"), "converted": _l("Converted"),
    "invalid": _l("Invalid"), "draft": _l("Draft"), "confirmed": _l("Confirmed"), "inquiry": _l("Inquiry"),
    "complaint": _l("Complaint"), "suggestion": _l("Suggestion"), "low": _l("Low"), "normal": _l("Normal"),
    "high": _l("High"), "urgent": _l("Urgent"), "open": _l("Open"), "in_progress": _l("Being handled"),
    "resolved": _l("Resolved"), "closed": _l("Closed"),
}


def one_of(choices):
    return OneOf(choices, labels=[CHOICE_LABELS.get(c, c) for c in choices])


def _label(text):
    return {"label": text}


class CreditCodeField(fields.String):
    """Upper-cased and stripped; blank means none; the GB 32100-2015 check character must match."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not text:
            return None
        if not creditcode.is_valid(text):
            raise ValidationError(_("Not a valid unified social credit code (18 characters, check character)."))
        return text


def _acting_user():
    """The logged-in user of the current request, or ``None`` (CLI, jobs, services that check themselves)."""
    if not has_request_context():
        return None
    from flask_login import current_user

    user = current_user._get_current_object()  # the user, not the proxy: each use of a proxy looks it up again
    return user if getattr(user, "is_authenticated", False) else None


class _Owned(Schema):
    owner_id = fields.Integer(allow_none=True, metadata=_label(_l("Owner")))
    department_id = fields.Integer(dump_only=True, allow_none=True, metadata=_label(_l("Department")))
    created_at = fields.DateTime(dump_only=True, metadata=_label(_l("Created at")))
    updated_at = fields.DateTime(dump_only=True, metadata=_label(_l("Updated at")))
    version = fields.Integer(dump_only=True)

    #: field name -> resource key of the record it references (checked against the user's read scope)
    related: dict = {}

    @validates_schema
    def _related_in_scope(self, data, **kwargs):
        if not self.related:
            return
        user = _acting_user()
        if user is None:
            return
        from plugins.crm.services import related_errors

        errors = related_errors(user, {k: data.get(k) for k in self.related}, self.related)
        if errors:
            raise ValidationError(errors)


class CustomerSchema(_Owned):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=length(200, 1), metadata=_label(_l("Customer name")))
    credit_code = CreditCodeField(allow_none=True, load_default=None, metadata=_label(_l("Unified social credit code")))
    industry = fields.String(load_default="", validate=length(50), metadata=_label(_l("Industry")))
    province = fields.String(load_default="", validate=length(20), metadata=_label(_l("Province")))
    city = fields.String(load_default="", validate=length(30), metadata=_label(_l("City")))
    level = fields.String(load_default="C", validate=one_of(LEVELS), metadata=_label(_l("Level")))
    source = fields.String(load_default="", validate=length(30), metadata=_label(_l("Source")))
    status = fields.String(load_default="active", validate=one_of(CUSTOMER_STATUSES[:-1]), metadata=_label(_l("Status")))
    tags = fields.List(fields.String(validate=length(30)), load_default=list, validate=length(20),
                       metadata=_label(_l("Tags")))
    address = fields.String(load_default="", validate=length(300), metadata=_label(_l("Address")))
    last_followup_at = fields.DateTime(dump_only=True, metadata=_label(_l("Last follow-up")))
    custom = fields.Dict(dump_only=True)

    @validates_schema
    def _no_duplicate(self, data, **kwargs):
        if _acting_user() is None:
            return
        from plugins.crm.services import duplicate_errors

        errors = duplicate_errors(data.get("name"), data.get("credit_code"), exclude_id=records.updating_id("crm.customer"))
        if errors:
            raise ValidationError(errors)


class ContactSchema(_Owned):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=length(100, 1), metadata=_label(_l("Contact name")))
    customer_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Customer")))
    title = fields.String(load_default="", validate=length(100), metadata=_label(_l("Job title")))
    mobile = fields.String(load_default="", validate=length(20), metadata=_label(_l("Mobile")))
    email = fields.String(load_default="", validate=length(254), metadata=_label(_l("E-mail")))
    wechat = fields.String(load_default="", validate=length(64), metadata=_label(_l("WeChat")))
    is_primary = fields.Boolean(load_default=False, metadata=_label(_l("Primary contact")))
    related = {"customer_id": "crm.customer"}


class FollowUpSchema(_Owned):
    id = fields.Integer(dump_only=True)
    content = fields.String(required=True, validate=length(5000, 1), metadata=_label(_l("Content")))
    kind = fields.String(load_default="call", validate=one_of(CONTACT_KINDS), metadata=_label(_l("Follow-up type")))
    customer_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Customer")))
    contact_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Contact")))
    happened_at = fields.DateTime(allow_none=True, load_default=None, metadata=_label(_l("Happened at")))
    next_at = fields.DateTime(allow_none=True, load_default=None, metadata=_label(_l("Next follow-up")))
    related = {"customer_id": "crm.customer", "contact_id": "crm.contact"}


class LeadSchema(_Owned):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=length(100, 1), metadata=_label(_l("Lead name")))
    company = fields.String(load_default="", validate=length(200), metadata=_label(_l("Company")))
    mobile = fields.String(load_default="", validate=length(20), metadata=_label(_l("Mobile")))
    email = fields.String(load_default="", validate=length(254), metadata=_label(_l("E-mail")))
    source = fields.String(load_default="", validate=length(30), metadata=_label(_l("Source")))
    province = fields.String(load_default="", validate=length(20), metadata=_label(_l("Province")))
    status = fields.String(load_default="new", validate=one_of(LEAD_STATUSES), metadata=_label(_l("Status")))
    customer_id = fields.Integer(dump_only=True, allow_none=True, metadata=_label(_l("Customer")))


class OpportunitySchema(_Owned):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=length(200, 1), metadata=_label(_l("Opportunity name")))
    customer_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Customer")))
    amount = fields.Decimal(places=2, as_string=True, load_default="0",
                            validate=marshmallow.validate.Range(min=0, error=_l("Must be at least {min}.")),
                            metadata=_label(_l("Amount")))
    expected_close = fields.Date(allow_none=True, load_default=None, metadata=_label(_l("Expected close date")))
    stage = fields.String(load_default="initial", metadata={**_label(_l("Stage")), "choices": settings.stage_choices})
    probability = fields.Integer(dump_only=True, metadata=_label(_l("Probability (%)")))
    lost_reason = fields.String(load_default="", validate=length(300), metadata=_label(_l("Lost reason")))
    rejection_reason = fields.String(dump_only=True, metadata=_label(_l("Contract rejection reason")))
    related = {"customer_id": "crm.customer"}

    @validates_schema
    def _known_stage(self, data, **kwargs):
        if "stage" in data and data["stage"] not in settings.stage_keys():
            raise ValidationError({"stage": [_("Must be one of: %(choices)s.", choices=", ".join(settings.stage_keys()))]})


class OrderLineSchema(Schema):
    product = fields.String(required=True, validate=length(200, 1), metadata=_label(_l("Product")))
    quantity = fields.Decimal(places=4, as_string=True, required=True, metadata=_label(_l("Quantity")),
                              validate=marshmallow.validate.Range(min=0, min_inclusive=False,
                                                                  error=_l("Must be greater than {min}.")))
    price = fields.Decimal(places=2, as_string=True, required=True, metadata=_label(_l("Unit price")),
                           validate=marshmallow.validate.Range(min=0, error=_l("Must be at least {min}.")))
    #: Computed (quantity × unit price, to the cent) when the order is saved; what a client sends is ignored.
    amount = fields.Decimal(places=2, as_string=True, allow_none=True, load_default=None,
                            metadata=_label(_l("Line amount")))


class OrderSchema(_Owned):
    id = fields.Integer(dump_only=True)
    number = fields.String(required=True, validate=length(40, 1), metadata=_label(_l("Order number")))
    customer_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Customer")))
    opportunity_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Opportunity")))
    amount = fields.Decimal(places=2, as_string=True, load_default="0",
                            validate=marshmallow.validate.Range(min=0, error=_l("Must be at least {min}.")),
                            metadata=_label(_l("Amount")))
    status = fields.String(load_default="draft", validate=one_of(ORDER_STATUSES), metadata=_label(_l("Status")))
    lines = fields.List(fields.Nested(OrderLineSchema), load_default=list, validate=length(200),
                        metadata=_label(_l("Order lines")))
    confirmed_at = fields.DateTime(dump_only=True, metadata=_label(_l("Confirmed at")))
    invoice_status = fields.String(dump_only=True, metadata=_label(_l("Invoice")))
    invoice_issued_at = fields.DateTime(dump_only=True, metadata=_label(_l("Invoice issued at")))
    related = {"customer_id": "crm.customer", "opportunity_id": "crm.opportunity"}

    def load(self, data, *args, **kwargs):
        clean = super().load(data, *args, **kwargs)
        if "lines" in clean:  # JSON column: store numbers as text, exactly
            clean["lines"] = [{k: str(v) for k, v in line.items()} for line in clean["lines"]]
        return clean


class TicketSchema(_Owned):
    id = fields.Integer(dump_only=True)
    subject = fields.String(required=True, validate=length(200, 1), metadata=_label(_l("Subject")))
    customer_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Customer")))
    kind = fields.String(load_default="inquiry", validate=one_of(TICKET_KINDS), metadata=_label(_l("Ticket type")))
    priority = fields.String(load_default="normal", validate=one_of(PRIORITIES), metadata=_label(_l("Priority")))
    sla_due_at = fields.DateTime(allow_none=True, load_default=None, metadata=_label(_l("SLA due at")))
    assignee_id = fields.Integer(allow_none=True, load_default=None, metadata=_label(_l("Assignee")))
    status = fields.String(load_default="open", validate=one_of(TICKET_STATUSES), metadata=_label(_l("Status")))
    resolution = fields.String(load_default="", validate=length(5000), metadata=_label(_l("Resolution")))
    satisfaction = fields.Integer(allow_none=True, load_default=None,
                                  validate=marshmallow.validate.Range(1, 5, error=_l("Enter a number between {min} and {max}.")),
                                  metadata=_label(_l("Satisfaction (1-5)")))
    escalated_at = fields.DateTime(dump_only=True, metadata=_label(_l("Escalated at")))
    related = {"customer_id": "crm.customer"}
