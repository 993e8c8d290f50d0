"""The focus: the conference request (jingle.md §2.2) and the mute IQ (§7), sans-IO.

The conference request asks Jicofo to create (or join) the room before we join it: stock Prosody
restricts room creation to the focus, and ``mod_muc_meeting_id`` queues joins until the focus
is in (§0 item 1). While Jicofo answers ``ready="false"`` we retry with back-off, as
lib-jitsi-meet does (1 s doubling, capped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slixmpp import Iq

from xmpp import stanzas
from xmpp.errors import StanzaParseError


def build_conference_request(
    iq: Iq,
    *,
    room: str,
    machine_uid: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """``<conference xmlns="http://jitsi.org/protocol/focus" room machine-uid>`` with
    ``<property name value>`` children. No ``visitors-version``: we do not follow visitor
    redirects, and Jicofo only redirects requesters that declare it (§2.2, §9)."""
    iq["type"] = "set"
    conference = iq["focus_conference"]
    conference["room"] = room
    if machine_uid:
        conference["machine-uid"] = machine_uid
    for name, value in (properties or {}).items():
        prop = stanzas.ConferenceProperty()
        prop["name"] = name
        prop["value"] = value
        conference.append(prop)


@dataclass(frozen=True, slots=True)
class ConferenceResponse:
    ready: bool
    focus_jid: str | None
    room: str | None
    vnode: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """``<property name="live" value="false"/>`` marks a room not yet live (visitor queue)."""
        return self.properties.get("live", "true") != "false"


def parse_conference_response(iq: Iq) -> ConferenceResponse:
    conference = iq.get_plugin("focus_conference", check=True)
    if conference is None:
        raise StanzaParseError("conference result without <conference>")
    attrib = conference.xml.attrib
    properties = {
        str(p.xml.attrib.get("name", "")): str(p.xml.attrib.get("value", ""))
        for p in conference.iterables
        if isinstance(p, stanzas.ConferenceProperty)
    }
    return ConferenceResponse(
        ready=str(attrib.get("ready", "")).lower() == "true",
        focus_jid=str(attrib.get("focusjid", "")) or None,
        room=str(attrib.get("room", "")) or None,
        vnode=str(attrib.get("vnode", "")) or None,
        properties=properties,
    )


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: ``initial`` doubling up to ``maximum`` (lib-jitsi-meet: 1 s, 120 s)."""

    initial: float = 1.0
    maximum: float = 120.0

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based)."""
        return float(min(self.maximum, self.initial * 2 ** max(0, min(attempt - 1, 30))))


# --- mute (jingle.md §7) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """A parsed ``<mute xmlns="http://jitsi.org/jitmeet/audio">``."""

    muted: bool
    actor: str | None  # the moderator's occupant JID (set by Jicofo on forwarded mutes)
    jid: str | None  # the target (set in requests sent to the focus)


def parse_mute(iq: Iq) -> MuteRequest:
    mute = iq.get_plugin("mute", check=True)
    if mute is None:
        raise StanzaParseError("no <mute>")
    text = (mute.xml.text or "").strip().lower()
    if text not in ("true", "false"):
        raise StanzaParseError(f"mute value {text!r} is not true/false")
    return MuteRequest(
        muted=text == "true",
        actor=str(mute.xml.attrib.get("actor", "")) or None,
        jid=str(mute.xml.attrib.get("jid", "")) or None,
    )


def build_mute(iq: Iq, *, target: str, muted: bool) -> None:
    """The request a moderator (or we, for ourselves) sends to the focus occupant:
    ``<mute jid="<target occupant JID>">true</mute>``. Unmuting someone else is always refused
    by Jicofo; a self-addressed ``false`` lifts a bridge force-mute (§7)."""
    iq["type"] = "set"
    mute = iq["mute"]
    mute["jid"] = target
    mute["value"] = "true" if muted else "false"
