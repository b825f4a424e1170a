"""Large imports run in the worker: queued, progress committed as it goes, same result as in the request.

``IMPORT_BACKGROUND_ROWS`` is set to 3 and ``IMPORT_BATCH_ROWS`` to 2, so a 7-row file is a "large"
one that commits its progress every two rows. The queued huey task is taken from the app's real
queue (``instance/jobs.db``) and executed, as ``yiti worker`` would.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from core import jobs
from core.audit.models import AuditEntry
from core.extensions import db
from core.imports import service
from core.imports.models import Import

from tests.conftest import PASSWORD
from tests.core.test_imports import PLUGINS, csv_bytes, login, notes, preview_id, upload, user, xlsx_bytes

#: Seven rows: five good, row 4 without a title, row 7 giving the note to someone outside sales1's scope.
ROWS = [["标题", "内容", "负责人"],
        ["第一条", "a", ""], ["第二条", "b", ""], ["", "没有标题", ""], ["第三条", "c", "sales1"],
        ["第四条", "d", ""], ["给别人", "e", "陈静"], ["第五条", "f", ""]]


@pytest.fixture
def app(make_app):
    from core.demo import create_demo_company
    from core.org.models import Role
    from core.permissions.services import set_grants

    app = make_app(plugins=PLUGINS, IMPORT_BACKGROUND_ROWS=3, IMPORT_BATCH_ROWS=2)
    with app.app_context():
        create_demo_company(PASSWORD)
        role = Role(key="importer", name="导入")
        db.session.add(role)
        db.session.flush()
        set_grants(user("admin"), role.id, {"notes.note.import": "own"})
        for name in ("sales1", "sales2"):
            member = user(name)
            member.roles = [*member.roles, role]
        db.session.commit()
    return app


def run_queued(app) -> list[str]:
    """Execute every queued task as the worker would; the statuses the import task returned."""
    huey = jobs.huey_for(app)
    results = []
    while (task := huey.dequeue()) is not None:
        results.append(huey.execute(task))
    return results


def queued(app) -> list[tuple]:
    return [tuple(task.args) for task in jobs.huey_for(app).pending()]


def status(app, import_id) -> Import:
    with app.app_context():
        imp = db.session.get(Import, import_id)
        db.session.expunge(imp)
        return imp


def committed_progress(app, import_id) -> tuple[str, int]:
    """What another connection (the polling page) sees of the import right now."""
    with db.engine.connect() as conn:
        return tuple(conn.execute(text("SELECT status, done_rows FROM core_import WHERE id = :id"),
                                  {"id": import_id}).one())


@pytest.fixture
def seen(app, monkeypatch):
    """``(status, done_rows)`` as committed, each time the worker reports progress."""
    seen = []
    report = service._progress

    def spy(imp, done, progress):
        report(imp, done, progress)
        if progress is not None and done % 2 == 0:
            seen.append(committed_progress(app, imp.id))

    monkeypatch.setattr(service, "_progress", spy)
    return seen


def test_a_large_file_is_checked_then_applied_by_the_worker_with_progress_the_page_polls(app, seen):
    client = login(app, "sales1")
    before = notes(app)
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(ROWS)))
    assert queued(app) == [(import_id, "check")]
    assert status(app, import_id).status == "checking"
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert f'hx-get="/imports/{import_id}/progress"' in page and 'max="7"' in page and 'value="0"' in page
    fragment = client.get(f"/imports/{import_id}/progress")
    assert fragment.status_code == 200 and "HX-Refresh" not in fragment.headers and 'value="0"' in fragment.get_data(as_text=True)
    api = client.get(f"/api/v1/imports/{import_id}").get_json()
    assert (api["status"], api["done_rows"], api["total_rows"], api["background"]) == ("checking", 0, 7, True)

    assert run_queued(app) == ["previewed"]
    assert seen == [("checking", 2), ("checking", 4), ("checking", 6)]
    assert notes(app) == before  # the dry run wrote nothing
    imp = status(app, import_id)
    assert (imp.status, imp.total_rows, imp.done_rows, imp.to_insert, imp.rejected) == ("previewed", 7, 7, 5, 2)
    assert client.get(f"/imports/{import_id}/progress").headers["HX-Refresh"] == "true"

    seen.clear()
    assert client.post(f"/imports/{import_id}/apply").status_code == 302
    assert queued(app) == [(import_id, "apply")] and notes(app) == before
    assert 'value="0"' in client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert run_queued(app) == ["done"]
    assert seen == [("applying", 2), ("applying", 4), ("applying", 6)]  # committed as it went
    api = client.get(f"/api/v1/imports/{import_id}").get_json()
    assert (api["status"], api["done_rows"], api["inserted"], api["rejected"], api["percent"]) == ("done", 7, 5, 2, 100)
    titles = {t: o for t, _b, o in notes(app).values()}
    assert {"第一条", "第二条", "第三条", "第四条", "第五条"} <= set(titles) and "给别人" not in titles
    assert client.get(f"/imports/{import_id}/rejects.csv").get_data(as_text=True).count("\n") == 3


def test_the_worker_gives_the_same_result_as_an_import_in_the_request(app):
    client = login(app, "sales1")
    data = xlsx_bytes(ROWS)

    def result(import_id):
        imp = status(app, import_id)
        with app.app_context():
            imp = db.session.get(Import, import_id)
            rejects = [(r["row"], r["reason"]) for r in imp.rejects]
            errors = [(e["row"], e["field"], e["message"]) for e in imp.errors]
            return (imp.total_rows, imp.to_insert, imp.to_update, imp.inserted, imp.updated, imp.rejected,
                    errors, rejects), {(t, b, o) for t, b, o in notes(app).values()}

    app.config["YITI"]["IMPORT_BACKGROUND_ROWS"] = 100
    small = preview_id(upload(client, "notes.xlsx", data))
    client.post(f"/imports/{small}/apply")
    assert queued(app) == [] and not status(app, small).background
    in_request = result(small)
    assert client.post(f"/imports/{small}/undo").status_code == 302

    app.config["YITI"]["IMPORT_BACKGROUND_ROWS"] = 3
    large = preview_id(upload(client, "notes.xlsx", data))
    run_queued(app)
    client.post(f"/imports/{large}/apply")
    run_queued(app)
    assert status(app, large).background
    assert result(large) == in_request
    assert in_request[0][3] == 5


def test_a_job_that_fails_midway_takes_back_what_it_committed_and_is_marked_failed(app, seen, monkeypatch):
    client = login(app, "sales1")
    before = notes(app)
    with app.app_context():
        audit_before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(ROWS)))
    run_queued(app)
    client.post(f"/imports/{import_id}/apply")
    seen.clear()

    part = service._part
    calls = []

    def crash_on_the_third_batch(run, rows, keep):
        calls.append([number for number, _cells in rows])
        if len(calls) == 3:  # rows 6 and 7
            raise RuntimeError("the database went away")
        return part(run, rows, keep)

    monkeypatch.setattr(service, "_part", crash_on_the_third_batch)
    assert run_queued(app) == ["failed"]
    assert seen == [("applying", 2), ("applying", 4)]  # two batches had been committed...
    assert notes(app) == before  # ...and were taken back
    imp = status(app, import_id)
    assert imp.status == "failed" and imp.error and imp.not_undone == []
    with app.app_context():
        failure = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "import_failed"))
        assert failure.changes["import"] == import_id
        deletes = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "delete", AuditEntry.resource == "notes.note"))
        assert deletes == 3 and db.session.scalar(select(func.count()).select_from(AuditEntry)) > audit_before
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert imp.error in page and "/undo" not in page
    assert client.post(f"/imports/{import_id}/undo").status_code == 422


def test_the_worker_checks_the_import_permission_again_and_writes_nothing_without_it(app):
    from core.org.models import Role

    client = login(app, "sales1")
    before = notes(app)
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(ROWS)))
    run_queued(app)
    client.post(f"/imports/{import_id}/apply")
    with app.app_context():  # the permission is taken away while the job waits in the queue
        member = user("sales1")
        member.roles = [r for r in member.roles if r.key != "importer"]
        db.session.commit()
    assert run_queued(app) == ["failed"]
    assert notes(app) == before
    assert status(app, import_id).status == "failed"
    with app.app_context():
        assert db.session.scalar(select(Role).where(Role.key == "importer")) is not None


def test_someone_else_cannot_see_or_drive_a_background_import(app):
    import_id = preview_id(upload(login(app, "sales1"), "便签.csv", csv_bytes(ROWS)))
    other = login(app, "sales2")
    assert other.get(f"/api/v1/imports/{import_id}").status_code == 404
    assert other.get(f"/imports/{import_id}/progress").status_code == 404
    run_queued(app)
    assert other.post(f"/imports/{import_id}/apply").status_code == 404
    assert queued(app) == [] and status(app, import_id).status == "previewed"
    assert login(app, "buyer1").get(f"/api/v1/imports/{import_id}").status_code == 404


def test_a_task_run_twice_does_nothing_the_second_time(app):
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(ROWS)))
    run_queued(app)
    client.post(f"/imports/{import_id}/apply")
    run_queued(app)
    after = notes(app)
    from core.imports import jobs as import_jobs

    assert import_jobs.run(app, import_id, "apply") == "done"
    assert notes(app) == after


def test_the_worker_collects_garbage_less_often_while_it_imports_and_restores_the_thresholds(app, monkeypatch):
    import gc

    from core.imports import jobs as import_jobs

    before = gc.get_threshold()
    during = []
    report = service._progress

    def spy(imp, done, progress):
        during.append(gc.get_threshold())
        report(imp, done, progress)

    monkeypatch.setattr(service, "_progress", spy)
    client = login(app, "sales1")
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(ROWS)))
    assert run_queued(app) == ["previewed"]
    assert during and all(t[0] >= import_jobs.IMPORT_GC_THRESHOLD and t[1:] == before[1:] for t in during)
    assert gc.get_threshold() == before


class WorkerKilled(BaseException):
    """What a worker restarted mid-file looks like from the database: it just stops (nothing is caught)."""


def _killed_after_two_batches(monkeypatch):
    part, calls = service._part, []

    def die_on_the_third_batch(run, rows, keep):
        calls.append(rows)
        if keep and len(calls) == 3:
            raise WorkerKilled()
        return part(run, rows, keep)

    monkeypatch.setattr(service, "_part", die_on_the_third_batch)


def _applying(app):
    """sales1 uploads ``ROWS``, the worker checks them and sales1 applies: ``(client, notes before, import id)``,
    the apply waiting in the queue."""
    client = login(app, "sales1")
    before = notes(app)
    import_id = preview_id(upload(client, "便签.csv", csv_bytes(ROWS)))
    run_queued(app)
    client.post(f"/imports/{import_id}/apply")
    return client, before, import_id


def test_an_import_its_worker_stopped_mid_file_is_failed_and_taken_back_after_the_stale_time(app, monkeypatch):
    from datetime import timedelta

    from core import clock

    client, before, import_id = _applying(app)
    _killed_after_two_batches(monkeypatch)
    with pytest.raises(WorkerKilled):
        run_queued(app)
    with app.app_context():
        db.session.remove()
    assert len(notes(app)) == len(before) + 3  # two batches were committed when it stopped
    assert status(app, import_id).status == "applying"
    with app.app_context():
        assert service.fail_stale() == []  # not stale yet
        clock.set_now(clock.now() + timedelta(minutes=app.config["YITI"]["IMPORT_STALE_MINUTES"] + 1))
        try:
            assert service.fail_stale() == [import_id]
        finally:
            clock.set_now(None)
    assert notes(app) == before  # taken back
    imp = status(app, import_id)
    assert imp.status == "failed" and "30" in imp.error and imp.not_undone == []
    assert imp.error in client.get(f"/imports/{import_id}").get_data(as_text=True)


def test_a_worker_whose_import_was_failed_meanwhile_stops_at_its_next_batch(app, monkeypatch):
    _client, before, import_id = _applying(app)
    begin, calls = service._begin_with_a_write, []

    def the_sweep_gets_there_after_the_first_batch(imp):
        calls.append(imp.id)
        if len(calls) == 2:  # the first batch is committed; another server fails the import now
            with db.engine.begin() as conn:
                conn.execute(text("UPDATE core_import SET status = 'failed' WHERE id = :id"), {"id": imp.id})
        begin(imp)

    monkeypatch.setattr(service, "_begin_with_a_write", the_sweep_gets_there_after_the_first_batch)
    assert run_queued(app) == ["failed"]
    assert len(notes(app)) == len(before) + 2  # the first batch (two good rows), of the five, nothing after it
    assert status(app, import_id).status == "failed"
