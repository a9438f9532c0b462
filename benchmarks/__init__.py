"""Benchmarks: `python -m benchmarks` runs every `bench_*.py` module's `main()` (see __main__.py)."""
