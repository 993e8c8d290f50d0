"""The process clock: one 20 ms tick drives every room mixer and every leg's sender.

design.md, "Concurrency": one event loop, no thread or timer per call. `MediaClock` is the only
periodic timer in the media engine; everything audio-rate registers with it as a `Tickable`
(rooms, calls not in a room, the fake bridge of the benchmark) and is called once per tick, in
registration order, with the loop time and the number of 20 ms frames the tick stands for.

Schedule (`TickSchedule`, sans-IO). Tick k is due at the absolute deadline ``start + k * period``
on the loop's monotonic clock, never at "last wake-up + period", so wake-up latency does not
accumulate into drift. When the loop was blocked and deadlines passed, the choice is:

* up to `max_catch_up` missed ticks (default 3, i.e. 60 ms) are *caught up*, but never back to
  back: a catch-up tick runs at least `min_spacing` periods (default 0.5) after the previous one,
  so the owed ticks come at up to twice the normal rate. A phone then sees packets 10 ms apart
  for a while, which its jitter buffer absorbs, instead of a burst of back-to-back packets, and
  every RTP timestamp still matches the real time it stands for;
* beyond that (a stall longer than the catch-up window: the process was stopped, the machine
  swapped) the excess ticks are *skipped* and counted in `ClockStats.skipped`. The next tick is
  told how many frames of time it covers (``frames = 1 + skipped``), so senders advance their RTP
  timestamps by the skipped time (the receiver sees a timestamp jump with a contiguous sequence
  number: silence, not loss, RFC 3551 §4.1) and jitter buffers re-steer on their own
  (their playout is driven by `now`).

Slices. A tick's work runs tickable after tickable; after each one the elapsed wall time of the
current slice is checked, and once it reaches `slice_budget` (default 4 ms) the clock yields to
the event loop (the rest of the tick is a `call_soon` callback) so that signalling and socket
callbacks run between rooms. A tickable with a `steps()` method (`SteppedTickable`, the room
mixer) is run step by step with the same check between steps, so one very large room does not
block the loop for its whole tick either. The longest slice (the longest the loop was blocked
by media work) and the longest tick are measured in `ClockStats`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Protocol

from media.frame import FRAME_MS

logger = logging.getLogger(__name__)

PERIOD = FRAME_MS / 1000.0


class Tickable(Protocol):
    """Something driven by the process clock (a room mixer, a call pipeline...)."""

    def tick(self, now: float, frames: int) -> None:
        """One tick at loop time `now`, standing for `frames` frame periods (1 unless ticks
        were skipped after a stall: then senders advance their timestamps by `frames`)."""


class Defer:
    """The type of `DEFER`."""

    def __repr__(self) -> str:
        return "DEFER"


DEFER = Defer()
"""Yielded by a step: run the rest of the steps after every other tickable's tick (or steps
up to their own DEFER). The room mixers defer their Opus encodes, so that all the rooms'
mixing runs back to back, then all their encodes: each kind of work keeps its code and tables
in the CPU caches (bench/media.py, 4 rooms of 8 calls: 6 % less CPU than room after room)."""


class SteppedTickable(Tickable, Protocol):
    """A tickable whose tick can be run in steps (a large room mixer): the clock prefers
    `steps()` and may let the event loop run between two steps."""

    def steps(self, now: float, frames: int) -> Iterator[Defer | None]: ...


@dataclass(frozen=True, slots=True)
class TickInfo:
    index: int  # tick number since start (skipped ticks are counted in it)
    deadline: float  # the absolute time this tick was due
    lateness: float  # seconds between the deadline and the actual start
    frames: int  # frame periods this tick stands for: 1 + ticks skipped just before it
    catching_up: bool  # started a whole period or more after its deadline


class TickSchedule:
    """Sans-IO: absolute deadlines, bounded catch-up at a bounded rate, skip beyond it."""

    def __init__(
        self,
        start: float,
        period: float = PERIOD,
        max_catch_up: int = 3,
        min_spacing: float = 0.5,
    ) -> None:
        if period <= 0 or max_catch_up < 0 or not 0 < min_spacing <= 1:
            raise ValueError("bad clock schedule parameters")
        self.start = start
        self.period = period
        self.max_catch_up = max_catch_up
        self.min_spacing = min_spacing
        self.index = 0  # the next tick to run
        self.skipped = 0
        self._last_run = -math.inf

    @property
    def deadline(self) -> float:
        """When the next tick is due."""
        return self.start + self.index * self.period

    @property
    def next_wake(self) -> float:
        """When to wake up for the next tick: its deadline, or later if that would come too
        soon after the previous tick (catching up without bursts)."""
        return max(self.deadline, self._last_run + self.min_spacing * self.period)

    def begin(self, now: float) -> TickInfo | None:
        """Called on waking at `now`: the tick to run now, or None if it is not due yet."""
        if now < self.next_wake:
            return None
        # Whole periods past the deadline (the epsilon keeps an exact multiple from rounding
        # down through floating-point error).
        behind = int((now - self.deadline) / self.period + 1e-6)
        skip = max(0, behind - self.max_catch_up)
        if skip:
            self.index += skip
            self.skipped += skip
        deadline = self.deadline
        info = TickInfo(self.index, deadline, now - deadline, 1 + skip, behind > 0)
        self.index += 1
        self._last_run = now
        return info


@dataclass(slots=True)
class ClockStats:
    ticks: int = 0
    catch_up_ticks: int = 0  # ticks that started a period or more after their deadline
    skipped: int = 0  # ticks dropped after a stall longer than the catch-up window
    overruns: int = 0  # ticks whose work took longer than one period
    errors: int = 0  # exceptions raised by tickables (logged, the clock goes on)
    slices: int = 0
    total_work_s: float = 0.0
    max_work_ms: float = 0.0  # longest tick (all of its slices)
    max_slice_ms: float = 0.0  # longest time the event loop was blocked by the clock
    max_lateness_ms: float = 0.0
    total_lateness_s: float = 0.0

    @property
    def mean_work_ms(self) -> float:
        return self.total_work_s * 1000.0 / self.ticks if self.ticks else 0.0

    @property
    def mean_lateness_ms(self) -> float:
        return self.total_lateness_s * 1000.0 / self.ticks if self.ticks else 0.0


class MediaClock:
    """The asyncio shell: one task, one timer, all the tickables of the process.

    `add()`/`remove()` may be called at any time, also from inside a tick (a tickable removed
    during a tick is not called for the rest of it)."""

    def __init__(
        self,
        period: float = PERIOD,
        slice_budget: float = 0.004,
        max_catch_up: int = 3,
        min_spacing: float = 0.5,
    ) -> None:
        self.period = period
        self.slice_budget = slice_budget
        self.max_catch_up = max_catch_up
        self.min_spacing = min_spacing
        self.stats = ClockStats()
        self.schedule: TickSchedule | None = None
        self._tickables: dict[Tickable, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_error_log = -math.inf

    def add(self, tickable: Tickable) -> None:
        self._tickables[tickable] = None

    def remove(self, tickable: Tickable) -> None:
        self._tickables.pop(tickable, None)

    def __contains__(self, tickable: object) -> bool:
        return tickable in self._tickables

    def __len__(self) -> int:
        return len(self._tickables)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start ticking on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        """The clock's lifetime. The ticks themselves run in event-loop callbacks - a timer
        per tick, a `call_soon` per further slice - not in this task: waking a task costs the
        loop an extra turn per wake-up (a timer callback that resolves a future, then the
        task's step), measured at ~50-70 µs of CPU per tick on a 2-core VM, ~2 µs per call and
        tick in `bench/media.py`. Cancelling the task (`stop()`) cancels the pending callback;
        an error in the clock itself (not in a tickable) ends the task with it."""
        loop = asyncio.get_running_loop()
        self.schedule = TickSchedule(loop.time(), self.period, self.max_catch_up, self.min_spacing)
        done: asyncio.Future[None] = loop.create_future()
        driver = _Driver(self, loop, done)
        driver.arm()
        try:
            await done
        finally:
            driver.cancel()

    def _tick(self, loop: asyncio.AbstractEventLoop, info: TickInfo) -> Generator[None, None, None]:
        """One tick's work; yields where a slice ends (its driver lets the loop run there)."""
        stats = self.stats
        stats.ticks += 1
        stats.skipped += info.frames - 1
        if info.catching_up:
            stats.catch_up_ticks += 1
        stats.total_lateness_s += info.lateness
        stats.max_lateness_ms = max(stats.max_lateness_ms, info.lateness * 1000.0)
        perf = time.perf_counter
        budget = self.slice_budget
        frames = info.frames
        work = 0.0
        # (tickable, its steps once started): a first round over every tickable, then a
        # round of the steps that were deferred in it, and so on.
        pending: list[tuple[Tickable, Iterator[Defer | None] | None]] = [
            (item, None) for item in self._tickables
        ]
        slice_start = perf()
        now = loop.time()
        while pending:
            deferred: list[tuple[Tickable, Iterator[Defer | None] | None]] = []
            last = len(pending) - 1
            for i, (item, steps) in enumerate(pending):
                if item not in self._tickables:
                    continue
                try:
                    if steps is None:
                        stepper = getattr(item, "steps", None)
                        if stepper is None:
                            item.tick(now, frames)
                        else:
                            steps = stepper(now, frames)
                    if steps is not None:
                        for step in steps:
                            if step is DEFER:
                                deferred.append((item, steps))
                                break
                            elapsed = perf() - slice_start
                            if elapsed >= budget:
                                work += self._end_slice(elapsed)
                                yield
                                slice_start = perf()
                                now = loop.time()
                except Exception:
                    self._error(item)
                elapsed = perf() - slice_start
                if elapsed >= budget and (i < last or deferred):
                    work += self._end_slice(elapsed)
                    yield  # let socket and signalling callbacks run
                    slice_start = perf()
                    now = loop.time()
            pending = deferred
        work += self._end_slice(perf() - slice_start)
        stats.total_work_s += work
        stats.max_work_ms = max(stats.max_work_ms, work * 1000.0)
        if work > self.period:
            stats.overruns += 1

    def _end_slice(self, elapsed: float) -> float:
        stats = self.stats
        stats.slices += 1
        stats.max_slice_ms = max(stats.max_slice_ms, elapsed * 1000.0)
        return elapsed

    def _error(self, item: Tickable) -> None:
        self.stats.errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:  # at most one traceback per second
            self._last_error_log = now
            logger.exception("media clock: %r failed (%d errors so far)", item, self.stats.errors)


class _Driver:
    """Runs a `MediaClock`'s ticks from event-loop callbacks: `wake` at each tick's time, then
    `resume` once per further slice of the tick, then the timer for the next tick."""

    def __init__(
        self, clock: MediaClock, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]
    ) -> None:
        self.clock = clock
        self.loop = loop
        self.done = done  # the clock task's: an error here ends the task
        self.handle: asyncio.Handle | None = None
        self.work: Generator[None, None, None] | None = None  # the tick under way

    def arm(self) -> None:
        schedule = self.clock.schedule
        assert schedule is not None
        self.handle = self.loop.call_at(schedule.next_wake, self.wake)

    def wake(self) -> None:
        self.handle = None
        try:
            schedule = self.clock.schedule
            assert schedule is not None
            info = schedule.begin(self.loop.time())
            if info is None:  # woken before the tick is due
                self.arm()
                return
            self.work = self.clock._tick(self.loop, info)
        except Exception as exc:
            self.fail(exc)
            return
        self.resume()

    def resume(self) -> None:
        self.handle = None
        work = self.work
        assert work is not None
        try:
            for _ in work:  # up to the end of a slice: the rest after the loop has run
                self.handle = self.loop.call_soon(self.resume)
                return
            self.work = None
            self.arm()
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: Exception) -> None:
        self.work = None
        if not self.done.done():
            self.done.set_exception(exc)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.work is not None:
            self.work.close()  # a tick cut short, as a cancelled task's would be
            self.work = None
