"""``python -m bench [--rows N] [--database URL]``: the cost of the framework around a list query.

Three ways to answer "page 1 of the users list, 20 rows, as JSON" on the same database:

- raw SQL: the page query and the count through the DB-API cursor, nothing else;
- bare Flask: the same two queries in a plain Flask view with ``jsonify``;
- Yiti: ``GET /api/v1/core/users`` (session auth, marshmallow schema, pagination envelope).

It prints the median time of each and its ratio to raw SQL, so a change that makes the Yiti path
slower shows up as a bigger ratio. Runs on demand (``make bench``), never as a timed test.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from flask import Flask, jsonify
from sqlalchemy import insert, text

from core import create_app
from core.extensions import db

SQL_PAGE = (
    "SELECT id, username, display_name, email, mobile, active, department_id, manager_id, language, "
    "timezone, last_login_at, version, updated_at FROM core_user ORDER BY id LIMIT 20 OFFSET 0"
)
SQL_COUNT = "SELECT count(*) FROM core_user"


def timed(func, repeat: int) -> float:
    """Median seconds of ``func()`` over ``repeat`` runs, after a few warm-up calls."""
    for _ in range(5):
        func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def populate(rows: int) -> None:
    """``rows`` users in one department, inserted in bulk (no password hashing)."""
    from core.org.models import Department, User
    from core.org.roles import ensure_default_roles

    ensure_default_roles()
    department = Department(name="基准部门", path="/")
    db.session.add(department)
    db.session.flush()
    department.path = f"/{department.id}/"
    batch = [
        {"username": f"user{i:07d}", "display_name": f"用户{i}", "email": f"user{i}@example.com",
         "mobile": f"138{i:08d}", "department_id": department.id, "active": True, "timezone": "Asia/Shanghai",
         "session_epoch": 0, "version": 1}
        for i in range(rows)
    ]
    for start in range(0, rows, 5000):
        db.session.execute(insert(User), batch[start:start + 5000])
    db.session.commit()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--database", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": tmp, "PLUGINS": [],
                          "SECRET_KEY": "bench-secret-key-0123456789-0123456789", "PASSWORD_HASH": "scrypt:1024:8:1"})
        with app.app_context():
            from core import registry
            from core.org import services

            registry.create_schema()
            populate(args.rows)
            services.create_user(None, {"username": "benchadmin", "display_name": "Bench",
                                        "password": "Bench-Password-77", "roles": ["admin"]})
            db.session.commit()
            engine = db.engine

            def raw_sql():
                with engine.connect() as conn:
                    conn.execute(text(SQL_PAGE)).all()
                    conn.execute(text(SQL_COUNT)).scalar()

            results = {"raw SQL": timed(raw_sql, args.repeat)}

        bare = Flask("bare")

        @bare.get("/users")
        def users():
            with engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(text(SQL_PAGE))]
                total = conn.execute(text(SQL_COUNT)).scalar()
            return jsonify({"items": rows, "total": total})

        bare_client = bare.test_client()
        results["bare Flask"] = timed(lambda: bare_client.get("/users"), args.repeat)

        app.config["WTF_CSRF_ENABLED"] = False  # the login form's token is not what is measured
        client = app.test_client()
        client.post("/login", data={"username": "benchadmin", "password": "Bench-Password-77"})
        response = client.get("/api/v1/core/users?per_page=20")
        assert response.status_code == 200 and len(response.get_json()["items"]) == 20, response.status_code
        results["Yiti /api/v1/core/users"] = timed(lambda: client.get("/api/v1/core/users?per_page=20"), args.repeat)

    base = results["raw SQL"]
    print(f"users list, page of 20 out of {args.rows} rows, {engine.dialect.name}, median of {args.repeat}")
    for name, seconds in results.items():
        print(f"  {name:<26} {seconds * 1000:8.3f} ms   {seconds / base:6.1f}x raw SQL")


if __name__ == "__main__":
    main()
