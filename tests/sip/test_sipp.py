"""SIPp (a real, independent SIP implementation) against a small UAS built on our stack."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from sip.sdp import Direction
from sip.transaction import TimerValues
from tests.peers import run_sipp
from tests.sip.uas_app import TestUas

pytestmark = pytest.mark.sipp


async def _uas(**kw: object) -> TestUas:
    uas = TestUas(**kw)  # type: ignore[arg-type]
    await uas.start()
    return uas


async def test_basic_call_with_rtp_from_pcap() -> None:
    uas = await _uas()
    try:
        result = await run_sipp("uac_basic.xml", f"127.0.0.1:{uas.port}", args=["-s", "room"])
        assert result.returncode == 0, result.stdout + result.errors
        assert result.successful_calls == 1
        (answered,) = uas.calls
        assert answered.call.headers.get("X-Room-Name") == "standup"
        assert answered.streams[0].codec.name == "PCMA"
        assert answered.streams[0].telephone_event is not None
        # SIPp played the pcap's PCMA to the port our answer advertised.
        assert answered.rtp.packets > 50 and answered.rtp.payload_types == {8}
        assert answered.end is not None and answered.end.by_remote
        statuses = [m.split(" ", 2)[1] for m in result.received() if m.startswith("SIP/2.0")]
        assert statuses[:3] == ["100", "180", "200"]
    finally:
        await uas.close()


async def test_200_retransmitted_until_ack() -> None:
    uas = await _uas(timers=TimerValues(t1=0.1, t2=4.0, t4=5.0))
    try:
        result = await run_sipp("uac_late_ack.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0, result.stdout + result.errors
        oks = [m for m in result.received() if m.startswith("SIP/2.0 200") and "INVITE" in _cseq(m)]
        # With T1 = 0.1 s the 2xx is resent at 0.1, 0.3, 0.7 and 1.5 s while SIPp waits 1.6 s
        # to ACK; none after the ACK.
        assert 4 <= len(oks) <= 6, len(oks)
        assert uas.calls[0].end is not None
    finally:
        await uas.close()


async def test_lost_ack_ends_in_bye() -> None:
    uas = await _uas(timers=TimerValues(t1=0.1, t2=4.0, t4=5.0))
    try:
        result = await run_sipp("uac_no_ack.xml", f"127.0.0.1:{uas.port}", timeout=20)
        assert result.returncode == 0, result.stdout + result.errors
        (bye,) = [m for m in result.received() if m.startswith("BYE ")]
        assert re.search(r"Reason: SIP;cause=408;text=\"ACK not received\"", bye)
    finally:
        await uas.close()


async def test_cancel_before_answer_gets_487() -> None:
    uas = await _uas(answer_delay=10.0)
    try:
        result = await run_sipp("uac_cancel.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0, result.stdout + result.errors
        await asyncio.sleep(0.1)
        (answered,) = uas.calls
        assert answered.end is not None and answered.end.by_remote
        assert "caller gave up" in answered.end.reason
    finally:
        await uas.close()


async def test_info_in_dialog() -> None:
    uas = await _uas()
    try:
        result = await run_sipp("uac_info.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0, result.stdout + result.errors
        (answered,) = uas.calls
        ((content_type, body),) = answered.infos
        assert content_type == "application/json"
        assert body.strip() == b'{"type":"muteRequest","id":"42","muted":true}'  # SIPp adds CRLF
    finally:
        await uas.close()


async def test_hold_and_unhold_directions() -> None:
    uas = await _uas()
    try:
        # The scenario itself checks each 200's a= direction (recvonly, then sendrecv).
        result = await run_sipp("uac_hold.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0, result.stdout + result.errors
        (answered,) = uas.calls
        directions = [s.direction for s in answered.streams]
        assert directions == [Direction.SENDRECV, Direction.RECVONLY, Direction.SENDRECV]
        assert not answered.streams[1].may_send
    finally:
        await uas.close()


async def test_bye_from_our_side() -> None:
    uas = await _uas(hangup_after=0.5)
    try:
        result = await run_sipp("uac_wait_bye.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0, result.stdout + result.errors
        (bye,) = [m for m in result.received() if m.startswith("BYE ")]
        assert 'Reason: SIP;cause=200;text="Test over"' in bye
        await asyncio.sleep(0.1)
        assert uas.calls[0].end is not None and not uas.calls[0].end.by_remote
    finally:
        await uas.close()


async def test_options_answered() -> None:
    uas = await _uas()
    try:
        result = await run_sipp("uac_options.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0, result.stdout + result.errors
    finally:
        await uas.close()


async def test_burst_of_malformed_messages_leaves_uas_answering() -> None:
    uas = await _uas()
    try:
        garbage = [
            b"\x00\xff" * 100,
            b"INVITE sip:x@y SIP/2.0\r\n\r\n",
            b"INVITE  sip:x@127.0.0.1  SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n",
            b"OPTIONS sip:x@127.0.0.1 SIP/7.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK2;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: 2\r\nCSeq: 1 OPTIONS\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",
            b"x" * 70000,
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.settimeout(0.5)
            for _ in range(50):
                for data in garbage:
                    try:
                        raw.sendto(data[:65000], ("127.0.0.1", uas.port))
                    except OSError:
                        pass
            await asyncio.sleep(0.3)
            answers: list[bytes] = []
            raw.setblocking(False)
            while True:
                try:
                    answers.append(raw.recv(65535))
                except BlockingIOError:
                    break
        status_lines = {a.split(b"\r\n", 1)[0] for a in answers}
        assert any(
            line.startswith(b"SIP/2.0 400 Bad Request (malformed Request-Line")
            for line in status_lines
        )
        assert (
            b"SIP/2.0 505 Version Not Supported (SIP version SIP/7.0 not supported)" in status_lines
        )
        result = await run_sipp("uac_basic.xml", f"127.0.0.1:{uas.port}")
        assert result.returncode == 0 and result.successful_calls == 1
    finally:
        await uas.close()


def _cseq(message: str) -> str:
    match = re.search(r"^CSeq:\s*(.*)$", message, re.M | re.I)
    return match.group(1) if match else ""
