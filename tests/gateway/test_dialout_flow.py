"""Dial-out: the sans-IO DialOutFlow (jigasi.md §3.4-§3.6) and the Rayo destination rules."""

from __future__ import annotations

import pytest

from gateway.config import SipAccountConfig
from gateway.dialout import dial_target, extra_headers
from gateway.session import (
    GATEWAYS_TIMER,
    HEARTBEAT_TIMER,
    INVITE_TIMER,
    LEAVE_TIMER,
    MUTE_TIMER,
    RING_TIMER,
    Action,
    Answer,
    BindConference,
    CancelTimer,
    Dial,
    DialOutFlow,
    Finished,
    FlowSettings,
    Hangup,
    Leave,
    Phase,
    Reject,
    Result,
    SetStatus,
    StartTimer,
    StopMedia,
    UnbindConference,
)
from xmpp.rayo import DialRefused

SETTINGS = FlowSettings(invite_timeout=30.0, ring_timeout=60.0, status_linger=5.0)
TRUNK = SipAccountConfig(uri="sip:gateway@pbx.example.com", password="x")


def calling() -> DialOutFlow:
    flow = DialOutFlow(SETTINGS, 0.0)
    flow.joined(1.0)
    flow.session_started(2.0)
    return flow


def phase_of(flow: DialOutFlow) -> Phase:
    return flow.phase  # (a call, so that mypy does not narrow the phase across actions)


def finished(actions: list[Action]) -> Finished:
    (last,) = [a for a in actions if isinstance(a, Finished)]
    assert actions[-1] is last
    return last


def test_joined_then_invited_dials_and_rings() -> None:
    flow = DialOutFlow(SETTINGS, 0.0)
    assert flow.joined(1.0) == [
        SetStatus("Initializing Call"),
        StartTimer(INVITE_TIMER, 31.0),  # no "alone" answer: there is no caller to answer
    ]
    assert flow.session_started(2.0) == [
        CancelTimer(INVITE_TIMER),
        Dial(),
        SetStatus("calling"),
        StartTimer(RING_TIMER, 62.0),
    ]
    assert phase_of(flow) is Phase.CALLING
    assert flow.media_connected(2.5) == []  # "Connected" waits for the callee
    assert flow.progress() == [SetStatus("Ringing")]
    assert flow.progress() == []  # 180 then 183: one Ringing
    assert flow.callee_answered(9.0, session_up=True) == [
        CancelTimer(RING_TIMER),
        SetStatus("Connected"),
        Answer(),
        CancelTimer("alone"),
        BindConference(),
    ]
    assert phase_of(flow) is Phase.CONNECTED and flow.answered_at == 9.0


def test_answered_after_the_session_ended_waits_for_a_new_invite() -> None:
    flow = calling()
    actions = flow.callee_answered(9.0, session_up=False)
    assert StartTimer(INVITE_TIMER, 39.0) in actions and BindConference() not in actions
    assert phase_of(flow) is Phase.ANSWERED_WAITING
    assert flow.session_started(10.0) == [CancelTimer(INVITE_TIMER), BindConference()]
    assert phase_of(flow) is Phase.CONNECTED


@pytest.mark.parametrize(
    ("status", "reason", "result"),
    [
        (486, "Busy Here", Result.REJECTED),
        (603, "Decline", Result.REJECTED),
        (404, "Not Found", Result.FAILED),
        (503, "Service Unavailable", Result.FAILED),
    ],
)
def test_a_failure_shows_its_reason_then_leaves(status: int, reason: str, result: Result) -> None:
    flow = calling()
    assert flow.callee_failed(5.0, status, reason) == [
        StopMedia(),
        UnbindConference(),
        CancelTimer(INVITE_TIMER),
        CancelTimer(RING_TIMER),
        CancelTimer(HEARTBEAT_TIMER),
        CancelTimer(MUTE_TIMER),
        CancelTimer(GATEWAYS_TIMER),
        SetStatus(reason),
        StartTimer(LEAVE_TIMER, 10.0),
    ]
    assert phase_of(flow) is Phase.LEAVING
    actions = flow.timer(LEAVE_TIMER, 10.0)
    assert actions[0] == Leave(reason)
    assert finished(actions) == Finished(result, reason)


def test_ring_timeout_cancels_and_shows_expired() -> None:
    flow = calling()
    actions = flow.timer(RING_TIMER, 62.0)
    assert actions[0] == Hangup(408, "No answer")  # CANCEL with Reason: SIP;cause=408
    assert SetStatus("expired") in actions and StartTimer(LEAVE_TIMER, 67.0) in actions
    assert flow.callee_failed(62.1, 487, "Request Terminated") == []  # the CANCEL's 487
    assert finished(flow.timer(LEAVE_TIMER, 67.0)).result is Result.TIMEOUT


def test_rayo_hangup_while_ringing_cancels_and_leaves_at_once() -> None:
    flow = calling()
    actions = flow.hangup_requested()
    assert actions[:3] == [
        StopMedia(),
        Reject(200, "Hung up from the meeting"),  # the shell sends it as a CANCEL
        Leave("Hung up from the meeting"),
    ]
    assert finished(actions).result is Result.COMPLETED
    assert flow.hangup_requested() == []


def test_rayo_hangup_when_connected_is_a_bye() -> None:
    flow = calling()
    flow.callee_answered(9.0, session_up=True)
    actions = flow.hangup_requested()
    assert actions[1] == Hangup(200, "Hung up from the meeting")


def test_rayo_hangup_while_joining_ends_without_sip() -> None:
    flow = DialOutFlow(SETTINGS, 0.0)
    actions = flow.hangup_requested()
    assert actions[:2] == [StopMedia(), Leave(None)]
    assert not any(isinstance(a, Hangup | Reject) for a in actions)


def test_no_invite_in_time_leaves_before_dialling() -> None:
    flow = DialOutFlow(SETTINGS, 0.0)
    flow.joined(1.0)
    actions = flow.timer(INVITE_TIMER, 31.0)
    assert not any(isinstance(a, Dial) for a in actions)
    assert finished(actions).result is Result.TIMEOUT


def test_every_ending_cancels_the_ring_timer() -> None:
    flow = calling()
    actions = flow.shutdown("Gateway shutting down")
    assert CancelTimer(RING_TIMER) in actions and finished(actions)


# -- destinations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "uri"),
    [
        ("+1 (555) 010-9999", "sip:+15550109999@pbx.example.com"),
        ("tel:+4930123456;phone-context=+49", "sip:+4930123456@pbx.example.com"),
        ("*67#5550100", "sip:*67%235550100@pbx.example.com"),  # '#' kept, escaped
        ("Reception", "sip:Reception@pbx.example.com"),  # capitals kept
        ("sip:alice@example.org;transport=tcp", "sip:alice@example.org;transport=tcp"),
    ],
)
def test_destinations_keep_what_they_mean(to: str, uri: str) -> None:
    assert str(dial_target(to, TRUNK)) == uri


def test_outbound_prefix() -> None:
    account = SipAccountConfig(uri="sip:gw@pbx.example.com", outbound_prefix="0")
    assert str(dial_target("5550100", account)) == "sip:05550100@pbx.example.com"


@pytest.mark.parametrize(
    ("to", "words"),
    [
        ("", "empty destination"),
        ("alice@example.org", "neither a phone number nor a SIP address"),
        ("555 <0100>", "neither a phone number nor a SIP address"),
        ("sip:", "not a SIP URI"),
    ],
)
def test_bad_destinations_are_refused_with_the_reason(to: str, words: str) -> None:
    with pytest.raises(DialRefused) as refused:
        dial_target(to, TRUNK)
    assert refused.value.condition == "bad-request"
    assert words in refused.value.text


def test_a_number_needs_a_trunk_a_sip_uri_does_not() -> None:
    with pytest.raises(DialRefused) as refused:
        dial_target("+15550100", SipAccountConfig())
    assert "no SIP trunk configured" in refused.value.text
    assert str(dial_target("sip:+15550100@10.0.0.9", SipAccountConfig())) == (
        "sip:+15550100@10.0.0.9"
    )


def test_extra_headers() -> None:
    assert extra_headers([("X-Customer", "acme"), ("X-Ref", "a b")]) == [
        ("X-Customer", "acme"),
        ("X-Ref", "a b"),
    ]
    for bad, words in (
        (("X Bad", "v"), "not a SIP token"),
        (("Via", "SIP/2.0/UDP evil"), "cannot be set"),
        (("X-Evil", "a\r\nVia: x"), "line break"),
    ):
        with pytest.raises(DialRefused) as refused:
            extra_headers([bad])
        assert words in refused.value.text
