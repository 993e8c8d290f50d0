"""A small UAS built on the stack, for tests against real SIP peers (SIPp, Kamailio).

It answers every call with PCMA/PCMU on a UDP port that counts the caller's RTP, records what
it saw (headers, INFO bodies, media directions) and can hang up by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sip.digest import CredentialStore
from sip.offer_answer import MediaNegotiator, NegotiatedStream, OfferAnswerConfig
from sip.transaction import TimerValues
from sip.transport import ListenSpec, TlsSettings
from sip.ua import Call, CallEnd, InfoRequest, UAConfig, UserAgent
from tests.peers import RtpCounter


@dataclass
class AnsweredCall:
    call: Call
    rtp: RtpCounter
    rtp_transport: asyncio.DatagramTransport
    streams: list[NegotiatedStream] = field(default_factory=list)
    infos: list[tuple[str | None, bytes]] = field(default_factory=list)
    end: CallEnd | None = None


class TestUas:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        transport: str = "udp",
        answer_delay: float = 0.0,
        hangup_after: float | None = None,
        timers: TimerValues | None = None,
        tls: TlsSettings | None = None,
        listen: list[ListenSpec] | None = None,
        codecs: tuple[str, ...] = ("PCMA", "PCMU"),
        credentials: CredentialStore | None = None,
    ) -> None:
        self.answer_delay = answer_delay
        self.hangup_after = hangup_after
        self.codecs = codecs
        self.ua = UserAgent(
            UAConfig(
                listen=listen or [ListenSpec(transport, "127.0.0.1", 0)],
                timers=timers or TimerValues(),
                tls=tls or TlsSettings(),
                stream_keepalive=0,
            ),
            credentials=credentials,
        )
        self.calls: list[AnsweredCall] = []
        self.incoming: asyncio.Queue[AnsweredCall] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.ua.start()
        self.ua.on("call", self._on_call)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for answered in self.calls:
            answered.rtp_transport.close()
        await self.ua.close()

    @property
    def port(self) -> int:
        return next(iter(self.ua.ports.values()))

    def _on_call(self, call: Call) -> None:
        task = asyncio.ensure_future(self._handle(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, call: Call) -> None:
        loop = asyncio.get_running_loop()
        transport, counter = await loop.create_datagram_endpoint(
            RtpCounter, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        answered = AnsweredCall(call, counter, transport)
        self.calls.append(answered)
        call.on("info", lambda info: self._on_info(answered, info))
        call.on("media", answered.streams.append)
        call.on("ended", lambda end: setattr(answered, "end", end))
        call.ringing()
        stream = call.negotiate(
            MediaNegotiator("127.0.0.1", port, OfferAnswerConfig(codecs=self.codecs))
        )
        if stream is not None:
            answered.streams.append(stream)
        self.incoming.put_nowait(answered)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if call.ended:
            return
        call.answer()
        if self.hangup_after is not None:
            await asyncio.sleep(self.hangup_after)
            if not call.ended:
                call.hangup(200, "Test over")

    def _on_info(self, answered: AnsweredCall, info: InfoRequest) -> None:
        answered.infos.append((info.content_type, info.body))
        info.respond(200)
