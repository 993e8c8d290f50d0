"""What we tell Jicofo we can do: the disco#info answer and its XEP-0115 caps hash (sans-IO).

Jicofo learns a participant's capabilities only from disco#info (jingle.md §2.4) and caches the
answer per caps ``node#ver``; the ``ver`` we put in presence must therefore be computed from
exactly the identities and features we answer, never copied (a wrong ``ver`` can make Jicofo
reuse a browser's feature set).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from xmpp import stanzas

# Features (jingle.md §2.4 table, §12 step 4). Audio only: no video, no SCTP, no
# ssrc-rewriting, no tcc/remb/rtx/red (§8.2: without ssrc-rewriting Jicofo signals every
# remote audio SSRC with its owner in Jingle).
JINGLE = "urn:xmpp:jingle:1"
JINGLE_RTP = "urn:xmpp:jingle:apps:rtp:1"
JINGLE_RTP_AUDIO = "urn:xmpp:jingle:apps:rtp:audio"
JINGLE_ICE_UDP = "urn:xmpp:jingle:transports:ice-udp:1"
JINGLE_DTLS = "urn:xmpp:jingle:apps:dtls:0"
RTCP_MUX = "urn:ietf:rfc:5761"
BUNDLE = "urn:ietf:rfc:5888"
CAPS = "http://jabber.org/protocol/caps"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
SOURCE_NAME = "http://jitsi.org/source-name"
JINGLE_DTMF = "urn:xmpp:jingle:dtmf:0"
JIGASI = "http://jitsi.org/protocol/jigasi"
PING = "urn:xmpp:ping"
# Without it in disco Jicofo refuses to force-mute an occupant it detects as Jigasi (§9).
AUDIO_MUTE = "http://jitsi.org/protocol/audio-mute"

BASE_FEATURES: tuple[str, ...] = (
    JINGLE,
    JINGLE_RTP,
    JINGLE_RTP_AUDIO,
    JINGLE_ICE_UDP,
    JINGLE_DTLS,
    RTCP_MUX,
    BUNDLE,
    CAPS,
    DISCO_INFO,
    SOURCE_NAME,
    JINGLE_DTMF,
)

DEFAULT_CAPS_NODE = "https://github.com/pygasi/pygasi"


@dataclass(frozen=True, slots=True)
class Identity:
    """A disco#info ``<identity>`` (XEP-0030 §3.1)."""

    category: str
    type: str
    name: str = ""
    lang: str = ""


@dataclass(frozen=True, slots=True)
class DiscoInfo:
    identities: tuple[Identity, ...]
    features: tuple[str, ...]


GATEWAY_IDENTITY = Identity("client", "phone", "pygasi")


def gateway_disco_info(*, jigasi: bool = True, audio_mute: bool = True) -> DiscoInfo:
    """Our disco#info: the §12 step 4 features, plus the Jigasi marker and audio-mute (the
    issue asks for both; they only matter when Jicofo trusts our domain, jingle.md §9)."""
    features = list(BASE_FEATURES)
    if jigasi:
        features.append(JIGASI)
    if audio_mute:
        features.append(AUDIO_MUTE)
    return DiscoInfo((GATEWAY_IDENTITY,), tuple(features))


def verification_string(info: DiscoInfo) -> str:
    """The XEP-0115 §5.1 string S: identities ``category/type/lang/name<`` sorted by
    category, type, lang then name; then features ``var<`` sorted (octet order, §5.4 step 3);
    no data forms (we answer none)."""
    if len(set(info.features)) != len(info.features):
        raise ValueError("duplicate disco#info feature")  # §5.4: such an answer is invalid
    if len(set(info.identities)) != len(info.identities):
        raise ValueError("duplicate disco#info identity")
    identities = sorted(
        info.identities,
        key=lambda i: (i.category.encode(), i.type.encode(), i.lang.encode(), i.name.encode()),
    )
    parts = [f"{i.category}/{i.type}/{i.lang}/{i.name}<" for i in identities]
    parts += [f"{f}<" for f in sorted(info.features, key=str.encode)]
    return "".join(parts)


def caps_ver(info: DiscoInfo) -> str:
    """``ver``: base64 of the SHA-1 of the verification string (XEP-0115 §5.1 steps 7-8)."""
    digest = hashlib.sha1(verification_string(info).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def fill_disco_info(query: stanzas.DiscoInfoQuery, info: DiscoInfo) -> None:
    """Write ``info`` into a disco#info result ``<query>`` (XEP-0030 §3.1)."""
    for identity in info.identities:
        element = stanzas.DiscoIdentity()
        element["category"] = identity.category
        element["type"] = identity.type
        if identity.name:
            element["name"] = identity.name
        if identity.lang:
            element.set_lang(identity.lang)
        query.append(element)
    for feature in info.features:
        item = stanzas.DiscoFeature()
        item["var"] = feature
        query.append(item)
