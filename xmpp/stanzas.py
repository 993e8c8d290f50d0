"""slixmpp stanza classes for what Jitsi puts on the wire: one `ElementBase` per XML element,
registered on its parent once, at import (slixmpp's own plugins are not loaded by pygasi).

Element names, namespaces and attributes follow reference/jingle.md §2-§7 (from
jitsi-xmpp-extensions) to the attribute: Jingle (XEP-0166) with RTP (XEP-0167), ICE-UDP
(XEP-0176), DTLS (XEP-0320), header extensions (XEP-0294), source-specific media (XEP-0339),
grouping (XEP-0338), Jitsi's ``ssrc-info``/``bridge-session``/``json-message``; the focus
conference IQ; the mute IQ; the MUC join and occupant presence extensions (XEP-0045, XEP-0115,
XEP-0172, Jitsi's ``SourceInfo``/``audiomuted``/``features``); disco#info (XEP-0030); XEP-0199
ping; Rayo ``dial``/``hangup``/``ref`` (XEP-0327 as Jitsi uses it, jigasi.md §3.3-§3.5) and the
brewery's colibri ``<stats>`` presence (jigasi.md §3.2).

The classes only map XML; reading values with validation and building whole stanzas from
values is done in `xmpp.jingle`, `xmpp.presence`, `xmpp.focus`, `xmpp.rayo` and `xmpp.brewery`.
"""

from __future__ import annotations

from typing import ClassVar

from slixmpp import Iq, Message, Presence
from slixmpp.stanza import Error
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

# --- namespaces ---------------------------------------------------------------------------------

NS_CLIENT = "jabber:client"
NS_JINGLE = "urn:xmpp:jingle:1"
NS_JINGLE_ERRORS = "urn:xmpp:jingle:errors:1"
NS_RTP = "urn:xmpp:jingle:apps:rtp:1"
NS_RTCP_FB = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0"
NS_RTP_HDREXT = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"
NS_SSMA = "urn:xmpp:jingle:apps:rtp:ssma:0"
NS_ICE_UDP = "urn:xmpp:jingle:transports:ice-udp:1"
NS_DTLS = "urn:xmpp:jingle:apps:dtls:0"
NS_GROUPING = "urn:xmpp:jingle:apps:grouping:0"
NS_JITMEET = "http://jitsi.org/jitmeet"
NS_FOCUS = "http://jitsi.org/protocol/focus"
NS_COLIBRI = "http://jitsi.org/protocol/colibri"
NS_START_MUTED = "http://jitsi.org/jitmeet/start-muted"
NS_MUTE_AUDIO = "http://jitsi.org/jitmeet/audio"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_NICK = "http://jabber.org/protocol/nick"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA_FORMS = "jabber:x:data"
NS_PING = "urn:xmpp:ping"
NS_RAYO = "urn:xmpp:rayo:1"


class _Text(ElementBase):
    """An element whose text is its value (``value`` interface)."""

    interfaces: ClassVar[set[str]] = {"value"}

    def get_value(self) -> str:
        return self.xml.text or ""

    def set_value(self, value: str) -> None:
        self.xml.text = value

    def del_value(self) -> None:
        self.xml.text = None


# --- Jingle (XEP-0166) ---------------------------------------------------------------------------


class Jingle(ElementBase):
    """``<jingle xmlns="urn:xmpp:jingle:1" action sid initiator responder>`` (jingle.md §3.1)."""

    name = "jingle"
    namespace = NS_JINGLE
    plugin_attrib = "jingle"
    interfaces: ClassVar[set[str]] = {"action", "sid", "initiator", "responder"}


class Content(ElementBase):
    """``<content creator name senders>``."""

    name = "content"
    namespace = NS_JINGLE
    plugin_attrib = "content"
    plugin_multi_attrib = "contents"
    interfaces: ClassVar[set[str]] = {"creator", "name", "senders", "disposition"}


class Reason(ElementBase):
    """``<reason>`` with one condition child (XEP-0166 §7.4) and an optional ``<text>``."""

    name = "reason"
    namespace = NS_JINGLE
    plugin_attrib = "reason"
    interfaces: ClassVar[set[str]] = {"condition", "text"}
    sub_interfaces: ClassVar[set[str]] = {"text"}
    conditions: ClassVar[frozenset[str]] = frozenset(
        {
            "alternative-session",
            "busy",
            "cancel",
            "connectivity-error",
            "decline",
            "expired",
            "failed-application",
            "failed-transport",
            "general-error",
            "gone",
            "incompatible-parameters",
            "media-error",
            "security-error",
            "success",
            "timeout",
            "unsupported-applications",
            "unsupported-transports",
        }
    )

    def get_condition(self) -> str:
        for child in self.xml:
            tag = child.tag.split("}", 1)[-1]
            if tag != "text" and child.tag.startswith("{" + NS_JINGLE + "}"):
                return tag
        return ""

    def set_condition(self, value: str) -> None:
        self.del_condition()
        if value:
            self.xml.insert(0, self.xml.makeelement(f"{{{NS_JINGLE}}}{value}", {}))

    def del_condition(self) -> None:
        for child in list(self.xml):
            if child.tag != f"{{{NS_JINGLE}}}text" and child.tag.startswith("{" + NS_JINGLE + "}"):
                self.xml.remove(child)


class UnknownSession(ElementBase):
    """``<unknown-session xmlns="urn:xmpp:jingle:errors:1"/>`` inside an ``item-not-found``
    error: a Jingle action for a sid we do not know (XEP-0166 §10)."""

    name = "unknown-session"
    namespace = NS_JINGLE_ERRORS
    plugin_attrib = "unknown_session"


# --- RTP description (XEP-0167, XEP-0293, XEP-0294, XEP-0339) ------------------------------------


class Description(ElementBase):
    """``<description xmlns="urn:xmpp:jingle:apps:rtp:1" media maxptime ssrc>``."""

    name = "description"
    namespace = NS_RTP
    plugin_attrib = "description"
    interfaces: ClassVar[set[str]] = {"media", "maxptime", "ssrc"}


class PayloadType(ElementBase):
    """``<payload-type id name clockrate channels maxptime ptime>``."""

    name = "payload-type"
    namespace = NS_RTP
    plugin_attrib = "payload_type"
    plugin_multi_attrib = "payload_types"
    interfaces: ClassVar[set[str]] = {"id", "name", "clockrate", "channels", "maxptime", "ptime"}


class Parameter(ElementBase):
    """``<parameter name value>`` of a payload type (an fmtp parameter, XEP-0167 §4)."""

    name = "parameter"
    namespace = NS_RTP
    plugin_attrib = "parameter"
    plugin_multi_attrib = "parameters"
    interfaces: ClassVar[set[str]] = {"name", "value"}


class RtcpFb(ElementBase):
    """``<rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type subtype>`` (XEP-0293)."""

    name = "rtcp-fb"
    namespace = NS_RTCP_FB
    plugin_attrib = "rtcp_fb"
    plugin_multi_attrib = "rtcp_fbs"
    interfaces: ClassVar[set[str]] = {"type", "subtype"}


class RtpHdrext(ElementBase):
    """``<rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id uri senders>``."""

    name = "rtp-hdrext"
    namespace = NS_RTP_HDREXT
    plugin_attrib = "rtp_hdrext"
    plugin_multi_attrib = "rtp_hdrexts"
    interfaces: ClassVar[set[str]] = {"id", "uri", "senders"}


class ExtmapAllowMixed(ElementBase):
    """``<extmap-allow-mixed xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"/>`` (RFC 8285)."""

    name = "extmap-allow-mixed"
    namespace = NS_RTP_HDREXT
    plugin_attrib = "extmap_allow_mixed"


class RtcpMux(ElementBase):
    """``<rtcp-mux/>`` in a description (RFC 5761; Jicofo adds it to every description)."""

    name = "rtcp-mux"
    namespace = NS_RTP
    plugin_attrib = "rtcp_mux"


class Source(ElementBase):
    """``<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc name videoType>`` (XEP-0339)."""

    name = "source"
    namespace = NS_SSMA
    plugin_attrib = "source"
    plugin_multi_attrib = "sources"
    interfaces: ClassVar[set[str]] = {"ssrc", "name", "videoType", "rid"}


class SourceParameter(ElementBase):
    """``<parameter name value>`` of a source (``msid``, ``cname``). Jicofo accepts it in the
    ssma:0 or the rtp:1 namespace (jingle.md §4.2); we send ssma:0 (inherited from <source>)."""

    name = "parameter"
    namespace = NS_SSMA
    plugin_attrib = "source_parameter"
    plugin_multi_attrib = "source_parameters"
    interfaces: ClassVar[set[str]] = {"name", "value"}


class LegacySourceParameter(SourceParameter):
    """The same parameter in the rtp:1 namespace, as older producers write it."""

    namespace = NS_RTP
    plugin_attrib = "legacy_source_parameter"
    plugin_multi_attrib = "legacy_source_parameters"


class SsrcInfo(ElementBase):
    """``<ssrc-info xmlns="http://jitsi.org/jitmeet" owner>``: the endpoint id (MUC nick) or
    occupant JID owning a source (jingle.md §3.1)."""

    name = "ssrc-info"
    namespace = NS_JITMEET
    plugin_attrib = "ssrc_info"
    interfaces: ClassVar[set[str]] = {"owner"}


class SsrcGroup(ElementBase):
    """``<ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics>`` with ``<source ssrc>``
    children (FID/SIM: video only, ignored by an audio leg but parsed)."""

    name = "ssrc-group"
    namespace = NS_SSMA
    plugin_attrib = "ssrc_group"
    plugin_multi_attrib = "ssrc_groups"
    interfaces: ClassVar[set[str]] = {"semantics"}


# --- ICE-UDP transport (XEP-0176) and DTLS (XEP-0320) -------------------------------------------


class Transport(ElementBase):
    """``<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag pwd>``."""

    name = "transport"
    namespace = NS_ICE_UDP
    plugin_attrib = "transport"
    interfaces: ClassVar[set[str]] = {"ufrag", "pwd", "ice-generation"}


class Candidate(ElementBase):
    """``<candidate component foundation generation id ip network port priority protocol type
    rel-addr rel-port tcptype>``."""

    name = "candidate"
    namespace = NS_ICE_UDP
    plugin_attrib = "candidate"
    plugin_multi_attrib = "candidates"
    interfaces: ClassVar[set[str]] = {
        "component",
        "foundation",
        "generation",
        "id",
        "ip",
        "network",
        "port",
        "priority",
        "protocol",
        "type",
        "rel-addr",
        "rel-port",
        "tcptype",
    }


class Fingerprint(_Text):
    """``<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash setup cryptex>HEX</fingerprint>``."""

    name = "fingerprint"
    namespace = NS_DTLS
    plugin_attrib = "fingerprint"
    plugin_multi_attrib = "fingerprints"
    interfaces: ClassVar[set[str]] = {"hash", "setup", "cryptex", "value"}


class TransportRtcpMux(ElementBase):
    """``<rtcp-mux/>`` inside the ICE transport (JVB puts it there too, jingle.md §3.1)."""

    name = "rtcp-mux"
    namespace = NS_ICE_UDP
    plugin_attrib = "rtcp_mux"


class WebSocket(ElementBase):
    """``<web-socket xmlns="http://jitsi.org/protocol/colibri" url>``: the bridge channel."""

    name = "web-socket"
    namespace = NS_COLIBRI
    plugin_attrib = "web_socket"
    interfaces: ClassVar[set[str]] = {"url"}


# --- session-level children of <jingle> ---------------------------------------------------------


class Group(ElementBase):
    """``<group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE">`` (XEP-0338)."""

    name = "group"
    namespace = NS_GROUPING
    plugin_attrib = "group"
    interfaces: ClassVar[set[str]] = {"semantics"}


class GroupContent(ElementBase):
    """``<content name>`` inside a group."""

    name = "content"
    namespace = NS_GROUPING
    plugin_attrib = "group_content"
    plugin_multi_attrib = "group_contents"
    interfaces: ClassVar[set[str]] = {"name"}


class BridgeSession(ElementBase):
    """``<bridge-session xmlns="http://jitsi.org/protocol/focus" id region restart>``: echo
    its id when asking for a restart (jingle.md §3.1, §6)."""

    name = "bridge-session"
    namespace = NS_FOCUS
    plugin_attrib = "bridge_session"
    interfaces: ClassVar[set[str]] = {"id", "region", "restart", "ice-restart"}


class JsonMessage(_Text):
    """``<json-message xmlns="http://jitsi.org/jitmeet">`` carrying JSON-encoded sources when
    the participant advertised ``json-encoded-sources`` (jingle.md §3.1)."""

    name = "json-message"
    namespace = NS_JITMEET
    plugin_attrib = "json_message"


class StartMuted(ElementBase):
    """``<startmuted xmlns="http://jitsi.org/jitmeet/start-muted" audio video>``."""

    name = "startmuted"
    namespace = NS_START_MUTED
    plugin_attrib = "startmuted"
    interfaces: ClassVar[set[str]] = {"audio", "video"}


# --- focus conference IQ (jingle.md §2.2) and mute IQ (§7) --------------------------------------


class Conference(ElementBase):
    """``<conference xmlns="http://jitsi.org/protocol/focus" room machine-uid ready focusjid
    session-id vnode>``."""

    name = "conference"
    namespace = NS_FOCUS
    plugin_attrib = "focus_conference"
    interfaces: ClassVar[set[str]] = {
        "room",
        "machine-uid",
        "ready",
        "focusjid",
        "session-id",
        "vnode",
        "token",
    }


class ConferenceProperty(ElementBase):
    """``<property name value>`` of a conference IQ."""

    name = "property"
    namespace = NS_FOCUS
    plugin_attrib = "property"
    plugin_multi_attrib = "properties"
    interfaces: ClassVar[set[str]] = {"name", "value"}


class Mute(_Text):
    """``<mute xmlns="http://jitsi.org/jitmeet/audio" jid actor>true</mute>``."""

    name = "mute"
    namespace = NS_MUTE_AUDIO
    plugin_attrib = "mute"
    interfaces: ClassVar[set[str]] = {"jid", "actor", "value"}


# --- disco#info (XEP-0030) and ping (XEP-0199) --------------------------------------------------


class DiscoInfoQuery(ElementBase):
    """``<query xmlns="http://jabber.org/protocol/disco#info" node>``."""

    name = "query"
    namespace = NS_DISCO_INFO
    plugin_attrib = "disco_info_query"
    interfaces: ClassVar[set[str]] = {"node"}


class DiscoIdentity(ElementBase):
    name = "identity"
    namespace = NS_DISCO_INFO
    plugin_attrib = "identity"
    plugin_multi_attrib = "identities"
    interfaces: ClassVar[set[str]] = {"category", "type", "name", "lang"}

    def get_lang(self, lang: str | None = None) -> str:
        return str(self.xml.attrib.get("{http://www.w3.org/XML/1998/namespace}lang", ""))

    def set_lang(self, lang: str | None) -> None:
        if lang:
            self.xml.attrib["{http://www.w3.org/XML/1998/namespace}lang"] = lang


class DiscoFeature(ElementBase):
    name = "feature"
    namespace = NS_DISCO_INFO
    plugin_attrib = "disco_feature"
    plugin_multi_attrib = "disco_features"
    interfaces: ClassVar[set[str]] = {"var"}


class Ping(ElementBase):
    """``<ping xmlns="urn:xmpp:ping"/>`` (XEP-0199)."""

    name = "ping"
    namespace = NS_PING
    plugin_attrib = "xmpp_ping"


# --- MUC (XEP-0045) -------------------------------------------------------------------------------


class MucJoin(ElementBase):
    """``<x xmlns="http://jabber.org/protocol/muc">`` of the join presence (first one only)."""

    name = "x"
    namespace = NS_MUC
    plugin_attrib = "muc_join"
    interfaces: ClassVar[set[str]] = {"password"}
    sub_interfaces: ClassVar[set[str]] = {"password"}


class MucHistory(ElementBase):
    """``<history maxstanzas="0"/>``: no room history for a gateway."""

    name = "history"
    namespace = NS_MUC
    plugin_attrib = "history"
    interfaces: ClassVar[set[str]] = {"maxstanzas", "maxchars", "seconds", "since"}


class MucUser(ElementBase):
    """``<x xmlns="http://jabber.org/protocol/muc#user">`` of occupant presence."""

    name = "x"
    namespace = NS_MUC_USER
    plugin_attrib = "muc_user"


class MucItem(ElementBase):
    """``<item affiliation role jid nick>`` with optional ``<reason>`` and ``<actor>``."""

    name = "item"
    namespace = NS_MUC_USER
    plugin_attrib = "muc_item"
    interfaces: ClassVar[set[str]] = {"affiliation", "role", "jid", "nick", "reason"}
    sub_interfaces: ClassVar[set[str]] = {"reason"}


class MucActor(ElementBase):
    name = "actor"
    namespace = NS_MUC_USER
    plugin_attrib = "muc_actor"
    interfaces: ClassVar[set[str]] = {"jid", "nick"}


class MucStatus(ElementBase):
    """``<status code>`` (XEP-0045 §15.6: 110 self, 201 created, 307 kicked, 301 banned, ...)."""

    name = "status"
    namespace = NS_MUC_USER
    plugin_attrib = "muc_status"
    plugin_multi_attrib = "muc_statuses"
    interfaces: ClassVar[set[str]] = {"code"}


class MucDestroy(ElementBase):
    """``<destroy jid>`` with an optional ``<reason>`` (room destroyed, XEP-0045 §10.9)."""

    name = "destroy"
    namespace = NS_MUC_USER
    plugin_attrib = "muc_destroy"
    interfaces: ClassVar[set[str]] = {"jid", "reason"}
    sub_interfaces: ClassVar[set[str]] = {"reason"}


class MucOwnerQuery(ElementBase):
    """``<query xmlns="http://jabber.org/protocol/muc#owner">`` (room configuration)."""

    name = "query"
    namespace = NS_MUC_OWNER
    plugin_attrib = "muc_owner_query"


class DataForm(ElementBase):
    """``<x xmlns="jabber:x:data" type>`` (XEP-0004), only as the room-config submit."""

    name = "x"
    namespace = NS_DATA_FORMS
    plugin_attrib = "data_form"
    interfaces: ClassVar[set[str]] = {"type"}


class DataField(ElementBase):
    name = "field"
    namespace = NS_DATA_FORMS
    plugin_attrib = "data_field"
    plugin_multi_attrib = "data_fields"
    interfaces: ClassVar[set[str]] = {"var", "type", "value"}
    sub_interfaces: ClassVar[set[str]] = {"value"}


# --- Jitsi presence extensions (jingle.md §2.3, jigasi.md §2.2) ---------------------------------


class Nick(_Text):
    """``<nick xmlns="http://jabber.org/protocol/nick">`` (XEP-0172): the display name."""

    name = "nick"
    namespace = NS_NICK
    plugin_attrib = "display_name"


class Caps(ElementBase):
    """``<c xmlns="http://jabber.org/protocol/caps" hash node ver>`` (XEP-0115)."""

    name = "c"
    namespace = NS_CAPS
    plugin_attrib = "entity_caps"
    interfaces: ClassVar[set[str]] = {"hash", "node", "ver", "ext"}


class SourceInfo(_Text):
    """``<SourceInfo>{"<nick>-a0":{"muted":false}}</SourceInfo>`` (no namespace of its own)."""

    name = "SourceInfo"
    namespace = NS_CLIENT
    plugin_attrib = "source_info"


class AudioMuted(_Text):
    """Legacy ``<audiomuted>true|false</audiomuted>`` (what Jigasi sends, jingle.md §2.3)."""

    name = "audiomuted"
    namespace = NS_CLIENT
    plugin_attrib = "audiomuted"


class VideoMuted(_Text):
    name = "videomuted"
    namespace = NS_CLIENT
    plugin_attrib = "videomuted"


class Features(ElementBase):
    """``<features>`` of presence (not disco): the Jigasi marker, the dial pad (§2.3)."""

    name = "features"
    namespace = NS_CLIENT
    plugin_attrib = "jitsi_features"


class Feature(ElementBase):
    name = "feature"
    namespace = NS_CLIENT
    plugin_attrib = "jitsi_feature"
    plugin_multi_attrib = "jitsi_feature_list"
    interfaces: ClassVar[set[str]] = {"var"}


class StatsId(_Text):
    name = "stats-id"
    namespace = NS_CLIENT
    plugin_attrib = "stats_id"


class Region(_Text):
    """``<jitsi_participant_region>``: read by Jicofo for bridge and Jigasi selection."""

    name = "jitsi_participant_region"
    namespace = NS_CLIENT
    plugin_attrib = "jitsi_region"


class LobbyRoom(_Text):
    """``<lobbyroom xmlns="http://jitsi.org/jitmeet">room@lobby…</lobbyroom>`` inside the
    ``registration-required`` error of a lobby-enabled room (jigasi.md §1.6)."""

    name = "lobbyroom"
    namespace = NS_JITMEET
    plugin_attrib = "lobbyroom"


class LegacyLobbyRoom(LobbyRoom):
    """The legacy place: a ``jabber:client`` child of the error presence itself."""

    namespace = NS_CLIENT
    plugin_attrib = "legacy_lobbyroom"


class DisplayNameRequired(ElementBase):
    """``<displayname-required xmlns="http://jitsi.org/jitmeet"/>`` in a lobby join error."""

    name = "displayname-required"
    namespace = NS_JITMEET
    plugin_attrib = "displayname_required"


# --- Rayo (XEP-0327) as Jitsi uses it: dial-out and hang-up (jigasi.md §3.3-§3.5) --------------


class RayoDial(ElementBase):
    """``<dial xmlns="urn:xmpp:rayo:1" to from>`` with ``<header name value>`` children
    (lib-jitsi-meet's ``strophe.rayo``, forwarded by Jicofo; jigasi.md §3.3)."""

    name = "dial"
    namespace = NS_RAYO
    plugin_attrib = "rayo_dial"
    interfaces: ClassVar[set[str]] = {"to", "from"}


class RayoHeader(ElementBase):
    """``<header name value>`` of a dial (``JvbRoomName``, ``JvbRoomPassword``, SIP headers)
    or of a hangup."""

    name = "header"
    namespace = NS_RAYO
    plugin_attrib = "rayo_header"
    plugin_multi_attrib = "rayo_headers"
    interfaces: ClassVar[set[str]] = {"name", "value"}


class RayoHangup(ElementBase):
    """``<hangup xmlns="urn:xmpp:rayo:1"/>``, sent to the ``ref`` occupant JID (§3.5)."""

    name = "hangup"
    namespace = NS_RAYO
    plugin_attrib = "rayo_hangup"


class RayoRef(ElementBase):
    """``<ref xmlns="urn:xmpp:rayo:1" uri="xmpp:room@conference…/nick"/>``: the dial result."""

    name = "ref"
    namespace = NS_RAYO
    plugin_attrib = "rayo_ref"
    interfaces: ClassVar[set[str]] = {"uri"}


# --- brewery stats presence (jigasi.md §3.2) ----------------------------------------------------


class ColibriStats(ElementBase):
    """``<stats xmlns="http://jitsi.org/protocol/colibri">`` in a brewery occupant's presence."""

    name = "stats"
    namespace = NS_COLIBRI
    plugin_attrib = "colibri_stats"


class ColibriStat(ElementBase):
    """``<stat name value/>``."""

    name = "stat"
    namespace = NS_COLIBRI
    plugin_attrib = "colibri_stat"
    plugin_multi_attrib = "colibri_stat_list"
    interfaces: ClassVar[set[str]] = {"name", "value"}


# --- registration (once) -----------------------------------------------------------------------


def _register() -> None:
    register_stanza_plugin(Iq, Jingle)
    register_stanza_plugin(Jingle, Content, iterable=True)
    register_stanza_plugin(Jingle, Reason)
    register_stanza_plugin(Jingle, Group)
    register_stanza_plugin(Jingle, BridgeSession)
    register_stanza_plugin(Jingle, JsonMessage)
    register_stanza_plugin(Jingle, StartMuted)
    register_stanza_plugin(Group, GroupContent, iterable=True)
    register_stanza_plugin(Content, Description)
    register_stanza_plugin(Content, Transport)
    register_stanza_plugin(Content, Source, iterable=True)  # sources may sit under <content>
    register_stanza_plugin(Content, SsrcGroup, iterable=True)
    register_stanza_plugin(Description, PayloadType, iterable=True)
    register_stanza_plugin(Description, RtpHdrext, iterable=True)
    register_stanza_plugin(Description, ExtmapAllowMixed)
    register_stanza_plugin(Description, RtcpMux)
    register_stanza_plugin(Description, RtcpFb, iterable=True)
    register_stanza_plugin(Description, Source, iterable=True)
    register_stanza_plugin(Description, SsrcGroup, iterable=True)
    register_stanza_plugin(PayloadType, Parameter, iterable=True)
    register_stanza_plugin(PayloadType, RtcpFb, iterable=True)
    register_stanza_plugin(Source, SourceParameter, iterable=True)
    register_stanza_plugin(Source, LegacySourceParameter, iterable=True)
    register_stanza_plugin(Source, SsrcInfo)
    register_stanza_plugin(SsrcGroup, Source, iterable=True)
    register_stanza_plugin(Transport, Candidate, iterable=True)
    register_stanza_plugin(Transport, Fingerprint, iterable=True)
    register_stanza_plugin(Transport, TransportRtcpMux)
    register_stanza_plugin(Transport, WebSocket)
    register_stanza_plugin(Error, UnknownSession)
    register_stanza_plugin(Error, LobbyRoom)
    register_stanza_plugin(Error, DisplayNameRequired)

    register_stanza_plugin(Iq, Conference)
    register_stanza_plugin(Conference, ConferenceProperty, iterable=True)
    register_stanza_plugin(Iq, Mute)
    register_stanza_plugin(Iq, DiscoInfoQuery)
    register_stanza_plugin(DiscoInfoQuery, DiscoIdentity, iterable=True)
    register_stanza_plugin(DiscoInfoQuery, DiscoFeature, iterable=True)
    register_stanza_plugin(Iq, Ping)
    register_stanza_plugin(Iq, MucOwnerQuery)
    register_stanza_plugin(MucOwnerQuery, DataForm)
    register_stanza_plugin(DataForm, DataField, iterable=True)

    register_stanza_plugin(Presence, MucJoin)
    register_stanza_plugin(MucJoin, MucHistory)
    register_stanza_plugin(Presence, MucUser)
    register_stanza_plugin(MucUser, MucItem)
    register_stanza_plugin(MucItem, MucActor)
    register_stanza_plugin(MucUser, MucStatus, iterable=True)
    register_stanza_plugin(MucUser, MucDestroy)
    register_stanza_plugin(Message, MucUser)
    register_stanza_plugin(Presence, Nick)
    register_stanza_plugin(Presence, Caps)
    register_stanza_plugin(Presence, SourceInfo)
    register_stanza_plugin(Presence, AudioMuted)
    register_stanza_plugin(Presence, VideoMuted)
    register_stanza_plugin(Presence, Features)
    register_stanza_plugin(Features, Feature, iterable=True)
    register_stanza_plugin(Presence, StatsId)
    register_stanza_plugin(Presence, Region)
    register_stanza_plugin(Presence, LegacyLobbyRoom)

    register_stanza_plugin(Iq, RayoDial)
    register_stanza_plugin(RayoDial, RayoHeader, iterable=True)
    register_stanza_plugin(Iq, RayoHangup)
    register_stanza_plugin(RayoHangup, RayoHeader, iterable=True)
    register_stanza_plugin(Iq, RayoRef)
    register_stanza_plugin(Presence, ColibriStats)
    register_stanza_plugin(ColibriStats, ColibriStat, iterable=True)


_register()
