"""gateway.logs: text and JSON lines, call context, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import LoggingConfig
from gateway.config_loader import load_config, secrets_of
from gateway.logs import call_logger, mask_secrets, setup_logging

INVITE_WITH_CREDENTIALS = (
    "INVITE sip:standup@gw.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK776asdhds\r\n"
    'Authorization: Digest username="trunk1", realm="pygasi", nonce="84f1c1ae6cbe5ua9", '
    'uri="sip:standup@gw.example.com", response="8e9a4b2c7d1f0e3a5b6c7d8e9f0a1b2c", '
    'algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001\r\n'
    "Proxy-Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb29tIjoiKiJ9.c2lnbmF0dXJl\r\n"
    "X-Room-Name: standup\r\n"
    "X-Room-Pass: 4711\r\n"
    "Contact: <sip:trunk1:hunter2@203.0.113.5>\r\n"
    "\r\n"
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def capture(fmt: str, secrets: list[str] | None = None, level: str = "debug") -> io.StringIO:
    stream = io.StringIO()
    setup_logging(LoggingConfig(level=level, format=fmt), secrets or [], stream)
    return stream


def test_sip_message_credentials_are_masked(restore_logging: None) -> None:
    stream = capture("text")
    logging.getLogger("pygasi.sip").debug(
        "received from %s:\n%s", "203.0.113.5", INVITE_WITH_CREDENTIALS
    )
    out = stream.getvalue()
    assert "8e9a4b2c7d1f0e3a5b6c7d8e9f0a1b2c" not in out
    assert 'response="***"' in out
    assert "eyJhbGciOiJIUzI1NiJ9" not in out and "Proxy-Authorization: Bearer ***" in out
    assert "4711" not in out and "X-Room-Pass: ***" in out
    assert "hunter2" not in out and "<sip:trunk1:***@203.0.113.5>" in out
    # What is needed to debug authentication stays.
    assert 'username="trunk1"' in out and 'realm="pygasi"' in out and "X-Room-Name: standup" in out


def test_a_logged_configuration_shows_no_password(tmp_path: Path, restore_logging: None) -> None:
    (tmp_path / "xmpp.pw").write_text("Xmpp-S3cret!\n")
    path = tmp_path / "pygasi.toml"
    path.write_text(
        """
[sip.account]
uri = "sip:gw@pbx.example.com"
password = "correct horse battery staple"
[inbound.digest]
realm = "pygasi"
users = { trunk1 = "TrunkPass1" }
[xmpp]
username = "jigasi@auth.meet.example.com"
password_file = "xmpp.pw"
"""
    )
    config = load_config(path, {})
    stream = capture("json", secrets_of(config))
    log = logging.getLogger("pygasi")
    log.info("configuration: %r", config)
    log.info("account %s", config.sip.account)
    log.info("the XMPP login uses %s", config.xmpp.password)  # a careless line: masked anyway
    out = stream.getvalue()
    for secret in ("correct horse battery staple", "TrunkPass1", "Xmpp-S3cret!"):
        assert secret not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert "password=***" in lines[0]["msg"]
    assert "uri='sip:gw@pbx.example.com'" in lines[1]["msg"]
    assert lines[2]["msg"] == "the XMPP login uses ***"


def test_exceptions_are_masked_too(restore_logging: None) -> None:
    stream = capture("text", ["s3cr3t-value"])
    try:
        raise RuntimeError("login failed with password=s3cr3t-value")
    except RuntimeError:
        logging.getLogger("pygasi").exception("XMPP login")
    out = stream.getvalue()
    assert "s3cr3t-value" not in out
    assert "RuntimeError: login failed with password=***" in out


def test_xmpp_sasl_plain_is_masked() -> None:
    stanza = (
        'SEND: <auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">'
        "AGppZ2FzaQBodW50ZXIy</auth>"
    )
    assert mask_secrets(stanza).endswith('mechanism="PLAIN">***</auth>')


def test_secret_patterns() -> None:
    cases = {
        '{"password": "x1", "token": "t1"}': '{"password": ***, "token": ***}',
        "https://meet.example.com/room?jwt=abc.def&lang=en": "https://meet.example.com/room?jwt=***&lang=en",
        "PYGASI_SIP__ACCOUNT__PASSWORD=pw9": "PYGASI_SIP__ACCOUNT__PASSWORD=***",
        "component_secret = 'cs'": "component_secret = ***",
        "password_header=['X-Room-Pass']": "password_header=['X-Room-Pass']",
        "muteResponse OK": "muteResponse OK",
    }
    for text, masked in cases.items():
        assert mask_secrets(text) == masked, text


def test_call_lines_in_text(restore_logging: None) -> None:
    stream = capture("text", level="info")
    call = call_logger("a84b4c76e66710", None, "inbound")
    call.info("INVITE from %s", "sip:+15551230000@pbx")
    call.set_room("standup@conference.meet.example.com")
    call.info("joined as %s", "1a2b3c4d", extra={"nick": "1a2b3c4d"})
    call.debug("not shown at info")
    first, second = stream.getvalue().splitlines()
    assert first.endswith(
        "INFO pygasi.call [call=a84b4c76e66710 dir=inbound] INVITE from sip:+15551230000@pbx"
    )
    assert second.endswith(
        "INFO pygasi.call [call=a84b4c76e66710 room=standup@conference.meet.example.com "
        "dir=inbound] joined as 1a2b3c4d"
    )
    assert call.call_id == "a84b4c76e66710"


def test_call_lines_in_json(restore_logging: None) -> None:
    stream = capture("json", level="info")
    call = call_logger("c1", "standup@conference.meet.example.com", "outbound")
    call.warning("BYE sent: %s", "Reason: SIP;cause=408")
    logging.getLogger("pygasi.sip").info("no call context here")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["call_id"] == "c1"
    assert first["room"] == "standup@conference.meet.example.com"
    assert first["direction"] == "outbound"
    assert first["level"] == "warning" and first["logger"] == "pygasi.call"
    assert first["msg"] == "BYE sent: Reason: SIP;cause=408"
    assert first["ts"].endswith("Z")
    assert "call_id" not in second and second["msg"] == "no call context here"


def test_level_and_noisy_libraries(restore_logging: None) -> None:
    stream = capture("text", level="warning")
    logging.getLogger("pygasi").info("hidden")
    logging.getLogger("pygasi").warning("shown")
    assert stream.getvalue().count("\n") == 1 and "shown" in stream.getvalue()
    capture("text", level="info")
    assert logging.getLogger("slixmpp").getEffectiveLevel() == logging.WARNING
    capture("text", level="debug")
    assert logging.getLogger("slixmpp").getEffectiveLevel() == logging.DEBUG
