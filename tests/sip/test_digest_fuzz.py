"""Hypothesis: whatever a peer puts in an authentication header, only SipParseError comes out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.digest import (
    AuthOutcome,
    CredentialStore,
    DigestAuthenticator,
    DigestChallenge,
    DigestCredentials,
    DigestServer,
    VerifyStatus,
    parse_challenges,
    parse_credentials,
)
from sip.errors import SipParseError

# Any code point, lone surrogates included (the message layer decodes with surrogateescape),
# with the characters that matter to the grammar drawn far more often than chance would.
# st.text() would merge this alphabet into its own character set and drop lone surrogates.
INTERESTING_CHAR = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.sampled_from(list("\udc80\ud800\x00\x7f\r\n\t \",=\\%'")),
)
ANY_TEXT = st.lists(INTERESTING_CHAR, max_size=200).map("".join)
SHORT_TEXT = st.lists(INTERESTING_CHAR, max_size=12).map("".join)

# Pieces of the grammar, so that the fuzzer reaches deep into the parser, not just its first
# character check.
FRAGMENTS = st.sampled_from(
    [
        "Digest", "digest", "Basic", " ", "\t", ",", "=", '"', "\\", "\\\"", "\r\n ", "\r",
        "realm", "nonce", "qop", "auth", "auth-int", "algorithm", "MD5", "SHA-256-sess",
        "SHA-512-256", "stale", "TRUE", "username", "username*", "UTF-8''%C3%A4", "uri",
        "response", "nc", "00000001", "ffffffff1", "cnonce", "opaque", "userhash", "true",
        "abc==", "/", "x", "\x00", "\x7f", "é", "\udc80", "\ud800",
    ]
)  # fmt: skip
GRAMMARISH = st.lists(FRAGMENTS, max_size=40).map("".join)

# Valid values with a few characters inserted, deleted or replaced: these reach the checks made
# after a successful parse (nc, username*, required parameters).
VALID = [
    'Digest username="alice", realm="r", nonce="n", uri="sip:x", response="abc", '
    'algorithm=MD5-sess, cnonce="c", opaque="o", qop=auth, nc=00000001, userhash=false',
    'Digest username*=UTF-8\'\'J%C3%A4, realm="r", nonce="n", uri="u", response="x"',
    'Digest realm="a", nonce="1", algorithm=SHA-256, qop="auth, auth-int", stale=TRUE, '
    'Digest realm="a", nonce="2", Bearer x==',
]
EDIT_CHARS = st.sampled_from(list("\",=\\ \t\r\n*'%aD0\x00\x7fé\udc80\ud800"))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        if kind == "insert" or not text:
            text.insert(pos, draw(EDIT_CHARS))
        elif kind == "delete":
            del text[min(pos, len(text) - 1)]
        else:
            text[min(pos, len(text) - 1)] = draw(EDIT_CHARS)
    return "".join(text)


HEADER_TEXT = st.one_of(ANY_TEXT, GRAMMARISH, mutated())


@given(HEADER_TEXT)
def test_parse_challenges_raises_only_sip_parse_error(value: str) -> None:
    try:
        challenges = parse_challenges(value)
    except SipParseError:
        return
    for challenge in challenges:
        assert isinstance(challenge, DigestChallenge)
        _ = challenge.usable  # properties of what was parsed must not raise either


@given(HEADER_TEXT)
def test_parse_credentials_raises_only_sip_parse_error(value: str) -> None:
    try:
        creds = parse_credentials(value)
    except SipParseError:
        return
    if creds.qop is not None:
        assert creds.nc_value is not None and 0 <= creds.nc_value <= 0xFFFFFFFF


CREDENTIAL_PARAMS = {
    "username": '"alice"', "realm": '"r"', "nonce": '"n"', "uri": '"sip:x"',
    "response": '"abc"', "algorithm": "MD5-sess", "cnonce": '"c"', "qop": "auth",
    "nc": "00000001", "userhash": "false", "opaque": '"o"',
}  # fmt: skip


@pytest.mark.parametrize("name", [*CREDENTIAL_PARAMS, "username*", "stale"])
@given(
    # a valid-looking start gets past the first checks (username*'s charset, nc's digits)
    value=st.tuples(
        st.sampled_from(["", "UTF-8''", "utf-8'en'%C3", "0000", "auth"]), SHORT_TEXT
    ).map("".join),
    quoted=st.booleans(),
)
def test_any_single_parameter_value_raises_only_sip_parse_error(
    name: str, value: str, quoted: bool
) -> None:
    """Every parameter of otherwise valid values, given any text: the checks made after the
    grammar (nc, username*, qop, stale ...) must also fail only with SipParseError."""
    written = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if quoted else value
    params = {**CREDENTIAL_PARAMS, name: written}
    if name == "username*":
        del params["username"]
    text = "Digest " + ", ".join(f"{k}={v}" for k, v in params.items())
    for parse in (parse_credentials, parse_challenges):
        try:
            parse(text)
        except SipParseError:
            pass
    result = SERVER.verify(text, method="INVITE", uri="sip:x", now=1000.0)
    assert result.status is not VerifyStatus.OK


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["WWW-Authenticate", "Proxy-Authenticate"]),
                          HEADER_TEXT), max_size=3))  # fmt: skip
def test_authenticator_never_raises_on_peer_challenges(headers: list[tuple[str, str]]) -> None:
    store = CredentialStore()
    store.add(None, "alice", "secret")
    auth = DigestAuthenticator(store)
    result = auth.handle_challenge(headers)
    if result.outcome is AuthOutcome.FAILED:
        assert result.reason
    else:
        assert result.realms
    for _name, value in auth.authorization_headers("INVITE", "sip:x@y"):
        parse_credentials(value)  # what we send is always parseable


SERVER = DigestServer("r", {"alice": "secret"}.get, b"k" * 32, replay_protection=True)


@settings(max_examples=50)
@given(HEADER_TEXT, ANY_TEXT)
def test_server_verify_never_raises(value: str, uri: str) -> None:
    result = SERVER.verify(value, method="INVITE", uri=uri, now=1000.0)
    assert result.status is not VerifyStatus.OK


# Values our serialiser must round-trip: any text without control characters.
QUOTABLE = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=30)


@settings(max_examples=50)
@given(QUOTABLE, QUOTABLE, QUOTABLE, QUOTABLE, st.integers(1, 0xFFFFFFFF))
def test_credentials_serialisation_round_trips(
    username: str, realm: str, nonce: str, uri: str, nc: int
) -> None:
    creds = DigestCredentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response="ab" * 16,
        algorithm="MD5",
        cnonce=nonce,
        opaque=realm,
        qop="auth",
        nc=f"{nc:08x}",
    )
    assert parse_credentials(creds.serialize()) == creds


@settings(max_examples=50)
@given(QUOTABLE, QUOTABLE, st.booleans())
def test_challenge_serialisation_round_trips(realm: str, nonce: str, stale: bool) -> None:
    challenge = DigestChallenge(
        realm=realm, nonce=nonce, algorithm="SHA-256", qop=("auth",), opaque=nonce, stale=stale
    )
    assert parse_challenges(challenge.serialize()) == [challenge]
