"""The compute thread: one thread for every caller's tensor work, errors raised in the caller, ended when idle."""

import threading
import time

import pytest

from localft.inference.compute_thread import ComputeThread


def test_every_caller_runs_on_the_same_thread() -> None:
    compute = ComputeThread(idle_seconds=60)
    names: list[str] = []

    def call() -> None:
        names.append(compute.run(lambda: threading.current_thread().name))

    callers = [threading.Thread(target=call) for _ in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert names == ["localft-compute"] * 8
    assert compute.started == 1


def test_errors_are_raised_in_the_caller_and_nested_calls_run_inline() -> None:
    compute = ComputeThread(idle_seconds=60)

    def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        compute.run(fail)
    assert compute.run(lambda: compute.run(lambda x: x + 1, 41)) == 42  # would deadlock if queued


def test_the_thread_ends_when_idle_and_starts_again_on_demand() -> None:
    compute = ComputeThread(idle_seconds=0.05)
    first = compute.run(threading.current_thread)
    first.join(timeout=30)
    assert not first.is_alive(), "the idle compute thread did not end"
    second = compute.run(threading.current_thread)
    assert second is not first and compute.started == 2
    time.sleep(0.01)
    assert compute.run(lambda: 7) == 7
