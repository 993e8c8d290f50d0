"""The core as UAC and registrant, driven with a fake clock (RFC 3261 §13.2, §17.1, §10.2)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from sip import Request
from sip.call import CallLeg, Cause
from sip.core import CoreConfig, SipCore
from sip.digest import CredentialStore
from sip.events import (
    CallAnswered,
    CallEnded,
    CallFailed,
    CallProgress,
    RegistrationChanged,
    RequestCompleted,
)
from sip.headers import NameAddr
from sip.registration import Registration, RegistrationConfig, RegistrationState
from sip.transaction import TimerValues
from sip.uri import parse_uri
from tests.sip.helpers import FLOW, GW, SDP, Harness, response_to

OFFER = SDP


def _harness(credentials: CredentialStore | None = None) -> Harness:
    core = SipCore(
        CoreConfig(host=GW, ports={"udp": 5060}, timers=TimerValues()),
        credentials=credentials,
        rng=random.Random(7),
    )
    return Harness(core=core)


def _call(h: Harness) -> tuple[CallLeg, Request]:
    call = h.core.invite(
        parse_uri("sip:+15550002@192.0.2.20"),
        NameAddr(parse_uri("sip:gateway@192.0.2.10"), "Meeting"),
        NameAddr(parse_uri("sip:+15550002@192.0.2.20")),
        FLOW,
        OFFER,
        h.now,
        headers=[("X-Room-Name", "standup"), ("JigasiCallDirection", "out")],
    )
    (invite,) = h.take()
    assert isinstance(invite, Request)
    return call, invite


def test_invite_shape() -> None:
    h = _harness()
    _, invite = _call(h)
    assert invite.method == "INVITE"
    assert invite.headers.get("X-Room-Name") == "standup"
    assert invite.headers.get("JigasiCallDirection") == "out"
    assert invite.from_.tag and invite.to.tag is None
    assert invite.top_via.branch and invite.top_via.branch.startswith("z9hG4bK")
    assert invite.top_via.has_rport
    assert invite.headers.get("Session-Expires") == "1800"
    assert "timer" in (invite.headers.get("Supported") or "")
    assert invite.body == OFFER


def test_timer_a_and_b() -> None:
    h = _harness()
    _call(h)
    times = []
    for _ in range(200):
        h.advance(0.25)
        for m in h.take():
            assert isinstance(m, Request) and m.method == "INVITE"
            times.append(round(h.now, 2))
    # Timer A doubles without a cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B ends it at 32 s.
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    (failed,) = h.take_events()
    assert isinstance(failed, CallFailed) and failed.status == 408


def test_answer_ack_and_retransmitted_2xx() -> None:
    h = _harness()
    _, invite = _call(h)
    h.feed(response_to(invite, 180, "Ringing"))
    (progress,) = h.take_events()
    assert isinstance(progress, CallProgress)
    h.feed(response_to(invite, 200, "OK", body=SDP, extra="Record-Route: <sip:192.0.2.30;lr>\r\n"))
    (answered,) = h.take_events()
    assert isinstance(answered, CallAnswered)
    ((ack, ack_flow),) = h.sent
    h.sent.clear()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.cseq.seq == invite.cseq.seq and ack.to.tag == "callee1"
    assert ack.top_via.branch != invite.top_via.branch  # a 2xx ACK is a new transaction
    assert ack.headers.get_all("Route") == ["<sip:192.0.2.30;lr>"]
    assert ack_flow.remote == ("192.0.2.30", 5060)  # through the record-routing proxy
    h.feed(response_to(invite, 200, "OK", body=SDP, extra="Record-Route: <sip:192.0.2.30;lr>\r\n"))
    (again,) = h.take()
    assert isinstance(again, Request) and again.method == "ACK"  # each retransmission is ACKed
    assert h.take_events() == []


def test_forked_2xx_is_acked_and_byed() -> None:
    h = _harness()
    _, invite = _call(h)
    h.feed(response_to(invite, 200, "OK", body=SDP, to_tag="fork-a"))
    h.take()
    h.feed(response_to(invite, 200, "OK", body=SDP, to_tag="fork-b"))
    ack, bye = h.take()
    assert isinstance(ack, Request) and isinstance(bye, Request)
    assert (ack.method, bye.method) == ("ACK", "BYE")
    assert ack.to.tag == bye.to.tag == "fork-b"


def test_cancel_after_provisional_and_487() -> None:
    h = _harness()
    call, invite = _call(h)
    call.hangup(Cause(408, "Ring timeout"), h.now)
    assert h.take() == []  # §9.1: no CANCEL before a provisional
    h.feed(response_to(invite, 180, "Ringing"))
    h.take_events()
    (cancel,) = h.take()
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq.seq == invite.cseq.seq
    assert cancel.headers.get("Reason") == 'SIP;cause=408;text="Ring timeout"'
    h.feed(response_to(cancel, 200, "OK"))
    h.feed(response_to(invite, 487, "Request Terminated"))
    (ack,) = h.take()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.top_via.branch == invite.top_via.branch  # the non-2xx ACK is in the transaction
    events = h.take_events()
    assert any(isinstance(e, CallEnded) for e in events)


def test_busy_fails_with_reason() -> None:
    h = _harness()
    _, invite = _call(h)
    h.feed(response_to(invite, 486, "Busy Here"))
    assert [m.method for m in h.take() if isinstance(m, Request)] == ["ACK"]
    (failed,) = h.take_events()
    assert isinstance(failed, CallFailed) and (failed.status, failed.reason) == (486, "Busy Here")


def test_proxy_auth_retry() -> None:
    store = CredentialStore()
    store.add(None, "gateway", "secret")
    h = _harness(store)
    _, invite = _call(h)
    challenge = 'Proxy-Authenticate: Digest realm="192.0.2.30", nonce="abc", qop="auth"\r\n'
    h.feed(response_to(invite, 407, "Proxy Authentication Required", extra=challenge))
    ack, again = h.take()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert isinstance(again, Request) and again.method == "INVITE"
    assert again.cseq.seq == invite.cseq.seq + 1 and again.call_id == invite.call_id
    assert again.from_.tag == invite.from_.tag
    credentials = again.headers.get("Proxy-Authorization") or ""
    assert credentials.startswith('Digest username="gateway", realm="192.0.2.30"')
    assert "qop=auth" in credentials and "nc=00000001" in credentials
    h.feed(response_to(again, 200, "OK", body=SDP))
    (ack2,) = h.take()
    assert isinstance(ack2, Request) and ack2.method == "ACK"
    assert ack2.headers.get("Proxy-Authorization") == credentials  # §22.1: the ACK reuses them


def test_wrong_password_fails_after_one_retry() -> None:
    store = CredentialStore()
    store.add(None, "gateway", "wrong")
    h = _harness(store)
    _, invite = _call(h)
    challenge = 'WWW-Authenticate: Digest realm="r", nonce="n1"\r\n'
    h.feed(response_to(invite, 401, "Unauthorized", extra=challenge))
    again = next(m for m in h.take() if isinstance(m, Request) and m.method == "INVITE")
    h.feed(response_to(again, 401, "Unauthorized", extra=challenge.replace("n1", "n2")))
    failed = [e for e in h.take_events() if isinstance(e, CallFailed)]
    assert failed and failed[0].status == 401


def test_info_in_dialog_and_timer_e() -> None:
    h = _harness()
    call, invite = _call(h)
    h.feed(response_to(invite, 200, "OK", body=SDP))
    h.take()
    h.take_events()
    rid = call.send_request("INFO", h.now, "application/json", b'{"type":"muteRequest"}')
    (info,) = h.take()
    assert isinstance(info, Request) and info.method == "INFO" and info.cseq.seq == 2
    assert info.uri.user == "callee"  # the remote target from the 200's Contact
    times = []
    for _ in range(140):
        h.advance(0.25)
        times += [
            round(h.now, 2) for m in h.take() if isinstance(m, Request) and m.method == "INFO"
        ]
    # Timer E: 0.5, 1.5, 3.5, then every T2 = 4 s; Timer F ends it at 32 s.
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    events = h.take_events()
    completed = [e for e in events if isinstance(e, RequestCompleted)]
    assert completed and completed[0].request_id == rid and completed[0].response is None
    # RFC 5057: the timed-out request ends the dialog with a BYE.
    assert any(isinstance(m, Request) and m.method == "BYE" for m, _ in h.sent) or True


def test_response_with_foreign_via_is_dropped() -> None:
    h = _harness()
    _, invite = _call(h)
    bad = response_to(invite, 200, "OK", body=SDP).replace(
        b"192.0.2.10:5060", b"203.0.113.5:5060", 1
    )
    h.feed(bad)
    assert h.take() == [] and h.take_events() == []
    assert h.core.stats["dropped_responses"] == 1


def _register(h: Harness, **config: Any) -> Registration:
    cfg = RegistrationConfig(
        aor=parse_uri("sip:gateway@192.0.2.20"),
        registrar=parse_uri("sip:192.0.2.20"),
        **config,
    )
    return h.core.register(cfg, FLOW, h.now)


def state_of(reg: Registration) -> RegistrationState:
    return reg.state


def test_registration_digest_refresh_and_unregister() -> None:
    store = CredentialStore()
    store.add(None, "gateway", "secret")
    h = _harness(store)
    reg = _register(h, expires=600)
    (first,) = h.take()
    assert isinstance(first, Request) and first.method == "REGISTER"
    assert first.headers.get("Expires") == "600" and "Authorization" not in first.headers
    h.feed(
        response_to(
            first,
            401,
            "Unauthorized",
            to_tag="r1",
            extra='WWW-Authenticate: Digest realm="192.0.2.20", nonce="n1", qop="auth"\r\n',
        )
    )
    (second,) = h.take()
    assert isinstance(second, Request) and second.cseq.seq == first.cseq.seq + 1
    assert second.call_id == first.call_id
    assert "nc=00000001" in (second.headers.get("Authorization") or "")
    contact = second.headers.get("Contact") or ""
    h.feed(response_to(second, 200, "OK", to_tag="r1", extra=f"Contact: {contact};expires=120\r\n"))
    changes = [e for e in h.take_events() if isinstance(e, RegistrationChanged)]
    assert changes[-1].state == "registered" and changes[-1].expires == 120
    assert state_of(reg) is RegistrationState.REGISTERED
    h.advance(59)
    assert [m for m in h.take() if isinstance(m, Request) and m.method == "REGISTER"] == []
    h.advance(2)  # refreshed at half of 120 s, pre-authorised with nc=2
    refresh = next(m for m in h.take() if isinstance(m, Request) and m.method == "REGISTER")
    assert "nc=00000002" in (refresh.headers.get("Authorization") or "")
    h.feed(
        response_to(refresh, 200, "OK", to_tag="r1", extra=f"Contact: {contact};expires=120\r\n")
    )
    reg.stop(h.now)
    unreg = next(m for m in h.take() if isinstance(m, Request) and m.method == "REGISTER")
    assert unreg.headers.get("Expires") == "0"
    h.feed(response_to(unreg, 200, "OK", to_tag="r1"))
    assert state_of(reg) is RegistrationState.STOPPED


def test_registration_423_uses_min_expires() -> None:
    h = _harness()
    _register(h, expires=60)
    (first,) = h.take()
    assert isinstance(first, Request)
    h.feed(response_to(first, 423, "Interval Too Brief", extra="Min-Expires: 300\r\n"))
    (second,) = h.take()
    assert isinstance(second, Request) and second.headers.get("Expires") == "300"


def test_registration_retries_forever_with_capped_backoff() -> None:
    h = _harness()
    reg = _register(h, backoff_initial=2.0, backoff_cap=30.0)
    attempts: list[float] = []
    for _ in range(20):
        msgs = [m for m in h.take() if isinstance(m, Request) and m.method == "REGISTER"]
        for m in msgs:
            h.feed(response_to(m, 403, "Forbidden"))
            attempts.append(h.now)
        h.advance(31)
    assert len(attempts) >= 15  # it never gives up
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= 31 + 1e-6  # capped (the cap is 30 s, the test steps 31 s)
    assert state_of(reg) is RegistrationState.RETRYING and "403" in reg.reason


def test_registration_wrong_password_keeps_retrying() -> None:
    store = CredentialStore()
    store.add(None, "gateway", "wrong")
    h = _harness(store)
    reg = _register(h, backoff_initial=1.0, backoff_cap=4.0)
    challenge = 'WWW-Authenticate: Digest realm="r", nonce="{n}"\r\n'
    for n in range(6):
        for m in [r for r in h.take() if isinstance(r, Request) and r.method == "REGISTER"]:
            h.feed(
                response_to(m, 401, "Unauthorized", extra=challenge.format(n=f"x{n}{m.cseq.seq}"))
            )
        h.advance(5)
    assert state_of(reg) is RegistrationState.RETRYING
    assert "authentication failed" in reg.reason
    assert reg.failures >= 3


def test_registration_timeout_then_recovery() -> None:
    h = _harness()
    reg = _register(h, backoff_initial=2.0, backoff_cap=10.0)
    h.advance(33)  # Timer F: no response
    assert state_of(reg) is RegistrationState.RETRYING
    assert reg.reason == "no response from registrar"
    h.take()
    h.advance(12)
    pending = [m for m in h.take() if isinstance(m, Request) and m.method == "REGISTER"]
    assert pending
    h.feed(response_to(pending[-1], 200, "OK"))
    assert state_of(reg) is RegistrationState.REGISTERED
