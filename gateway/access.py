"""Who may call (sans-IO): source-address allow-lists and digest credentials for inbound INVITEs.

jigasi.md §6: Jigasi takes calls from anyone who reaches its SIP port. Here:

* ``allowed_sources`` (CIDRs) lets trunks that authenticate by address in without a challenge;
* ``[inbound.digest]`` challenges everyone else with a 401 (RFC 3261 §22.2) and accepts those
  whose digest matches (RFC 7616 / RFC 8760);
* when one of them is configured, every other INVITE gets ``403`` with a reason phrase naming
  the cause; when neither is, anyone may call and the gateway logs a warning at start (what
  Jigasi does silently).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.config import InboundConfig
from sip.acl import AddressAllowList
from sip.digest import DigestServer, VerifyStatus


class Verdict(enum.Enum):
    ALLOW = "allow"
    CHALLENGE = "challenge"  # 401 with WWW-Authenticate
    FORBID = "forbid"  # 403


@dataclass(frozen=True, slots=True)
class AccessDecision:
    verdict: Verdict
    reason: str = ""  # for the reason phrase and the log
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # for a 401
    user: str | None = None  # the authenticated digest user


class AccessPolicy:
    """Decides for each INVITE (its source address, method, Request-URI and Authorization
    fields) at ``now`` (seconds on a clock shared by everything checking the nonces)."""

    def __init__(self, inbound: InboundConfig, secret: bytes | None = None) -> None:
        self.allowed = AddressAllowList(inbound.allowed_sources)
        digest = inbound.digest
        self.digest: DigestServer | None = None
        if digest.users:
            users = dict(digest.users)
            self.digest = DigestServer(
                digest.realm or "pygasi",
                users.get,
                secret or secrets.token_bytes(32),
                # MD5 first: clients take the first challenge they support (RFC 7616 §3.7)
                # and many take only the first one (SIPp refuses a SHA-256 first one); a
                # client that knows nothing but SHA-256 (RFC 8760) still finds it.
                algorithms=("MD5", "SHA-256"),
                # A proxy between the trunk and us may rewrite the Request-URI after the
                # caller computed its digest (and SIPp digests "sip:host:port"): the digest's
                # own uri is verified instead; nonce-count replay protection binds it.
                check_uri=False,
                replay_protection=True,
            )

    @property
    def open(self) -> bool:
        """Neither an allow-list nor digest credentials: anyone may call."""
        return not len(self.allowed) and self.digest is None

    def check(
        self,
        source: str,
        *,
        method: str,
        uri: str,
        authorization: Iterable[str],
        now: float,
        body: bytes = b"",
    ) -> AccessDecision:
        if self.open:
            return AccessDecision(Verdict.ALLOW)
        if len(self.allowed) and self.allowed.allows(source):
            return AccessDecision(Verdict.ALLOW, f"source {source} is allowed")
        if self.digest is None:
            return AccessDecision(Verdict.FORBID, f"source address {source} not allowed")
        values = list(authorization)
        if not values:
            return self._challenge(now, "no credentials")
        result = self.digest.verify(values, method=method, uri=uri, now=now, body=body)
        status = result.status
        if status is VerifyStatus.OK:
            return AccessDecision(
                Verdict.ALLOW, f"digest user {result.username}", user=result.username
            )
        if result.stale:
            return self._challenge(now, "stale nonce", stale=True)
        if status in (VerifyStatus.WRONG_PASSWORD, VerifyStatus.UNKNOWN_USER):
            return AccessDecision(Verdict.FORBID, "wrong credentials", user=result.username)
        # Malformed, another realm, a nonce we did not issue, an unsupported algorithm:
        # a fresh challenge lets a well-behaved client try again.
        return self._challenge(now, result.reason or status.value)

    def _challenge(self, now: float, reason: str, stale: bool = False) -> AccessDecision:
        assert self.digest is not None
        headers = tuple(("WWW-Authenticate", c) for c in self.digest.challenges(now, stale=stale))
        return AccessDecision(Verdict.CHALLENGE, reason, headers)


__all__ = ["AccessDecision", "AccessPolicy", "Verdict"]
