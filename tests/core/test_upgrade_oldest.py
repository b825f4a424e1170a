"""Upgrading from the oldest schema in the repository's history loses nothing.

The database is built with the *oldest* migrations: the core's first revision and, for each
plugin, its first revision that creates tables. Every table of that old schema gets rows with
awkward values (Chinese text, decimals, timestamps, JSON, references between tables), inserted
with plain SQL against the schema as it was then. ``yiti upgrade`` then backs up and migrates to
the heads; every row must still be there with the same values, and the schema must match the
models.
"""
from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, Integer, LargeBinary, MetaData, Numeric,
                        SmallInteger, String, Text, Time, inspect, select)

from core.backup import _canonical
from core.extensions import db

from tests.core.test_migrations import PLUGIN_SETS, drift

ROWS_PER_TABLE = 3


def _reflect(conn, names) -> MetaData:
    metadata = MetaData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expression indexes SQLite cannot reflect
        metadata.reflect(bind=conn, only=sorted(names))
    return metadata


def _value(column, i: int, ids: dict):
    """A value for ``column`` of the ``i``-th row, valid for the column's type as it was then."""
    for fk in column.foreign_keys:
        target = ids.get(fk.column.table.name)
        if target:
            return target[i % len(target)]
        return None if column.nullable else _fail(f"{column.table.name}.{column.name} needs a row first")
    kind = column.type
    if isinstance(kind, Boolean):
        return i % 2 == 0
    if isinstance(kind, (Integer, BigInteger, SmallInteger)):
        return i + 1
    if isinstance(kind, Numeric):
        scale = kind.scale or 0
        return (Decimal("12345.678") + i).quantize(Decimal(1).scaleb(-scale))
    if isinstance(kind, DateTime):
        return datetime(2024, 1, 31, 23, 59, 58, 123456, tzinfo=UTC) + timedelta(days=i)
    if isinstance(kind, Date):
        return date(2024, 2, 29) + timedelta(days=i)
    if isinstance(kind, Time):
        return datetime(2024, 1, 1, 8, 30).time()
    if isinstance(kind, JSON):
        return {"键": f"值{i}", "n": i, "list": [1, "二"]}
    if isinstance(kind, LargeBinary):
        return bytes([0, 255, i])
    if isinstance(kind, String) and not isinstance(kind, Text) and kind.length:
        return f"{i}-{column.name}-值"[:kind.length]
    if isinstance(kind, (String, Text)):
        return f"第{i}行 \"引号\"\n换行 {column.name}"
    return _fail(f"no sample value for {column.table.name}.{column.name} ({kind!r})")


def _fail(message):
    raise AssertionError(message)


def _seed(conn, names, ids: dict, expected: dict) -> None:
    """Insert rows into the tables ``names`` (as they are now) and remember what went in."""
    metadata = _reflect(conn, names)
    for table in _order([metadata.tables[name] for name in names], ids):
        pk = list(table.primary_key.columns)
        generated = len(pk) == 1 and isinstance(pk[0].type, Integer)
        ids[table.name] = []
        for i in range(ROWS_PER_TABLE):
            row = {c.name: _value(c, i, ids) for c in table.columns if not (generated and c.primary_key)}
            result = conn.execute(table.insert().values(row))
            key = tuple(result.inserted_primary_key)
            if generated:
                ids[table.name].append(key[0])
                row[pk[0].name] = key[0]
            expected.setdefault(table.name, []).append(
                (key, {name: _canonical(value, table.c[name].type) for name, value in row.items()}))


def _order(tables, ids: dict) -> list:
    """Tables in an order where every NOT NULL foreign key points at rows already inserted."""
    done, ordered = set(ids), []
    tables = sorted(tables, key=lambda t: t.name)
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and all(
            fk.column.table.name in done or fk.column.table.name == t.name
            for c in t.columns if not c.nullable for fk in c.foreign_keys)]
        assert ready, "tables require each other through NOT NULL foreign keys"
        for table in ready:
            ordered.append(table)
            done.add(table.name)
    return ordered


def _branch_folders(app, config) -> dict[Path, str]:
    from core import migrate

    plugins = app.extensions["plugins"]
    folders = {(migrate.CORE_DIR / "versions").resolve(): "core"}
    for name in plugins.installed:
        folders[(plugins.package_dir(name) / "migrations").resolve()] = name
    return folders


def test_upgrade_from_the_oldest_schema_keeps_every_row(make_app, tmp_path):
    app = make_app(plugins=PLUGIN_SETS["all"], schema=None)
    with app.app_context():
        from core import migrate

        config = migrate.alembic_config()
        script = ScriptDirectory.from_config(config)
        folders = _branch_folders(app, config)
        wanted = set(migrate.branches())
        seeded, ids, expected = set(), {}, {}
        for revision in reversed(list(script.walk_revisions())):  # oldest first
            branch = folders[Path(revision.path).parent.resolve()]
            if branch in seeded or branch not in wanted:
                continue
            before = set(inspect(db.engine).get_table_names())
            command.upgrade(config, revision.revision)
            created = set(inspect(db.engine).get_table_names()) - before - {"alembic_version"}
            if created:
                with db.engine.begin() as conn:
                    _seed(conn, created, ids, expected)
                seeded.add(branch)
        assert {"core", "approval"} <= seeded  # branches whose migrations have no tables yet get no rows
        assert migrate.pending(), "the oldest schema is behind the heads"
        db.engine.dispose()

    from flask.cli import ScriptInfo

    from core.cli import cli

    result = app.test_cli_runner().invoke(cli, ["upgrade", "--output", str(tmp_path / "pre.zip")],
                                          obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    assert "Migrated:" in result.output and (tmp_path / "pre.zip").is_file()

    with app.app_context():
        from core import migrate

        assert migrate.pending() == []
        with db.engine.connect() as conn:
            metadata = _reflect(conn, expected)
            for name, rows in expected.items():
                table = metadata.tables[name]
                pk = list(table.primary_key.columns)
                assert conn.scalar(select(db.func.count()).select_from(table)) == len(rows), name
                for key, values in rows:
                    stored = conn.execute(select(table).where(*[c == v for c, v in zip(pk, key)])).one()._mapping
                    now = {k: _canonical(stored[k], table.c[k].type) for k in values if k in table.c}
                    assert now == {k: v for k, v in values.items() if k in table.c}, f"{name} {key}"
        assert drift(app) == [], "the upgraded schema matches the models"
        db.engine.dispose()
