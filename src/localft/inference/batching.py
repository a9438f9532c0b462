"""Concurrent requests batched by flat combining: whoever holds the compute lock runs everyone's pending work.

A request queues its job and waits for the lock. The thread that gets it drains the queue and runs all pending jobs
as one batch, so requests that arrive while a batch is running ride together in the next one. A lone request runs
at once (no waiting window), and no background thread is needed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


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
    ) -> None:
        self._run_batch = run_batch
        self._lock = lock
        self._max_batch = max_batch
        self._queue: deque[_Pending[Job, Result]] = deque()
        self._queue_lock = threading.Lock()
        self.batches_run = 0
        """How many batches ran (tests and benchmarks read it to see batching happen)."""

    def submit(self, job: Job) -> Result:
        """Run `job` (possibly batched with others) and return its result or raise its error."""
        pending: _Pending[Job, Result] = _Pending(job)
        with self._queue_lock:
            self._queue.append(pending)
        while not pending.done:
            with self._lock:
                if pending.done:
                    break
                with self._queue_lock:
                    batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                self._run(batch)
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _run(self, batch: list[_Pending[Job, Result]]) -> None:
        try:
            results = self._run_batch([p.job for p in batch])
        except Exception as exc:  # a failure of the whole batch belongs to every job in it
            results = [exc] * len(batch)
        self.batches_run += 1
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                pending.error = result
            else:
                pending.result = result
            pending.done = True
