"""Giving memory back when the gateway falls idle.

A call's media allocates numpy buffers, codec states and socket objects; when they are freed,
CPython keeps its small-object arenas and glibc keeps freed heap pages for reuse, so a process
that served 50 calls stays at its high-water mark (bench/load.py measured ~30 MiB above the
level before the calls). That is reuse, not a leak, but an operator watching RSS after weeks
cannot tell the two apart. Once no call has been in progress for a while, a full collection and
glibc's ``malloc_trim(0)`` (which returns free heap pages to the kernel) bring RSS back near
the starting level; with calls in progress nothing is done, so no call's media is delayed.

The release is done twice. The first, ``IDLE_DELAY`` after the last call, frees what is garbage
by then. An ended call's whole object graph (XMPP client, codecs, jitter buffers: ~0.2 MiB a
call) used to stay reachable longer from timers pending on its closed XMPP client (slixmpp's
``IqTimeout_<id>``); a closing connection now settles them (``xmpp.connection.
expire_scheduled``). Anything else that outlives a call for a while - a SIP transaction's timers
run up to 64*T1 = 32 s - becomes cyclic garbage that an idle process never collects (too few
allocations to trigger a full collection), so a second release, ``LATE_DELAY`` after the last
call, collects it and trims the heap again.

What stays above the pre-traffic level afterwards is allocator fragmentation, not live data:
live bytes return to their starting figure, but a few objects made during the calls (counters,
timer handles) stay where the peak put them. CPython's own allocator frees a 1 MiB arena only
once all its objects are gone, so they kept ~11 MiB resident after 50 concurrent calls; glibc's
malloc, which ``pygasi run`` uses by default (``[runtime] allocator``, gateway.cli), trims every
free page around them: ~3 MiB. Neither grows with more rounds of calls (bench/load.py
--scenario leak).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys
from collections.abc import Callable
from functools import cache

log = logging.getLogger("pygasi.gateway")

IDLE_DELAY = 10.0  # seconds without a call before memory is released
LATE_DELAY = 60.0  # and again (from the same moment): the ended calls' timers have all fired


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
    # CPython's method cache holds the last attribute name looked up in each of its slots;
    # names built at run time (slixmpp's "get_%s" per stanza attribute) are small strings made
    # during the calls that would keep their memory pools in use.
    sys._clear_type_cache()
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["IDLE_DELAY", "LATE_DELAY", "release_memory"]
