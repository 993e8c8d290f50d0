"""Reading the conference legs' ICE sockets once per media tick.

The bridge sends every source of a room to every leg: in a room of 35 calls with 7 voices,
~12 000 datagrams a second, and asyncio wakes up for nearly each one (an `epoll_wait`, a
`recvfrom`, a handle) - `bench/load.py --profile` found a fifth of the crowded room's CPU in
`select` alone. Once a leg's ICE pair is chosen, its socket leaves the event loop and the media
clock reads it at the start of every tick instead, as the SIP leg's sockets are read
(`media.pipeline`): one `epoll_wait(0)` for all legs, then every waiting datagram. Datagrams
keep their kernel arrival time (SO_TIMESTAMPNS), so the jitter buffers see the real arrival
jitter, not the tick's 20 ms grid; STUN consent checks and DTLS alerts go to aioice's protocol
exactly as before, at most one tick later.

Only on asyncio's selector loop: uvloop reads its sockets in C, where a wake-up costs little.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from media.pipeline import PolledSet, PolledUdp
from media.rtp_session import Address

MAX_ROUNDS = 8  # epoll rounds per tick: what a flood of datagrams may cost a tick
MAX_BATCH = 64  # datagrams per socket and round


class DatagramPoller:
    """The media clock's first tickable: the adopted sockets' waiting datagrams to their
    protocols. `arrival` is the loop time of the datagram being delivered (None outside)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        # Read with kernel timestamps and in epoll rounds, as the SIP legs' sockets are.
        self._sockets = PolledSet(MAX_ROUNDS, one_each=False)
        self.arrival: float | None = None
        self.datagrams = 0

    def __len__(self) -> int:
        return len(self._sockets)

    def adopt(
        self,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        transport: asyncio.BaseTransport,
    ) -> bool:
        """Take `sock` out of the event loop (its transport stops reading) and read it every
        tick; False, and nothing changed, where that is not possible."""
        if not self._sockets.available or not isinstance(
            asyncio.get_running_loop(), asyncio.SelectorEventLoop
        ):
            return False
        pause = getattr(transport, "pause_reading", None)
        if pause is None or transport.is_closing():
            return False
        received = protocol.datagram_received

        def deliver(_channel: int, data: bytes, address: Address, arrival: float) -> None:
            self.datagrams += 1
            self.arrival = arrival
            try:
                received(data, address)
            finally:
                self.arrival = None

        pause()
        self._sockets.add(PolledUdp(sock, 0, max_batch=MAX_BATCH), deliver)
        return True

    def release(self, sock: socket.socket) -> None:
        """Forget `sock` (before it is closed: a new socket may get its descriptor)."""
        self._sockets.remove(sock)

    def tick(self, now: float, frames: int = 1) -> None:
        if not len(self._sockets):
            return
        offset = (self._clock() if self._clock is not None else now) - time.time()
        self._sockets.read(now, offset)


__all__ = ["DatagramPoller"]
