"""The core's own hook implementations: it fills the menu and dashboard the same way plugins do."""
from __future__ import annotations

from flask import render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from core.extensions import db
from core.plugins import DashboardWidget, EventType, MenuItem, PeriodicJob, Permission, RoleTemplate, hookimpl


@hookimpl
def register_permissions():
    return [
        Permission("core.user.manage", _l("Manage users")),
        Permission("core.department.manage", _l("Manage departments")),
        Permission("core.role.manage", _l("Manage roles")),
        Permission("core.plugin.manage", _l("Enable and disable plugins")),
    ]


@hookimpl
def register_roles():
    # The system administrator may do everything without grants; the other built-in roles get
    # their grants from the plugins that define what there is to grant.
    from core.org.roles import DEFAULT_ROLES

    return [RoleTemplate(key) for key, _label in DEFAULT_ROLES]


@hookimpl
def register_menu(user):
    from core import inbox

    items = [MenuItem("inbox", _l("Inbox"), "inbox.index", order=-1, badge=lambda: inbox.open_count(user)),
             MenuItem("home", _l("Home"), "web.home", order=0)]
    if user.is_admin:
        items += [
            MenuItem("admin.users", _l("Users"), "admin.users", order=10, section="admin"),
            MenuItem("admin.departments", _l("Organisation"), "admin.departments", order=20, section="admin"),
            MenuItem("admin.roles", _l("Roles"), "admin.roles", order=30, section="admin"),
            MenuItem("admin.audit", _l("Audit log"), "admin.audit_log", order=80, section="admin"),
            MenuItem("admin.notifications", _l("Notifications"), "notify.admin_index", order=84, section="admin"),
            MenuItem("admin.outbox", _l("Outbox"), "admin.outbox", order=85, section="admin"),
            MenuItem("admin.webhooks", _l("Webhooks"), "webhooks.index", order=86, section="admin"),
            MenuItem("admin.backups", _l("Backups"), "admin.backups", order=87, section="admin"),
            MenuItem("admin.plugins", _l("Plugins"), "admin.plugins", order=90, section="admin"),
        ]
    return items


@hookimpl
def register_event_types():
    return [EventType("core.todo_assigned", _l("Inbox item assigned"))]


@hookimpl
def register_jobs():
    from datetime import timedelta

    from flask import current_app

    from core import jobs

    from core import backup_runs

    every = timedelta(seconds=current_app.config["YITI"]["OUTBOX_SWEEP_SECONDS"])
    from core import webhooks

    from core.imports import service as imports

    found = [PeriodicJob("core.sweep_outbox", jobs.sweep_outbox, every=every),
             PeriodicJob("core.stale_imports", imports.fail_stale, every=timedelta(minutes=5)),
             PeriodicJob("core.sweep_webhooks", webhooks.sweep, every=every),
             PeriodicJob("core.backup_queue", backup_runs.process_queue, every=timedelta(minutes=1))]
    from core.notify import sweep as notify_sweep

    found.append(PeriodicJob("core.sweep_notifications", notify_sweep.sweep, every=every))
    schedule = backup_runs.schedule_cron(current_app.config["YITI"]["BACKUP_SCHEDULE"])
    if schedule:
        found.append(PeriodicJob("core.backup", backup_runs.scheduled_backup, every=schedule))
    return found


@hookimpl
def register_deliveries():
    from core import webhooks

    return [webhooks.delivery()]


@hookimpl
def register_dashboard_widgets(user):
    widgets = [DashboardWidget("core.welcome", _l("Welcome"), lambda: render_template("widgets/welcome.html"), order=0)]
    if user.is_admin:
        widgets.append(DashboardWidget("core.org", _l("People by department"), _org_chart, order=10))
    return widgets


def _org_chart() -> str:
    from core.org.models import Department, User

    rows = db.session.execute(
        select(Department.name, func.count(User.id))
        .join(User, User.department_id == Department.id)
        .where(User.active.is_(True))
        .group_by(Department.id, Department.name)
        .order_by(func.count(User.id).desc(), Department.name)
        .limit(12)
    ).all()
    chart = {"labels": [name for name, _count in rows], "values": [count for _name, count in rows]}
    return render_template("widgets/org_chart.html", chart=chart)
