"""SIP INFO bodies between the phone side (an IVR) and the gateway (sans-IO).

The JSON catalogue is Jigasi's (reference/jigasi.md §4): the ``type`` family for mute
(``muteRequest`` / ``muteResponse`` with ``id``, ``data.audio`` and ``status``) and the ``t``
family for everything else (``{"t":11}`` is the heartbeat, §1.8). DTMF also travels as INFO:
``application/dtmf-relay`` (``Signal=5`` / ``Duration=160``, §4.4) and ``application/dtmf``
(the digit alone).

`parse_info` raises only `InfoParseError`, whatever the peer sends; the call answers it with
``400`` and the reason (Jigasi sends no answer at all, §4.1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

JSON = "application/json"
DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"

# jigasi.md §4.2 (b): the "t" message types.
T_LOBBY_JOINED = 3
T_REQUEST_ROOM_ACCESS = 4
T_HEARTBEAT = 11

_DIGITS = frozenset("0123456789*#ABCDabcd")
_MAX_BODY = 8192  # an INFO body is a few dozen bytes; anything bigger is not ours to parse


class InfoParseError(ValueError):
    """An INFO body we cannot understand. ``reason`` goes into the 400's reason phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """``{"type":"muteRequest","id":…,"data":{"audio":true}}``: (un)mute the caller."""

    id: str
    audio: bool


@dataclass(frozen=True, slots=True)
class MuteResponse:
    """``{"type":"muteResponse","id":…,"status":"OK"|"FAILED","data":{"audio":…}}``."""

    id: str
    ok: bool
    audio: bool | None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``{"t":11}`` (SIP_CALL_HEARTBEAT), either side."""


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A well-formed JSON message we do not act on (lobby and AV-moderation types, 3-10 and
    12-15, come with a later issue): answered 200 and logged."""

    kind: str  # "t=4", "type=handRequest", ...


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """A key press sent as INFO (``application/dtmf-relay`` or ``application/dtmf``)."""

    digit: str
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class EmptyInfo:
    """An INFO without a body (a keep-alive some trunks send): answered 200."""


InfoMessage = MuteRequest | MuteResponse | Heartbeat | OtherMessage | DtmfInfo | EmptyInfo


def parse_info(content_type: str | None, body: bytes, charset: str | None = None) -> InfoMessage:
    """The message an INFO carries. ``content_type`` is the media type without parameters
    (lower case); ``charset`` its charset parameter, if any (JSON defaults to UTF-8)."""
    if not body:
        return EmptyInfo()
    if len(body) > _MAX_BODY:
        raise InfoParseError(f"body of {len(body)} bytes is too large")
    if content_type == JSON:
        return _parse_json(_decode(body, charset))
    if content_type == DTMF_RELAY:
        return _parse_dtmf_relay(_decode(body, charset))
    if content_type == DTMF:
        digit = _decode(body, charset).strip()
        if len(digit) != 1 or digit not in _DIGITS:
            raise InfoParseError(f"application/dtmf body {digit[:10]!r} is not one digit")
        return DtmfInfo(digit.upper(), None)
    raise InfoParseError(f"unsupported content type {content_type or 'none'}")


def charset_of(content_type_header: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header value."""
    if not content_type_header:
        return None
    match = re.search(r";\s*charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", content_type_header, re.I)
    return match.group(1) if match else None


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8")
    except LookupError:
        raise InfoParseError(f"unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise InfoParseError(f"body is not valid {charset or 'utf-8'}: {exc.reason}") from None
    except ValueError:
        # Codecs that fail with a plain UnicodeError (punycode, "undefined"), or a charset
        # name holding a NUL: the peer's charset parameter, so its error too.
        raise InfoParseError(f"body cannot be decoded as {charset!r}") from None


def _parse_json(text: str) -> InfoMessage:
    try:
        document = json.loads(text)
    except RecursionError:
        raise InfoParseError("invalid JSON: nested too deeply") from None
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InfoParseError(f"invalid JSON: {detail}") from None
    if not isinstance(document, dict):
        raise InfoParseError("JSON body is not an object")
    kind = document.get("type")
    if kind is not None:
        if not isinstance(kind, str):
            raise InfoParseError('"type" is not a string')
        if kind == "muteRequest":
            audio = _audio(document)
            if audio is None:
                raise InfoParseError("muteRequest without data.audio")
            return MuteRequest(_id(document), audio)
        if kind == "muteResponse":
            status = document.get("status")
            if status not in ("OK", "FAILED"):
                raise InfoParseError('muteResponse status is not "OK" or "FAILED"')
            return MuteResponse(_id(document), status == "OK", _audio(document))
        return OtherMessage(f"type={kind[:40]}")
    t = document.get("t")
    if t is not None:
        # JSON numbers arrive as integers (§4.1); a bool is an int in Python, not here.
        if isinstance(t, bool) or not isinstance(t, int):
            raise InfoParseError('"t" is not an integer')
        if t == T_HEARTBEAT:
            return Heartbeat()
        return OtherMessage(f"t={t}")
    raise InfoParseError('JSON object has neither "type" nor "t"')


def _id(document: dict[str, object]) -> str:
    value = document.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InfoParseError('"id" is missing or not a string')
    text = str(value)
    if not text or len(text) > 200:
        raise InfoParseError('"id" is empty or too long')
    return text


def _audio(document: dict[str, object]) -> bool | None:
    data = document.get("data")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InfoParseError('"data" is not an object')
    audio = data.get("audio")
    if audio is None:
        return None
    if not isinstance(audio, bool):
        raise InfoParseError('"data.audio" is not a boolean')
    return audio


def _parse_dtmf_relay(text: str) -> DtmfInfo:
    """``Signal=5\\r\\nDuration=160\\r\\n`` (the de-facto format; fields in any order, any line
    ending)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    signal = fields.get("signal")
    if signal is None:
        raise InfoParseError("dtmf-relay without Signal")
    if signal == "10":
        signal = "*"  # some devices send the event code (RFC 4733 §3.2) instead
    elif signal == "11":
        signal = "#"
    if len(signal) != 1 or signal not in _DIGITS:
        raise InfoParseError(f"dtmf-relay Signal {signal[:10]!r} is not a digit")
    duration: int | None = None
    raw = fields.get("duration")
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
            raise InfoParseError(f"dtmf-relay Duration {raw[:10]!r} is not a number")
        duration = int(raw)
    return DtmfInfo(signal.upper(), duration)


# -- what we send ---------------------------------------------------------------------------------


def _dump(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def mute_request(request_id: str, audio: bool) -> bytes:
    """The conference asks the IVR to (un)mute the caller (a moderator's mute, §4.3)."""
    return _dump({"type": "muteRequest", "id": request_id, "data": {"audio": audio}})


def mute_response(request_id: str, ok: bool, audio: bool) -> bytes:
    """The answer to the IVR's muteRequest, with its ``id`` (§4.2)."""
    return _dump(
        {
            "type": "muteResponse",
            "id": request_id,
            "status": "OK" if ok else "FAILED",
            "data": {"audio": audio},
        }
    )


def heartbeat() -> bytes:
    return _dump({"t": T_HEARTBEAT})


def dtmf_relay(digit: str, duration_ms: int = 250) -> bytes:
    return f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()


__all__ = [
    "DTMF",
    "DTMF_RELAY",
    "JSON",
    "DtmfInfo",
    "EmptyInfo",
    "Heartbeat",
    "InfoMessage",
    "InfoParseError",
    "MuteRequest",
    "MuteResponse",
    "OtherMessage",
    "charset_of",
    "dtmf_relay",
    "heartbeat",
    "mute_request",
    "mute_response",
    "parse_info",
]
