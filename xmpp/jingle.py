"""Jingle <-> values (sans-IO): parse what Jicofo sends into `xmpp.transport_info` values, build
what we send back from them. Every incoming field is validated here; bad input raises only
`JingleParseError` (the session handler answers ``bad-request`` and nothing else is touched).

Wire shapes: reference/jingle.md §3.1 (session-initiate), §4.2 (session-accept), §6 (the other
actions), jigasi.md §2.3 (transport-info before the accept, terminate reasons).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slixmpp.xmlstream import ElementBase

from xmpp import stanzas
from xmpp.errors import JingleParseError
from xmpp.transport_info import (
    AUDIO_LEVEL_URI,
    AudioSession,
    DtlsFingerprint,
    HeaderExtension,
    IceCandidate,
    MediaSource,
    PayloadType,
    TransportDescription,
)

# Actions (XEP-0166 §7.2 plus Jitsi's source-add/remove, jingle.md §6).
SESSION_INITIATE = "session-initiate"
SESSION_ACCEPT = "session-accept"
SESSION_TERMINATE = "session-terminate"
SESSION_INFO = "session-info"
TRANSPORT_INFO = "transport-info"
TRANSPORT_REPLACE = "transport-replace"
TRANSPORT_ACCEPT = "transport-accept"
SOURCE_ADD = "source-add"
SOURCE_REMOVE = "source-remove"
LEGACY_SOURCE_ADD = "addsource"  # older Jicofo spelling, still accepted (jingle.md §6)
LEGACY_SOURCE_REMOVE = "removesource"

MAX_SSRC = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class JingleReason:
    """``<reason>``: a XEP-0166 §7.4 condition and an optional text."""

    condition: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeSessionInfo:
    """``<bridge-session id region restart>`` (jingle.md §3.1: echo the id on restart)."""

    id: str
    region: str | None = None
    restart: bool = False


@dataclass(frozen=True, slots=True)
class JingleRequest:
    """One parsed ``<jingle>``. `transport` is the first ICE transport found in any content
    (the only one Jicofo and the bridge use, jingle.md §4.1); `audio` the audio content's
    description (None when the action carries none); `sources` every source of every content
    and of a ``<json-message>``, with its media type."""

    action: str
    sid: str
    initiator: str | None
    responder: str | None
    content_names: tuple[str, ...]
    audio_content: str | None  # the name of the content holding the audio description
    transport: TransportDescription | None
    audio: AudioSession | None
    sources: tuple[MediaSource, ...]
    bridge_session: BridgeSessionInfo | None
    reason: JingleReason | None
    start_muted_audio: bool | None

    @property
    def audio_sources(self) -> tuple[MediaSource, ...]:
        return tuple(s for s in self.sources if s.media == "audio")


# --- parsing ------------------------------------------------------------------------------------


def _child(element: ElementBase, attrib: str) -> Any:
    """A registered child plugin if present, without creating it (slixmpp's ``elem[attr]``
    would add an empty one)."""
    return element.get_plugin(attrib, check=True)


def _children(element: ElementBase, cls: type[ElementBase]) -> list[Any]:
    return [child for child in element.iterables if isinstance(child, cls)]


def _int(value: str, what: str, low: int, high: int) -> int:
    text = value.strip()
    # int() accepts "+1", "1_000" and non-ASCII digits; XML Schema integers do not.
    if not text or not (
        text.isascii() and (text.isdigit() or (text[0] == "-" and text[1:].isdigit()))
    ):
        raise JingleParseError(f"{what} is not an integer: {value!r}")
    number = int(text)
    if not low <= number <= high:
        raise JingleParseError(f"{what} {number} outside {low}..{high}")
    return number


def _attr(element: ElementBase, name: str) -> str:
    return str(element.xml.attrib.get(name, ""))


def _required(element: ElementBase, name: str) -> str:
    value = _attr(element, name)
    if not value:
        raise JingleParseError(f"<{element.name}> without {name}")
    return value


def _optional_int(element: ElementBase, name: str, low: int, high: int, default: int) -> int:
    value = _attr(element, name)
    return default if value == "" else _int(value, f"{element.name}/@{name}", low, high)


def _bool(value: str) -> bool:
    return value.strip().lower() in ("true", "1")


def parse_candidate(element: stanzas.Candidate) -> IceCandidate:
    """XEP-0176 §5.3 candidate. A missing generation reads as 0: only the bridge's own
    candidates are parsed by us, and it always writes generation 0 (jingle.md §4.1)."""
    rel_port = _attr(element, "rel-port")
    return IceCandidate(
        foundation=_required(element, "foundation"),
        component=_int(_required(element, "component"), "candidate/@component", 1, 256),
        protocol=_required(element, "protocol").lower(),
        priority=_int(_required(element, "priority"), "candidate/@priority", 0, MAX_SSRC),
        ip=_required(element, "ip"),
        port=_int(_required(element, "port"), "candidate/@port", 0, 65535),
        type=_required(element, "type"),
        generation=_optional_int(element, "generation", 0, 255, 0),
        id=_attr(element, "id"),
        network=_optional_int(element, "network", 0, 65535, 0),
        rel_addr=_attr(element, "rel-addr") or None,
        rel_port=_int(rel_port, "candidate/@rel-port", 0, 65535) if rel_port else None,
        tcptype=_attr(element, "tcptype") or None,
    )


def parse_transport(element: stanzas.Transport) -> TransportDescription:
    """XEP-0176 transport with XEP-0320 fingerprints. ufrag/pwd may be absent (a Jigasi
    session-accept carries only the fingerprint); the session handler checks what it needs."""
    fingerprints = []
    for fp in _children(element, stanzas.Fingerprint):
        value = (fp.xml.text or "").strip()
        if not value:
            raise JingleParseError("empty DTLS fingerprint")
        fingerprints.append(
            DtlsFingerprint(
                hash=_required(fp, "hash").lower(),
                value=value.upper(),
                setup=_attr(fp, "setup") or "actpass",  # XEP-0320 §3: absent means actpass
            )
        )
    web_socket = _child(element, "web_socket")
    return TransportDescription(
        ufrag=_attr(element, "ufrag"),
        pwd=_attr(element, "pwd"),
        candidates=tuple(parse_candidate(c) for c in _children(element, stanzas.Candidate)),
        fingerprints=tuple(fingerprints),
        rtcp_mux=_child(element, "rtcp_mux") is not None,
        websocket_url=_attr(web_socket, "url") or None if web_socket is not None else None,
    )


def parse_payload_type(element: stanzas.PayloadType) -> PayloadType:
    parameters = tuple(
        (_attr(p, "name"), _attr(p, "value")) for p in _children(element, stanzas.Parameter)
    )
    return PayloadType(
        id=_int(_required(element, "id"), "payload-type/@id", 0, 127),
        name=_attr(element, "name"),
        clockrate=_optional_int(element, "clockrate", 1, 10_000_000, 0),
        channels=_optional_int(element, "channels", 1, 255, 1),
        parameters=parameters,
    )


def _owner(value: str) -> str | None:
    return value or None


def parse_source(element: stanzas.Source, media: str) -> MediaSource:
    """XEP-0339 source with Jitsi's owner (``ssrc-info``, jingle.md §3.1) and ``msid``."""
    msid = None
    for parameter in _children(element, stanzas.SourceParameter):  # both namespaces
        if _attr(parameter, "name") == "msid":
            msid = _attr(parameter, "value") or None
    info = _child(element, "ssrc_info")
    return MediaSource(
        ssrc=_int(_required(element, "ssrc"), "source/@ssrc", 1, MAX_SSRC),
        name=_attr(element, "name") or None,
        owner=_owner(_attr(info, "owner")) if info is not None else None,
        msid=msid,
        media=media,
    )


def parse_json_sources(text: str) -> list[MediaSource]:
    """``<json-message>{"sources":{owner:[videoSources, videoGroups, audioSources, ...]}}``
    (jingle.md §3.1, the compact form of jicofo's EndpointSourceSet)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise JingleParseError(f"json-message is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise JingleParseError("json-message is not an object")
    owners = document.get("sources")
    if owners is None:
        return []
    if not isinstance(owners, dict):
        raise JingleParseError("json-message sources is not an object")
    found: list[MediaSource] = []
    for owner, lists in owners.items():
        if not isinstance(lists, list):
            raise JingleParseError("json-message source lists are not an array")
        for index, media in ((0, "video"), (2, "audio")):
            entries = lists[index] if len(lists) > index else []
            if not isinstance(entries, list):
                raise JingleParseError("json-message source list is not an array")
            for entry in entries:
                if not isinstance(entry, dict):
                    raise JingleParseError("json-message source is not an object")
                ssrc = entry.get("s")
                if type(ssrc) is not int or not 1 <= ssrc <= MAX_SSRC:
                    raise JingleParseError(f"json-message ssrc {ssrc!r} is invalid")
                name, msid = entry.get("n"), entry.get("m")
                if (name is not None and not isinstance(name, str)) or (
                    msid is not None and not isinstance(msid, str)
                ):
                    raise JingleParseError("json-message name/msid is not a string")
                found.append(MediaSource(ssrc, name, str(owner) or None, msid, media))
    return found


def parse_jingle(element: stanzas.Jingle) -> JingleRequest:
    """Parse one ``<jingle>``; raises `JingleParseError` on anything malformed."""
    action = _required(element, "action")
    sid = _required(element, "sid")
    names: list[str] = []
    transport: TransportDescription | None = None
    audio: AudioSession | None = None
    audio_content: str | None = None
    sources: list[MediaSource] = []
    for content in _children(element, stanzas.Content):
        name = _attr(content, "name")
        names.append(name)
        description = _child(content, "description")
        # jingle.md §4.1: media type from description/@media, falling back to the content name.
        media = (_attr(description, "media") if description is not None else "") or name
        content_sources = [parse_source(s, media) for s in _children(content, stanzas.Source)]
        if description is not None:
            content_sources += [
                parse_source(s, media) for s in _children(description, stanzas.Source)
            ]
            if media == "audio" and audio is None:
                audio_content = name
                audio = AudioSession(
                    payload_types=tuple(
                        parse_payload_type(p) for p in _children(description, stanzas.PayloadType)
                    ),
                    header_extensions=tuple(
                        HeaderExtension(
                            _int(_required(h, "id"), "rtp-hdrext/@id", 1, 255),
                            _required(h, "uri"),
                        )
                        for h in _children(description, stanzas.RtpHdrext)
                    ),
                )
        sources += content_sources
        transport_element = _child(content, "transport")
        if transport_element is not None and transport is None:
            transport = parse_transport(transport_element)
    json_message = _child(element, "json_message")
    if json_message is not None:
        sources += parse_json_sources(json_message.xml.text or "")
    if audio is not None:
        audio = AudioSession(
            audio.payload_types,
            audio.header_extensions,
            tuple(s for s in sources if s.media == "audio"),
        )
    bridge = _child(element, "bridge_session")
    reason_element = _child(element, "reason")
    start_muted = _child(element, "startmuted")
    return JingleRequest(
        action=action,
        sid=sid,
        initiator=_attr(element, "initiator") or None,
        responder=_attr(element, "responder") or None,
        content_names=tuple(names),
        audio_content=audio_content,
        transport=transport,
        audio=audio,
        sources=tuple(sources),
        bridge_session=BridgeSessionInfo(
            id=_attr(bridge, "id"),
            region=_attr(bridge, "region") or None,
            restart=_bool(_attr(bridge, "restart")),
        )
        if bridge is not None
        else None,
        reason=JingleReason(reason_element["condition"], reason_element["text"] or None)
        if reason_element is not None
        else None,
        start_muted_audio=_bool(_attr(start_muted, "audio"))
        if start_muted is not None and _attr(start_muted, "audio")
        else None,
    )


# --- building ----------------------------------------------------------------------------------


def _add(parent: ElementBase, child: ElementBase) -> ElementBase:
    parent.append(child)
    return child


def add_transport(
    content: stanzas.Content,
    transport: TransportDescription,
    *,
    candidates: bool = True,
    fingerprints: bool = True,
) -> stanzas.Transport:
    """``<transport ufrag pwd>`` with fingerprints and candidates. Every candidate carries
    ``generation="0"``: the bridge uses only remote candidates of its agent's generation, 0,
    and parses a missing attribute as -1 (jingle.md §4.1)."""
    element: stanzas.Transport = content["transport"]
    if transport.ufrag:
        element["ufrag"] = transport.ufrag
    if transport.pwd:
        element["pwd"] = transport.pwd
    if fingerprints:
        for fp in transport.fingerprints:
            fingerprint = stanzas.Fingerprint()
            fingerprint["hash"] = fp.hash
            fingerprint["setup"] = fp.setup
            fingerprint["value"] = fp.value
            element.append(fingerprint)
    if candidates:
        for c in transport.candidates:
            candidate = stanzas.Candidate()
            attrib = candidate.xml.attrib
            attrib["component"] = str(c.component)
            attrib["foundation"] = c.foundation
            attrib["generation"] = "0"
            attrib["id"] = c.id or secrets.token_hex(5)
            attrib["ip"] = c.ip
            attrib["network"] = str(c.network)
            attrib["port"] = str(c.port)
            attrib["priority"] = str(c.priority)
            attrib["protocol"] = c.protocol
            attrib["type"] = c.type
            if c.rel_addr is not None and c.type != "host":
                attrib["rel-addr"] = c.rel_addr
            if c.rel_port is not None and c.type != "host":
                attrib["rel-port"] = str(c.rel_port)
            if c.tcptype is not None and c.protocol == "tcp":
                attrib["tcptype"] = c.tcptype
            element.append(candidate)
    return element


def add_payload_type(description: stanzas.Description, pt: PayloadType) -> None:
    element = stanzas.PayloadType()
    element["id"] = str(pt.id)
    element["name"] = pt.name
    element["clockrate"] = str(pt.clockrate)
    if pt.channels != 1:
        element["channels"] = str(pt.channels)
    for name, value in pt.parameters:
        parameter = stanzas.Parameter()
        parameter.xml.attrib["name"] = name
        parameter.xml.attrib["value"] = value
        element.append(parameter)
    description.append(element)


def add_source(
    description: stanzas.Description, source: MediaSource, *, with_owner: bool
) -> stanzas.Source:
    """``<source ssrc name><ssrc-info owner/>?<parameter name="msid" value/>?</source>``."""
    element = stanzas.Source()
    element["ssrc"] = str(source.ssrc)
    if source.name:
        element["name"] = source.name
    if with_owner and source.owner:
        element["ssrc_info"]["owner"] = source.owner
    if source.msid:
        parameter = stanzas.SourceParameter()
        parameter.xml.attrib["name"] = "msid"
        parameter.xml.attrib["value"] = source.msid
        element.append(parameter)
    description.append(element)
    return element


def add_bundle_group(jingle: stanzas.Jingle, names: Iterable[str]) -> None:
    """``<group semantics="BUNDLE">`` (XEP-0338; Jicofo always bundles, jingle.md §3.1)."""
    group = jingle["group"]
    group["semantics"] = "BUNDLE"
    for name in names:
        item = stanzas.GroupContent()
        item["name"] = name
        group.append(item)


@dataclass(frozen=True, slots=True)
class LocalAudio:
    """What we answer with: our SSRC and its source name and msid (jingle.md §4.2)."""

    ssrc: int
    name: str  # "<nick>-a0"
    msid: str  # "<stream id> <track id>"; browsers need it to build a track (§4.1)

    @staticmethod
    def for_nick(nick: str, ssrc: int) -> LocalAudio:
        # Stream and track ids in lib-jitsi-meet's shape ("<nick>-audio-0-1 <uuid>-1"); the
        # stream id must not be "mixedmslabel"/"default" (jingle.md §0 item 8).
        track = f"{uuid.uuid4()}-1"
        return LocalAudio(ssrc, f"{nick}-a0", f"{nick}-audio-0-1 {track}")


def answer_payload_types(offer: AudioSession) -> tuple[PayloadType, ...]:
    """The offer's opus and telephone-event payload types, with the offer's numbers and fmtp
    (Jicofo does not negotiate: the bridge keeps the offer's values, jingle.md §0 item 3)."""
    chosen = [offer.payload("opus"), offer.payload("telephone-event")]
    return tuple(pt for pt in chosen if pt is not None)


def build_session_accept(
    jingle: stanzas.Jingle,
    *,
    offer: JingleRequest,
    local: TransportDescription,
    audio: LocalAudio,
    responder: str,
) -> None:
    """Fill an empty ``<jingle>`` with our session-accept (jingle.md §4.2): one audio content
    with the negotiated payload types, the offer's ssrc-audio-level extension id (the only one
    we send: the bridge needs it, §0 item 4), our one source with msid, rtcp-mux, and the full
    ICE transport (every candidate, fingerprint ``setup="active"``); the BUNDLE group."""
    if offer.audio is None:
        raise JingleParseError("the offer has no audio content", "bad-request")
    jingle["action"] = SESSION_ACCEPT
    jingle["sid"] = offer.sid
    if offer.initiator:
        jingle["initiator"] = offer.initiator
    jingle["responder"] = responder
    content = stanzas.Content()
    # XEP-0166 §7.3: creator names the party that generated the content, the initiator here
    # (Jigasi echoes it, jigasi.md §2.3; Jicofo ignores the attribute, jingle.md §4.1).
    content["creator"] = "initiator"
    content["name"] = _audio_content_name(offer)
    content["senders"] = "both"
    jingle.append(content)
    description: stanzas.Description = content["description"]
    description["media"] = "audio"
    for pt in answer_payload_types(offer.audio):
        add_payload_type(description, pt)
    add_source(description, MediaSource(audio.ssrc, audio.name, None, audio.msid), with_owner=False)
    description.enable("rtcp_mux")
    level_id = offer.audio.extension_id(AUDIO_LEVEL_URI)
    if level_id is not None:
        extension = stanzas.RtpHdrext()
        extension["id"] = str(level_id)
        extension["uri"] = AUDIO_LEVEL_URI
        description.append(extension)
    add_transport(content, _active(local))
    add_bundle_group(jingle, [content["name"]])


def build_transport_info(
    jingle: stanzas.Jingle, *, offer: JingleRequest, local: TransportDescription
) -> None:
    """The ``transport-info`` Jigasi sends before its accept (jigasi.md §2.3): the same
    ufrag/pwd and candidates as the accept; Jicofo applies it even before the accept (§5.2)."""
    jingle["action"] = TRANSPORT_INFO
    jingle["sid"] = offer.sid
    if offer.initiator:
        jingle["initiator"] = offer.initiator
    content = stanzas.Content()
    content["creator"] = "initiator"
    content["name"] = _audio_content_name(offer)
    content["senders"] = "both"
    jingle.append(content)
    add_transport(content, _active(local))


def build_session_terminate(
    jingle: stanzas.Jingle,
    *,
    sid: str,
    reason: JingleReason,
    bridge_session_id: str | None = None,
    restart: bool = False,
) -> None:
    """``session-terminate`` with its reason; with ``restart`` and the current bridge-session
    id, Jicofo re-invites with a new session-initiate (jingle.md §6, §12 step 9)."""
    jingle["action"] = SESSION_TERMINATE
    jingle["sid"] = sid
    element = jingle["reason"]
    element["condition"] = reason.condition
    if reason.text:
        element["text"] = reason.text
    if bridge_session_id is not None:
        bridge = jingle["bridge_session"]
        bridge["id"] = bridge_session_id
        if restart:
            bridge["restart"] = "true"


def build_sources(
    jingle: stanzas.Jingle, *, action: str, sid: str, sources: Iterable[MediaSource]
) -> None:
    """``source-add`` / ``source-remove`` in Jicofo's shape (jingle.md §6): one content per
    media type, sources with ``ssrc-info`` owner and msid, no ``initiator`` attribute."""
    jingle["action"] = action
    jingle["sid"] = sid
    by_media: dict[str, list[MediaSource]] = {}
    for source in sources:
        by_media.setdefault(source.media, []).append(source)
    for media, group in by_media.items():
        content = stanzas.Content()
        content["name"] = media
        jingle.append(content)
        description: stanzas.Description = content["description"]
        description["media"] = media
        for source in group:
            add_source(description, source, with_owner=True)


def _audio_content_name(offer: JingleRequest) -> str:
    return offer.audio_content or "audio"


def _active(local: TransportDescription) -> TransportDescription:
    """We are the DTLS client (RFC 5763 §5: the answerer to actpass picks active; Jicofo's
    bridge then acts as DTLS server, jingle.md §4.1)."""
    return TransportDescription(
        local.ufrag,
        local.pwd,
        local.candidates,
        tuple(DtlsFingerprint(f.hash, f.value, "active") for f in local.fingerprints),
        local.rtcp_mux,
        None,
    )
