"""Bulk data for benchmarks: an org tree, users, and a million rows in seconds.

Rows are built in Python once and loaded the fastest way each engine offers: PostgreSQL's
``COPY`` (psycopg 3 ``cursor.copy()``), SQLite's ``executemany`` in one transaction. The table's
secondary indexes are dropped before the load and rebuilt after it, then the planner statistics
are refreshed (``ANALYZE``), as they would be on a database that has been in use for a while.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, select, text

from core import clock
from core.extensions import db

TITLES = ("周例会纪要", "客户拜访记录", "华东区回款跟进", "报价单修改", "合同评审意见", "供应商考察", "招聘面试反馈",
          "项目周报", "Quarterly review", "Trade show follow-up")


@dataclass
class Org:
    company_id: int
    region_ids: list[int]
    team_ids: list[int]
    #: ``(user_id, department_id)`` of everyone who owns records
    owners: list[tuple[int, int]]


def department_tree(regions: int = 10, teams_per_region: int = 10) -> tuple[int, list[int], list[int]]:
    """One company, ``regions`` regions under it, ``teams_per_region`` teams under each (paths set)."""
    from core.org.models import Department

    def add(name, parent):
        department = Department(name=name, parent_id=parent.id if parent else None, path="")
        db.session.add(department)
        db.session.flush()
        department.path = f"{parent.path if parent else '/'}{department.id}/"
        return department

    company = add("基准集团", None)
    region_ids, team_ids = [], []
    for r in range(regions):
        region = add(f"第{r + 1}大区", company)
        region_ids.append(region.id)
        for t in range(teams_per_region):
            team_ids.append(add(f"第{r + 1}大区第{t + 1}组", region).id)
    db.session.flush()
    return company.id, region_ids, team_ids


def bulk_users(count: int, department_ids: list[int], prefix: str = "user") -> list[tuple[int, int]]:
    """``count`` users spread round-robin over ``department_ids`` (no password: they never log in)."""
    from core.org.models import User

    rows = [{"username": f"{prefix}{i:07d}", "display_name": f"用户{i}", "email": f"{prefix}{i}@example.com",
             "mobile": f"138{i:08d}", "department_id": department_ids[i % len(department_ids)], "active": True,
             "timezone": "Asia/Shanghai", "session_epoch": 0, "version": 1}
            for i in range(count)]
    for start in range(0, count, 5000):
        db.session.execute(insert(User), rows[start:start + 5000])
    db.session.flush()
    return [tuple(r) for r in db.session.execute(
        select(User.id, User.department_id).where(User.username.like(f"{prefix}%")).order_by(User.id))]


def owned_rows(count: int, owners: list[tuple[int, int]], days: int = 365, seed: int = 42):
    """``count`` note rows ``(title, body, owner_id, department_id, created_at, updated_at, created_by_id,
    version, custom)``, owners drawn at random, ``updated_at`` spread over the last ``days`` days."""
    rng = random.Random(seed)
    now = clock.now()
    span = days * 86400
    for i in range(count):
        owner_id, department_id = owners[rng.randrange(len(owners))]
        updated = now - timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
        created = updated - timedelta(seconds=rng.randrange(86400 * 7))
        yield (f"{TITLES[i % len(TITLES)]} {i}", "", owner_id, department_id, created, updated, owner_id, 1, "{}")


NOTE_COLUMNS = ("title", "body", "owner_id", "department_id", "created_at", "updated_at", "created_by_id",
                "version", "custom")


def bulk_load(table, columns: tuple[str, ...], rows) -> None:
    """Load ``rows`` (tuples in ``columns`` order) into ``table`` with its secondary indexes rebuilt after."""
    engine = db.engine
    db.session.commit()  # the load uses its own connection; everything before it must be visible
    indexes = sorted(table.indexes, key=lambda i: i.name)
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
    if engine.dialect.name == "postgresql":
        _copy_postgresql(engine, table.name, columns, rows)
    else:
        _executemany(engine, table, columns, rows)
    with engine.begin() as conn:
        for index in indexes:
            index.create(conn)
    analyze(engine)


def _copy_postgresql(engine, table_name: str, columns, rows) -> None:
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table_name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        raw.driver_connection.commit()
    finally:
        raw.close()


def _executemany(engine, table, columns, rows, batch: int = 50_000) -> None:
    """SQLite: one transaction, big batches, values converted by the columns' own bind processors."""
    processors = [table.c[name].type.bind_processor(engine.dialect) if name.endswith("_at") else None
                  for name in columns]
    converting = [(i, p) for i, p in enumerate(processors) if p is not None]
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        chunk = []
        for row in rows:
            if converting:
                row = list(row)
                for i, processor in converting:
                    row[i] = processor(row[i])
            chunk.append(row)
            if len(chunk) >= batch:
                cursor.executemany(statement, chunk)
                chunk = []
        if chunk:
            cursor.executemany(statement, chunk)
        raw.commit()
    finally:
        raw.close()


def analyze(engine) -> None:
    """Refresh the planner's statistics (PostgreSQL ``ANALYZE``; SQLite ``ANALYZE`` fills ``sqlite_stat1``)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()
