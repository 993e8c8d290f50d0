"""The core as UAS, driven with a fake clock (RFC 3261 §13.3, §17.2, RFC 6026, RFC 4028)."""

from __future__ import annotations

import pytest

from sip import Request, Response
from sip.call import CallState, Cause
from sip.events import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    InfoReceived,
    OfferReceived,
)
from tests.sip.helpers import SDP, Harness, invite, request_in_dialog, statuses

ANSWER = b"v=0\r\no=- 2 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


def _incoming(h: Harness, **kw: object) -> IncomingCall:
    h.feed(invite(**kw))  # type: ignore[arg-type]
    (event,) = [e for e in h.take_events() if isinstance(e, IncomingCall)]
    return event


def _answered(h: Harness) -> tuple[IncomingCall, Response]:
    event = _incoming(h)
    h.take()
    event.call.send_provisional(180, None, h.now)
    event.call.answer(ANSWER, h.now)
    h.core.handle_timer(h.now)
    msgs = h.take()
    ok = msgs[-1]
    assert isinstance(ok, Response) and ok.status == 200
    return event, ok


def test_trying_ringing_ok_carry_tags_contact_and_record_route() -> None:
    h = Harness()
    h.feed(invite(extra="Record-Route: <sip:proxy.example.com;lr>\r\n"))
    (event,) = h.take_events()
    assert isinstance(event, IncomingCall)
    assert event.request.headers.get("Call-ID") == "call-1"
    (trying,) = h.responses()
    assert trying.status == 100 and trying.to.tag is None
    event.call.send_provisional(180, None, h.now)
    event.call.answer(ANSWER, h.now)
    ringing, ok = h.responses()
    assert (ringing.status, ok.status) == (180, 200)
    assert ringing.to.tag == ok.to.tag and ok.to.tag
    # §12.1.1: the 2xx copies Record-Route, or the ACK is lost through the proxy.
    assert ok.headers.get_all("Record-Route") == ["<sip:proxy.example.com;lr>"]
    assert ok.contacts[0].uri.host == "192.0.2.10"
    assert ok.body == ANSWER and ok.content_type == "application/sdp"


def test_2xx_retransmitted_until_ack() -> None:
    h = Harness()
    event, ok = _answered(h)
    times: list[float] = []
    for _ in range(40):
        h.advance(0.25)
        for m in h.take():
            assert isinstance(m, Response) and m.status == 200
            times.append(round(h.now, 2))
        if h.now >= 8.0:
            break
    # T1=0.5: retransmissions at 0.5, 1.5, 3.5, 7.5 s (intervals double up to T2=4 s).
    assert times[:4] == [0.5, 1.5, 3.5, 7.5]
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    (confirmed,) = h.take_events()
    assert isinstance(confirmed, CallConfirmed)
    assert event.call.state is CallState.CONFIRMED
    h.advance(20)
    assert h.take() == []


def test_lost_ack_ends_with_bye() -> None:
    h = Harness()
    _event, _ = _answered(h)
    h.advance(31.0)
    assert all(isinstance(m, Response) for m in h.take())
    h.advance(1.5)  # 64*T1 = 32 s
    byes = [m for m in h.take() if isinstance(m, Request)]
    assert {b.method for b in byes} == {"BYE"}  # sent, then retransmitted (Timer E)
    assert len({b.top_via.branch for b in byes}) == 1
    assert "cause=408" in (byes[0].headers.get("Reason") or "")
    assert byes[0].uri.user == "alice"  # sent to the remote target (Contact)


def test_invite_retransmission_absorbed() -> None:
    h = Harness()
    event = _incoming(h)
    h.take()
    event.call.send_provisional(180, None, h.now)
    h.take()
    h.feed(invite())  # the same INVITE again
    assert statuses(h.take()) == [180]  # the last provisional again, no new call
    assert h.take_events() == []


def test_cancel_before_answer() -> None:
    h = Harness()
    event = _incoming(h)
    event.call.send_provisional(180, None, h.now)
    h.take()
    cancel = invite(method="CANCEL", body=b"").replace(b"CSeq: 1 CANCEL", b"CSeq: 1 CANCEL")
    h.feed(cancel)
    msgs = h.take()
    assert sorted(statuses(msgs)) == [200, 487]
    ok = next(m for m in msgs if isinstance(m, Response) and m.status == 200)
    assert ok.cseq.method == "CANCEL"
    (cancelled,) = h.take_events()
    assert isinstance(cancelled, CallCancelled)
    # The 487 is retransmitted (Timer G) until the ACK, which the transaction absorbs.
    h.advance(0.6)
    assert statuses(h.take()) == [487]
    final = next(m for m in msgs if isinstance(m, Response) and m.status == 487)
    ack = request_in_dialog("ACK", final, 1, "z9hG4bKinv1").replace(
        b"sip:pygasi@192.0.2.10:5060", b"sip:room@192.0.2.10"
    )
    h.feed(ack)
    h.advance(10)
    assert h.take() == []


def test_cancel_for_unknown_invite_is_481() -> None:
    h = Harness()
    h.feed(invite(method="CANCEL", body=b"", branch="z9hG4bKnone"))
    assert statuses(h.take()) == [481]


def test_merged_request_is_482() -> None:
    h = Harness()
    _incoming(h)
    h.take()
    h.feed(invite(branch="z9hG4bKother-path"))
    assert statuses(h.take()) == [482]


def test_100rel_required_is_420() -> None:
    h = Harness()
    h.feed(invite(extra="Require: 100rel\r\n"))
    (response,) = h.responses()
    assert response.status == 420 and response.headers.get("Unsupported") == "100rel"


def test_reject_names_the_cause() -> None:
    h = Harness()
    event = _incoming(h)
    h.take()
    event.call.reject(486, "No room given in X-Room-Name", h.now)
    (response,) = h.responses()
    assert (response.status, response.reason) == (486, "No room given in X-Room-Name")
    assert "X-Room-Name" in (response.headers.get("Warning") or "")


def test_bye_from_peer() -> None:
    h = Harness()
    _event, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.take_events()
    h.feed(
        request_in_dialog(
            "BYE", ok, 2, "z9hG4bKbye1", extra='Reason: Q.850;cause=16;text="Normal"\r\n'
        )
    )
    (response,) = h.responses()
    assert response.status == 200 and response.cseq.method == "BYE"
    (ended,) = h.take_events()
    assert isinstance(ended, CallEnded) and ended.by_remote
    assert "cause=16" in ended.reason
    # A request in the ended dialog: 481.
    h.feed(request_in_dialog("INFO", ok, 3, "z9hG4bKinfo9"))
    assert statuses(h.take()) == [481]


def test_our_bye_carries_reason_and_completes() -> None:
    h = Harness()
    event, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.take_events()
    event.call.hangup(Cause(408, "No invite from conference focus"), h.now)
    (bye,) = h.take()
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert bye.headers.get("Reason") == 'SIP;cause=408;text="No invite from conference focus"'
    assert bye.to.tag == "peer1" and bye.from_.tag == ok.to.tag  # roles swap in the dialog
    assert bye.cseq.seq == 1
    from tests.sip.helpers import response_to

    h.feed(response_to(bye, 200, "OK", to_tag=None))
    (ended,) = [e for e in h.take_events() if isinstance(e, CallEnded)]
    assert isinstance(ended, CallEnded) and not ended.by_remote


def test_hangup_before_ack_waits_for_ack() -> None:
    h = Harness()
    event, ok = _answered(h)
    event.call.hangup(Cause(480, "Room closed"), h.now)
    assert h.take() == []  # §15: no BYE before the ACK
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    assert statuses(h.take()) == ["BYE"]


def test_info_event_and_response() -> None:
    h = Harness()
    _event, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.take_events()
    body = b'{"type":"muteRequest","id":"1","muted":true}'
    h.feed(request_in_dialog("INFO", ok, 2, "z9hG4bKinfo1", body, "application/json"))
    (info,) = h.take_events()
    assert isinstance(info, InfoReceived) and info.request.body == body
    h.core.respond(info.transaction_id, 200, now=h.now)
    (response,) = h.responses()
    assert response.status == 200 and response.cseq.method == "INFO"


def test_info_with_unknown_type_is_415() -> None:
    h = Harness()
    _, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.feed(request_in_dialog("INFO", ok, 2, "z9hG4bKinfo2", b"x", "application/x-unknown"))
    assert 415 in statuses(h.take())


def test_reinvite_hold_offer_event_and_ack() -> None:
    h = Harness()
    event, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.take_events()
    hold = SDP.replace(b"m=audio 4000 RTP/AVP 0\r\n", b"m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n")
    extra = "Contact: <sip:alice@192.0.2.21:5060>\r\n"
    h.feed(request_in_dialog("INVITE", ok, 2, "z9hG4bKre1", hold, "application/sdp", extra))
    (offer,) = [e for e in h.take_events() if isinstance(e, OfferReceived)]
    assert b"a=sendonly" in offer.request.body
    h.core.answer_offer(
        offer.transaction_id, ANSWER.replace(b"t=0 0\r\n", b"t=0 0\r\na=recvonly\r\n"), h.now
    )
    reok = [m for m in h.take() if isinstance(m, Response) and m.status == 200][-1]
    assert b"a=recvonly" in reok.body
    # Remote target refreshed by the re-INVITE's Contact (§12.2.2).
    assert event.call.dialog is not None and event.call.dialog.remote_target.host == "192.0.2.21"
    h.feed(request_in_dialog("ACK", reok, 2, "z9hG4bKack2"))
    assert any(isinstance(e, CallConfirmed) for e in h.take_events())
    h.advance(5)
    assert h.take() == []  # no more 2xx retransmissions


def test_reinvite_glare_is_491() -> None:
    h = Harness()
    event, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    event.call.reinvite(ANSWER, h.now)
    h.take()
    h.feed(request_in_dialog("INVITE", ok, 2, "z9hG4bKre2", SDP, "application/sdp"))
    assert 491 in statuses(h.take())


def test_out_of_order_cseq_is_500() -> None:
    h = Harness()
    _, ok = _answered(h)
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.feed(request_in_dialog("INFO", ok, 5, "z9hG4bKi5", b"{}", "application/json"))
    h.take_events()
    h.take()
    h.feed(request_in_dialog("INFO", ok, 3, "z9hG4bKi3", b"{}", "application/json"))
    assert statuses(h.take()) == [500]


def test_options_outside_dialog() -> None:
    h = Harness()
    h.feed(invite(method="OPTIONS", body=b""))
    (response,) = h.responses()
    assert response.status == 200
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert response.headers.get("Accept") == "application/sdp"


def test_prack_is_481_and_register_405() -> None:
    h = Harness()
    _, ok = _answered(h)
    h.feed(request_in_dialog("PRACK", ok, 2, "z9hG4bKpr"))
    assert statuses(h.take()) == [481]
    h.feed(invite(method="REGISTER", body=b"", branch="z9hG4bKreg"))
    (response,) = h.responses()
    assert response.status == 405 and response.headers.get("Allow")


def test_draining_refuses_new_calls_with_retry_after() -> None:
    h = Harness()
    h.core.accepting_calls = False
    h.core.refuse_status = (503, "Service Unavailable (draining)", 60)
    h.feed(invite())
    response = next(r for r in h.responses() if r.status >= 200)
    assert response.status == 503 and response.headers.get("Retry-After") == "60"
    assert h.take_events() == []


def test_session_timer_uas_refresher_sends_update_and_expiry_byes() -> None:
    h = Harness()
    event = _incoming(
        h,
        extra="Session-Expires: 120;refresher=uas\r\nSupported: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    )
    event.call.answer(ANSWER, h.now)
    ok = next(r for r in h.responses() if r.status == 200)
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.take_events()
    h.advance(59)
    assert h.take() == []
    h.advance(2)  # half the interval: we refresh
    update = next(m for m in h.take() if isinstance(m, Request))
    assert (
        update.method == "UPDATE" and update.headers.get("Session-Expires") == "120;refresher=uac"
    )
    # The peer never answers: the UPDATE times out (RFC 5057) and the call is BYEd.
    h.advance(40)
    assert "BYE" in statuses(h.take())


def test_session_timer_peer_refresher_missing_refresh_byes() -> None:
    h = Harness()
    event = _incoming(h, extra="Session-Expires: 90\r\nSupported: timer\r\n")
    event.call.answer(ANSWER, h.now)
    ok = next(r for r in h.responses() if r.status == 200)
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    h.feed(request_in_dialog("ACK", ok, 1, "z9hG4bKack1"))
    h.advance(55)  # a refresh from the peer resets the timer
    h.feed(
        request_in_dialog(
            "UPDATE", ok, 2, "z9hG4bKup1", extra="Session-Expires: 90;refresher=uac\r\n"
        )
    )
    (resp,) = h.responses()
    assert resp.status == 200 and resp.headers.get("Session-Expires") == "90;refresher=uac"
    h.advance(55)
    assert h.take() == []
    h.advance(10)  # 90 - min(32, 30) = 60 s after the refresh
    byes = [m for m in h.take() if isinstance(m, Request) and m.method == "BYE"]
    assert byes and "Session timer expired" in (byes[0].headers.get("Reason") or "")


def test_session_interval_too_small_is_422() -> None:
    h = Harness()
    h.feed(invite(extra="Session-Expires: 30\r\n"))
    response = next(r for r in h.responses() if r.status >= 200)
    assert response.status == 422 and response.headers.get("Min-SE") == "90"


@pytest.mark.parametrize("transport_reliable", [False])
def test_response_goes_to_rport(transport_reliable: bool) -> None:
    h = Harness()
    from sip.flow import Flow

    h.feed(invite(), Flow("udp", ("198.51.100.7", 34567)))  # NAT rewrote the source
    ((trying, flow),) = h.sent
    assert isinstance(trying, Response)
    assert flow.remote == ("198.51.100.7", 34567)
    top = trying.top_via
    assert top.received == "198.51.100.7" and top.rport == 34567
