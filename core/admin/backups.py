"""Admin page for backups (list, back up now, verify again, download) and the open export.

Everything here is for administrators only and audited: a backup archive and an export hold
every record of the company (an export even with encrypted fields decrypted).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Response, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core import audit, backup_runs, clock, export, xlsx
from core.admin.views import bp
from core.auth.access import admin_required
from core.backup_runs import BackupRun
from core.errors import BusinessRuleError, NotFound
from core.extensions import db

SHOWN = 100


@bp.get("/backups")
@admin_required
def backups():
    runs = db.session.scalars(select(BackupRun).order_by(BackupRun.id.desc()).limit(SHOWN)).all()
    settings = current_app.config["YITI"]
    plugins = current_app.extensions["plugins"]
    owners = [(name, _("Platform (users, organisation, audit log)") if name == "core"
               else str(plugins.installed[name].spec.label)) for name in export.owners()]
    return render_template("admin/backups.html", runs=runs, owners=owners, folder=backup_runs.backup_dir(),
                           schedule=backup_runs.schedule_cron(settings["BACKUP_SCHEDULE"]),
                           keep_count=settings["BACKUP_KEEP_COUNT"], keep_days=settings["BACKUP_KEEP_DAYS"],
                           latest=backup_runs.latest_verified(), timezone=settings["DEFAULT_TIMEZONE"])


@bp.post("/backups")
@admin_required
def backup_request():
    run = backup_runs.request_backup(current_user)
    db.session.commit()
    flash(_("Backup %(id)s is queued: the worker starts it within a minute, then verifies it.", id=run.id), "success")
    return redirect(url_for("admin.backups"))


def _run_or_404(run_id: int) -> BackupRun:
    run = db.session.get(BackupRun, run_id)  # the route's <int:> holds only ids a column can (core.urls)
    if run is None:
        abort(404)
    return run


@bp.post("/backups/<int:run_id>/verify")
@admin_required
def backup_verify(run_id: int):
    _run_or_404(run_id)
    try:
        backup_runs.request_verify(run_id, current_user)
    except (BusinessRuleError, NotFound) as exc:
        db.session.rollback()
        flash(str(exc.message), "danger")
        return redirect(url_for("admin.backups"))
    db.session.commit()
    flash(_("The verification is queued: the worker restores the archive into a throw-away database."), "success")
    return redirect(url_for("admin.backups"))


@bp.get("/backups/<int:run_id>/download")
@admin_required
def backup_download(run_id: int):
    run = _run_or_404(run_id)
    if not run.exists:
        abort(404)
    audit.record("download", resource="core.backup", record_id=run.id, summary=run.file_name,
                 changes={"sha256": run.sha256, "size": run.size})
    db.session.commit()
    # send_file streams the file in blocks; the name is ours (yiti-<time>-<id>.zip), never the user's.
    return send_file(run.path, mimetype="application/zip", as_attachment=True, download_name=run.file_name,
                     max_age=0, conditional=False, etag=False)


@bp.post("/export")
@admin_required
def export_download():
    fmt = request.form.get("format", "xlsx")
    plugin = request.form.get("plugin") or None
    if fmt not in export.FORMATS or (plugin is not None and plugin not in export.owners()):
        flash(_("Choose a format and what to export."), "danger")
        return redirect(url_for("admin.backups"))
    handle = tempfile.NamedTemporaryFile(prefix="yiti-export-", suffix=f".{fmt}", delete=False)
    path = Path(handle.name)
    try:
        with handle:
            export.export(handle, fmt, plugin, by=current_user)
        db.session.commit()
    except Exception:
        db.session.rollback()
        export.remove_quietly(path)
        raise
    name = export.file_name(fmt, plugin, clock.now().strftime("%Y%m%d-%H%M%S"))
    mimetype = xlsx.MIMETYPE if fmt == "xlsx" else "application/zip"

    def stream():
        try:
            with path.open("rb") as source:
                for block in iter(lambda: source.read(1 << 16), b""):
                    yield block
        finally:
            export.remove_quietly(path)

    return Response(stream(), mimetype=mimetype, direct_passthrough=True,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Content-Length": str(path.stat().st_size), "Cache-Control": "no-store"})
