"""Concurrent requests batched by flat combining: whoever holds the compute lock runs everyone's pending work.

A request queues its job and waits. One waiting thread at a time leads: it takes the lock, drains the queue and runs
all pending jobs as one batch, so requests that arrive while a batch is running ride together in the next one. No
background thread collects the jobs (the engine hands the batch itself to its compute thread).

Before draining, the leader waits briefly for requests that are being served but not queued: still rendering and
tokenizing, or reading the result of their previous job (see `serving`). Without that wait, the first request to
finish its preparation ran alone while the others were on their way, and batches of 16 concurrent SmolLM2 requests
alternated between 1 and 15 requests; with it they hold all 16 (docs/studies/inference-speed.md). A lone request has
nothing to wait
for and runs at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")

GATHER_SECONDS = 0.05
"""How long a batch waits at most for requests still being served (one prepares in a few milliseconds; the bound
only matters when one is slow, e.g. loading its tokenizer)."""


class _Pending(Generic[Job, Result]):
    __slots__ = ("done", "error", "job", "result")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class Combiner(Generic[Job, Result]):
    """Runs `run_batch(jobs) -> results` (same order, one per job) over whatever is pending, under `lock`."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Job]], Sequence[Result | BaseException]],
        lock: threading.RLock,
        max_batch: int = 64,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self._run_batch = run_batch
        self._lock = lock
        self._max_batch = max_batch
        self._gather_seconds = gather_seconds
        self._queue: deque[_Pending[Job, Result]] = deque()
        self._changed = threading.Condition(threading.Lock())  # guards the queue and the two fields below
        self._outside = 0  # requests being served that are neither queued nor in a batch
        self._leading = False  # a thread is gathering or running a batch
        self._local = threading.local()  # per thread: whether it is inside `serving`
        self.batches_run = 0
        """How many batches ran (tests and benchmarks read it to see batching happen)."""

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Marks the calling thread as serving a request that submits jobs. While such a thread is neither queued
        nor waiting for its batch (it is rendering, tokenizing, or reading its last result), it is probably about
        to submit, and a batch about to run waits for it, up to `gather_seconds`."""
        if getattr(self._local, "serving", False):  # already marked by an outer block
            yield
            return
        self._local.serving = True
        self._set_outside(+1)
        try:
            yield
        finally:
            self._set_outside(-1)
            self._local.serving = False

    def submit(self, job: Job) -> Result:
        """Run `job` (possibly batched with others) and return its result or raise its error."""
        pending: _Pending[Job, Result] = _Pending(job)
        serving = getattr(self._local, "serving", False)
        with self._changed:
            self._queue.append(pending)
            self._outside -= serving
            self._changed.notify_all()
        try:
            self._wait_or_lead(pending)
        finally:
            self._set_outside(+serving)
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _wait_or_lead(self, pending: _Pending[Job, Result]) -> None:
        while True:
            with self._changed:  # wait for the batch holding this job, or for the chance to lead the next one
                while not pending.done and self._leading:
                    self._changed.wait()
                if pending.done:
                    return
                self._leading = True
            try:
                with self._lock:
                    self._gather()
                    with self._changed:
                        batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                    self._run(batch)
            finally:
                with self._changed:  # every waiter of the batch learns at once that its job is done
                    self._leading = False
                    self._changed.notify_all()

    def _set_outside(self, change: int) -> None:
        if change:
            with self._changed:
                self._outside += change
                self._changed.notify_all()

    def _gather(self) -> None:
        """Wait until every request being served is queued, the batch is full, or `gather_seconds` passed."""
        deadline = time.monotonic() + self._gather_seconds
        with self._changed:
            while self._outside > 0 and len(self._queue) < self._max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)

    def _run(self, batch: list[_Pending[Job, Result]]) -> None:
        interrupted: BaseException | None = None
        try:
            results = self._run_batch([p.job for p in batch])
        except Exception as exc:  # a failure of the whole batch belongs to every job in it
            results = [exc] * len(batch)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the jobs end too, or their threads wait forever
            results, interrupted = [exc] * len(batch), exc
        self.batches_run += 1
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                pending.error = result
            else:
                pending.result = result
            pending.done = True
        if interrupted is not None:
            raise interrupted
