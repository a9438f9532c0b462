"""Flat combining: concurrent jobs run together, a batch waits for requests still being served, errors reach
every job of their batch."""

import threading
import time
from collections.abc import Sequence

import pytest

from localft.inference.batching import Combiner


class Recorder:
    """A batch runner that doubles its jobs and remembers each batch it was given."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    def __call__(self, jobs: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(jobs))
        if self.fail_on in jobs:
            raise ValueError(f"job {self.fail_on} is bad")
        return [2 * j for j in jobs]


def in_thread(fn: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)  # type: ignore[arg-type]  # a stuck one must not hang pytest
    thread.start()
    return thread


def test_a_batch_waits_for_a_request_still_being_served() -> None:
    runner = Recorder()
    combiner: Combiner[int, int] = Combiner(runner, threading.RLock(), gather_seconds=30)
    serving, results = threading.Event(), {}

    def slow_request() -> None:  # renders and tokenizes for a while, then submits
        with combiner.serving():
            serving.set()
            time.sleep(0.2)
            results["slow"] = combiner.submit(2)

    slow = in_thread(slow_request)
    serving.wait()
    results["quick"] = combiner.submit(1)  # leads the batch, and waits for the slow request to join it
    slow.join()
    assert results == {"quick": 2, "slow": 4}
    assert runner.batches == [[1, 2]]


def test_a_lone_request_runs_at_once_and_a_finished_one_is_not_waited_for() -> None:
    runner = Recorder()
    combiner: Combiner[int, int] = Combiner(runner, threading.RLock(), gather_seconds=3600)
    with combiner.serving():
        assert combiner.submit(1) == 2  # its own submission is not waited for
    with combiner.serving():
        pass  # a request that never submitted (it generated instead) leaves no trace
    lone = in_thread(combiner.submit, 5)
    lone.join(timeout=60)
    assert not lone.is_alive(), "a lone job waited for requests that were not there"
    assert runner.batches == [[1], [5]]


def test_a_request_reading_its_result_is_waited_for_before_its_next_job() -> None:
    runner = Recorder()
    combiner: Combiner[int, int] = Combiner(runner, threading.RLock(), gather_seconds=30)
    started = threading.Barrier(2)

    def multi_step() -> None:  # like multi-label decoding: several jobs in one request
        with combiner.serving():
            combiner.submit(10)
            started.wait()
            time.sleep(0.2)  # reading the first result before submitting the next job
            combiner.submit(11)

    request = in_thread(multi_step)
    started.wait()
    combiner.submit(1)
    request.join()
    assert runner.batches == [[10], [1, 11]]


def submit_together(combiner: Combiner[int, int], jobs: Sequence[int]) -> list[BaseException]:
    """Submit `jobs` from one serving thread each, all at once; the errors they raised (every thread must end)."""
    gate, errors = threading.Barrier(len(jobs)), []

    def request(job: int) -> None:
        with combiner.serving():
            gate.wait()
            try:
                combiner.submit(job)
            except BaseException as exc:
                errors.append(exc)

    threads = [in_thread(request, j) for j in jobs]
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a job was left waiting"
    return errors


def test_a_failed_batch_fails_every_job_in_it_and_the_next_batch_runs() -> None:
    runner = Recorder(fail_on=3)
    combiner: Combiner[int, int] = Combiner(runner, threading.RLock(), gather_seconds=30)
    errors = submit_together(combiner, [3, 4, 5])
    assert len(runner.batches) == 1 and sorted(runner.batches[0]) == [3, 4, 5]  # gathered, then failed together
    assert len(errors) == 3 and all(isinstance(e, ValueError) and "job 3 is bad" in str(e) for e in errors)
    with pytest.raises(ValueError):
        combiner.submit(3)
    assert combiner.submit(6) == 12


def test_an_interrupted_batch_ends_every_job_in_it() -> None:
    def interrupted(jobs: Sequence[int]) -> list[int | BaseException]:
        if jobs:
            raise SystemExit("shutting down")
        return []  # without the fix, the jobs' other thread kept leading empty batches

    combiner: Combiner[int, int] = Combiner(interrupted, threading.RLock(), gather_seconds=30)
    errors = submit_together(combiner, [1, 2])
    assert len(errors) == 2 and all(isinstance(e, SystemExit) for e in errors)
