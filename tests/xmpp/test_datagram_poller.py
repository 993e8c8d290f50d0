"""xmpp.datagram_poller: an adopted socket is read by the tick, with kernel arrival times."""

from __future__ import annotations

import asyncio
import socket

from xmpp.datagram_poller import DatagramPoller


class Recorder(asyncio.DatagramProtocol):
    def __init__(self, poller: DatagramPoller) -> None:
        self.poller = poller
        self.got: list[tuple[bytes, float | None]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.got.append((data, self.poller.arrival))


async def test_adopted_socket_is_read_by_the_tick_not_the_loop() -> None:
    loop = asyncio.get_running_loop()
    poller = DatagramPoller()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    protocol = Recorder(poller)
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert poller.adopt(sock, protocol, transport)
        assert len(poller) == 1
        sent_at = loop.time()
        for i in range(3):
            sender.sendto(b"datagram %d" % i, sock.getsockname())
        await asyncio.sleep(0.05)
        assert protocol.got == []  # the event loop no longer reads it
        now = loop.time()
        poller.tick(now)
        assert [d for d, _ in protocol.got] == [b"datagram 0", b"datagram 1", b"datagram 2"]
        # Each carries its kernel arrival time (before the tick), in loop time.
        for _, arrival in protocol.got:
            assert arrival is not None and sent_at - 0.01 <= arrival <= now + 0.005
        assert poller.arrival is None  # only set while delivering
        assert poller.datagrams == 3
        poller.tick(loop.time())  # nothing waiting: nothing delivered
        assert len(protocol.got) == 3
        poller.release(sock)
        assert len(poller) == 0
        sender.sendto(b"late", sock.getsockname())
        await asyncio.sleep(0.02)
        poller.tick(loop.time())
        assert len(protocol.got) == 3  # released: the poller reads it no more
    finally:
        transport.close()
        sender.close()
