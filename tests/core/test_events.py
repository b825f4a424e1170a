"""Events: emitted in a transaction, dispatched to ``on_event`` and written to the outbox only if it commits.

The ``notes`` plugin (tests/thirdparty) declares ``notes.note_created``, emits it when a note is
created and, in ``on_event``, writes an audit entry ``announced`` — so "the hook ran" is a row.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core import events
from core.audit.models import AuditEntry
from core.events import OutboxMessage, UnknownEvent
from core.extensions import db
from core.plugins.manager import PluginError

from tests.conftest import PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")


@pytest.fixture
def notes_app(make_app):
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def outbox_rows(event: str) -> list[OutboxMessage]:
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.event == event).order_by(OutboxMessage.id)).all()


def announced(note_id: int) -> int:
    """How many times the notes plugin's on_event hook ran for this note."""
    return db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "announced", AuditEntry.record_id == note_id))


def test_rolled_back_transaction_emits_nothing(notes_app):
    with notes_app.app_context():
        events.emit("notes.note_created", note_id=901, title="draft", owner_id=1)
        assert db.session.new  # the outbox row waits in the transaction...
        db.session.rollback()
        db.session.commit()  # ...and a later commit of the same session does not bring it back
        assert outbox_rows("notes.note_created") == []
        assert announced(901) == 0


def test_committed_transaction_emits_exactly_once(notes_app):
    with notes_app.app_context():
        events.emit("notes.note_created", note_id=902, title="周报", owner_id=1)
        db.session.commit()
        assert announced(902) == 1
        rows = outbox_rows("notes.note_created")
        assert [(r.payload, r.attempts) for r in rows] == [({"note_id": 902, "title": "周报", "owner_id": 1}, 0)]
        assert len(rows[0].idempotency_key) == 32
        db.session.commit()  # later commits dispatch nothing again
        db.session.commit()
        assert announced(902) == 1
        assert len(outbox_rows("notes.note_created")) == 1


def test_an_event_emitted_without_commit_is_dropped_when_the_session_ends(notes_app):
    with notes_app.app_context():
        events.emit("notes.note_created", note_id=903, title="lost", owner_id=1)
    with notes_app.app_context():
        db.session.commit()
        assert outbox_rows("notes.note_created") == []
        assert announced(903) == 0


def test_an_event_inside_a_rolled_back_savepoint_is_dropped(notes_app):
    with notes_app.app_context():
        events.emit("notes.note_created", note_id=904, title="kept", owner_id=1)
        savepoint = db.session.begin_nested()
        events.emit("notes.note_created", note_id=905, title="undone", owner_id=1)
        savepoint.rollback()
        db.session.commit()
        assert [r.payload["note_id"] for r in outbox_rows("notes.note_created")] == [904]
        assert (announced(904), announced(905)) == (1, 0)


def test_creating_a_note_on_the_page_emits_once_after_commit(notes_app):
    client = Client(notes_app)
    client.login("sales1")
    assert client.post("/notes/", {"title": "拜访纪要"}).status_code == 302
    with notes_app.app_context():
        [row] = outbox_rows("notes.note_created")
        assert row.payload["title"] == "拜访纪要"
        assert announced(row.payload["note_id"]) == 1
        # No delivery wants the event here: it is kept as the event log, nothing left to deliver.
        assert row.status == "delivered"
        # The review task for the manager announced itself too, in the same transaction.
        assert len(outbox_rows("core.todo_assigned")) == 1


def test_a_failing_on_event_handler_never_breaks_the_commit(notes_app, caplog):
    with notes_app.app_context():
        events.emit("notes.note_created", note_id=906)  # the notes handler needs a title: it raises
        db.session.commit()
        assert [r.payload for r in outbox_rows("notes.note_created")] == [{"note_id": 906}]
        assert announced(906) == 0
        # The session is usable afterwards.
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    assert "on_event of plugin 'notes' failed" in caplog.text


def test_unknown_event_raises(notes_app):
    with notes_app.app_context():
        with pytest.raises(UnknownEvent):
            events.emit("notes.note_deleted", note_id=1)
        with pytest.raises(TypeError):  # a payload that cannot be stored fails in the caller
            events.emit("notes.note_created", note_id=object())
        db.session.rollback()


def test_hook_register_event_types(notes_app, make_app):
    with notes_app.app_context():
        assert {"core.todo_assigned", "notes.note_created"} <= set(events.event_types())
        assert list(events.event_types()) == sorted(events.event_types())
    without = make_app(plugins=("approval",))
    with without.app_context():
        with pytest.raises(UnknownEvent):
            events.emit("notes.note_created", note_id=1, title="x", owner_id=1)


def test_an_event_type_outside_the_plugins_name_stops_start_up(make_app, install_plugin):
    install_plugin("rogue", hooks="""
        from core.plugins import EventType, hookimpl

        @hookimpl
        def register_event_types():
            return [EventType("crm.customer_deleted", "x")]
    """)
    with pytest.raises(PluginError, match="rogue"):
        make_app(plugins=("rogue",), schema=None)


def test_hook_on_event(notes_app):
    with notes_app.app_context():
        events.emit("notes.note_created", note_id=907, title="one", owner_id=1)
        events.emit("notes.note_created", note_id=908, title="two", owner_id=1)
        assert announced(907) == 0  # not before the commit
        db.session.commit()
        assert (announced(907), announced(908)) == (1, 1)
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "announced", AuditEntry.record_id == 908))
        assert (entry.resource, entry.summary) == ("notes.note", "two")


def test_hook_register_jobs(notes_app):
    from datetime import timedelta

    from core import clock, inbox, jobs

    jobs_by_name = jobs.periodic_jobs(notes_app)
    assert {"core.sweep_outbox", "notes.remind_overdue_reviews"} <= set(jobs_by_name)
    client = Client(notes_app)
    client.login("sales1")
    client.post("/notes/", {"title": "待审便签"})
    job = jobs_by_name["notes.remind_overdue_reviews"]
    with notes_app.app_context():
        from core.org.services import find_user

        manager = find_user("salesmgr")
        jobs.run_job(notes_app, job)  # nothing is overdue yet
        assert [t.kind for t in inbox.items(manager, tab="todo")] == ["task"]
        clock.set_now(clock.now() + timedelta(days=3))
        jobs.run_job(notes_app, job)
        jobs.run_job(notes_app, job)  # a second run adds nothing
        kinds = sorted(t.kind for t in inbox.items(manager, tab="todo"))
    assert kinds == ["reminder", "task"]


def test_a_malformed_job_schedule_is_refused_naming_the_job(make_app, install_plugin):
    install_plugin("badjob", hooks="""
        from core.plugins import PeriodicJob, hookimpl

        @hookimpl
        def register_jobs():
            return [PeriodicJob("badjob.tick", lambda: None, every="every minute")]
    """)
    app = make_app(plugins=("badjob",), schema=None)
    from core import jobs

    with pytest.raises(PluginError, match="badjob.tick"):
        jobs.periodic_jobs(app)


def test_webhooks_get_nothing_from_a_rolled_back_transaction_and_exactly_one_delivery_from_a_committed_one(notes_app):
    from core import jobs, webhooks
    from core.webhooks.models import Webhook, WebhookDelivery

    from tests.core.webhook_receiver import Receiver

    receiver = Receiver()
    try:
        with notes_app.app_context():
            db.session.add(Webhook(name="erp", url=receiver.url, events=["notes.note_created"], secret="s"))
            db.session.commit()
            events.emit("notes.note_created", note_id=911, title="undone", owner_id=1)
            db.session.rollback()
            events.emit("notes.note_created", note_id=912, title="kept", owner_id=1)
            db.session.commit()
            for _ in range(2):  # the worker sweeps again and again: nothing is sent twice
                jobs.sweep_outbox()
                webhooks.sweep()
            assert [r.payload["note_id"] for r in outbox_rows("notes.note_created")] == [912]
            [delivery] = db.session.scalars(select(WebhookDelivery)).all()
            assert (delivery.event, delivery.status) == ("notes.note_created", "delivered")
        assert [body["data"]["note_id"] for body in receiver.applied.values()] == [912]
        assert receiver.ids == [delivery.delivery_id]
    finally:
        receiver.close()
