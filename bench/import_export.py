"""``python -m bench import_export [--rows N] [--database URL] [--profile]``: import and export many records.

CRM customers (valid unified social credit codes, ``plugins/crm/creditcode.py``) as a CSV file of
``--rows`` rows (default 100,000), imported the way a large file is: ``core.imports.preview``
stores it, the worker's task (``core.imports.jobs.run``) dry-runs it, then applies it with its
batched commits. Then the same rows are exported as CSV and XLSX through the API (streamed),
read to the end. For each step it prints the time, rows per second and the growth of the
process's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the high-water
mark: a step that keeps memory flat adds little to it). Targets: import (dry run + apply) at most
20 s, each export at most 10 s, for 100,000 rows. ``--profile`` prints the top costs of the
dry run and the apply step (cProfile; ``BENCH_SORT=cumulative`` and ``BENCH_TOP=40`` change the listing). Wall time on a busy machine says little: the CPU time of this process
(``time.process_time``, the database server's not included) is printed beside it. Runs on demand, never in the test suite.
"""
from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path

from bench.common import BENCH_PASSWORD, bench_app, check_bench_database, reset_database
from core.extensions import db

IMPORT_TARGET = 20.0
EXPORT_TARGET = 10.0
TARGET_ROWS = 100_000
PROVINCES = (("上海", "上海"), ("广东", "深圳"), ("浙江", "杭州"), ("江苏", "苏州"), ("北京", "北京"))


def customers_csv(rows: int) -> bytes:
    """``rows`` customers with distinct names and valid credit codes, headers as the template's field names."""
    from plugins.crm import creditcode

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "credit_code", "industry", "province", "city", "level", "source", "address"])
    for i in range(rows):
        province, city = PROVINCES[i % len(PROVINCES)]
        writer.writerow([f"基准客户{i:07d}有限公司", creditcode.make(i, "310000"), "制造业", province, city,
                         "ABC"[i % 3], "展会", f"{city}市示例路{i % 1000}号"])
    return buffer.getvalue().encode("utf-8")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Step:
    """Time and peak-memory growth of one step."""

    def __init__(self, name: str, rows: int):
        self.name, self.rows = name, rows

    def __enter__(self):
        self.memory = peak_mb()
        self.cpu = time.process_time()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.cpu = time.process_time() - self.cpu
        self.growth = peak_mb() - self.memory


def report(step: Step, target: float | None, scale: float) -> str:
    verdict = ""
    if target is not None:
        projected = step.seconds * scale
        verdict = (f"   target <= {target:.0f} s for {TARGET_ROWS:,}: "
                   + ("OK" if projected <= target else "OVER")
                   + (f" (projected {projected:.1f} s)" if scale != 1 else ""))
    return (f"  {step.name:<28}{step.seconds:8.2f} s (CPU {step.cpu:7.2f} s) {step.rows / step.seconds:9,.0f} rows/s"
            f"   peak RSS +{step.growth:6.1f} MB{verdict}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench import_export", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--database", default=None,
                        help="database URL, wiped first; its name must contain 'bench' (default: a temporary SQLite file)")
    parser.add_argument("--profile", action="store_true", help="print the top costs of the dry run and the apply step (cProfile)")
    args = parser.parse_args(argv)
    check_bench_database(args.database)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = bench_app(url, tmp, plugins=["approval", "crm"])
        app.config["YITI"]["IMPORT_BACKGROUND_ROWS"] = 0  # every file takes the worker's path
        with app.app_context():
            from core import registry
            from core.org import services
            from core.org.roles import ensure_default_roles

            reset_database(db.engine)
            registry.create_schema()
            ensure_default_roles()
            services.create_user(None, {"username": "benchadmin", "display_name": "Bench",
                                        "password": BENCH_PASSWORD, "roles": ["admin"]})
            db.session.commit()
            engine_name = db.engine.dialect.name
        data = customers_csv(args.rows)
        scale = TARGET_ROWS / args.rows
        print(f"import/export: {args.rows:,} CRM customers ({len(data) / 1e6:.1f} MB CSV), {engine_name}; "
              f"memory = growth of peak RSS (getrusage ru_maxrss), starting at {peak_mb():.0f} MB")
        steps = []
        import_id = _import(app, data, args.rows, steps, args.profile)
        _export(app, args.rows, steps)
        with app.app_context():
            from core.imports.models import Import

            imp = db.session.get(Import, import_id)
            assert (imp.status, imp.inserted, imp.rejected) == ("done", args.rows, 0), (imp.status, imp.inserted, imp.error)
        check, apply_, *exports = steps
        total = Step("import (dry run + apply)", args.rows)
        total.seconds, total.growth = check.seconds + apply_.seconds, max(check.growth, apply_.growth)
        total.cpu = check.cpu + apply_.cpu
        print(report(check, None, scale))
        print(report(apply_, None, scale))
        print(report(total, IMPORT_TARGET, scale))
        for step in exports:
            print(report(step, EXPORT_TARGET, scale))


def _import(app, data: bytes, rows: int, steps: list, profile: bool) -> int:
    from core.imports import jobs, service
    from core.org.models import User
    from core import resources as records
    from sqlalchemy import select

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "benchadmin"))
        imp = service.preview(records.get_resource("crm.customer"), user, "customers.csv", data)
        db.session.commit()
        import_id, user_id = imp.id, user.id
    checker = cProfile.Profile() if profile else None
    with Step("dry run (worker)", rows) as step:
        if checker:
            checker.enable()
        assert jobs.run(app, import_id, "check") == "previewed"
        if checker:
            checker.disable()
    steps.append(step)
    with app.app_context():
        service.apply(import_id, db.session.get(User, user_id))
        db.session.commit()
    profiler = cProfile.Profile() if profile else None
    with Step("apply (worker)", rows) as step:
        if profiler:
            profiler.enable()
        status = jobs.run(app, import_id, "apply")
        if profiler:
            profiler.disable()
    assert status == "done", status
    steps.append(step)
    for name, stats in (("dry run", checker), ("apply", profiler)) if profile else ():
        out = io.StringIO()
        pstats.Stats(stats, stream=out).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(
            int(os.environ.get("BENCH_TOP", "25")))
        print(f"--- {name} ---\n{out.getvalue()}")
    return import_id


def _export(app, rows: int, steps: list) -> None:
    client = app.test_client()
    response = client.post("/login", data={"username": "benchadmin", "password": BENCH_PASSWORD})
    assert response.status_code == 302, response.status_code
    for kind in ("csv", "xlsx"):
        with Step(f"export.{kind} (streamed)", rows) as step:
            response = client.get(f"/api/v1/crm/customers/export.{kind}", buffered=False)
            assert response.status_code == 200, response.status_code
            size = sum(len(chunk) for chunk in response.response)
            response.close()
        assert size > rows * 20, size
        steps.append(step)
