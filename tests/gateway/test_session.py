"""CallFlow, the sans-IO state machine of an inbound call (jigasi.md §1.1, §1.8, §1.9, §4)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gateway import info
from gateway.session import (
    ALONE_TIMER,
    GATEWAYS_TIMER,
    HEARTBEAT_TIMER,
    INVITE_TIMER,
    LEAVE_TIMER,
    MUTE_TIMER,
    STATUS_CONNECTED,
    STATUS_INITIALIZING,
    Action,
    Answer,
    BindConference,
    CallFlow,
    CancelTimer,
    Finished,
    FlowSettings,
    GateMedia,
    Hangup,
    Leave,
    Phase,
    PublishMuted,
    Reject,
    Result,
    SendInfo,
    SetStatus,
    StartTimer,
    StopMedia,
    UnbindConference,
)

NO_INVITE = "No invite from conference focus"
NO_HEARTBEAT = "No response on heartbeat"
ALL_TIMERS = (
    INVITE_TIMER,
    ALONE_TIMER,
    LEAVE_TIMER,
    HEARTBEAT_TIMER,
    MUTE_TIMER,
    GATEWAYS_TIMER,
)


def tail(result: Result, reason: str) -> list[Action]:
    """What every ending adds: all timers cancelled, then Finished."""
    return [
        CancelTimer(INVITE_TIMER),
        CancelTimer(ALONE_TIMER),
        CancelTimer(LEAVE_TIMER),
        CancelTimer(HEARTBEAT_TIMER),
        CancelTimer(MUTE_TIMER),
        CancelTimer(GATEWAYS_TIMER),
        Finished(result, reason),
    ]


def phase_of(flow: CallFlow) -> Phase:
    """The phase, read through a call so that mypy does not narrow it between inputs."""
    return flow.phase


def new_flow(**settings: float | bool) -> CallFlow:
    return CallFlow(FlowSettings(**settings), now=0.0)  # type: ignore[arg-type]


def waiting_flow(**settings: float | bool) -> CallFlow:
    """In the room at t=1, not answered."""
    flow = new_flow(**settings)
    flow.joined(1.0)
    assert phase_of(flow) is Phase.WAITING
    return flow


def connected_flow(**settings: float | bool) -> CallFlow:
    """Answered at t=5 on the focus's invite."""
    flow = waiting_flow(**settings)
    flow.session_started(5.0)
    assert phase_of(flow) is Phase.CONNECTED
    return flow


def answered_waiting_flow(**settings: float | bool) -> CallFlow:
    """Answered by the alone timer at t=16, no conference session."""
    flow = waiting_flow(**settings)
    flow.timer(ALONE_TIMER, 16.0)
    assert phase_of(flow) is Phase.ANSWERED_WAITING
    return flow


def leaving_flow(cancelled: bool = False) -> CallFlow:
    flow = connected_flow()
    flow.phone_hung_up(50.0, "Call ended by caller", cancelled=cancelled)
    assert phase_of(flow) is Phase.LEAVING
    return flow


def body_of(action: Action) -> object:
    assert isinstance(action, SendInfo)
    assert action.content_type == "application/json"
    return json.loads(action.body)


def poke_everything(flow: CallFlow) -> list[Action]:
    """Every input the shell can feed, in turn; returns all the actions they produced."""
    out: list[Action] = []
    out += flow.joined(500.0)
    out += flow.join_failed(486, "x", Result.FAILED)
    out += flow.refused(488, "x", Result.REJECTED)
    out += flow.session_started(500.0)
    out += flow.media_connected(500.0)
    out += flow.session_ended(500.0)
    out += flow.rejoined(500.0)
    out += flow.conference_failed("x")
    out += flow.removed("kicked", "x")
    out += flow.removed("destroyed", None)
    out += flow.occupants_changed(500.0, True)
    out += flow.phone_hung_up(500.0, "x", cancelled=False)
    out += flow.phone_hung_up(500.0, "x", cancelled=True)
    out += flow.shutdown("x")
    out += flow.hold(not flow.held)
    out += flow.mute_requested_by_phone("late-1", True)
    out += flow.mute_requested_by_moderator(500.0)
    out += flow.mute_response_from_phone("pygasi-1", True)
    out += flow.mute_response_from_phone("pygasi-2", False)
    out += flow.mute_info_failed("pygasi-1")
    out += flow.heartbeat_received()
    for name in ALL_TIMERS:
        out += flow.timer(name, 10_000.0)
    return out


# -- joining and the focus's invite ----------------------------------------------------------------


def test_a_new_flow_is_joining() -> None:
    flow = new_flow()
    assert phase_of(flow) is Phase.JOINING
    assert flow.started == 0.0
    assert flow.answered_at is None
    assert flow.result is None
    assert not flow.ended
    assert not flow.media_gated


def test_phase_properties() -> None:
    assert {p for p in Phase if p.answered} == {Phase.CONNECTED, Phase.ANSWERED_WAITING}
    assert {p for p in Phase if p.in_room} == {
        Phase.WAITING,
        Phase.CALLING,  # dial-out: ringing the callee, in the room
        Phase.CONNECTED,
        Phase.ANSWERED_WAITING,
    }


def test_joined_sets_initializing_and_arms_the_invite_and_alone_timers() -> None:
    flow = new_flow()
    assert flow.joined(1.0) == [
        SetStatus("Initializing Call"),
        StartTimer(INVITE_TIMER, 31.0),
        StartTimer(ALONE_TIMER, 16.0),
    ]
    assert STATUS_INITIALIZING == "Initializing Call"
    assert phase_of(flow) is Phase.WAITING
    assert flow.joined(2.0) == []  # only once


def test_joined_uses_the_configured_timeouts() -> None:
    flow = new_flow(invite_timeout=1800.0, answer_alone_after=20.0)
    assert flow.joined(10.0) == [
        SetStatus(STATUS_INITIALIZING),
        StartTimer(INVITE_TIMER, 1810.0),
        StartTimer(ALONE_TIMER, 30.0),
    ]


@pytest.mark.parametrize("alone", [0.0, 30.0, 45.0])
def test_no_alone_timer_when_off_or_not_before_the_invite_timeout(alone: float) -> None:
    flow = new_flow(invite_timeout=30.0, answer_alone_after=alone)
    assert flow.joined(1.0) == [SetStatus(STATUS_INITIALIZING), StartTimer(INVITE_TIMER, 31.0)]


def test_session_started_answers_before_binding_the_conference() -> None:
    flow = waiting_flow()
    actions = flow.session_started(5.0)
    assert actions == [
        CancelTimer(INVITE_TIMER),
        Answer(),
        CancelTimer(ALONE_TIMER),
        BindConference(),
    ]
    assert actions.index(Answer()) < actions.index(BindConference())
    assert phase_of(flow) is Phase.CONNECTED
    assert flow.answered_at == 5.0


def test_session_started_with_heartbeat_starts_the_heartbeat_timer() -> None:
    flow = waiting_flow(heartbeat_seconds=60.0)
    assert flow.session_started(5.0) == [
        CancelTimer(INVITE_TIMER),
        Answer(),
        CancelTimer(ALONE_TIMER),
        StartTimer(HEARTBEAT_TIMER, 65.0),
        BindConference(),
    ]


def test_session_started_outside_waiting_does_nothing() -> None:
    flow = new_flow()
    assert flow.session_started(1.0) == []  # not in the room yet
    assert phase_of(flow) is Phase.JOINING
    flow = connected_flow()
    assert flow.session_started(6.0) == []  # already connected: no second answer
    assert phase_of(flow) is Phase.CONNECTED
    assert flow.answered_at == 5.0


def test_media_connected_publishes_connected_only_when_connected() -> None:
    assert waiting_flow().media_connected(2.0) == []
    flow = connected_flow()
    assert flow.media_connected(6.0) == [SetStatus("Connected")]
    assert STATUS_CONNECTED == "Connected"


def test_rejoined_sets_initializing_again_while_in_the_room() -> None:
    assert new_flow().rejoined(1.0) == []
    assert waiting_flow().rejoined(2.0) == [SetStatus(STATUS_INITIALIZING)]
    assert connected_flow().rejoined(7.0) == [SetStatus(STATUS_INITIALIZING)]
    assert leaving_flow().rejoined(51.0) == []


# -- the alone timer (jigasi.md §1.1 step 8) -------------------------------------------------------


def test_alone_timer_answers_and_waits_for_the_invite() -> None:
    flow = waiting_flow()
    assert flow.timer(ALONE_TIMER, 16.0) == [Answer(), CancelTimer(ALONE_TIMER)]
    assert phase_of(flow) is Phase.ANSWERED_WAITING
    assert flow.answered_at == 16.0


def test_alone_timer_with_heartbeat() -> None:
    flow = waiting_flow(heartbeat_seconds=30.0)
    assert flow.timer(ALONE_TIMER, 16.0) == [
        Answer(),
        CancelTimer(ALONE_TIMER),
        StartTimer(HEARTBEAT_TIMER, 46.0),
    ]


def test_invite_after_the_alone_answer_binds_without_a_second_answer() -> None:
    flow = answered_waiting_flow()
    assert flow.session_started(20.0) == [CancelTimer(INVITE_TIMER), BindConference()]
    assert phase_of(flow) is Phase.CONNECTED
    assert flow.answered_at == 16.0


def test_alone_timer_after_the_invite_is_ignored() -> None:
    flow = connected_flow()
    assert flow.timer(ALONE_TIMER, 16.0) == []
    assert phase_of(flow) is Phase.CONNECTED


# -- the invite timeout (jigasi.md §1.8) -----------------------------------------------------------


def test_invite_timeout_unanswered_rejects_408() -> None:
    flow = waiting_flow()
    assert flow.timer(INVITE_TIMER, 31.0) == [
        StopMedia(),
        Reject(408, NO_INVITE),
        Leave(NO_INVITE),
        *tail(Result.TIMEOUT, NO_INVITE),
    ]
    assert phase_of(flow) is Phase.ENDED
    assert flow.ended
    assert flow.result is Result.TIMEOUT
    assert flow.end_reason == NO_INVITE


def test_invite_timeout_answered_hangs_up_408() -> None:
    flow = answered_waiting_flow()
    assert flow.timer(INVITE_TIMER, 31.0) == [
        StopMedia(),
        Hangup(408, NO_INVITE),
        Leave(NO_INVITE),
        *tail(Result.TIMEOUT, NO_INVITE),
    ]
    assert phase_of(flow) is Phase.ENDED


def test_invite_timer_while_connected_is_stale() -> None:
    flow = connected_flow()
    assert flow.timer(INVITE_TIMER, 31.0) == []
    assert phase_of(flow) is Phase.CONNECTED


# -- the conference session ends, the phone stays (jigasi.md §1.9) ---------------------------------


def test_session_ended_keeps_the_phone_and_rearms_the_invite_timer() -> None:
    flow = connected_flow()
    assert flow.session_ended(40.0) == [UnbindConference(), StartTimer(INVITE_TIMER, 70.0)]
    assert phase_of(flow) is Phase.ANSWERED_WAITING
    # A new invite binds again without answering again.
    assert flow.session_started(45.0) == [CancelTimer(INVITE_TIMER), BindConference()]
    assert phase_of(flow) is Phase.CONNECTED
    assert flow.answered_at == 5.0


def test_session_ended_then_no_new_invite_hangs_up() -> None:
    flow = connected_flow()
    flow.session_ended(40.0)
    assert flow.timer(INVITE_TIMER, 70.0) == [
        StopMedia(),
        Hangup(408, NO_INVITE),
        Leave(NO_INVITE),
        *tail(Result.TIMEOUT, NO_INVITE),
    ]


def test_session_ended_outside_connected_does_nothing() -> None:
    assert waiting_flow().session_ended(2.0) == []
    assert answered_waiting_flow().session_ended(17.0) == []


# -- the phone hangs up (jigasi.md §1.9: status, 5 s, leave) ---------------------------------------


def test_phone_hung_up_shows_the_reason_and_leaves_after_the_linger() -> None:
    flow = connected_flow()
    assert flow.phone_hung_up(50.0, "Call ended by caller", cancelled=False) == [
        StopMedia(),
        UnbindConference(),
        CancelTimer(INVITE_TIMER),
        CancelTimer(ALONE_TIMER),
        CancelTimer(HEARTBEAT_TIMER),
        CancelTimer(MUTE_TIMER),
        CancelTimer(GATEWAYS_TIMER),
        SetStatus("Call ended by caller"),
        StartTimer(LEAVE_TIMER, 55.0),
    ]
    assert phase_of(flow) is Phase.LEAVING
    assert flow.leave_status == "Call ended by caller"
    # Nothing leaves the room before the LEAVE timer.
    assert flow.timer(INVITE_TIMER, 52.0) == []
    assert flow.phone_hung_up(53.0, "again", cancelled=False) == []
    assert flow.timer(LEAVE_TIMER, 55.0) == [
        Leave("Call ended by caller"),
        *tail(Result.COMPLETED, "Call ended by caller"),
    ]
    assert phase_of(flow) is Phase.ENDED
    assert flow.result is Result.COMPLETED


def test_status_linger_is_configurable() -> None:
    flow = waiting_flow(status_linger=2.5)
    actions = flow.phone_hung_up(10.0, "Busy", cancelled=False)
    assert actions[-2:] == [SetStatus("Busy"), StartTimer(LEAVE_TIMER, 12.5)]


def test_cancel_while_waiting_ends_cancelled() -> None:
    flow = waiting_flow()
    actions = flow.phone_hung_up(3.0, "Cancelled", cancelled=True)
    assert [a for a in actions if isinstance(a, Leave | Finished)] == []
    assert flow.timer(LEAVE_TIMER, 8.0) == [
        Leave("Cancelled"),
        *tail(Result.CANCELLED, "Cancelled"),
    ]
    assert flow.result is Result.CANCELLED


def test_phone_hung_up_while_joining_ends_at_once() -> None:
    flow = new_flow()
    assert flow.phone_hung_up(0.5, "Cancelled", cancelled=True) == [
        StopMedia(),
        Leave(None),
        *tail(Result.CANCELLED, "Cancelled"),
    ]
    assert phase_of(flow) is Phase.ENDED


def test_leave_timer_outside_leaving_is_ignored() -> None:
    flow = connected_flow()
    assert flow.timer(LEAVE_TIMER, 10.0) == []
    assert phase_of(flow) is Phase.CONNECTED


# -- removed from the room (jigasi.md §1.9, §9 item 24) --------------------------------------------


def test_kicked_while_connected_hangs_up_403() -> None:
    flow = connected_flow()
    reason = "Kicked from the conference"
    assert flow.removed("kicked", None) == [
        StopMedia(),
        Hangup(403, reason),
        Leave(reason),
        *tail(Result.COMPLETED, reason),
    ]


def test_kicked_while_ringing_rejects_403_with_the_reason() -> None:
    flow = waiting_flow()
    reason = "Kicked from the conference: spam"
    assert flow.removed("kicked", "spam") == [
        StopMedia(),
        Reject(403, reason),
        Leave(reason),
        *tail(Result.COMPLETED, reason),
    ]


def test_banned_names_the_kind() -> None:
    flow = connected_flow()
    actions = flow.removed("banned", None)
    assert actions[1] == Hangup(403, "Banned from the conference")


def test_room_destroyed_answered_hangs_up_200() -> None:
    flow = connected_flow()
    assert flow.removed("destroyed", None) == [
        StopMedia(),
        Hangup(200, "Conference ended"),
        Leave("Conference ended"),
        *tail(Result.COMPLETED, "Conference ended"),
    ]


def test_room_destroyed_unanswered_rejects_480() -> None:
    flow = waiting_flow()
    reason = "Conference ended: moved elsewhere"
    assert flow.removed("destroyed", "moved elsewhere") == [
        StopMedia(),
        Reject(480, reason),
        Leave(reason),
        *tail(Result.COMPLETED, reason),
    ]


def test_removed_while_leaving_does_nothing() -> None:
    flow = leaving_flow()
    assert flow.removed("kicked", None) == []
    assert phase_of(flow) is Phase.LEAVING


# -- only gateways left (jigasi.md §1.9 ALLOW_ONLY_JIGASIS_IN_ROOM) --------------------------------

ONLY_GATEWAYS = "Only gateways left in the conference"


def test_only_gateways_left_hangs_up_after_the_grace() -> None:
    flow = connected_flow()
    assert flow.occupants_changed(100.0, False) == []
    assert flow.occupants_changed(100.0, True) == [StartTimer(GATEWAYS_TIMER, 105.0)]
    assert flow.occupants_changed(101.0, True) == []  # already pending
    assert flow.timer(GATEWAYS_TIMER, 105.0) == [
        StopMedia(),
        Hangup(200, ONLY_GATEWAYS),
        Leave(ONLY_GATEWAYS),
        *tail(Result.COMPLETED, ONLY_GATEWAYS),
    ]


def test_someone_back_within_the_grace_keeps_the_call() -> None:
    flow = connected_flow()
    flow.occupants_changed(100.0, True)
    assert flow.occupants_changed(102.0, False) == [CancelTimer(GATEWAYS_TIMER)]
    assert flow.timer(GATEWAYS_TIMER, 105.0) == []  # a stale timer does nothing
    assert phase_of(flow) is Phase.CONNECTED


def test_a_lost_connection_cancels_the_pending_hangup() -> None:
    """A server shutting down: its occupants leave, then our connection drops."""
    flow = connected_flow()
    flow.occupants_changed(100.0, True)
    assert flow.connection_lost() == [CancelTimer(GATEWAYS_TIMER)]
    assert flow.connection_lost() == []
    assert flow.timer(GATEWAYS_TIMER, 105.0) == []
    assert phase_of(flow) is Phase.CONNECTED


def test_only_gateways_left_unanswered_rejects_with_an_error_status() -> None:
    flow = waiting_flow()
    flow.occupants_changed(100.0, True)
    assert flow.timer(GATEWAYS_TIMER, 105.0) == [
        StopMedia(),
        Reject(480, ONLY_GATEWAYS),  # never a 200 to an INVITE we have not answered
        Leave(ONLY_GATEWAYS),
        *tail(Result.COMPLETED, ONLY_GATEWAYS),
    ]


def test_only_gateways_left_kept_when_configured() -> None:
    flow = connected_flow(hangup_when_only_gateways=False)
    assert flow.occupants_changed(100.0, True) == []
    assert flow.timer(GATEWAYS_TIMER, 105.0) == []
    assert phase_of(flow) is Phase.CONNECTED


def test_only_gateways_left_outside_the_room_does_nothing() -> None:
    assert new_flow().occupants_changed(100.0, True) == []
    assert leaving_flow().occupants_changed(100.0, True) == []


# -- join failures and refusals --------------------------------------------------------------------


def test_join_failed_rejects_and_leaves() -> None:
    flow = new_flow()
    assert flow.join_failed(486, "Wrong room password", Result.REJECTED) == [
        StopMedia(),
        Reject(486, "Wrong room password"),
        Leave(None),
        *tail(Result.REJECTED, "Wrong room password"),
    ]
    assert flow.result is Result.REJECTED


def test_join_failed_after_joining_is_ignored() -> None:
    flow = waiting_flow()
    assert flow.join_failed(486, "late", Result.FAILED) == []
    assert phase_of(flow) is Phase.WAITING


def test_refused_sends_a_final_response_with_headers_and_nothing_else() -> None:
    flow = new_flow()
    headers = (("Warning", '304 pygasi "Incompatible media format"'),)
    assert flow.refused(488, "Not Acceptable Here", Result.REJECTED, headers) == [
        StopMedia(),
        Reject(488, "Not Acceptable Here", headers),
        *tail(Result.REJECTED, "Not Acceptable Here"),
    ]
    assert waiting_flow().refused(488, "x", Result.REJECTED) == []


def test_conference_failed_while_joining_rejects_503() -> None:
    flow = new_flow()
    assert flow.conference_failed("Conference leg failed: boom") == [
        StopMedia(),
        Reject(503, "Conference leg failed: boom"),
        Leave(None),
        *tail(Result.FAILED, "Conference leg failed: boom"),
    ]


def test_conference_failed_while_connected_hangs_up_503() -> None:
    flow = connected_flow()
    assert flow.conference_failed("Conference leg failed: boom") == [
        StopMedia(),
        Hangup(503, "Conference leg failed: boom"),
        Leave("Conference leg failed: boom"),
        *tail(Result.FAILED, "Conference leg failed: boom"),
    ]
    assert leaving_flow().conference_failed("x") == []


# -- shutdown in each phase ------------------------------------------------------------------------

SHUTDOWN = "Gateway shutting down"


def test_shutdown_while_joining() -> None:
    flow = new_flow()
    assert flow.shutdown(SHUTDOWN) == [
        StopMedia(),
        Reject(503, SHUTDOWN),
        Leave(None),
        *tail(Result.FAILED, SHUTDOWN),
    ]


def test_shutdown_while_waiting() -> None:
    flow = waiting_flow()
    assert flow.shutdown(SHUTDOWN) == [
        StopMedia(),
        Reject(503, SHUTDOWN),
        Leave(SHUTDOWN),
        *tail(Result.COMPLETED, SHUTDOWN),
    ]


@pytest.mark.parametrize("make", [connected_flow, answered_waiting_flow])
def test_shutdown_while_answered(make: Callable[[], CallFlow]) -> None:
    flow = make()
    assert flow.shutdown(SHUTDOWN) == [
        StopMedia(),
        Hangup(503, SHUTDOWN),
        Leave(SHUTDOWN),
        *tail(Result.COMPLETED, SHUTDOWN),
    ]


@pytest.mark.parametrize(
    ("cancelled", "result"), [(False, Result.COMPLETED), (True, Result.CANCELLED)]
)
def test_shutdown_while_leaving_leaves_now_and_keeps_the_phones_reason(
    cancelled: bool, result: Result
) -> None:
    flow = leaving_flow(cancelled=cancelled)
    assert flow.shutdown(SHUTDOWN) == [Leave(None), *tail(result, "Call ended by caller")]
    assert flow.result is result


def test_shutdown_when_ended_does_nothing() -> None:
    flow = connected_flow()
    flow.shutdown(SHUTDOWN)
    assert flow.shutdown(SHUTDOWN) == []


# -- hold (jigasi.md §9 item 23) -------------------------------------------------------------------


def test_hold_gates_media_and_publishes_muted_and_unhold_restores() -> None:
    flow = connected_flow()
    assert flow.hold(True) == [GateMedia(True), PublishMuted(True)]
    assert flow.media_gated
    assert flow.hold(True) == []  # no change
    assert flow.hold(False) == [GateMedia(False), PublishMuted(False)]
    assert not flow.media_gated
    assert flow.hold(False) == []


def test_unhold_keeps_a_user_mute() -> None:
    flow = connected_flow()
    flow.mute_requested_by_phone("m1", True)
    assert flow.hold(True) == [GateMedia(True)]  # already published muted
    assert flow.hold(False) == [GateMedia(True)]  # still muted by the user
    assert flow.published_muted


def test_hold_before_joining_is_published_on_join() -> None:
    flow = new_flow()
    assert flow.hold(True) == [GateMedia(True), PublishMuted(True)]
    assert flow.joined(1.0) == [
        SetStatus(STATUS_INITIALIZING),
        StartTimer(INVITE_TIMER, 31.0),
        StartTimer(ALONE_TIMER, 16.0),
        PublishMuted(True),
    ]


# -- the IVR's muteRequest (jigasi.md §4.2, §4.3) --------------------------------------------------


def test_mute_requested_by_phone_gates_publishes_and_answers_ok() -> None:
    flow = connected_flow()
    actions = flow.mute_requested_by_phone("6f1c", True)
    assert actions[:2] == [GateMedia(True), PublishMuted(True)]
    assert len(actions) == 3
    reply = actions[2]
    assert isinstance(reply, SendInfo)
    assert reply.mute_id is None
    assert body_of(reply) == {
        "type": "muteResponse",
        "id": "6f1c",
        "status": "OK",
        "data": {"audio": True},
    }
    assert flow.user_muted


def test_unmute_requested_by_phone() -> None:
    flow = connected_flow()
    flow.mute_requested_by_phone("a", True)
    actions = flow.mute_requested_by_phone("b", False)
    assert actions[:2] == [GateMedia(False), PublishMuted(False)]
    assert body_of(actions[2]) == {
        "type": "muteResponse",
        "id": "b",
        "status": "OK",
        "data": {"audio": False},
    }
    assert not flow.user_muted


def test_repeated_mute_request_publishes_once() -> None:
    flow = connected_flow()
    flow.mute_requested_by_phone("a", True)
    actions = flow.mute_requested_by_phone("b", True)
    assert actions[0] == GateMedia(True)
    assert [a for a in actions if isinstance(a, PublishMuted)] == []
    assert body_of(actions[1]) == {
        "type": "muteResponse",
        "id": "b",
        "status": "OK",
        "data": {"audio": True},
    }


def test_mute_requested_by_phone_while_waiting_is_applied() -> None:
    flow = waiting_flow()
    actions = flow.mute_requested_by_phone("w", True)
    assert actions[:2] == [GateMedia(True), PublishMuted(True)]
    assert body_of(actions[2]) == {
        "type": "muteResponse",
        "id": "w",
        "status": "OK",
        "data": {"audio": True},
    }


def test_mute_requested_by_phone_not_in_the_room_fails() -> None:
    flow = new_flow()
    actions = flow.mute_requested_by_phone("early", True)
    assert len(actions) == 1
    assert body_of(actions[0]) == {
        "type": "muteResponse",
        "id": "early",
        "status": "FAILED",
        "data": {"audio": True},
    }
    assert not flow.user_muted
    assert not flow.published_muted


def test_mute_requested_by_phone_after_it_hung_up_is_ignored() -> None:
    flow = leaving_flow()
    assert flow.mute_requested_by_phone("late", True) == []
    assert not flow.user_muted


# -- a moderator's mute (jigasi.md §4.3) -----------------------------------------------------------


def test_moderator_mute_asks_the_ivr_and_publishes_only_after_ok() -> None:
    flow = connected_flow()
    actions = flow.mute_requested_by_moderator(10.0)
    assert len(actions) == 3
    assert actions[0] == GateMedia(True)
    request = actions[1]
    assert isinstance(request, SendInfo)
    assert request.mute_id == "pygasi-1"
    assert body_of(request) == {"type": "muteRequest", "id": "pygasi-1", "data": {"audio": True}}
    assert actions[2] == StartTimer(MUTE_TIMER, 20.0)
    assert not flow.published_muted  # not before the IVR confirms
    assert flow.pending_mutes == {"pygasi-1"}

    assert flow.mute_response_from_phone("someone-else", True) == []
    assert flow.mute_response_from_phone("pygasi-1", True) == [
        CancelTimer(MUTE_TIMER),
        PublishMuted(True),
    ]
    assert flow.published_muted
    assert flow.pending_mutes == set()
    assert flow.mute_response_from_phone("pygasi-1", True) == []  # answered once


def test_moderator_mute_timeout_is_configurable() -> None:
    flow = connected_flow(mute_response_timeout=3.0)
    assert flow.mute_requested_by_moderator(10.0)[-1] == StartTimer(MUTE_TIMER, 13.0)


def test_moderator_mute_refused_by_the_ivr_unmutes_again() -> None:
    flow = connected_flow()
    flow.mute_requested_by_moderator(10.0)
    assert flow.mute_response_from_phone("pygasi-1", False) == [
        CancelTimer(MUTE_TIMER),
        GateMedia(False),
    ]
    assert not flow.user_muted
    assert not flow.published_muted


def test_moderator_mute_refused_while_on_hold_keeps_the_gate_closed() -> None:
    flow = connected_flow()
    flow.hold(True)
    flow.mute_requested_by_moderator(10.0)
    assert flow.mute_response_from_phone("pygasi-1", False) == [
        CancelTimer(MUTE_TIMER),
        GateMedia(True),
    ]


def test_moderator_mute_info_failed_publishes_muted() -> None:
    flow = connected_flow()
    flow.mute_requested_by_moderator(10.0)
    assert flow.mute_info_failed("unknown") == []
    assert flow.mute_info_failed("pygasi-1") == [PublishMuted(True)]
    assert flow.user_muted
    assert flow.mute_info_failed("pygasi-1") == []


def test_moderator_mute_timer_publishes_muted() -> None:
    flow = connected_flow()
    flow.mute_requested_by_moderator(10.0)
    assert flow.timer(MUTE_TIMER, 20.0) == [PublishMuted(True)]
    assert flow.pending_mutes == set()
    assert flow.mute_response_from_phone("pygasi-1", True) == []  # too late, already done
    assert flow.timer(MUTE_TIMER, 30.0) == []


def test_two_moderator_mutes_cancel_the_timer_with_the_last_answer() -> None:
    flow = connected_flow()
    first = flow.mute_requested_by_moderator(10.0)
    second = flow.mute_requested_by_moderator(11.0)
    assert isinstance(first[1], SendInfo)
    assert isinstance(second[1], SendInfo)
    assert (first[1].mute_id, second[1].mute_id) == ("pygasi-1", "pygasi-2")
    assert second[0] == GateMedia(True)
    assert flow.mute_response_from_phone("pygasi-1", True) == [PublishMuted(True)]
    assert flow.mute_response_from_phone("pygasi-2", True) == [CancelTimer(MUTE_TIMER)]


def test_moderator_mute_outside_the_room_does_nothing() -> None:
    assert new_flow().mute_requested_by_moderator(0.5) == []
    assert leaving_flow().mute_requested_by_moderator(51.0) == []


def test_late_mute_outcome_after_the_end_does_nothing() -> None:
    # The shell reports the INFO transaction's outcome when it comes, possibly after the end.
    flow = connected_flow()
    flow.mute_requested_by_moderator(10.0)
    flow.shutdown(SHUTDOWN)
    assert flow.mute_info_failed("pygasi-1") == []
    assert flow.mute_response_from_phone("pygasi-1", True) == []
    assert flow.timer(MUTE_TIMER, 20.0) == []


# -- the SIP heartbeat (jigasi.md §1.8, §4.2 t=11) -------------------------------------------------


def test_heartbeat_timer_sends_t11_and_rearms() -> None:
    flow = connected_flow(heartbeat_seconds=30.0)
    actions = flow.timer(HEARTBEAT_TIMER, 35.0)
    assert len(actions) == 2
    assert isinstance(actions[0], SendInfo)
    assert actions[0].body == b'{"t":11}'
    assert body_of(actions[0]) == {"t": 11}
    assert actions[0].mute_id is None
    assert actions[1] == StartTimer(HEARTBEAT_TIMER, 65.0)
    assert flow.heartbeats_unanswered == 1


def test_two_unanswered_heartbeats_hang_up_408() -> None:
    flow = connected_flow(heartbeat_seconds=30.0)
    heartbeat = SendInfo(info.JSON, b'{"t":11}')
    assert flow.timer(HEARTBEAT_TIMER, 35.0) == [heartbeat, StartTimer(HEARTBEAT_TIMER, 65.0)]
    assert flow.timer(HEARTBEAT_TIMER, 65.0) == [heartbeat, StartTimer(HEARTBEAT_TIMER, 95.0)]
    assert flow.timer(HEARTBEAT_TIMER, 95.0) == [
        StopMedia(),
        Hangup(408, NO_HEARTBEAT),
        Leave(NO_HEARTBEAT),
        *tail(Result.TIMEOUT, NO_HEARTBEAT),
    ]
    assert phase_of(flow) is Phase.ENDED


def test_an_answered_heartbeat_resets_the_count() -> None:
    flow = connected_flow(heartbeat_seconds=30.0)
    flow.timer(HEARTBEAT_TIMER, 35.0)
    flow.timer(HEARTBEAT_TIMER, 65.0)
    assert flow.heartbeats_unanswered == 2
    assert flow.heartbeat_received() == []  # the answer to ours: nothing sent back
    assert flow.heartbeats_unanswered == 0
    for now in (95.0, 125.0):
        actions = flow.timer(HEARTBEAT_TIMER, now)
        assert actions[-1] == StartTimer(HEARTBEAT_TIMER, now + 30.0)
    assert phase_of(flow) is Phase.CONNECTED
    assert isinstance(flow.timer(HEARTBEAT_TIMER, 155.0)[1], Hangup)


def test_the_ivrs_own_heartbeat_is_answered() -> None:
    flow = connected_flow(heartbeat_seconds=30.0)
    assert flow.heartbeat_received() == [SendInfo(info.JSON, b'{"t":11}')]
    flow = answered_waiting_flow()  # heartbeats off on our side: still answered
    assert flow.heartbeat_received() == [SendInfo(info.JSON, b'{"t":11}')]


def test_heartbeat_before_the_answer_is_not_answered() -> None:
    assert waiting_flow().heartbeat_received() == []
    assert new_flow().heartbeat_received() == []


def test_heartbeat_timer_while_unanswered_is_stale() -> None:
    flow = waiting_flow(heartbeat_seconds=30.0)
    assert flow.timer(HEARTBEAT_TIMER, 31.0) == []
    assert flow.heartbeats_unanswered == 0


def test_heartbeat_continues_while_waiting_for_a_new_invite() -> None:
    flow = connected_flow(heartbeat_seconds=30.0)
    flow.session_ended(20.0)
    assert flow.timer(HEARTBEAT_TIMER, 35.0)[-1] == StartTimer(HEARTBEAT_TIMER, 65.0)


def test_unknown_timer_does_nothing() -> None:
    flow = connected_flow()
    assert flow.timer("no-such-timer", 10.0) == []


def test_new_ids_are_distinct() -> None:
    flow = new_flow()
    assert [flow.new_id() for _ in range(3)] == ["pygasi-1", "pygasi-2", "pygasi-3"]


# -- every path ends exactly once -------------------------------------------------------------------


def _drive(flow: CallFlow, *steps: Callable[[CallFlow], list[Action]]) -> list[Action]:
    out: list[Action] = []
    for step in steps:
        out += step(flow)
    return out


def _join(f: CallFlow) -> list[Action]:
    return f.joined(1.0)


def _invite(f: CallFlow) -> list[Action]:
    return f.session_started(5.0)


def _alone(f: CallFlow) -> list[Action]:
    return f.timer(ALONE_TIMER, 16.0)


def _bye(f: CallFlow) -> list[Action]:
    return f.phone_hung_up(50.0, "Call ended by caller", cancelled=False)


def _leave(f: CallFlow) -> list[Action]:
    return f.timer(LEAVE_TIMER, 55.0)


def _hb(now: float) -> Callable[[CallFlow], list[Action]]:
    return lambda f: f.timer(HEARTBEAT_TIMER, now)


PATHS: dict[str, tuple[Callable[[CallFlow], list[Action]], ...]] = {
    "join failed": (lambda f: f.join_failed(486, "Wrong password", Result.REJECTED),),
    "refused": (lambda f: f.refused(488, "Not Acceptable Here", Result.REJECTED),),
    "cancel while joining": (lambda f: f.phone_hung_up(0.5, "Cancelled", cancelled=True),),
    "conference failed while joining": (lambda f: f.conference_failed("boom"),),
    "shutdown while joining": (lambda f: f.shutdown(SHUTDOWN),),
    "invite timeout": (_join, lambda f: f.timer(INVITE_TIMER, 31.0)),
    "invite timeout after alone": (_join, _alone, lambda f: f.timer(INVITE_TIMER, 31.0)),
    "cancel while waiting": (
        _join,
        lambda f: f.phone_hung_up(3.0, "Cancelled", cancelled=True),
        lambda f: f.timer(LEAVE_TIMER, 8.0),
    ),
    "bye while connected": (_join, _invite, _bye, _leave),
    "bye after alone answer": (_join, _alone, _bye, _leave),
    "bye then shutdown": (_join, _invite, _bye, lambda f: f.shutdown(SHUTDOWN)),
    "kicked": (_join, _invite, lambda f: f.removed("kicked", None)),
    "kicked while ringing": (_join, lambda f: f.removed("kicked", None)),
    "destroyed": (_join, _invite, lambda f: f.removed("destroyed", None)),
    "destroyed while ringing": (_join, lambda f: f.removed("destroyed", None)),
    "only gateways": (
        _join,
        _invite,
        lambda f: f.occupants_changed(0.0, True),
        lambda f: f.timer(GATEWAYS_TIMER, 5.0),
    ),
    "only gateways while ringing": (
        _join,
        lambda f: f.occupants_changed(0.0, True),
        lambda f: f.timer(GATEWAYS_TIMER, 5.0),
    ),
    "session ended, no re-invite": (
        _join,
        _invite,
        lambda f: f.session_ended(40.0),
        lambda f: f.timer(INVITE_TIMER, 70.0),
    ),
    "heartbeat timeout": (_join, _invite, _hb(35.0), _hb(65.0), _hb(95.0)),
    "conference failed while connected": (_join, _invite, lambda f: f.conference_failed("x")),
    "shutdown while waiting": (_join, lambda f: f.shutdown(SHUTDOWN)),
    "shutdown while connected": (_join, _invite, lambda f: f.shutdown(SHUTDOWN)),
    "shutdown while answered-waiting": (_join, _alone, lambda f: f.shutdown(SHUTDOWN)),
    "moderator mute then bye": (
        _join,
        _invite,
        lambda f: f.mute_requested_by_moderator(10.0),
        lambda f: f.hold(True),
        _bye,
        _leave,
    ),
}


@pytest.mark.parametrize("path", list(PATHS), ids=list(PATHS))
def test_every_path_ends_with_exactly_one_finished(path: str) -> None:
    flow = CallFlow(FlowSettings(heartbeat_seconds=30.0), now=0.0)
    actions = _drive(flow, *PATHS[path])
    finished = [a for a in actions if isinstance(a, Finished)]
    assert len(finished) == 1
    assert actions[-1] is finished[0]
    assert phase_of(flow) is Phase.ENDED
    assert flow.ended
    assert flow.result is finished[0].result
    assert flow.end_reason == finished[0].reason
    # The call's end leaves no timer running.
    cancelled = {a.name for a in actions if isinstance(a, CancelTimer)}
    assert cancelled == set(ALL_TIMERS)


@pytest.mark.parametrize("path", list(PATHS), ids=list(PATHS))
def test_no_action_after_ended(path: str) -> None:
    flow = CallFlow(FlowSettings(heartbeat_seconds=30.0), now=0.0)
    _drive(flow, *PATHS[path])
    assert phase_of(flow) is Phase.ENDED
    result, reason = flow.result, flow.end_reason
    assert poke_everything(flow) == []
    assert phase_of(flow) is Phase.ENDED
    assert (flow.result, flow.end_reason) == (result, reason)


@pytest.mark.parametrize(
    "make", [new_flow, waiting_flow, connected_flow, answered_waiting_flow, leaving_flow]
)
def test_a_live_flow_ends_once_whatever_comes(make: Callable[[], CallFlow]) -> None:
    flow = make()
    actions = poke_everything(flow)
    assert phase_of(flow) is Phase.ENDED
    assert len([a for a in actions if isinstance(a, Finished)]) == 1
