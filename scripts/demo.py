"""``make demo``: a real SIP call through pygasi into a local sandbox conference.

What runs, all on loopback and all stopped at the end:

* Prosody (the Debian package) in a temp dir, with the Jicofo + videobridge emulator from
  tests/ as the conference: two web participants talk (Alice at 440 Hz, Bob at 660 Hz);
* ``pygasi run`` as its own process, with a configuration written for the sandbox;
* SIPp as the phone's signalling (an INVITE with ``X-Room-Name: demo``, then a SIP INFO
  ``muteRequest``, then BYE) and an RTP phone that says 1000 Hz in G.711 µ-law.

It prints the story - the INVITE, the room joined (nick, display name), the session accepted,
the tones heard in each direction, the mute shown in presence, the BYE - and exits 0 when every
step happened, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession  # noqa: E402

from tests.gateway.sandbox import Sandbox  # noqa: E402
from tests.peers import free_port, run_sipp  # noqa: E402
from tests.phone import CODECS, RtpPhone  # noqa: E402
from tests.xmpp.prosody import prosody  # noqa: E402
from xmpp.presence import Occupant  # noqa: E402

ROOM = "demo"
ALICE, BOB, PHONE = 440.0, 660.0, 1000.0
TONES = [ALICE, BOB, PHONE]
SCENARIO = ROOT / "scripts" / "demo_call.xml"
T = TypeVar("T")

_start = time.monotonic()
_failures: list[str] = []


def say(text: str) -> None:
    print(f"[{time.monotonic() - _start:5.1f} s] {text}", flush=True)


def check(ok: bool, text: str) -> None:
    say(("ok    " if ok else "FAIL  ") + text)
    if not ok:
        _failures.append(text)


def write_config(path: Path, sip_port: int, api_port: int, xmpp_port: int, domain: str) -> None:
    base = 30000 + 2 * (free_port() % 5000)
    path.write_text(
        f"""# written by scripts/demo.py for the sandbox conference
[sip]
listen = "127.0.0.1:{sip_port}"
rtp_ports = "{base}-{base + 99}"
codecs = ["PCMU", "PCMA", "G722", "opus"]

[inbound]
invite_timeout = 30
status_linger = 2

[xmpp]
server = "127.0.0.1:{xmpp_port}"
domain = "{domain}"
muc_domain = "conference.{domain}"
focus = "focus.{domain}"
tls_verify = false
ice_addresses = ["127.0.0.1"]
ice_ports = "{base + 100}-{base + 199}"

[api]
listen = "127.0.0.1:{api_port}"

[drain]
timeout = 10
"""
    )


async def stop_process(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # a graceful drain: no call is left
        try:
            await asyncio.wait_for(process.wait(), 15.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return process.returncode or 0


async def main() -> int:
    for tool in ("prosody", "sipp"):
        if shutil.which(tool) is None:
            print(f"make demo: {tool} is missing (run scripts/install-test-deps as root)")
            return 1
    workdir = Path(tempfile.mkdtemp(prefix="pygasi-demo-"))
    pygasi = Path(sys.executable).parent / "pygasi"
    try:
        async with prosody(domain="meet.demo") as server:
            say(f"Prosody up: {server.domain}, c2s on 127.0.0.1:{server.c2s_port}")
            async with Sandbox(server, min_participants=3) as sandbox:
                await sandbox.add_web(ROOM, "a11ce000", ALICE)
                await sandbox.add_web(ROOM, "b0b00000", BOB)
                say("sandbox conference 'demo': Alice (440 Hz) and Bob (660 Hz) are talking")
                return await call_through_pygasi(
                    server.c2s_port, server.domain, sandbox, workdir, pygasi
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def call_through_pygasi(
    xmpp_port: int, domain: str, sandbox: Sandbox, workdir: Path, pygasi: Path
) -> int:
    sip_port = free_port()
    config = workdir / "pygasi.toml"
    api_port = free_port()
    write_config(config, sip_port, api_port, xmpp_port, domain)
    log_path = workdir / "pygasi.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(pygasi), "run", "--config", str(config),
            stdout=log_file, stderr=log_file, start_new_session=True,
        )  # fmt: skip
        try:
            await wait_ready(api_port, process)
            say(f"pygasi running (pid {process.pid}), SIP on 127.0.0.1:{sip_port}")
            await place_call(sip_port, sandbox)
        finally:
            code = await stop_process(process)
    check(code == 0, f"pygasi stopped by SIGTERM (graceful drain), exit status {code}")
    story = [line for line in log_path.read_text().splitlines() if "pygasi.call" in line]
    if story:
        print("\npygasi's own log of the call:")
        for line in story:
            print("   ", line)
    if _failures:
        print(f"\nmake demo: {len(_failures)} step(s) failed; pygasi's log: kept below")
        print(log_path.read_text()[-4000:])
        return 1
    print("\nmake demo: the call went through pygasi and every step checked out.")
    return 0


async def wait_ready(api_port: int, process: asyncio.subprocess.Process) -> None:
    """Until ``GET /about/health`` says 200 (SIP listening, Prosody reachable)."""
    url = f"http://127.0.0.1:{api_port}/about/health"
    deadline = time.monotonic() + 30
    async with ClientSession() as session:
        while True:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("pygasi did not become healthy")
            with contextlib.suppress(OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def place_call(sip_port: int, sandbox: Sandbox) -> None:
    phone = RtpPhone("PCMU", PHONE, latch=True)
    await phone.open()
    codec = CODECS["PCMU"]
    keys = {
        "room_header": "X-Room-Name", "room": ROOM, "extra_header": "X-Demo", "extra_value": "1",
        "caller": "+15551230000", "caller_name": "Demo Phone", "phone_port": str(phone.port),
        "pt": str(codec.payload_type), "rtpmap": codec.rtpmap,
    }  # fmt: skip
    args = [a for key, value in keys.items() for a in ("-key", key, value)]
    say("SIPp: INVITE sip:gateway@pygasi with X-Room-Name: demo (PCMU, the phone says 1000 Hz)")
    sipp = asyncio.ensure_future(
        run_sipp(str(SCENARIO), f"127.0.0.1:{sip_port}", args=[*args, "-s", "gateway"], timeout=60)
    )
    room = sandbox.jicofo.room(ROOM)
    nick = await until(lambda: next((n for n, o in room.occupants.items() if o.is_gateway), None))
    occupant = room.occupants[nick]
    say(f"pygasi joined {room.jid} as '{nick}', display name '{occupant.display_name}'")
    invite = await until(lambda: room.invites.get(nick))
    await until(lambda: invite.accept is not None or None)
    (source,) = invite.sources
    say(f"Jingle session-initiate from the focus, session-accept from pygasi (SSRC {source.ssrc})")
    host, port = await until(lambda: phone.remote)
    say(f"200 OK: RTP flowing, the phone answers to {host}:{port}")
    bridge = sandbox.bridges[nick]
    await until(lambda: bridge.connected.is_set() or None)
    mark = phone.mark()
    await asyncio.sleep(3.0)
    heard = phone.heard(TONES, since=mark + 25)
    check(
        heard.present == {ALICE, BOB},
        f"the phone hears {fmt(heard.present)} (Alice and Bob, not itself)",
    )
    bridge_heard = bridge.heard(source.ssrc, TONES, skip_frames=50)
    check(
        bridge_heard.present == {PHONE},
        f"the meeting hears {fmt(bridge_heard.present)} from the phone",
    )
    say('SIPp: INFO {"type":"muteRequest","data":{"audio":true}}')
    muted = await until(lambda: shown_muted(room.occupants.get(nick)), 15)
    check(bool(muted), "the meeting shows the phone muted (presence <audiomuted>true)")
    result = await sipp
    check(result.successful_calls == 1, "SIPp: muteResponse OK received, BYE sent, 200 OK")
    left = await until(lambda: nick not in room.occupants or None, 15)
    check(bool(left), f"pygasi showed why, then left {room.jid}")
    await phone.close()


def shown_muted(occupant: Occupant | None) -> bool | None:
    return True if occupant is not None and occupant.audio_muted else None


def fmt(tones: frozenset[float]) -> str:
    return " + ".join(f"{t:g} Hz" for t in sorted(tones)) or "nothing"


async def until(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("the demo waited in vain")
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
