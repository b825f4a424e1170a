"""``python -m bench [NAME] [options]``: run one benchmark by name, or all of them.

    python -m bench                                    every benchmark with its defaults (``make bench``)
    python -m bench users_api --rows 20000
    python -m bench scoped_list --rows 1000000 --database postgresql://postgres@127.0.0.1:5432/yiti_bench
    python -m bench backup --rows 1000000
    python -m bench crm --customers 1000000 --database postgresql://postgres@127.0.0.1:5432/yiti_bench

Options after no name go to every benchmark (e.g. ``python -m bench --database URL``);
``python -m bench NAME --help`` lists a benchmark's options.
"""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("users_api", "scoped_list", "crm", "import_export", "api_rps", "backup")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS))
        return
    if argv and not argv[0].startswith("-"):
        name, argv = argv[0], argv[1:]
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
        names = [name]
    else:
        names = list(BENCHMARKS)
    for i, name in enumerate(names):
        if i:
            print()
        importlib.import_module(f"bench.{name}").main(argv)


if __name__ == "__main__":
    main()
