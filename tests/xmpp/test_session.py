"""The Jingle session state machine (sans-IO): who is trusted, what each action does, and the
recovery paths of reference/jingle.md §4.1, §6 and §12 step 9."""

from __future__ import annotations

from xmpp.jingle import BridgeSessionInfo, JingleReason, JingleRequest
from xmpp.session import (
    ErrorReply,
    JingleSession,
    Rejoin,
    SendTerminate,
    SessionAccepted,
    SessionEnded,
    SessionState,
    SourcesAdded,
    SourcesRemoved,
    StartSession,
    StopMedia,
    owner_nick,
)
from xmpp.transport_info import (
    AudioSession,
    DtlsFingerprint,
    MediaSource,
    PayloadType,
    TransportDescription,
)

FOCUS = "room@conference.meet.test/focus"
OTHER = "room@conference.meet.test/ab12cd34"
OURS = 0x1234
JVB = MediaSource(100, "jvb-a0", "jvb", "mixedmslabel mixedlabelaudio0")
WEB = MediaSource(200, "ab12cd34-a0", "ab12cd34", "s t")
VIDEO = MediaSource(300, "ab12cd34-v0", "ab12cd34", "v w", "video")
TRANSPORT = TransportDescription("u", "p", (), (DtlsFingerprint("sha-256", "AA", "actpass"),))
AUDIO = AudioSession(
    (PayloadType(111, "opus", 48000, 2), PayloadType(126, "telephone-event", 8000))
)


def request(
    action: str,
    sid: str = "s1",
    sources: tuple[MediaSource, ...] = (),
    audio: AudioSession | None = None,
    transport: TransportDescription | None = None,
    reason: JingleReason | None = None,
    bridge: BridgeSessionInfo | None = None,
) -> JingleRequest:
    if audio is not None:
        audio = AudioSession(audio.payload_types, audio.header_extensions, sources)
    return JingleRequest(
        action,
        sid,
        None,
        None,
        ("audio",),
        "audio",
        transport,
        audio,
        sources,
        bridge,
        reason,
        None,
    )


def offer(sid: str = "s1", sources: tuple[MediaSource, ...] = (JVB, WEB)) -> JingleRequest:
    return request(
        "session-initiate", sid, sources, AUDIO, TRANSPORT, bridge=BridgeSessionInfo("b1")
    )


def started(session: JingleSession, sid: str = "s1") -> None:
    reply, _actions = session.receive(FOCUS, offer(sid))
    assert reply is None
    assert session.accept_answered(sid, None) == [SessionAccepted(sid)]


def test_initiate_from_the_focus_is_taken() -> None:
    session = JingleSession(FOCUS, OURS)
    reply, actions = session.receive(FOCUS, offer(sources=(JVB, WEB, VIDEO)))
    assert reply is None
    assert actions == [
        StartSession(offer(sources=(JVB, WEB, VIDEO)), OURS),
        SourcesAdded((JVB, WEB)),
    ]
    assert session.state is SessionState.ACCEPTING
    assert session.accept_answered("s1", None) == [SessionAccepted("s1")]
    assert session.state.value == "active"
    assert session.sources == {100: JVB, 200: WEB}


def test_initiate_from_anyone_else_is_acked_then_terminated() -> None:
    session = JingleSession(FOCUS, OURS)
    reply, actions = session.receive(OTHER, offer())
    assert reply is None  # acknowledged (jigasi.md §2.3)
    assert actions == [
        SendTerminate(OTHER, "s1", JingleReason("decline", "Only calls from focus allowed"))
    ]
    assert session.state is SessionState.IDLE


def test_other_actions_from_anyone_else_are_refused() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    reply, actions = session.receive(OTHER, request("session-terminate"))
    assert reply is not None and reply.condition == "forbidden" and actions == []
    assert session.state is SessionState.ACTIVE
    # The shell may also decide that the focus occupant is an impostor.
    reply, _ = session.receive(FOCUS, request("source-add", sources=(WEB,)), from_focus=False)
    assert reply is not None and reply.condition == "forbidden"


def test_unusable_offers_are_terminated_with_incompatible_parameters() -> None:
    no_opus = AudioSession((PayloadType(0, "PCMU", 8000),))
    cases = [
        request("session-initiate", audio=None, transport=TRANSPORT),
        request("session-initiate", audio=no_opus, transport=TRANSPORT),
        request("session-initiate", audio=AUDIO, transport=TransportDescription("", "")),
        request("session-initiate", audio=AUDIO, transport=TransportDescription("u", "p")),
    ]
    for case in cases:
        session = JingleSession(FOCUS, OURS)
        reply, actions = session.receive(FOCUS, case)
        assert reply is None
        assert len(actions) == 1 and isinstance(actions[0], SendTerminate)
        assert actions[0].reason.condition == "incompatible-parameters"
        assert session.state is SessionState.IDLE


def test_sources_come_and_go_and_follow_their_owner() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    other = MediaSource(400, "ef56-a0", "room@conference.meet.test/ef56", None)
    reply, actions = session.receive(FOCUS, request("source-add", sources=(other, VIDEO)))
    assert reply is None and actions == [SourcesAdded((other,))]
    # Re-adding the same source changes nothing; our own SSRC is never taken.
    mine = MediaSource(OURS, "me-a0", "me")
    assert session.receive(FOCUS, request("addsource", sources=(other, mine))) == (None, [])
    reply, actions = session.receive(FOCUS, request("source-remove", sources=(MediaSource(200),)))
    assert actions == [SourcesRemoved((WEB,))]
    # The occupant leaving the MUC drops its SSRCs (Jicofo sends no source-remove, §6).
    assert session.occupant_left("ef56") == [SourcesRemoved((other,))]
    assert session.occupant_left("ef56") == []
    assert session.sources == {100: JVB}


def test_owner_forms() -> None:
    assert owner_nick(MediaSource(1, None, "ab12cd34")) == "ab12cd34"
    assert owner_nick(MediaSource(1, None, "room@conference.x/ab12cd34")) == "ab12cd34"
    assert owner_nick(MediaSource(1, "cd34ef56-a0", None)) == "cd34ef56"
    assert owner_nick(MediaSource(1)) is None


def test_unknown_sid_and_unknown_actions() -> None:
    session = JingleSession(FOCUS, OURS)
    reply, _ = session.receive(FOCUS, request("source-add"))
    assert reply == ErrorReply("item-not-found", unknown_session=True)
    started(session)
    reply, _ = session.receive(FOCUS, request("source-add", sid="other"))
    assert reply == ErrorReply("item-not-found", unknown_session=True)
    reply, _ = session.receive(FOCUS, request("content-add"))
    assert reply is not None and reply.condition == "feature-not-implemented"
    assert session.receive(FOCUS, request("transport-info")) == (None, [])


def test_terminate_from_the_focus_ends_the_session() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    reason = JingleReason("expired", "Idle session timeout")
    reply, actions = session.receive(FOCUS, request("session-terminate", reason=reason))
    assert reply is None
    assert actions == [
        StopMedia("s1"),
        SourcesRemoved((JVB, WEB)),
        SessionEnded("s1", reason, by_remote=True),
    ]
    assert session.state is SessionState.IDLE and session.sid is None
    # A new invite after that is a new session.
    reply, actions = session.receive(FOCUS, offer("s2"))
    assert isinstance(actions[0], StartSession) and session.sid == "s2"


def test_transport_replace_rejoins() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    reply, actions = session.receive(FOCUS, request("transport-replace", transport=TRANSPORT))
    assert reply is None
    assert actions[-1] == Rejoin("transport-replace", False)
    assert isinstance(actions[-2], SessionEnded)


def test_refused_accept_rejoins_with_a_fresh_ssrc() -> None:
    session = JingleSession(FOCUS, OURS)
    session.receive(FOCUS, offer())
    actions = session.accept_answered("s1", "bad-request")
    assert actions[-1] == Rejoin("accept refused (bad-request)", True)
    assert session.state is SessionState.IDLE
    # A late answer for a session that is gone changes nothing.
    assert session.accept_answered("s1", None) == []


def test_media_failure_asks_for_a_restart() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    actions = session.media_failed("s1", "ICE failed")
    assert actions[0] == SendTerminate(
        FOCUS, "s1", JingleReason("connectivity-error", "ICE FAILED"), "b1", restart=True
    )
    ended = actions[-1]
    assert isinstance(ended, SessionEnded) and ended.restart_requested and not ended.by_remote
    assert session.media_failed("s1", "again") == []


def test_second_initiate_replaces_the_session() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    reply, actions = session.receive(FOCUS, offer("s2", (JVB,)))
    assert reply is None
    kinds = [type(a) for a in actions]
    assert kinds == [StopMedia, SourcesRemoved, SessionEnded, StartSession, SourcesAdded]
    assert session.sid == "s2" and session.state is SessionState.ACCEPTING


def test_focus_leaving_ends_the_session_and_hang_up_is_polite() -> None:
    session = JingleSession(FOCUS, OURS)
    started(session)
    actions = session.occupant_left("focus")
    assert isinstance(actions[-1], SessionEnded) and actions[-1].reason == JingleReason(
        "gone", "Focus left"
    )
    started(session, "s3")
    actions = session.hang_up()
    assert actions[0] == SendTerminate(FOCUS, "s3", JingleReason("success", "Nice talking to you!"))
    assert session.hang_up() == []
