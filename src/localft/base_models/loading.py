"""Loading tokenizers and the process's CPU settings (threads, reuse of freed memory); model
classes are loaded by the engines that know their family."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from localft.base_models.fetch import local_model_dir

# Devices are chosen in `localft.devices`; re-exported here, where the engines have always found them.
from localft.devices import native_bf16 as native_bf16
from localft.devices import resolve_device as resolve_device

T = TypeVar("T")


_threads = 0
"""The process's thread setting (`use_threads`); 0 is torch's default."""
_applied = threading.local()


def use_threads(threads: int) -> None:
    """Set torch's intra-op thread count for this process; 0 keeps torch's default (one per physical core).

    OpenMP keeps that count per thread: a thread started later (the embedded worker, a request's thread) would use
    one per core again, whatever `torch.get_num_threads()` says there (measured: 2 busy threads in a new thread
    after `set_num_threads(1)`). The engines call `apply_threads()` in the thread that runs their work."""
    global _threads
    _threads = max(0, threads)
    _applied.threads = None
    apply_threads()


def apply_threads() -> None:
    """Give the calling thread the process's thread count (cheap after the first call in a thread)."""
    if _threads <= 0 or getattr(_applied, "threads", None) == _threads:
        return
    import torch

    torch.set_num_threads(_threads)
    _applied.threads = _threads


HEAP_MAX_BLOCK = 256 << 20
"""Allocations up to this size come from glibc's heap and are reused when freed (`reuse_freed_memory`)."""


@cache
def reuse_freed_memory() -> bool:
    """Keep freed tensor memory (blocks up to `HEAP_MAX_BLOCK`) in this process for the next allocation.

    glibc hands blocks over 32 MB (its largest automatic threshold) straight to the OS and back, so every training
    step page-faults them in afresh: zeroing a new 47 MB tensor (MiniLM's word-embedding gradient, allocated each
    step) took 14.6 ms instead of 3.0 ms with the blocks kept, and 8 MB ones 0.24 instead of 0.08 ms (docs/studies/
    training-speed.md). The price: the process keeps up to twice that much freed memory instead of returning it. A
    no-op (False) where the C library is not glibc."""
    import ctypes
    import ctypes.util

    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        kept = libc.mallopt(m_mmap_threshold, HEAP_MAX_BLOCK)
        return bool(kept and libc.mallopt(m_trim_threshold, 2 * HEAP_MAX_BLOCK))
    except (OSError, AttributeError, TypeError):  # no libc by that name, or one without mallopt
        return False


def in_passing_thread(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in a new thread that ends with it, raising what it raised.

    OpenMP keeps a team of helper threads for every thread that ran parallel tensor work, until that thread ends,
    and idle teams slow the others down (localft.inference.compute_thread). Long-lived threads that train now and
    then (the server's embedded worker) run each job this way so no team outlives it."""
    outcome: list[Any] = []

    def body() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=body, name=f"localft-{getattr(fn, '__name__', 'task')}")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def load_tokenizer(name: str, cache_dir: Path | None = None) -> Any:
    """The tokenizer of a base model (built-in name, alias or local folder)."""
    from transformers import AutoTokenizer

    from localft.settings import Settings

    folder = local_model_dir(name, cache_dir or Settings.from_env().cache_dir)
    return AutoTokenizer.from_pretrained(folder)
