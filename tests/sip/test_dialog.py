"""Dialog routing (RFC 3261 §12): route sets, loose and strict routing, target refresh."""

from __future__ import annotations

from sip import Request, Response, parse_message
from sip.dialog import Dialog

INVITE = (
    b"INVITE sip:room@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"From: <sip:alice@a.example.com>;tag=a\r\nTo: <sip:room@gw>\r\nCall-ID: c1\r\n"
    b"CSeq: 5 INVITE\r\nContact: <sip:alice@10.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n"
)


def _request() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def test_uas_route_set_in_record_route_order() -> None:
    dialog = Dialog.as_uas(_request(), "b", confirmed=True)
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert dialog.remote_seq == 5 and dialog.remote_tag == "a"
    bye = dialog.build_request("BYE", "SIP/2.0/UDP gw;branch=z9hG4bKb", None)
    # Loose routing: Request-URI is the remote target, Route is the route set (§12.2.1.1).
    assert str(bye.uri) == "sip:alice@10.0.0.1:5062"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert str(dialog.next_hop()) == "sip:p1.example.com;lr"
    assert bye.from_.tag == "b" and bye.to.tag == "a" and bye.cseq.seq == 1


def test_uac_route_set_reversed_and_target_refresh() -> None:
    response = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
        b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
        b"From: <sip:alice@a.example.com>;tag=a\r\nTo: <sip:room@gw>;tag=b\r\nCall-ID: c1\r\n"
        b"CSeq: 5 INVITE\r\nContact: <sip:room@192.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(response, Response)
    dialog = Dialog.as_uac(_request(), response)
    assert [r.uri.host for r in dialog.route_set] == ["p1.example.com", "p2.example.com"]
    assert dialog.local_seq == 5
    refresh = parse_message(
        INVITE.replace(b"Contact: <sip:alice@10.0.0.1:5062>", b"Contact: <sip:x@10.9.9.9>")
    )
    dialog.refresh_target(refresh)
    assert dialog.remote_target.host == "10.9.9.9"


def test_strict_routing() -> None:
    request = parse_message(
        INVITE.replace(
            b"<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
            b"<sip:strict.example.com>, <sip:p2.example.com;lr>",
        )
    )
    assert isinstance(request, Request)
    dialog = Dialog.as_uas(request, "b", confirmed=True)
    info = dialog.build_request("INFO", "SIP/2.0/UDP gw;branch=z9hG4bKi", None)
    # §12.2.1.1: a strict router gets the Request-URI; the remote target goes last in Route.
    assert str(info.uri) == "sip:strict.example.com"
    assert info.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:alice@10.0.0.1:5062>"]
    assert str(dialog.next_hop()) == "sip:strict.example.com"


def test_cseq_order() -> None:
    dialog = Dialog.as_uas(_request(), "b", confirmed=True)
    later = parse_message(INVITE.replace(b"CSeq: 5 INVITE", b"CSeq: 7 INVITE"))
    earlier = parse_message(INVITE.replace(b"CSeq: 5 INVITE", b"CSeq: 6 INVITE"))
    assert isinstance(later, Request) and isinstance(earlier, Request)
    assert dialog.accept_remote_cseq(later)
    assert not dialog.accept_remote_cseq(earlier)
