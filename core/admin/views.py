"""Admin pages: users, the org tree, roles and plugins."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from core.auth.access import admin_required
from core.errors import BusinessRuleError, ValidationError
from core.extensions import db
from core.org import services
from core.org.models import Department, Role, User, user_roles
from core.org.schemas import INT32, DepartmentOut, UserOut
from core.plugins_admin import plugin_rows, set_enabled
from core.web.forms import form_data

bp = Blueprint("admin", __name__, url_prefix="/admin")

USER_FIELDS = ("username", "display_name", "email", "mobile", "department_id", "manager_id",
               "language", "timezone", "active", "roles", "password", "version")
DEPARTMENT_FIELDS = ("name", "code", "parent_id", "head_id", "sort", "version")


# Users ------------------------------------------------------------------------------------------


@bp.get("/users")
@admin_required
def users():
    query = select(User).order_by(User.username)
    search = request.args.get("q", "").replace("\x00", "").strip()
    if search:
        # Escaped: a search for "_" or "%" means those characters, not "any character".
        term = search.lower()
        query = query.where(or_(func.lower(User.username).contains(term, autoescape=True),
                                func.lower(User.display_name).contains(term, autoescape=True)))
    department_id = request.args.get("department_id", type=int)
    if department_id and not 0 < department_id <= INT32:
        department_id = None
    if department_id:
        query = query.where(User.department_id == department_id)
    # Clamped: a page number too large for the database's OFFSET is simply past the end.
    number = min(max(request.args.get("page", 1, type=int), 1), 1_000_000)
    page = db.paginate(query, page=number, per_page=current_app.config["YITI"]["PAGE_SIZE"], error_out=False)
    template = "admin/_user_rows.html" if request.headers.get("HX-Request") else "admin/users.html"
    return render_template(template, page=page, search=search, department_id=department_id,
                           department_options=_department_options())


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def user_new():
    return _user_form(None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def user_edit(user_id: int):
    return _user_form(_get_or_404(User, user_id))


def _get_or_404(model, object_id: int):
    """The row with this id, or a 404 page (the route's <int:> holds only ids a column can: core.urls)."""
    return db.get_or_404(model, object_id)


def _user_form(user: User | None):
    errors = {}
    if request.method == "POST":
        data = form_data(request.form, USER_FIELDS, lists=("roles",), booleans=("active",))
        if not data.get("password"):
            data.pop("password", None)
        try:
            if user is None:
                user = services.create_user(current_user, data)
            else:
                services.update_user(current_user, user.id, data)
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("admin.users"))
        except (ValidationError, BusinessRuleError) as exc:
            db.session.rollback()
            errors = exc.fields or {"_form": [exc.message]}
    if errors:
        values = {**request.form.to_dict(), "roles": request.form.getlist("roles"), "active": "active" in request.form}
    elif user is not None:
        values = {**UserOut().dump(user), "roles": sorted(user.role_keys)}
    else:
        values = {"timezone": current_app.config["YITI"]["DEFAULT_TIMEZONE"], "active": True, "roles": []}
    roles = db.session.scalars(select(Role).order_by(Role.id)).all()
    managers = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.username)).all()
    return render_template(
        "admin/user_form.html", user=user, errors=errors, roles=roles, values=values,
        department_options=_department_options(),
        manager_options=[(m.id, f"{m.display_name} ({m.username})") for m in managers if user is None or m.id != user.id],
    )


def _department_options() -> list[tuple[int, str]]:
    """Departments for a <select>, indented to show the tree."""
    return [(d.id, "\u3000" * depth + d.name) for d, depth in services.department_tree()]


# Departments ------------------------------------------------------------------------------------


@bp.get("/departments")
@admin_required
def departments():
    tree = services.department_tree()
    counts = dict(db.session.execute(select(User.department_id, func.count()).group_by(User.department_id)).all())
    return render_template("admin/departments.html", tree=tree, counts=counts)


@bp.route("/departments/new", methods=["GET", "POST"])
@admin_required
def department_new():
    return _department_form(None)


@bp.route("/departments/<int:department_id>", methods=["GET", "POST"])
@admin_required
def department_edit(department_id: int):
    return _department_form(_get_or_404(Department, department_id))


def _department_form(department: Department | None):
    errors = {}
    if request.method == "POST":
        data = form_data(request.form, DEPARTMENT_FIELDS)
        if data.get("sort") is None:
            data.pop("sort", None)
        try:
            if department is None:
                services.create_department(current_user, data)
            else:
                services.update_department(current_user, department.id, data)
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("admin.departments"))
        except (ValidationError, BusinessRuleError) as exc:
            db.session.rollback()
            errors = exc.fields or {"_form": [exc.message]}
    if errors:
        values = request.form.to_dict()
    elif department is not None:
        values = DepartmentOut().dump(department)
    else:
        values = {"parent_id": request.args.get("parent_id", type=int), "sort": 0}
    users = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.username)).all()
    own_subtree = department.path if department else None
    parents = [(i, label) for i, label in _department_options()
               if own_subtree is None or not db.session.get(Department, i).path.startswith(own_subtree)]
    return render_template("admin/department_form.html", department=department, errors=errors, values=values,
                           parent_options=parents, head_options=[(u.id, f"{u.display_name} ({u.username})") for u in users])


@bp.post("/departments/<int:department_id>/delete")
@admin_required
def department_delete(department_id: int):
    try:
        services.delete_department(current_user, department_id)
        db.session.commit()
        flash(_("Deleted."), "success")
    except BusinessRuleError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    return redirect(url_for("admin.departments"))


# Roles and plugins ------------------------------------------------------------------------------


@bp.get("/roles")
@admin_required
def roles():
    rows = db.session.execute(
        select(Role, func.count(user_roles.c.user_id))
        .outerjoin(user_roles, user_roles.c.role_id == Role.id)
        .group_by(Role.id)
        .order_by(Role.id)
    ).all()
    return render_template("admin/roles.html", rows=rows)


@bp.get("/plugins")
@admin_required
def plugins():
    return render_template("admin/plugins.html", **plugin_rows())


@bp.post("/plugins/<name>")
@admin_required
def plugin_toggle(name: str):
    try:
        set_enabled(name, request.form.get("enabled") == "1", by=current_user)
        db.session.commit()
        flash(_("Saved. The change takes effect when the application restarts."), "warning")
    except BusinessRuleError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    return redirect(url_for("admin.plugins"))
from core.admin import access  # noqa: E402,F401  (its routes join this blueprint)
from core.admin import outbox  # noqa: E402,F401  (its routes join this blueprint)
from core.admin import backups  # noqa: E402,F401  (its routes join this blueprint)
