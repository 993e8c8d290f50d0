"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.

Three layers, each usable on its own:

- header values: :func:`parse_challenges` (``WWW-Authenticate`` / ``Proxy-Authenticate``) and
  :func:`parse_credentials` (``Authorization`` / ``Proxy-Authorization``), raising only
  :class:`~sip.errors.SipParseError`; :func:`compute_response` and :func:`answer_challenge` for
  the arithmetic;
- the UAC side: a :class:`CredentialStore` keyed by realm and a :class:`DigestAuthenticator`
  per dialog or registration that answers 401/407 and pre-authorises later requests;
- the UAS side: :class:`DigestServer`, with stateless HMAC nonces and optional replay checks.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from sip.errors import SipParseError

__all__ = [
    "ALGORITHMS",
    "AuthOutcome",
    "ChallengeResult",
    "CredentialStore",
    "DigestAlgorithm",
    "DigestAuthenticator",
    "DigestChallenge",
    "DigestCredentials",
    "DigestServer",
    "UserCredentials",
    "VerifyResult",
    "VerifyStatus",
    "answer_challenge",
    "choose_challenges",
    "choose_qop",
    "compute_response",
    "find_algorithm",
    "parse_challenges",
    "parse_credentials",
]

# ---------------------------------------------------------------------------------------------
# Algorithms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestAlgorithm:
    """One entry of the IANA "HTTP Digest Algorithm Values" registry (RFC 7616 §6.1)."""

    name: str  # the canonical token, e.g. "SHA-256-sess"
    hashlib_name: str
    session: bool  # -sess: A1 includes the nonce and cnonce (RFC 7616 §3.4.2)
    strength: int  # RFC 8760 §2.4 preference: higher is stronger; -sess counts as its base

    def hash(self, data: bytes) -> str:
        return hashlib.new(self.hashlib_name, data).hexdigest()


def _available(hashlib_name: str) -> bool:
    try:
        hashlib.new(hashlib_name)
    except ValueError:  # an OpenSSL build without it
        return False
    return True


ALGORITHMS: Mapping[str, DigestAlgorithm] = {
    alg.name.upper(): alg
    for base, hashlib_name, strength in (
        ("MD5", "md5", 1),
        ("SHA-256", "sha256", 2),
        ("SHA-512-256", "sha512_256", 3),
    )
    if _available(hashlib_name)
    for alg in (
        DigestAlgorithm(base, hashlib_name, False, strength),
        DigestAlgorithm(base + "-sess", hashlib_name, True, strength),
    )
}


def find_algorithm(name: str | None) -> DigestAlgorithm | None:
    """The algorithm for an ``algorithm`` parameter (None when unsupported).

    An absent parameter means MD5 (RFC 7616 §3.3); names compare case-insensitively.
    """
    return ALGORITHMS.get("MD5" if name is None else name.upper())


def _encode(text: str) -> bytes:
    # The message layer decodes with surrogateescape, so this hashes the octets that were sent.
    return text.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------------------------
# Header grammar (RFC 3261 §25.1 challenge / credentials, RFC 7235 §2.1 and §4.1)
# ---------------------------------------------------------------------------------------------

# RFC 7230 tchar, a superset of RFC 3261's token characters.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~#$&^|"
)
_TOKEN68_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/")
_WS = " \t"
# Folded lines (RFC 3261 §7.3.1): the message layer normally unfolds, accept them anyway.
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_NC_RE = re.compile(r"[0-9A-Fa-f]{1,8}\Z")
# RFC 8187 §3.2.1 value-chars: attr-char / pct-encoded, so ASCII only.
_EXT_VALUE_RE = re.compile(r"(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-Fa-f]{2})*\Z")


def _is_control(ch: str) -> bool:
    return (ch < " " and ch != "\t") or ch == "\x7f"


def _value_char(ch: str) -> bool:
    # Unquoted values should be tokens; accept any visible character that cannot end the
    # element (real servers send e.g. unquoted base64 nonces).
    return ch > " " and ch not in '",\\\x7f'


@dataclass
class _RawAuth:
    """One challenge or credentials as written: a scheme and its auth-params or token68."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None


class _Scanner:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def read_run(self, chars: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def read_token(self, what: str) -> str:
        token = self.read_run(_TOKEN_CHARS)
        if not token:
            raise SipParseError(f"expected a {what} at {self.text[self.pos : self.pos + 20]!r}")
        return token

    def read_value(self) -> str:
        if self.peek() == '"':
            return self.read_quoted()
        start = self.pos
        while self.pos < len(self.text) and _value_char(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise SipParseError("empty auth-param value")
        return self.text[start : self.pos]

    def read_quoted(self) -> str:
        # RFC 3261 §25.1: quoted-pair = "\" followed by any octet but CR and LF.
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                if self.pos + 1 >= len(text) or text[self.pos + 1] in "\r\n":
                    break
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if _is_control(ch):
                raise SipParseError("control character in quoted-string")
            out.append(ch)
            self.pos += 1
        raise SipParseError("unterminated quoted-string")

    def end_of_element(self) -> None:
        """Consume the optional comma after a list element; anything else is an error."""
        self.skip_ws()
        if self.at_end():
            return
        if self.peek() != ",":
            raise SipParseError(f"expected ',' at {self.text[self.pos : self.pos + 20]!r}")
        self.pos += 1


def _prepare(value: str) -> str:
    try:
        _encode(value)
    except UnicodeEncodeError:
        raise SipParseError("invalid characters in authentication header") from None
    value = _FOLD_RE.sub(" ", value)
    if "\r" in value or "\n" in value:
        raise SipParseError("line break in authentication header")
    return value


def _try_param_start(s: _Scanner) -> str | None:
    """Read ``name =`` if that is what follows, else leave the scanner where it was."""
    start = s.pos
    name = s.read_run(_TOKEN_CHARS)
    if name:
        s.skip_ws()
        if s.peek() == "=":
            s.pos += 1
            s.skip_ws()
            # "abc==" after a scheme is token68 padding, not a parameter (RFC 7235 §2.1).
            if not s.at_end() and s.peek() not in "=,":
                return name.lower()
    s.pos = start
    return None


def _add_param(raw: _RawAuth, name: str, value: str) -> None:
    if raw.token68 is not None:
        raise SipParseError(f"auth-param after token68 in {raw.scheme} challenge")
    # RFC 7235 §2.1: each parameter name occurs only once per challenge.
    if name in raw.params:
        raise SipParseError(f"duplicate auth-param {name!r}")
    raw.params[name] = value


def _parse_auth_list(value: str) -> list[_RawAuth]:
    """Split a header value into challenges (RFC 7235 §4.1: ``1#challenge``).

    A list element that is ``name = value`` is a parameter of the current challenge; any other
    element starts a new challenge with its scheme, so
    ``Digest realm="a", nonce="1", Digest realm="a", nonce="2"`` is two challenges.
    """
    s = _Scanner(_prepare(value))
    items: list[_RawAuth] = []
    current: _RawAuth | None = None
    while True:
        s.skip_ws()
        if s.at_end():
            break
        if s.peek() == ",":  # empty list elements are allowed (RFC 7230 §7)
            s.pos += 1
            continue
        word = s.read_token("scheme or parameter name")
        s.skip_ws()
        if s.peek() == "=":
            if current is None:
                raise SipParseError("auth-param before any scheme")
            s.pos += 1
            s.skip_ws()
            _add_param(current, word.lower(), s.read_value())
            s.end_of_element()
            continue
        current = _RawAuth(scheme=word)
        items.append(current)
        if s.at_end() or s.peek() == ",":
            s.end_of_element()
            continue
        name = _try_param_start(s)
        if name is not None:
            _add_param(current, name, s.read_value())
        else:
            token68 = s.read_run(_TOKEN68_CHARS)
            if not token68:
                raise SipParseError(f"bad text after scheme {word!r}")
            s.skip_ws()
            while s.peek() == "=":
                token68 += "="
                s.pos += 1
            current.token68 = token68
        s.end_of_element()
    if not items:
        raise SipParseError("empty authentication header")
    return items


def _quote(text: str) -> str:
    if any(_is_control(ch) for ch in text):
        raise ValueError(f"control character in digest parameter {text[:40]!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip(_WS).lower() == "true"


# ---------------------------------------------------------------------------------------------
# Challenges and credentials
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestChallenge:
    """One Digest challenge (RFC 7616 §3.3). ``params`` holds every parameter as received."""

    realm: str
    nonce: str
    algorithm: str | None = None  # as received; None means MD5
    qop: tuple[str, ...] = ()  # lower-cased options; empty for an RFC 2069 challenge
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False
    params: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def algorithm_info(self) -> DigestAlgorithm | None:
        """The algorithm, or None when we do not support it."""
        return find_algorithm(self.algorithm)

    @property
    def usable(self) -> bool:
        """Whether :func:`answer_challenge` can answer it (known algorithm and qop)."""
        if self.algorithm_info is None:
            return False
        return not self.qop or choose_qop(self.qop) is not None

    def serialize(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class DigestCredentials:
    """One Digest credentials value (RFC 7616 §3.4). ``nc`` keeps the hex text as sent, since
    the response hashes it verbatim."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None  # None means MD5
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    userhash: bool = False
    params: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def nc_value(self) -> int | None:
        return None if self.nc is None else int(self.nc, 16)

    def serialize(self) -> str:
        """The header value, laid out the way strict verifiers (Kamailio) expect: quoted
        strings except ``algorithm``, ``qop`` and ``nc``, which are tokens (RFC 3261 §25.1)."""
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
        ]
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def _challenge_from_raw(raw: _RawAuth) -> DigestChallenge:
    p = raw.params
    if raw.token68 is not None:
        raise SipParseError("Digest challenge with token68")
    realm = p.get("realm")
    nonce = p.get("nonce")
    if realm is None or nonce is None:
        raise SipParseError("Digest challenge without realm or nonce")
    qop = p.get("qop")
    options = () if qop is None else tuple(q.strip(_WS).lower() for q in qop.split(","))
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=p.get("algorithm"),
        qop=tuple(q for q in options if q),
        opaque=p.get("opaque"),
        stale=_is_true(p.get("stale")),
        domain=p.get("domain"),
        userhash=_is_true(p.get("userhash")),
        params=dict(p),
    )


def parse_challenges(value: str) -> list[DigestChallenge]:
    """The Digest challenges in one ``WWW-Authenticate`` / ``Proxy-Authenticate`` value, in
    order. Challenges of other schemes (Basic, Bearer ...) are parsed and left out."""
    return [
        _challenge_from_raw(raw)
        for raw in _parse_auth_list(value)
        if raw.scheme.lower() == "digest"
    ]


def _ext_username(value: str) -> str:
    # RFC 7616 §3.4.4 username* uses the RFC 8187 ext-value: UTF-8'lang'percent-encoded.
    charset, sep, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    if not sep or not sep2 or charset.lower() != "utf-8" or not _EXT_VALUE_RE.match(encoded):
        raise SipParseError("bad username* value")
    try:
        return unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("bad username* encoding") from None


def parse_credentials(value: str) -> DigestCredentials:
    """An ``Authorization`` / ``Proxy-Authorization`` value (one credentials, RFC 3261 §25.1)."""
    items = _parse_auth_list(value)
    if len(items) != 1:
        raise SipParseError("more than one credentials in one header")
    raw = items[0]
    if raw.scheme.lower() != "digest":
        raise SipParseError(f"unsupported authorization scheme {raw.scheme!r}")
    if raw.token68 is not None:
        raise SipParseError("Digest credentials with token68")
    p = raw.params
    username = p.get("username")
    if "username*" in p:
        if username is not None:
            raise SipParseError("both username and username*")
        username = _ext_username(p["username*"])
    missing = [n for n in ("realm", "nonce", "uri", "response") if n not in p]
    if username is None or missing:
        raise SipParseError("Digest credentials missing " + ", ".join(missing or ["username"]))
    qop = p.get("qop")
    nc = p.get("nc")
    cnonce = p.get("cnonce")
    if qop is not None:
        qop = qop.strip(_WS).lower()
        if nc is None or cnonce is None:
            raise SipParseError("Digest credentials with qop but without nc or cnonce")
        if not _NC_RE.match(nc):
            raise SipParseError(f"bad nonce-count {nc[:20]!r}")
    return DigestCredentials(
        username=username,
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"],
        algorithm=p.get("algorithm"),
        cnonce=cnonce,
        opaque=p.get("opaque"),
        qop=qop,
        nc=nc if qop is not None else None,
        userhash=_is_true(p.get("userhash")),
        params=dict(p),
    )


# ---------------------------------------------------------------------------------------------
# The arithmetic (RFC 7616 §3.4.1 to §3.4.3, RFC 2617 §3.2.2 for the qop-less RFC 2069 form)
# ---------------------------------------------------------------------------------------------


def choose_qop(offered: Sequence[str]) -> str | None:
    """``auth`` when offered, else ``auth-int``, else None (nothing we can use)."""
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    return None


def compute_response(
    algorithm: DigestAlgorithm,
    *,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value. ``qop`` None is the RFC 2069 form; ``auth-int`` hashes ``body``."""
    h = algorithm.hash
    ha1 = h(_encode(f"{username}:{realm}:{password}"))
    if algorithm.session:
        if cnonce is None:
            raise ValueError("a -sess algorithm needs a cnonce")
        ha1 = h(_encode(f"{ha1}:{nonce}:{cnonce}"))
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + h(body)
    ha2 = h(_encode(a2))
    if qop is None:
        return h(_encode(f"{ha1}:{nonce}:{ha2}"))
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    return h(_encode(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


def _new_cnonce() -> str:
    return secrets.token_hex(16)


def answer_challenge(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> DigestCredentials:
    """Credentials answering ``challenge`` for one request (RFC 7616 §3.4).

    ``uri`` is the Request-URI (RFC 3261 §22.4). Raises ValueError for a challenge that is not
    :attr:`~DigestChallenge.usable`.
    """
    algorithm = challenge.algorithm_info
    if algorithm is None:
        raise ValueError(f"unsupported digest algorithm {challenge.algorithm!r}")
    qop = choose_qop(challenge.qop)
    if challenge.qop and qop is None:
        raise ValueError(f"no supported qop in {challenge.qop!r}")
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError(f"nonce-count out of range: {nc}")
    if (qop is not None or algorithm.session) and cnonce is None:
        cnonce = _new_cnonce()
    nc_text = f"{nc:08x}" if qop is not None else None
    response = compute_response(
        algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    # RFC 7616 §3.4.4: with userhash the username parameter is H(username:realm).
    sent_username = (
        algorithm.hash(_encode(f"{username}:{challenge.realm}")) if challenge.userhash else username
    )
    return DigestCredentials(
        username=sent_username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm.name,
        cnonce=cnonce if (qop is not None or algorithm.session) else None,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc_text,
        userhash=challenge.userhash,
    )


# ---------------------------------------------------------------------------------------------
# UAC side
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserCredentials:
    """A username and password; ``auth_username`` when the digest user differs from the AOR's
    user part (common with trunks)."""

    username: str
    password: str
    auth_username: str | None = None

    @property
    def digest_username(self) -> str:
        return self.auth_username if self.auth_username is not None else self.username

    def __repr__(self) -> str:  # keep passwords out of logs
        return f"UserCredentials(username={self.username!r}, auth_username={self.auth_username!r})"


class CredentialStore:
    """Credentials by realm. The entry for realm None answers any realm without its own entry
    (a trunk account rarely knows its provider's realm in advance)."""

    def __init__(self) -> None:
        self._by_realm: dict[str | None, UserCredentials] = {}

    def add(
        self,
        realm: str | None,
        username: str,
        password: str,
        auth_username: str | None = None,
    ) -> None:
        self._by_realm[realm] = UserCredentials(username, password, auth_username)

    def get(self, realm: str) -> UserCredentials | None:
        return self._by_realm.get(realm) or self._by_realm.get(None)


class AuthOutcome(enum.Enum):
    RETRY = "retry"  # answer with fresh credentials (first challenge, or a forgotten nonce)
    STALE_RETRY = "stale-retry"  # the password was right, only the nonce expired
    FAILED = "failed"  # do not retry: wrong password, no credentials, nothing usable


@dataclass(frozen=True)
class ChallengeResult:
    outcome: AuthOutcome
    reason: str = ""
    realms: tuple[str, ...] = ()  # the realms that will be answered

    @property
    def should_retry(self) -> bool:
        return self.outcome is not AuthOutcome.FAILED


_AUTH_HEADERS = {
    "www-authenticate": "Authorization",
    "proxy-authenticate": "Proxy-Authorization",
}


def choose_challenges(challenges: Iterable[DigestChallenge]) -> dict[str, DigestChallenge]:
    """The challenge to answer per realm: the strongest usable algorithm (RFC 8760 §2.4 lets
    local policy override "topmost"; ours is SHA-512-256 > SHA-256 > MD5, ``-sess`` counting as
    its base), the topmost one on a tie."""
    best: dict[str, DigestChallenge] = {}
    for challenge in challenges:
        algorithm = challenge.algorithm_info
        if algorithm is None or not challenge.usable:
            continue  # RFC 8760 §2.4: ignore challenges we do not understand
        current = best.get(challenge.realm)
        current_alg = None if current is None else current.algorithm_info
        if current_alg is None or algorithm.strength > current_alg.strength:
            best[challenge.realm] = challenge
    return best


@dataclass
class _RealmState:
    challenge: DigestChallenge
    nc: int = 0  # the last nonce-count sent with this nonce
    sess_cnonce: str | None = None
    stale_in_a_row: int = 0


class DigestAuthenticator:
    """Answers 401/407 for one dialog or registration and pre-authorises its later requests.

    Usage: on a 401/407, call :meth:`handle_challenge` with the response's header fields; if the
    result says retry, send the request again (new CSeq) with the header fields from
    :meth:`authorization_headers`. Call :meth:`authorization_headers` for every later request
    too (re-REGISTER, in-dialog requests through an authenticating proxy): they carry the
    remembered challenges with an incremented nonce-count (RFC 3261 §22.3). An ACK reuses the
    INVITE's header fields instead (RFC 3261 §17.1.1.3, §13.2.2.4).
    """

    def __init__(
        self,
        store: CredentialStore,
        *,
        cnonce_factory: Callable[[], str] = _new_cnonce,
        max_stale_retries: int = 2,
    ) -> None:
        self._store = store
        self._cnonce = cnonce_factory
        self._max_stale = max_stale_retries
        # keyed by (header to send, realm): a 401 and a 407 may use the same realm
        self._states: dict[tuple[str, str], _RealmState] = {}

    @property
    def realms(self) -> list[str]:
        return [realm for _, realm in self._states]

    def reset(self) -> None:
        self._states.clear()

    def handle_challenge(self, headers: Iterable[tuple[str, str]]) -> ChallengeResult:
        """Take the challenges of a 401/407 (every ``WWW-Authenticate`` and
        ``Proxy-Authenticate`` field among ``headers``; other fields are ignored)."""
        grouped: dict[str, list[DigestChallenge]] = {}
        malformed: list[str] = []
        for name, value in headers:
            header = _AUTH_HEADERS.get(name.lower())
            if header is None:
                continue
            try:
                grouped.setdefault(header, []).extend(parse_challenges(value))
            except SipParseError as exc:
                malformed.append(exc.reason)  # one bad field must not hide a good one

        chosen: list[tuple[str, DigestChallenge]] = []
        reasons = malformed
        for header, challenges in grouped.items():
            for realm, challenge in choose_challenges(challenges).items():
                if self._store.get(realm) is None:
                    reasons.append(f"no credentials for realm {realm!r}")
                else:
                    chosen.append((header, challenge))
        if not chosen:
            reasons += [
                f"unsupported challenge (algorithm {c.algorithm!r}, qop {','.join(c.qop)!r}) "
                f"for realm {c.realm!r}"
                for challenges in grouped.values()
                for c in challenges
                if not c.usable
            ]
            reason = "; ".join(dict.fromkeys(reasons)) or "no Digest challenge"
            return ChallengeResult(AuthOutcome.FAILED, reason)

        outcomes: list[AuthOutcome] = []
        failures: list[str] = []
        for header, challenge in chosen:
            outcome, reason = self._update(header, challenge)
            outcomes.append(outcome)
            if reason:
                failures.append(reason)
        realms = tuple(c.realm for _, c in chosen)
        if AuthOutcome.FAILED in outcomes:
            return ChallengeResult(AuthOutcome.FAILED, "; ".join(failures), realms)
        if all(o is AuthOutcome.STALE_RETRY for o in outcomes):
            return ChallengeResult(AuthOutcome.STALE_RETRY, "stale nonce", realms)
        return ChallengeResult(AuthOutcome.RETRY, "", realms)

    def _update(self, header: str, challenge: DigestChallenge) -> tuple[AuthOutcome, str]:
        key = (header, challenge.realm)
        previous = self._states.get(key)
        state = _RealmState(challenge)
        if previous is not None and previous.challenge.nonce == challenge.nonce:
            state.nc = previous.nc  # never resend a nonce-count the server has seen
        self._states[key] = state
        if previous is None or previous.nc == 0:
            return AuthOutcome.RETRY, ""  # nothing sent for this realm since its last challenge
        answered_fresh = previous.nc == 1
        if challenge.stale:
            # RFC 7616 §3.3: stale=true means the digest was right and only the nonce was not.
            # Fresh credentials declared stale again and again means a broken server: stop.
            state.stale_in_a_row = previous.stale_in_a_row + 1 if answered_fresh else 0
            if state.stale_in_a_row > self._max_stale:
                return AuthOutcome.FAILED, f"realm {challenge.realm!r} keeps sending stale nonces"
            return AuthOutcome.STALE_RETRY, ""
        if answered_fresh:
            # Credentials computed for the nonce the server had just issued were rejected
            # without stale: the username or password is wrong (RFC 3261 §22.2).
            return AuthOutcome.FAILED, f"credentials rejected for realm {challenge.realm!r}"
        # We reused an older nonce (nc > 1) and the server forgot it without saying stale:
        # that says nothing about the password.
        return AuthOutcome.RETRY, ""

    def authorization_headers(
        self, method: str, uri: str, body: bytes = b""
    ) -> list[tuple[str, str]]:
        """``(name, value)`` header fields for the next request to ``uri`` (the Request-URI),
        one per remembered realm, each with its nonce-count incremented."""
        out: list[tuple[str, str]] = []
        for (header, realm), state in self._states.items():
            user = self._store.get(realm)
            if user is None:
                continue
            state.nc += 1
            algorithm = state.challenge.algorithm_info
            cnonce = None
            if algorithm is not None and algorithm.session:
                # RFC 7616 §3.4.2: the session key uses the first cnonce; servers recompute
                # it from the cnonce sent, so keep sending that one for this nonce.
                if state.sess_cnonce is None:
                    state.sess_cnonce = self._cnonce()
                cnonce = state.sess_cnonce
            elif state.challenge.qop:
                cnonce = self._cnonce()
            credentials = answer_challenge(
                state.challenge,
                username=user.digest_username,
                password=user.password,
                method=method,
                uri=uri,
                nc=state.nc,
                cnonce=cnonce,
                body=body,
            )
            out.append((header, credentials.serialize()))
        return out


# ---------------------------------------------------------------------------------------------
# UAS side
# ---------------------------------------------------------------------------------------------


class VerifyStatus(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, expired nonce: re-challenge with stale=true
    REPLAY = "replay"  # right password, nonce-count not increasing: re-challenge, stale=true
    WRONG_PASSWORD = "wrong password"
    UNKNOWN_USER = "unknown user"
    MALFORMED = "malformed"
    WRONG_REALM = "wrong realm"
    URI_MISMATCH = "uri mismatch"
    INVALID_NONCE = "invalid nonce"  # not one of ours, or tampered
    UNSUPPORTED = "unsupported"  # an algorithm, qop or userhash we did not offer


@dataclass(frozen=True)
class VerifyResult:
    status: VerifyStatus
    reason: str = ""
    username: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK

    @property
    def stale(self) -> bool:
        """Whether the re-challenge should say stale=true (the client knows the password)."""
        return self.status in (VerifyStatus.STALE, VerifyStatus.REPLAY)


_NONCE_MAC_BYTES = 16
_NONCE_RAND_BYTES = 8
_NONCE_LEN = 43  # base64url of 8 + 8 + 16 bytes, unpadded
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}\Z")
# Several instances may share the secret behind a dispatcher; tolerate their clocks differing.
_CLOCK_SKEW = 30.0


class DigestServer:
    """Challenges and verifies requests for one realm (RFC 3261 §22.1 and §22.2, RFC 8760 §2.3).

    Nonces are stateless: base64url(timestamp ‖ random ‖ HMAC-SHA-256(secret, …)), so any
    instance holding ``secret`` verifies them after a restart. ``now`` is seconds on a clock
    shared by everything that checks these nonces (wall-clock time across instances).
    """

    def __init__(
        self,
        realm: str,
        lookup_password: Callable[[str], str | None],
        secret: bytes,
        *,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[str] = ("MD5",),
        qop: Sequence[str] = ("auth",),
        check_uri: bool = True,
        replay_protection: bool = False,
        replay_memory: int = 4096,
    ) -> None:
        if not secret:
            raise ValueError("DigestServer needs a non-empty secret")
        if not algorithms:
            raise ValueError("DigestServer needs at least one algorithm")
        resolved: list[DigestAlgorithm] = []
        for name in algorithms:
            algorithm = find_algorithm(name)
            if algorithm is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            resolved.append(algorithm)
        for option in qop:
            if option not in ("auth", "auth-int"):
                raise ValueError(f"unsupported qop {option!r}")
        _quote(realm)  # a realm we cannot put on the wire is a configuration error
        self.realm = realm
        self._lookup = lookup_password
        self._secret = secret
        self.nonce_lifetime = nonce_lifetime
        self._algorithms = resolved  # in order of preference (RFC 8760 §2.3)
        self._qop = tuple(qop)
        self._check_uri = check_uri
        self._replay = replay_protection
        self._replay_memory = replay_memory
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()  # nonce -> (nc, ts)
        self._evicted_ts = float("-inf")

    # -- nonces -------------------------------------------------------------------------------

    def _mac(self, payload: bytes) -> bytes:
        msg = b"pygasi-digest-nonce\0" + _encode(self.realm) + b"\0" + payload
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]

    def make_nonce(self, now: float) -> str:
        payload = int(now * 1000).to_bytes(8, "big", signed=True) + secrets.token_bytes(
            _NONCE_RAND_BYTES
        )
        raw = payload + self._mac(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def _nonce_time(self, nonce: str) -> float | None:
        """The nonce's issue time if we issued it, else None."""
        if not _NONCE_RE.match(nonce):
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:-_NONCE_MAC_BYTES], raw[-_NONCE_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return int.from_bytes(payload[:8], "big", signed=True) / 1000.0

    # -- challenges ---------------------------------------------------------------------------

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """Header values for ``WWW-Authenticate`` (401) or ``Proxy-Authenticate`` (407), one
        per configured algorithm, most preferred first, sharing one nonce."""
        nonce = self.make_nonce(now)
        return [
            DigestChallenge(
                realm=self.realm,
                nonce=nonce,
                algorithm=algorithm.name,
                qop=self._qop,
                stale=stale,
            ).serialize()
            for algorithm in self._algorithms
        ]

    # -- verification -------------------------------------------------------------------------

    def verify(
        self,
        authorization: str | Iterable[str],
        *,
        method: str,
        uri: str,
        now: float,
        body: bytes = b"",
    ) -> VerifyResult:
        """Check the ``Authorization`` (or ``Proxy-Authorization``) field(s) of a request.

        Of several fields, the first one for our realm is checked (RFC 8760 §2.4 lets a UAC send
        one per realm). Anything other than OK calls for a new challenge; ``result.stale`` says
        whether it carries stale=true.
        """
        values = [authorization] if isinstance(authorization, str) else list(authorization)
        if not values:
            return VerifyResult(VerifyStatus.MALFORMED, "no credentials")
        parsed: list[DigestCredentials] = []
        errors: list[str] = []
        for value in values:
            try:
                parsed.append(parse_credentials(value))
            except SipParseError as exc:
                errors.append(exc.reason)
        ours = [c for c in parsed if c.realm == self.realm]
        if not ours:
            if parsed:
                return VerifyResult(
                    VerifyStatus.WRONG_REALM,
                    f"credentials for realm {parsed[0].realm!r}, not {self.realm!r}",
                    parsed[0].username,
                )
            return VerifyResult(VerifyStatus.MALFORMED, "; ".join(errors))
        try:
            return self._verify_one(ours[0], method, uri, now, body)
        except UnicodeEncodeError:
            return VerifyResult(VerifyStatus.MALFORMED, "unencodable characters")

    def _verify_one(
        self, cred: DigestCredentials, method: str, uri: str, now: float, body: bytes
    ) -> VerifyResult:
        user = cred.username
        algorithm = find_algorithm(cred.algorithm)
        if algorithm is None or algorithm not in self._algorithms:
            return VerifyResult(
                VerifyStatus.UNSUPPORTED, f"algorithm {cred.algorithm!r} not offered", user
            )
        if cred.userhash:
            return VerifyResult(VerifyStatus.UNSUPPORTED, "userhash not offered", user)
        if self._qop:
            if cred.qop not in self._qop:
                # RFC 7616 §3.4: a client must use one of the offered qop values.
                return VerifyResult(VerifyStatus.UNSUPPORTED, f"qop {cred.qop!r} not offered", user)
        elif cred.qop is not None:
            return VerifyResult(VerifyStatus.UNSUPPORTED, f"qop {cred.qop!r} not offered", user)
        if algorithm.session and cred.cnonce is None:
            return VerifyResult(VerifyStatus.MALFORMED, "-sess algorithm without cnonce", user)
        if self._check_uri and cred.uri != uri:
            # RFC 7616 §3.4.6: the digest must be for this request's URI.
            return VerifyResult(
                VerifyStatus.URI_MISMATCH, f"uri {cred.uri!r} is not the Request-URI", user
            )
        issued = self._nonce_time(cred.nonce)
        if issued is None or issued > now + _CLOCK_SKEW:
            return VerifyResult(VerifyStatus.INVALID_NONCE, "nonce not issued by us", user)
        password = self._lookup(user)
        if password is None:
            return VerifyResult(VerifyStatus.UNKNOWN_USER, f"unknown user {user!r}", user)
        expected = compute_response(
            algorithm,
            username=user,
            realm=self.realm,
            password=password,
            nonce=cred.nonce,
            method=method,
            uri=cred.uri,
            qop=cred.qop,
            nc=cred.nc,
            cnonce=cred.cnonce,
            body=body,
        )
        if not hmac.compare_digest(_encode(expected), _encode(cred.response.lower())):
            return VerifyResult(VerifyStatus.WRONG_PASSWORD, "response does not match", user)
        # Only now, with the digest proven right, is an old nonce merely stale (RFC 7616 §3.3).
        if now - issued > self.nonce_lifetime:
            return VerifyResult(VerifyStatus.STALE, "nonce expired", user)
        if self._replay and cred.nc_value is not None:
            replay = self._check_replay(cred.nonce, cred.nc_value, issued, now)
            if replay is not None:
                return VerifyResult(VerifyStatus.REPLAY, replay, user)
        return VerifyResult(VerifyStatus.OK, "", user)

    def _check_replay(self, nonce: str, nc: int, issued: float, now: float) -> str | None:
        """RFC 7616 §3.4: a nonce-count must grow. Memory is bounded: when a nonce is evicted,
        every nonce issued up to its time is refused as stale, so forgetting never reopens
        a replay (the client just fetches a new nonce)."""
        seen = self._seen
        while seen:  # drop nonces that have expired anyway
            oldest_nonce, (_, oldest_ts) = next(iter(seen.items()))
            if now - oldest_ts <= self.nonce_lifetime:
                break
            del seen[oldest_nonce]
        last = seen.get(nonce)
        if last is None:
            if issued <= self._evicted_ts:
                return "nonce no longer tracked"
        elif nc <= last[0]:
            return f"nonce-count {nc} not above {last[0]}"
        seen[nonce] = (nc, issued)
        seen.move_to_end(nonce)
        while len(seen) > self._replay_memory:
            _, (_, evicted_ts) = seen.popitem(last=False)
            self._evicted_ts = max(self._evicted_ts, evicted_ts)
        return None
