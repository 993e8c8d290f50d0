"""RFC 4475 torture messages: every valid one parses, every other one is rejected as the RFC
says, none crashes. Walks ../shared/conformance/rfc4475/manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sip import Request, Response, SipParseError, parse_message
from sip.core import CoreConfig, SipCore
from sip.events import IncomingCall
from sip.flow import Flow

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())

# What our UAS answers each message that is not simply handled: RFC 4475 §3 gives the choices.
EXPECTED_ANSWER: dict[str, set[int] | None] = {
    # 3.1.2: syntax errors -> 400 (505 for the version); responses are discarded (None).
    "badinv01.dat": {400},
    "clerr.dat": {400},
    "ncl.dat": {400},
    "scalar02.dat": {400},
    "scalarlg.dat": None,
    "quotbal.dat": {400},
    "ltgtruri.dat": {400},
    "lwsruri.dat": {400},
    "lwsstart.dat": {400},
    "trws.dat": {400},
    "escruri.dat": {400},
    "baddate.dat": {400},
    "regbadct.dat": {400},
    "badaspec.dat": {400},
    "baddn.dat": {400},
    "badvers.dat": {505},
    "mismatch01.dat": {400},
    "mismatch02.dat": {501},
    "bigcode.dat": None,
    # 3.2 / 3.3: parse, then refuse.
    "badbranch.dat": {400},
    "insuf.dat": {400},
    "unkscm.dat": {416},
    "novelsc.dat": {416},
    "unksm2.dat": {400, 405},  # we are no registrar: 405 (RFC 4475 §3.3.7 allows it)
    "bext01.dat": {420},
    "invut.dat": {415},
    "regaut01.dat": {405},
    "multi01.dat": {400},
    "mcl01.dat": {400},
    "bcast.dat": None,
    "zeromf.dat": {200},  # a UAS processes Max-Forwards 0 normally (§3.3.11)
    "sdp01.dat": {406, 400},
    # Valid messages we answer with a definite code.
    "intmeth.dat": {501},  # unknown method, with Allow
    "esc02.dat": {501},  # RE%47IST%45R is not REGISTER
    "wsinv.dat": {481},  # a re-INVITE (To has a tag) for a dialog we do not have
    "esc01.dat": {100},  # INVITE
    "lwsdisp.dat": {200},
    "longreq.dat": {100},  # INVITE: Trying, then the application decides
    "dblreq.dat": {405},  # REGISTER at a UA
    "semiuri.dat": {200},
    "transports.dat": {200},
    "mpart01.dat": {405},  # MESSAGE
    "escnull.dat": {405},
    "cparam01.dat": {405},
    "cparam02.dat": {405},
    "regescrt.dat": {405},
    "inv2543.dat": {100},
}


def _load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_manifest_is_complete() -> None:
    assert len(MANIFEST) == 49
    assert {m["file"] for m in MANIFEST} == set(EXPECTED_ANSWER) | {"unreason.dat", "noreason.dat"}


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_parser(entry: dict[str, str]) -> None:
    data = _load(entry["file"])
    if entry["expect"] == "invalid":
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.reason  # the error names the problem
        return
    if entry["file"] == "mcl01.dat":
        # Two conflicting Content-Length values: the body cannot be framed at all.
        with pytest.raises(SipParseError, match="Content-Length"):
            parse_message(data)
        return
    message = parse_message(data)
    assert isinstance(message, Response if entry["kind"] == "response" else Request)
    # Serialising and parsing again gives the same message.
    again = parse_message(bytes(message))

    def without_length(m: Request | Response) -> list[tuple[str, str]]:
        return [(n, v) for n, v in m.headers if n != "Content-Length"]

    assert without_length(again) == without_length(message)
    assert again.body == message.body


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_endpoint_answers(entry: dict[str, str]) -> None:
    core = SipCore(CoreConfig(host="192.0.2.200", ports={"udp": 5060}))
    flow = Flow("udp", ("192.0.2.1", 5060))
    core.receive(_load(entry["file"]), flow, now=0.0)
    # Our answers to malformed requests copy their broken headers verbatim (§8.2.6.2), so
    # read just the status line.
    statuses = [
        int(data.split(b" ", 2)[1])
        for data, _ in core.datagrams_to_send()
        if data.startswith(b"SIP/2.0 ")
    ]
    expected = EXPECTED_ANSWER.get(entry["file"])
    if entry["kind"] == "response":
        assert statuses == []  # responses are never answered, and these match nothing
        return
    assert expected is not None
    assert statuses, f"{entry['file']} got no answer"
    assert statuses[0] in expected, f"{entry['file']}: answered {statuses}"
    if statuses[0] == 100:
        events = []
        while (event := core.next_event()) is not None:
            events.append(event)
        assert any(isinstance(e, IncomingCall) for e in events)


def test_bad_request_reason_names_the_problem() -> None:
    core = SipCore(CoreConfig(host="192.0.2.200"))
    core.receive(_load("badaspec.dat"), Flow("udp", ("192.0.2.1", 5060)), now=0.0)
    ((data, flow),) = core.datagrams_to_send()
    status_line = data.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("SIP/2.0 400 Bad Request (invalid URI")
    # Sent where the Via says (host4.example.com:5060 has no received/rport: the source IP).
    assert flow.remote == ("192.0.2.1", 5060)


def test_unsupported_extension_lists_tags() -> None:
    core = SipCore(CoreConfig(host="192.0.2.200"))
    core.receive(_load("bext01.dat"), Flow("udp", ("192.0.2.1", 5060)), now=0.0)
    ((data, _),) = core.datagrams_to_send()
    response = parse_message(data)
    assert isinstance(response, Response) and response.status == 420
    assert response.headers.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"


def test_unknown_method_gets_allow() -> None:
    core = SipCore(CoreConfig(host="192.0.2.200"))
    core.receive(_load("intmeth.dat"), Flow("tcp", ("192.0.2.1", 40000), 7), now=0.0)
    ((data, flow),) = core.datagrams_to_send()
    response = parse_message(data)
    assert isinstance(response, Response) and response.status == 501
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert flow.connection_id == 7  # back over the connection it came on (§18.2.2)
