"""Lexical pieces of the SIP grammar (RFC 3261 §25.1) shared by the header and URI parsers."""

from __future__ import annotations

import re

from sip.errors import SipParseError

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# Linear white space after unfolding: SP and HTAB.
WS = " \t"


def is_token(text: str) -> bool:
    return _TOKEN_RE.match(text) is not None


def require_token(text: str, what: str) -> str:
    if not is_token(text):
        raise SipParseError(f"invalid {what}: {text[:40]!r}")
    return text


def quote(text: str) -> str:
    """A quoted-string for ``text`` (RFC 3261 §25.1: quoted-pair for DQUOTE and backslash)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string starting at ``text[start] == '"'``.

    Returns the unescaped content and the index just past the closing quote. A quoted-pair may
    escape any octet except CR and LF (RFC 3261 §25.1), NUL included (RFC 4475 §3.1.1.2).
    """
    i = start + 1
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n or text[i + 1] in "\r\n":
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError("unterminated quoted string")


def split_commas(value: str) -> list[str]:
    """Split a header value on the commas that separate list elements (RFC 3261 §7.3.1).

    Commas inside quoted strings and inside ``<...>`` (URIs may hold commas) do not split.
    Empty elements are kept so callers can reject them.
    """
    if "," not in value:
        return [value.strip(WS)]
    parts: list[str] = []
    depth = 0
    i = 0
    start = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            _, i = read_quoted(value, i)
            continue
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip(WS))
            start = i + 1
        i += 1
    parts.append(value[start:].strip(WS))
    return parts


def parse_params(text: str, what: str) -> dict[str, str | None]:
    """Parse ``;name[=value]`` generic parameters (RFC 3261 §25.1 generic-param).

    ``text`` starts at the first ``;`` (or is empty). Names are case-insensitive and stored in
    lower case; values keep their case (a tag is case-sensitive). LWS is allowed around ``;``
    and ``=``. Empty parameters (``;;``) are a syntax error (RFC 4475 §3.1.2.1).
    """
    params: dict[str, str | None] = {}
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in WS:
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise SipParseError(f"invalid {what} parameters: {text[:40]!r}")
        i += 1
        while i < n and text[i] in WS:
            i += 1
        j = i
        while j < n and text[j] in TOKEN_CHARS:
            j += 1
        name = text[i:j]
        if not name:
            raise SipParseError(f"empty {what} parameter")
        i = j
        while i < n and text[i] in WS:
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in WS:
                i += 1
            if i < n and text[i] == '"':
                inner, i = read_quoted(text, i)
                value = quote(inner)
            else:
                j = i
                # gen-value = token / host / quoted-string; host adds ':' and '[]' for IPv6.
                while j < n and (text[j] in TOKEN_CHARS or text[j] in ":[]"):
                    j += 1
                value = text[i:j]
                if not value:
                    raise SipParseError(f"empty value for {what} parameter {name!r}")
                i = j
        params[name.lower()] = value
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote_param(value: str | None) -> str | None:
    """A parameter value with its quotes removed (values are stored as they appear)."""
    if value is not None and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner, _ = read_quoted(value, 0)
        return inner
    return value


def parse_uint(text: str, what: str, maximum: int = 2**32 - 1) -> int:
    """A decimal unsigned integer within ``maximum`` (RFC 4475 §3.1.2.4: no silent overflow)."""
    text = text.strip(WS)
    if not text.isascii() or not text.isdigit():
        raise SipParseError(f"invalid {what}: {text[:40]!r}")
    # Leading zeros are legal (RFC 4475 §3.1.1.1); bound the length before int() to stay cheap.
    stripped = text.lstrip("0") or "0"
    if len(stripped) > 20 or int(stripped) > maximum:
        raise SipParseError(f"{what} out of range: {text[:40]!r}")
    return int(stripped)
