"""Helpers for the dial-in tests: the gateway in this process against Prosody, the Jicofo and
bridge emulators (`tests.gateway.sandbox`), with SIPp as the phone's signalling and
`tests.phone.RtpPhone` as its media."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.call import InboundCall
from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from tests.gateway.sandbox import Sandbox
from tests.peers import SippResult, run_sipp
from tests.phone import CODECS, RtpPhone

SCENARIOS = Path(__file__).parent / "scenarios"
NS_CLIENT = "{jabber:client}"


@contextlib.asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[Gateway]:
    gateway = Gateway(config, Metrics())
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


def phone_keys(
    *,
    room: str | None = "sandbox",
    room_header: str = "X-Room-Name",
    extra: tuple[str, str] = ("X-Test", "1"),
    phone: RtpPhone | None = None,
    codec: str = "PCMU",
    caller: str = "+15551234567",
    caller_name: str = "Alice Phone",
) -> list[str]:
    """The ``-key`` arguments of the dial-in scenarios (tests/gateway/scenarios)."""
    spec = CODECS[phone.codec.name if phone is not None else codec]
    keys = {
        "room_header": room_header if room is not None else "X-Nothing",
        "room": room if room is not None else "-",
        "extra_header": extra[0],
        "extra_value": extra[1],
        "caller": caller,
        "caller_name": caller_name,
        "phone_port": str(phone.port if phone is not None else 9),
        "pt": str(spec.payload_type),
        "rtpmap": spec.rtpmap,
        # RFC 4733 §2.1: events on the audio codec's clock (48 kHz beside Opus).
        "te_rate": "48000" if spec.name == "opus" else "8000",
    }
    return [arg for key, value in keys.items() for arg in ("-key", key, value)]


def sipp_call(
    gateway: Gateway,
    scenario: str,
    *,
    room: str | None = "sandbox",
    room_header: str = "X-Room-Name",
    extra: tuple[str, str] = ("X-Test", "1"),
    phone: RtpPhone | None = None,
    codec: str = "PCMU",
    caller: str = "+15551234567",
    caller_name: str = "Alice Phone",
    service: str = "gateway",
    duration_ms: int = 6000,
    timeout: float = 60.0,
    args: Sequence[str] = (),
) -> asyncio.Task[SippResult]:
    """Run a dial-in scenario (tests/gateway/scenarios) against the gateway in a task."""
    keys = phone_keys(
        room=room,
        room_header=room_header,
        extra=extra,
        phone=phone,
        codec=codec,
        caller=caller,
        caller_name=caller_name,
    )
    return asyncio.ensure_future(
        run_sipp(
            str(SCENARIOS / scenario),
            gateway.config.sip.listen,
            args=[*keys, "-s", service, "-d", str(duration_ms), *args],
            timeout=timeout,
        )
    )


async def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.05)


async def only_call(gateway: Gateway, timeout: float = 10.0) -> InboundCall:
    await wait_until(lambda: len(gateway.calls) == 1, timeout, "one call at the gateway")
    (call,) = gateway.calls.values()
    assert isinstance(call, InboundCall)
    return call


def statuses(sandbox: Sandbox, room_jid: str, nick: str) -> list[str]:
    """The ``<status>`` texts of every presence the focus received from ``nick``."""
    found: list[str] = []
    for record in sandbox.jicofo.stanzas:
        if record.direction != "in" or record.connection != "focus":
            continue
        xml = record.xml
        if not xml.tag.endswith("presence") or xml.attrib.get("from") != f"{room_jid}/{nick}":
            continue
        status = xml.find(f"{NS_CLIENT}status")
        if status is not None and status.text:
            found.append(status.text)
    return found


def presences_from(sandbox: Sandbox, room_jid: str, nick: str) -> list[Any]:
    return [
        r.xml
        for r in sandbox.jicofo.stanzas
        if r.direction == "in"
        and r.connection == "focus"
        and r.xml.tag.endswith("presence")
        and r.xml.attrib.get("from") == f"{room_jid}/{nick}"
    ]


def sip_messages(result: SippResult, direction: str) -> list[str]:
    return result.received() if direction == "received" else result.sent()


def first_lines(messages: list[str]) -> list[str]:
    return [m.strip().splitlines()[0] for m in messages if m.strip()]


def json_bodies(messages: list[str], method: str = "INFO") -> list[dict[str, Any]]:
    """The JSON bodies of the INFO requests in a trace."""
    bodies = []
    for message in messages:
        lines = message.strip().splitlines()
        if not lines or not lines[0].startswith(method + " "):
            continue
        _, _, body = message.partition("\n\n")
        body = body.strip() or message.split("\r\n\r\n", 1)[-1].strip()
        match = re.search(r"\{.*\}", body, re.S)
        if match:
            bodies.append(json.loads(match.group(0)))
    return bodies


def header(message: str, name: str) -> str | None:
    for line in message.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name.lower():
            return value.strip()
    return None


__all__ = [
    "json_bodies",
    "only_call",
    "phone_keys",
    "presences_from",
    "running_gateway",
    "sipp_call",
    "statuses",
    "wait_until",
]
