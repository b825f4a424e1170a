"""``python -m bench api_rps [--rows N] [--seconds S] [--workers W] [--clients C] [--database URL]``.

Requests per second of ``GET /api/v1/notes/notes`` (page 1, 20 rows, a region manager's
``department_tree`` scope over ``--rows`` notes, seeded as ``scoped_list`` does) under gunicorn,
against the bare Flask apps of ``bench/bare_app.py``: a hand-written Flask + SQLAlchemy endpoint
running the same query (the same scope condition, sort, page and count, built with SQLAlchemy
Core; its rows are checked to be the endpoint's), and, as the floor, the very statements the Yiti
endpoint runs (captured from the engine) replayed through the driver. All run as
``gunicorn --worker-class gthread`` on 127.0.0.1 with the same workers and threads; the client is
``--clients`` threads, each with one keep-alive ``http.client`` connection, for ``--seconds``
each. Prints the rates and the ratios (target: Yiti >= 0.7x the Flask + SQLAlchemy endpoint).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import event

from bench import scoped_list
from bench.common import BENCH_PASSWORD, BENCH_SECRET, bench_app, check_bench_database, reset_database
from core.extensions import db

TARGET = 0.7
PATH = "/api/v1/notes/notes?per_page=20"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def capture_statements(app, token: str) -> list[tuple[str, object]]:
    """The statements the endpoint runs against the notes table (page and count), with their parameters."""
    seen = []

    def listen(_conn, _cursor, statement, parameters, _context, _many):
        if "notes_note" in statement:
            seen.append((statement, list(parameters) if isinstance(parameters, tuple) else parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        response = app.test_client().get(PATH, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and len(response.get_json()["items"]) == 20, response.status_code
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert len(seen) == 2, seen
    return sorted(seen, key=lambda pair: "count(" in pair[0].lower())  # the page, then the count


def start(app_spec: str, port: int, workers: int, threads: int, env: dict) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    process = subprocess.Popen([gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                                "--worker-class", "gthread", "--threads", str(threads), "--log-level", "warning", "--preload",
                                app_spec], cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn {app_spec} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gunicorn {app_spec} did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def hammer(port: int, path: str, headers: dict, clients: int, seconds: float) -> float:
    """Requests per second answered 200 by ``clients`` keep-alive connections for ``seconds`` (after a warm-up)."""
    counts, errors = [0] * clients, []
    go = threading.Event()
    deadline = [0.0]

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(5):  # warm-up: every worker loads its app, caches fill
                conn.request("GET", path, headers=headers)
                conn.getresponse().read()
            go.wait()
            while time.perf_counter() < deadline[0]:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                counts[i] += 1
        except Exception as exc:  # reported after the run
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"client errors: {errors[:3]}")
    return sum(counts) / (time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench api_rps", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database", default=None,
                        help="database URL, wiped first; its name must contain 'bench' (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    check_bench_database(args.database)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = bench_app(url, tmp, plugins=["notes"])
        with app.app_context():
            from core import registry

            reset_database(db.engine)
            registry.create_schema()
            scoped_list.populate(args.rows)
            engine_name = db.engine.dialect.name
            db.session.commit()
        response = app.test_client().post("/api/v1/auth/tokens", json={
            "username": "bench_manager", "password": BENCH_PASSWORD, "name": "bench", "scope": "read",
            "expires_in_days": 1})
        assert response.status_code == 201, response.get_data(as_text=True)
        token = response.get_json()["token"]
        statements = capture_statements(app, token)
        statements_file = Path(tmp) / "statements.json"
        statements_file.write_text(json.dumps(statements, default=str))
        with app.app_context():
            db.engine.dispose()

        env = {"YITI_DATABASE_URL": url, "YITI_PLUGINS": "notes", "YITI_SECRET_KEY": BENCH_SECRET,
               "YITI_INSTANCE_PATH": tmp, "YITI_ENV": "development",
               "BENCH_DATABASE_URL": url, "BENCH_STATEMENTS": str(statements_file)}
        me, departments = _scope_values(statements[1][1])
        bare_path = f"/notes?per_page=20&owner_id={me}&departments={','.join(map(str, departments))}"
        results = {}
        port = free_port()
        server = start("bench.bare_app:create()", port, args.workers, args.threads, env)
        try:
            _same_rows(port, bare_path, app, token)
            results["bare Flask + SQLAlchemy"] = hammer(port, bare_path, {}, args.clients, args.seconds)
            results["bare Flask, SQL replayed"] = hammer(port, "/notes/replay", {}, args.clients, args.seconds)
        finally:
            stop(server)
        port = free_port()
        server = start("core:create_app()", port, args.workers, args.threads, env)
        try:
            results["Yiti /api/v1/notes/notes"] = hammer(port, PATH, {"Authorization": f"Bearer {token}"},
                                                         args.clients, args.seconds)
        finally:
            stop(server)

    bare, replayed, yiti = results.values()
    print(f"api rps: page 1 (20 rows) of a department_tree scope over {args.rows:,} notes, {engine_name}; "
          f"gunicorn gthread {args.workers} workers x {args.threads} threads, {args.clients} keep-alive clients, "
          f"{args.seconds:.0f} s each")
    for name, rps in results.items():
        print(f"  {name:<28}{rps:9.1f} req/s")
    ratio = yiti / bare
    print(f"  Yiti / bare Flask + SQLAlchemy = {ratio:.2f}x (target >= {TARGET}x): "
          f"{'OK' if ratio >= TARGET else 'UNDER TARGET'}")
    print(f"  Yiti / SQL replayed through the driver = {yiti / replayed:.2f}x (the floor, for reference)")


def _scope_values(count_params) -> tuple[int, list[int]]:
    """The owner id and the department ids the endpoint's count query was given (as the driver got them:
    a list for SQLite's ``?``, a dict for psycopg's ``%(name)s``)."""
    if isinstance(count_params, dict):
        values = [v for k, v in count_params.items() if k.startswith(("owner_id", "department_id"))]
    else:
        values = list(count_params)
    return values[0], values[1:]


def _same_rows(port: int, bare_path: str, app, token: str) -> None:
    """The hand-written endpoint answers the very rows (and total) the Yiti endpoint does."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", bare_path)
        bare = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    yiti = app.test_client().get(PATH, headers={"Authorization": f"Bearer {token}"}).get_json()
    assert bare["total"] == yiti["total"], (bare["total"], yiti["total"])
    assert [row["id"] for row in bare["items"]] == [row["id"] for row in yiti["items"]]
