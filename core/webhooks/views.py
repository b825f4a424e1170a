"""Admin pages (系统管理 → Webhooks) and the admin API ``/api/v1/webhooks``: thin, over ``services``."""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core.api.helpers import envelope, json_body, page_args
from core.auth.access import admin_required
from core.errors import BusinessRuleError, Forbidden, NotFound, ValidationError
from core.events import event_types
from core.extensions import db
from core.webhooks import sender, services
from core.webhooks.models import DELIVERY_STATUSES, Webhook, WebhookDelivery
from core.webhooks.schemas import ALL_EVENTS, DeliveryOut, WebhookOut

bp = Blueprint("webhooks", __name__)

FIELDS = ("name", "url", "events", "active")
webhook_out, webhooks_out = WebhookOut(), WebhookOut(many=True)
delivery_out, deliveries_out = DeliveryOut(), DeliveryOut(many=True)


# Pages ----------------------------------------------------------------------------------------------


@bp.get("/admin/webhooks")
@admin_required
def index():
    webhooks = db.session.scalars(select(Webhook).order_by(Webhook.name, Webhook.id)).all()
    failing = dict(db.session.execute(
        select(WebhookDelivery.webhook_id, func.count()).where(WebhookDelivery.status.in_(("failed", "dead")))
        .group_by(WebhookDelivery.webhook_id)).all())
    return render_template("admin/webhooks.html", webhooks=webhooks, failing=failing, labels=_event_labels())


@bp.route("/admin/webhooks/new", methods=["GET", "POST"])
@admin_required
def new():
    return _form(None)


@bp.route("/admin/webhooks/<int:webhook_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(webhook_id: int):
    return _form(_page_get(webhook_id))


def _page_get(webhook_id: int) -> Webhook:
    try:
        return services.get(current_user, webhook_id)
    except NotFound:
        abort(404)


def _form(webhook: Webhook | None):
    errors: dict = {}
    if request.method == "POST":
        data = {"name": request.form.get("name", ""), "url": request.form.get("url", ""),
                "events": request.form.getlist("events"), "active": "active" in request.form}
        try:
            if webhook is None:
                webhook, secret = services.create(current_user, data)
                db.session.commit()
                return render_template("admin/webhook_secret.html", webhook=webhook, secret=secret, created=True)
            services.update(current_user, webhook.id, data)
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("webhooks.detail", webhook_id=webhook.id))
        except (ValidationError, BusinessRuleError) as exc:
            db.session.rollback()
            errors = exc.fields or {"_form": [exc.message]}
        values = data
    elif webhook is not None:
        values = {field: getattr(webhook, field) for field in FIELDS}
    else:
        values = {"name": "", "url": "https://", "events": [], "active": True}
    return render_template("admin/webhook_form.html", webhook=webhook, values=values, errors=errors,
                           labels=_event_labels(), all_events=ALL_EVENTS)


def _event_labels() -> dict:
    return {name: str(event.label) for name, event in event_types().items()}


@bp.get("/admin/webhooks/<int:webhook_id>")
@admin_required
def detail(webhook_id: int):
    webhook = _page_get(webhook_id)
    status = request.args.get("status") or None
    if status not in DELIVERY_STATUSES:
        status = None
    number = min(max(request.args.get("page", 1, type=int), 1), 1_000_000)
    page = db.paginate(services.deliveries_query(webhook.id, status), page=number, per_page=50, error_out=False)
    counts = dict(db.session.execute(select(WebhookDelivery.status, func.count())
                                     .where(WebhookDelivery.webhook_id == webhook.id)
                                     .group_by(WebhookDelivery.status)).all())
    return render_template("admin/webhook_detail.html", webhook=webhook, page=page, status=status, counts=counts,
                           statuses=DELIVERY_STATUSES, labels=_event_labels())


@bp.post("/admin/webhooks/<int:webhook_id>/rotate")
@admin_required
def rotate(webhook_id: int):
    webhook, secret = services.rotate_secret(current_user, _page_get(webhook_id).id)
    db.session.commit()
    return render_template("admin/webhook_secret.html", webhook=webhook, secret=secret, created=False)


@bp.post("/admin/webhooks/<int:webhook_id>/ping")
@admin_required
def ping(webhook_id: int):
    delivery = services.ping(current_user, _page_get(webhook_id).id)
    db.session.commit()
    outcome = sender.attempt(delivery.id)
    delivery = db.session.get(WebhookDelivery, delivery.id)
    if outcome == "delivered":
        flash(_("Test ping delivered (HTTP %(code)s).", code=delivery.response_code), "success")
    else:
        flash(_("Test ping failed: %(error)s", error=delivery.error or "-"), "danger")
    return redirect(url_for("webhooks.detail", webhook_id=webhook_id))


@bp.post("/admin/webhooks/<int:webhook_id>/delete")
@admin_required
def delete(webhook_id: int):
    services.remove(current_user, _page_get(webhook_id).id)
    db.session.commit()
    flash(_("Webhook deleted."), "success")
    return redirect(url_for("webhooks.index"))


@bp.post("/admin/webhooks/deliveries/<int:delivery_pk>/replay")
@admin_required
def replay(delivery_pk: int):
    try:
        delivery = services.replay(current_user, delivery_pk)
    except NotFound:
        abort(404)
    db.session.commit()
    flash(_("Delivery %(id)s will be sent again shortly.", id=delivery.delivery_id), "success")
    return redirect(url_for("webhooks.detail", webhook_id=delivery.webhook_id, status=request.form.get("status") or None))


# API ------------------------------------------------------------------------------------------------


def _api_admin() -> None:
    if not current_user.is_admin:
        raise Forbidden(_("Only administrators can manage webhooks."))


@bp.get("/api/v1/webhooks")
@login_required
def api_list():
    _api_admin()
    page, per_page = page_args()
    query = select(Webhook).order_by(Webhook.id)
    total = db.session.scalar(select(func.count()).select_from(Webhook))
    rows = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all() if (page - 1) * per_page < total else []
    return jsonify(envelope(webhooks_out.dump(rows), total, page, per_page))


@bp.get("/api/v1/webhooks/event-types")
@login_required
def api_event_types():
    _api_admin()
    return jsonify({"items": [{"name": name, "label": label} for name, label in _event_labels().items()]})


@bp.post("/api/v1/webhooks")
@login_required
def api_create():
    _api_admin()
    webhook, secret = services.create(current_user, json_body())
    db.session.commit()
    return jsonify({**webhook_out.dump(webhook), "secret": secret}), 201


@bp.get("/api/v1/webhooks/<int:webhook_id>")
@login_required
def api_get(webhook_id: int):
    return jsonify(webhook_out.dump(services.get(current_user, webhook_id)))


@bp.patch("/api/v1/webhooks/<int:webhook_id>")
@login_required
def api_update(webhook_id: int):
    webhook = services.update(current_user, webhook_id, json_body())
    db.session.commit()
    return jsonify(webhook_out.dump(webhook))


@bp.delete("/api/v1/webhooks/<int:webhook_id>")
@login_required
def api_delete(webhook_id: int):
    services.remove(current_user, webhook_id)
    db.session.commit()
    return "", 204


@bp.post("/api/v1/webhooks/<int:webhook_id>/rotate-secret")
@login_required
def api_rotate(webhook_id: int):
    webhook, secret = services.rotate_secret(current_user, webhook_id)
    db.session.commit()
    return jsonify({**webhook_out.dump(webhook), "secret": secret})


@bp.post("/api/v1/webhooks/<int:webhook_id>/ping")
@login_required
def api_ping(webhook_id: int):
    delivery = services.ping(current_user, webhook_id)
    db.session.commit()
    sender.attempt(delivery.id)
    return jsonify(delivery_out.dump(db.session.get(WebhookDelivery, delivery.id)))


@bp.get("/api/v1/webhooks/<int:webhook_id>/deliveries")
@login_required
def api_deliveries(webhook_id: int):
    webhook = services.get(current_user, webhook_id)
    status = request.args.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"status": [_("Choose one of: %(choices)s", choices=", ".join(DELIVERY_STATUSES))]})
    page, per_page = page_args()
    query = services.deliveries_query(webhook.id, status)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all() if (page - 1) * per_page < total else []
    return jsonify(envelope(deliveries_out.dump(rows), total, page, per_page))


@bp.post("/api/v1/webhooks/deliveries/<int:delivery_pk>/replay")
@login_required
def api_replay(delivery_pk: int):
    delivery = services.replay(current_user, delivery_pk)
    db.session.commit()
    return jsonify(delivery_out.dump(delivery))
