"""Import pages every ``Resource`` gets: upload → preview (dry run) → apply → rejects file / undo.

``/<plugin>/<plural>/import`` uploads a file and shows the template downloads; ``/imports/<id>``
shows one import: the dry run's errors before it is applied, the result and undo after. The
pages only call ``core.imports``, which writes through the same services as the API. A large
file is checked and applied by the worker; its page polls ``/imports/<id>/progress`` (htmx).
"""
from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from core import resources as records, xlsx
from core.imports import service as imports
from core.errors import ValidationError
from core.extensions import db
from core.imports import jobs as import_jobs
from core.imports.models import ACTIVE, Import

bp = Blueprint("imports", __name__)


@bp.route("/<name:plugin>/<name:plural>/import", methods=["GET", "POST"])
@login_required
def upload(plugin: str, plural: str):
    resource = records.by_path(plugin, plural)
    imports.require_import(resource, current_user)
    errors = {}
    if request.method == "POST":
        upload_file = request.files.get("file")
        if upload_file is None or not upload_file.filename:
            errors = {"file": [_("Choose a file.")]}
        else:
            try:
                imp = imports.preview(resource, current_user, upload_file.filename, upload_file.read())
                db.session.commit()
                if imp.background:
                    import_jobs.enqueue(imp)
                return redirect(url_for("imports.show", import_id=imp.id))
            except ValidationError as exc:
                db.session.rollback()
                errors = exc.fields or {"file": [exc.message]}
    recent = db.session.scalars(select(Import).where(Import.resource == resource.key, Import.user_id == current_user.id)
                                .order_by(Import.id.desc()).limit(10)).all()
    fields = [records.field_label(resource, n) for n in imports.importable_fields(resource, current_user)]
    return render_template("imports/upload.html", resource=resource, errors=errors, recent=recent,
                           fields=fields, key_label=records.field_label(resource, resource.natural_key) if resource.natural_key else None), 422 if errors else 200


@bp.get("/<name:plugin>/<name:plural>/import/template.<kind>")
@login_required
def template(plugin: str, plural: str, kind: str):
    resource = records.by_path(plugin, plural)
    imports.require_import(resource, current_user)
    if kind not in ("csv", "xlsx"):
        return redirect(url_for("imports.upload", plugin=plugin, plural=plural))
    mimetype = xlsx.MIMETYPE if kind == "xlsx" else "text/csv"
    return Response(imports.template(resource, current_user, kind), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{resource.plugin}-{resource.plural}-template.{kind}"'})


@bp.get("/imports/<int:import_id>")
@login_required
def show(import_id: int):
    imp = imports.get_import(import_id, current_user)
    resource = records.get_resource(imp.resource)
    columns = [(header, records.field_label(resource, name) if name else None) for header, name in zip(imp.headers, imp.mapping)]
    return render_template("imports/show.html", imp=imp, resource=resource, columns=columns)


@bp.get("/imports/<int:import_id>/progress")
@login_required
def progress(import_id: int):
    """The progress bar htmx polls while the worker runs; once it is done, the whole page reloads."""
    imp = imports.get_import(import_id, current_user)
    if imp.status not in ACTIVE:
        return "", 200, {"HX-Refresh": "true"}
    return render_template("imports/_progress.html", imp=imp)


@bp.post("/imports/<int:import_id>/apply")
@login_required
def apply(import_id: int):
    imp = imports.apply(import_id, current_user)
    db.session.commit()
    if imp.background:
        import_jobs.enqueue(imp)
        flash(_("The import is running in the background; this page shows how far it is."), "info")
        return redirect(url_for("imports.show", import_id=import_id))
    flash(_("Imported: %(inserted)d new, %(updated)d updated, %(rejected)d rejected.",
            inserted=imp.inserted, updated=imp.updated, rejected=imp.rejected), "success")
    return redirect(url_for("imports.show", import_id=import_id))


@bp.post("/imports/<int:import_id>/undo")
@login_required
def undo(import_id: int):
    imp = imports.undo(import_id, current_user)
    db.session.commit()
    if imp.not_undone:
        flash(_("The import was undone, except for %(n)d records changed since.", n=len(imp.not_undone)), "warning")
    else:
        flash(_("The import was undone."), "success")
    return redirect(url_for("imports.show", import_id=import_id))


@bp.get("/imports/<int:import_id>/rejects.csv")
@login_required
def rejects(import_id: int):
    imp = imports.get_import(import_id, current_user)
    return Response(imports.rejects_csv(imp).encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="import-{imp.id}-rejects.csv"'})
