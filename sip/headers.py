"""SIP header fields: the ordered multimap and the typed values the stack relies on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sip.errors import SipParseError
from sip.grammar import (
    TOKEN_CHARS,
    WS,
    format_params,
    is_token,
    parse_params,
    parse_uint,
    quote,
    read_quoted,
    split_commas,
    unquote_param,
)
from sip.uri import Uri, format_host, parse_port, parse_uri, validate_host

# RFC 3261 §7.3.3 and the IANA registry: compact form -> full name.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "Identity-Info", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
    "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Remote-Party-ID",
    "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq",
    "Server", "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject",
    "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate",
]  # fmt: skip
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update({short: full for short, full in COMPACT_FORMS.items()})

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1 and §20). Every other header,
# including all unknown ones and the authentication headers, is never split on commas.
LIST_HEADERS = frozenset(
    name.lower()
    for name in [
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language",
        "Error-Info", "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
        "Proxy-Require", "Reason", "Record-Route", "Reject-Contact", "Require", "Route",
        "Service-Route", "Supported", "Unsupported", "Via", "Warning",
    ]
)  # fmt: skip


def canonical_name(name: str) -> str:
    """The spelling we use for a header name: the standard one for known headers (compact forms
    expanded), otherwise the name as received (header names compare case-insensitively)."""
    return _CANONICAL.get(name.lower(), name)


class Headers:
    """Header fields in order, looked up case-insensitively.

    Each entry is one header field as it appeared (a field may hold several comma-separated
    values); :meth:`values` splits list headers into their elements.
    """

    __slots__ = ("_items", "_keys")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._keys: list[str] = []  # lower-case names, parallel to _items, for fast lookups
        for name, value in items:
            self.add(name, value)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return canonical_name(name).lower() in self._keys

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        new._keys = list(self._keys)
        return new

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's value, or ``default``."""
        key = canonical_name(name).lower()
        try:
            return self._items[self._keys.index(key)][1]
        except ValueError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every field's value, in order (not split on commas)."""
        key = canonical_name(name).lower()
        if key not in self._keys:
            return []
        return [item[1] for item, k in zip(self._items, self._keys, strict=True) if k == key]

    def values(self, name: str) -> list[str]:
        """All values, list headers split into their comma-separated elements."""
        fields = self.get_all(name)
        if canonical_name(name).lower() not in LIST_HEADERS:
            return fields
        out: list[str] = []
        for value in fields:
            out.extend(split_commas(value))
        return out

    def add(self, name: str, value: str) -> None:
        canon = canonical_name(name)
        self._items.append((canon, value))
        self._keys.append(canon.lower())

    def prepend(self, name: str, value: str) -> None:
        canon = canonical_name(name)
        self._items.insert(0, (canon, value))
        self._keys.insert(0, canon.lower())

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one (kept at the first one's position)."""
        canon = canonical_name(name)
        key = canon.lower()
        if key not in self._keys:
            self.add(canon, value)
            return
        first = self._keys.index(key)
        self.remove(canon)
        self._items.insert(first, (canon, value))
        self._keys.insert(first, key)

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        kept = [(item, k) for item, k in zip(self._items, self._keys, strict=True) if k != key]
        self._items = [item for item, _ in kept]
        self._keys = [k for _, k in kept]

    def names(self) -> list[str]:
        return [n for n, _ in self._items]

    def keyed(self) -> Iterator[tuple[str, str]]:
        """(lower-case name, value) pairs, for single-pass scans."""
        return zip(self._keys, (v for _, v in self._items), strict=True)


@dataclass
class Via:
    """One Via value (RFC 3261 §20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        if value is None or not value.isdigit():
            return None
        return int(value)

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        sent_by = f"{format_host(self.host)}{port}"
        return f"{self.protocol}/{self.transport} {sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one via-parm: ``SIP / 2.0 / UDP host[:port] *(;param)`` with LWS around '/'."""
    text = value.strip(WS)
    parts: list[str] = []
    i = 0
    n = len(text)
    for _ in range(3):
        while i < n and text[i] in WS:
            i += 1
        j = i
        while j < n and text[j] in TOKEN_CHARS:
            j += 1
        if j == i:
            raise SipParseError(f"invalid Via: {value[:60]!r}")
        parts.append(text[i:j])
        i = j
        while i < n and text[i] in WS:
            i += 1
        if len(parts) < 3:
            if i >= n or text[i] != "/":
                raise SipParseError(f"invalid Via: {value[:60]!r}")
            i += 1
    name, version, transport = parts
    if name.upper() != "SIP":
        raise SipParseError(f"invalid Via protocol: {name[:20]!r}")
    rest = text[i:]
    semi = rest.find(";")
    sent_by, params_text = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    sent_by = sent_by.strip(WS)
    if sent_by.startswith("["):
        end = sent_by.find("]")
        if end < 0:
            raise SipParseError(f"invalid Via host: {sent_by[:60]!r}")
        host, port_text = sent_by[: end + 1], sent_by[end + 1 :].strip(WS)
        port: int | None = None
        if port_text:
            if not port_text.startswith(":"):
                raise SipParseError(f"invalid Via host: {sent_by[:60]!r}")
            port = parse_port(port_text[1:].strip(WS))
    else:
        host, colon, port_text = sent_by.partition(":")
        host = host.strip(WS)
        port = parse_port(port_text.strip(WS)) if colon else None
    validate_host(host)
    params = parse_params(params_text, "Via")
    branch = params.get("branch", "")
    if "branch" in params and not branch:
        raise SipParseError("Via branch without a value")
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{name.upper()}/{version}",
    )


@dataclass
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not is_token(parts[1]):
        raise SipParseError(f"invalid CSeq: {value[:60]!r}")
    return CSeq(parse_uint(parts[0], "CSeq number"), parts[1])


@dataclass
class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, ..."""

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        if value is None or not value.isdigit():
            return None
        return min(int(value), 2**32 - 1)

    def param(self, name: str) -> str | None:
        return unquote_param(self.params.get(name.lower()))

    def __str__(self) -> str:
        # Always use the name-addr form: an addr-spec with URI parameters would otherwise turn
        # them into header parameters (RFC 3261 §20.10).
        name = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)`` (RFC 3261 §20.10)."""
    text = value.strip(WS)
    if not text:
        raise SipParseError("empty address")
    display: str | None = None
    if text[0] == '"':
        display, i = read_quoted(text, 0)
        rest = text[i:].lstrip(WS)
        if not rest.startswith("<"):
            raise SipParseError(f"quoted display name without <URI>: {value[:60]!r}")
        return _finish_name_addr(display, rest, value)
    lt = text.find("<")
    if lt >= 0:
        name_part = text[:lt].strip(WS)
        if name_part:
            tokens = name_part.split()
            # RFC 3261 §25.1 display-name = *(token LWS) / quoted-string; RFC 4475 §3.1.1.6
            # accepts a token directly followed by '<'.
            if not all(is_token(tok) for tok in tokens):
                raise SipParseError(f"invalid display name: {name_part[:60]!r}")
            display = " ".join(tokens)
        return _finish_name_addr(display, text[lt:], value)
    # addr-spec form: every ';' parameter belongs to the header, and the URI may not contain
    # ',', '?' or ';' (RFC 3261 §20.10, RFC 4475 §3.1.2.13).
    semi = text.find(";")
    uri_text, params_text = (text, "") if semi < 0 else (text[:semi], text[semi:])
    uri_text = uri_text.strip(WS)
    if "?" in uri_text or "," in uri_text:
        raise SipParseError(f"URI with headers must be enclosed in <>: {uri_text[:60]!r}")
    return NameAddr(uri=parse_uri(uri_text), params=parse_params(params_text, "address"))


def _finish_name_addr(display: str | None, rest: str, original: str) -> NameAddr:
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(f"unterminated <URI>: {original[:60]!r}")
    uri_text = rest[1:gt]
    # No LWS inside the brackets (RFC 4475 §3.1.2.14).
    uri = parse_uri(uri_text)
    params = parse_params(rest[gt + 1 :], "address")
    return NameAddr(uri=uri, display_name=display, params=params)


def parse_contact(value: str) -> NameAddr | None:
    """A Contact value; ``None`` stands for ``*`` (RFC 3261 §10.2.2, REGISTER only)."""
    if value.strip(WS) == "*":
        return None
    return parse_name_addr(value)


def parse_token_list(value: str) -> list[str]:
    """Comma-separated tokens (Require, Supported, Allow ...)."""
    out: list[str] = []
    for item in split_commas(value):
        if not item:
            continue
        if not is_token(item):
            raise SipParseError(f"invalid token in list: {item[:40]!r}")
        out.append(item)
    return out
