"""Business rules for departments, users and roles.

Plain functions taking the acting user; they validate, change the session and flush, and leave
the commit to the caller (a request, a CLI command), so several changes can share a transaction.
"""
from __future__ import annotations

from functools import cache

from flask_babel import gettext as _
from sqlalchemy import func, literal, select, update

from core import audit, clock
from core.auth.passwords import check_policy, hash_password, verify_password
from core.errors import BusinessRuleError, Forbidden, NotFound, ValidationError
from core.extensions import db
from core.org.models import Department, Role, User
from core.org.roles import ensure_default_roles
from core.org.schemas import INT32, DepartmentIn, DepartmentOut, PasswordChangeIn, ProfileIn, UserIn, UserOut
from core.schemas import load

__all__ = [
    "display_names",
    "authenticate", "change_own_password", "create_department", "create_user", "delete_department",
    "department_tree", "ensure_default_roles", "find_user", "set_password", "update_department",
    "update_profile", "update_user",
]


def _require_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_admin:
        raise Forbidden(_("Only administrators can change the organisation."))


def _lookup(model, object_id: int):
    """The row with this id, or ``None``; ids no INTEGER column can hold never reach the database."""
    return db.session.get(model, object_id) if 0 < object_id <= INT32 else None


def _get(model, object_id):
    obj = _lookup(model, object_id)
    if obj is None:
        raise NotFound(_("Not found."))
    return obj


# Departments ------------------------------------------------------------------------------------


def create_department(actor: User | None, data: dict) -> Department:
    """Create a department under ``parent_id`` (or at the top)."""
    _require_admin(actor)
    clean = load(DepartmentIn(), data)
    clean.pop("version", None)
    parent = _reference(Department, clean.get("parent_id"), "parent_id")
    _reference(User, clean.get("head_id"), "head_id")
    _unique_code(clean.get("code"), None)
    department = Department(**clean)
    db.session.add(department)
    db.session.flush()
    department.path = f"{parent.path if parent else '/'}{department.id}/"
    db.session.flush()
    _audit("create", "core.department", department, {}, _department_snapshot(department), actor)
    return department


def update_department(actor: User | None, department_id: int, data: dict) -> Department:
    """Rename, re-head or move a department; moving rewrites the whole subtree's paths in one UPDATE."""
    _require_admin(actor)
    department = _get(Department, department_id)
    clean = load(DepartmentIn(), data, partial=True)
    department.check_version(clean.pop("version", None))
    before = _department_snapshot(department)
    if "head_id" in clean:
        _reference(User, clean["head_id"], "head_id")
    if "code" in clean:
        _unique_code(clean["code"], department.id)
    if "parent_id" in clean and clean["parent_id"] != department.parent_id:
        _move(department, _reference(Department, clean["parent_id"], "parent_id"))
    for key, value in clean.items():
        setattr(department, key, value)
    db.session.flush()
    _audit("update", "core.department", department, before, _department_snapshot(department), actor)
    return department


def _move(department: Department, parent: Department | None) -> None:
    if parent is not None and parent.path.startswith(department.path):
        raise ValidationError(
            _("Please correct the highlighted fields."),
            fields={"parent_id": [_("A department cannot be moved under itself.")]},
        )
    old = department.path
    new = f"{parent.path if parent else '/'}{department.id}/"
    db.session.flush()
    db.session.execute(
        update(Department)
        .where(Department.path.startswith(old, autoescape=True))
        .values(path=literal(new) + func.substr(Department.path, len(old) + 1))
        .execution_options(synchronize_session=False)
    )
    db.session.expire_all()


def delete_department(actor: User | None, department_id: int) -> None:
    """Delete an empty department; one with sub-departments or members is refused."""
    _require_admin(actor)
    department = _get(Department, department_id)
    has_children = db.session.scalar(select(func.count()).where(Department.parent_id == department.id))
    has_members = db.session.scalar(select(func.count()).where(User.department_id == department.id))
    if has_children or has_members:
        raise BusinessRuleError(_("Move its sub-departments and members elsewhere before deleting this department."))
    _audit("delete", "core.department", department, _department_snapshot(department), {}, actor)
    db.session.delete(department)
    db.session.flush()


def department_tree() -> list[tuple[Department, int]]:
    """Every department with its depth, parents before children, siblings by (sort, name)."""
    departments = db.session.scalars(select(Department)).all()
    by_parent: dict[int | None, list[Department]] = {}
    for department in departments:
        by_parent.setdefault(department.parent_id, []).append(department)
    ordered: list[tuple[Department, int]] = []

    def walk(parent_id, depth):
        for child in sorted(by_parent.get(parent_id, []), key=lambda d: (d.sort, d.name)):
            ordered.append((child, depth))
            walk(child.id, depth + 1)

    walk(None, 0)
    return ordered


def _unique_code(code: str | None, own_id: int | None) -> None:
    if not code:
        return
    clash = db.session.scalar(select(Department.id).where(Department.code == code))
    if clash is not None and clash != own_id:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"code": [_("This code is already used.")]})


def _reference(model, object_id: int | None, field: str):
    if object_id is None:
        return None
    obj = _lookup(model, object_id)
    if obj is None:
        raise ValidationError(_("Please correct the highlighted fields."), fields={field: [_("Does not exist.")]})
    return obj


# Users ------------------------------------------------------------------------------------------


def display_names(user_ids) -> dict[int, str]:
    """``{id: display name}`` of the users ``user_ids`` names (``None`` and 0 left out), in one query."""
    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


def find_user(username: str) -> User | None:
    """The user with this username, ignoring case."""
    return db.session.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None``. Unknown names cost as much as known ones."""
    user = find_user(username) if username else None
    if user is None:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password) or not user.active:
        return None
    user.last_login_at = clock.now()
    return user


@cache
def _dummy_hash() -> str:
    return hash_password("timing-equaliser-not-a-password")


def create_user(actor: User | None, data: dict) -> User:
    """Create a user; ``password`` is optional (without one the user cannot log in yet)."""
    _require_admin(actor)
    clean = load(UserIn(), data)
    clean.pop("version", None)
    password = clean.pop("password", None)
    role_keys = clean.pop("roles", [])
    if find_user(clean["username"]) is not None:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"username": [_("This username is taken.")]})
    _check_references(clean, None)
    user = User(**clean)
    user.roles = _roles(role_keys)
    if password:
        check_policy(password, clean["username"])
        user.password_hash = hash_password(password)
    db.session.add(user)
    db.session.flush()
    _audit("create", "core.user", user, {}, _user_snapshot(user), actor)
    return user


def update_user(actor: User | None, user_id: int, data: dict) -> User:
    """Change a user's fields (partial); a new ``password`` here is an admin reset."""
    _require_admin(actor)
    user = _get(User, user_id)
    clean = load(UserIn(), data, partial=True)
    user.check_version(clean.pop("version", None))
    before = _user_snapshot(user)
    if "username" in clean:
        other = find_user(clean["username"])
        if other is not None and other.id != user.id:
            raise ValidationError(_("Please correct the highlighted fields."), fields={"username": [_("This username is taken.")]})
    _check_references(clean, user.id)
    if actor is not None and actor.id == user.id and clean.get("active") is False:
        raise BusinessRuleError(_("You cannot deactivate your own account."))
    if "roles" in clean:
        keys = set(clean.pop("roles"))
        if actor is not None and actor.id == user.id and "admin" not in keys:
            raise BusinessRuleError(_("You cannot remove your own administrator role."))
        user.roles = _roles(keys)
    password = clean.pop("password", None)
    for key, value in clean.items():
        setattr(user, key, value)
    if password:
        set_password(user, password)
    if clean.get("active") is False:
        user.session_epoch += 1  # a deactivated user is logged out everywhere
    db.session.flush()
    after = _user_snapshot(user)
    if password:
        before["password"], after["password"] = "********", "******** (reset)"
    _audit("update", "core.user", user, before, after, actor)
    return user


def _check_references(clean: dict, own_id: int | None) -> None:
    _reference(Department, clean.get("department_id"), "department_id")
    manager = _reference(User, clean.get("manager_id"), "manager_id")
    if manager is not None and own_id is not None:
        # Walk up the manager chain: a user may not (indirectly) manage themselves.
        seen, current = set(), manager
        while current is not None and current.id not in seen:
            if current.id == own_id:
                raise ValidationError(
                    _("Please correct the highlighted fields."),
                    fields={"manager_id": [_("A user cannot report to themselves.")]},
                )
            seen.add(current.id)
            current = current.manager


def _roles(keys) -> list[Role]:
    keys = sorted(set(keys))
    if not keys:
        return []
    roles = db.session.scalars(select(Role).where(Role.key.in_(keys))).all()
    missing = sorted(set(keys) - {role.key for role in roles})
    if missing:
        raise ValidationError(
            _("Please correct the highlighted fields."),
            fields={"roles": [_("Unknown role: %(keys)s", keys=", ".join(missing))]},
        )
    return list(roles)


def set_password(user: User, password: str) -> None:
    """Set a new password (policy checked) and end the user's other sessions."""
    check_policy(password, user.username)
    user.password_hash = hash_password(password)
    user.session_epoch += 1


def change_own_password(user: User, data: dict) -> None:
    """A user changes their own password: the current one is required, the new one typed twice."""
    clean = load(PasswordChangeIn(), data)
    if not verify_password(user.password_hash, clean["current_password"]):
        raise ValidationError(
            _("Please correct the highlighted fields."),
            fields={"current_password": [_("The current password is wrong.")]},
        )
    if clean["new_password"] != clean["confirm_password"]:
        raise ValidationError(
            _("Please correct the highlighted fields."),
            fields={"confirm_password": [_("The two passwords do not match.")]},
        )
    check_policy(clean["new_password"], user.username, field="new_password")
    set_password(user, clean["new_password"])
    db.session.flush()
    audit.record("password_change", resource="core.user", record_id=user.id, summary=user.username, actor=user)


def update_profile(user: User, data: dict) -> User:
    """A user edits their own name, contact details, language and time zone."""
    clean = load(ProfileIn(), data)
    user.check_version(clean.pop("version", None))
    before = _user_snapshot(user)
    for key, value in clean.items():
        setattr(user, key, value)
    db.session.flush()
    _audit("update", "core.user", user, before, _user_snapshot(user), user)
    return user


# Audit ------------------------------------------------------------------------------------------

_SYSTEM = ("version", "updated_at", "last_login_at", "path")


def _department_snapshot(department: Department) -> dict:
    return {k: v for k, v in DepartmentOut().dump(department).items() if k not in _SYSTEM}


def _user_snapshot(user: User) -> dict:
    return {k: v for k, v in UserOut().dump(user).items() if k not in _SYSTEM}


def _audit(action: str, resource: str, obj, before: dict, after: dict, actor) -> None:
    changes = audit.diff(before, after)
    if changes or action != "update":
        label = getattr(obj, "username", None) or getattr(obj, "name", "")
        audit.record(action, resource=resource, record_id=obj.id, summary=label, changes=changes, actor=actor)
