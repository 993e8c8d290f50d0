"""Named deadlines for sans-IO state machines (transactions, calls, registrations).

An object never sleeps: it records deadlines and asks its :class:`Waker` (the core) to be woken
at them; the core calls :meth:`Timed.handle_timers` with the current time, which fires every due
timer in deadline order.
"""

from __future__ import annotations

from typing import Protocol


class Waker(Protocol):
    def wake_at(self, target: Timed, deadline: float) -> None: ...


class Timed:
    def __init__(self, waker: Waker) -> None:
        self._waker = waker
        self._deadlines: dict[str, float] = {}

    def _start(self, name: str, now: float, delay: float) -> None:
        deadline = now + max(0.0, delay)
        self._deadlines[name] = deadline
        self._waker.wake_at(self, deadline)

    def _stop(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _stop_all(self) -> None:
        self._deadlines.clear()

    def timer_running(self, name: str) -> bool:
        return name in self._deadlines

    def deadline(self, name: str) -> float | None:
        return self._deadlines.get(name)

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def handle_timers(self, now: float) -> None:
        while True:
            due = [(d, n) for n, d in self._deadlines.items() if d <= now]
            if not due:
                return
            _deadline, name = min(due)
            del self._deadlines[name]
            self._fire(name, now)

    def _fire(self, name: str, now: float) -> None:
        raise NotImplementedError
