"""Which room a phone call goes to (sans-IO): reference/jigasi.md §1.2 and §1.3, and better.

Order, first match wins:

1. the room header (by default both ``X-Room-Name`` and Jigasi's ``Jitsi-Conference-Room``,
   names compared case-insensitively, §9 items 1-2), with the password, domain-base and tenant
   headers beside it. The value may be a bare name (``standup``: + the MUC domain), a bare JID
   (``standup@conference.acme.meet.example.com``: its MUC domain gives the login domain and the
   tenant, §1.3), or a meeting URL (``https://meet.example.com/acme/standup``), which Jigasi
   refuses;
2. the called number (Request-URI user, then To user) in the ``[inbound.rooms]`` map, for
   trunks that deliver DIDs and cannot add headers;
3. the Request-URI user part itself, when ``uri_fallback`` is on;
4. the default room.

Otherwise `RoomNotFound`, whose reason goes into the 486's reason phrase: the caller's
operator reads why (Jigasi's "No JVB room name provided" is its most reported problem).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from gateway.config import InboundConfig, XmppConfig

# jigasi.md §1.3: Jigasi's default MUC_DOMAIN_PREFIX list.
DEFAULT_MUC_PREFIXES = ("conference", "muc")

# RFC 7622 §3.3.1: characters a localpart may not hold (besides spaces and controls).
_BAD_LOCAL = re.compile(r"[\"&'/:<>@\s\x00-\x1f\x7f]")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_LOCAL = 1023  # RFC 7622 §3.3.1 (bytes; names are ASCII-ish in practice)


class HeaderLookup(Protocol):
    """What the resolver reads from an INVITE: ``sip.headers.Headers`` fits (its lookup is
    case-insensitive, as SIP header names are, RFC 3261 §7.3.1)."""

    def get(self, name: str, default: str | None = None) -> str | None: ...


class RoomNotFound(Exception):
    """No room for the call. ``reason`` says why, for the reason phrase and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RoomTarget:
    """Where the conference leg goes."""

    jid: str  # the bare room JID, lower case (RFC 7622 nodeprep case-folds it)
    domain: str  # the XMPP domain to log into and whose focus to ask (§1.3 roomJidDomain)
    muc_domain: str
    tenant: str | None
    password: str | None
    source: str  # "header", "number", "uri" or "default": how the room was found

    @property
    def name(self) -> str:
        return self.jid.split("@", 1)[0]


def names_of(value: str | Iterable[str]) -> tuple[str, ...]:
    """A header option given as a string or a list (the configuration allows both)."""
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(v for v in value if v)


def _first(headers: HeaderLookup, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _normalise_number(number: str) -> str:
    """A dialled number reduced to its digits (``+1 (555) 123-0000`` -> ``15551230000``), so a
    DID from the trunk matches the map whatever formatting either side uses."""
    return "".join(ch for ch in number if ch.isdigit())


def _check_domain(domain: str, what: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    labels = domain.split(".")
    if not domain or len(domain) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{what} {domain[:60]!r} is not a domain name")
    return domain


def _check_local(name: str) -> str:
    name = name.strip().lower()
    if not name:
        raise ValueError("empty room name")
    if len(name.encode()) > _MAX_LOCAL:
        raise ValueError("room name too long")
    bad = _BAD_LOCAL.search(name)
    if bad is not None:
        raise ValueError(f"room name {name[:60]!r} holds {bad.group()!r}")
    return name


class RoomResolver:
    """Resolves the room of an INVITE from the configuration (shared by all calls)."""

    def __init__(
        self,
        inbound: InboundConfig,
        xmpp: XmppConfig,
        muc_prefixes: tuple[str, ...] = DEFAULT_MUC_PREFIXES,
    ) -> None:
        self.inbound = inbound
        self.domain = _check_domain(xmpp.domain, "xmpp.domain")
        self.muc_domain = _check_domain(xmpp.muc_domain, "xmpp.muc_domain")
        prefix = "conference"
        if self.muc_domain.endswith("." + self.domain):
            prefix = self.muc_domain[: -len(self.domain) - 1]
        self.muc_prefix = prefix  # "conference" in conference.meet.example.com
        self.muc_prefixes = tuple(dict.fromkeys((prefix, *muc_prefixes)))
        self.room_headers = names_of(inbound.room_header)
        self.password_headers = names_of(inbound.password_header)
        self.domain_headers = names_of(inbound.domain_base_header)
        self.tenant_headers = names_of(inbound.tenant_header)
        self.rooms: dict[str, str] = dict(inbound.rooms)
        self._numbers: dict[str, str] = {}
        for number, room in inbound.rooms.items():
            digits = _normalise_number(number)
            if digits:
                self._numbers.setdefault(digits, room)

    def resolve(
        self,
        headers: HeaderLookup,
        request_user: str | None = None,
        to_user: str | None = None,
    ) -> RoomTarget:
        """The room for an INVITE with these headers, Request-URI user and To user."""
        password = _first(headers, self.password_headers)
        domain_base = _first(headers, self.domain_headers)
        tenant = _first(headers, self.tenant_headers)
        problems: list[str] = []
        value = _first(headers, self.room_headers)
        if value is not None:
            try:
                return self.target(value, password, "header", domain_base, tenant)
            except ValueError as exc:
                # Jigasi falls through to the default room on a bad value (§1.3); so do we,
                # but the 486 then says what was wrong with it.
                problems.append(f"bad room header ({exc})")
        for number in (request_user, to_user):
            room = self.room_for_number(number)
            if room is not None:
                try:
                    return self.target(room, password, "number")
                except ValueError as exc:
                    problems.append(f"bad [inbound.rooms] entry for {number} ({exc})")
        if self.inbound.uri_fallback and request_user:
            try:
                return self.target(request_user, password, "uri", domain_base, tenant)
            except ValueError as exc:
                problems.append(f"Request-URI user is no room ({exc})")
        if self.inbound.default_room:
            try:
                return self.target(self.inbound.default_room, password, "default")
            except ValueError as exc:
                problems.append(f"bad default_room ({exc})")
        if not problems:
            names = " or ".join(self.room_headers) or "room"
            problems.append(f"no {names} header and no default room")
        raise RoomNotFound("no room: " + "; ".join(problems))

    def room_for_number(self, number: str | None) -> str | None:
        """The ``[inbound.rooms]`` entry for a called number (exact, then digits only)."""
        if not number:
            return None
        room = self.rooms.get(number)
        if room is not None:
            return room
        digits = _normalise_number(number)
        return self._numbers.get(digits) if digits else None

    def target(
        self,
        value: str,
        password: str | None = None,
        source: str = "header",
        domain_base: str | None = None,
        tenant: str | None = None,
    ) -> RoomTarget:
        """The room a header value (or map entry) names: jigasi.md §1.3, plus meeting URLs.
        Raises ValueError with the reason when it names none."""
        value = value.strip()
        base = _check_domain(domain_base, "domain base") if domain_base else None
        tenant = _check_local(tenant) if tenant else None
        if tenant is not None and not _LABEL.match(tenant):
            raise ValueError(f"tenant {tenant[:60]!r} is not a domain label")
        if re.match(r"^https?://", value, re.I):
            name, muc, tenant = self._from_url(value)
        elif "@" in value:
            local, _, rest = value.partition("@")
            name = _check_local(local)
            muc = _check_domain(rest.split("/", 1)[0], "room domain")
        else:
            name = _check_local(value)
            home = base or self.domain
            if tenant is not None:
                muc = f"{self.muc_prefix}.{tenant}.{home}"
            elif home != self.domain:
                muc = f"{self.muc_prefix}.{home}"
            else:
                muc = self.muc_domain
        domain, tenant = self._login_domain(muc, base, tenant)
        return RoomTarget(f"{name}@{muc}", domain, muc, tenant, password or None, source)

    def _from_url(self, url: str) -> tuple[str, str, str | None]:
        """``https://meet.example.com/room`` or ``https://meet.example.com/tenant/room``."""
        parts = urlsplit(url)
        host = _check_domain(parts.hostname or "", "meeting URL host")
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if not segments:
            raise ValueError("meeting URL without a room")
        name = _check_local(segments[-1])
        tenant = _check_local(segments[-2]) if len(segments) >= 2 else None
        if tenant is not None and not _LABEL.match(tenant):
            raise ValueError(f"tenant {tenant[:60]!r} is not a domain label")
        if tenant is not None:
            muc = f"{self.muc_prefix}.{tenant}.{host}"
        elif host == self.domain:
            muc = self.muc_domain
        else:
            muc = f"{self.muc_prefix}.{host}"
        return name, muc, tenant

    def _login_domain(
        self, muc: str, base: str | None, tenant: str | None
    ) -> tuple[str, str | None]:
        """jigasi.md §1.3 roomJidDomain: strip the MUC prefix; then the tenant when known, or
        find the known domain at the end and take what is in front as the tenant."""
        rest = muc
        for prefix in self.muc_prefixes:
            if muc.startswith(prefix + "."):
                rest = muc[len(prefix) + 1 :]
                break
        if tenant is not None and rest.startswith(tenant + "."):
            return rest[len(tenant) + 1 :], tenant
        for known in (base, self.domain):
            if known and rest != known and rest.endswith("." + known):
                front = rest[: -len(known) - 1]
                return known, front if "." not in front else None
        return rest, tenant


__all__ = ["DEFAULT_MUC_PREFIXES", "RoomNotFound", "RoomResolver", "RoomTarget", "names_of"]
