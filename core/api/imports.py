"""``GET /api/v1/imports/<id>``: how far an import is (status, rows done of total, counts).

A script that uploaded a large file polls this while the worker checks or applies it. Only the
user who made the import (or an administrator) sees it, as on the import page.
"""
from __future__ import annotations

from flask import jsonify
from flask_login import current_user, login_required

from core.api import bp
from core.imports import service as imports


@bp.get("/imports/<int:import_id>")
@login_required
def import_status(import_id: int):
    imp = imports.get_import(import_id, current_user)
    return jsonify({
        "id": imp.id, "resource": imp.resource, "filename": imp.filename, "status": imp.status,
        "background": imp.background, "total_rows": imp.total_rows, "done_rows": imp.done_rows,
        "percent": imp.percent, "to_insert": imp.to_insert, "to_update": imp.to_update,
        "inserted": imp.inserted, "updated": imp.updated, "rejected": imp.rejected, "error": imp.error,
        "created_at": imp.created_at.isoformat(),
        "progress_at": imp.progress_at.isoformat() if imp.progress_at else None,
        "finished_at": imp.finished_at.isoformat() if imp.finished_at else None,
    })
