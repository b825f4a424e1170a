"""The demo company ``yiti demo`` creates, then hands to every plugin's ``demo_data`` hook."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from core.extensions import db
from core.org import services
from core.org.models import Department
from core.permissions.services import apply_role_templates
from core.plugins import DemoCompany

DEMO_PASSWORD = "Yiti-Demo-2026"

# (code, name, parent code)
DEPARTMENTS = (
    ("company", "一体示例科技有限公司", None),
    ("gmo", "总经办", "company"),
    ("sales", "销售部", "company"),
    ("sales-east", "华东区", "sales"),
    ("sales-south", "华南区", "sales"),
    ("purchasing", "采购部", "company"),
    ("hr", "人事部", "company"),
    ("finance", "财务部", "company"),
    ("legal", "法务部", "company"),
)

# (username, display name, department code, manager, roles, heads department)
USERS = (
    ("admin", "系统管理员", "gmo", None, ["admin"], None),
    ("gm", "王总", "gmo", None, ["gm", "employee"], "gmo"),
    ("salesmgr", "李经理", "sales", "gm", ["sales_manager", "employee"], "sales"),
    ("sales1", "张伟", "sales-east", "salesmgr", ["sales_rep", "employee"], "sales-east"),
    ("sales2", "陈静", "sales-south", "salesmgr", ["sales_rep", "employee"], "sales-south"),
    ("buyer1", "刘洋", "purchasing", "gm", ["buyer", "employee"], "purchasing"),
    ("hr1", "赵敏", "hr", "gm", ["hr", "employee"], "hr"),
    ("finance1", "孙丽", "finance", "gm", ["finance", "employee"], "finance"),
    ("legal1", "周强", "legal", "gm", ["legal", "employee"], "legal"),
)


def create_demo_company(password: str | None = None) -> DemoCompany:
    """Create (or complete) the demo company; running it again changes nothing that exists."""
    password = password or DEMO_PASSWORD
    apply_role_templates()
    company = DemoCompany(password=password, records=current_app.config["YITI"]["DEMO_RECORDS"])
    for code, name, parent_code in DEPARTMENTS:
        department = db.session.scalar(select(Department).where(Department.code == code))
        if department is None:
            parent = company.departments.get(parent_code)
            department = services.create_department(None, {"name": name, "code": code,
                                                           "parent_id": parent.id if parent else None})
        company.departments[code] = department
    for index, (username, name, dept, manager, roles, heads) in enumerate(USERS):
        user = services.find_user(username)
        if user is None:
            user = services.create_user(None, {
                "username": username,
                "display_name": name,
                "email": f"{username}@example.com",
                "mobile": f"1380013{index:04d}",
                "department_id": company.departments[dept].id,
                "manager_id": company.users[manager].id if manager else None,
                "roles": roles,
                "password": password,
            })
        company.users[username] = user
        if heads and company.departments[heads].head_id is None:
            company.departments[heads].head_id = user.id
    db.session.flush()
    current_app.extensions["plugins"].hook.demo_data(company=company)
    return company
