"""Giving memory back when the gateway falls idle.

A call's media allocates numpy buffers, codec states and socket objects; when they are freed,
CPython keeps its small-object arenas and glibc keeps freed heap pages for reuse, so a process
that served 50 calls stays at its high-water mark (bench/load.py measured ~30 MiB above the
level before the calls). That is reuse, not a leak, but an operator watching RSS after weeks
cannot tell the two apart. Once no call has been in progress for a while, a full collection and
glibc's ``malloc_trim(0)`` (which returns free heap pages to the kernel) bring RSS back near
the starting level; with calls in progress nothing is done, so no call's media is delayed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from functools import cache

log = logging.getLogger("pygasi.gateway")

IDLE_DELAY = 10.0  # seconds without a call before memory is released


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def release_memory() -> bool:
    """Collect garbage and return free heap pages to the kernel; False where the C library has
    no ``malloc_trim`` (only the collection was done)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["IDLE_DELAY", "release_memory"]
