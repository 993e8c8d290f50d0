"""The process clock: absolute deadlines (no drift), catch-up without bursts, skips with a
counter, one tick for every room, slices that let the event loop breathe."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable

import pytest

from media.clock import PERIOD, MediaClock, TickInfo, TickSchedule


def simulate(
    schedule: TickSchedule,
    until: float,
    latency: Callable[[int], float],
    work: Callable[[TickInfo], float],
) -> list[tuple[float, TickInfo]]:
    """Drive the schedule with a fake clock: sleep until `next_wake`, wake `latency` late, run
    a tick that takes `work(info)` seconds. Returns (start time, info) per tick."""
    t = schedule.start
    ticks: list[tuple[float, TickInfo]] = []
    wakes = 0
    while schedule.next_wake < until:
        t = max(t, schedule.next_wake) + latency(wakes)
        wakes += 1
        info = schedule.begin(t)
        if info is None:
            continue
        ticks.append((t, info))
        t += work(info)
    return ticks


def test_ticks_stay_on_absolute_deadlines_despite_wake_up_jitter() -> None:
    rng = random.Random(1)
    schedule = TickSchedule(100.0)
    ticks = simulate(schedule, 105.0, lambda _: rng.uniform(0.0, 0.004), lambda _: 0.002)
    assert len(ticks) == 250
    for k, (start, info) in enumerate(ticks):
        assert info.index == k and info.frames == 1 and not info.catching_up
        assert info.deadline == pytest.approx(100.0 + k * PERIOD)
        assert 0.0 <= start - info.deadline <= 0.004
    # 20 ms on average, and no accumulated drift: wake-up latency is not added up.
    span = ticks[-1][1].deadline - ticks[0][1].deadline
    assert span / (len(ticks) - 1) == pytest.approx(PERIOD)
    assert schedule.skipped == 0


def test_a_slow_tick_is_caught_up_without_a_burst() -> None:
    schedule = TickSchedule(0.0)
    slow = {10: 0.070}  # tick 10 blocks the loop for 70 ms: ticks 11-13 are missed
    ticks = simulate(schedule, 1.0, lambda _: 0.0, lambda info: slow.get(info.index, 0.001))
    starts = [t for t, _ in ticks]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.5 * PERIOD - 1e-9  # never back to back
    assert [info.frames for _, info in ticks] == [1] * len(ticks)  # nothing skipped
    assert schedule.skipped == 0
    late = [info.index for _, info in ticks if info.catching_up]
    assert late and late[0] == 11 and len(late) <= 8
    # Caught up: ticks are on their deadlines again and none was lost.
    assert [info.index for _, info in ticks] == list(range(len(ticks)))
    assert ticks[-1][0] - ticks[-1][1].deadline < 1e-9
    assert len(ticks) == 50


def test_a_long_stall_skips_ticks_and_says_how_much_time_they_stood_for() -> None:
    schedule = TickSchedule(0.0, max_catch_up=3)
    stall = {10: 0.5}
    ticks = simulate(schedule, 1.0, lambda _: 0.0, lambda info: stall.get(info.index, 0.001))
    frames = [info.frames for _, info in ticks]
    # Woken at 0.7 s with tick 11 (due 0.22 s) next: 25 ticks were due, 3 are caught up.
    assert frames.count(1) == len(frames) - 1 and max(frames) == 22
    assert schedule.skipped == 21
    # Frames accounted for = the wall time passed: no drift in media time either.
    assert sum(frames) == ticks[-1][1].index + 1 == 50
    starts = [t for t, _ in ticks]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.5 * PERIOD - 1e-9


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TickSchedule(0.0, period=0.0)
    with pytest.raises(ValueError):
        TickSchedule(0.0, min_spacing=0.0)
    schedule = TickSchedule(5.0)
    assert schedule.begin(4.99) is None and schedule.index == 0


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, float, int]], busy: float = 0.0) -> None:
        self.name = name
        self.log = log
        self.busy = busy
        self.calls = 0

    def tick(self, now: float, frames: int) -> None:
        self.calls += 1
        self.log.append((self.name, now, frames))
        if self.busy:
            end = time.perf_counter() + self.busy
            while time.perf_counter() < end:
                pass


async def test_real_time_ticks_average_20_ms_and_drive_every_room() -> None:
    log: list[tuple[str, float, int]] = []
    rooms = [Recorder(f"room{i}", log) for i in range(100)]
    clock = MediaClock()
    for room in rooms:
        clock.add(room)
    clock.start()
    await asyncio.sleep(1.0)
    await clock.stop()
    ticks = clock.stats.ticks
    assert 45 <= ticks <= 52
    assert all(room.calls == ticks for room in rooms)
    # Each tick calls every room once, in registration order.
    assert [name for name, _, _ in log[:200]] == [r.name for r in rooms] * 2
    first = [now for name, now, _ in log if name == "room0"]
    mean = (first[-1] - first[0]) / (len(first) - 1)
    assert mean == pytest.approx(PERIOD, abs=0.001)
    assert clock.stats.skipped == 0 and clock.stats.errors == 0


async def test_real_time_slow_tick_does_not_cause_a_burst() -> None:
    times: list[float] = []

    class Slow:
        def tick(self, now: float, frames: int) -> None:
            times.append(now)
            if len(times) == 10:
                time.sleep(0.07)  # blocks the whole loop: three ticks are missed

    clock = MediaClock()
    clock.add(Slow())
    clock.start()
    await asyncio.sleep(0.6)
    await clock.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.009  # catch-up ticks at least half a period apart
    assert clock.stats.catch_up_ticks >= 3 and clock.stats.skipped == 0
    assert 27 <= len(times) <= 31  # all the ticks of 0.6 s, none lost


async def test_work_is_sliced_so_the_loop_stays_responsive() -> None:
    log: list[tuple[str, float, int]] = []
    clock = MediaClock(slice_budget=0.004)
    rooms = [Recorder(f"r{i}", log, busy=0.0015) for i in range(8)]  # 12 ms of work per tick
    for room in rooms:
        clock.add(room)
    gaps: list[float] = []

    async def probe() -> None:
        # Something else on the loop (signalling): how long does it wait for a turn?
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            t = time.perf_counter()
            gaps.append(t - last)
            last = t

    task = asyncio.create_task(probe())
    clock.start()
    await asyncio.sleep(0.5)
    await clock.stop()
    task.cancel()
    stats = clock.stats
    assert stats.ticks >= 20
    assert all(room.calls in (stats.ticks, stats.ticks - 1) for room in rooms)  # stop() may cut one
    # 12 ms of work in >= 3 slices of ~4.5 ms (but for a last tick that stop() cut short).
    assert stats.slices >= 3 * (stats.ticks - 1)
    assert stats.max_work_ms >= 12.0
    # Without slices every tick would block the loop for 12 ms. With them the loop gets a turn
    # every ~4.5 ms; allow some longer gaps for a noisy (shared, virtual) machine.
    assert stats.max_slice_ms < stats.max_work_ms
    assert sum(g > 0.010 for g in gaps) <= stats.ticks // 2


async def test_a_failing_room_is_counted_and_the_others_go_on() -> None:
    log: list[tuple[str, float, int]] = []

    class Broken:
        def tick(self, now: float, frames: int) -> None:
            raise RuntimeError("a bug in one room")

    clock = MediaClock()
    broken, fine = Broken(), Recorder("fine", log)
    clock.add(broken)
    clock.add(fine)
    clock.start()
    await asyncio.sleep(0.2)
    assert broken in clock and len(clock) == 2
    clock.remove(broken)
    ticks = clock.stats.ticks
    await asyncio.sleep(0.1)
    await clock.stop()
    assert not clock.running
    assert clock.stats.errors == ticks and fine.calls == clock.stats.ticks > ticks
