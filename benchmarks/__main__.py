"""`python -m benchmarks [NAME ...]` (what `make bench` runs): every `benchmarks/bench_*.py` module's `main()`.

Any team adds a benchmark by dropping a `bench_<name>.py` module with a `main()` here. Without names, all run in
alphabetical order; `--list` shows them. A failing benchmark is reported and the others still run; the exit code
is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Names of the benchmark modules (`bench_airline.py` -> `airline`)."""
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(PACKAGE)]) if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    failed = []
    for name in args.names or available:
        started = time.perf_counter()
        print(f"=== benchmark {name}", flush=True)
        try:
            importlib.import_module(f"benchmarks.bench_{name}").main()
        except Exception:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            failed.append(name)
        print(
            f"=== {name}: {'FAILED' if name in failed else 'done'} in {time.perf_counter() - started:.0f}s", flush=True
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
