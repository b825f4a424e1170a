"""The roles every installation starts with. Their permission grants come from role templates."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core.extensions import db
from core.org.models import Role

DEFAULT_ROLES = (
    ("admin", _l("System administrator")),
    ("gm", _l("General manager")),
    ("sales_manager", _l("Sales manager")),
    ("sales_rep", _l("Sales representative")),
    ("buyer", _l("Purchasing")),
    ("hr", _l("Human resources")),
    ("finance", _l("Finance")),
    ("legal", _l("Legal")),
    ("employee", _l("Employee")),
)
def ensure_default_roles() -> list[Role]:
    """Create the built-in roles that are missing (idempotent); return all of them."""
    existing = {role.key: role for role in db.session.scalars(select(Role))}
    for key, _label in DEFAULT_ROLES:
        if key not in existing:
            existing[key] = Role(key=key, name=_ZH_NAMES[key], builtin=True)
            db.session.add(existing[key])
    db.session.flush()
    return [existing[key] for key, _label in DEFAULT_ROLES]


# Stored names (what SQL reports and exports show) are Chinese: most installations are.
_ZH_NAMES = {
    "admin": "系统管理员", "gm": "总经理", "sales_manager": "销售经理", "sales_rep": "销售代表",
    "buyer": "采购", "hr": "人事", "finance": "财务", "legal": "法务", "employee": "普通员工",
}
