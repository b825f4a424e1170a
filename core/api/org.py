"""``/api/v1/core/users``, ``/departments`` and ``/roles``."""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import false, func, or_, select

from core.api import bp
from core.api.helpers import envelope, json_body, page_args, with_if_match
from core.errors import NotFound
from core.extensions import db
from core.org import services
from core.org.models import Department, Role, User
from core.org.schemas import INT32, DepartmentOut, RoleOut, UserOut

user_out, users_out = UserOut(), UserOut(many=True)
department_out, departments_out = DepartmentOut(), DepartmentOut(many=True)


def _paged(query, schema):
    page, per_page = page_args()
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    offset = (page - 1) * per_page
    # A page past the end is empty; asking the database for it could overflow its OFFSET.
    rows = db.session.scalars(query.limit(per_page).offset(offset)).all() if offset < total else []
    return jsonify(envelope(schema.dump(rows), total, page, per_page))


def _get_or_404(model, object_id):
    obj = db.session.get(model, object_id) if object_id <= INT32 else None
    if obj is None:
        raise NotFound(_("Not found."))
    return obj


def _id_filter(column, value: int):
    """``column == value``, or nothing at all for an id no INTEGER column can hold."""
    return column == value if -INT32 <= value <= INT32 else false()


def _search_term(name: str) -> str:
    """A search term from the query string; NUL characters (which no stored text holds) are dropped."""
    return request.args.get(name, "").replace("\x00", "").strip().lower()


@bp.get("/core/users")
@login_required
def list_users():
    query = select(User).order_by(User.id)
    if q := _search_term("q"):
        query = query.where(or_(func.lower(User.username).contains(q, autoescape=True),
                                func.lower(User.display_name).contains(q, autoescape=True)))
    if (department_id := request.args.get("department_id", type=int)) is not None:
        query = query.where(_id_filter(User.department_id, department_id))
    if (active := request.args.get("active")) in ("true", "false"):
        query = query.where(User.active.is_(active == "true"))
    return _paged(query, users_out)


@bp.get("/core/users/<int:user_id>")
@login_required
def get_user(user_id: int):
    return jsonify(user_out.dump(_get_or_404(User, user_id)))


@bp.post("/core/users")
@login_required
def create_user():
    user = services.create_user(current_user, json_body())
    db.session.commit()
    return jsonify(user_out.dump(user)), 201


@bp.patch("/core/users/<int:user_id>")
@login_required
def update_user(user_id: int):
    user = services.update_user(current_user, user_id, with_if_match(json_body()))
    db.session.commit()
    return jsonify(user_out.dump(user))


@bp.get("/core/departments")
@login_required
def list_departments():
    query = select(Department).order_by(Department.path)
    if (parent_id := request.args.get("parent_id", type=int)) is not None:
        query = query.where(_id_filter(Department.parent_id, parent_id))
    return _paged(query, departments_out)


@bp.get("/core/departments/<int:department_id>")
@login_required
def get_department(department_id: int):
    return jsonify(department_out.dump(_get_or_404(Department, department_id)))


@bp.post("/core/departments")
@login_required
def create_department():
    department = services.create_department(current_user, json_body())
    db.session.commit()
    return jsonify(department_out.dump(department)), 201


@bp.patch("/core/departments/<int:department_id>")
@login_required
def update_department(department_id: int):
    department = services.update_department(current_user, department_id, with_if_match(json_body()))
    db.session.commit()
    return jsonify(department_out.dump(department))


@bp.delete("/core/departments/<int:department_id>")
@login_required
def delete_department(department_id: int):
    services.delete_department(current_user, department_id)
    db.session.commit()
    return "", 204


@bp.get("/core/roles")
@login_required
def list_roles():
    return _paged(select(Role).order_by(Role.id), RoleOut(many=True))
