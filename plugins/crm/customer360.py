"""Customer 360°: one customer with its contacts, follow-ups, opportunities, orders, tickets and
approvals, and everything that happened to them on one timeline.

Every list goes through its own resource's scope (``scope_filter``): a rep who may read the
customer but not an opportunity a colleague owns never sees that opportunity, its approvals or
its history. Every record is shown through the core's field rules (``records.dump`` /
``mask_changes``), so a masked mobile stays masked. The number of queries does not grow with the
data: one per section, one for approvals, one per timeline source, plus the per-request grants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select

from core import resources as records
from core.audit.models import AuditEntry
from core.errors import ValidationError
from core.extensions import db
from core.permissions import can, scope_filter
from core.permissions.fields import field_rules, mask_changes
import plugins.approval.api as approval
from plugins.crm.models import Contact, FollowUp
from plugins.crm.resources import CONTACT, CUSTOMER, FOLLOWUP, OPPORTUNITY, ORDER, TICKET

#: Rows shown per related list; "more" links to the resource's own list filtered by the customer.
SECTION_LIMIT = 20
TIMELINE_PER_PAGE = 20
#: Each timeline source reads ``page * per_page`` rows to merge them; deeper pages are refused.
TIMELINE_MAX_PAGE = 50
APPROVAL_LIMIT = 200


def _section_order(resource):
    model = resource.model
    if model is Contact:
        return (Contact.is_primary.desc(), Contact.name.asc(), Contact.id.desc())
    if model is FollowUp:
        return (func.coalesce(FollowUp.happened_at, FollowUp.created_at).desc(), FollowUp.id.desc())
    return (model.updated_at.desc(), model.id.desc())


#: (key, resource) of the related lists, in page order.
SECTIONS = (("contacts", CONTACT), ("followups", FOLLOWUP), ("opportunities", OPPORTUNITY), ("orders", ORDER),
            ("tickets", TICKET))
#: Subject types whose approvals belong to a customer: the customer itself and its deals.
APPROVAL_SUBJECTS = (("crm.opportunity", OPPORTUNITY), ("crm.order", ORDER))


@dataclass
class Section:
    key: str
    resource: object
    items: list          # the records (ORM objects)
    rows: list[dict]     # the same, as the reader may see them
    more: bool


@dataclass
class TimelineItem:
    at: datetime
    kind: str            # followup | audit | approval
    resource: object     # the Resource the entry is about (None for approvals)
    record_id: int | None
    title: str
    action: str
    actor_id: int | None = None
    actor_name: str = ""
    text: str = ""
    changes: dict = field(default_factory=dict)
    request_id: int | None = None


@dataclass
class Overview:
    customer: object
    row: dict
    sections: list[Section]
    approvals: list[dict]
    timeline: list[TimelineItem]
    page: int
    more: bool


def overview(user, customer_id, page: int = 1, per_page: int = TIMELINE_PER_PAGE) -> Overview:
    """The 360° view of a customer ``user`` may read (``NotFound`` otherwise), timeline page ``page``."""
    page, per_page = _page(page, per_page)
    customer = records.get(CUSTOMER, user, customer_id)
    row = records.dump(CUSTOMER, user, customer)
    sections = [_section(key, resource, user, customer.id) for key, resource in SECTIONS
                if can(user, resource.permission("read"))]
    subjects = {"crm.customer": [customer.id]}
    for subject_type, resource in APPROVAL_SUBJECTS:
        if can(user, resource.permission("read")):
            subjects[subject_type] = _related_ids(resource, user, customer.id)
    approvals = approval.requests_for_subjects(subjects, limit=APPROVAL_LIMIT)
    timeline, more = _timeline(user, customer.id, approvals, page, per_page)
    return Overview(customer=customer, row=row, sections=sections, approvals=approvals, timeline=timeline,
                    page=page, more=more)


def _page(page, per_page) -> tuple[int, int]:
    try:
        page, per_page = int(page or 1), int(per_page or TIMELINE_PER_PAGE)
    except (TypeError, ValueError):
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"page": [_("Not a valid integer.")]}) from None
    if not 1 <= page <= TIMELINE_MAX_PAGE:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"page": [_("Enter a number between %(min)s and %(max)s.", min=1,
                                                 max=TIMELINE_MAX_PAGE)]})
    return page, max(1, min(per_page, 100))


def _related_ids(resource, user, customer_id):
    """``SELECT id`` of the customer's records of ``resource`` that ``user`` may read."""
    model = resource.model
    return select(model.id).where(model.customer_id == customer_id, scope_filter(resource, "read", user))


def _section(key: str, resource, user, customer_id: int) -> Section:
    model = resource.model
    items = db.session.scalars(
        select(model).where(model.customer_id == customer_id, scope_filter(resource, "read", user))
        .order_by(*_section_order(resource)).limit(SECTION_LIMIT + 1)).all()
    more = len(items) > SECTION_LIMIT
    items = items[:SECTION_LIMIT]
    return Section(key=key, resource=resource, items=items, rows=records.dump(resource, user, items, many=True),
                   more=more)


def _timeline(user, customer_id: int, approvals: list[dict], page: int, per_page: int):
    """Follow-ups, the audit trail of the customer and its readable records, and approvals, newest
    first. Each source reads its newest ``page * per_page + 1`` rows; the merge is exact for that page."""
    wanted = page * per_page + 1
    items: list[TimelineItem] = []

    if can(user, FOLLOWUP.permission("read")):
        at = func.coalesce(FollowUp.happened_at, FollowUp.created_at)
        followups = db.session.scalars(
            select(FollowUp).where(FollowUp.customer_id == customer_id, scope_filter(FOLLOWUP, "read", user))
            .order_by(at.desc(), FollowUp.id.desc()).limit(wanted)).all()
        rows = records.dump(FOLLOWUP, user, followups, many=True)
        for obj, row in zip(followups, rows):
            items.append(TimelineItem(at=obj.happened_at or obj.created_at, kind="followup", resource=FOLLOWUP,
                                      record_id=obj.id, title=FOLLOWUP.title_of(row), action=row.get("kind") or "",
                                      actor_id=obj.owner_id, text=row.get("content") or ""))

    by_key = {r.key: r for _key, r in SECTIONS}
    by_key[CUSTOMER.key] = CUSTOMER
    conditions = [and_(AuditEntry.resource == CUSTOMER.key, AuditEntry.record_id == customer_id)]
    for _key, resource in SECTIONS:
        if not can(user, resource.permission("read")):
            continue
        condition = and_(AuditEntry.resource == resource.key,
                         AuditEntry.record_id.in_(_related_ids(resource, user, customer_id)))
        if resource is FOLLOWUP:  # a follow-up's creation is the follow-up itself, already on the timeline
            condition = and_(condition, AuditEntry.action != "create")
        conditions.append(condition)
    entries = db.session.scalars(select(AuditEntry).where(or_(*conditions))
                                 .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(wanted)).all()
    for entry in entries:
        resource = by_key[entry.resource]
        items.append(TimelineItem(at=entry.at, kind="audit", resource=resource, record_id=entry.record_id,
                                  title=_audit_title(resource, entry, user), action=entry.action,
                                  actor_id=entry.actor_id, actor_name=entry.actor_name,
                                  changes=mask_changes(resource.key, user, entry.changes)))

    for req in approvals:
        items.append(TimelineItem(at=req["created_at"], kind="approval", resource=None, record_id=req["subject_id"],
                                  title=req["title"], action="submitted", actor_id=req["initiator_id"],
                                  request_id=req["request_id"]))
        if req["decided_at"] is not None:
            items.append(TimelineItem(at=req["decided_at"], kind="approval", resource=None,
                                      record_id=req["subject_id"], title=req["title"], action=req["status"],
                                      request_id=req["request_id"]))

    items.sort(key=lambda item: (item.at, item.kind, item.record_id or 0), reverse=True)
    start = (page - 1) * per_page
    return items[start:start + per_page], len(items) > start + per_page


def _audit_title(resource, entry, user) -> str:
    """The entry's summary unless the record's title field is one the reader may not see in full."""
    if field_rules(resource, user).get(resource.title_field) in ("hidden", "masked"):
        return f"{resource.label} #{entry.record_id}"
    return entry.summary


def user_names(user_ids) -> dict[int, str]:
    """Display names of ``user_ids``, in one query."""
    from core.org.services import display_names

    return display_names(user_ids)
