"""Two asyncio user agents on loopback: a call over UDP and over TCP, INFO, hold, BYE."""

from __future__ import annotations

import asyncio

import pytest

from sip.headers import NameAddr
from sip.offer_answer import MediaNegotiator, OfferAnswerConfig
from sip.sdp import Direction as SdpDirection
from sip.transport import ListenSpec
from sip.ua import Call, InfoRequest, UAConfig, UserAgent
from sip.uri import parse_uri


async def _pair(transport: str) -> tuple[UserAgent, UserAgent]:
    a = UserAgent(UAConfig(listen=[ListenSpec(transport, "127.0.0.1", 0)], stream_keepalive=0))
    b = UserAgent(UAConfig(listen=[ListenSpec(transport, "127.0.0.1", 0)], stream_keepalive=0))
    await a.start()
    await b.start()
    return a, b


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_info_hold_bye(transport: str) -> None:
    caller, callee = await _pair(transport)
    incoming: asyncio.Queue[Call] = asyncio.Queue()
    callee.on("call", incoming.put_nowait)
    infos: list[bytes] = []
    try:
        port = callee.ports[transport]
        uri = parse_uri(f"sip:room@127.0.0.1:{port};transport={transport}")
        out = await caller.invite(
            uri,
            NameAddr(parse_uri("sip:+15550001@127.0.0.1"), "Alice"),
            negotiator=MediaNegotiator("127.0.0.1", 40000, OfferAnswerConfig(codecs=("PCMU",))),
            headers=[("X-Room-Name", "standup")],
        )
        call = await asyncio.wait_for(incoming.get(), 5)
        assert call.headers.get("x-room-name") == "standup"
        assert call.from_.display_name == "Alice"
        call.ringing()
        stream = call.negotiate(
            MediaNegotiator("127.0.0.1", 42000, OfferAnswerConfig(codecs=("PCMA", "PCMU")))
        )
        assert stream is not None and stream.codec.name == "PCMU" and stream.remote_port == 40000

        def on_info(info: InfoRequest) -> None:
            infos.append(info.body)
            info.respond(200, content_type="application/json", body=b'{"ok":true}')

        call.on("info", on_info)
        call.answer()
        answered = await asyncio.wait_for(out.wait_answered(), 5)
        assert answered is not None and answered.remote_port == 42000
        await asyncio.sleep(0.05)  # the ACK reaches the callee
        response = await out.send_info("application/json", b'{"type":"muteRequest"}')
        assert response is not None and response.status == 200 and response.body == b'{"ok":true}'
        assert infos == [b'{"type":"muteRequest"}']

        # Hold: the caller offers sendonly; the callee's negotiator answers recvonly.
        media: asyncio.Queue[object] = asyncio.Queue()
        reinvites: list[object] = []
        call.on("media", media.put_nowait)
        call.on("reinvite", reinvites.append)
        assert out.negotiator is not None
        out.negotiator.local_direction = SdpDirection.SENDONLY
        response = await out.reinvite()
        assert response is not None and response.status == 200
        held = await asyncio.wait_for(media.get(), 5)
        assert len(reinvites) == 1
        assert not held.may_send  # type: ignore[attr-defined]
        assert out.stream is not None and out.stream.direction == SdpDirection.SENDONLY

        out.hangup(200, "Meeting over")
        end = await asyncio.wait_for(call.wait_ended(), 5)
        assert end.by_remote and end.request is not None
        assert 'text="Meeting over"' in (end.request.headers.get("Reason") or "")
        await asyncio.wait_for(out.wait_ended(), 5)
        assert caller.calls == [] and callee.calls == []
    finally:
        await caller.close()
        await callee.close()


async def test_reject_reaches_caller() -> None:
    caller, callee = await _pair("udp")
    callee.on("call", lambda c: c.reject(486, "No room given"))
    try:
        out = await caller.invite(
            parse_uri(f"sip:x@127.0.0.1:{callee.ports['udp']}"),
            NameAddr(parse_uri("sip:a@127.0.0.1")),
            sdp=b"",
        )
        end = await asyncio.wait_for(out.wait_ended(), 5)
        assert end.status == 486 and end.reason == "No room given"
    finally:
        await caller.close()
        await callee.close()


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_call_over_ipv6() -> None:
    caller = UserAgent(UAConfig(listen=[ListenSpec("udp", "::1", 0)], stream_keepalive=0))
    callee = UserAgent(UAConfig(listen=[ListenSpec("udp", "::1", 0)], stream_keepalive=0))
    await caller.start()
    await callee.start()
    incoming: asyncio.Queue[Call] = asyncio.Queue()
    callee.on("call", incoming.put_nowait)
    try:
        out = await caller.invite(
            parse_uri(f"sip:room@[::1]:{callee.ports['udp']}"),
            NameAddr(parse_uri("sip:a@[::1]")),
            negotiator=MediaNegotiator("::1", 40000, OfferAnswerConfig(codecs=("PCMU",))),
        )
        call = await asyncio.wait_for(incoming.get(), 5)
        assert call.request.top_via.host == "[::1]"
        stream = call.negotiate(MediaNegotiator("::1", 42000, OfferAnswerConfig(codecs=("PCMU",))))
        assert stream is not None and stream.remote_address == "::1"
        call.answer()
        answered = await asyncio.wait_for(out.wait_answered(), 5)
        assert answered is not None and answered.remote_address == "::1"
        out.hangup()
        await asyncio.wait_for(call.wait_ended(), 5)
    finally:
        await caller.close()
        await callee.close()


async def test_options_ping() -> None:
    caller, callee = await _pair("udp")
    try:
        response = await caller.options(parse_uri(f"sip:127.0.0.1:{callee.ports['udp']}"))
        assert response is not None and response.status == 200
        assert "INVITE" in (response.headers.get("Allow") or "")
    finally:
        await caller.close()
        await callee.close()
