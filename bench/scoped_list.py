"""``python -m bench scoped_list [--rows N] [--database URL]``: a scoped list page out of many rows.

The sample plugin's ``notes.note`` Resource (tests/thirdparty/yiti-notes) with ``--rows`` notes
spread over ~1,000 users in a company of 10 regions x 10 teams, ``updated_at`` over a year. One
user reads with an ``own`` scope, a region manager with ``department_tree`` (a tenth of the rows).
For page 1 (20 rows, newest first) of each, with and without a filter, it times the median of:

- raw SQL: the very statements the app emits for the page and the count (captured from the
  engine), replayed through the DB-API cursor: the baseline; page and count are also shown apart;
- service: ``core.resources.list_page`` + ``dump`` in a fresh request context (grants, field
  rules and the department path read as in a real request);
- HTTP: ``GET /api/v1/notes/notes`` through the Flask test client, logged in as that user;

and prints each one's ratio to raw SQL (target for the service layer: at most 1.5x), then the
plan of the page query (PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``, SQLite ``EXPLAIN QUERY PLAN``)
with a check that it reads the table through the ``(owner_id, updated_at)`` /
``(department_id, updated_at)`` indexes. ``--profile`` adds the service layer's top costs.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import event, func, select

from bench import data
from bench.common import BENCH_PASSWORD, bench_app, check_bench_database, compare, line, reset_database
from core import clock
from core.extensions import db

OWNER_INDEX = "ix_notes_note_owner_updated"
DEPARTMENT_INDEX = "ix_notes_note_department_updated"
#: Not in the model: what ``--updated-index`` adds, to show what it would do for wide scopes.
UPDATED_INDEX = "bench_notes_note_updated"
USERS = 1000
TARGET = 1.5


@dataclass
class Case:
    name: str
    username: str
    params: dict
    indexes: tuple[str, ...]
    total: int = 0
    results: dict = field(default_factory=dict)
    fastest: dict = field(default_factory=dict)
    statements: dict = field(default_factory=dict)


def cases() -> list[Case]:
    month_ago = (clock.now() - timedelta(days=30)).isoformat()
    return [
        Case("own", "bench_own", {}, (OWNER_INDEX,)),
        Case("own, title__contains + sort", "bench_own", {"title__contains": "回款", "sort": "-updated_at"},
             (OWNER_INDEX,)),
        Case("department_tree", "bench_manager", {}, (DEPARTMENT_INDEX, UPDATED_INDEX)),
        Case("department_tree, updated_at__gte + sort", "bench_manager",
             {"updated_at__gte": month_ago, "sort": "-updated_at"}, (DEPARTMENT_INDEX, UPDATED_INDEX)),
    ]


# Data --------------------------------------------------------------------------------------------


def populate(rows: int) -> float:
    """The org, ~1,000 users, the two bench users with their roles, and ``rows`` notes; returns seconds."""
    from core.org import services
    from core.org.models import Role
    from core.org.roles import ensure_default_roles
    from core.permissions.services import set_grants
    from yiti_notes.models import Note

    start = time.perf_counter()
    ensure_default_roles()
    _company, regions, teams = data.department_tree(regions=10, teams_per_region=10)
    owners = data.bulk_users(USERS - 2, teams)
    for key, name, scope in (("bench_own", "基准：本人", "own"), ("bench_tree", "基准：本部门及下级", "department_tree")):
        role = Role(key=key, name=name)
        db.session.add(role)
        db.session.flush()
        set_grants(None, role.id, {"notes.note.read": scope})
    reader = services.create_user(None, {"username": "bench_own", "display_name": "本人", "department_id": teams[0],
                                         "password": BENCH_PASSWORD, "roles": ["bench_own"]})
    manager = services.create_user(None, {"username": "bench_manager", "display_name": "大区经理",
                                          "department_id": regions[0], "password": BENCH_PASSWORD,
                                          "roles": ["bench_tree"]})
    owners += [(reader.id, reader.department_id), (manager.id, manager.department_id)]
    data.bulk_load(Note.__table__, data.NOTE_COLUMNS, data.owned_rows(rows, owners))
    return time.perf_counter() - start


def existing_rows() -> int | None:
    """How many notes an earlier run left (``None``: no bench data here)."""
    from core.org.models import User
    from yiti_notes.models import Note

    try:
        if db.session.scalar(select(User.id).where(User.username == "bench_manager")) is None:
            return None
        return db.session.scalar(select(func.count()).select_from(Note))
    except Exception:  # no tables yet
        db.session.rollback()
        return None


# Measuring ---------------------------------------------------------------------------------------


def capture(app, user_id: int, params: dict) -> list[tuple[str, object]]:
    """Every ``(statement, parameters)`` ``list_page`` sends to the database, as the driver gets them."""
    from core import resources
    from core.org.models import User
    from yiti_notes.resources import NOTE

    seen = []

    def listener(_conn, _cursor, statement, parameters, _context, _executemany):
        seen.append((statement, parameters))

    with app.test_request_context():
        user = load_user(user_id)
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            resources.list_page(NOTE, user, params)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    return seen


def load_user(user_id: int):
    """The user as a request's user loader reads it: with the permission stamp, in the same query."""
    from core.org.models import User
    from core.permissions import cache

    user, stamp = db.session.execute(select(User, cache.stamp_column()).where(User.id == user_id)).one()
    cache.remember_stamp(stamp)
    return user


def service_sample(app, user_id: int, params: dict):
    """One request's worth of ``list_page`` (its items are dumped rows); the user is loaded first, as
    flask-login does (``load_user``: with the permission stamp), outside the time measured."""
    from core import resources
    from yiti_notes.resources import NOTE

    def sample():
        with app.test_request_context():
            user = load_user(user_id)
            start = time.perf_counter()
            rows = (page := resources.list_page(NOTE, user, params)).items
            elapsed = time.perf_counter() - start
        assert len(rows) == min(20, page.total), (len(rows), page.total)
        return elapsed

    return sample


def measure(app, case: Case, user_id: int, repeat: int) -> None:
    statements = capture(app, user_id, case.params)
    count_sql = next(s for s in statements if "count(" in s[0].lower())
    page_sql = statements[-1]
    assert "LIMIT" in page_sql[0].upper(), page_sql[0]
    case.statements = {"page": page_sql, "count": count_sql, "all": statements}

    client = app.test_client()
    response = client.post("/login", data={"username": case.username, "password": BENCH_PASSWORD})
    assert response.status_code in (302, 303), response.status_code
    url = "/api/v1/notes/notes?" + urlencode(case.params)

    def http():
        response = client.get(url)
        assert response.status_code == 200

    with app.app_context():
        engine = db.engine
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            raw.driver_connection.autocommit = True  # the statements alone, no BEGIN/ROLLBACK round trips
        cursor = raw.cursor()

        def run(statement):
            cursor.execute(*statement)
            return cursor.fetchall()

        case.total = run(count_sql)[0][0]
        body = client.get(url).get_json()
        assert body["total"] == case.total and len(body["items"]) == min(20, case.total), (body.get("total"), case.total)
        case.results, case.fastest = compare({
            "raw SQL page": lambda: run(page_sql),
            "raw SQL count": lambda: run(count_sql),
            "raw SQL page + count": lambda: (run(page_sql), run(count_sql)),
            "service list_page + dump": service_sample(app, user_id, case.params),
            "HTTP GET /api/v1/notes/notes": http,
        }, repeat)
    finally:
        if engine.dialect.name == "postgresql":
            raw.driver_connection.autocommit = False  # back to the pool as the app expects it
        raw.close()


def explain(app, case: Case, which: str = "page") -> tuple[str, bool, str]:
    """The plan of the page (or count) query, whether it reads ``notes_note`` through one of the case's
    indexes without a full scan, and why not."""
    statement, parameters = case.statements[which]
    with app.app_context():
        engine = db.engine
    raw = engine.raw_connection()
    dialect = engine.dialect.name
    try:
        cursor = raw.cursor()
        if dialect == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            full_scan = "Seq Scan on notes_note" in plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            rows = cursor.fetchall()
            plan = "\n".join(f"{'  ' * _depth(rows, r)}{r[3]}" for r in rows)
            # "SCAN t USING INDEX i" walks i in order (and stops at the LIMIT): fine when i is one of ours
            ours = "|".join(case.indexes)
            full_scan = bool(re.search(rf"^\s*SCAN notes_note\b(?! USING (COVERING )?INDEX ({ours})\b)", plan, re.MULTILINE))
        raw.rollback()
    finally:
        raw.close()
    used = [name for name in case.indexes if name in plan]
    problems = (["full scan of notes_note"] if full_scan else []) + (
        [] if used else [f"{' / '.join(case.indexes)} not used"])
    return plan, not problems, ", ".join(problems)


def _depth(rows, row) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


def profile(app, user_id: int, params: dict, runs: int = 200, top: int = 25) -> str:
    """cProfile of ``runs`` service-layer calls: the top functions by own time, as file:line."""
    sample = service_sample(app, user_id, params)
    sample()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        sample()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


# Entry point -------------------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scoped_list", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="notes to generate (default 200,000)")
    parser.add_argument("--repeat", type=int, default=50, help="runs per measurement; the median is shown")
    parser.add_argument("--database", default=None,
                        help="database URL, wiped first; its name must contain 'bench' (default: a temporary SQLite file)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the data an earlier run left in --database when it has --rows notes")
    parser.add_argument("--profile", action="store_true", help="also print the service layer's top costs")
    parser.add_argument("--updated-index", action="store_true",
                        help=f"add an index on notes_note (updated_at, id) ({UPDATED_INDEX}) to see what it does")
    parser.add_argument("--plans", choices=("page", "all"), default="page",
                        help="print the page query's plan (default) or the count's too")
    args = parser.parse_args(argv)
    check_bench_database(args.database)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = bench_app(url, tmp, plugins=["notes"])
        with app.app_context():
            from core import registry
            from core.org.models import User

            engine_name = db.engine.dialect.name
            if args.reuse and existing_rows() == args.rows:
                print(f"reusing {args.rows:,} notes already in the database")
            else:
                reset_database(db.engine)
                registry.create_schema()
                seconds = populate(args.rows)
                print(f"generated {args.rows:,} notes, {USERS:,} users, 111 departments in {seconds:.1f} s")
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {UPDATED_INDEX}")
                if args.updated_index:
                    conn.exec_driver_sql(f"CREATE INDEX {UPDATED_INDEX} ON notes_note (updated_at, id)")
            data.analyze(db.engine)
            user_ids = dict(db.session.execute(select(User.username, User.id).where(
                User.username.in_(["bench_own", "bench_manager"]))).all())
            db.session.commit()

        print(f"scoped list: page 1 (20 rows, newest first) of notes.note out of {args.rows:,} rows, "
              f"{engine_name}, median of {args.repeat}"
              + (f", with the extra index {UPDATED_INDEX} (updated_at, id)" if args.updated_index else ""))
        all_cases = cases()
        for case in all_cases:
            measure(app, case, user_ids[case.username], args.repeat)
            results = case.results
            base = results["raw SQL page + count"]
            filters = urlencode(case.params) or "no filter"
            print(f"\n{case.name}  ({filters}; {case.total:,} rows in scope; "
                  f"{len(case.statements['all'])} statements per list_page)")
            for name, seconds in results.items():
                fastest = case.fastest[name]
                ratio = "" if name.startswith("raw") else f", {fastest / case.fastest['raw SQL page + count']:.2f}x"
                print(line(name, seconds, None if name.startswith("raw") else base) + f"   (fastest {fastest * 1000:.3f} ms{ratio})")
            ratio = results["service list_page + dump"] / base
            verdict = "OK" if ratio <= TARGET else "OVER TARGET"
            share = results["raw SQL count"] / base
            print(f"  service / raw SQL = {ratio:.2f}x (target <= {TARGET}x): {verdict}; "
                  f"the count is {share:.0%} of the raw SQL time")
            plan, ok, why = explain(app, case)
            print(f"  page query plan: {'OK' if ok else 'NOT USING INDEX (' + why + ')'}")
            print("    " + plan.replace("\n", "\n    "))
            if args.plans == "all":
                for label, (statement, parameters) in (("page", case.statements["page"]), ("count", case.statements["count"])):
                    print(f"  {label} statement: {' '.join(statement.split())}\n    parameters: {parameters!r}")
                plan, ok, why = explain(app, case, "count")
                print(f"  count query plan: {'OK' if ok else 'NOT USING INDEX (' + why + ')'}")
                print("    " + plan.replace("\n", "\n    "))
            if args.profile:
                print("  service layer profile (top by own time):")
                print("    " + profile(app, user_ids[case.username], case.params).strip().replace("\n", "\n    "))

        for label, attribute in (("medians", "results"), ("fastest runs", "fastest")):
            print(f"\nsummary, {label} (service = list_page + dump; ratios to raw SQL page + count)")
            print(f"  {'case':<42}{'raw page':>10}{'raw count':>11}{'service':>11}{'ratio':>9}{'HTTP':>11}{'ratio':>9}")
            for case in all_cases:
                r = getattr(case, attribute)
                base = r["raw SQL page + count"]
                service, http = r["service list_page + dump"], r["HTTP GET /api/v1/notes/notes"]
                print(f"  {case.name:<42}{r['raw SQL page'] * 1000:8.2f}ms{r['raw SQL count'] * 1000:9.2f}ms"
                      f"{service * 1000:9.2f}ms{service / base:8.2f}x{http * 1000:9.2f}ms{http / base:8.2f}x")
            worst = max(getattr(c, attribute)["service list_page + dump"] / getattr(c, attribute)["raw SQL page + count"]
                        for c in all_cases)
            print(f"  worst service ratio {worst:.2f}x: {'within' if worst <= TARGET else 'over'} the {TARGET}x target")
