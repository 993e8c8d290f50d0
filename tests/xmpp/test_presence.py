"""MUC presence (sans-IO): the nick rule, occupants' presence, departures and join errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slixmpp import Presence
from slixmpp.xmlstream import ET

from xmpp.errors import (
    DisplayNameRequired,
    JoinError,
    LobbyEnabled,
    NotAllowed,
    RoomFull,
    RoomPasswordError,
)
from xmpp.presence import (
    LocalPresence,
    fill_presence,
    join_error,
    nick_for,
    parse_departure,
    parse_occupant,
    parse_source_info_muted,
)


def presence_of(xml: str) -> Presence:
    return Presence(xml=ET.fromstring(xml))


def test_nick_rule() -> None:
    # jitsi-anonymous: a UUID local part -> its first 8 hex digits (anonymous_strict).
    assert nick_for("6b1f0c2e-9d7a-4f55-a9d0-c3e1b2a4f6d8@meet.x/r", anonymous=True) == "6b1f0c2e"
    assert nick_for("xyzbqsy6xdkonhm@meet.x/r", anonymous=True) == "xyzbqsy6"
    # A stock Prosody id with '-' or a leading '_' in the prefix would be refused by
    # mod_muc_resource_validate: 8 random hex digits instead; likewise for accounts.
    for jid, anonymous in (
        ("ab-defgh123@m/r", True),
        ("_bcdefgh1@m/r", True),
        ("jigasi@a/r", False),
    ):
        nick = nick_for(jid, anonymous=anonymous)
        assert len(nick) == 8 and all(c in "0123456789abcdef" for c in nick)


def test_fill_presence_order_and_content() -> None:
    presence = Presence()
    presence["to"] = "room@conference.x/7c1e5a02"
    local = LocalPresence(
        "7c1e5a02",
        "+1 555 0100",
        "https://n",
        "VER=",
        True,
        region="eu",
        stats_id="s",
        status="Connected",
    )
    fill_presence(presence, local, join=True, password="pw")
    tags = [child.tag for child in presence.xml]
    assert tags == [
        "{http://jabber.org/protocol/muc}x",
        "{http://jabber.org/protocol/nick}nick",
        "{http://jabber.org/protocol/caps}c",
        "{jabber:client}SourceInfo",
        "{jabber:client}audiomuted",
        "{jabber:client}features",
        "{jabber:client}stats-id",
        "{jabber:client}jitsi_participant_region",
        "{jabber:client}status",
    ]
    assert presence.xml[0][0].tag == "{http://jabber.org/protocol/muc}password"
    assert presence.xml[3].text == '{"7c1e5a02-a0":{"muted":true}}'
    assert presence.xml[4].text == "true"
    update = Presence()
    fill_presence(update, local, join=False)
    assert update.xml.find("{http://jabber.org/protocol/muc}x") is None


def test_occupant_presence() -> None:
    occupant = parse_occupant(
        presence_of(
            """<presence xmlns="jabber:client" from="room@conference.x/ab12cd34">
              <x xmlns="http://jabber.org/protocol/muc#user">
                <item affiliation="none" role="participant" jid="gw@meet.x/res"/></x>
              <nick xmlns="http://jabber.org/protocol/nick">Alice</nick>
              <c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="n" ver="v"/>
              <SourceInfo>{"ab12cd34-a0":{"muted":false},"ab12cd34-v0":{"muted":true}}</SourceInfo>
              <features><feature var="http://jitsi.org/protocol/jigasi"/></features>
            </presence>"""
        )
    )
    assert (occupant.nick, occupant.real_jid, occupant.role) == (
        "ab12cd34",
        "gw@meet.x/res",
        "participant",
    )
    assert occupant.display_name == "Alice"
    assert (occupant.caps_node, occupant.caps_ver) == ("n", "v")
    assert occupant.audio_muted is False
    assert occupant.is_gateway


def test_source_info_reading_matches_jicofo() -> None:
    assert parse_source_info_muted('{"a-a0":{"muted":false}}') is False
    assert parse_source_info_muted('{"a-a0":{}}') is True  # a missing flag counts as muted
    assert parse_source_info_muted('{"a-v0":{"muted":false}}') is True
    assert parse_source_info_muted('{"x":{"muted":false,"mediaType":"audio"}}') is False
    assert parse_source_info_muted("not json") is None
    legacy = parse_occupant(
        presence_of(
            '<presence xmlns="jabber:client" from="r@c/n"><audiomuted>true</audiomuted></presence>'
        )
    )
    assert legacy.audio_muted is True and not legacy.is_gateway


@pytest.mark.parametrize(
    ("children", "kind", "alternate"),
    [
        ('<status code="307"/><item role="none"><actor nick="mod"/><reason>bye</reason></item>', "kicked", None),
        ('<status code="301"/><item affiliation="outcast"/>', "banned", None),
        ('<destroy jid="other@conference.x"><reason>moved</reason></destroy>', "destroyed", "other@conference.x"),
        ('<status code="332"/>', "shutdown", None),
        ("", "left", None),
    ],
)  # fmt: skip
def test_departures(children: str, kind: str, alternate: str | None) -> None:
    departure = parse_departure(
        presence_of(
            f'<presence xmlns="jabber:client" type="unavailable" from="r@c/n">'
            f'<x xmlns="http://jabber.org/protocol/muc#user">{children}</x></presence>'
        )
    )
    assert departure.kind == kind and departure.alternate == alternate
    if kind == "kicked":
        assert (departure.actor, departure.reason) == ("mod", "bye")


def error_presence(condition: str, extra: str = "", outside: str = "") -> Presence:
    return presence_of(
        f'<presence xmlns="jabber:client" type="error" from="r@c/n"><error type="auth">'
        f'<{condition} xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>{extra}</error>{outside}</presence>'
    )


def test_join_errors_are_typed() -> None:
    error = join_error(error_presence("not-authorized"), password_given=False)
    assert isinstance(error, RoomPasswordError) and not error.password_given
    error = join_error(error_presence("not-authorized"), password_given=True)
    assert isinstance(error, RoomPasswordError) and error.password_given
    lobby = '<lobbyroom xmlns="http://jitsi.org/jitmeet">room@lobby.x</lobbyroom>'
    error = join_error(error_presence("registration-required", lobby), password_given=False)
    assert isinstance(error, LobbyEnabled) and error.lobby_room == "room@lobby.x"
    legacy = "<lobbyroom>room@lobby.y</lobbyroom>"
    error = join_error(
        error_presence("registration-required", outside=legacy), password_given=False
    )
    assert isinstance(error, LobbyEnabled) and error.lobby_room == "room@lobby.y"
    error = join_error(error_presence("registration-required"), password_given=False)
    assert isinstance(error, LobbyEnabled) and error.lobby_room is None
    assert isinstance(
        join_error(error_presence("service-unavailable"), password_given=False), RoomFull
    )
    assert isinstance(join_error(error_presence("not-allowed"), password_given=False), NotAllowed)
    assert isinstance(join_error(error_presence("forbidden"), password_given=False), NotAllowed)
    needs_name = '<displayname-required xmlns="http://jitsi.org/jitmeet"/>'
    error = join_error(error_presence("not-acceptable", needs_name), password_given=False)
    assert isinstance(error, DisplayNameRequired)
    error = join_error(error_presence("conflict"), password_given=False)
    assert type(error) is JoinError and error.condition == "conflict"


_CHILD = st.sampled_from(
    [
        '<x xmlns="http://jabber.org/protocol/muc#user"><status code="{v}"/><item jid="{v}" role="{v}"/></x>',
        '<x xmlns="http://jabber.org/protocol/muc#user"><destroy jid="{v}"/></x>',
        "<SourceInfo>{v}</SourceInfo>",
        "<audiomuted>{v}</audiomuted>",
        '<features><feature var="{v}"/></features>',
        '<c xmlns="http://jabber.org/protocol/caps" node="{v}" ver="{v}"/>',
        '<nick xmlns="http://jabber.org/protocol/nick">{v}</nick>',
    ]
)
_VALUE = st.text(st.sampled_from('ab1@/:{}[]",.-0 \\\u00e9'), max_size=16).map(
    lambda t: t.replace("&", "").replace("<", "").replace('"', "&quot;")
)


@settings(deadline=None)
@given(st.lists(st.tuples(_CHILD, _VALUE), max_size=5), st.sampled_from(["", "unavailable"]))
def test_odd_occupant_presence_never_raises(children: list[tuple[str, str]], kind: str) -> None:
    body = "".join(template.replace("{v}", value) for template, value in children)
    type_attr = f' type="{kind}"' if kind else ""
    presence = presence_of(
        f'<presence xmlns="jabber:client" from="r@c/n"{type_attr}>{body}</presence>'
    )
    parse_occupant(presence)
    parse_departure(presence)
