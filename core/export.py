"""Open export: every table (or one plugin's) as an XLSX workbook or a ZIP of CSV files, for people.

The backup archive (``core.backup``) is for machines: exact, restorable, encrypted columns kept as
ciphertext. This export is for people opening the data in Excel or LibreOffice:

- XLSX: one sheet per table (the sheet name is the table name, cut to Excel's 31 characters),
  a header row of column names, then one row per record ordered by primary key; written row by
  row (``core.xlsx``), so memory stays flat however big the tables are; a table longer than a
  sheet holds (1,048,575 rows under the header) goes on in sheets named ``table (2)``, ``(3)``...;
- CSV: a ZIP with ``<table>.csv`` per table, UTF-8 with a BOM so Excel reads Chinese correctly.

Values are readable as they are: timestamps ISO 8601 in UTC (``2026-11-25T08:30:00+00:00``),
dates ISO, decimals as numbers, booleans as ``TRUE``/``FALSE``, JSON as JSON text. Text is always
stored as text in XLSX (a value starting with ``=`` never becomes a formula); in CSV such a value
is prefixed with ``'`` so spreadsheet programs do not run it.

Encrypted columns (``EncryptedText``) are exported **decrypted**: the export exists so that
people can read their data. Only administrators can export, and every export is audited with the
tables it contained and the encrypted columns it revealed. Password and token hashes are left
out: they are useless to people and only help an attacker.
"""
from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import zipfile
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from core import xlsx
from core.crypto import EncryptedText
from core.extensions import db

FORMATS = ("xlsx", "csv")
BATCH = 1000
_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def owners() -> list[str]:
    """What can be exported alone: ``core`` and each enabled plugin that owns tables."""
    return sorted(current_app.extensions["yiti.tables"], key=lambda name: (name != "core", name))


def tables_for(plugin: str | None = None) -> list:
    """The tables to export: the core's and every enabled plugin's, or one owner's; in dependency order.

    Raises ``ValueError`` for an owner that is not enabled (or does not exist).
    """
    owned = current_app.extensions["yiti.tables"]
    if plugin is not None and plugin not in owned:
        raise ValueError(plugin)
    wanted = {t.name for owner, tables in owned.items() if plugin in (None, owner) for t in tables}
    return [t for t in db.metadata.sorted_tables if t.name in wanted]


def _columns(table) -> list:
    return [c for c in table.columns if not c.name.endswith("_hash")]


def encrypted_in(tables) -> list[str]:
    """``table.column`` of every encrypted column the export of ``tables`` decrypts (for the audit entry)."""
    return [f"{t.name}.{c.name}" for t in tables for c in _columns(t) if isinstance(c.type, EncryptedText)]


def _value(value):
    """A value as a person reads it in a spreadsheet cell."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (bool, int, float, Decimal)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _rows(table):
    """The rows of ``table`` as lists of readable values, fetched in batches (decrypted by the column type)."""
    columns = _columns(table)
    order = list(table.primary_key.columns) or columns
    query = select(*columns).order_by(*order).execution_options(yield_per=BATCH)
    for batch in db.session.execute(query).partitions():
        for row in batch:
            yield [_value(v) for v in row]


def _sheet_names(tables) -> dict[str, str]:
    names, used = {}, set()
    for table in tables:
        base = _SHEET_CHARS.sub("_", table.name)[:31]
        name, n = base, 1
        while name.lower() in used:
            n += 1
            name = f"{base[:31 - len(str(n)) - 1]}~{n}"
        used.add(name.lower())
        names[table.name] = name
    return names


def write_xlsx(target, tables) -> dict[str, int]:
    """Write one workbook to ``target`` (a path or binary file); return the row count per table."""
    names, owners = _sheet_names(tables), []

    def sheets():  # lazy: each table's rows are read while its sheet is written
        for table in tables:
            header = [c.name for c in _columns(table)]
            for number, rows in enumerate(_parts(_rows(table), xlsx.MAX_ROWS - 1), start=1):
                suffix = "" if number == 1 else f" ({number})"  # a table longer than a sheet goes on
                owners.append(table.name)
                yield names[table.name][:31 - len(suffix)] + suffix, itertools.chain([header], rows)

    written = xlsx.write(target, sheets())
    counts = dict.fromkeys((t.name for t in tables), 0)
    for owner, count in zip(owners, written):
        counts[owner] += count - 1  # less the header row
    return counts


_END = object()


def _parts(rows, size: int):
    """``rows`` in runs of at most ``size`` (at least one run, empty for no rows); each run is taken
    from ``rows`` as it is read, and the next run is looked for only once the previous one is read."""
    rows = iter(rows)
    first = next(rows, _END)
    while True:
        yield itertools.chain([] if first is _END else [first], itertools.islice(rows, size - 1))
        first = next(rows, _END)
        if first is _END:
            return


def _csv_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv_zip(target, tables) -> dict[str, int]:
    """Write a ZIP of one CSV per table (UTF-8 with BOM) to ``target``; return the row count per table."""
    counts = {}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for table in tables:
            with archive.open(f"{table.name}.csv", "w", force_zip64=True) as raw:
                handle = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                writer = csv.writer(handle)
                writer.writerow([c.name for c in _columns(table)])
                count = 0
                for row in _rows(table):
                    writer.writerow([_csv_text(v) for v in row])
                    count += 1
                handle.flush()
                handle.detach()
            counts[table.name] = count
    return counts


def export(target, fmt: str, plugin: str | None = None, by=None, actor_name: str | None = None) -> dict[str, int]:
    """Write the export to ``target`` and add its audit entry (in the caller's transaction)."""
    from core import audit

    if fmt not in FORMATS:
        raise ValueError(fmt)
    tables = tables_for(plugin)
    counts = (write_xlsx if fmt == "xlsx" else write_csv_zip)(target, tables)
    audit.record("export", resource="core.export", summary=f"{plugin or 'all'} ({fmt})", actor=by,
                 actor_name=actor_name,
                 changes={"format": fmt, "plugin": plugin or "all", "tables": counts,
                          "decrypted": encrypted_in(tables)})
    return counts


def file_name(fmt: str, plugin: str | None, stamp: str) -> str:
    return f"yiti-export-{plugin or 'all'}-{stamp}.{'xlsx' if fmt == 'xlsx' else 'zip'}"


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
