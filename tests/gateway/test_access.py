"""Who may call: AccessPolicy (allowed_sources CIDRs, inbound digest, RFC 7616)."""

from __future__ import annotations

import hashlib

import pytest

from gateway.access import AccessDecision, AccessPolicy, Verdict
from gateway.config import InboundConfig, InboundDigestConfig
from sip.digest import DigestChallenge, answer_challenge, parse_challenges

URI = "sip:+15551230000@gw.example.com"
SECRET = b"k" * 32
NOW = 1_000_000.0
CIDRS = ["203.0.113.0/24", "2001:db8::/32"]


def digest_policy(
    realm: str = "trunk", allowed: list[str] | None = None, secret: bytes = SECRET
) -> AccessPolicy:
    inbound = InboundConfig(
        allowed_sources=list(allowed or []),
        digest=InboundDigestConfig(realm=realm, users={"alice": "s3cret", "bob": "hunter2"}),
    )
    return AccessPolicy(inbound, secret=secret)


def check(
    policy: AccessPolicy,
    source: str = "198.51.100.7",
    authorization: tuple[str, ...] = (),
    now: float = NOW,
    uri: str = URI,
    method: str = "INVITE",
) -> AccessDecision:
    return policy.check(source, method=method, uri=uri, authorization=authorization, now=now)


def challenges_of(decision: AccessDecision) -> list[DigestChallenge]:
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.headers
    assert {name for name, _ in decision.headers} == {"WWW-Authenticate"}
    out: list[DigestChallenge] = []
    for _, value in decision.headers:
        out += parse_challenges(value)
    return out


def by_hand(
    challenge: DigestChallenge,
    hash_name: str,
    algorithm: str,
    username: str = "alice",
    password: str = "s3cret",
    uri: str = URI,
    method: str = "INVITE",
) -> str:
    """An Authorization value computed from the challenge with hashlib (RFC 7616 §3.4.1)."""

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    cnonce, nc = "0a4f113b", "00000001"
    ha1 = h(f"{username}:{challenge.realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    response = h(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{challenge.realm}", '
        f'nonce="{challenge.nonce}", uri="{uri}", response="{response}", '
        f'algorithm={algorithm}, cnonce="{cnonce}", qop=auth, nc={nc}'
    )


# -- open, and source addresses ----------------------------------------------------------------------


def test_open_policy_allows_anyone() -> None:
    policy = AccessPolicy(InboundConfig())
    assert policy.open
    assert policy.digest is None
    assert check(policy) == AccessDecision(Verdict.ALLOW)
    assert check(policy, "not an address", ("Digest garbage",)) == AccessDecision(Verdict.ALLOW)


def test_digest_without_users_is_still_open() -> None:
    policy = AccessPolicy(InboundConfig(digest=InboundDigestConfig(realm="trunk")))
    assert policy.open
    assert check(policy).verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    "source",
    [
        "203.0.113.7",
        "203.0.113.0",
        "203.0.113.255",
        "::ffff:203.0.113.9",
        "2001:db8::5",
        "[2001:db8:ffff::1]",
    ],
)
def test_allowed_sources(source: str) -> None:
    policy = AccessPolicy(InboundConfig(allowed_sources=CIDRS))
    assert not policy.open
    assert check(policy, source) == AccessDecision(Verdict.ALLOW, f"source {source} is allowed")


@pytest.mark.parametrize(
    "source", ["198.51.100.7", "203.0.114.1", "2001:db9::1", "::1", "not an address", ""]
)
def test_other_sources_are_forbidden_when_only_cidrs_are_configured(source: str) -> None:
    policy = AccessPolicy(InboundConfig(allowed_sources=CIDRS))
    assert check(policy, source) == AccessDecision(
        Verdict.FORBID, f"source address {source} not allowed"
    )


def test_credentials_do_not_help_without_digest_users() -> None:
    policy = AccessPolicy(InboundConfig(allowed_sources=CIDRS))
    decision = check(policy, "198.51.100.7", ('Digest username="alice"',))
    assert decision.verdict is Verdict.FORBID
    assert decision.headers == ()


def test_a_bad_cidr_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="invalid address or network"):
        AccessPolicy(InboundConfig(allowed_sources=["203.0.113.0/33"]))


# -- digest: the challenge ---------------------------------------------------------------------------


def test_no_credentials_get_a_challenge() -> None:
    decision = check(digest_policy())
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.reason == "no credentials"
    assert decision.user is None
    challenges = challenges_of(decision)
    # MD5 first: many clients take only the first challenge (gateway/access.py).
    assert [c.algorithm for c in challenges] == ["MD5", "SHA-256"]
    assert {c.realm for c in challenges} == {"trunk"}
    assert all(c.qop == ("auth",) for c in challenges)
    assert not any(c.stale for c in challenges)
    assert len({c.nonce for c in challenges}) == 1  # one nonce shared by both
    assert all(c.usable for c in challenges)


def test_the_realm_defaults_to_pygasi() -> None:
    challenges = challenges_of(check(digest_policy(realm="")))
    assert {c.realm for c in challenges} == {"pygasi"}


def test_each_challenge_has_a_fresh_nonce() -> None:
    policy = digest_policy()
    first = challenges_of(check(policy))[0].nonce
    second = challenges_of(check(policy))[0].nonce
    assert first != second


def test_allowed_source_skips_the_challenge() -> None:
    policy = digest_policy(allowed=CIDRS)
    assert check(policy, "203.0.113.7") == AccessDecision(
        Verdict.ALLOW, "source 203.0.113.7 is allowed"
    )
    assert check(policy, "198.51.100.7").verdict is Verdict.CHALLENGE


# -- digest: the answer ------------------------------------------------------------------------------


@pytest.mark.parametrize(("hash_name", "algorithm"), [("md5", "MD5"), ("sha256", "SHA-256")])
def test_a_correct_response_computed_by_hand_is_allowed(hash_name: str, algorithm: str) -> None:
    policy = digest_policy()
    challenge = next(c for c in challenges_of(check(policy, now=NOW)) if c.algorithm == algorithm)
    authorization = by_hand(challenge, hash_name, algorithm)
    decision = check(policy, authorization=(authorization,), now=NOW + 1)
    assert decision == AccessDecision(Verdict.ALLOW, "digest user alice", user="alice")


def test_a_response_from_sip_digest_client_side_is_allowed() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    credentials = answer_challenge(
        challenge, username="bob", password="hunter2", method="INVITE", uri=URI
    )
    decision = check(policy, authorization=(credentials.serialize(),), now=NOW + 2)
    assert decision == AccessDecision(Verdict.ALLOW, "digest user bob", user="bob")


def test_the_digest_is_checked_even_from_an_unlisted_source() -> None:
    policy = digest_policy(allowed=CIDRS)
    challenge = challenges_of(check(policy))[1]
    decision = check(policy, "198.51.100.7", (by_hand(challenge, "md5", "MD5"),))
    assert decision.verdict is Verdict.ALLOW
    assert decision.user == "alice"


def test_a_nonce_is_good_on_another_instance_with_the_same_secret() -> None:
    challenge = challenges_of(check(digest_policy()))[0]
    other = digest_policy()
    decision = check(other, authorization=(by_hand(challenge, "sha256", "SHA-256"),))
    assert decision.verdict is Verdict.ALLOW


def test_wrong_password_is_forbidden() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    authorization = by_hand(challenge, "sha256", "SHA-256", password="wrong")
    assert check(policy, authorization=(authorization,)) == AccessDecision(
        Verdict.FORBID, "wrong credentials", user="alice"
    )


def test_unknown_user_is_forbidden() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    authorization = by_hand(challenge, "sha256", "SHA-256", username="mallory")
    assert check(policy, authorization=(authorization,)) == AccessDecision(
        Verdict.FORBID, "wrong credentials", user="mallory"
    )


def test_a_hash_under_the_wrong_algorithm_name_is_a_wrong_password() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    authorization = by_hand(challenge, "md5", "SHA-256")  # MD5 arithmetic, labelled SHA-256
    assert check(policy, authorization=(authorization,)).verdict is Verdict.FORBID


def test_a_stale_nonce_is_challenged_again_with_stale_true() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy, now=NOW))[0]
    authorization = by_hand(challenge, "sha256", "SHA-256")
    decision = check(policy, authorization=(authorization,), now=NOW + 301.0)
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.reason == "stale nonce"
    assert all("stale=true" in value for _, value in decision.headers)
    fresh = challenges_of(decision)
    assert [c.algorithm for c in fresh] == ["MD5", "SHA-256"]
    assert all(c.stale for c in fresh)
    assert fresh[0].nonce != challenge.nonce
    # Still good within the nonce lifetime.
    assert check(policy, authorization=(authorization,), now=NOW + 299.0).verdict is Verdict.ALLOW


def test_a_stale_nonce_with_a_wrong_password_is_forbidden() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy, now=NOW))[0]
    authorization = by_hand(challenge, "sha256", "SHA-256", password="wrong")
    decision = check(policy, authorization=(authorization,), now=NOW + 301.0)
    assert decision.verdict is Verdict.FORBID


def test_a_nonce_from_another_secret_gets_a_fresh_challenge() -> None:
    challenge = challenges_of(check(digest_policy(secret=b"other" * 8)))[0]
    policy = digest_policy()
    decision = check(policy, authorization=(by_hand(challenge, "sha256", "SHA-256"),))
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.reason == "nonce not issued by us"
    assert not any(c.stale for c in challenges_of(decision))


def test_a_response_for_another_uri_is_verified_on_its_own_uri() -> None:
    """A proxy may rewrite the Request-URI after the caller computed its digest: the digest is
    checked against the uri it names, and a replay of it is refused (nonce-count)."""
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    authorization = by_hand(challenge, "sha256", "SHA-256", uri="sip:other@gw.example.com")
    decision = check(policy, authorization=(authorization,))
    assert decision.verdict is Verdict.ALLOW
    replayed = check(policy, authorization=(authorization,))
    assert replayed.verdict is Verdict.CHALLENGE
    assert all(c.stale for c in challenges_of(replayed))


def test_a_response_for_another_method_is_a_wrong_password() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    authorization = by_hand(challenge, "sha256", "SHA-256", method="REGISTER")
    assert check(policy, authorization=(authorization,)).verdict is Verdict.FORBID


def test_credentials_for_another_realm_get_a_fresh_challenge() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    foreign = DigestChallenge(
        realm="elsewhere", nonce=challenge.nonce, algorithm="SHA-256", qop=("auth",)
    )
    decision = check(policy, authorization=(by_hand(foreign, "sha256", "SHA-256"),))
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.reason == "credentials for realm 'elsewhere', not 'trunk'"


@pytest.mark.parametrize("value", ["Basic YWxpY2U6czNjcmV0", "Digest", "garbage ,,, ="])
def test_malformed_credentials_get_a_fresh_challenge(value: str) -> None:
    decision = check(digest_policy(), authorization=(value,))
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.reason
    assert len(challenges_of(decision)) == 2


def test_an_unoffered_algorithm_gets_a_fresh_challenge() -> None:
    policy = digest_policy()
    challenge = challenges_of(check(policy))[0]
    authorization = by_hand(challenge, "md5", "MD5-sess")
    decision = check(policy, authorization=(authorization,))
    assert decision.verdict is Verdict.CHALLENGE
    assert decision.reason == "algorithm 'MD5-sess' not offered"
