"""What every benchmark shares: a bench app, a throw-away database, a median timer, a report line."""
from __future__ import annotations

import statistics
import time

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url

from core import create_app

BENCH_SECRET = "bench-secret-key-0123456789-0123456789"
BENCH_PASSWORD = "Bench-Password-77"


def bench_app(url: str, instance_path: str, plugins: list[str]):
    """A Yiti app on ``url`` with ``plugins``, a cheap password hash and no CSRF (the login form's token is not measured)."""
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": instance_path, "PLUGINS": plugins,
                      "SECRET_KEY": BENCH_SECRET, "PASSWORD_HASH": "scrypt:1024:8:1"})
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def check_bench_database(url: str | None) -> None:
    """Refuse a database whose name does not say ``bench``: benchmarks wipe it."""
    if url is None:
        return
    name = make_url(url).database or ""
    if "bench" not in name.rsplit("/", 1)[-1]:
        raise SystemExit(f"refusing to wipe {name!r}: a benchmark database's name must contain 'bench' "
                         "(e.g. postgresql://postgres@127.0.0.1:5432/yiti_bench)")


def reset_database(engine) -> None:
    """Drop every table, whatever created it (an earlier run with other plugins, a migration)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            return
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        existing = MetaData()
        existing.reflect(bind=conn)
        existing.drop_all(bind=conn)
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def median_seconds(sample, repeat: int, warmup: int = 3) -> float:
    """Median of ``repeat`` runs of ``sample()``, after ``warmup`` runs.

    ``sample()`` either returns the seconds it measured itself as a float (to leave set-up out) or
    anything else, in which case the whole call is timed.
    """
    for _ in range(warmup):
        sample()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        measured = sample()
        elapsed = time.perf_counter() - start
        samples.append(measured if isinstance(measured, float) else elapsed)
    return statistics.median(samples)


def line(name: str, seconds: float, base: float | None = None, width: int = 34) -> str:
    ratio = f"   {seconds / base:6.2f}x raw SQL" if base else ""
    return f"  {name:<{width}} {seconds * 1000:9.3f} ms{ratio}"


def compare(samples: dict, repeat: int, warmup: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """Median and fastest seconds of each of ``samples`` (name → sample, as for ``median_seconds``), run in turn.

    Interleaving the runs keeps a slower or busier minute on the machine from favouring one of them;
    on a busy machine the fastest run says more about the code than the median does.
    """
    for sample in samples.values():
        for _ in range(warmup):
            sample()
    times = {name: [] for name in samples}
    for _ in range(repeat):
        for name, sample in samples.items():
            start = time.perf_counter()
            measured = sample()
            elapsed = time.perf_counter() - start
            times[name].append(measured if isinstance(measured, float) else elapsed)
    return ({name: statistics.median(values) for name, values in times.items()},
            {name: min(values) for name, values in times.items()})
