"""Hook implementations of the crm plugin: thin, they register things and forward to services."""
from __future__ import annotations

from datetime import timedelta

from flask_babel import lazy_gettext as _l

from core.plugins import EventType, MenuItem, PeriodicJob, RoleTemplate, hookimpl

OBJECTS = ("customer", "contact", "followup", "lead", "opportunity", "order", "ticket")
MASKED_CONTACT = (("crm.contact", "mobile", "masked"), ("crm.contact", "email", "masked"),
                  ("crm.lead", "mobile", "masked"), ("crm.lead", "email", "masked"))


@hookimpl
def register_models():
    from plugins.crm.models import MODELS

    return list(MODELS)


@hookimpl
def register_resources():
    from plugins.crm.resources import RESOURCES

    return list(RESOURCES)


@hookimpl
def register_blueprints(app):
    from plugins.crm.insight import bp as insight_bp
    from plugins.crm.pages import bp as pages_bp
    from plugins.crm.views import api_bp

    return [api_bp, insight_bp, pages_bp]


def _grants(objects, actions, scope) -> dict:
    return {f"crm.{o}.{a}": scope for o in objects for a in actions}


@hookimpl
def register_roles():
    """Default CRM roles. Reps work on their own records; managers see their department tree; the
    general manager reads everything. Finance reads orders (and customers/contacts for invoicing),
    legal reads customers, contacts and opportunities (contract review): both with contacts' and
    leads' mobile numbers and e-mails masked. Other employees see no CRM data."""
    rep = {**_grants(OBJECTS, ("read", "create", "update", "export"), "own"),
           "crm.lead.delete": "own", "crm.followup.delete": "own", "crm.lead.convert": "own",
           "crm.customer.claim": "own"}
    manager = {**rep, **_grants(OBJECTS, ("read", "update", "export"), "department_tree"),
               "crm.lead.assign": "department_tree", "crm.customer.merge": "department_tree",
               "crm.customer.transfer": "all", "crm.lead.convert": "department_tree"}
    return [
        RoleTemplate("sales_rep", grants=rep),
        RoleTemplate("sales_manager", grants=manager),
        RoleTemplate("gm", grants={**_grants(OBJECTS, ("read", "export"), "all"), "crm.customer.transfer": "all"}),
        RoleTemplate("finance", grants={**_grants(("order",), ("read", "export", "invoice"), "all"),
                                        **_grants(("customer", "contact"), ("read",), "all")},
                     field_rules=MASKED_CONTACT),
        RoleTemplate("legal", grants=_grants(("customer", "contact", "opportunity"), ("read",), "all"),
                     field_rules=MASKED_CONTACT),
    ]


@hookimpl
def register_menu(user):
    from core.permissions import can
    from plugins.crm.resources import RESOURCES

    group = _l("CRM")  # one dropdown of the top bar for all of them
    items = [MenuItem(f"crm.{r.plural}", r.label_plural, "records.list_page", order=30 + i,
                      params={"plugin": "crm", "plural": r.plural}, group=group)
             for i, r in enumerate(RESOURCES) if can(user, r.permission("read"))]
    from plugins.crm.insight import readable_reports

    if readable_reports(user):
        items.append(MenuItem("crm.reports", _l("CRM reports"), "crm_insight.reports_page", order=30 + len(RESOURCES),
                              group=group))
    if can(user, "crm.opportunity.read"):
        items.append(MenuItem("crm.kanban", _l("Opportunity board"), "crm_pages.kanban", order=29, group=group))
    return items


@hookimpl
def register_event_types():
    return [EventType("crm.followup_scheduled", _l("Follow-up scheduled"))]


@hookimpl
def on_event(name, payload):
    if name == "crm.followup_scheduled":
        from plugins.crm.services import remind_followup

        remind_followup(payload["followup_id"])


@hookimpl
def register_jobs():
    from plugins.crm.services import recycle_pool

    from plugins.crm.services import assign_leads

    return [PeriodicJob("crm.recycle_pool", lambda: recycle_pool(), every="30 2 * * *"),
            PeriodicJob("crm.assign_leads", lambda: assign_leads(), every=timedelta(minutes=5)),
            PeriodicJob("crm.ticket_sla", _escalate_tickets, every=timedelta(minutes=5))]


def _escalate_tickets():
    from plugins.crm.sales import escalate_overdue_tickets

    escalate_overdue_tickets()


@hookimpl
def approval_decided(request, outcome):
    """The contract approval's outcome moves the opportunity on (or back, with the reason)."""
    from plugins.crm.sales import on_approval_decided

    on_approval_decided(request, outcome)


@hookimpl
def demo_data(company):
    """The contract approval flow (always) and sample CRM records, when the demo asks for them (``DEMO_RECORDS``)."""
    from plugins.crm.demo import create_demo_data
    from plugins.crm.sales import ensure_contract_flow

    ensure_contract_flow()

    if not company.records:
        return

    create_demo_data(company)
