"""Every benchmark in ``bench/`` still runs end to end (tiny sizes, SQLite; nothing is timed here).

The numbers mean something only at full size (``python -m bench <name>``); this only keeps the
scripts working as the code they measure changes.
"""
from __future__ import annotations

import importlib
import re

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.__main__ import BENCHMARKS
from tests.conftest import ENGINES, PG_URL

#: A figure the benchmark reports: a ratio (``1.23x``), seconds, or a rate.
FIGURE = re.compile(r"\d[\d,.]*\s*(x|ms|s|req/s|rows/s)\b")

SMALL = {
    "users_api": ["--rows", "200", "--repeat", "3"],
    "scoped_list": ["--rows", "2000", "--repeat", "3"],
    "crm": ["--customers", "2000", "--followups-per-customer", "2", "--repeat", "3"],
    "import_export": ["--rows", "300"],
    "api_rps": ["--rows", "500", "--seconds", "0.5", "--workers", "1", "--threads", "2", "--clients", "2"],
    "backup": ["--rows", "300"],
}


def test_every_benchmark_has_a_small_run():
    assert set(SMALL) == set(BENCHMARKS)


@pytest.mark.parametrize("name", [b for b in BENCHMARKS if b != "crm"])
def test_the_benchmark_runs_and_prints_its_figures(name, capsys):
    importlib.import_module(f"bench.{name}").main(SMALL[name])
    out = capsys.readouterr().out
    assert FIGURE.search(out), out


def _bench_database(benchmark: str) -> str:
    """A throw-away PostgreSQL database for ``benchmark`` (it wipes it; one each, so they can run side by side)."""
    url = make_url(PG_URL)
    name = f"yiti_bench_smoke_{benchmark}"
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
                conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # noqa: BLE001 - no server here: the same skip as the PostgreSQL tests
        pytest.skip(f"PostgreSQL not reachable ({exc.__class__.__name__})")
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.mark.skipif("postgresql" not in ENGINES, reason="YITI_TEST_ENGINES leaves PostgreSQL out")
@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_benchmark_runs_on_postgresql(name, capsys):
    importlib.import_module(f"bench.{name}").main([*SMALL[name], "--database", _bench_database(name)])
    out = capsys.readouterr().out
    assert "skipped" not in out and FIGURE.search(out), out
