"""MUC presence (sans-IO): our join and update presences, other occupants' presence, the nick
rule, and join errors as typed errors.

Our presence follows reference/jingle.md §2.3 and jigasi.md §2.2 element by element:
``<x xmlns=muc>`` (join only, with the room password), ``<nick>`` display name, XEP-0115
caps, ``<SourceInfo>`` and the legacy ``<audiomuted>``, ``<features>``, then the optional
``<stats-id>``, ``<jitsi_participant_region>`` and ``<status>``. Every update re-sends the
whole set without the ``<x>`` (jigasi.md §2.2: what Smack's presence interceptor does).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field

from slixmpp import JID, Presence
from slixmpp.jid import InvalidJID

from xmpp import stanzas
from xmpp.caps import AUDIO_MUTE, JIGASI, JINGLE_DTMF
from xmpp.errors import (
    DisplayNameRequired,
    JoinError,
    LobbyEnabled,
    NotAllowed,
    RoomFull,
    RoomPasswordError,
)

# jingle.md §2.3: mod_muc_resource_validate accepts only this (no hyphens).
VALID_NICK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_]*$")
# XEP-0045 §15.6 status codes.
STATUS_SELF = 110
STATUS_BANNED = 301
STATUS_NICK_CHANGED = 303
STATUS_KICKED = 307
STATUS_AFFILIATION_REMOVED = 321
STATUS_MEMBERS_ONLY_REMOVED = 322
STATUS_SHUTDOWN = 332


def random_nick() -> str:
    """8 lower-case hex characters, as Jigasi's call resource (jigasi.md §1.3)."""
    return secrets.token_hex(4)


def nick_for(bound_jid: str, anonymous: bool) -> str:
    """The MUC nick (the endpoint id, jingle.md §2.3). With anonymous login it is the first 8
    characters of the anonymous JID's local part, which mod_muc_resource_validate's
    ``anonymous_strict`` requires; Jitsi's ``jitsi-anonymous`` auth makes that a UUID prefix
    (8 hex digits). A stock Prosody's anonymous local parts are base64url and may hold ``-``,
    which the same module refuses: then, and for authenticated logins, 8 random hex digits."""
    if anonymous:
        local = bound_jid.split("@", 1)[0] if "@" in bound_jid else ""
        prefix = local[:8]
        if len(prefix) == 8 and VALID_NICK.match(prefix):
            return prefix
    return random_nick()


@dataclass(frozen=True, slots=True)
class LocalPresence:
    """Everything our occupant publishes."""

    nick: str
    display_name: str | None
    caps_node: str
    caps_ver: str
    audio_muted: bool = False
    features: tuple[str, ...] = (JIGASI, JINGLE_DTMF, AUDIO_MUTE)
    region: str | None = None
    stats_id: str | None = None
    status: str | None = None

    @property
    def source_name(self) -> str:
        return f"{self.nick}-a0"


def fill_presence(
    presence: Presence, local: LocalPresence, *, join: bool, password: str | None = None
) -> None:
    """Add our extensions to an (addressed) presence stanza. ``join`` adds the XEP-0045
    ``<x xmlns=muc>`` (with the password), which belongs to the first presence only."""
    if join:
        muc = presence["muc_join"]
        if password is not None:
            muc["password"] = password
    if local.display_name:
        presence["display_name"]["value"] = local.display_name
    caps = presence["entity_caps"]
    caps["hash"] = "sha-1"
    caps["node"] = local.caps_node
    caps["ver"] = local.caps_ver
    # jingle.md §0 item 9: always set "muted" explicitly, a missing flag counts as muted.
    presence["source_info"]["value"] = json.dumps(
        {local.source_name: {"muted": local.audio_muted}}, separators=(",", ":")
    )
    presence["audiomuted"]["value"] = "true" if local.audio_muted else "false"
    if local.features:
        features = presence["jitsi_features"]
        for var in local.features:
            feature = stanzas.Feature()
            feature["var"] = var
            features.append(feature)
    if local.stats_id:
        presence["stats_id"]["value"] = local.stats_id
    if local.region:
        presence["jitsi_region"]["value"] = local.region
    if local.status:
        presence["status"] = local.status


# --- other occupants -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occupant:
    """What one occupant's presence tells us."""

    nick: str
    occupant_jid: str
    real_jid: str | None  # muc#user item jid, when the room exposes it (whois anyone)
    role: str
    affiliation: str
    display_name: str | None
    features: frozenset[str] = field(default_factory=frozenset)
    audio_muted: bool | None = None
    caps_node: str | None = None
    caps_ver: str | None = None
    status_codes: frozenset[int] = field(default_factory=frozenset)
    available: bool = True

    @property
    def is_gateway(self) -> bool:
        """A Jigasi-like gateway: its presence ``<features>`` has the Jigasi marker (jingle.md
        §9; Jicofo additionally requires a trusted domain, which only it knows)."""
        return JIGASI in self.features


def _text(presence: Presence, attrib: str) -> str | None:
    element = presence.get_plugin(attrib, check=True)
    if element is None:
        return None
    return element.xml.text or ""


def parse_source_info_muted(text: str) -> bool | None:
    """Jicofo's reading of ``<SourceInfo>`` (jingle.md §7): muted unless some audio source
    says ``"muted": false``; None when the JSON is unusable."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    for name, info in document.items():
        if not isinstance(info, dict):
            continue
        media = info.get("mediaType")
        is_audio = media == "audio" if isinstance(media, str) else "-a" in str(name)
        if is_audio and info.get("muted") is False:
            return False
    return True


def parse_occupant(presence: Presence) -> Occupant:
    """An occupant's presence; tolerant (a peer's odd presence never raises)."""
    sender = presence["from"]
    muc = presence.get_plugin("muc_user", check=True)
    item = muc.get_plugin("muc_item", check=True) if muc is not None else None
    codes: set[int] = set()
    if muc is not None:
        for status in muc.iterables:
            if isinstance(status, stanzas.MucStatus):
                code = str(status.xml.attrib.get("code", ""))
                if code.isascii() and code.isdigit() and len(code) <= 3:
                    codes.add(int(code))
    features: set[str] = set()
    features_element = presence.get_plugin("jitsi_features", check=True)
    if features_element is not None:
        features = {
            str(f.xml.attrib.get("var", ""))
            for f in features_element.iterables
            if isinstance(f, stanzas.Feature)
        }
    muted: bool | None = None
    source_info = _text(presence, "source_info")
    if source_info is not None:
        muted = parse_source_info_muted(source_info)
    else:
        legacy = _text(presence, "audiomuted")
        if legacy is not None:
            muted = legacy.strip().lower() == "true"
    caps = presence.get_plugin("entity_caps", check=True)
    real_jid: str | None = None
    if item is not None and item.xml.attrib.get("jid"):
        try:
            real_jid = str(JID(str(item.xml.attrib["jid"])))
        except InvalidJID:
            real_jid = None
    return Occupant(
        nick=sender.resource,
        occupant_jid=str(sender),
        real_jid=real_jid,
        role=str(item.xml.attrib.get("role", "")) if item is not None else "",
        affiliation=str(item.xml.attrib.get("affiliation", "")) if item is not None else "",
        display_name=_text(presence, "display_name"),
        features=frozenset(features),
        audio_muted=muted,
        caps_node=str(caps.xml.attrib.get("node", "")) or None if caps is not None else None,
        caps_ver=str(caps.xml.attrib.get("ver", "")) or None if caps is not None else None,
        status_codes=frozenset(codes),
        available=presence["type"] != "unavailable",
    )


@dataclass(frozen=True, slots=True)
class Departure:
    """Why an occupant (or we) left: XEP-0045 §9.2 kick (307), §9.1 ban (301), §10.9
    destruction (``<destroy>``), §9.4/§9.5 removal (321/322), §7.x shutdown (332)."""

    kind: str  # "left", "kicked", "banned", "destroyed", "removed", "shutdown", "nick-change"
    reason: str | None = None
    actor: str | None = None
    alternate: str | None = None  # the alternate venue of a destroyed room


def parse_departure(presence: Presence) -> Departure:
    muc = presence.get_plugin("muc_user", check=True)
    if muc is None:
        return Departure("left", presence["status"] or None)
    occupant = parse_occupant(presence)
    codes = occupant.status_codes
    item = muc.get_plugin("muc_item", check=True)
    reason: str | None = None
    actor: str | None = None
    if item is not None:
        reason = item["reason"] or None
        actor_element = item.get_plugin("muc_actor", check=True)
        if actor_element is not None:
            actor = (
                str(
                    actor_element.xml.attrib.get("nick")
                    or actor_element.xml.attrib.get("jid")
                    or ""
                )
                or None
            )
    destroy = muc.get_plugin("muc_destroy", check=True)
    if destroy is not None:
        return Departure(
            "destroyed",
            destroy["reason"] or None,
            None,
            str(destroy.xml.attrib.get("jid", "")) or None,
        )
    if STATUS_KICKED in codes:
        return Departure("kicked", reason, actor)
    if STATUS_BANNED in codes:
        return Departure("banned", reason, actor)
    if STATUS_AFFILIATION_REMOVED in codes or STATUS_MEMBERS_ONLY_REMOVED in codes:
        return Departure("removed", reason, actor)
    if STATUS_SHUTDOWN in codes:
        return Departure("shutdown", reason)
    if STATUS_NICK_CHANGED in codes:
        return Departure("nick-change", reason)
    return Departure("left", presence["status"] or None)


# --- join errors ----------------------------------------------------------------------------------


def join_error(presence: Presence, *, password_given: bool) -> JoinError:
    """The typed error for an error presence answering our join (jigasi.md §1.6, jingle.md
    §10): not-authorized -> password, registration-required -> lobby (with the
    ``<lobbyroom>`` JID if any), service-unavailable -> room full, not-allowed/forbidden ->
    not allowed, not-acceptable + displayname-required -> display name required."""
    error = presence["error"]
    condition = str(error["condition"] or "")
    text = str(error["text"] or "") or None
    if condition == "not-authorized":
        return RoomPasswordError(password_given, text)
    if condition == "registration-required":
        lobby = error.get_plugin("lobbyroom", check=True)
        legacy = presence.get_plugin("legacy_lobbyroom", check=True)
        room = (lobby.xml.text if lobby is not None else None) or (
            legacy.xml.text if legacy is not None else None
        )
        return LobbyEnabled((room or "").strip() or None, text)
    if condition == "service-unavailable":
        return RoomFull(text)
    if condition in ("not-allowed", "forbidden"):
        return NotAllowed(f"join refused: {condition}", condition, text)
    if condition == "not-acceptable" and error.get_plugin("displayname_required", check=True):
        return DisplayNameRequired("a display name is required", condition, text)
    return JoinError(f"join refused: {condition or 'unknown error'}", condition or None, text)
