"""LOCALFT_THREADS reaches the threads that do the work, not only the one that read the setting."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from localft.base_models import loading
from localft.base_models.loading import apply_threads, use_threads

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to tell 1 thread from 2")


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    use_threads(1)
    yield
    loading._threads = 0
    torch.set_num_threads(before)


def _cpu_ticks() -> dict[str, int]:
    """User-mode CPU ticks of each of this process's OS threads."""
    ticks = {}
    for task in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{task}/stat").read_text()
        except FileNotFoundError:  # a thread that just ended
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks[task] = int(fields[11])  # utime: field 14 of stat, the 12th after the command name
    return ticks


def _busy_threads_while(work: threading.Thread) -> int:
    """OS threads that did a real share of the CPU work while `work` ran its matrix multiplies."""
    work.start()
    time.sleep(0.3)  # past torch's start-up
    before = _cpu_ticks()
    time.sleep(1.5)
    after = _cpu_ticks()
    work.join()
    used = [after[t] - before.get(t, 0) for t in after]
    return sum(1 for u in used if u > 0.25 * max(used))


def _matmuls(prepare: bool) -> threading.Thread:
    def run() -> None:
        if prepare:
            apply_threads()
        a = torch.randn(768, 768)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            a @ a

    return threading.Thread(target=run)


@pytest.mark.usefixtures("one_thread")
def test_a_new_thread_uses_the_configured_thread_count_once_applied() -> None:
    assert _busy_threads_while(_matmuls(prepare=True)) == 1


@pytest.mark.usefixtures("one_thread")
def test_without_apply_a_new_thread_falls_back_to_one_per_core() -> None:
    """Why apply_threads exists: OpenMP keeps the count per thread (if this starts failing, torch changed that)."""
    assert _busy_threads_while(_matmuls(prepare=False)) >= 2
