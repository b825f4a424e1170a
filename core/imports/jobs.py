"""Large imports in the worker: the huey task that checks or applies one ``Import``.

The web request stores the file on the ``Import`` row (status ``checking`` or ``applying``),
commits, then ``enqueue``s the import's id; ``yiti worker`` runs ``run``, which commits
``done_rows`` every ``IMPORT_BATCH_ROWS`` rows for the page and ``GET /api/v1/imports/<id>`` to
show. The task re-reads who asked and checks the import permission again (it may have been taken
away while the job waited); each row is written through the same services, so record scopes,
field rules and the audit trail apply as in the request. If anything fails, what the job had
committed is taken back (``service.fail``) and the import is marked ``failed`` with the reason.
"""
from __future__ import annotations

import gc
import logging
from contextlib import contextmanager

from flask import Flask, current_app
from flask_babel import force_locale, gettext as _
from flask_login import login_user

from core import resources as records
from core.errors import DomainError, Forbidden
from core.extensions import db
from core.imports import service
from core.imports.models import Import

log = logging.getLogger(__name__)

TASK_NAME = "core.run_import"
#: The status a step expects to find; anything else means it ran already (or was never asked for).
_STEPS = {"check": "checking", "apply": "applying"}


def register(huey, app: Flask) -> None:
    """Register the import task on ``app``'s huey instance (called by ``core.jobs.huey_for``)."""

    def run_import(import_id: int, step: str) -> str:
        return run(app, import_id, step)

    app.extensions["yiti.import_task"] = huey.task(name=TASK_NAME)(run_import)


def enqueue(imp: Import) -> None:
    """Hand a ``checking`` / ``applying`` import to the worker; call after committing it."""
    from core.jobs import huey_for

    app = current_app._get_current_object()
    huey_for(app)
    step = "check" if imp.status == "checking" else "apply"
    app.extensions["yiti.import_task"](imp.id, step)


#: The young generation's threshold while an import runs (Python's default is 700).
IMPORT_GC_THRESHOLD = 50_000


@contextmanager
def _fewer_collections():
    """Collect the young generation less often while an import runs.

    Each row allocates thousands of short-lived objects, so at the default threshold the cyclic
    collector runs constantly and its older passes walk an ever larger heap: a sixth of a
    100,000-row import (``python -m bench import_export``). Reference counting still frees
    objects as they go; only reference cycles wait longer. The thresholds are restored afterwards.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], IMPORT_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def _acting_as(app: Flask, user):
    """A request context logged in as ``user``: code that asks who is acting (a schema's duplicate
    check, say) answers as it does when the same rows are imported in the request."""
    with app.test_request_context():
        if user is not None and user.active:
            login_user(user)
        yield


def run(app: Flask, import_id: int, step: str) -> str:
    """Run ``step`` (``check`` or ``apply``) of an import in its own app context; its final status."""
    from core.org.models import User

    with app.app_context():
        user = None
        try:
            imp = db.session.get(Import, import_id)
            if imp is None or imp.status != _STEPS[step]:
                return imp.status if imp is not None else "missing"
            user = db.session.get(User, imp.user_id) if imp.user_id else None
            locale = (getattr(user, "language", None) or app.config["YITI"]["DEFAULT_LANGUAGE"])
            with force_locale(locale), _acting_as(app, user), _fewer_collections():
                if user is None or not user.active:
                    raise Forbidden(_("You do not have permission to do this."))
                resource = records.get_resource(imp.resource)
                service.require_import(resource, user)
                if step == "check":
                    service.check(imp, resource, user, progress=db.session.commit)
                else:
                    service.write(imp, resource, user, progress=db.session.commit)
                db.session.commit()
                return imp.status
        except service.ImportStopped:  # failed meanwhile (fail_stale): it took back what was committed
            db.session.rollback()
            return db.session.get(Import, import_id).status
        except Exception as exc:  # whatever stopped it, the import must end failed, not half-written
            db.session.rollback()
            log.exception("import %s (%s) failed", import_id, step)
            with force_locale(app.config["YITI"]["DEFAULT_LANGUAGE"] if user is None else
                              (getattr(user, "language", None) or app.config["YITI"]["DEFAULT_LANGUAGE"])):
                message = (str(exc.message) if isinstance(exc, DomainError) else
                           _("The import stopped because of an error; nothing from it was kept."))
                service.fail(import_id, user, message)
            db.session.commit()
            return "failed"
        finally:
            db.session.remove()
