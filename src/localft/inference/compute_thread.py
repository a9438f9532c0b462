"""The one thread that runs the engine's tensor work, whichever request thread asked for it.

PyTorch's CPU kernels run on OpenMP, and OpenMP (libgomp) gives every thread that starts parallel work its own team
of helper threads, kept until that thread ends. Once a process holds more OpenMP threads than there are cores, even
idle ones, libgomp stops letting helpers spin between parallel regions, and each of the thousands of small regions
in a forward pass then waits for a helper to wake up. Measured on two cores: a batch of 16 SmolLM2 requests took
566-614 ms with one team and 798-862 ms while four other, idle, teams existed (801-1072 ms beside a single one;
docs/studies/inference-speed.md). So:

- request threads (a server's thread pool) hand their tensor work to this thread and start none themselves;
- the thread ends after `IDLE_SECONDS` without work, taking its team along, so a training job in the same process
  (the server's own worker) does not run beside an idle team. The next request starts it again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from localft.base_models import apply_threads

T = TypeVar("T")

IDLE_SECONDS = 5.0
"""How long the thread waits for work before it ends."""


class ComputeThread:
    """Runs callables one at a time on a single thread, started on demand and ended when idle."""

    def __init__(self, name: str = "localft-compute", idle_seconds: float = IDLE_SECONDS) -> None:
        self._name = name
        self._idle_seconds = idle_seconds
        self._work: queue.SimpleQueue[tuple[Callable[..., Any], tuple[object, ...], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _thread and _pending
        self._thread: threading.Thread | None = None
        self._pending = 0
        self.started = 0
        """How many times the thread was started (tests read it)."""

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the compute thread; blocks until it returns, and raises what it raised. Called from the
        compute thread itself, it runs `fn` at once (queueing it would wait for itself)."""
        if self._thread is not None and threading.current_thread() is self._thread:
            return fn(*args)
        done: Future[T] = Future()
        with self._lock:
            self._pending += 1
            self._work.put((fn, args, done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self.started += 1
                self._thread.start()
        return done.result()

    def _serve(self) -> None:
        apply_threads()
        while True:
            try:
                fn, args, done = self._work.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._pending == 0:  # nothing was queued since the wait ran out: end
                        self._thread = None
                        return
                continue
            apply_threads()  # the process's thread count may have changed since the thread started
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # delivered to the caller, who raises it
                done.set_exception(exc)
            finally:
                with self._lock:
                    self._pending -= 1
