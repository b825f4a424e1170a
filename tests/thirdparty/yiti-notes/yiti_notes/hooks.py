import json
import os
import urllib.request

import click
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core.extensions import db
from core.plugins import DashboardWidget, Delivery, EventType, MenuItem, PeriodicJob, Permission, RoleTemplate, hookimpl
from yiti_notes.models import Note

bp = Blueprint("notes", __name__, url_prefix="/notes", template_folder="templates")


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    if request.method == "POST":
        from yiti_notes.services import create_note

        create_note(current_user, request.form["title"])
        db.session.commit()
        return redirect(url_for("notes.index"))
    notes = db.session.scalars(select(Note).where(Note.owner_id == current_user.id).order_by(Note.id)).all()
    return render_template("notes/index.html", notes=notes)


@bp.get("/<int:note_id>")
@login_required
def detail(note_id):
    from core import resources
    from yiti_notes.resources import NOTE

    return render_template("notes/detail.html", note=resources.get(NOTE, current_user, note_id))


@hookimpl
def register_models():
    return [Note]


@hookimpl
def register_blueprints(app):
    return [bp]


@hookimpl
def register_resources():
    from yiti_notes.resources import NOTE

    return [NOTE]


@hookimpl
def register_permissions():
    return [Permission("notes.board.pin", _l("Pin notes to the team board"))]


@hookimpl
def register_roles():
    own = {f"notes.note.{action}": "own" for action in ("read", "create", "update", "delete", "export")}
    return [
        RoleTemplate("employee", grants=own),
        RoleTemplate("sales_manager", grants={**own, "notes.note.read": "department_tree", "notes.note.export": "department_tree"}),
        RoleTemplate("gm", grants={f"notes.note.{a}": "all" for a in ("read", "export")}),
    ]


@hookimpl
def register_menu(user):
    return [MenuItem("notes", _l("Team notes"), "notes.index", order=50)]


@hookimpl
def register_dashboard_widgets(user):
    def render():
        count = db.session.scalar(select(func.count()).select_from(Note).where(Note.owner_id == user.id))
        return render_template("notes/widget.html", count=count)

    return [DashboardWidget("notes.count", _l("Team notes"), render, order=50)]


@hookimpl
def register_cli(cli):
    @cli.command("notes-count")
    def notes_count():
        """Print how many notes exist."""
        click.echo(str(db.session.scalar(select(func.count()).select_from(Note))))


@hookimpl
def demo_data(company):
    admin = company.users["admin"]
    exists = db.session.scalar(select(Note.id).where(Note.title == "Welcome note"))
    if exists is None:
        db.session.add(Note(title="Welcome note", owner_id=admin.id, department_id=admin.department_id))


@hookimpl
def register_event_types():
    return [EventType("notes.note_created", _l("Note created"))]


@hookimpl
def on_event(name, payload):
    if name == "notes.note_created":
        from core import audit

        audit.record("announced", resource="notes.note", record_id=payload["note_id"], summary=payload["title"])


@hookimpl
def register_jobs():
    from yiti_notes.services import remind_overdue_reviews

    return [PeriodicJob("notes.remind_overdue_reviews", remind_overdue_reviews, every="0 * * * *")]


@hookimpl
def register_deliveries():
    url = current_app.config.get("NOTES_WEBHOOK_URL") or os.environ.get("NOTES_WEBHOOK_URL")
    if not url:
        return []

    def post(message):
        body = json.dumps({"event": message.event, "payload": message.payload}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key}
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"), timeout=5):
            pass  # urlopen raises for a 4xx/5xx answer, which the sweeper retries

    return [Delivery("notes.webhook", post, events=("notes.note_created",))]
