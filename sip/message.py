"""SIP requests and responses: parsing, validation and serialisation (RFC 3261 §7, §18.3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sip.errors import SipParseError
from sip.grammar import WS, is_token, parse_uint, split_commas
from sip.headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    parse_contact,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from sip.uri import Uri, parse_uri

SIP_VERSION = "SIP/2.0"
MAX_HEADER_BYTES = 64 * 1024
_VERSION_RE = re.compile(r"SIP/\d+\.\d+\Z", re.IGNORECASE)
_LINE_SPLIT_RE = re.compile(r"\r?\n")
# RFC 3261 §25.1 rfc1123-date; only GMT is allowed (RFC 4475 §3.1.2.12).
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT\Z"
)
# Headers that may appear at most once (RFC 3261 §20 and Table 2); a second one is answered 400.
_SINGLE_VALUED = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length")
KNOWN_METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS REGISTER INFO UPDATE PRACK SUBSCRIBE NOTIFY REFER MESSAGE "
    "PUBLISH".split()
)

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 421: "Extension Required", 422: "Session Interval Too Small",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}  # fmt: skip


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status, "Unknown")


@dataclass(eq=False)
class Message:
    """What requests and responses share: headers, body and typed accessors."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # Typed accessors parse on demand; parse_message() has already validated them, and the
    # stack never sets a header it did not build from a typed value.
    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        value = self.headers.values("Via")
        if not value:
            raise SipParseError("missing Via")
        return parse_via(value[0])

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if not value:
            raise SipParseError("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise SipParseError("missing CSeq")
        return parse_cseq(value)

    @property
    def from_(self) -> NameAddr:
        value = self.headers.get("From")
        if value is None:
            raise SipParseError("missing From")
        return parse_name_addr(value)

    @property
    def to(self) -> NameAddr:
        value = self.headers.get("To")
        if value is None:
            raise SipParseError("missing To")
        return parse_name_addr(value)

    @property
    def contacts(self) -> list[NameAddr]:
        return [c for c in (parse_contact(v) for v in self.headers.values("Contact")) if c]

    @property
    def record_routes(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.headers.values("Record-Route")]

    @property
    def routes(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.headers.values("Route")]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip(WS).lower()

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_uint(value, "Max-Forwards")

    def header_tokens(self, name: str) -> list[str]:
        """Option tags and method lists (Require, Supported, Allow ...), case preserved."""
        return [v for v in self.headers.values(name) if v]

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


@dataclass(eq=False)
class Request(Message):
    method: str = "OPTIONS"
    uri: Uri = field(default_factory=Uri)

    def __bytes__(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {SIP_VERSION}")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


@dataclass(eq=False)
class Response(Message):
    status: int = 200
    reason: str = "OK"

    def __bytes__(self) -> bytes:
        return self._serialize(f"{SIP_VERSION} {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _split_head(data: bytes) -> tuple[bytes, bytes, bool]:
    """Split the header section from the body. Returns (head, rest, had_empty_line)."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf + 1 <= lf):
        return data[:crlf], data[crlf + 4 :], True
    if lf >= 0:
        return data[:lf], data[lf + 2 :], True
    return data.rstrip(b"\r\n"), b"", False


def _header_lines(head: str) -> list[str]:
    """Header lines with line folding undone (RFC 3261 §7.3.1)."""
    lines: list[str] = []
    for line in _LINE_SPLIT_RE.split(head):
        if line and line[0] in WS:
            if not lines:
                raise SipParseError("folded line before the first header")
            lines[-1] = lines[-1].rstrip(WS) + " " + line.strip(WS)
        elif line:
            lines.append(line)
    return lines


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message from a datagram (or, with ``stream``, from bytes a
    :class:`StreamFramer` cut at the message boundary).

    Raises :class:`SipParseError` naming the problem; its ``status`` is the response a UAS
    sends for an invalid request (400, or 505 for an unknown SIP version).
    """
    if len(data) > 2**20:
        raise SipParseError("message too large", 513)
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head_bytes, rest, _ = _split_head(data)
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise SipParseError("header section too large", 513)
    head = head_bytes.decode("utf-8", "surrogateescape")
    lines = _header_lines(head)
    if not lines:
        raise SipParseError("empty message")
    start = lines[0]
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip(WS)
        if not colon or not is_token(name):
            raise SipParseError(f"malformed header line: {line[:60]!r}")
        headers.add(name, value.strip(WS))
    message: Request | Response
    if start.startswith("SIP/") or start[:4].upper() == "SIP/":
        message = _parse_status_line(start)
    else:
        message = _parse_request_line(start)
    message.headers = headers
    message.body = _frame_body(headers, rest, stream)
    _validate_syntax(message)
    return message


def _parse_request_line(line: str) -> Request:
    # Exactly one SP between the three elements, none at the end (RFC 4475 §3.1.2.8-§3.1.2.10).
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"malformed Request-Line: {line[:80]!r}")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"invalid method: {method[:40]!r}")
    if version.upper() != SIP_VERSION:
        if _VERSION_RE.match(version):
            raise SipParseError(f"SIP version {version[:20]} not supported", 505)
        raise SipParseError(f"malformed Request-Line: {line[:80]!r}")
    if uri_text.startswith("<"):
        raise SipParseError("Request-URI enclosed in <>")
    uri = parse_uri(uri_text)
    if uri.headers:
        # RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        raise SipParseError("Request-URI carries headers")
    return Request(method=method, uri=uri)


def _parse_status_line(line: str) -> Response:
    version, sp, rest = line.partition(" ")
    if not sp or version.upper() != SIP_VERSION:
        raise SipParseError(f"malformed Status-Line: {line[:80]!r}")
    code, sp, reason = rest.partition(" ")
    if len(code) != 3 or not code.isascii() or not code.isdigit():
        raise SipParseError(f"invalid status code: {code[:20]!r}")
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code out of range: {status}")
    return Response(status=status, reason=reason)


def _frame_body(headers: Headers, rest: bytes, stream: bool) -> bytes:
    lengths = headers.get_all("Content-Length")
    if not lengths:
        if stream and rest:
            raise SipParseError("Content-Length is required on stream transports")
        # RFC 3261 §18.3: on UDP without Content-Length the body runs to the datagram's end.
        return rest
    values = {parse_uint(v, "Content-Length") for v in lengths}
    if len(values) != 1:
        raise SipParseError("conflicting Content-Length values")
    length = values.pop()
    if length > len(rest):
        raise SipParseError(f"body shorter than Content-Length ({len(rest)} < {length})")
    # Octets after the body are not part of this message (RFC 4475 §3.1.1.8).
    return rest[:length]


def _validate_syntax(message: Request | Response) -> None:
    """Parse every header the stack depends on, so malformed ones surface here (RFC 4475)."""
    for key, value in message.headers.keyed():
        validate = _VALIDATORS.get(key)
        if validate is not None:
            validate(value)
    if isinstance(message, Request):
        cseq = message.headers.get("CSeq")
        if cseq is not None and parse_cseq(cseq).method != message.method:
            # RFC 4475 §3.1.2.18 prefers 501 when the method itself is unknown.
            status = 400 if message.method in KNOWN_METHODS else 501
            raise SipParseError("CSeq method does not match the request method", status)


def _each(parse: Callable[[str], object]) -> Callable[[str], None]:
    def validate(value: str) -> None:
        for element in split_commas(value):
            parse(element)

    return validate


def _call_id(value: str) -> None:
    if not value or any(ch in WS for ch in value):
        raise SipParseError(f"invalid Call-ID: {value[:60]!r}")


def _date(value: str) -> None:
    if _DATE_RE.match(value) is None:
        raise SipParseError(f"invalid Date: {value[:60]!r}")


_VALIDATORS: dict[str, Callable[[str], object]] = {
    "via": _each(parse_via),
    "from": parse_name_addr,
    "to": parse_name_addr,
    "contact": _each(parse_contact),
    "route": _each(parse_name_addr),
    "record-route": _each(parse_name_addr),
    "cseq": parse_cseq,
    "call-id": _call_id,
    "max-forwards": lambda value: parse_uint(value, "Max-Forwards"),
    "date": _date,
}


def check_request(request: Request) -> tuple[int, str] | None:
    """Semantic checks a UAS makes before handling a request (RFC 3261 §8.2, RFC 4475 §3.3).

    Returns the (status, reason) to reject the request with, or None when it is acceptable.
    Extension checks (Require, methods, content types) belong to the UA core.
    """
    h = request.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in h:
            return 400, f"Missing {name} header"
    for name in _SINGLE_VALUED:
        if len(h.get_all(name)) > 1:
            return 400, f"Multiple {name} headers"
    branch = request.top_via.branch
    if branch is not None and branch.lower() == "z9hg4bk":
        # RFC 4475 §3.2.1: the magic cookie alone is no transaction identifier.
        return 400, "Via branch has no transaction identifier"
    if not request.uri.is_sip and request.uri.scheme != "tel":
        return 416, f"Unsupported URI Scheme {request.uri.scheme[:30]}"
    return None


def lenient_response_fields(data: bytes) -> dict[str, list[str]] | None:
    """The raw Via/From/To/Call-ID/CSeq lines of a request that failed to parse, so a 400 can
    still be sent (RFC 3261 §8.2.6.2 copies them verbatim); None if it is not answerable."""
    try:
        head, _, _ = _split_head(data.lstrip(b"\r\n")[:MAX_HEADER_BYTES])
        lines = _header_lines(head.decode("utf-8", "surrogateescape"))
    except SipParseError:
        return None
    if not lines or lines[0].upper().startswith("SIP/"):
        return None  # responses are never answered
    wanted = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To"}
    wanted.update({"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"})
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = wanted.get(name.strip(WS).lower())
        if colon and key:
            fields.setdefault(key, []).append(value.strip(WS))
    if not all(k in fields for k in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    return fields


class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 §18.3).

    Feed bytes with :meth:`feed`; take complete messages (raw bytes) with :meth:`messages`.
    CRLF keep-alives between messages are skipped and counted (RFC 5626 §3.5.1: a double-CRLF
    ping is answered with a single CRLF pong by the transport). A framing error raises
    SipParseError: the connection cannot be re-synchronised and must be closed.
    """

    def __init__(self, max_message: int = 2**20) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self.pings = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def messages(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            # Skip keep-alive CRLFs between messages.
            stripped = 0
            while stripped < len(self._buffer) and self._buffer[stripped] in b"\r\n":
                stripped += 1
            if stripped:
                if b"\r\n\r\n" in self._buffer[:stripped]:
                    self.pings += 1
                del self._buffer[:stripped]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise SipParseError("header section too large", 513)
                return out
            head = bytes(self._buffer[:end]).decode("utf-8", "surrogateescape")
            length = self._content_length(head)
            total = end + 4 + length
            if total > self._max:
                raise SipParseError("message too large", 513)
            if len(self._buffer) < total:
                return out
            out.append(bytes(self._buffer[:total]))
            del self._buffer[:total]

    @staticmethod
    def _content_length(head: str) -> int:
        values: set[int] = set()
        for line in _header_lines(head)[1:]:
            name, colon, value = line.partition(":")
            if colon and name.strip(WS).lower() in ("content-length", "l"):
                values.add(parse_uint(value, "Content-Length"))
        if not values:
            raise SipParseError("Content-Length is required on stream transports")
        if len(values) != 1:
            raise SipParseError("conflicting Content-Length values")
        return values.pop()
