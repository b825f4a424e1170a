"""Migrations: an empty database upgrades to exactly the models, with every plugin and with each alone."""
from __future__ import annotations

import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect as sa_inspect, text
from sqlalchemy.exc import IntegrityError

from core import clock
from core.extensions import db

# Each plugin alone, plus what it requires.
PLUGIN_SETS = {
    "all": ("approval", "crm", "srm", "hr", "notes"),
    "none": (),
    "approval": ("approval",),
    "crm": ("approval", "crm"),
    "srm": ("approval", "srm"),
    "hr": ("approval", "hr"),
    "notes": ("notes",),
}


def drift(app) -> list:
    """Differences between the migrated database and the models of the enabled plugins."""
    from core import registry

    wanted = {t.name for t in registry.owned_tables()}

    def include(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in wanted

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "skipping functional index": those are checked below
            return compare_metadata(context, db.metadata)


@pytest.mark.parametrize("plugin_set", sorted(PLUGIN_SETS))
def test_empty_database_upgrades_to_the_models(make_app, plugin_set):
    app = make_app(plugins=PLUGIN_SETS[plugin_set], schema="migrate")
    with app.app_context():
        from core import migrate, registry

        assert migrate.pending() == []
        assert drift(app) == []
        tables = set(sa_inspect(db.engine).get_table_names())
        assert {t.name for t in registry.owned_tables()} <= tables


def test_upgrade_is_idempotent_and_reports_each_branch(make_app):
    app = make_app(plugins=PLUGIN_SETS["crm"], schema="migrate")
    with app.app_context():
        from core import migrate

        assert migrate.branches() == ["core", "approval", "crm"]
        migrate.upgrade()
        assert migrate.pending() == []


def test_enabling_a_plugin_later_leaves_only_its_branch_pending(make_app):
    make_app(plugins=("approval",), schema="migrate")
    later = make_app(plugins=("approval", "crm", "notes"), schema=None)
    with later.app_context():
        from core import migrate

        assert sorted(migrate.pending()) == ["crm", "notes"]
        migrate.upgrade()
        assert migrate.pending() == []


def test_migrated_database_refuses_usernames_differing_only_in_case(make_app):
    app = make_app(plugins=(), schema="migrate")  # the expression index is hand-written in the migration
    with app.app_context():
        insert = text("INSERT INTO core_user (username, display_name, active, timezone, session_epoch, version, "
                      "created_at, updated_at) VALUES (:u, 'x', true, 'UTC', 0, 1, :now, :now)")
        db.session.execute(insert, {"u": "Boss", "now": clock.now()})
        with pytest.raises(IntegrityError):
            db.session.execute(insert, {"u": "bOSS", "now": clock.now()})
        db.session.rollback()


def test_imports_applied_before_the_change_table_keep_what_undo_needs(make_app):
    import json

    from alembic import command

    from core import migrate
    from core.imports.models import ImportChange

    app = make_app(plugins=(), schema=None)
    with app.app_context():
        cfg = migrate.alembic_config()
        command.upgrade(cfg, "0f68bb2d0b68")  # the last revision with the lists on core_import
        db.session.execute(text(
            "INSERT INTO core_import (resource, filename, status, created_at, total_rows, done_rows, to_insert, "
            "to_update, inserted, updated, rejected, headers, mapping, unknown_columns, background, errors, rejects, "
            "created, updated_records, not_undone) VALUES ('notes.note', 'a.csv', 'done', :now, 3, 3, 2, 1, 2, 1, 0, "
            "'[]', '[]', '[]', false, '[]', '[]', :created, :updated, '[]')"),
            {"now": clock.now(), "created": json.dumps([[11, 1], [12, 2]]),
             "updated": json.dumps([{"id": 5, "version": 3, "before": {"title": "旧"}}])})
        db.session.commit()
        command.upgrade(cfg, "core@head")
        rows = db.session.execute(db.select(ImportChange.kind, ImportChange.record_id, ImportChange.version,
                                            ImportChange.before).order_by(ImportChange.id)).all()
        assert [tuple(r) for r in rows] == [("insert", 11, 1, None), ("insert", 12, 2, None),
                                            ("update", 5, 3, {"title": "旧"})]
        assert "created" not in {c["name"] for c in sa_inspect(db.engine).get_columns("core_import")}
