"""Key rotation for encrypted columns: re-encrypt every stored value with the primary key, online.

``rotate_all()`` walks every ``EncryptedText`` column (``core.crypto.encrypted_columns``) in
primary-key order, ``batch`` rows at a time, each batch its own short transaction, so people keep
working while it runs. A value already encrypted with the primary key is left alone, so running
it again is harmless and reports what is left to do (nothing). Each row is written only if it
still holds the token that was read (``WHERE id = ? AND column = <old token>``): a value changed
by a user meanwhile is already under the primary key and is not overwritten.

Before changing anything it reads every value once and refuses, naming the table, column and row,
if one cannot be decrypted with the configured keys (an old key removed too early): nothing is
rotated until every value can be.
"""
from __future__ import annotations

from sqlalchemy import Table, Text, bindparam, select, type_coerce, update

from core import crypto
from core.crypto import DecryptionError
from core.extensions import db


def _raw(table: Table, name: str):
    """The column as stored (the token), without ``EncryptedText`` decrypting it."""
    return type_coerce(table.c[name], Text)


def _batches(conn, table: Table, pk: str, column: str, size: int):
    """``[(id, token), ...]`` in primary-key order, ``size`` at a time, each read in its own transaction."""
    last = None
    while True:
        query = (select(table.c[pk], _raw(table, column)).where(table.c[column].isnot(None))
                 .order_by(table.c[pk]).limit(size))
        if last is not None:
            query = query.where(table.c[pk] > last)
        with conn.begin():
            rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def rotate_all(metadata=None, batch: int = 500) -> dict[str, dict[str, int]]:
    """Re-encrypt every encrypted value with the primary key; return ``{"table.column": {"rotated", "current"}}``.

    Raises ``DecryptionError`` (naming the row) before writing anything if a value cannot be decrypted.
    """
    metadata = metadata if metadata is not None else db.metadata
    columns = crypto.encrypted_columns(metadata)
    engine = db.engine
    report = {}
    with engine.connect() as conn:
        for table_name, pk, column in columns:  # 1. every value must decrypt before anything changes
            table = metadata.tables[table_name]
            for rows in _batches(conn, table, pk, column, batch):
                for row_id, token in rows:
                    try:
                        crypto.decrypt(token)
                    except DecryptionError:
                        raise DecryptionError(
                            f"{table_name}.{column} of row {pk}={row_id} cannot be decrypted with the configured "
                            "ENCRYPTION_KEYS: put back the key it was written with, then rotate again") from None
        for table_name, pk, column in columns:  # 2. rotate, one short transaction per batch
            table = metadata.tables[table_name]
            counts = report[f"{table_name}.{column}"] = {"rotated": 0, "current": 0}
            statement = (update(table).where(table.c[pk] == bindparam("_id"), _raw(table, column) == bindparam("_old"))
                         .values({column: type_coerce(bindparam("_new"), Text)}))
            for rows in _batches(conn, table, pk, column, batch):
                changes = []
                for row_id, token in rows:
                    if crypto.is_current(token):
                        counts["current"] += 1
                        continue
                    changes.append({"_id": row_id, "_old": token, "_new": crypto.rotate(token)})
                if changes:
                    with conn.begin():
                        conn.execute(statement, changes)
                    counts["rotated"] += len(changes)
    return report
