"""gateway.memory: freed memory goes back to the kernel once the gateway is idle."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from gateway.memory import release_memory


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_heap_pages_are_returned() -> None:
    """Many small buffers (a call's worth of numpy frames and bytes) freed in an order that
    leaves glibc's heap fragmented: RSS stays up until the release trims it."""
    gc.collect()
    start = _rss_kib()
    keep: list[np.ndarray] = []
    drop: list[np.ndarray] = []
    for i in range(40_000):
        buffer = np.ones(400 + i % 7, dtype=np.int16)  # 800-byte frames, under mmap's threshold
        (keep if i % 50 == 0 else drop).append(buffer)
    del drop
    grown = _rss_kib()
    assert grown - start > 20_000  # ~30 MiB of frames were allocated
    assert release_memory() is True  # glibc (Debian)
    released = _rss_kib()
    assert grown - released > 15_000, (start, grown, released)
    assert len(keep) == 800
