"""Messages parsed and serialised per second per core, for a typical INVITE and a 200 OK.

Run: .venv/bin/python bench/sip_parse.py [--seconds N] [--json]
CPU time (process_time) is measured, so the figure is per core whatever else the machine does.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from functools import partial

from sip import parse_message

INVITE = (
    b"INVITE sip:+15551230000@gw.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-524287-1---a0b1c2d3e4f5;rport\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.2:5060;branch=z9hG4bK8f7e6d5c;received=198.51.100.2\r\n"
    b"Record-Route: <sip:203.0.113.10;lr;ftag=as7d8f9>\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "+15557654321" <sip:+15557654321@trunk.example.net;user=phone>;tag=as7d8f9\r\n'
    b"To: <sip:+15551230000@gw.example.com>\r\n"
    b"Call-ID: 7a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d@198.51.100.2\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"Contact: <sip:+15557654321@198.51.100.2:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE\r\n"
    b"Supported: replaces, timer\r\n"
    b"Session-Expires: 1800\r\n"
    b"X-Room-Name: dailystandup\r\n"
    b"User-Agent: Carrier SBC 4.2\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 252\r\n\r\n"
    b"v=0\r\no=- 1732186720 1732186720 IN IP4 198.51.100.2\r\ns=-\r\nc=IN IP4 198.51.100.2\r\n"
    b"t=0 0\r\nm=audio 17000 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKf0e1d2c3b4a5;rport=5060;"
    b"received=192.0.2.10\r\n"
    b"Record-Route: <sip:203.0.113.10;lr>\r\n"
    b"From: <sip:gateway@192.0.2.10>;tag=9a8b7c6d5e\r\n"
    b"To: <sip:+15550001111@trunk.example.net>;tag=as1b2c3d\r\n"
    b"Call-ID: 1f2e3d4c5b6a79880716253443526170@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:+15550001111@203.0.113.20:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, INFO, UPDATE\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _round_trip(data: bytes) -> bytes:
    return bytes(parse_message(data))


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second."""
    for _ in range(200):  # warm-up
        fn()
    count = 0
    start = time.process_time()
    while True:
        for _ in range(500):
            fn()
        count += 500
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, float] = {}
    for name, data in (("invite", INVITE), ("200_ok", OK)):
        message = parse_message(data)
        results[f"{name}_parse_per_s"] = _rate(partial(parse_message, data), args.seconds)
        results[f"{name}_serialise_per_s"] = _rate(message.__bytes__, args.seconds)
        results[f"{name}_parse_and_serialise_per_s"] = _rate(
            partial(_round_trip, data), args.seconds
        )
    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}))
        return
    print(
        f"SIP parse/serialise, per CPU core ({platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()})"
    )
    print(f"{'message':10} {'parse/s':>10} {'serialise/s':>12} {'both/s':>10}")
    for name in ("invite", "200_ok"):
        print(
            f"{name:10} {results[f'{name}_parse_per_s']:>10,.0f} "
            f"{results[f'{name}_serialise_per_s']:>12,.0f} "
            f"{results[f'{name}_parse_and_serialise_per_s']:>10,.0f}"
        )


if __name__ == "__main__":
    main()
