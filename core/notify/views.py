"""Pages and API of notifications: the centre (bell), the user's preferences, the admin page."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import notify
from core.api.helpers import envelope, json_body, page_args
from core.auth.access import admin_required
from core.errors import ValidationError
from core.web.views import local_path
from core.extensions import db
from core.notify import admin, mail, robots
from core.notify.models import CHANNELS, KINDS, Robot
from core.notify.robots import SendError
from core.web.forms import form_data

bp = Blueprint("notify", __name__)


@bp.app_context_processor
def _bell():
    """``notification_count()`` for the header's bell: one indexed count, only when a page asks."""

    def notification_count() -> int:
        return notify.unread_count(current_user) if current_user.is_authenticated else 0

    return {"notification_count": notification_count}


# The centre -------------------------------------------------------------------------------------


@bp.get("/notifications")
@login_required
def index():
    unread = request.args.get("unread") == "1"
    page = db.paginate(notify.items_query(current_user, unread=unread),
                       per_page=current_app.config["YITI"]["PAGE_SIZE"], error_out=False, max_per_page=100)
    return render_template("notify/index.html", page=page, unread=unread, kinds=notify.KIND_LABELS,
                           unread_total=notify.unread_count(current_user))


@bp.get("/notifications/<int:notification_id>/open")
@login_required
def open_item(notification_id: int):
    """Mark the notification read and go to its page (a page of this site only)."""
    row = notify.mark_read(current_user, notification_id)
    db.session.commit()
    target = local_path(row.url or "")
    if target is None:
        flash(_("This item has no page to open."), "warning")
        return redirect(url_for("notify.index"))
    return redirect(target)


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def mark_read(notification_id: int):
    notify.mark_read(current_user, notification_id)
    db.session.commit()
    return redirect(url_for("notify.index", unread=request.form.get("unread") or None))


@bp.post("/notifications/read-all")
@login_required
def mark_all_read():
    count = notify.mark_all_read(current_user)
    db.session.commit()
    flash(_("%(count)s notifications marked as read.", count=count), "success")
    return redirect(url_for("notify.index"))


# Preferences ------------------------------------------------------------------------------------


@bp.route("/account/notifications", methods=["GET", "POST"])
@login_required
def preferences():
    user = current_user._get_current_object()
    if request.method == "POST":
        choices = {kind: [c for c in CHANNELS if f"{kind}:{c}" in request.form] for kind in KINDS}
        notify.set_preferences(user, choices)
        db.session.commit()
        flash(_("Your notification settings are saved."), "success")
        return redirect(url_for("notify.preferences"))
    return render_template("notify/preferences.html", chosen=notify.preferences(user), kinds=notify.KIND_LABELS,
                           channels=notify.CHANNEL_LABELS)


# API --------------------------------------------------------------------------------------------


def _dump(row) -> dict:
    return {"id": row.id, "kind": row.kind, "title": row.title, "body": row.body, "url": row.url,
            "created_at": row.created_at.isoformat(), "read_at": row.read_at.isoformat() if row.read_at else None}


@bp.get("/api/v1/notifications")
@login_required
def api_list():
    """The caller's notifications, newest first; ``?unread=true`` for the unread ones only."""
    flag = request.args.get("unread", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"unread": [_("Not a valid boolean.")]})
    query = notify.items_query(current_user, unread=flag in ("true", "1"))
    page, per_page = page_args()
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    offset = (page - 1) * per_page
    rows = db.session.scalars(query.limit(per_page).offset(offset)).all() if offset < total else []
    body = envelope([_dump(row) for row in rows], total, page, per_page)
    body["unread"] = notify.unread_count(current_user)
    return jsonify(body)


@bp.post("/api/v1/notifications/<int:notification_id>/read")
@login_required
def api_mark_read(notification_id: int):
    row = notify.mark_read(current_user, notification_id)
    db.session.commit()
    return jsonify(_dump(row))


@bp.post("/api/v1/notifications/read-all")
@login_required
def api_mark_all_read():
    count = notify.mark_all_read(current_user)
    db.session.commit()
    return jsonify({"marked": count})


@bp.get("/api/v1/notifications/preferences")
@login_required
def api_preferences():
    return jsonify(notify.preferences(current_user))


@bp.put("/api/v1/notifications/preferences")
@login_required
def api_set_preferences():
    value = notify.set_preferences(current_user._get_current_object(), json_body())
    db.session.commit()
    return jsonify(value)


# Admin ------------------------------------------------------------------------------------------

MAIL_FIELDS = ("enabled", "host", "port", "security", "username", "password", "sender", "base_url")
ROBOT_FIELDS = ("name", "platform", "webhook_url", "secret", "keyword", "kinds", "department_id", "enabled")


def _admin_page(status: int = 200, mail_errors=None, mail_form=None):
    from core.org.models import Department

    robot_rows = db.session.scalars(select(Robot).order_by(Robot.name, Robot.id)).all()
    departments = dict(db.session.execute(select(Department.id, Department.name)).all())
    return render_template(
        "notify/admin.html", settings=mail.settings(), robots=robot_rows, departments=departments,
        failures=admin.recent_failures(), platforms=admin.PLATFORM_LABELS, security=admin.SECURITY_LABELS,
        kinds=notify.KIND_LABELS, mail_errors=mail_errors or {}, mail_form=mail_form, mask_url=robots.mask_url,
        config_base_url=current_app.config["YITI"]["BASE_URL"],
    ), status


@bp.get("/admin/notifications")
@admin_required
def admin_index():
    return _admin_page()


@bp.post("/admin/notifications/mail")
@admin_required
def admin_mail():
    data = form_data(request.form, MAIL_FIELDS, booleans=("enabled",))
    try:
        admin.save_mail(current_user, data)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        return _admin_page(422, mail_errors=exc.fields, mail_form=request.form)
    flash(_("Saved."), "success")
    return redirect(url_for("notify.admin_index"))


@bp.post("/admin/notifications/mail/test")
@admin_required
def admin_mail_test():
    try:
        admin.test_mail(current_user._get_current_object())
        flash(_("A test e-mail was sent to %(email)s.", email=current_user.email), "success")
    except SendError as exc:
        flash(_("The test e-mail failed: %(error)s", error=exc.message), "danger")
    return redirect(url_for("notify.admin_index"))


@bp.route("/admin/notifications/robots/new", methods=["GET", "POST"])
@admin_required
def robot_new():
    return _robot_form(None)


@bp.route("/admin/notifications/robots/<int:robot_id>", methods=["GET", "POST"])
@admin_required
def robot_edit(robot_id: int):
    return _robot_form(admin.get_robot(robot_id))


def _robot_form(robot):
    from core.org.models import Department

    errors, form, status = {}, None, 200
    if request.method == "POST":
        data = form_data(request.form, ROBOT_FIELDS, lists=("kinds",), booleans=("enabled",))
        try:
            saved = admin.save_robot(current_user, robot.id if robot else None, data)
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("notify.admin_index", _anchor=f"robot-{saved.id}"))
        except ValidationError as exc:
            db.session.rollback()
            errors, form, status = exc.fields, request.form, 422
    departments = db.session.execute(select(Department.id, Department.name).order_by(Department.path)).all()
    return render_template("notify/robot_form.html", robot=robot, errors=errors, form=form, kinds=notify.KIND_LABELS,
                           platforms=admin.PLATFORM_LABELS, departments=departments, mask_url=robots.mask_url,
                           hosts=robots.allowed_hosts()), status


@bp.post("/admin/notifications/robots/<int:robot_id>/test")
@admin_required
def robot_test(robot_id: int):
    try:
        admin.test_robot(current_user, robot_id)
        flash(_("The test message was sent."), "success")
    except SendError as exc:
        flash(_("The test message failed: %(error)s", error=exc.message), "danger")
    return redirect(url_for("notify.admin_index", _anchor=f"robot-{robot_id}"))


@bp.post("/admin/notifications/deliveries/<int:delivery_id>/retry")
@admin_required
def delivery_retry(delivery_id: int):
    admin.retry_delivery(current_user, delivery_id)
    db.session.commit()
    flash(_("It will be sent again shortly."), "success")
    return redirect(url_for("notify.admin_index", _anchor="failures"))
