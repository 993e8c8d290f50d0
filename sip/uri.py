"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and other schemes kept opaque."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from urllib.parse import quote as _pct_quote
from urllib.parse import unquote

from sip.errors import SipParseError

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
# RFC 3261 §25.1 hostname, widened to '_' which real deployments use in host names.
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9_])?)*\.?\Z"
)
_BAD_URI_RE = re.compile(r'[ \t\r\n<>"]')
# Characters left unescaped in a user part we build ourselves (RFC 3261 §25.1 unreserved and
# user-unreserved).
_USER_SAFE = "-_.!~*'()&=+$,;?/"


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes. NULs stay in the string (RFC 4475 §3.1.1.4)."""
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


def escape_user(text: str) -> str:
    """The escaped form of a user part (e.g. a dialled number containing '#')."""
    return _pct_quote(text, safe=_USER_SAFE)


def validate_host(host: str) -> str:
    """Check a host: a hostname, an IPv4 address or a bracketed IPv6 reference."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise SipParseError(f"invalid IPv6 reference: {host[:60]!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipParseError(f"invalid IPv6 reference: {host[:60]!r}") from None
        return host
    if not host or _HOSTNAME_RE.match(host) is None:
        raise SipParseError(f"invalid host: {host[:60]!r}")
    return host


def format_host(host: str) -> str:
    """Bracket a bare IPv6 address for use in a URI or Via."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def bare_host(host: str) -> str:
    """The host without IPv6 brackets (what sockets and ipaddress want)."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"invalid port: {text[:20]!r}")
    return int(text)


def _parse_uri_params(text: str) -> dict[str, str | None]:
    """URI parameters (RFC 3261 §19.1.1 uri-parameters): ``;name[=value]``, no LWS, no quotes."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    if text[0] != ";":
        raise SipParseError(f"invalid URI parameters: {text[:40]!r}")
    for part in text[1:].split(";"):
        if not part:
            raise SipParseError("empty URI parameter")
        name, eq, value = part.partition("=")
        if not name:
            raise SipParseError("empty URI parameter name")
        params[name.lower()] = value if eq else None
    return params


@dataclass
class Uri:
    """A URI as SIP carries it.

    ``user``, ``password``, parameter values and ``headers`` keep their escaped wire form, so a
    URI re-serialises exactly (escapes are meaningful only where the grammar has them,
    RFC 4475 §3.1.1.5); use :meth:`user_unescaped` to compare or display. URIs of schemes other
    than sip, sips and tel keep everything after the colon in ``opaque``.
    """

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    password: str | None = None
    opaque: str | None = None

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    def with_params(self, **params: str | None) -> Uri:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def without_headers(self) -> Uri:
        return replace(self, headers={})

    def key(self) -> tuple[object, ...]:
        """A comparison key following RFC 3261 §19.1.4 closely enough for dialog and
        registration matching: scheme and host case-insensitive, user case-sensitive after
        unescaping, and the parameters that must match when present."""
        if not self.is_sip:
            return (self.scheme, self.user_unescaped, (self.opaque or "").lower())
        significant = tuple(
            (name, (self.params.get(name) or "").lower())
            for name in ("transport", "user", "ttl", "method", "maddr")
            if name in self.params
        )
        return (
            self.scheme,
            self.user_unescaped,
            self.password,
            self.host.lower(),
            self.port,
            significant,
        )

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            out = f"tel:{self.user or ''}"
        else:
            userinfo = ""
            if self.user is not None:
                userinfo = self.user
                if self.password is not None:
                    userinfo += ":" + self.password
                userinfo += "@"
            out = f"{self.scheme}:{userinfo}{format_host(self.host)}"
            if self.port is not None:
                out += f":{self.port}"
        for name, value in self.params.items():
            out += f";{name}" if value is None else f";{name}={value}"
        if self.headers:
            out += "?" + "&".join(f"{k}={v}" for k, v in self.headers.items())
        return out


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI; sip/sips/tel are parsed fully, other schemes are kept opaque."""
    if not text or _BAD_URI_RE.search(text) is not None:
        raise SipParseError(f"invalid URI: {text[:60]!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.match(scheme) is None:
        raise SipParseError(f"invalid URI: {text[:60]!r}")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip_uri(scheme, rest)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise SipParseError("tel URI without a number")
        return Uri(
            scheme="tel", user=number, params=_parse_uri_params(";" + params if params else "")
        )
    if not rest:
        raise SipParseError(f"invalid URI: {text[:60]!r}")
    return Uri(scheme=scheme, opaque=rest)


def _parse_sip_uri(scheme: str, rest: str) -> Uri:
    user: str | None = None
    password: str | None = None
    # '@' never appears unescaped after the userinfo, while the userinfo may hold ';', '?'
    # and ':' (RFC 3261 §25.1 user-unreserved; RFC 4475 §3.1.1.2 and §3.1.1.9).
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        # The password follows the first ':' (user may not contain an unescaped ':').
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
        if not user:
            raise SipParseError("SIP URI with an empty user part")
    headers_text = ""
    qmark = rest.find("?")
    if qmark >= 0:
        rest, headers_text = rest[:qmark], rest[qmark + 1 :]
    semi = rest.find(";")
    hostport, params_text = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(f"invalid IPv6 reference: {hostport[:60]!r}")
        host, port_text = hostport[: end + 1], hostport[end + 1 :]
        if port_text and not port_text.startswith(":"):
            raise SipParseError(f"invalid host: {hostport[:60]!r}")
        port_text = port_text[1:]
        has_port = bool(hostport[end + 1 :])
    else:
        host, colon, port_text = hostport.partition(":")
        has_port = bool(colon)
    validate_host(host)
    port = parse_port(port_text) if has_port else None
    headers: dict[str, str] = {}
    if headers_text:
        for item in headers_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise SipParseError(f"invalid URI header: {item[:40]!r}")
            headers[name] = value
    return Uri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=_parse_uri_params(params_text),
        headers=headers,
    )
