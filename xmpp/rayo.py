"""Rayo dial-out and hang-up (sans-IO): reading a ``<dial>``, writing the ``<ref>`` result and
the error IQs, as Jigasi's ``CallControl`` does (reference/jigasi.md §3.3-§3.5).

The dial arrives from Jicofo, which relays what lib-jitsi-meet's ``strophe.rayo`` sent
(jingle.md §9 "Rayo dial-out relay")::

    <dial xmlns="urn:xmpp:rayo:1" to="+15551234567" from="fromnumber">
      <header name="JvbRoomName" value="room1234@conference.meet.example.com"/>
      <header name="JvbRoomPassword" value="s3cret"/>   <!-- only for a locked room -->
    </dial>

``JvbRoomName`` names the room, ``JvbRoomPassword`` its password, and every other header
becomes an extra SIP header of the outgoing INVITE (jigasi.md §3.3, §3.4). Because of that the
header names must be SIP tokens (RFC 3261 §25.1) and no value may hold a control character: a
CR or LF would let a peer inject SIP headers. The result is ``<ref uri="xmpp:<our occupant JID
in the room>"/>``; a refusal is an IQ error with an RFC 6120 §8.3.3 condition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from slixmpp import Iq

from xmpp import stanzas
from xmpp.errors import StanzaParseError

ROOM_NAME_HEADER = "JvbRoomName"
ROOM_PASSWORD_HEADER = "JvbRoomPassword"
# Jicofo's destination for a transcriber instead of a phone call (jigasi.md §3.3).
TRANSCRIBER_DESTINATION = "jitsi_meet_transcribe"
# The ``uri`` of a result when the requested gateway is disabled (jigasi.md §3.3).
NOT_ACCEPTABLE_URI = "not-acceptable"
REF_SCHEME = "xmpp:"

# RFC 3261 §25.1 token: what a SIP header name may be.
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
# C0 controls but TAB, and DEL: never inside a SIP header value or a Request-URI.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEADER_TAG = f"{{{stanzas.NS_RAYO}}}header"

# RFC 6120 §8.3.3: each stanza error condition with its usual error type.
ERROR_TYPES: dict[str, str] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


@dataclass(frozen=True, slots=True)
class DialRequest:
    """A parsed Rayo ``<dial>``."""

    to: str  # the destination: a number, ``sip:``/``tel:`` URI, or ``jitsi_meet_transcribe``
    from_: str | None  # the ``from`` attribute (caller id wish; lib-jitsi-meet: "fromnumber")
    room: str | None  # header JvbRoomName: the room JID (jigasi.md §1.3 rules apply)
    password: str | None  # header JvbRoomPassword
    headers: tuple[tuple[str, str], ...] = ()  # every other header, in order

    @property
    def transcriber(self) -> bool:
        return self.to == TRANSCRIBER_DESTINATION


class DialRefused(Exception):
    """Raised by a dial (or hangup) handler to answer with an IQ error: ``condition`` is an
    RFC 6120 §8.3.3 stanza error condition (``forbidden``, ``bad-request``,
    ``service-unavailable``, ``item-not-found``, ``internal-server-error``, ...), ``text`` the
    human-readable explanation sent with it."""

    def __init__(self, condition: str, text: str = "") -> None:
        if condition not in ERROR_TYPES:
            raise ValueError(f"{condition!r} is not an RFC 6120 stanza error condition")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text


def _checked(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise StanzaParseError(f"{what} holds a control character")
    return value


def parse_dial(iq: Iq) -> DialRequest:
    """The dial request of a Rayo ``set`` IQ; raises `StanzaParseError` (``bad-request``) for
    a missing ``<dial>``, a missing or empty ``to``, a header without a token name or without
    a value, a repeated or empty ``JvbRoomName``, or a control character anywhere."""
    dial = iq.get_plugin("rayo_dial", check=True)
    if dial is None:
        raise StanzaParseError("no <dial xmlns='urn:xmpp:rayo:1'>")
    attrib = dial.xml.attrib
    to = _checked(str(attrib.get("to", "")).strip(), "dial 'to'")
    if not to:
        raise StanzaParseError("dial without a 'to' destination")
    from_ = _checked(str(attrib.get("from", "")).strip(), "dial 'from'") or None
    room: str | None = None
    password: str | None = None
    seen_room = seen_password = False
    headers: list[tuple[str, str]] = []
    for child in dial.xml:
        if child.tag != _HEADER_TAG:
            continue  # unknown children are ignored, as Smack's provider does
        name = str(child.attrib.get("name", ""))
        if not name:
            raise StanzaParseError("dial header without a name")
        if not _TOKEN.match(name):
            raise StanzaParseError(f"dial header name {name!r} is not a token (RFC 3261 §25.1)")
        if "value" not in child.attrib:
            raise StanzaParseError(f"dial header {name} without a value")
        value = _checked(str(child.attrib["value"]), f"dial header {name}")
        lowered = name.lower()
        if lowered == ROOM_NAME_HEADER.lower():
            if seen_room:
                raise StanzaParseError(f"{ROOM_NAME_HEADER} given twice")
            seen_room = True
            room = value.strip()
            if not room:
                raise StanzaParseError(f"empty {ROOM_NAME_HEADER}")
        elif lowered == ROOM_PASSWORD_HEADER.lower():
            if seen_password:
                raise StanzaParseError(f"{ROOM_PASSWORD_HEADER} given twice")
            seen_password = True
            password = value or None  # lib-jitsi-meet sends none for an empty password
        else:
            headers.append((name, value))
    return DialRequest(to, from_, room, password, tuple(headers))


def _add_headers(
    parent: stanzas.RayoDial | stanzas.RayoHangup, headers: Iterable[tuple[str, str]]
) -> None:
    for name, value in headers:
        header = stanzas.RayoHeader()
        # Straight into the attributes: slixmpp drops an attribute set to "" (a value may be).
        header.xml.attrib.update(name=name, value=value)
        parent.append(header)


def build_dial(iq: Iq, request: DialRequest) -> None:
    """A ``set`` IQ with the dial, as lib-jitsi-meet builds it (``JvbRoomName``, then
    ``JvbRoomPassword`` when there is one, then the other headers)."""
    iq["type"] = "set"
    dial = iq["rayo_dial"]
    dial["to"] = request.to
    if request.from_ is not None:
        dial["from"] = request.from_
    headers: list[tuple[str, str]] = []
    if request.room is not None:
        headers.append((ROOM_NAME_HEADER, request.room))
    if request.password:
        headers.append((ROOM_PASSWORD_HEADER, request.password))
    _add_headers(dial, [*headers, *request.headers])


def build_ref(iq_result: Iq, uri: str) -> None:
    """Fill the dial's result: ``<ref xmlns="urn:xmpp:rayo:1" uri=…/>`` (jigasi.md §3.3 step 4:
    ``xmpp:`` + our occupant JID in the room)."""
    iq_result["rayo_ref"]["uri"] = uri


def parse_ref(iq: Iq) -> str:
    """The ``uri`` of a dial result; raises `StanzaParseError` when there is none."""
    ref = iq.get_plugin("rayo_ref", check=True)
    uri = str(ref.xml.attrib.get("uri", "")) if ref is not None else ""
    if not uri:
        raise StanzaParseError("dial result without <ref uri>")
    return uri


def ref_uri(occupant_jid: str) -> str:
    """``xmpp:<occupant JID>``."""
    return REF_SCHEME + occupant_jid


def ref_jid(uri: str) -> str:
    """The JID a ``ref`` URI names (the hangup's destination, jigasi.md §3.5)."""
    return uri[len(REF_SCHEME) :] if uri.startswith(REF_SCHEME) else uri


def build_hangup(iq: Iq, headers: Iterable[tuple[str, str]] = ()) -> None:
    """``<iq type="set"><hangup xmlns="urn:xmpp:rayo:1"/></iq>`` (jigasi.md §3.5)."""
    iq["type"] = "set"
    hangup = iq["rayo_hangup"]
    _add_headers(hangup, headers)


def fill_error(answer: Iq, condition: str, text: str | None = None) -> None:
    """Turn a reply into an IQ error with ``condition`` and its RFC 6120 §8.3.3 type."""
    answer["type"] = "error"
    answer["error"]["type"] = ERROR_TYPES.get(condition, "cancel")
    answer["error"]["condition"] = condition if condition in ERROR_TYPES else "undefined-condition"
    if text:
        answer["error"]["text"] = text


__all__ = [
    "ERROR_TYPES",
    "NOT_ACCEPTABLE_URI",
    "ROOM_NAME_HEADER",
    "ROOM_PASSWORD_HEADER",
    "TRANSCRIBER_DESTINATION",
    "DialRefused",
    "DialRequest",
    "build_dial",
    "build_hangup",
    "build_ref",
    "fill_error",
    "parse_dial",
    "parse_ref",
    "ref_jid",
    "ref_uri",
]
