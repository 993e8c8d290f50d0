"""SIP INFO bodies between the IVR and the gateway (jigasi.md §4)."""

from __future__ import annotations

import encodings.aliases
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.info import (
    DTMF,
    DTMF_RELAY,
    JSON,
    DtmfInfo,
    EmptyInfo,
    Heartbeat,
    InfoParseError,
    MuteRequest,
    MuteResponse,
    OtherMessage,
    charset_of,
    dtmf_relay,
    heartbeat,
    mute_request,
    mute_response,
    parse_info,
)


def parse_json(document: object) -> object:
    return parse_info(JSON, json.dumps(document).encode())


def reason_of(content_type: str | None, body: bytes, charset: str | None = None) -> str:
    with pytest.raises(InfoParseError) as caught:
        parse_info(content_type, body, charset)
    assert str(caught.value) == caught.value.reason
    assert isinstance(caught.value, ValueError)
    return caught.value.reason


# -- what we send: the exact shapes of jigasi.md §4.2 ----------------------------------------------


def test_content_types() -> None:
    assert (JSON, DTMF_RELAY, DTMF) == (
        "application/json",
        "application/dtmf-relay",
        "application/dtmf",
    )


def test_mute_request_shape() -> None:
    body = mute_request("6f1c2a", True)
    assert body == b'{"type":"muteRequest","id":"6f1c2a","data":{"audio":true}}'
    assert json.loads(body) == {"type": "muteRequest", "id": "6f1c2a", "data": {"audio": True}}
    assert json.loads(mute_request("x", False)) == {
        "type": "muteRequest",
        "id": "x",
        "data": {"audio": False},
    }


def test_mute_response_shape() -> None:
    body = mute_response("6f1c2a", True, True)
    assert body == (b'{"type":"muteResponse","id":"6f1c2a","status":"OK","data":{"audio":true}}')
    assert json.loads(mute_response("6f1c2a", False, False)) == {
        "type": "muteResponse",
        "id": "6f1c2a",
        "status": "FAILED",
        "data": {"audio": False},
    }


def test_heartbeat_shape() -> None:
    assert heartbeat() == b'{"t":11}'
    assert json.loads(heartbeat()) == {"t": 11}


def test_dtmf_relay_body() -> None:
    assert dtmf_relay("5", 160) == b"Signal=5\r\nDuration=160\r\n"
    assert dtmf_relay("#") == b"Signal=#\r\nDuration=250\r\n"


def test_what_we_send_parses_back() -> None:
    assert parse_info(JSON, mute_request("a-1", True)) == MuteRequest("a-1", True)
    assert parse_info(JSON, mute_response("a-1", False, True)) == MuteResponse("a-1", False, True)
    assert parse_info(JSON, heartbeat()) == Heartbeat()
    assert parse_info(DTMF_RELAY, dtmf_relay("*", 100)) == DtmfInfo("*", 100)


def test_unicode_ids_are_not_escaped_away() -> None:
    assert json.loads(mute_request("é-1", True))["id"] == "é-1"
    assert parse_info(JSON, mute_request("é-1", True)) == MuteRequest("é-1", True)


# -- the "type" family: mute -----------------------------------------------------------------------


def test_parse_jigasi_mute_request_example() -> None:
    body = b'{"type":"muteRequest","id":"6f1","data":{"audio":true}}'
    assert parse_info(JSON, body) == MuteRequest("6f1", True)


def test_parse_unmute_request() -> None:
    document = {"type": "muteRequest", "id": "u", "data": {"audio": False}}
    assert parse_json(document) == MuteRequest("u", False)


def test_parse_mute_responses() -> None:
    ok = {"type": "muteResponse", "id": "6f1", "status": "OK", "data": {"audio": True}}
    assert parse_json(ok) == MuteResponse("6f1", True, True)
    failed = {"type": "muteResponse", "id": "6f1", "status": "FAILED", "data": {"audio": False}}
    assert parse_json(failed) == MuteResponse("6f1", False, False)
    bare = {"type": "muteResponse", "id": "6f1", "status": "OK"}
    assert parse_json(bare) == MuteResponse("6f1", True, None)
    no_audio = {"type": "muteResponse", "id": "6f1", "status": "OK", "data": {}}
    assert parse_json(no_audio) == MuteResponse("6f1", True, None)


def test_an_integer_id_becomes_text() -> None:
    assert parse_json({"type": "muteRequest", "id": 42, "data": {"audio": True}}) == (
        MuteRequest("42", True)
    )


def test_extra_keys_are_ignored() -> None:
    document = {"type": "muteRequest", "id": "x", "data": {"audio": True, "video": 1}, "z": []}
    assert parse_json(document) == MuteRequest("x", True)


def test_other_types_are_other_messages() -> None:
    assert parse_json({"type": "handRequest", "id": "h"}) == OtherMessage("type=handRequest")
    assert parse_json({"type": "x" * 100}) == OtherMessage("type=" + "x" * 40)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"type": 1}, '"type" is not a string'),
        ({"type": "muteRequest", "id": "x"}, "muteRequest without data.audio"),
        ({"type": "muteRequest", "id": "x", "data": {}}, "muteRequest without data.audio"),
        (
            {"type": "muteRequest", "id": "x", "data": {"audio": None}},
            "muteRequest without data.audio",
        ),
        ({"type": "muteRequest", "id": "x", "data": True}, '"data" is not an object'),
        ({"type": "muteRequest", "id": "x", "data": [True]}, '"data" is not an object'),
        ({"type": "muteRequest", "id": "x", "data": {"audio": 1}}, '"data.audio" is not a boolean'),
        (
            {"type": "muteRequest", "id": "x", "data": {"audio": "true"}},
            '"data.audio" is not a boolean',
        ),
        ({"type": "muteRequest", "data": {"audio": True}}, '"id" is missing or not a string'),
        (
            {"type": "muteRequest", "id": True, "data": {"audio": True}},
            '"id" is missing or not a string',
        ),
        (
            {"type": "muteRequest", "id": 1.5, "data": {"audio": True}},
            '"id" is missing or not a string',
        ),
        (
            {"type": "muteRequest", "id": None, "data": {"audio": True}},
            '"id" is missing or not a string',
        ),
        ({"type": "muteRequest", "id": "", "data": {"audio": True}}, '"id" is empty or too long'),
        (
            {"type": "muteRequest", "id": "x" * 201, "data": {"audio": True}},
            '"id" is empty or too long',
        ),
        ({"type": "muteResponse", "id": "x"}, 'muteResponse status is not "OK" or "FAILED"'),
        (
            {"type": "muteResponse", "id": "x", "status": "ok"},
            'muteResponse status is not "OK" or "FAILED"',
        ),
        (
            {"type": "muteResponse", "status": "OK", "data": {"audio": True}},
            '"id" is missing or not a string',
        ),
        (
            {"type": "muteResponse", "id": "x", "status": "OK", "data": "yes"},
            '"data" is not an object',
        ),
    ],
)
def test_bad_mute_messages(document: dict[str, object], reason: str) -> None:
    assert reason_of(JSON, json.dumps(document).encode()) == reason


def test_an_id_of_200_characters_is_accepted() -> None:
    document = {"type": "muteRequest", "id": "x" * 200, "data": {"audio": True}}
    assert parse_json(document) == MuteRequest("x" * 200, True)


# -- the "t" family ----------------------------------------------------------------------------------


def test_parse_heartbeat() -> None:
    assert parse_info(JSON, b'{"t":11}') == Heartbeat()
    assert parse_info(JSON, b'{ "t" : 11 , "i" : 3 }\r\n') == Heartbeat()


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"i":0,"t":3}', "t=3"),
        (b'{"i":1,"t":4,"d":{"pwd":"1234"}}', "t=4"),
        (b'{"t":8,"d":true}', "t=8"),
        (b'{"t":15,"d":false}', "t=15"),
        (b'{"t":-1}', "t=-1"),
    ],
)
def test_other_t_messages(body: bytes, kind: str) -> None:
    assert parse_info(JSON, body) == OtherMessage(kind)


def test_type_wins_over_t() -> None:
    body = b'{"t":11,"type":"muteRequest","id":"x","data":{"audio":true}}'
    assert parse_info(JSON, body) == MuteRequest("x", True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"t":true}', '"t" is not an integer'),
        (b'{"t":"11"}', '"t" is not an integer'),
        (b'{"t":11.0}', '"t" is not an integer'),
        (b"{}", 'JSON object has neither "type" nor "t"'),
        (b'{"t":null}', 'JSON object has neither "type" nor "t"'),
        (b'{"d":true}', 'JSON object has neither "type" nor "t"'),
        (b"[11]", "JSON body is not an object"),
        (b'"t"', "JSON body is not an object"),
        (b"11", "JSON body is not an object"),
        (b"null", "JSON body is not an object"),
        (b"{", "invalid JSON: Expecting property name enclosed in double quotes"),
        (b'{"t":11', "invalid JSON: Expecting ',' delimiter"),
        (b"not json", "invalid JSON: Expecting value"),
        (b'{"t":11} x', "invalid JSON: Extra data"),
        (b"[" * 5000, "invalid JSON: nested too deeply"),
    ],
)
def test_bad_json(body: bytes, reason: str) -> None:
    assert reason_of(JSON, body) == reason


def test_a_huge_number_is_invalid_json() -> None:
    assert reason_of(JSON, b'{"t":' + b"1" * 5000 + b"}").startswith("invalid JSON: ")


# -- charsets (jigasi.md §4.1: the charset parameter is honoured, UTF-8 by default) ---------------


def test_utf8_by_default() -> None:
    body = '{"type":"muteRequest","id":"é","data":{"audio":true}}'.encode()
    assert parse_info(JSON, body) == MuteRequest("é", True)


def test_latin1_charset_is_honoured() -> None:
    body = '{"type":"muteRequest","id":"é","data":{"audio":true}}'.encode("latin-1")
    assert parse_info(JSON, body, "ISO-8859-1") == MuteRequest("é", True)
    assert reason_of(JSON, body) == "body is not valid utf-8: invalid continuation byte"


def test_utf16_charset() -> None:
    body = '{"t":11}'.encode("utf-16")
    assert parse_info(JSON, body, "utf-16") == Heartbeat()


@pytest.mark.parametrize(
    ("charset", "reason"),
    [
        ("klingon", "unknown charset 'klingon'"),
        ("base64", "unknown charset 'base64'"),  # a bytes-to-bytes codec is no charset
        ("rot13", "unknown charset 'rot13'"),
        ("undefined", "body cannot be decoded as 'undefined'"),
        ("punycode", "body cannot be decoded as 'punycode'"),
        ("utf-8\x00", "body cannot be decoded as 'utf-8\\x00'"),
    ],
)
def test_bad_charsets(charset: str, reason: str) -> None:
    assert reason_of(JSON, b'{"t":11}', charset) == reason


@pytest.mark.parametrize(
    ("header", "charset"),
    [
        ("application/json", None),
        ("application/json; charset=UTF-8", "UTF-8"),
        ('application/json;charset="iso-8859-1"', "iso-8859-1"),
        ("application/json ; CHARSET = utf-16", "utf-16"),
        ("application/json; foo=bar; charset=latin1", "latin1"),
        ("application/json; charset=", None),
        ("", None),
        (None, None),
    ],
)
def test_charset_of(header: str | None, charset: str | None) -> None:
    assert charset_of(header) == charset


# -- DTMF (jigasi.md §4.4) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Signal=5\r\nDuration=160\r\n", DtmfInfo("5", 160)),
        (b"Duration=100\nSignal=#\n", DtmfInfo("#", 100)),
        (b"signal = a\r\nduration = 80", DtmfInfo("A", 80)),
        (b"Signal=*", DtmfInfo("*", None)),
        (b"Signal=10\r\nDuration=100\r\n", DtmfInfo("*", 100)),  # RFC 4733 event codes
        (b"Signal=11\r\n", DtmfInfo("#", None)),
        (b"Signal=0\r\nDuration=0\r\n", DtmfInfo("0", 0)),
        (b"junk line\r\nSignal=9\r\n", DtmfInfo("9", None)),
    ],
)
def test_dtmf_relay(body: bytes, expected: DtmfInfo) -> None:
    assert parse_info(DTMF_RELAY, body) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"Duration=100\r\n", "dtmf-relay without Signal"),
        (b"Signal 5\r\n", "dtmf-relay without Signal"),
        (b"Signal=12\r\n", "dtmf-relay Signal '12' is not a digit"),
        (b"Signal=x\r\n", "dtmf-relay Signal 'x' is not a digit"),
        (b"Signal=\r\n", "dtmf-relay Signal '' is not a digit"),
        (b"Signal=5\r\nDuration=abc\r\n", "dtmf-relay Duration 'abc' is not a number"),
        (b"Signal=5\r\nDuration=-1\r\n", "dtmf-relay Duration '-1' is not a number"),
        (b"Signal=5\r\nDuration=1234567\r\n", "dtmf-relay Duration '1234567' is not a number"),
        (
            "Signal=5\r\nDuration=\u0661\u0662\r\n".encode(),
            "dtmf-relay Duration '\u0661\u0662' is not a number",
        ),
    ],
)
def test_bad_dtmf_relay(body: bytes, reason: str) -> None:
    assert reason_of(DTMF_RELAY, body) == reason


@pytest.mark.parametrize(
    ("body", "digit"),
    [(b"5", "5"), (b" #\r\n", "#"), (b"d", "D"), (b"*", "*"), (b"0", "0")],
)
def test_dtmf(body: bytes, digit: str) -> None:
    assert parse_info(DTMF, body) == DtmfInfo(digit, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"55", "application/dtmf body '55' is not one digit"),
        (b"x", "application/dtmf body 'x' is not one digit"),
        (b"  ", "application/dtmf body '' is not one digit"),
    ],
)
def test_bad_dtmf(body: bytes, reason: str) -> None:
    assert reason_of(DTMF, body) == reason


# -- empty, too large, unknown ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, JSON, DTMF_RELAY, DTMF, "text/plain"])
def test_an_empty_body_is_an_empty_info(content_type: str | None) -> None:
    assert parse_info(content_type, b"") == EmptyInfo()


def test_unsupported_content_types() -> None:
    assert reason_of("text/plain", b"hello") == "unsupported content type text/plain"
    assert reason_of(None, b"hello") == "unsupported content type none"
    assert reason_of("application/sdp", b"v=0") == "unsupported content type application/sdp"


def test_a_body_too_large() -> None:
    body = b'{"t":11,"pad":"' + b"x" * 8200 + b'"}'
    assert reason_of(JSON, body) == f"body of {len(body)} bytes is too large"
    limit = b'{"t":11,"pad":"' + b"x" * (8192 - 17) + b'"}'
    assert len(limit) == 8192
    assert parse_info(JSON, limit) == Heartbeat()
    over = limit[:-2] + b'x"}'
    assert reason_of(JSON, over) == "body of 8193 bytes is too large"


# -- whatever the peer sends, only InfoParseError comes out --------------------------------------------

MESSAGES = (MuteRequest, MuteResponse, Heartbeat, OtherMessage, DtmfInfo, EmptyInfo)
CODECS = [
    *sorted(set(encodings.aliases.aliases.values())),
    "utf-8",
    "utf-16",
    "undefined",
    "punycode",
    "idna",
    "unicode_escape",
    "raw_unicode_escape",
    "utf-8\x00",
    "",
]
CONTENT_TYPES = st.one_of(
    st.sampled_from([JSON, DTMF_RELAY, DTMF, "text/plain"]), st.none(), st.text(max_size=30)
)
CHARSETS = st.one_of(st.none(), st.sampled_from(CODECS), st.text(max_size=20))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["muteRequest", "muteResponse", "OK", "FAILED", "audio"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "id", "data", "status", "audio", "t", "i", "d"]) | st.text(),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def _check(content_type: str | None, body: bytes, charset: str | None) -> None:
    try:
        message = parse_info(content_type, body, charset)
    except InfoParseError as exc:
        assert isinstance(exc.reason, str)
        assert exc.reason
    else:
        assert isinstance(message, MESSAGES)


@settings(max_examples=500, deadline=None)
@given(content_type=CONTENT_TYPES, body=st.binary(max_size=300), charset=CHARSETS)
def test_parse_info_only_raises_info_parse_error(
    content_type: str | None, body: bytes, charset: str | None
) -> None:
    _check(content_type, body, charset)


@settings(max_examples=500, deadline=None)
@given(document=JSON_VALUES, charset=st.one_of(st.none(), st.sampled_from(CODECS)))
def test_parse_info_on_json_documents_only_raises_info_parse_error(
    document: object, charset: str | None
) -> None:
    _check(JSON, json.dumps(document).encode(), charset)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(["Signal", "Duration", "signal", "x"]) | st.text(max_size=8),
            st.text(max_size=8),
        ),
        max_size=4,
    ),
    newline=st.sampled_from(["\r\n", "\n", "\r"]),
)
def test_dtmf_relay_bodies_only_raise_info_parse_error(
    fields: list[tuple[str, str]], newline: str
) -> None:
    text = newline.join(f"{name}={value}" for name, value in fields)
    _check(DTMF_RELAY, text.encode("utf-8", "surrogatepass"), None)
