"""The CRM objects as Resources: the core builds their API, pages, permissions, audit and export."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from core.plugins import Permission
from core.resources import DetailLink, Resource
from plugins.crm import creditcode, sales, schemas, services
from plugins.crm.models import Contact, Customer, FollowUp, Lead, Opportunity, Order, Ticket


def _customer_example(n: int) -> dict:
    return {"name": f"上海示例科技有限公司{n}号", "credit_code": creditcode.make(900000 + n), "industry": "制造业",
            "province": "上海", "city": "上海", "level": "B", "source": "展会", "tags": ["重点"],
            "address": "浦东新区世纪大道100号"}


CUSTOMER = Resource(
    plugin="crm", name="customer", model=Customer, schema=schemas.CustomerSchema, plural="customers",
    label=_l("Customer"), label_plural=_l("Customers"),
    list_columns=("name", "credit_code", "industry", "province", "city", "level", "status", "owner_id", "updated_at"),
    filters=("level", "status", "industry", "province", "city", "source", "owner_id", "department_id", "updated_at"),
    search_fields=("name", "credit_code"),
    sort_fields=("name", "level", "province", "updated_at", "created_at"),
    natural_key="credit_code",
    example=_customer_example,
    preload=services.preload_credit_codes,
    bulk_insert=True,
    detail_links=(DetailLink(_l("Customer 360"), "crm_insight.customer360_page"),),
    extra_permissions=(
        Permission("crm.customer.claim", _l("Customers: claim from the public pool")),
        Permission("crm.customer.merge", _l("Customers: merge duplicates")),
        Permission("crm.customer.transfer", _l("Customers: hand over a rep's customers")),
    ),
)

CONTACT = Resource(
    plugin="crm", name="contact", model=Contact, schema=schemas.ContactSchema, plural="contacts",
    label=_l("Contact"), label_plural=_l("Contacts"),
    list_columns=("name", "customer_id", "title", "mobile", "email", "is_primary", "owner_id"),
    filters=("customer_id", "is_primary", "owner_id", "department_id", "updated_at"),
    search_fields=("name", "mobile", "email"),
    sort_fields=("name", "updated_at"),
    example=lambda n: {"name": f"王经理{n}", "title": "采购经理", "mobile": f"1380013{n:04d}",
                       "email": f"wang{n}@example.com", "wechat": f"wx_wang{n}"},
    bulk_insert=True,
)

FOLLOWUP = Resource(
    plugin="crm", name="followup", model=FollowUp, schema=schemas.FollowUpSchema, plural="followups",
    label=_l("Follow-up"), label_plural=_l("Follow-ups"), title_field="content",
    list_columns=("happened_at", "kind", "customer_id", "content", "next_at", "owner_id"),
    filters=("customer_id", "kind", "owner_id", "department_id", "happened_at", "next_at"),
    search_fields=("content",),
    sort_fields=("happened_at", "next_at", "updated_at"),
    default_sort="-updated_at",
    example=lambda n: {"content": f"电话沟通报价方案第{n}版", "kind": "call",
                       "happened_at": "2026-03-02T10:00:00+08:00"},
)

LEAD = Resource(
    plugin="crm", name="lead", model=Lead, schema=schemas.LeadSchema, plural="leads",
    label=_l("Lead"), label_plural=_l("Leads"),
    list_columns=("name", "company", "mobile", "source", "province", "status", "owner_id", "updated_at"),
    filters=("status", "source", "province", "owner_id", "department_id", "updated_at"),
    search_fields=("name", "company", "mobile"),
    sort_fields=("name", "status", "updated_at", "created_at"),
    example=lambda n: {"name": f"刘先生{n}", "company": f"杭州线索贸易有限公司{n}", "mobile": f"1391234{n:04d}",
                       "source": "官网表单", "province": "浙江"},
    bulk_insert=True,
    detail_links=(DetailLink(_l("Convert to customer"), "crm_pages.convert_lead", "crm.lead.convert"),),
    extra_permissions=(Permission("crm.lead.assign", _l("Leads: assign")),
                       Permission("crm.lead.convert", _l("Leads: convert to a customer"))),
)

OPPORTUNITY = Resource(
    plugin="crm", name="opportunity", model=Opportunity, schema=schemas.OpportunitySchema, plural="opportunities",
    label=_l("Opportunity"), label_plural=_l("Opportunities"),
    list_columns=("name", "customer_id", "amount", "stage", "probability", "expected_close", "owner_id"),
    filters=("stage", "customer_id", "owner_id", "department_id", "expected_close", "amount", "updated_at"),
    search_fields=("name",),
    sort_fields=("name", "amount", "stage", "expected_close", "updated_at"),
    example=lambda n: {"name": f"年度框架采购项目{n}", "amount": "120000.00", "stage": "initial",
                       "expected_close": "2026-06-30"},
    before_write=sales.opportunity_before_write,
    before_delete=sales.opportunity_before_delete,
)

ORDER = Resource(
    plugin="crm", name="order", model=Order, schema=schemas.OrderSchema, plural="orders",
    label=_l("Sales order"), label_plural=_l("Sales orders"), title_field="number",
    list_columns=("number", "customer_id", "amount", "status", "owner_id", "updated_at"),
    filters=("status", "customer_id", "opportunity_id", "owner_id", "department_id", "updated_at"),
    search_fields=("number",),
    sort_fields=("number", "amount", "status", "updated_at"),
    natural_key="number",
    example=lambda n: {"number": f"SO-EXAMPLE-{n:05d}", "amount": "3000.00",
                       "lines": [{"product": "服务器", "quantity": "2", "price": "1500.00"}]},
    extra_permissions=(Permission("crm.order.invoice", _l("Sales orders: mark the invoice issued")),),
    before_write=sales.order_before_write,
)

TICKET = Resource(
    plugin="crm", name="ticket", model=Ticket, schema=schemas.TicketSchema, plural="tickets",
    label=_l("Service ticket"), label_plural=_l("Service tickets"), title_field="subject",
    list_columns=("subject", "customer_id", "kind", "priority", "status", "sla_due_at", "assignee_id"),
    filters=("kind", "priority", "status", "customer_id", "assignee_id", "owner_id", "department_id", "sla_due_at"),
    search_fields=("subject",),
    sort_fields=("subject", "priority", "status", "sla_due_at", "updated_at"),
    example=lambda n: {"subject": f"设备安装咨询{n}", "kind": "inquiry", "priority": "normal"},
    before_write=sales.ticket_before_write,
)

RESOURCES = (CUSTOMER, CONTACT, FOLLOWUP, LEAD, OPPORTUNITY, ORDER, TICKET)
BY_KEY = {r.key: r for r in RESOURCES}
