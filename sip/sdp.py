"""SDP session descriptions (RFC 8866, formerly RFC 4566): parse and serialise.

Values are frozen dataclasses. Attributes are kept verbatim and in order (so nothing a peer sent
is lost and a re-serialised description says the same thing); the attributes a SIP trunk needs
(rtpmap, fmtp, ptime, maxptime, rtcp, rtcp-mux, crypto, direction) have typed accessors.

Leniency follows what real phones send: LF-only line ends, trailing whitespace, empty lines, a
missing ``s=``/``t=``/``v=`` line. Strictness is kept where a mistake would route or decode media
wrongly: an m= line that does not parse, a port outside 0-65535, an RTP payload type outside
0-127, a malformed rtpmap/fmtp/rtcp/crypto value, a type letter we do not know (RFC 8866 §5).
Every problem raises :class:`sip.errors.SipParseError` (status 400) and nothing else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from sip.errors import SipParseError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Connection",
    "Crypto",
    "CryptoKey",
    "Direction",
    "Fmtp",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "address_type",
    "parse_sdp",
]

# Bounds for numeric fields: enough for every real value, small enough that int() stays cheap
# (and under CPython's 4300-digit conversion limit) whatever a peer sends.
_MAX_DIGITS = 20
_MAX_ID_DIGITS = 40  # o= session id and version (RFC 8866 §5.2 suggests NTP timestamps)


def _uint(text: str, what: str, *, maximum: int | None = None, digits: int = _MAX_DIGITS) -> int:
    """A non-negative decimal integer of ASCII digits (int() alone would accept ' 1', '+1',
    '1_0' and non-ASCII digits, which would not survive a re-serialisation unchanged)."""
    if not text or len(text) > digits or not text.isascii() or not text.isdigit():
        raise SipParseError(f"SDP: bad {what} {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SipParseError(f"SDP: {what} {value} out of range (max {maximum})")
    return value


def _payload_type(text: str) -> int:
    # RFC 3551 §3: the RTP header's PT field has 7 bits.
    return _uint(text, "payload type", maximum=127, digits=3)


def address_type(address: str) -> str:
    """The SDP addrtype for an IP address literal: ``IP6`` if it contains a colon, else ``IP4``."""
    return "IP6" if ":" in address else "IP4"


class Direction(StrEnum):
    """Media direction attribute (RFC 8866 §6.7), from the point of view of the SDP's author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the other end (RFC 3264 §6.1: sendonly <-> recvonly)."""
        return Direction.from_flags(self.receives, self.sends)

    def restrict(self, other: Direction) -> Direction:
        """Only what both allow (e.g. the answer to a sendrecv offer while we are on hold)."""
        return Direction.from_flags(self.sends and other.sends, self.receives and other.receives)


@dataclass(frozen=True)
class Attribute:
    """``a=<name>`` (a flag) or ``a=<name>:<value>``; value ``None`` means a flag."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (ttl only for IP4 multicast)."""

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls("IN", address_type(address), address)

    @property
    def is_hold_address(self) -> bool:
        """RFC 3264 §8.4: the RFC 2543 way of putting a stream on hold is ``c=IN IP4 0.0.0.0``
        (the IPv6 unspecified address is treated the same way)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.count is not None:
            address += f"/{self.count}"
        return f"{self.nettype} {self.addrtype} {address}"


@dataclass(frozen=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (kbit/s for AS and CT)."""

    type: str
    value: int

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` repeat lines kept as text."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @property
    def channel_count(self) -> int:
        # RFC 8866 §6.6: for audio, omitted encoding parameters mean one channel.
        return 1 if self.channels is None else self.channels

    def to_attribute(self) -> Attribute:
        value = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        if self.channels is not None:
            value += f"/{self.channels}"
        return Attribute("rtpmap", value)


@dataclass(frozen=True)
class Fmtp:
    """``a=fmtp:<pt> <format specific parameters>`` with the parameters kept as text."""

    payload_type: int
    params: str

    def parameters(self) -> dict[str, str]:
        """``k=v`` pairs split on ';' (RFC 7587 and most codecs); a bare token such as
        telephone-event's ``0-15`` maps to ``""``."""
        result: dict[str, str] = {}
        for item in self.params.split(";"):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            result[key.strip()] = value.strip() if sep else ""
        return result

    def to_attribute(self) -> Attribute:
        if not self.params:
            return Attribute("fmtp", str(self.payload_type))
        return Attribute("fmtp", f"{self.payload_type} {self.params}")


@dataclass(frozen=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    def to_attribute(self) -> Attribute:
        value = str(self.port)
        if self.address is not None:
            value += f" {self.nettype} {self.addrtype} {self.address}"
        return Attribute("rtcp", value)


@dataclass(frozen=True)
class CryptoKey:
    """One ``inline:<key||salt>[|<lifetime>][|<MKI>:<length>]`` key parameter (RFC 4568 §6.1)."""

    key_salt: bytes
    lifetime: int | None = None
    mki: int | None = None
    mki_length: int | None = None

    def __str__(self) -> str:
        text = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki}:{self.mki_length}"
        return text


@dataclass(frozen=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1)."""

    tag: int
    suite: str
    keys: tuple[CryptoKey, ...]
    session_params: tuple[str, ...] = ()

    def to_attribute(self) -> Attribute:
        value = f"{self.tag} {self.suite} " + ";".join(str(key) for key in self.keys)
        if self.session_params:
            value += " " + " ".join(self.session_params)
        return Attribute("crypto", value)


def _parse_rtpmap(value: str) -> RtpMap:
    fields = value.split()
    if len(fields) != 2:
        raise SipParseError(f"SDP: bad rtpmap {value[:60]!r}")
    pt_text, encoding = fields
    parts = encoding.split("/")
    if len(parts) not in (2, 3) or not parts[0]:
        raise SipParseError(f"SDP: bad rtpmap {value[:60]!r}")
    clock = _uint(parts[1], "rtpmap clock rate")
    if clock == 0:
        raise SipParseError("SDP: rtpmap clock rate 0")
    channels = _uint(parts[2], "rtpmap channels", maximum=255) if len(parts) == 3 else None
    return RtpMap(_payload_type(pt_text), parts[0], clock, channels)


def _parse_fmtp(value: str) -> Fmtp:
    fields = value.split(None, 1)
    if not fields:
        raise SipParseError("SDP: empty fmtp attribute")
    return Fmtp(_payload_type(fields[0]), fields[1].strip() if len(fields) == 2 else "")


def _parse_rtcp(value: str) -> Rtcp:
    parts = value.split()
    if len(parts) not in (1, 4):
        raise SipParseError(f"SDP: bad rtcp attribute {value[:60]!r}")
    port = _uint(parts[0], "rtcp port", maximum=65535)
    if len(parts) == 1:
        return Rtcp(port)
    return Rtcp(port, parts[1], parts[2], parts[3])


def _parse_lifetime(text: str) -> int:
    if text.startswith("2^"):
        # RFC 4568 §6.1: "2^n" form; libsrtp's maximum is 2^48 (SRTP) / 2^31 (SRTCP).
        return int(2 ** _uint(text[2:], "crypto lifetime exponent", maximum=64))
    return _uint(text, "crypto lifetime")


def _parse_crypto_key(param: str) -> CryptoKey:
    method, sep, info = param.partition(":")
    if not sep or method.lower() != "inline":
        # RFC 4568 §6.1 defines only "inline"; an unknown method cannot be used at all.
        raise SipParseError(f"SDP: unsupported crypto key method {method[:20]!r}")
    fields = info.split("|")
    if not 1 <= len(fields) <= 3:
        raise SipParseError("SDP: bad crypto key parameter")
    encoded = fields[0]
    if not encoded:
        raise SipParseError("SDP: empty crypto key")
    try:
        key_salt = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SipParseError("SDP: crypto key is not base64") from exc
    lifetime = mki = mki_length = None
    for extra in fields[1:]:
        if ":" in extra:
            if mki is not None:
                raise SipParseError("SDP: two MKIs in one crypto key")
            mki_text, _, length_text = extra.partition(":")
            mki = _uint(mki_text, "crypto MKI")
            mki_length = _uint(length_text, "crypto MKI length", maximum=128)
            if mki_length == 0:
                raise SipParseError("SDP: crypto MKI length 0")
        else:
            if lifetime is not None or mki is not None:
                raise SipParseError("SDP: bad crypto key parameter order")
            lifetime = _parse_lifetime(extra)
    return CryptoKey(key_salt, lifetime, mki, mki_length)


def _parse_crypto(value: str) -> Crypto:
    parts = value.split()
    if len(parts) < 3:
        raise SipParseError(f"SDP: bad crypto attribute {value[:60]!r}")
    tag = _uint(parts[0], "crypto tag", digits=9)
    keys = tuple(_parse_crypto_key(param) for param in parts[2].split(";"))
    return Crypto(tag, parts[1], keys, tuple(parts[3:]))


def _parse_ms(value: str, what: str) -> float:
    # Milliseconds; a few devices write "20.0", so a decimal fraction is tolerated.
    whole, dot, fraction = value.partition(".")
    _uint(whole, what, digits=6)
    if dot:
        _uint(fraction, what, digits=6)
    return float(value)


_DIRECTIONS = frozenset(d.value for d in Direction)


class _Attributes:
    """Attribute look-ups shared by the session and media levels (names compared
    case-insensitively: real devices are not consistent)."""

    attributes: tuple[Attribute, ...]

    def values(self, name: str) -> Iterator[str | None]:
        wanted = name.lower()
        return (a.value for a in self.attributes if a.name.lower() == wanted)

    def has(self, name: str) -> bool:
        return next(self.values(name), False) is not False

    def value(self, name: str) -> str | None:
        """The first ``a=<name>:<value>``'s value (``None`` if absent or a flag)."""
        for value in self.values(name):
            if value is not None:
                return value
        return None

    @property
    def direction(self) -> Direction | None:
        """The first direction attribute at this level, or ``None`` if there is none."""
        for attribute in self.attributes:
            name = attribute.name.lower()
            if attribute.value is None and name in _DIRECTIONS:
                return Direction(name)
        return None


@dataclass(frozen=True)
class MediaDescription(_Attributes):
    """One ``m=`` section: ``m=<media> <port>[/<count>] <proto> <fmt> ...`` and its lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...] = ()
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    @property
    def is_rtp(self) -> bool:
        # RTP/AVP, RTP/SAVP, RTP/AVPF, UDP/TLS/RTP/SAVPF, TCP/RTP/AVP ...: fmts are payload types.
        return "RTP/" in self.proto.upper()

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload types (validated when parsed, for RTP protocols)."""
        return tuple(_payload_type(fmt) for fmt in self.formats)

    def rtpmaps(self) -> dict[int, RtpMap]:
        """rtpmap by payload type (the first one wins if a peer repeats one). Empty for a
        non-RTP m-line: rtpmap maps RTP payload types only (RFC 4566 §6), and such lines are
        not validated when parsed."""
        result: dict[int, RtpMap] = {}
        if not self.is_rtp:
            return result
        for value in self.values("rtpmap"):
            rtpmap = _parse_rtpmap(value or "")
            result.setdefault(rtpmap.payload_type, rtpmap)
        return result

    def fmtps(self) -> dict[int, Fmtp]:
        """fmtp by payload type; empty for a non-RTP m-line (as `rtpmaps`)."""
        result: dict[int, Fmtp] = {}
        if not self.is_rtp:
            return result
        for value in self.values("fmtp"):
            fmtp = _parse_fmtp(value or "")
            result.setdefault(fmtp.payload_type, fmtp)
        return result

    @property
    def ptime(self) -> float | None:
        value = self.value("ptime")
        return None if value is None else _parse_ms(value, "ptime")

    @property
    def maxptime(self) -> float | None:
        value = self.value("maxptime")
        return None if value is None else _parse_ms(value, "maxptime")

    @property
    def rtcp(self) -> Rtcp | None:
        value = self.value("rtcp")
        return None if value is None else _parse_rtcp(value)

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")

    @property
    def crypto(self) -> tuple[Crypto, ...]:
        return tuple(_parse_crypto(value or "") for value in self.values("crypto"))

    def _validate(self) -> None:
        """Parse every typed attribute once, so that a description that parsed never raises
        from an accessor later."""
        if self.is_rtp:
            for fmt in self.formats:
                _payload_type(fmt)
            self.rtpmaps()
            self.fmtps()
        for name in ("ptime", "maxptime"):
            value = self.value(name)
            if value is not None:
                _parse_ms(value, name)
        value = self.value("rtcp")
        if value is not None:
            _parse_rtcp(value)
        for crypto in self.values("crypto"):
            _parse_crypto(crypto or "")


@dataclass(frozen=True)
class SessionDescription(_Attributes):
    """A whole SDP body. ``v=0`` is implied (the only version there is)."""

    origin: Origin
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = (Timing(),)
    time_zones: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level c= if present, else the session-level one (RFC 8866 §5.7)."""
        return media.connections[0] if media.connections else self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def lines(self) -> list[str]:
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={email}" for email in self.emails]
        out += [f"p={phone}" for phone in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={bandwidth}" for bandwidth in self.bandwidths]
        for timing in self.timings:
            out.append(f"t={timing.start} {timing.stop}")
            out += [f"r={repeat}" for repeat in timing.repeats]
        if self.time_zones is not None:
            out.append(f"z={self.time_zones}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={attribute}" for attribute in self.attributes]
        for media in self.media:
            port = str(media.port)
            if media.port_count is not None:
                port += f"/{media.port_count}"
            out.append(" ".join(["m=" + media.media, port, media.proto, *media.formats]))
            if media.information is not None:
                out.append(f"i={media.information}")
            out += [f"c={connection}" for connection in media.connections]
            out += [f"b={bandwidth}" for bandwidth in media.bandwidths]
            if media.key is not None:
                out.append(f"k={media.key}")
            out += [f"a={attribute}" for attribute in media.attributes]
        return out

    def serialize(self) -> str:
        """CRLF-terminated lines (RFC 8866 §5)."""
        lines = self.lines()
        for line in lines:
            if "\r" in line or "\n" in line or "\x00" in line:
                raise ValueError(f"SDP value contains a line break or NUL: {line[:60]!r}")
        return "".join(line + "\r\n" for line in lines)

    def to_bytes(self) -> bytes:
        return self.serialize().encode("utf-8")


# --- parsing ---------------------------------------------------------------------------------


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SipParseError(f"SDP: bad o= line {value[:80]!r}")
    return Origin(
        parts[0],
        _uint(parts[1], "o= session id", digits=_MAX_ID_DIGITS),
        _uint(parts[2], "o= session version", digits=_MAX_ID_DIGITS),
        parts[3],
        parts[4],
        parts[5],
    )


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SipParseError(f"SDP: bad c= line {value[:80]!r}")
    nettype, addrtype, address = parts
    pieces = address.split("/")
    if not pieces[0] or any(not piece for piece in pieces):
        raise SipParseError(f"SDP: bad c= address {address[:60]!r}")
    ttl = count = None
    kind = addrtype.upper()
    if kind == "IP4" and len(pieces) <= 3:
        # RFC 8866 §5.7: IP4 multicast is <addr>/<ttl>[/<number of addresses>].
        if len(pieces) >= 2:
            ttl = _uint(pieces[1], "c= ttl", maximum=255)
        if len(pieces) == 3:
            count = _uint(pieces[2], "c= address count")
    elif kind == "IP6" and len(pieces) <= 2:
        if len(pieces) == 2:
            count = _uint(pieces[1], "c= address count")
    elif len(pieces) > 1:
        raise SipParseError(f"SDP: bad c= address {address[:60]!r}")
    return Connection(nettype, addrtype, pieces[0], ttl, count)


def _parse_bandwidth(value: str) -> Bandwidth:
    kind, sep, amount = value.partition(":")
    if not sep or not kind:
        raise SipParseError(f"SDP: bad b= line {value[:60]!r}")
    return Bandwidth(kind, _uint(amount, "bandwidth"))


def _parse_timing(value: str) -> Timing:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError(f"SDP: bad t= line {value[:60]!r}")
    return Timing(_uint(parts[0], "t= start"), _uint(parts[1], "t= stop"))


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    if not name:
        raise SipParseError("SDP: attribute without a name")
    return Attribute(name, rest if sep else None)


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SipParseError(f"SDP: bad m= line {value[:80]!r}")
    media, port_text, proto = parts[0], parts[1], parts[2]
    port_part, sep, count_part = port_text.partition("/")
    port = _uint(port_part, "m= port", maximum=65535)
    port_count = _uint(count_part, "m= port count", maximum=65535) if sep else None
    return MediaDescription(media, port, proto, tuple(parts[3:]), port_count)


class _MediaBuilder:
    def __init__(self, media: MediaDescription) -> None:
        self.media = media
        self.information: str | None = None
        self.connections: list[Connection] = []
        self.bandwidths: list[Bandwidth] = []
        self.key: str | None = None
        self.attributes: list[Attribute] = []

    def add(self, kind: str, value: str, lineno: int) -> None:
        if kind == "a":
            self.attributes.append(_parse_attribute(value))
        elif kind == "c":
            self.connections.append(_parse_connection(value))
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value))
        elif kind == "i" and self.information is None:
            self.information = value
        elif kind == "k" and self.key is None:
            self.key = value
        else:
            raise SipParseError(f"SDP line {lineno}: {kind}= not allowed here")

    def build(self) -> MediaDescription:
        m = self.media
        return MediaDescription(
            m.media,
            m.port,
            m.proto,
            m.formats,
            m.port_count,
            self.information,
            tuple(self.connections),
            tuple(self.bandwidths),
            self.key,
            tuple(self.attributes),
        )


_SESSION_SINGLE = {"v", "o", "s", "i", "u", "c", "z", "k"}
_KNOWN_TYPES = set("vosiuepcbtrzkam")


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy devices put Latin-1 into s=/i=; those fields carry no meaning we rely on.
        return data.decode("latin-1")


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body. Raises only :class:`SipParseError`."""
    text = _decode(data)
    single: dict[str, str] = {}
    emails: list[str] = []
    phones: list[str] = []
    bandwidths: list[Bandwidth] = []
    timings: list[Timing] = []
    attributes: list[Attribute] = []
    media: list[_MediaBuilder] = []

    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r")
        if not line:
            continue
        if "\r" in line or "\x00" in line:
            raise SipParseError(f"SDP line {lineno}: CR or NUL inside a line")
        if len(line) < 2 or line[1] != "=":
            raise SipParseError(f"SDP line {lineno}: not <type>=<value>")
        kind, value = line[0], line[2:]
        if kind not in _KNOWN_TYPES:
            # RFC 8866 §5: a description with an unknown type letter is rejected.
            raise SipParseError(f"SDP line {lineno}: unknown type {kind!r}")
        if kind == "m":
            media.append(_MediaBuilder(_parse_media_line(value)))
        elif media:
            media[-1].add(kind, value, lineno)
        elif kind in _SESSION_SINGLE:
            if kind in single:
                raise SipParseError(f"SDP line {lineno}: second {kind}= line")
            single[kind] = value
        elif kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind == "t":
            timings.append(_parse_timing(value))
        elif kind == "r":
            if not timings:
                raise SipParseError(f"SDP line {lineno}: r= before t=")
            last = timings[-1]
            timings[-1] = Timing(last.start, last.stop, (*last.repeats, value))
        elif kind == "b":
            bandwidths.append(_parse_bandwidth(value))
        elif kind == "e":
            emails.append(value)
        else:  # "p"
            phones.append(value)

    if not single and not media and not attributes and not timings:
        raise SipParseError("SDP: empty body")
    if single.get("v", "0") != "0":
        raise SipParseError(f"SDP: unsupported version {single['v'][:20]!r}")
    if "o" not in single:
        raise SipParseError("SDP: no o= line")
    connection = _parse_connection(single["c"]) if "c" in single else None
    sdp = SessionDescription(
        origin=_parse_origin(single["o"]),
        session_name=single.get("s", "-"),
        information=single.get("i"),
        uri=single.get("u"),
        emails=tuple(emails),
        phones=tuple(phones),
        connection=connection,
        bandwidths=tuple(bandwidths),
        timings=tuple(timings) if timings else (Timing(),),
        time_zones=single.get("z"),
        key=single.get("k"),
        attributes=tuple(attributes),
        media=tuple(builder.build() for builder in media),
    )
    for description in sdp.media:
        description._validate()
    return sdp
