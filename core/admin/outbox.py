"""Admin page for the outbox: deliveries that wait for a retry or gave up (dead), and a retry button."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from core import jobs
from core.admin.views import bp
from core.auth.access import admin_required
from core.events import OutboxMessage
from core.extensions import db

SHOWN = ("dead", "pending")


@bp.get("/outbox")
@admin_required
def outbox():
    status = request.args.get("status", "dead")
    if status not in SHOWN:
        status = "dead"
    query = select(OutboxMessage).where(OutboxMessage.status == status).order_by(OutboxMessage.id.desc())
    page = db.paginate(query, per_page=50, error_out=False, max_per_page=50)
    counts = dict(db.session.execute(select(OutboxMessage.status, func.count()).where(OutboxMessage.status.in_(SHOWN))
                                     .group_by(OutboxMessage.status)).all())
    return render_template("admin/outbox.html", page=page, status=status, counts=counts)


@bp.post("/outbox/<int:message_id>/retry")
@admin_required
def outbox_retry(message_id: int):
    row = jobs.retry(message_id, by=current_user)
    db.session.commit()
    flash(_("Message %(id)s will be delivered again shortly.", id=row.id), "success")
    return redirect(url_for("admin.outbox", status=request.form.get("status", "dead")))
