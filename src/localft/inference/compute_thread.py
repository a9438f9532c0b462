"""The one thread that runs the engine's tensor work, whichever request thread asked for it.

PyTorch's CPU kernels run on OpenMP, and OpenMP gives every thread that starts parallel work its own team of
helper threads. Once a process holds more OpenMP threads than there are cores, even idle ones, libgomp stops
letting helpers spin between parallel regions: each of the thousands of small regions in a forward pass then waits
for a helper to wake from sleep. Measured on two cores: the same batch of 16 SmolLM2 requests took 570-610 ms with
one team and 800-860 ms while four other, idle, teams existed (BENCHMARKS.md). Request threads (a server's thread
pool) therefore hand their tensor work to this thread and never start parallel work themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from localft.base_models import apply_threads

T = TypeVar("T")


class ComputeThread:
    """Runs callables one at a time on a single long-lived thread (started on first use)."""

    def __init__(self, name: str = "localft-compute") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ident: int | None = None

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the compute thread; blocks until it returns, and raises what it raised. Called from the
        compute thread itself, it runs `fn` at once (queueing it would wait for itself)."""
        if threading.get_ident() == self._ident:
            return fn(*args)
        return self._executor.submit(self._call, fn, *args).result()

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        self._ident = threading.get_ident()
        apply_threads()  # the process's thread count, which may change after the thread started
        return fn(*args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
