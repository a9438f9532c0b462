"""Training keeps freed tensor memory in the process: big blocks come from glibc's heap, not fresh mappings."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
import torch

from localft.base_models import reuse_freed_memory
from localft.base_models.loading import HEAP_MAX_BLOCK


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
        )
    ]  # fmt: skip


def _mapped_bytes() -> int:
    """Bytes glibc currently holds in separate memory mappings (blocks above its mmap threshold)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def test_a_big_tensor_comes_from_the_heap_once_freed_memory_is_kept() -> None:
    if not reuse_freed_memory():
        pytest.skip("the C library is not glibc")
    size = 47 << 20  # MiniLM's word-embedding gradient, above glibc's largest automatic threshold (32 MB)
    assert size < HEAP_MAX_BLOCK
    before = _mapped_bytes()
    block = torch.zeros(size // 4)
    assert _mapped_bytes() - before < size  # without the setting, glibc maps the block on its own
    del block
