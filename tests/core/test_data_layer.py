"""The shared data layer: engine tuning, table prefixes, and the mixins every business table uses."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, inspect as sa_inspect, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core import clock, create_app, normalise_database_url
from core.errors import Conflict
from core.extensions import db

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")


def test_sqlite_runs_with_wal_busy_timeout_and_foreign_keys(tmp_path):
    app = create_app({"DATABASE_URL": None, "INSTANCE_PATH": str(tmp_path), "PLUGINS": [],
                      "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789"})
    with app.app_context():
        assert db.engine.url.database == str(tmp_path / "yiti.db")  # the default: a file in the instance folder
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        db.session.remove()
        db.engine.dispose()


def test_a_forked_process_opens_its_own_connections_instead_of_sharing_the_parents(make_app):
    import os

    app = make_app(plugins=())
    with app.app_context():
        engine = db.engine
        with engine.connect() as conn:  # one connection now waits in the pool, as after building the app
            parents = id(conn.connection.dbapi_connection)
        assert engine.pool.checkedin() == 1
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: what gunicorn --preload's workers are
            try:
                with engine.connect() as conn:
                    ok = id(conn.connection.dbapi_connection) != parents and conn.exec_driver_sql("SELECT 1").scalar() == 1
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.waitpid(child, 0)
        assert answer == b"1"  # the parent's pooled connection was not handed to the child
        assert engine.pool.checkedin() == 1  # and the parent still has it
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_foreign_keys_are_enforced_on_both_engines(make_app):
    app = make_app(plugins=())
    with app.app_context():
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError):
            db.session.execute(text("INSERT INTO core_user_role (user_id, role_id) VALUES (424242, 434343)"))
        db.session.rollback()


def test_postgresql_urls_use_psycopg_3():
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_every_table_is_prefixed_by_its_owner(make_app):
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        owners = app.extensions["yiti.tables"]
        for owner, tables in owners.items():
            for table in tables:
                assert table.name.startswith(f"{owner}_"), table.name


def test_scoped_tables_get_owner_and_department_list_indexes(make_app):
    app = make_app(plugins=("notes",), schema="migrate")
    with app.app_context():
        indexes = {ix["name"]: ix["column_names"] for ix in sa_inspect(db.engine).get_indexes("notes_note")}
    assert indexes["ix_notes_note_owner_updated"] == ["owner_id", "updated_at"]
    assert indexes["ix_notes_note_department_updated"] == ["department_id", "updated_at"]


def test_timestamps_are_utc_and_follow_the_clock(make_app):
    app = make_app(plugins=("notes",))
    start = clock.now().replace(microsecond=0) - timedelta(days=3)
    clock.set_now(start)
    with app.app_context():
        from yiti_notes.models import Note

        note = Note(title="t")
        db.session.add(note)
        db.session.commit()
        clock.set_now(start + timedelta(hours=2))
        note.title = "t2"
        db.session.commit()
        db.session.expire_all()
        note = db.session.get(Note, note.id)
        assert note.created_at == start
        assert note.created_at.utcoffset() == timedelta(0)  # aware UTC on SQLite too
        assert note.updated_at - note.created_at == timedelta(hours=2)
        with pytest.raises(StatementError, match="naive datetime"):
            note.updated_at = start.replace(tzinfo=None)
            db.session.flush()
        db.session.rollback()


def test_version_grows_on_each_update_and_a_stale_write_is_refused(make_app):
    app = make_app(plugins=("notes",))
    with app.app_context():
        from yiti_notes.models import Note

        note = Note(title="first")
        db.session.add(note)
        db.session.commit()
        assert note.version == 1
        note_id = note.id

        # Two people read version 1; the first saves, the second's save must not overwrite.
        with Session(db.engine) as alice, Session(db.engine) as bob:
            mine, theirs = alice.get(Note, note_id), bob.get(Note, note_id)
            mine.title = "alice"
            alice.commit()
            theirs.title = "bob"
            with pytest.raises(StaleDataError):
                bob.commit()
        db.session.expire_all()
        current = db.session.get(Note, note_id)
        assert (current.title, current.version) == ("alice", 2)
        with pytest.raises(Conflict) as stale:
            current.check_version(1)
        assert stale.value.status == 409
        assert stale.value.details["current_version"] == 2
        current.check_version(2)  # the version the client read: fine


def test_custom_fields_column_round_trips_json(make_app):
    app = make_app(plugins=("notes",))
    with app.app_context():
        from yiti_notes.models import Note

        note = Note(title="c")
        db.session.add(note)
        db.session.commit()
        assert note.custom == {}
        note.custom = {"行业": "制造业", "score": 5, "tags": ["A", "重点"]}
        db.session.commit()
        db.session.expire_all()
        assert db.session.scalar(select(Note.custom).where(Note.id == note.id)) == {
            "行业": "制造业", "score": 5, "tags": ["A", "重点"]}


def test_reserved_ids_follow_the_stored_ones_and_are_never_handed_out_again(make_app):
    app = make_app(plugins=("notes",))
    with app.app_context():
        from yiti_notes.models import Note

        from core.models import reserve_ids
        from core.org.models import user_roles

        db.session.add_all([Note(title="a"), Note(title="b")])
        db.session.flush()  # the write that takes SQLite's lock, as an import's batch begins with
        highest = db.session.scalar(select(func.max(Note.id)))
        ids = reserve_ids(db.session, Note, 3)
        assert len(set(ids)) == 3 and min(ids) > highest
        db.session.add_all([Note(id=i, title=f"n{i}") for i in ids])
        db.session.flush()
        assert reserve_ids(db.session, Note, 1)[0] > max(ids)
        db.session.add(Note(title="given by the database"))
        db.session.flush()
        assert db.session.scalar(select(func.max(Note.id))) > max(ids)
        assert sorted(db.session.scalars(select(Note.title).where(Note.id.in_(ids)))) == [f"n{i}" for i in sorted(ids)]
        assert reserve_ids(db.session, Note, 0) is None
        assert reserve_ids(db.session, user_roles, 2) is None  # a key of two columns: the database numbers nothing
        db.session.rollback()
