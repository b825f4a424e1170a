"""Portable backups: every table as JSON Lines in one zip, restorable into an empty database of either engine.

Archive layout (documented in ``docs/backup-format.md``)::

    manifest.json            format version, created_at, engine, plugin versions, migration heads,
                             and for every table: file, columns, row count, SHA-256 of the file
    tables/<table>.jsonl     one JSON object per row, columns in table order, values canonical:
                             datetimes ISO 8601 in UTC, decimals as strings with the column's scale,
                             JSON as objects, bytes as base64
    files/...                uploaded attachments (the instance folder's ``attachments/``)

The dump reads one consistent snapshot (PostgreSQL: a repeatable-read read-only transaction;
SQLite: the online backup API copies the file first) and streams rows in batches, so memory stays
flat. It is written to ``<name>.partial`` and renamed when complete, so an interrupted backup never
leaves a file that looks valid. Restore refuses a damaged archive (checksums) or a non-empty
database, creates the schema at the archive's migration heads, loads every row in one transaction,
verifies counts and checksums by dumping again, then migrates forward to the running version.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import warnings
import zipfile
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from flask import current_app
from sqlalchemy import Boolean, Date, DateTime, Enum, Integer, LargeBinary, MetaData, Numeric, String, Time, bindparam, \
    create_engine, inspect, select, text, update
from sqlalchemy.types import JSON

from core import clock
from core.extensions import db

FORMAT = "yiti-backup/1"
BATCH = 1000
SKIP_TABLES = {"alembic_version"}


class BackupError(RuntimeError):
    """The archive or the target cannot be used; the message says why."""


# Canonical values ---------------------------------------------------------------------------------


def _canonical(value, column_type):
    """A column value as it is written to the archive: the same whatever engine it came from."""
    if value is None:
        return None
    if isinstance(column_type, DateTime) or isinstance(value, datetime):
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(column_type, Numeric) and not isinstance(value, bool):
        number = Decimal(str(value))
        scale = getattr(column_type, "scale", None)
        if scale is not None:
            number = number.quantize(Decimal(1).scaleb(-scale))
        return str(number)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(column_type, Boolean):
        return bool(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(column_type, JSON) and isinstance(value, str):
        return json.loads(value)
    return value


def _restored(value, column_type):
    """An archive value turned back into what the target column takes."""
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"$base64"}:
        return base64.b64decode(value["$base64"])
    if isinstance(column_type, DateTime):
        return datetime.fromisoformat(value)
    if isinstance(column_type, Date):
        return date.fromisoformat(value)
    if isinstance(column_type, Time):
        return time.fromisoformat(value)
    if isinstance(column_type, Numeric):
        return Decimal(value)
    if isinstance(column_type, LargeBinary) and isinstance(value, str):
        return base64.b64decode(value)
    return value


# Keys sorted at every level: PostgreSQL (JSONB) and SQLite keep JSON keys in different orders.
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _line(row: dict) -> bytes:
    return (_ENCODER.encode(row) + "\n").encode()


def _dump_converter(column_type):
    """``_canonical`` for one column, or ``None`` when its values are written as they come (text, integers):
    chosen once per table, not once per value, because a dump converts millions of values."""
    if isinstance(column_type, (String, Integer)) and not isinstance(column_type, (Numeric, Enum)):
        return None
    return lambda value: _canonical(value, column_type)


def _load_converter(column_type):
    """``_restored`` for one column, or ``None`` when archive values go in as they are."""
    if isinstance(column_type, (String, Integer, Boolean)) and not isinstance(column_type, (Numeric, LargeBinary)):
        return None
    return lambda value: _restored(value, column_type)


# Dump ---------------------------------------------------------------------------------------------


@contextmanager
def _snapshot_engine():
    """An engine reading one consistent snapshot of the app's database."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        folder = tempfile.mkdtemp(prefix="yiti-backup-")
        copy = Path(folder) / "snapshot.db"
        source = sqlite3.connect(engine.url.database)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # SQLite's online backup: consistent while others write
        finally:
            target.close()
            source.close()
        snapshot = create_engine(f"sqlite:///{copy}")
        try:
            yield snapshot, None
        finally:
            snapshot.dispose()
            shutil.rmtree(folder, ignore_errors=True)
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield engine, conn


def _tables(bind) -> list:
    metadata = MetaData()
    with warnings.catch_warnings():
        # SQLite cannot reflect expression indexes (lower(username)); the dump needs only columns.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        metadata.reflect(bind=bind)
    return [t for name, t in sorted(metadata.tables.items()) if name not in SKIP_TABLES]


def _dump_table(conn, table, write) -> tuple[int, str]:
    """Write ``table``'s rows through ``write(bytes)``; return (row count, SHA-256 of what was written)."""
    digest = hashlib.sha256()
    count = 0
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(yield_per=BATCH).execute(select(table).order_by(*order))
    names = list(result.keys())
    types = {c.name: c.type for c in table.columns}
    converters = [(name, convert) for name in names if (convert := _dump_converter(types[name])) is not None]
    for rows in result.partitions():
        lines = []
        for row in rows:
            values = dict(zip(names, row))
            for name, convert in converters:
                if values[name] is not None:
                    values[name] = convert(values[name])
            lines.append(_line(values))
        chunk = b"".join(lines)
        digest.update(chunk)
        write(chunk)
        count += len(rows)
    return count, digest.hexdigest()


def _heads(conn) -> list[str]:
    if not inspect(conn).has_table("alembic_version"):
        return []  # a schema made without migrations (tests, throw-away databases)
    return sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))


def create_backup(output: Path) -> dict:
    """Write a backup of the whole database (every table present, enabled plugin or not) to ``output``.

    Returns the manifest. The archive appears under its name only once it is complete.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    plugins = current_app.extensions["plugins"]
    manifest = {
        "format": FORMAT,
        "created_at": clock.now().isoformat(),
        "engine": db.engine.dialect.name,
        "yiti_version": _version(),
        "plugins": {name: p.spec.version for name, p in sorted(plugins.installed.items())},
        "enabled_plugins": plugins.names,
        "tables": {},
    }
    try:
        with _snapshot_engine() as (engine, conn), zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            own = conn if conn is not None else engine.connect()
            try:
                manifest["migration_heads"] = _heads(own)
                for table in _tables(own):
                    name = f"tables/{table.name}.jsonl"
                    with archive.open(name, "w", force_zip64=True) as handle:
                        count, digest = _dump_table(own, table, handle.write)
                    manifest["tables"][table.name] = {
                        "file": name, "rows": count, "sha256": digest,
                        "columns": [c.name for c in table.columns],
                    }
            finally:
                if conn is None:
                    own.close()
            manifest["files"] = _add_files(archive)
            archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        os.replace(partial, output)
    finally:
        if partial.exists():
            partial.unlink()
    return manifest


def _add_files(archive: zipfile.ZipFile) -> dict:
    folder = Path(current_app.instance_path) / "attachments"
    files = {}
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            digest = hashlib.sha256()
            with path.open("rb") as source, archive.open(f"files/{relative}", "w", force_zip64=True) as target:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    target.write(block)
            files[relative] = digest.hexdigest()
    return files


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yiti-oa")
    except PackageNotFoundError:
        return "unknown"


# Restore ------------------------------------------------------------------------------------------


def read_manifest(path: Path) -> dict:
    """The manifest of an archive, after checking that every table file matches its checksum."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise BackupError(f"{path}: not a Yiti OA backup (format {manifest.get('format')!r})")
            for table, info in manifest["tables"].items():
                digest = hashlib.sha256()
                with archive.open(info["file"]) as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                if digest.hexdigest() != info["sha256"]:
                    raise BackupError(f"{path}: table {table} is damaged (checksum mismatch)")
            for relative, expected in manifest.get("files", {}).items():
                if hashlib.sha256(archive.read(f"files/{relative}")).hexdigest() != expected:
                    raise BackupError(f"{path}: file {relative} is damaged (checksum mismatch)")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise BackupError(f"{path}: damaged or not a backup archive ({exc.__class__.__name__}: {exc})") from None
    return manifest


def _is_empty(engine) -> bool:
    names = set(inspect(engine).get_table_names()) - SKIP_TABLES
    if not names:
        return True
    with engine.connect() as conn:
        return all(conn.scalar(text(f'SELECT count(*) FROM "{name}"')) == 0 for name in names)


def restore_backup(path: Path) -> dict:
    """Load the archive at ``path`` into the app's (empty) database; return a report.

    Nothing is loaded partially: the rows go in one transaction, which is rolled back on any error.
    """
    from alembic import command

    from core import migrate

    manifest = read_manifest(Path(path))
    engine = db.engine
    if not _is_empty(engine):
        raise BackupError("the target database is not empty: restore only into a new, empty database")
    config = migrate.alembic_config()
    heads = manifest.get("migration_heads", [])
    for head in heads:
        command.upgrade(config, head)
    if not heads:
        from core import registry

        registry.create_schema()  # the archive of a schema built from the models (tests, benchmarks)
    with zipfile.ZipFile(path) as archive, engine.begin() as conn:
        tables = {t.name: t for t in _tables(conn)}
        missing = sorted(set(manifest["tables"]) - set(tables))
        if missing:
            raise BackupError(f"the schema has no table for {', '.join(missing)}: is every plugin of the backup installed?")
        deferred = []
        for name in _load_order(tables, manifest):
            deferred += _load_table(conn, tables[name], archive, manifest["tables"][name]["file"])
        for table, column, pk, rows in deferred:
            conn.execute(update(table).where(table.c[pk] == bindparam("_pk")).values({column: bindparam("_v")}), rows)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn, tables.values())
    _restore_files(path, manifest)
    report = verify_against(manifest)
    if heads:
        migrate.upgrade()
    return report


def _load_order(tables: dict, manifest: dict) -> list[str]:
    """Tables in an order where every NOT NULL foreign key points at a table already loaded."""
    names = sorted(manifest["tables"])
    needs = {n: {fk.column.table.name for c in tables[n].columns if not c.nullable for fk in c.foreign_keys
                 if fk.column.table.name != n and fk.column.table.name in manifest["tables"]} for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and needs[n] <= set(ordered)]
        if not ready:
            raise BackupError("tables require each other through NOT NULL foreign keys: " +
                              ", ".join(n for n in names if n not in ordered))
        ordered.extend(ready)
    return ordered


def _load_table(conn, table, archive, file) -> list:
    """Insert the rows of one table; nullable foreign keys are set afterwards (cycles, self-references)."""
    types = {c.name: c.type for c in table.columns}
    converters = {name: _load_converter(kind) for name, kind in types.items()}
    pk = list(table.primary_key.columns)
    late = [c.name for c in table.columns if c.nullable and c.foreign_keys] if len(pk) == 1 else []
    pk_name = pk[0].name if len(pk) == 1 else None
    updates = {c: [] for c in late}
    batch = []
    with archive.open(file) as handle:
        for raw in handle:
            record = json.loads(raw)
            row = {}
            for name, value in record.items():
                if name in types:
                    convert = converters[name]
                    row[name] = _restored(value, types[name]) if convert is not None or isinstance(value, dict) else value
            for column in late:
                if row.get(column) is not None:
                    updates[column].append({"_pk": row[pk_name], "_v": row[column]})
                    row[column] = None
            batch.append(row)
            if len(batch) >= BATCH:
                conn.execute(table.insert(), batch)
                batch = []
    if batch:
        conn.execute(table.insert(), batch)
    return [(table, column, pk_name, rows) for column, rows in updates.items() if rows]


def _reset_sequences(conn, tables) -> None:
    for table in tables:
        for column in table.primary_key.columns:
            sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                   {"t": table.name, "c": column.name})
            if sequence:
                conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT max("{column.name}") FROM "{table.name}"), 0) + 1, false)'),
                             {"s": sequence})


def _restore_files(path: Path, manifest: dict) -> None:
    folder = Path(current_app.instance_path) / "attachments"
    with zipfile.ZipFile(path) as archive:
        for relative in manifest.get("files", {}):
            target = (folder / relative).resolve()
            if folder.resolve() not in target.parents:
                raise BackupError(f"unsafe file name in archive: {relative}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(f"files/{relative}") as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)


def table_checksums(bind) -> dict[str, tuple[int, str]]:
    """``{table: (rows, sha256)}`` of the database as it is now, in the archive's canonical form."""
    sums = {}
    with (bind.connect() if hasattr(bind, "connect") else nullcontext(bind)) as conn:
        for table in _tables(conn):
            digest = hashlib.sha256()
            count, _ = _dump_table(conn, table, digest.update)
            sums[table.name] = (count, digest.hexdigest())
    return sums


def verify_against(manifest: dict) -> dict:
    """Compare the app's database with ``manifest``: every table's row count and checksum."""
    actual = table_checksums(db.engine)
    problems = []
    for table, info in manifest["tables"].items():
        count, digest = actual.get(table, (None, None))
        if count != info["rows"]:
            problems.append(f"{table}: {count} rows, expected {info['rows']}")
        elif digest != info["sha256"]:
            problems.append(f"{table}: contents differ from the archive")
    if problems:
        raise BackupError("restored data does not match the archive: " + "; ".join(problems))
    return {"tables": len(manifest["tables"]), "rows": sum(t["rows"] for t in manifest["tables"].values()),
            "files": len(manifest.get("files", {}))}


def verify_archive(path: Path) -> dict:
    """Restore ``path`` into a throw-away SQLite database and report; the archive is only a backup if this passes."""
    from core import create_app

    read_manifest(Path(path))
    settings = current_app.config["YITI"]
    with tempfile.TemporaryDirectory(prefix="yiti-verify-") as folder:
        app = create_app({
            "DATABASE_URL": f"sqlite:///{Path(folder) / 'verify.db'}", "INSTANCE_PATH": folder,
            "SECRET_KEY": current_app.config["SECRET_KEY"], "PLUGINS": list(current_app.extensions["plugins"].names),
            "PASSWORD_HASH": settings["PASSWORD_HASH"],
        })
        with app.app_context():
            try:
                return restore_backup(Path(path))
            finally:
                db.session.remove()
                db.engine.dispose()
