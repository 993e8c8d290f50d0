"""RFC 3264 offer/answer for the one audio stream of a SIP call (sans-IO).

A :class:`MediaNegotiator` belongs to one call. It answers offers, makes offers and takes
answers, and remembers what it sent so that re-offers follow RFC 3264 §8: the ``o=`` session id
stays for the call, and the version goes up by one exactly when our SDP changes (so an
identical re-offer, such as a session-refresh re-INVITE, gets the identical answer back).

The outcome of a negotiation is a :class:`NegotiatedStream`, a plain value the gateway maps onto
the media layer (this module imports nothing from ``media/``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sip.sdp import (
    Attribute,
    Connection,
    Crypto,
    CryptoKey,
    Direction,
    Fmtp,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SessionDescription,
    Timing,
    address_type,
)

__all__ = [
    "SRTP_KEY_LENGTH",
    "SRTP_SUITES",
    "SUPPORTED_CODECS",
    "Direction",
    "MediaNegotiator",
    "NegotiatedCodec",
    "NegotiatedStream",
    "NegotiationError",
    "OfferAnswerConfig",
    "SrtpKeys",
    "SrtpMode",
    "TelephoneEvent",
]


# --- errors ----------------------------------------------------------------------------------

_REASON_PHRASES = {400: "Bad Request", 488: "Not Acceptable Here", 491: "Request Pending"}


class NegotiationError(ValueError):
    """An offer or answer we cannot accept.

    ``status`` is the SIP response to send to an offer that raised it (488 unless stated),
    ``reason`` a reason phrase with the detail (``"Not Acceptable Here: no common codec
    (offered G729)"``), ``detail`` the detail alone and ``warning_code`` the RFC 3261 §20.43
    Warning code that fits it (see :meth:`warning`).
    """

    def __init__(self, detail: str, *, status: int = 488, warning_code: int = 304) -> None:
        self.detail = detail
        self.status = status
        self.warning_code = warning_code
        self.reason = f"{_REASON_PHRASES.get(status, 'Not Acceptable Here')}: {detail}"
        super().__init__(self.reason)

    def warning(self, agent: str = "pygasi") -> str:
        """A Warning header value (RFC 3261 §20.43): ``305 pygasi "no common codec ..."``."""
        text = self.detail.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.warning_code} {agent} "{text}"'


# RFC 3261 §20.43 warning codes used below.
_W_NETWORK_PROTOCOL = 300  # e.g. an addrtype we cannot reach
_W_ADDRESS_FORMAT = 301  # IP4 vs IP6
_W_TRANSPORT = 302  # RTP/AVP vs RTP/SAVP, DTLS
_W_MEDIA_TYPE = 304  # no (usable) audio stream
_W_MEDIA_FORMAT = 305  # no common codec
_W_ATTRIBUTE = 306  # a=crypto we cannot use


# --- configuration ---------------------------------------------------------------------------


class SrtpMode(StrEnum):
    """SDES-SRTP (RFC 4568) policy."""

    DISABLED = "disabled"  # plain RTP only: an RTP/SAVP offer is refused
    # Answer RTP/SAVP with SRTP and RTP/AVP with RTP; offer plain RTP/AVP: a peer without
    # SRTP refuses an RTP/SAVP offer outright (488), and "best effort" a=crypto on RTP/AVP is
    # not in RFC 4568. Dial-out to an SRTP-only trunk takes REQUIRED.
    OPTIONAL = "optional"
    REQUIRED = "required"  # an RTP/AVP offer gets 488; offer RTP/SAVP


# Preferred first. Both take a 30-byte master key||salt and are libsrtp (pylibsrtp) profiles.
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
SRTP_KEY_LENGTH = 30  # 128-bit master key + 112-bit master salt (RFC 4568 §6.2.1)


@dataclass(frozen=True)
class _CodecSpec:
    name: str
    clock_rate: int  # the RTP clock, not the audio sample rate
    channels: int
    static_pt: int | None
    fmtp: str | None = None


_CODECS: dict[str, _CodecSpec] = {
    # RFC 7587 §7: always opus/48000/2 in the rtpmap, whatever is actually sent.
    "opus": _CodecSpec("opus", 48000, 2, None, "minptime=10;useinbandfec=1"),
    # RFC 3551 §4.5.2: 16 kHz audio on an 8000 Hz RTP clock (an error kept for compatibility).
    "G722": _CodecSpec("G722", 8000, 1, 9),
    "PCMU": _CodecSpec("PCMU", 8000, 1, 0),
    "PCMA": _CodecSpec("PCMA", 8000, 1, 8),
}
SUPPORTED_CODECS = tuple(_CODECS)

# RFC 3551 §6 table 4: static audio payload types, to recognise formats offered without rtpmap
# (name, clock rate, channels).
_STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

_TELEPHONE_EVENT = "telephone-event"
# RFC 4733: events 0-15 are the DTMF digits, 16 is flash; the default when no fmtp is 0-15.
_OUR_EVENTS = frozenset(range(17))
_DEFAULT_EVENTS = frozenset(range(16))
_PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
_SECURE_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})


@dataclass(frozen=True)
class OfferAnswerConfig:
    """What we support and prefer; shared by all calls."""

    codecs: tuple[str, ...] = SUPPORTED_CODECS  # preference order, names from SUPPORTED_CODECS
    srtp: SrtpMode = SrtpMode.DISABLED
    srtp_suites: tuple[str, ...] = SRTP_SUITES  # preference order
    rtcp_mux: bool = True  # offer RFC 5761 rtcp-mux, and accept it when offered
    ptime: int = 20  # the packetisation we send and ask for (ms)
    username: str = "pygasi"  # o= username
    session_name: str = "pygasi"  # s=
    opus_payload_type: int = 111
    telephone_event_payload_type: int = 101  # telephone-event/8000 in our offers
    telephone_event_48k_payload_type: int = 110  # telephone-event/48000 (with opus)

    def __post_init__(self) -> None:
        names = {name.lower(): name for name in _CODECS}
        codecs = []
        for codec in self.codecs:
            canonical = names.get(codec.lower())
            if canonical is None:
                raise ValueError(f"unsupported codec {codec!r} (known: {SUPPORTED_CODECS})")
            if canonical in codecs:
                raise ValueError(f"codec {canonical!r} listed twice")
            codecs.append(canonical)
        if not codecs:
            raise ValueError("no codecs configured")
        object.__setattr__(self, "codecs", tuple(codecs))
        if not self.srtp_suites or any(s not in SRTP_SUITES for s in self.srtp_suites):
            raise ValueError(f"srtp_suites must be taken from {SRTP_SUITES}")
        dynamic = (
            self.opus_payload_type,
            self.telephone_event_payload_type,
            self.telephone_event_48k_payload_type,
        )
        if len(set(dynamic)) != 3 or any(not 96 <= pt <= 127 for pt in dynamic):
            raise ValueError("dynamic payload types must be distinct and in 96-127")
        if not 1 <= self.ptime <= 200:
            raise ValueError("ptime must be 1-200 ms")


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NegotiatedCodec:
    """The one audio codec of the stream.

    ``payload_type`` is what we send with (the number the remote's SDP gave it),
    ``recv_payload_type`` what the remote sends with (the number in our SDP); they are equal
    whenever we answered. ``fmtp`` holds the remote's format parameters, which say how it wants
    to receive (e.g. opus ``maxplaybackrate``).
    """

    name: str  # canonical: "opus", "G722", "PCMU", "PCMA"
    payload_type: int
    recv_payload_type: int
    clock_rate: int  # RTP clock (8000 for G.722)
    channels: int
    fmtp: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TelephoneEvent:
    """RFC 4733 events on the stream, at the audio codec's clock rate."""

    payload_type: int  # we send with
    recv_payload_type: int  # the remote sends with
    clock_rate: int
    events: frozenset[int]  # event codes both sides accept


@dataclass(frozen=True)
class SrtpKeys:
    """SDES keys as libsrtp takes them: the RFC 4568 suite name and, per direction, the 30-byte
    master key||salt (``local_key`` protects what we send, ``remote_key`` what we receive)."""

    suite: str
    local_key: bytes
    remote_key: bytes


@dataclass(frozen=True)
class NegotiatedStream:
    """Everything the media layer needs for the call's audio after one offer/answer."""

    remote_address: str
    remote_port: int
    remote_rtcp_address: str
    remote_rtcp_port: int  # equals remote_port when rtcp_mux
    rtcp_mux: bool
    codec: NegotiatedCodec
    telephone_event: TelephoneEvent | None
    ptime: int  # ms of audio per packet we send
    remote_ptime: int | None  # the remote's a=ptime, if any
    direction: Direction  # ours: SENDONLY means we send and do not receive
    srtp: SrtpKeys | None

    @property
    def may_send(self) -> bool:
        return self.direction.sends

    @property
    def should_receive(self) -> bool:
        return self.direction.receives


# --- negotiation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Format:
    """One offered/answered payload type, identified."""

    payload_type: int
    name: str  # as written in the rtpmap, or the static name, or the number
    clock_rate: int
    channels: int
    codec: str | None  # our canonical codec name, if it is one of ours


@dataclass(frozen=True)
class _Accepted:
    """An offered audio stream we can use, with everything chosen."""

    index: int
    media: MediaDescription
    codec: _Format
    spec: _CodecSpec
    telephone_event: _Format | None
    events: frozenset[int]
    crypto: Crypto | None
    stream: NegotiatedStream


def _identify(pt: int, rtpmaps: dict[int, RtpMap]) -> _Format:
    rtpmap = rtpmaps.get(pt)
    if rtpmap is not None:
        name, clock, channels = rtpmap.encoding, rtpmap.clock_rate, rtpmap.channel_count
    elif pt in _STATIC_PAYLOAD_TYPES:
        name, clock, channels = _STATIC_PAYLOAD_TYPES[pt]
    else:
        return _Format(pt, str(pt), 0, 0, None)
    return _Format(pt, name, clock, channels, _our_codec(name, clock, channels, rtpmap))


def _our_codec(name: str, clock: int, channels: int, rtpmap: RtpMap | None) -> str | None:
    lowered = name.lower()
    for spec in _CODECS.values():
        if spec.name.lower() != lowered:
            continue
        if spec.name == "opus":
            # RFC 7587 requires "/2"; a bare "opus/48000" from a sloppy peer means the same.
            ok = clock == 48000 and (rtpmap is None or rtpmap.channels in (None, 2))
        elif spec.name == "G722":
            # Some devices write G722/16000 (the audio rate) for the same payload.
            ok = clock in (8000, 16000) and channels == 1
        else:
            ok = clock == spec.clock_rate and channels == spec.channels
        return spec.name if ok else None
    return None


def _events(media: MediaDescription, pt: int) -> frozenset[int] | None:
    """The telephone-event codes an fmtp lists (RFC 4733 §7.1.1), or None if malformed."""
    fmtp = media.fmtps().get(pt)
    if fmtp is None or not fmtp.params:
        return _DEFAULT_EVENTS
    events: set[int] = set()
    for item in fmtp.params.replace(" ", "").split(","):
        low, sep, high = item.partition("-")
        if not low.isascii() or not low.isdigit() or len(low) > 3:
            return None
        if sep and (not high.isascii() or not high.isdigit() or len(high) > 3):
            return None
        first = int(low)
        last = int(high) if sep else first
        if first > last or last > 255:
            return None
        events.update(range(first, last + 1))
    return frozenset(events)


def _format_events(events: frozenset[int]) -> str:
    ranges: list[str] = []
    ordered = sorted(events)
    start = previous = ordered[0]
    for code in [*ordered[1:], None]:
        if code is not None and code == previous + 1:
            previous = code
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if code is not None:
            start = previous = code
    return ",".join(ranges)


def _usable_crypto(crypto: Crypto, suites: tuple[str, ...]) -> bool:
    # pylibsrtp takes one master key per direction and has no knobs for MKIs or RFC 4568
    # session parameters (KDR, UNENCRYPTED_SRTP, ...), so only the plain form is usable.
    if crypto.suite not in suites or len(crypto.keys) != 1 or crypto.session_params:
        return False
    key = crypto.keys[0]
    return key.mki is None and len(key.key_salt) == SRTP_KEY_LENGTH


class MediaNegotiator:
    """RFC 3264 offer/answer for one call's audio stream.

    Typical use: ``answer, stream = neg.receive_offer(offer)`` for an INVITE with SDP;
    ``offer = neg.create_offer()`` then ``stream = neg.receive_answer(answer)`` for an outgoing
    call, an INVITE without SDP (offer in the 200, answer in the ACK) or our own re-INVITE
    (hold). ``rollback()`` forgets an offer whose transaction failed (RFC 3261 §14.1).

    ``local_address``/``local_port`` are what goes into ``o=``/``c=``/``m=`` (the public address
    when behind NAT); ``local_rtcp_port`` defaults to ``local_port + 1`` (RFC 3550 §11).
    ``token_bytes`` supplies randomness (session id, SRTP keys) and exists for tests.
    """

    def __init__(
        self,
        local_address: str,
        local_port: int,
        config: OfferAnswerConfig | None = None,
        *,
        local_rtcp_port: int | None = None,
        session_id: int | None = None,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config or OfferAnswerConfig()
        self._token_bytes = token_bytes
        self.set_local_media(local_address, local_port, local_rtcp_port)
        if session_id is None:
            # 62 bits: room to increment, and within a signed 64-bit integer for any peer.
            session_id = int.from_bytes(token_bytes(8), "big") >> 2
        self._session_id = session_id
        self._version = session_id  # RFC 8866 §5.2: any start; increments on change
        self._last_sent: SessionDescription | None = None  # with version zeroed
        self._local_direction = Direction.SENDRECV
        self._local_keys: dict[str, bytes] = {}  # suite -> our master key||salt, per call
        self._pending: SessionDescription | None = None  # our offer awaiting its answer
        self._pending_direction = Direction.SENDRECV
        self._pending_index = 0
        self._layout: tuple[MediaDescription, ...] = ()  # m= lines of the last exchange
        self._audio_index = 0
        self._current: NegotiatedStream | None = None

    # -- local state --

    def set_local_media(self, address: str, port: int, rtcp_port: int | None = None) -> None:
        if not 0 < port <= 65535:
            raise ValueError(f"bad local RTP port {port}")
        self._address = address
        self._port = port
        self._rtcp_port = port + 1 if rtcp_port is None else rtcp_port

    @property
    def local_direction(self) -> Direction:
        """What we want for ourselves: SENDRECV normally, SENDONLY/INACTIVE to put the call on
        hold, RECVONLY to stop sending. Combined with the remote's wish in every exchange."""
        return self._local_direction

    @local_direction.setter
    def local_direction(self, direction: Direction) -> None:
        self._local_direction = direction

    @property
    def current(self) -> NegotiatedStream | None:
        """The stream of the last completed exchange."""
        return self._current

    @property
    def offer_pending(self) -> bool:
        return self._pending is not None

    @property
    def session_id(self) -> int:
        return self._session_id

    # -- answering --

    def receive_offer(
        self, offer: SessionDescription
    ) -> tuple[SessionDescription, NegotiatedStream]:
        """Answer an offer (RFC 3264 §6). Raises :class:`NegotiationError` (488, or 491 when
        our own offer is still pending) without changing any state."""
        if self._pending is not None:
            # RFC 3261 §14.2: an offer crossing ours is answered 491.
            raise NegotiationError("an offer of ours is pending", status=491)
        accepted: _Accepted | None = None
        first_error: NegotiationError | None = None
        for index, media in enumerate(offer.media):
            if media.media.lower() != "audio":
                continue
            try:
                accepted = self._accept(offer, index, media)
                break
            except NegotiationError as exc:
                first_error = first_error or exc
        if accepted is None:
            raise first_error or NegotiationError(
                "no audio stream offered", warning_code=_W_MEDIA_TYPE
            )

        answer_media = []
        for index, media in enumerate(offer.media):
            if index == accepted.index:
                answer_media.append(self._answer_audio(accepted))
            else:
                answer_media.append(_rejected(media))
        answer = self._stamp(tuple(answer_media))
        self._layout = offer.media
        self._audio_index = accepted.index
        self._current = accepted.stream
        return answer, accepted.stream

    def _accept(self, offer: SessionDescription, index: int, media: MediaDescription) -> _Accepted:
        config = self.config
        if media.port == 0:
            raise NegotiationError("audio stream disabled (port 0)", warning_code=_W_MEDIA_TYPE)
        proto = media.proto.upper()
        secure = proto in _SECURE_PROTOS
        if proto not in _PLAIN_PROTOS and not secure:
            raise NegotiationError(
                f"unsupported transport {media.proto}", warning_code=_W_TRANSPORT
            )
        if secure and config.srtp is SrtpMode.DISABLED:
            raise NegotiationError(f"SRTP not enabled ({media.proto})", warning_code=_W_TRANSPORT)
        if not secure and config.srtp is SrtpMode.REQUIRED:
            raise NegotiationError(f"SRTP required ({media.proto})", warning_code=_W_TRANSPORT)

        crypto = None
        if secure:
            offered = media.crypto
            crypto = next(
                (
                    c
                    for suite in config.srtp_suites
                    for c in offered
                    if c.suite == suite and _usable_crypto(c, config.srtp_suites)
                ),
                None,
            )
            if crypto is None:
                suites = ", ".join(dict.fromkeys(c.suite for c in offered)) or "none"
                raise NegotiationError(
                    f"no acceptable a=crypto (offered {suites})", warning_code=_W_ATTRIBUTE
                )

        connection = offer.connection_for(media)
        if connection is None:
            raise NegotiationError("no c= line for audio", warning_code=_W_ADDRESS_FORMAT)
        self._check_connection(connection)

        formats = _formats(media)
        chosen = next(
            ((f, _CODECS[name]) for name in config.codecs for f in formats if f.codec == name),
            None,
        )
        if chosen is None:
            names = [f.name for f in formats if f.name.lower() not in (_TELEPHONE_EVENT, "cn")]
            offered_names = ", ".join(dict.fromkeys(names)) or "none"
            raise NegotiationError(
                f"no common codec (offered {offered_names})", warning_code=_W_MEDIA_FORMAT
            )
        codec, spec = chosen
        rate = spec.clock_rate
        telephone_event, events = None, frozenset[int]()
        for f in formats:
            if f.name.lower() == _TELEPHONE_EVENT and f.clock_rate == rate:
                offered_events = _events(media, f.payload_type)
                if offered_events and offered_events & _OUR_EVENTS:
                    telephone_event, events = f, offered_events & _OUR_EVENTS
                    break

        offered_direction = offer.direction_for(media)
        if connection.is_hold_address:
            # RFC 3264 §8.4: c=0.0.0.0 is the old hold: the offerer receives nothing.
            offered_direction = offered_direction.restrict(Direction.SENDONLY)
        direction = offered_direction.reverse().restrict(self._local_direction)

        rtcp_mux = media.rtcp_mux and config.rtcp_mux
        rtcp_address, rtcp_port = self._remote_rtcp(media, connection, rtcp_mux)
        srtp = None
        if crypto is not None:
            srtp = SrtpKeys(crypto.suite, self._local_key(crypto.suite), crypto.keys[0].key_salt)
        fmtp = media.fmtps().get(codec.payload_type)
        remote_ptime = media.ptime
        stream = NegotiatedStream(
            remote_address=connection.address,
            remote_port=media.port,
            remote_rtcp_address=rtcp_address,
            remote_rtcp_port=rtcp_port,
            rtcp_mux=rtcp_mux,
            codec=NegotiatedCodec(
                name=spec.name,
                payload_type=codec.payload_type,
                recv_payload_type=codec.payload_type,  # RFC 3264 §6.1: our answer reuses it
                clock_rate=rate,
                channels=spec.channels,
                fmtp=fmtp.parameters() if fmtp else {},
            ),
            telephone_event=(
                TelephoneEvent(
                    telephone_event.payload_type, telephone_event.payload_type, rate, events
                )
                if telephone_event
                else None
            ),
            ptime=config.ptime,
            remote_ptime=None if remote_ptime is None else round(remote_ptime),
            direction=direction,
            srtp=srtp,
        )
        return _Accepted(index, media, codec, spec, telephone_event, events, crypto, stream)

    def _check_connection(self, connection: Connection) -> None:
        if connection.nettype.upper() != "IN":
            raise NegotiationError(
                f"unsupported network type {connection.nettype}", warning_code=_W_NETWORK_PROTOCOL
            )
        ours = address_type(self._address)
        if connection.addrtype.upper() != ours:
            # We have one socket family per call; an IP6 peer cannot reach an IP4 socket.
            raise NegotiationError(
                f"incompatible address type {connection.addrtype} (we have {ours})",
                warning_code=_W_ADDRESS_FORMAT,
            )

    @staticmethod
    def _remote_rtcp(
        media: MediaDescription, connection: Connection, rtcp_mux: bool
    ) -> tuple[str, int]:
        if rtcp_mux:
            return connection.address, media.port
        rtcp = media.rtcp
        if rtcp is None:
            return connection.address, media.port + 1  # RFC 3550 §11
        return rtcp.address or connection.address, rtcp.port  # RFC 3605

    def _answer_audio(self, accepted: _Accepted) -> MediaDescription:
        codec, spec, te = accepted.codec, accepted.spec, accepted.telephone_event
        # RFC 3264 §6.1: the same payload type numbers as the offer; one codec only, so which
        # format arrives is never ambiguous.
        formats = [str(codec.payload_type)]
        rtpmap = RtpMap(codec.payload_type, spec.name, spec.clock_rate, _channels(spec))
        attrs: list[Attribute] = [rtpmap.to_attribute()]
        if spec.fmtp:
            attrs.append(Fmtp(codec.payload_type, spec.fmtp).to_attribute())
        if te is not None:
            formats.append(str(te.payload_type))
            attrs.append(RtpMap(te.payload_type, _TELEPHONE_EVENT, te.clock_rate).to_attribute())
            attrs.append(Fmtp(te.payload_type, _format_events(accepted.events)).to_attribute())
        attrs += self._common_attributes(accepted.stream.direction, accepted.stream.rtcp_mux)
        if accepted.crypto is not None:
            # RFC 4568 §7.1.2: same tag and suite, our own key.
            key = CryptoKey(self._local_key(accepted.crypto.suite))
            attrs.append(Crypto(accepted.crypto.tag, accepted.crypto.suite, (key,)).to_attribute())
        return MediaDescription(
            "audio", self._port, accepted.media.proto, tuple(formats), attributes=tuple(attrs)
        )

    def _common_attributes(self, direction: Direction, rtcp_mux: bool) -> list[Attribute]:
        attrs = [Attribute("ptime", str(self.config.ptime)), Attribute(direction.value)]
        if rtcp_mux:
            attrs.append(Attribute("rtcp-mux"))
        else:
            attrs.append(Rtcp(self._rtcp_port).to_attribute())
        return attrs

    def _local_key(self, suite: str) -> bytes:
        # One key per suite for the whole call: re-offers and re-answers repeat it, so a
        # refresh changes nothing and the SRTP contexts survive (RFC 4568 §7.1.4 allows this).
        key = self._local_keys.get(suite)
        if key is None:
            key = self._token_bytes(SRTP_KEY_LENGTH)
            if len(key) != SRTP_KEY_LENGTH:
                raise ValueError("token_bytes returned the wrong length")
            self._local_keys[suite] = key
        return key

    def _stamp(self, media: tuple[MediaDescription, ...]) -> SessionDescription:
        """Wrap m= lines into our SDP, with the o= version RFC 3264 §8 asks for."""
        addrtype = address_type(self._address)
        sdp = SessionDescription(
            origin=Origin(self.config.username, self._session_id, 0, "IN", addrtype, self._address),
            session_name=self.config.session_name,
            connection=Connection("IN", addrtype, self._address),
            timings=(Timing(0, 0),),
            media=media,
        )
        if self._last_sent is not None and sdp != self._last_sent:
            self._version += 1
        self._last_sent = sdp
        return replace(sdp, origin=replace(sdp.origin, session_version=self._version))

    # -- offering --

    def create_offer(self) -> SessionDescription:
        """Our offer (RFC 3264 §5): every codec in preference order, telephone-event at each
        clock rate in use, RTP/SAVP with a=crypto when SRTP is required. In a re-offer the
        m= lines of the previous exchange keep their places, the others stay rejected (§8)."""
        if self._pending is not None:
            raise NegotiationError("an offer of ours is pending", status=491)
        config = self.config
        formats: list[str] = []
        attrs: list[Attribute] = []
        rates = set()
        for name in config.codecs:
            spec = _CODECS[name]
            pt = config.opus_payload_type if spec.static_pt is None else spec.static_pt
            formats.append(str(pt))
            attrs.append(RtpMap(pt, spec.name, spec.clock_rate, _channels(spec)).to_attribute())
            if spec.fmtp:
                attrs.append(Fmtp(pt, spec.fmtp).to_attribute())
            rates.add(spec.clock_rate)
        for rate, pt in (
            (8000, config.telephone_event_payload_type),
            (48000, config.telephone_event_48k_payload_type),
        ):
            if rate in rates:
                formats.append(str(pt))
                attrs.append(RtpMap(pt, _TELEPHONE_EVENT, rate).to_attribute())
                attrs.append(Fmtp(pt, _format_events(_OUR_EVENTS)).to_attribute())
        attrs += self._common_attributes(self._local_direction, rtcp_mux=False)
        if config.rtcp_mux:
            # RFC 5761 §5.1.1: offer mux, with a=rtcp as the fallback if it is refused.
            attrs.append(Attribute("rtcp-mux"))
        proto = "RTP/AVP"
        if config.srtp is SrtpMode.REQUIRED:
            proto = "RTP/SAVP"
            for tag, suite in enumerate(config.srtp_suites, 1):
                key = CryptoKey(self._local_key(suite))
                attrs.append(Crypto(tag, suite, (key,)).to_attribute())
        audio = MediaDescription(
            "audio", self._port, proto, tuple(formats), attributes=tuple(attrs)
        )

        index = self._audio_index if self._layout else 0
        media = [_rejected(m) for m in self._layout] or [audio]
        media[index] = audio
        offer = self._stamp(tuple(media))
        self._pending = offer
        self._pending_index = index
        self._pending_direction = self._local_direction
        return offer

    def rollback(self) -> None:
        """Forget our pending offer (its re-INVITE failed: RFC 3261 §14.1 keeps the old
        session). The o= version stays where the failed offer put it."""
        self._pending = None

    def receive_answer(self, answer: SessionDescription) -> NegotiatedStream:
        """Take the answer to our offer. Raises :class:`NegotiationError` if it does not fit
        the offer (the offer is consumed either way: the caller ends or re-offers)."""
        offer = self._pending
        if offer is None:
            raise NegotiationError("no offer of ours is pending", status=400)
        self._pending = None
        index = self._pending_index
        if len(answer.media) != len(offer.media):
            # RFC 3264 §6: the answer has exactly as many m= lines as the offer.
            raise NegotiationError(
                f"answer has {len(answer.media)} m= lines, our offer {len(offer.media)}",
                warning_code=_W_MEDIA_TYPE,
            )
        ours, media = offer.media[index], answer.media[index]
        if media.port == 0:
            raise NegotiationError("audio stream rejected", warning_code=_W_MEDIA_TYPE)
        if media.proto.upper() != ours.proto.upper() or media.media.lower() != "audio":
            raise NegotiationError(
                f"answer changed the stream to {media.media} {media.proto}",
                warning_code=_W_TRANSPORT,
            )
        connection = answer.connection_for(media)
        if connection is None:
            raise NegotiationError("no c= line for audio", warning_code=_W_ADDRESS_FORMAT)
        self._check_connection(connection)

        offered = _formats(ours)
        offered_pts = {f.codec: f.payload_type for f in offered if f.codec is not None}
        answered = _formats(media)
        # RFC 3264 §7: we may send any format of the answer; the first is its preference.
        codec = next((f for f in answered if f.codec is not None and f.codec in offered_pts), None)
        if codec is None or codec.codec is None:
            names = ", ".join(f.name for f in answered) or "none"
            raise NegotiationError(
                f"answer has no codec of our offer ({names})", warning_code=_W_MEDIA_FORMAT
            )
        spec = _CODECS[codec.codec]
        telephone_event = None
        our_te = next(
            (f for f in offered if f.name == _TELEPHONE_EVENT and f.clock_rate == spec.clock_rate),
            None,
        )
        if our_te is not None:
            for f in answered:
                if f.name.lower() == _TELEPHONE_EVENT and f.clock_rate == spec.clock_rate:
                    events = (_events(media, f.payload_type) or frozenset()) & _OUR_EVENTS
                    if events:
                        telephone_event = TelephoneEvent(
                            f.payload_type, our_te.payload_type, spec.clock_rate, events
                        )
                    break

        srtp = None
        if ours.proto.upper() in _SECURE_PROTOS:
            srtp = self._answered_keys(ours, media)

        answered_direction = answer.direction_for(media)
        if connection.is_hold_address:
            answered_direction = answered_direction.restrict(Direction.SENDONLY)
        direction = answered_direction.reverse().restrict(self._pending_direction)
        rtcp_mux = ours.rtcp_mux and media.rtcp_mux
        rtcp_address, rtcp_port = self._remote_rtcp(media, connection, rtcp_mux)
        fmtp = media.fmtps().get(codec.payload_type)
        remote_ptime = media.ptime
        stream = NegotiatedStream(
            remote_address=connection.address,
            remote_port=media.port,
            remote_rtcp_address=rtcp_address,
            remote_rtcp_port=rtcp_port,
            rtcp_mux=rtcp_mux,
            codec=NegotiatedCodec(
                name=spec.name,
                payload_type=codec.payload_type,
                recv_payload_type=offered_pts[codec.codec],
                clock_rate=spec.clock_rate,
                channels=spec.channels,
                fmtp=fmtp.parameters() if fmtp else {},
            ),
            telephone_event=telephone_event,
            ptime=self.config.ptime,
            remote_ptime=None if remote_ptime is None else round(remote_ptime),
            direction=direction,
            srtp=srtp,
        )
        self._layout = offer.media
        self._audio_index = index
        self._current = stream
        return stream

    def _answered_keys(self, ours: MediaDescription, media: MediaDescription) -> SrtpKeys:
        offered = {c.tag: c for c in ours.crypto}
        answered = media.crypto
        # RFC 4568 §7.1.3 / §7.1.4: exactly one crypto line, with a tag and suite we offered.
        if len(answered) != 1:
            raise NegotiationError(
                f"answer has {len(answered)} a=crypto lines, expected 1", warning_code=_W_ATTRIBUTE
            )
        crypto = answered[0]
        mine = offered.get(crypto.tag)
        if mine is None or mine.suite != crypto.suite:
            raise NegotiationError(
                f"answer's a=crypto tag {crypto.tag} {crypto.suite} was not offered",
                warning_code=_W_ATTRIBUTE,
            )
        if not _usable_crypto(crypto, self.config.srtp_suites):
            raise NegotiationError("answer's a=crypto key is not usable", warning_code=_W_ATTRIBUTE)
        return SrtpKeys(crypto.suite, mine.keys[0].key_salt, crypto.keys[0].key_salt)


def _formats(media: MediaDescription) -> list[_Format]:
    rtpmaps = media.rtpmaps()
    return [_identify(pt, rtpmaps) for pt in media.payload_types]


def _channels(spec: _CodecSpec) -> int | None:
    # Channels are written only when not 1 (RFC 8866 §6.6), i.e. opus/48000/2.
    return spec.channels if spec.channels != 1 else None


def _rejected(media: MediaDescription) -> MediaDescription:
    """RFC 3264 §6: a refused stream keeps its place with port 0 (and its formats)."""
    return MediaDescription(media.media, 0, media.proto, media.formats or ("0",))
