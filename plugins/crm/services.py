"""CRM business rules: plain functions taking the acting user and raising domain errors.

Duplicate checks, merging, follow-up reminders, lead capture/assignment/conversion, the public
pool (recycling, warnings, claiming) and hand-over. Reads go through the Resource scopes; the
public pool is deliberately visible to everyone who may claim from it.
"""
from __future__ import annotations

import difflib
import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import event, func, or_, select, update
from sqlalchemy.orm import Session

from core import audit, clock, inbox, resources as records
from core.errors import BusinessRuleError, Conflict, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.permissions import can, require, scope_filter
from plugins.crm import settings
from plugins.crm.models import Contact, Customer, FollowUp, Lead, Opportunity, Order, Ticket

CHILD_MODELS = (Contact, FollowUp, Lead, Opportunity, Order, Ticket)
CLOSED_STAGES = ("won", "lost")


# Related records ----------------------------------------------------------------------------------


def related_errors(user, values: dict, related: dict) -> dict:
    """Field errors for references to records ``user`` may not read (or that do not exist)."""
    from plugins.crm.resources import BY_KEY

    errors = {}
    for field, value in values.items():
        if value is None:
            continue
        resource = BY_KEY[related[field]]
        if not isinstance(value, int) or not 0 < value < 2**31:  # no row has such an id (and the database cannot compare it)
            errors[field] = [_("Does not exist.")]
            continue
        found = db.session.scalar(select(resource.model.id).where(
            resource.model.id == value, scope_filter(resource, "read", user)))
        if found is None:
            errors[field] = [_("Does not exist.")]
    return errors


def check_related(user, values: dict, related: dict) -> None:
    if errors := related_errors(user, values, related):
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)


# Duplicates ---------------------------------------------------------------------------------------

_SUFFIXES = ("有限责任公司", "股份有限公司", "有限公司", "股份", "集团", "公司")
_NOISE = re.compile(r"[\s()（）·.,，、\-]+")


def normalise_name(name: str) -> str:
    """A company name without legal-form words, brackets, spaces and case: what "the same name" compares."""
    text = (name or "").lower()
    for word in _SUFFIXES:
        text = text.replace(word, "")
    return _NOISE.sub("", text)


def similar(a: str, b: str) -> bool:
    na, nb = normalise_name(a), normalise_name(b)
    return bool(na) and (na == nb or difflib.SequenceMatcher(None, na, nb).ratio() > 0.9)


def find_duplicates(name: str | None = None, credit_code: str | None = None, mobiles=(), exclude_id=None) -> list[dict]:
    """Customers that look like the one described: ``[{"id", "name", "reason"}]``, reason ``credit_code``,
    ``name`` or ``mobile``. Looks across all customers (a duplicate in someone else's hands is the point),
    but returns only ids, names and the reason."""
    found: dict[int, dict] = {}

    def live():  # built only for the queries that need it: an import checks many rows by credit code alone
        return [Customer.status != "merged"] + ([Customer.id != int(exclude_id)] if exclude_id else [])

    if credit_code:
        for cid, cname in _holders(credit_code.strip().upper()):
            if not exclude_id or cid != int(exclude_id):
                found[cid] = {"id": cid, "name": cname, "reason": "credit_code"}
    if name and (key := normalise_name(name)):
        # Candidates share the first two characters of the normalised name; the ratio decides.
        prefix = key[:2]
        rows = db.session.execute(select(Customer.id, Customer.name).where(
            func.lower(Customer.name).contains(prefix, autoescape=True), *live()).limit(500))
        for cid, cname in rows:
            if cid not in found and similar(name, cname):
                found[cid] = {"id": cid, "name": cname, "reason": "name"}
    mobiles = [m.strip() for m in mobiles if m and m.strip()]
    if mobiles:
        rows = db.session.execute(select(Customer.id, Customer.name).join(Contact, Contact.customer_id == Customer.id)
                                  .where(Contact.mobile.in_(mobiles), *live()))
        for cid, cname in rows:
            found.setdefault(cid, {"id": cid, "name": cname, "reason": "mobile"})
    return sorted(found.values(), key=lambda d: d["id"])


#: ``{credit code: [(id, name)]}`` read by ``preload_credit_codes`` for a batch of rows being validated.
_HOLDERS: ContextVar[dict | None] = ContextVar("crm_credit_code_holders", default=None)


def _holders(code: str) -> list[tuple[int, str]]:
    """``[(id, name)]`` of the customers registered with ``code``."""
    held = _HOLDERS.get()
    if held is not None and code in held:
        return held[code]
    return db.session.execute(select(Customer.id, Customer.name).where(Customer.credit_code == code)).all()


@contextmanager
def preload_credit_codes(_user, datas):
    """The customers holding the credit codes of ``datas`` (an import's batch), read with one query:
    inside the block each row's duplicate check answers from them (``Resource.preload``)."""
    codes = {str(d["credit_code"]).strip().upper() for d in datas if d.get("credit_code")}
    held = {code: [] for code in codes}
    if codes:
        for cid, cname, code in db.session.execute(select(Customer.id, Customer.name, Customer.credit_code)
                                                   .where(Customer.credit_code.in_(codes))):
            held[code].append((cid, cname))
    token = _HOLDERS.set(held)
    try:
        yield
    finally:
        _HOLDERS.reset(token)


def duplicate_errors(name, credit_code, exclude_id=None) -> dict:
    """Field errors that block a save: a credit code in use always; a similar name when ``DUPLICATES`` is ``block``."""
    errors = {}
    block = settings.get("DUPLICATES") == "block"
    for dup in find_duplicates(name if block else None, credit_code, exclude_id=exclude_id):
        if dup["reason"] == "credit_code":
            errors["credit_code"] = [_("This credit code is already registered (%(name)s).", name=dup["name"])]
        elif dup["reason"] == "name":
            errors.setdefault("name", [_("A customer with a very similar name exists (%(name)s).", name=dup["name"])])
    return errors


# Merge --------------------------------------------------------------------------------------------


def merge_customers(user, survivor_id: int, duplicate_ids) -> dict:
    """Move every contact, follow-up, lead, opportunity, order and ticket of the duplicates to the survivor.

    The duplicates stay (status ``merged``, ``merged_into_id`` set) so their history still opens.
    ``user`` needs ``crm.customer.merge`` and the update scope over every customer involved.
    Returns how many records of each kind moved.
    """
    from plugins.crm.resources import CUSTOMER

    require(user, "crm.customer.merge")
    ids = sorted({int(i) for i in duplicate_ids} - {int(survivor_id)})
    if not ids:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"duplicate_ids": [_("Choose at least one other customer.")]})
    survivor = records.get(CUSTOMER, user, survivor_id, action="update", lock=True)
    duplicates = [records.get(CUSTOMER, user, i, action="update", lock=True) for i in ids]
    if survivor.status == "merged" or any(d.status == "merged" for d in duplicates):
        raise BusinessRuleError(_("A merged customer cannot be merged again."))
    moved = {}
    for model in CHILD_MODELS:
        result = db.session.execute(update(model).where(model.customer_id.in_(ids))
                                    .values(customer_id=survivor.id).execution_options(synchronize_session="fetch"))
        moved[model.__tablename__.removeprefix("crm_")] = result.rowcount
    for dup in duplicates:
        code = dup.credit_code
        dup.credit_code, dup.status, dup.merged_into_id = None, "merged", survivor.id
        db.session.flush()
        if code and not survivor.credit_code:
            survivor.credit_code = code
        audit.record("merge", resource=CUSTOMER.key, record_id=dup.id, summary=dup.name,
                     changes={"merged_into_id": [None, survivor.id], "status": ["active", "merged"]}, actor=user)
    audit.record("merge", resource=CUSTOMER.key, record_id=survivor.id, summary=survivor.name,
                 changes={"merged": [None, ids], "moved": [None, moved]}, actor=user)
    db.session.flush()
    return moved


# Follow-ups ---------------------------------------------------------------------------------------


@event.listens_for(Session, "before_flush")
def _followup_touches_customer(session, _context, _instances):
    """A follow-up saved counts as activity on its customer (the public pool counts from it)."""
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, FollowUp) and obj.customer_id:
            customer = session.get(Customer, obj.customer_id)
            moment = obj.happened_at or clock.now()
            if customer is not None and (customer.last_followup_at is None or customer.last_followup_at < moment):
                customer.last_followup_at = moment
                customer.pool_warned_at = None


@event.listens_for(Session, "after_flush")
def _followup_schedules_reminder(session, _context):
    """A follow-up with a next date: after commit its owner gets an inbox reminder due then."""
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, FollowUp) and obj.next_at is not None and obj.owner_id is not None:
            from core import events

            events.emit("crm.followup_scheduled", followup_id=obj.id)


def remind_followup(followup_id: int) -> None:
    """Put (or move) the owner's reminder for the follow-up's next date into their inbox."""
    followup = db.session.get(FollowUp, followup_id)
    if followup is None or followup.next_at is None or followup.owner_id is None:
        return
    customer = db.session.get(Customer, followup.customer_id) if followup.customer_id else None
    title = _("Follow up: %(name)s", name=customer.name if customer else followup.content[:50])
    inbox.upsert("crm", f"followup:{followup.id}:next", followup.owner_id, "reminder", title,
                 url=_record_url("followups", followup.id), subject_type="crm.followup", subject_id=followup.id,
                 due_at=followup.next_at)


def _record_url(plural: str, record_id: int) -> str:
    return f"/crm/{plural}/{record_id}"


# Leads --------------------------------------------------------------------------------------------


def capture_lead(data: dict, actor=None) -> Lead:
    """A lead from a form, the API or an import, owned by nobody until it is assigned."""
    from core.schemas import load
    from plugins.crm.resources import LEAD
    from plugins.crm.schemas import LeadSchema

    clean = load(LeadSchema(), {k: v for k, v in data.items() if k != "owner_id"})
    clean["status"] = "new"
    lead = Lead(**clean, created_by_id=getattr(actor, "id", None))
    db.session.add(lead)
    db.session.flush()
    audit.record("create", resource=LEAD.key, record_id=lead.id, summary=lead.name,
                 changes=audit.diff({}, records.snapshot(LEAD, lead)), actor=actor,
                 actor_name=None if actor else "system")
    return lead


def _default_reps() -> list[int]:
    from core.org.models import Role, User, user_roles

    return list(db.session.scalars(select(User.id).join(user_roles, user_roles.c.user_id == User.id)
                                   .join(Role, Role.id == user_roles.c.role_id)
                                   .where(Role.key == "sales_rep").order_by(User.id).distinct()))


def _rule_reps(lead: Lead, rules, usernames: dict) -> tuple[int, list[int]]:
    for index, rule in enumerate(rules):
        if rule.get("province") and rule["province"] != lead.province:
            continue
        if rule.get("source") and rule["source"] != lead.source:
            continue
        return index, [usernames[u] for u in rule.get("users", ()) if u in usernames]
    return -1, []


def assign_leads(actor=None, lead_ids=None) -> dict[int, int]:
    """Give each unassigned new lead to a rep; return ``{lead_id: user_id}`` for those assigned.

    The first ``ASSIGN_RULES`` entry matching the lead's province/source names the candidate reps
    (otherwise every ``sales_rep``). Inactive users are skipped, and so is a rep holding
    ``LEAD_CAPACITY`` open leads. ``round_robin`` takes the next candidate after the last one
    chosen for that rule (remembered across calls); ``least_loaded`` the one with fewest open leads.
    Leads nobody can take stay unassigned. Each assignee gets an inbox task.
    """
    from core.org.models import User
    from core.site_settings import get_setting, set_setting
    from plugins.crm.resources import LEAD

    if actor is not None:
        require(actor, "crm.lead.assign")
    query = select(Lead).where(Lead.status == "new", Lead.owner_id.is_(None)).order_by(Lead.id).with_for_update()
    if lead_ids is not None:
        query = query.where(Lead.id.in_([int(i) for i in lead_ids]))
    leads = db.session.scalars(query).all()
    if not leads:
        return {}
    rules = list(settings.get("ASSIGN_RULES") or ())
    users = {u.username: u for u in db.session.scalars(select(User))}
    active = {u.id for u in users.values() if u.active}
    departments = {u.id: u.department_id for u in users.values()}
    ids_by_name = {name: u.id for name, u in users.items()}
    capacity = int(settings.get("LEAD_CAPACITY"))
    strategy = settings.get("ASSIGN_STRATEGY")
    load = dict(db.session.execute(select(Lead.owner_id, func.count()).where(Lead.status == "assigned",
                                   Lead.owner_id.is_not(None)).group_by(Lead.owner_id)).all())
    cursors = dict(get_setting("crm.assign_cursors") or {})
    default_reps = _default_reps()
    now, assigned = clock.now(), {}
    for lead in leads:
        index, candidates = _rule_reps(lead, rules, ids_by_name)
        candidates = [c for c in (candidates or default_reps) if c in active and load.get(c, 0) < capacity]
        if not candidates:
            continue
        if strategy == "least_loaded":
            chosen = min(candidates, key=lambda c: (load.get(c, 0), c))
        else:
            last = cursors.get(str(index))
            later = [c for c in candidates if last is None or c > last]
            chosen = later[0] if later else candidates[0]
            cursors[str(index)] = chosen
        lead.owner_id, lead.department_id = chosen, departments.get(chosen)
        lead.status, lead.assigned_at = "assigned", now
        load[chosen] = load.get(chosen, 0) + 1
        assigned[lead.id] = chosen
    set_setting("crm.assign_cursors", cursors)
    db.session.flush()
    for lead_id, user_id in assigned.items():
        lead = next(lead for lead in leads if lead.id == lead_id)
        inbox.upsert("crm", f"lead:{lead_id}:assigned", user_id, "task", _("New lead: %(name)s", name=lead.name),
                     url=_record_url("leads", lead_id), subject_type="crm.lead", subject_id=lead_id)
        audit.record("assign", resource=LEAD.key, record_id=lead_id, summary=lead.name,
                     changes={"owner_id": [None, user_id]}, actor=actor, actor_name=None if actor else "system")
    return assigned


def convert_lead(user, lead_id: int, opportunity: dict | None = None) -> dict:
    """Turn a lead into a customer, its primary contact and (when given) an opportunity, in one transaction.

    ``opportunity`` holds at least ``name`` (and ``amount``, ``stage``...); its field errors come back
    under ``fields["opportunity"]``. Returns the new ids.
    Everything is created through the resources, so scopes, validation and the audit apply.
    """
    from plugins.crm.resources import CONTACT, CUSTOMER, LEAD, OPPORTUNITY

    require(user, "crm.lead.convert")
    lead = records.get(LEAD, user, lead_id, action="update", lock=True)
    if lead.status in ("converted", "invalid"):
        raise BusinessRuleError(_("Only a new or assigned lead can be converted."))
    nested = db.session.begin_nested()
    try:
        customer = records.create(CUSTOMER, user, {"name": lead.company or lead.name, "province": lead.province,
                                                   "source": lead.source})
        errors = duplicate_errors(customer.name, None, exclude_id=customer.id)
        if errors:
            raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
        contact = records.create(CONTACT, user, {"name": lead.name, "mobile": lead.mobile, "email": lead.email,
                                                 "is_primary": True, "customer_id": customer.id})
        opp = None
        if opportunity:
            try:
                opp = records.create(OPPORTUNITY, user, {**opportunity, "customer_id": customer.id})
            except ValidationError as exc:  # its fields are the opportunity's, not the customer's
                raise ValidationError(exc.message, fields={"opportunity": exc.fields}) from exc
        before = records.snapshot(LEAD, lead)
        lead.status, lead.customer_id = "converted", customer.id
        db.session.flush()
        nested.commit()
    except Exception:
        nested.rollback()
        raise
    audit.record("convert", resource=LEAD.key, record_id=lead.id, summary=lead.name,
                 changes=audit.diff(before, records.snapshot(LEAD, lead)), actor=user)
    inbox.close("crm", f"lead:{lead.id}:assigned", by=user)
    return {"customer_id": customer.id, "contact_id": contact.id, "opportunity_id": opp.id if opp else None}


# Public pool --------------------------------------------------------------------------------------


def _last_activity():
    return func.coalesce(Customer.last_followup_at, Customer.claimed_at, Customer.created_at)


def recycle_pool(now: datetime | None = None) -> dict:
    """Return idle customers to the public pool and warn owners of those about to go.

    A customer of level L with no follow-up (or claim) for ``POOL_DAYS[L]`` days loses its owner
    (and department): it is in the pool. One whose deadline is within ``POOL_WARN_DAYS`` gets one
    reminder in its owner's inbox. Returns ``{"recycled": n, "warned": m}``.
    """
    from plugins.crm.resources import CUSTOMER

    now = now or clock.now()
    warn_days = int(settings.get("POOL_WARN_DAYS"))
    recycled = warned = 0
    for level, days in sorted(dict(settings.get("POOL_DAYS")).items()):
        base = (Customer.level == level, Customer.owner_id.is_not(None), Customer.status == "active")
        idle = db.session.scalars(select(Customer).where(*base, _last_activity() < now - timedelta(days=int(days)))
                                  .with_for_update()).all()
        for customer in idle:
            inbox.close("crm", f"customer:{customer.id}:pool_warning", status="cancelled")
            audit.record("recycle", resource=CUSTOMER.key, record_id=customer.id, summary=customer.name,
                         changes={"owner_id": [customer.owner_id, None]}, actor_name="system")
            customer.owner_id = customer.department_id = None
            customer.pool_warned_at = None
            recycled += 1
        soon = db.session.scalars(select(Customer).where(
            *base, Customer.pool_warned_at.is_(None),
            _last_activity() < now - timedelta(days=int(days) - warn_days))).all()
        for customer in soon:
            due = _as_aware(db.session.scalar(select(_last_activity()).where(Customer.id == customer.id))) \
                + timedelta(days=int(days))
            inbox.upsert("crm", f"customer:{customer.id}:pool_warning", customer.owner_id, "reminder",
                         _("%(name)s returns to the public pool unless followed up", name=customer.name),
                         url=_record_url("customers", customer.id), subject_type="crm.customer",
                         subject_id=customer.id, due_at=due, reopen=True)
            customer.pool_warned_at = now
            warned += 1
    db.session.flush()
    return {"recycled": recycled, "warned": warned}


def _as_aware(value: datetime) -> datetime:
    from datetime import UTC

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def pool_query():
    """The customers in the public pool (no owner), newest first."""
    return select(Customer).where(Customer.owner_id.is_(None), Customer.status == "active").order_by(Customer.id.desc())


def claim(user, customer_id: int) -> Customer:
    """Take a pool customer. Refused: one another rep owns (撞单), over the daily or total limit."""
    from plugins.crm.resources import CUSTOMER

    require(user, "crm.customer.claim")
    customer = db.session.scalar(select(Customer).where(Customer.id == int(customer_id)).with_for_update())
    if customer is None or customer.status != "active":
        raise NotFound(_("Not found."))
    if customer.owner_id == user.id:
        raise BusinessRuleError(_("This customer is already yours."))
    if customer.owner_id is not None:
        raise Conflict(_("This customer belongs to another rep and cannot be claimed."))
    now = clock.now()
    zone = ZoneInfo(current_app.config["YITI"]["DEFAULT_TIMEZONE"])
    midnight = datetime.combine(now.astimezone(zone).date(), time(), zone)
    today = db.session.scalar(select(func.count()).select_from(Customer).where(
        Customer.owner_id == user.id, Customer.claimed_at >= midnight))
    if today >= int(settings.get("CLAIM_DAILY_LIMIT")):
        raise BusinessRuleError(_("You have reached today's limit of customers claimed from the pool."))
    owned = db.session.scalar(select(func.count()).select_from(Customer).where(
        Customer.owner_id == user.id, Customer.status == "active"))
    if owned >= int(settings.get("CLAIM_TOTAL_LIMIT")):
        raise BusinessRuleError(_("You own as many customers as you may; hand some over before claiming more."))
    changed = db.session.execute(
        update(Customer).where(Customer.id == customer.id, Customer.owner_id.is_(None))
        .values(owner_id=user.id, department_id=user.department_id, claimed_at=now, last_followup_at=now,
                pool_warned_at=None, version=Customer.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        raise Conflict(_("This customer belongs to another rep and cannot be claimed."))
    db.session.refresh(customer)
    audit.record("claim", resource=CUSTOMER.key, record_id=customer.id, summary=customer.name,
                 changes={"owner_id": [None, user.id]}, actor=user)
    return customer


# Hand-over ----------------------------------------------------------------------------------------


def hand_over(actor, from_user_id: int, to_user_id: int) -> dict:
    """Move a departing rep's customers (with their contacts), open opportunities, open leads and open
    CRM to-dos to another active user, in one audited action. Returns the counts moved."""
    from core.inbox.models import Todo
    from core.org.models import User

    if require(actor, "crm.customer.transfer") != "all":  # moving someone's whole book is an all-scope act
        raise Forbidden(_("You do not have permission to do this."))
    source, target = db.session.get(User, int(from_user_id)), db.session.get(User, int(to_user_id))
    if source is None or target is None or source.id == target.id:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"to_user_id": [_("Choose another, existing user.")]})
    if not target.active:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"to_user_id": [_("This user is inactive.")]})
    values = {"owner_id": target.id, "department_id": target.department_id, "updated_at": clock.now()}
    customer_ids = list(db.session.scalars(select(Customer.id).where(Customer.owner_id == source.id)))
    moved = {"customers": len(customer_ids)}
    plan = (
        ("customers", Customer, Customer.owner_id == source.id),
        ("contacts", Contact, Contact.owner_id == source.id),
        ("opportunities", Opportunity, Opportunity.owner_id == source.id, Opportunity.stage.not_in(CLOSED_STAGES)),
        ("leads", Lead, Lead.owner_id == source.id, Lead.status.in_(("new", "assigned"))),
        ("tickets", Ticket, Ticket.owner_id == source.id, Ticket.status.in_(("open", "in_progress"))),
    )
    for name, model, *where in plan:
        moved[name] = db.session.execute(update(model).where(*where).values(**values, version=model.version + 1)
                                         .execution_options(synchronize_session=False)).rowcount
    todos = db.session.scalars(select(Todo).where(Todo.plugin == "crm", Todo.assignee_id == source.id,
                                                  Todo.status == "open")).all()
    for todo in todos:
        inbox.upsert("crm", todo.source_key, target.id, todo.kind, todo.title, url=todo.url,
                     subject_type=todo.subject_type, subject_id=todo.subject_id, due_at=todo.due_at)
        inbox.close("crm", todo.source_key, by=actor, assignee=source.id, status="cancelled")
    moved["todos"] = len(todos)
    db.session.expire_all()
    audit.record("hand_over", resource="crm.customer", summary=f"{source.username} → {target.username}",
                 changes={"owner_id": [source.id, target.id], "moved": [None, moved],
                          "customer_ids": [customer_ids, None]}, actor=actor)
    return moved
