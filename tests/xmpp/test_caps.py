"""XEP-0115 caps hashing and our disco#info feature set (sans-IO)."""

from __future__ import annotations

import pytest

from xmpp.caps import (
    AUDIO_MUTE,
    BASE_FEATURES,
    GATEWAY_IDENTITY,
    JIGASI,
    DiscoInfo,
    Identity,
    caps_ver,
    gateway_disco_info,
    verification_string,
)

# reference/jingle.md §2.4: identity client/phone//sipgw plus the 11 features of §12 step 4.
VECTOR_FEATURES = (
    "urn:xmpp:jingle:1",
    "urn:xmpp:jingle:apps:rtp:1",
    "urn:xmpp:jingle:apps:rtp:audio",
    "urn:xmpp:jingle:transports:ice-udp:1",
    "urn:xmpp:jingle:apps:dtls:0",
    "urn:ietf:rfc:5761",
    "urn:ietf:rfc:5888",
    "http://jabber.org/protocol/caps",
    "http://jabber.org/protocol/disco#info",
    "http://jitsi.org/source-name",
    "urn:xmpp:jingle:dtmf:0",
)


def test_jingle_md_test_vector() -> None:
    info = DiscoInfo((Identity("client", "phone", "sipgw"),), VECTOR_FEATURES)
    assert caps_ver(info) == "lG/Qs4L9B/4IdV5SfrxGAFlXsx4="


def test_xep0115_simple_example() -> None:
    # XEP-0115 §5.2: Exodus 0.9.1 -> QgayPKawpkPSDYmwT/WM94uAlu0=
    info = DiscoInfo(
        (Identity("client", "pc", "Exodus 0.9.1"),),
        (
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ),
    )
    assert caps_ver(info) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_order_of_features_and_identities_does_not_matter() -> None:
    a = DiscoInfo((Identity("client", "phone", "x"), Identity("client", "bot")), ("b", "a", "c"))
    b = DiscoInfo((Identity("client", "bot"), Identity("client", "phone", "x")), ("c", "a", "b"))
    assert verification_string(a) == "client/bot//<client/phone//x<a<b<c<"
    assert caps_ver(a) == caps_ver(b)


def test_identity_language_is_part_of_the_string() -> None:
    info = DiscoInfo((Identity("client", "phone", "Telefon", "de"),), ())
    assert verification_string(info) == "client/phone/de/Telefon<"


def test_duplicate_features_are_refused() -> None:
    with pytest.raises(ValueError):
        verification_string(DiscoInfo((GATEWAY_IDENTITY,), ("a", "a")))


def test_gateway_features_are_audio_only() -> None:
    info = gateway_disco_info()
    assert info.features == (*BASE_FEATURES, JIGASI, AUDIO_MUTE)
    forbidden = {
        "urn:xmpp:jingle:apps:rtp:video",
        "urn:xmpp:jingle:transports:dtls-sctp:1",
        "http://jitsi.org/ssrc-rewriting-1",
        "http://jitsi.org/tcc",
        "http://jitsi.org/remb",
        "urn:ietf:rfc:4588",
        "http://jitsi.org/opus-red",
    }
    assert not forbidden & set(info.features)
    assert "urn:xmpp:jingle:apps:rtp:audio" in info.features
    # Our ver follows from our own list, never the vector's (jingle.md §2.4).
    assert caps_ver(info) != "lG/Qs4L9B/4IdV5SfrxGAFlXsx4="
    bare = gateway_disco_info(jigasi=False, audio_mute=False)
    assert bare.features == BASE_FEATURES
    assert caps_ver(DiscoInfo((GATEWAY_IDENTITY,), VECTOR_FEATURES)) == caps_ver(bare)
