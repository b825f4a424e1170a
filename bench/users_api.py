"""``python -m bench users_api [--rows N] [--database URL]``: the cost of the framework around a list query.

Three ways to answer "page 1 of the users list, 20 rows, as JSON" on the same database:

- raw SQL: the page query and the count through the DB-API cursor, nothing else;
- bare Flask: the same two queries in a plain Flask view with ``jsonify``;
- Yiti: ``GET /api/v1/core/users`` (session auth, marshmallow schema, pagination envelope).

It prints the median time of each and its ratio to raw SQL, so a change that makes the Yiti path
slower shows up as a bigger ratio. Runs on demand (``make bench``), never as a timed test.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from flask import Flask, jsonify
from sqlalchemy import text

from bench.common import BENCH_PASSWORD, bench_app, check_bench_database, line, median_seconds, reset_database
from bench.data import bulk_users
from core.extensions import db

SQL_PAGE = (
    "SELECT id, username, display_name, email, mobile, active, department_id, manager_id, language, "
    "timezone, last_login_at, version, updated_at FROM core_user ORDER BY id LIMIT 20 OFFSET 0"
)
SQL_COUNT = "SELECT count(*) FROM core_user"


def populate(rows: int) -> None:
    """``rows`` users in one department, inserted in bulk (no password hashing)."""
    from core.org.models import Department
    from core.org.roles import ensure_default_roles

    ensure_default_roles()
    department = Department(name="基准部门", path="/")
    db.session.add(department)
    db.session.flush()
    department.path = f"/{department.id}/"
    bulk_users(rows, [department.id])
    db.session.commit()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench users_api", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--database", default=None,
                        help="database URL, wiped first; its name must contain 'bench' (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    check_bench_database(args.database)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = bench_app(url, tmp, plugins=[])
        with app.app_context():
            from core import registry
            from core.org import services

            reset_database(db.engine)
            registry.create_schema()
            populate(args.rows)
            services.create_user(None, {"username": "benchadmin", "display_name": "Bench",
                                        "password": BENCH_PASSWORD, "roles": ["admin"]})
            db.session.commit()
            engine = db.engine

            def raw_sql():
                with engine.connect() as conn:
                    conn.execute(text(SQL_PAGE)).all()
                    conn.execute(text(SQL_COUNT)).scalar()

            results = {"raw SQL": median_seconds(raw_sql, args.repeat, warmup=5)}

        bare = Flask("bare")

        @bare.get("/users")
        def users():
            with engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(text(SQL_PAGE))]
                total = conn.execute(text(SQL_COUNT)).scalar()
            return jsonify({"items": rows, "total": total})

        bare_client = bare.test_client()
        results["bare Flask"] = median_seconds(lambda: bare_client.get("/users"), args.repeat, warmup=5)

        client = app.test_client()
        client.post("/login", data={"username": "benchadmin", "password": BENCH_PASSWORD})
        response = client.get("/api/v1/core/users?per_page=20")
        assert response.status_code == 200 and len(response.get_json()["items"]) == 20, response.status_code
        results["Yiti /api/v1/core/users"] = median_seconds(lambda: client.get("/api/v1/core/users?per_page=20"),
                                                            args.repeat, warmup=5)

    base = results["raw SQL"]
    print(f"users list, page of 20 out of {args.rows} rows, {engine.dialect.name}, median of {args.repeat}")
    for name, seconds in results.items():
        print(line(name, seconds, base, width=26))
