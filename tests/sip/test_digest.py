"""Digest authentication: RFC vectors, header grammar, the UAC authenticator, the UAS verifier."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable

import pytest

from sip.digest import (
    ALGORITHMS,
    AuthOutcome,
    CredentialStore,
    DigestAuthenticator,
    DigestChallenge,
    DigestCredentials,
    DigestServer,
    VerifyStatus,
    answer_challenge,
    choose_challenges,
    compute_response,
    find_algorithm,
    parse_challenges,
    parse_credentials,
)
from sip.errors import SipParseError

NOW = 1_750_000_000.0
SECRET = b"0123456789abcdef0123456789abcdef"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def alice_authenticator(prefix: str = "cn") -> DigestAuthenticator:
    """An authenticator over a store with alice/secret for any realm and predictable cnonces."""
    store = CredentialStore()
    store.add(None, "alice", "secret")
    counter = itertools.count(1)
    return DigestAuthenticator(store, cnonce_factory=lambda: f"{prefix}{next(counter)}")


def field(header_value: str, name: str) -> str:
    """One parameter of a serialised credentials value, quotes kept (checks wire form)."""
    match = re.search(
        rf"(?:^Digest |, ){re.escape(name)}=(\"(?:[^\"\\\\]|\\\\.)*\"|[^,]*)", header_value
    )
    assert match is not None, f"{name} not in {header_value}"
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# RFC test vectors
# ---------------------------------------------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_section_3_5_md5_qop_auth_exact_wire_form() -> None:
    [challenge] = parse_challenges(RFC2617_CHALLENGE)
    creds = answer_challenge(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nc=1,
        cnonce="0a4f113b",
    )
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert creds.serialize() == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
    )


def test_rfc2617_authorization_example_parses_and_verifies() -> None:
    value = (
        'Digest username="Mufasa",\r\n realm="testrealm@host.com",\r\n'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n uri="/dir/index.html",\r\n'
        ' qop=auth,\r\n nc=00000001,\r\n cnonce="0a4f113b",\r\n'
        ' response="6629fae49393a05397450978507c4ef1",\r\n'
        ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    creds = parse_credentials(value)
    assert (creds.username, creds.qop, creds.nc, creds.nc_value, creds.cnonce) == (
        "Mufasa",
        "auth",
        "00000001",
        1,
        "0a4f113b",
    )
    algorithm = find_algorithm(creds.algorithm)
    assert algorithm is not None and algorithm.name == "MD5"  # absent means MD5
    recomputed = compute_response(
        algorithm,
        username=creds.username,
        realm=creds.realm,
        password="Circle Of Life",
        nonce=creds.nonce,
        method="GET",
        uri=creds.uri,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
    )
    assert recomputed == creds.response


# RFC 7616 §3.9.1: one 401 with two WWW-Authenticate fields, SHA-256 first.
RFC7616_HEADERS = [
    (
        "WWW-Authenticate",
        'Digest\r\n    realm="http-auth@example.org",\r\n    qop="auth, auth-int",\r\n'
        "    algorithm=SHA-256,\r\n"
        '    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n'
        '    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    ),
    (
        "WWW-Authenticate",
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    ),
]
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("index", "algorithm", "expected"),
    [
        (0, "SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        (1, "MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(index: int, algorithm: str, expected: str) -> None:
    [challenge] = parse_challenges(RFC7616_HEADERS[index][1])
    assert challenge.algorithm == algorithm
    assert challenge.qop == ("auth", "auth-int")
    creds = answer_challenge(
        challenge,
        username="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce=RFC7616_CNONCE,
    )
    assert creds.response == expected
    assert creds.qop == "auth"  # preferred over auth-int when both are offered
    assert field(creds.serialize(), "algorithm") == algorithm


def test_rfc7616_authenticator_prefers_sha256_of_the_two_headers() -> None:
    store = CredentialStore()
    store.add("http-auth@example.org", "Mufasa", "Circle of Life")
    auth = DigestAuthenticator(store, cnonce_factory=lambda: RFC7616_CNONCE)
    result = auth.handle_challenge(list(reversed(RFC7616_HEADERS)))  # order does not matter
    assert result.outcome is AuthOutcome.RETRY
    [(name, value)] = auth.authorization_headers("GET", "/dir/index.html")
    assert name == "Authorization"
    assert field(value, "response") == (
        '"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"'
    )


def test_rfc7616_authorization_examples_parse() -> None:
    value = (
        'Digest username="Mufasa",\r\n    realm="http-auth@example.org",\r\n'
        '    uri="/dir/index.html",\r\n    algorithm=SHA-256,\r\n'
        '    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n    nc=00000001,\r\n'
        f'    cnonce="{RFC7616_CNONCE}",\r\n    qop=auth,\r\n'
        '    response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",\r\n'
        '    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    creds = parse_credentials(value)
    assert creds.algorithm == "SHA-256"
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert creds.uri == "/dir/index.html"


def test_rfc2069_form_without_qop() -> None:
    # RFC 2069 §2.4 with its erratum (ID 749): the printed response is wrong, this one is the
    # MD5 of the example's inputs.
    [challenge] = parse_challenges(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    creds = answer_challenge(
        challenge, username="Mufasa", password="CircleOfLife", method="GET", uri="/dir/index.html"
    )
    assert creds.response == "1949323746fe6a43ef61f9606e7febea"
    assert creds.serialize() == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="1949323746fe6a43ef61f9606e7febea", algorithm=MD5, '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )


def test_md5_sess_follows_rfc2617_section_3_2_2_2() -> None:
    [challenge] = parse_challenges(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'algorithm=MD5-sess, qop="auth"'
    )
    creds = answer_challenge(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="INVITE",
        uri="sip:bob@example.com",
        nc=2,
        cnonce="0a4f113b",
    )
    # The RFC's formula spelled out: A1 = H(user:realm:pass):nonce:cnonce.
    ha1 = md5(md5("Mufasa:testrealm@host.com:Circle Of Life") + ":"
              "dcd98b7102dd2f0e8b11d0f600bfb0c093:0a4f113b")  # fmt: skip
    ha2 = md5("INVITE:sip:bob@example.com")
    expected = md5(f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000002:0a4f113b:auth:{ha2}")
    assert creds.response == expected
    assert creds.algorithm == "MD5-sess"
    assert creds.nc == "00000002"


def test_auth_int_hashes_the_body() -> None:
    [challenge] = parse_challenges('Digest realm="r", nonce="n", qop="auth-int"')
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    creds = answer_challenge(
        challenge, username="u", password="p", method="INVITE", uri="sip:x@y", cnonce="c", body=body
    )
    ha2 = md5("INVITE:sip:x@y:" + hashlib.md5(body).hexdigest())
    assert creds.qop == "auth-int"
    assert creds.response == md5(f"{md5('u:r:p')}:n:00000001:c:auth-int:{ha2}")


def test_sha512_256_round_trip_client_to_server() -> None:
    server = DigestServer("pygasi", {"alice": "secret"}.get, SECRET, algorithms=["SHA-512-256"])
    [challenge_value] = server.challenges(NOW)
    assert "algorithm=SHA-512-256" in challenge_value
    auth = alice_authenticator()
    assert auth.handle_challenge([("WWW-Authenticate", challenge_value)]).should_retry
    [(_, value)] = auth.authorization_headers("INVITE", "sip:room@gw")
    response = field(value, "response").strip('"')
    assert len(response) == 64  # a 256-bit digest, not SHA-512's 128 hex digits
    result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW + 1)
    assert result.ok and result.username == "alice"
    # and it really is SHA-512/256: recompute from its definition
    creds = parse_credentials(value)

    def h(text: str) -> str:
        return hashlib.new("sha512_256", text.encode()).hexdigest()

    ha1, ha2 = h("alice:pygasi:secret"), h("INVITE:sip:room@gw")
    assert response == h(f"{ha1}:{creds.nonce}:00000001:{creds.cnonce}:auth:{ha2}")


# ---------------------------------------------------------------------------------------------
# Header grammar
# ---------------------------------------------------------------------------------------------


def test_several_challenges_in_one_header_value() -> None:
    challenges = parse_challenges(
        'Digest realm="a", nonce="1", algorithm=SHA-256, Digest realm="a", nonce="2", algorithm=MD5'
    )
    assert [(c.realm, c.nonce, c.algorithm) for c in challenges] == [
        ("a", "1", "SHA-256"),
        ("a", "2", "MD5"),
    ]


def test_other_schemes_are_parsed_and_left_out() -> None:
    challenges = parse_challenges(
        'Basic realm="x", Bearer abc+/==, Newauth realm="apps", type=1, '
        'title="Login to \\"apps\\"", Digest realm="d", nonce="n"'
    )
    assert [(c.realm, c.nonce) for c in challenges] == [("d", "n")]
    assert parse_challenges('Basic realm="only"') == []


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    [challenge] = parse_challenges('dIgEsT REALM="R", Nonce="N", ALGORITHM=sha-256, QOP="AUTH"')
    assert (challenge.realm, challenge.nonce, challenge.qop) == ("R", "N", ("auth",))
    info = challenge.algorithm_info
    assert info is not None and info.name == "SHA-256"


def test_quoted_string_escapes_and_commas_inside_quotes() -> None:
    [challenge] = parse_challenges(r'Digest realm="a \"quoted\", \\ realm", nonce="x\y", opaque=""')
    assert challenge.realm == 'a "quoted", \\ realm'
    assert challenge.nonce == "xy"  # quoted-pair: \y is y
    assert challenge.opaque == ""
    # and our serialisation escapes them back
    assert parse_challenges(challenge.serialize()) == [challenge]
    creds = answer_challenge(challenge, username='al"ice\\', password="p", method="M", uri="u")
    assert field(creds.serialize(), "username") == r'"al\"ice\\"'
    assert parse_credentials(creds.serialize()) == creds


def test_lws_around_equals_and_commas_and_empty_elements() -> None:
    [challenge] = parse_challenges(
        'Digest  realm = "r" ,, nonce\t=\t"n" , stale = TRUE , algorithm = MD5 ,'
    )
    assert (challenge.realm, challenge.nonce, challenge.stale) == ("r", "n", True)


@pytest.mark.parametrize(
    ("text", "stale"), [("TRUE", True), ("true", True), ('"true"', True), ("false", False)]
)
def test_stale_values(text: str, stale: bool) -> None:
    [challenge] = parse_challenges(f'Digest realm="r", nonce="n", stale={text}')
    assert challenge.stale is stale
    assert parse_challenges('Digest realm="r", nonce="n"')[0].stale is False


def test_unknown_params_and_algorithms_are_kept_but_unusable() -> None:
    [challenge] = parse_challenges(
        'Digest realm="r", nonce="n", algorithm=SHA-1024, x-vendor="v", charset=UTF-8, '
        'userhash=true, domain="sip:a sip:b"'
    )
    assert challenge.params["x-vendor"] == "v"
    assert challenge.params["charset"] == "UTF-8"
    assert challenge.userhash is True
    assert challenge.domain == "sip:a sip:b"
    assert challenge.algorithm == "SHA-1024"
    assert challenge.algorithm_info is None and not challenge.usable
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        answer_challenge(challenge, username="u", password="p", method="M", uri="u")
    [conf_only] = parse_challenges('Digest realm="r", nonce="n", qop="auth-conf"')
    assert not conf_only.usable


def test_every_registered_algorithm_is_supported() -> None:
    assert sorted(ALGORITHMS) == sorted(
        ["MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS", "SHA-512-256", "SHA-512-256-SESS"]
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        'Digest realm="r"',  # no nonce
        'Digest nonce="n"',  # no realm
        'Digest realm="r, nonce="n"',  # unterminated
        'Digest realm="r", realm="s", nonce="n"',  # duplicate
        'realm="r", nonce="n"',  # no scheme
        'Digest realm="r" nonce="n"',  # missing comma
        'Digest realm=, nonce="n"',  # empty value
        "Digest abc==",  # token68 for Digest
        'Digest realm="r\x01", nonce="n"',  # control character
        'Digest realm="r",\r\nnonce="n"',  # a line break that is not folding
        'Digest realm="r", nonce="\ud800"',  # not encodable
        "Digest =",
        "@@@",
    ],
)
def test_malformed_challenges_raise_sip_parse_error(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_challenges(value)


@pytest.mark.parametrize(
    "value",
    [
        "Basic dXNlcjpwYXNz",
        'Digest realm="r", nonce="n", uri="u", response="x"',  # no username
        'Digest username="u", nonce="n", uri="u", response="x"',  # no realm
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth',  # no nc
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, '
        'nc=123456789, cnonce="c"',  # nc longer than 8 hex digits
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, '
        'nc=0000000g, cnonce="c"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", '
        'Digest username="v", realm="r", nonce="n", uri="u", response="y"',  # two credentials
        'Digest username*=latin1\'\'x, realm="r", nonce="n", uri="u", response="x"',
        # not ASCII inside the ext-value (found by the fuzzer: escaped as UnicodeEncodeError)
        'Digest username*=UTF-8\'\'\udc80, realm="r", nonce="n", uri="u", response="x"',
        'Digest username*=UTF-8\'\'%ff, realm="r", nonce="n", uri="u", response="x"',
    ],
)
def test_malformed_credentials_raise_sip_parse_error(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_credentials(value)


def test_credentials_accept_lenient_peer_forms() -> None:
    # aiovoip sends nc and qop quoted; we accept them (and keep nc's text for the hash).
    creds = parse_credentials(
        'Digest username="u", realm="r", nonce="n", uri="sip:a@b", response="x", '
        'qop="auth", nc="00000001", cnonce="c", x-extra=1'
    )
    assert (creds.qop, creds.nc, creds.params["x-extra"]) == ("auth", "00000001", "1")
    ext = parse_credentials(
        'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n, realm="r", nonce="n", uri="u", response="x"'
    )
    assert ext.username == "Jäsøn"


# ---------------------------------------------------------------------------------------------
# UAC: choosing, answering, nonce-counts, stale, failures
# ---------------------------------------------------------------------------------------------


def challenge_value(realm: str = "r", nonce: str = "n1", extra: str = 'qop="auth"') -> str:
    return f'Digest realm="{realm}", nonce="{nonce}"' + (f", {extra}" if extra else "")


@pytest.mark.parametrize(
    ("algorithms", "chosen"),
    [
        (["MD5", "SHA-256"], "SHA-256"),
        (["SHA-256", "SHA-512-256", "MD5"], "SHA-512-256"),
        (["MD5-sess", "MD5"], "MD5-sess"),  # a tie: the topmost one
        (["MD5", "MD5-sess"], "MD5"),
        (["SHA-256-sess", "MD5"], "SHA-256-sess"),
        (["SHA-3", "MD5"], "MD5"),  # not understood: ignored (RFC 8760 §2.4)
    ],
)
def test_strongest_supported_algorithm_per_realm(algorithms: list[str], chosen: str) -> None:
    challenges = [
        DigestChallenge(realm="r", nonce=f"n{i}", algorithm=a, qop=("auth",))
        for i, a in enumerate(algorithms)
    ]
    best = choose_challenges(challenges)
    assert best["r"].algorithm == chosen


def test_kamailio_wire_layout_and_nc_increment_on_reuse() -> None:
    auth = alice_authenticator()
    result = auth.handle_challenge(
        [("Via", "SIP/2.0/UDP x"), ("WWW-Authenticate", challenge_value(extra='qop="auth"'))]
    )
    assert result.outcome is AuthOutcome.RETRY and result.realms == ("r",)
    values = [auth.authorization_headers("REGISTER", "sip:example.com")[0][1] for _ in range(3)]
    pattern = re.compile(
        r'Digest username="alice", realm="r", nonce="n1", uri="sip:example.com", '
        r'response="[0-9a-f]{32}", algorithm=MD5, cnonce="(cn\d)", qop=auth, nc=(\d{8})\Z'
    )
    matches = [pattern.match(v) for v in values]
    assert all(matches), values
    assert [m.group(2) for m in matches if m] == ["00000001", "00000002", "00000003"]
    assert len({m.group(1) for m in matches if m}) == 3  # a fresh cnonce each time
    # and each one verifies as sent
    for value in values:
        creds = parse_credentials(value)
        expected = compute_response(
            ALGORITHMS["MD5"],
            username="alice",
            realm="r",
            password="secret",
            nonce="n1",
            method="REGISTER",
            uri="sip:example.com",
            qop="auth",
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        assert creds.response == expected


def test_nc_above_0xff_is_hex() -> None:
    [challenge] = parse_challenges(challenge_value())
    creds = answer_challenge(challenge, username="u", password="p", method="M", uri="u", nc=256)
    assert creds.nc == "00000100"


def test_new_nonce_restarts_nc() -> None:
    auth = alice_authenticator()
    auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="a"))])
    auth.authorization_headers("REGISTER", "sip:s")
    auth.authorization_headers("REGISTER", "sip:s")
    # the server forgot nonce a (we used it twice): not a password failure
    result = auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="b"))])
    assert result.outcome is AuthOutcome.RETRY
    [(_, value)] = auth.authorization_headers("REGISTER", "sip:s")
    assert (field(value, "nonce"), field(value, "nc")) == ('"b"', "00000001")


def test_wrong_password_is_failed_not_retried_forever() -> None:
    auth = alice_authenticator()
    assert auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="a"))]).should_retry
    auth.authorization_headers("REGISTER", "sip:s")  # sent with nc=1 for a fresh nonce
    result = auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="b"))])
    assert result.outcome is AuthOutcome.FAILED
    assert not result.should_retry
    assert "credentials rejected for realm 'r'" in result.reason


def test_stale_nonce_is_a_stale_retry_then_success_path() -> None:
    auth = alice_authenticator()
    auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="a"))])
    auth.authorization_headers("REGISTER", "sip:s")
    stale = challenge_value(nonce="b", extra='qop="auth", stale=true')
    result = auth.handle_challenge([("WWW-Authenticate", stale)])
    assert result.outcome is AuthOutcome.STALE_RETRY and result.should_retry
    [(_, value)] = auth.authorization_headers("REGISTER", "sip:s")
    assert (field(value, "nonce"), field(value, "nc")) == ('"b"', "00000001")


def test_endless_stale_on_fresh_nonces_fails() -> None:
    store = CredentialStore()
    store.add("r", "alice", "secret")
    auth = DigestAuthenticator(store, max_stale_retries=2)
    auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="0"))])
    outcomes = []
    for i in range(1, 5):
        auth.authorization_headers("INVITE", "sip:x")
        stale = challenge_value(nonce=str(i), extra='qop="auth", stale=TRUE')
        outcomes.append(auth.handle_challenge([("WWW-Authenticate", stale)]).outcome)
    assert outcomes == [
        AuthOutcome.STALE_RETRY,
        AuthOutcome.STALE_RETRY,
        AuthOutcome.FAILED,
        AuthOutcome.FAILED,
    ]


def test_stale_after_reused_nonce_resets_the_stale_count() -> None:
    auth = alice_authenticator()
    auth.handle_challenge([("WWW-Authenticate", challenge_value(nonce="0"))])
    for i in range(1, 6):  # each nonce used twice (re-REGISTERs), then declared stale
        auth.authorization_headers("REGISTER", "sip:s")
        auth.authorization_headers("REGISTER", "sip:s")
        stale = challenge_value(nonce=str(i), extra='qop="auth", stale=true')
        assert auth.handle_challenge([("WWW-Authenticate", stale)]).outcome is (
            AuthOutcome.STALE_RETRY
        )


def test_proxy_and_registrar_challenges_in_one_response_are_both_answered() -> None:
    store = CredentialStore()
    store.add("proxy.example", "alice", "proxypass", auth_username="alice-proxy")
    store.add("registrar.example", "alice", "regpass")
    auth = DigestAuthenticator(store)
    result = auth.handle_challenge(
        [
            ("Proxy-Authenticate", challenge_value("proxy.example", "p1")),
            ("WWW-Authenticate", challenge_value("registrar.example", "r1")),
        ]
    )
    assert result.outcome is AuthOutcome.RETRY
    assert set(result.realms) == {"proxy.example", "registrar.example"}
    headers = dict(auth.authorization_headers("INVITE", "sip:bob@example"))
    assert set(headers) == {"Proxy-Authorization", "Authorization"}
    proxy = parse_credentials(headers["Proxy-Authorization"])
    registrar = parse_credentials(headers["Authorization"])
    assert (proxy.username, proxy.realm) == ("alice-proxy", "proxy.example")
    assert (registrar.username, registrar.realm) == ("alice", "registrar.example")
    for creds, password in ((proxy, "proxypass"), (registrar, "regpass")):
        assert creds.response == compute_response(
            ALGORITHMS["MD5"],
            username=creds.username,
            realm=creds.realm,
            password=password,
            nonce=creds.nonce,
            method="INVITE",
            uri="sip:bob@example",
            qop="auth",
            nc=creds.nc,
            cnonce=creds.cnonce,
        )


def test_407_for_in_dialog_requests_is_remembered_for_preauthorisation() -> None:
    auth = alice_authenticator()
    auth.handle_challenge([("Proxy-Authenticate", challenge_value("proxy", "p"))])
    invite = auth.authorization_headers("INVITE", "sip:bob@b")
    bye = auth.authorization_headers("BYE", "sip:bob@contact")
    assert [n for n, _ in invite + bye] == ["Proxy-Authorization", "Proxy-Authorization"]
    assert field(bye[0][1], "nc") == "00000002"
    assert field(bye[0][1], "uri") == '"sip:bob@contact"'


def test_no_credentials_for_realm_fails_with_reason() -> None:
    store = CredentialStore()
    store.add("known", "alice", "secret")
    result = DigestAuthenticator(store).handle_challenge(
        [("WWW-Authenticate", challenge_value("unknown"))]
    )
    assert result.outcome is AuthOutcome.FAILED
    assert "no credentials for realm 'unknown'" in result.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=SHA3')], "unsupported"),
        ([("WWW-Authenticate", 'Digest realm="r", nonce="n", qop="auth-conf"')], "unsupported"),
        ([("WWW-Authenticate", 'Digest realm="r"')], "without realm or nonce"),
        ([("WWW-Authenticate", 'Basic realm="r"')], "no Digest challenge"),
        ([], "no Digest challenge"),
    ],
)
def test_unusable_challenges_fail(headers: list[tuple[str, str]], reason: str) -> None:
    result = alice_authenticator().handle_challenge(headers)
    assert result.outcome is AuthOutcome.FAILED
    assert reason in result.reason


def test_one_malformed_field_does_not_hide_a_good_one() -> None:
    auth = alice_authenticator()
    result = auth.handle_challenge(
        [("WWW-Authenticate", 'Digest realm="'), ("WWW-Authenticate", challenge_value())]
    )
    assert result.outcome is AuthOutcome.RETRY


def test_userhash_challenge_hashes_the_username() -> None:
    auth = alice_authenticator()
    auth.handle_challenge(
        [
            (
                "WWW-Authenticate",
                challenge_value(extra='qop="auth", algorithm=SHA-256, userhash=true'),
            )
        ]
    )
    [(_, value)] = auth.authorization_headers("INVITE", "sip:x")
    creds = parse_credentials(value)
    assert creds.userhash is True
    assert creds.username == hashlib.sha256(b"alice:r").hexdigest()
    assert value.endswith(", userhash=true")


def test_sess_algorithm_keeps_its_cnonce_for_the_nonce() -> None:
    auth = alice_authenticator()
    auth.handle_challenge(
        [("WWW-Authenticate", challenge_value(extra='qop="auth", algorithm=SHA-256-sess'))]
    )
    first = parse_credentials(auth.authorization_headers("INVITE", "sip:x")[0][1])
    second = parse_credentials(auth.authorization_headers("INVITE", "sip:x")[0][1])
    assert first.cnonce == second.cnonce
    assert (first.nc, second.nc) == ("00000001", "00000002")


def test_credentials_repr_hides_password() -> None:
    store = CredentialStore()
    store.add(None, "alice", "hunter2")
    user = store.get("any")
    assert user is not None and "hunter2" not in repr(user)


# ---------------------------------------------------------------------------------------------
# UAS: DigestServer
# ---------------------------------------------------------------------------------------------

USERS = {"alice": "secret", "bob": "builder"}


def make_server(**kwargs: object) -> DigestServer:
    return DigestServer("pygasi.example", USERS.get, SECRET, **kwargs)  # type: ignore[arg-type]


def client_answer(
    challenge_values: list[str],
    *,
    user: str = "alice",
    password: str = "secret",
    method: str = "INVITE",
    uri: str = "sip:room@gw",
    body: bytes = b"",
    header: str = "WWW-Authenticate",
) -> str:
    store = CredentialStore()
    store.add(None, user, password)
    auth = DigestAuthenticator(store)
    assert auth.handle_challenge([(header, v) for v in challenge_values]).should_retry
    [(_, value)] = auth.authorization_headers(method, uri, body)
    return value


def test_server_challenge_form() -> None:
    [value] = make_server().challenges(NOW)
    assert re.fullmatch(
        r'Digest realm="pygasi.example", nonce="[A-Za-z0-9_-]{43}", algorithm=MD5, qop="auth"',
        value,
    )
    [stale] = make_server().challenges(NOW, stale=True)
    assert parse_challenges(stale)[0].stale


def test_server_offers_sha256_and_md5_in_preference_order() -> None:
    values = make_server(algorithms=["SHA-256", "MD5"]).challenges(NOW)
    challenges = [parse_challenges(v)[0] for v in values]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert challenges[0].nonce == challenges[1].nonce


@pytest.mark.parametrize("algorithm", sorted(a.name for a in ALGORITHMS.values()))
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
def test_round_trip_every_algorithm(algorithm: str, qop: str) -> None:
    server = make_server(algorithms=[algorithm], qop=[qop])
    body = b"v=0\r\n"
    value = client_answer(server.challenges(NOW), body=body)
    creds = parse_credentials(value)
    assert (creds.algorithm, creds.qop) == (algorithm, qop)
    result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW + 10, body=body)
    assert result.status is VerifyStatus.OK, result
    if qop == "auth-int":  # the body is covered
        other = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW, body=b"x")
        assert other.status is VerifyStatus.WRONG_PASSWORD


def test_round_trip_rfc2069_server() -> None:
    server = make_server(qop=[])
    [challenge] = server.challenges(NOW)
    assert "qop" not in challenge
    value = client_answer([challenge])
    assert "nc=" not in value and "cnonce=" not in value
    assert server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW).ok


def test_round_trip_via_407() -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW), header="Proxy-Authenticate")
    assert server.verify([value], method="INVITE", uri="sip:room@gw", now=NOW).ok


def test_server_rejects_wrong_password() -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW), password="wrong")
    result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.WRONG_PASSWORD and not result.stale
    assert result.username == "alice"


def test_server_rejects_unknown_user() -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW), user="mallory")
    result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.UNKNOWN_USER


def test_server_rejects_wrong_realm() -> None:
    other = DigestServer("elsewhere", USERS.get, SECRET)
    value = client_answer(other.challenges(NOW))
    result = make_server().verify(value, method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.WRONG_REALM


def test_server_rejects_uri_mismatch_unless_disabled() -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW), uri="sip:room@gw")
    result = server.verify(value, method="INVITE", uri="sip:other@gw", now=NOW)
    assert result.status is VerifyStatus.URI_MISMATCH
    lenient = make_server(check_uri=False)
    value = client_answer(lenient.challenges(NOW), uri="sip:room@gw")
    assert lenient.verify(value, method="INVITE", uri="sip:other@gw", now=NOW).ok


def test_server_rejects_wrong_method() -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW), method="INVITE")
    result = server.verify(value, method="BYE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.WRONG_PASSWORD


def test_expired_nonce_is_stale_and_the_client_recovers() -> None:
    server = make_server(nonce_lifetime=60.0)
    store = CredentialStore()
    store.add(None, "alice", "secret")
    auth = DigestAuthenticator(store)
    auth.handle_challenge([("WWW-Authenticate", v) for v in server.challenges(NOW)])
    [(_, first)] = auth.authorization_headers("REGISTER", "sip:gw")
    assert server.verify(first, method="REGISTER", uri="sip:gw", now=NOW + 59).ok
    later = NOW + 61
    [(_, second)] = auth.authorization_headers("REGISTER", "sip:gw")
    result = server.verify(second, method="REGISTER", uri="sip:gw", now=later)
    assert result.status is VerifyStatus.STALE and result.stale
    outcome = auth.handle_challenge(
        [("WWW-Authenticate", v) for v in server.challenges(later, stale=result.stale)]
    )
    assert outcome.outcome is AuthOutcome.STALE_RETRY
    [(_, third)] = auth.authorization_headers("REGISTER", "sip:gw")
    assert server.verify(third, method="REGISTER", uri="sip:gw", now=later).ok


def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    # RFC 7616 §3.3: stale only when the digest itself was right.
    server = make_server(nonce_lifetime=60.0)
    value = client_answer(server.challenges(NOW), password="wrong")
    result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW + 120)
    assert result.status is VerifyStatus.WRONG_PASSWORD


def test_tampered_nonce_is_invalid() -> None:
    server = make_server()
    [challenge] = server.challenges(NOW)
    nonce = parse_challenges(challenge)[0].nonce
    tampered = nonce[:5] + ("A" if nonce[5] != "A" else "B") + nonce[6:]
    creds = answer_challenge(
        DigestChallenge(realm="pygasi.example", nonce=tampered, qop=("auth",)),
        username="alice",
        password="secret",
        method="INVITE",
        uri="sip:room@gw",
    )
    result = server.verify(creds.serialize(), method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.INVALID_NONCE and not result.stale


def test_nonce_from_another_secret_or_realm_or_made_up_is_invalid() -> None:
    foreign = DigestServer("pygasi.example", USERS.get, b"another secret")
    value = client_answer(foreign.challenges(NOW))
    result = make_server().verify(value, method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.INVALID_NONCE
    made_up = client_answer([challenge_value("pygasi.example", "abc")])
    result = make_server().verify(made_up, method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.INVALID_NONCE


def test_nonce_from_the_future_is_invalid() -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW + 3600))
    result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.INVALID_NONCE


def test_nonces_survive_a_restart_with_the_same_secret() -> None:
    value = client_answer(make_server().challenges(NOW))
    assert make_server().verify(value, method="INVITE", uri="sip:room@gw", now=NOW + 1).ok


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda v: v.replace("algorithm=MD5", "algorithm=SHA-256"), VerifyStatus.UNSUPPORTED),
        (lambda v: v.replace("qop=auth", "qop=auth-int"), VerifyStatus.UNSUPPORTED),
        (lambda v: v + ", userhash=true", VerifyStatus.UNSUPPORTED),
        (lambda v: v.replace("Digest ", "Digest x"), VerifyStatus.MALFORMED),
        (lambda v: v.replace("qop=auth, ", ""), VerifyStatus.UNSUPPORTED),  # qop dropped
        (lambda v: "Basic YWxpY2U6c2VjcmV0", VerifyStatus.MALFORMED),
    ],
)
def test_server_rejects_what_it_did_not_offer(
    mutate: Callable[[str], str], status: VerifyStatus
) -> None:
    server = make_server()
    value = client_answer(server.challenges(NOW))
    result = server.verify(mutate(value), method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is status, result


def test_qop_required_when_offered() -> None:
    server = make_server()
    nonce = parse_challenges(server.challenges(NOW)[0])[0].nonce
    creds = answer_challenge(  # an RFC 2069 answer to a qop challenge
        DigestChallenge(realm="pygasi.example", nonce=nonce),
        username="alice",
        password="secret",
        method="INVITE",
        uri="sip:room@gw",
    )
    result = server.verify(creds.serialize(), method="INVITE", uri="sip:room@gw", now=NOW)
    assert result.status is VerifyStatus.UNSUPPORTED


def test_verify_picks_our_realm_among_several_fields() -> None:
    server = make_server()
    ours = client_answer(server.challenges(NOW))
    theirs = client_answer(DigestServer("proxy", USERS.get, SECRET).challenges(NOW))
    assert server.verify([theirs, "garbage", ours], method="INVITE", uri="sip:room@gw", now=NOW).ok
    assert server.verify([], method="INVITE", uri="sip:room@gw", now=NOW).status is (
        VerifyStatus.MALFORMED
    )


def test_replay_protection_needs_growing_nc() -> None:
    server = make_server(replay_protection=True)
    store = CredentialStore()
    store.add(None, "alice", "secret")
    auth = DigestAuthenticator(store)
    auth.handle_challenge([("WWW-Authenticate", v) for v in server.challenges(NOW)])
    [(_, first)] = auth.authorization_headers("INVITE", "sip:room@gw")
    [(_, second)] = auth.authorization_headers("INVITE", "sip:room@gw")
    [(_, third)] = auth.authorization_headers("INVITE", "sip:room@gw")
    verify = server.verify
    assert verify(first, method="INVITE", uri="sip:room@gw", now=NOW).ok
    replay = verify(first, method="INVITE", uri="sip:room@gw", now=NOW)
    assert replay.status is VerifyStatus.REPLAY and replay.stale
    assert verify(third, method="INVITE", uri="sip:room@gw", now=NOW).ok
    late = verify(second, method="INVITE", uri="sip:room@gw", now=NOW)  # 2 after 3
    assert late.status is VerifyStatus.REPLAY
    # without replay protection the same replay passes (stateless)
    assert make_server().verify(first, method="INVITE", uri="sip:room@gw", now=NOW).ok


def test_replay_memory_is_bounded_and_forgetting_never_reopens_a_replay() -> None:
    server = make_server(replay_protection=True, replay_memory=2)
    answers = [client_answer(server.challenges(NOW + i)) for i in range(4)]
    for value in answers:
        assert server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW + 5).ok
    # The two oldest nonces were evicted: replaying them is refused (as stale, so an honest
    # client just fetches a new nonce), the two newest are still tracked.
    for value in answers:
        result = server.verify(value, method="INVITE", uri="sip:room@gw", now=NOW + 5)
        assert result.status is VerifyStatus.REPLAY and result.stale
    fresh = client_answer(server.challenges(NOW + 6))
    assert server.verify(fresh, method="INVITE", uri="sip:room@gw", now=NOW + 6).ok


def test_server_configuration_errors() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        DigestServer("r", USERS.get, SECRET, algorithms=["SHA-1"])
    with pytest.raises(ValueError, match="qop"):
        DigestServer("r", USERS.get, SECRET, qop=["auth-conf"])
    with pytest.raises(ValueError, match="secret"):
        DigestServer("r", USERS.get, b"")
    with pytest.raises(ValueError, match="control character"):
        DigestServer("r\n", USERS.get, SECRET)


def test_credentials_round_trip_through_serialize() -> None:
    creds = DigestCredentials(
        username="a",
        realm="r",
        nonce="n",
        uri="sip:a@b;transport=tcp",
        response="0" * 32,
        algorithm="SHA-256",
        cnonce="c",
        opaque="o",
        qop="auth",
        nc="0000000a",
    )
    assert parse_credentials(creds.serialize()) == creds
    assert parse_credentials(creds.serialize()).nc_value == 10
