"""Logging set-up: text or JSON lines, secrets masked, per-call context.

Call events carry ``call_id``, ``room`` and ``direction`` through :func:`call_logger` (a
``logging.LoggerAdapter``): text lines show them as ``[call=… room=… dir=…]``, JSON lines as
fields. Whatever a record holds (a config's repr, a SIP message with ``Authorization``, an XMPP
SASL exchange, an exception), the formatters mask passwords, digest responses and tokens
before the line is written, and any secret value configured is masked wherever it appears.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

from gateway.config import LoggingConfig

MASK = "***"
CALL_LOGGER = "pygasi.call"
CALL_FIELDS = ("call_id", "room", "direction")
# Libraries that log every packet or stanza at INFO/DEBUG: quiet unless pygasi runs at debug
# (Jigasi ships its SIP/ICE stacks at SEVERE for the same reason, jigasi.md §7.1).
NOISY_LIBRARIES = ("slixmpp", "aioice", "aiortc", "aiohttp.access", "asyncio")

_SECRET_NAMES = r"(?:[\w-]*(?:password|passwd|secret|token)|pass|jwt|api[_-]?key|credentials?)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # SIP credentials (RFC 3261 §22.2, §22.3): the whole value after the scheme and user name
    # would hide what is needed to debug; the response and any Basic/Bearer token are secrets.
    (
        re.compile(r"(?im)^((?:proxy-)?authorization\s*:\s*(?:basic|bearer)\s+)\S+"),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)(\bresponse\s*=\s*)(\"[^\"]*\"|[^\s,]+)"), rf'\1"{MASK}"'),
    # XMPP SASL: PLAIN carries the password base64-encoded (RFC 6120 §6.4.2, RFC 4616).
    (
        re.compile(r"(<(auth|response|success|challenge)\b[^>]*>)([^<]+)(</\2>)"),
        rf"\1{MASK}\4",
    ),
    # key=value, key: value, "key": "value", key='value' (config reprs, JSON, URL queries).
    (
        re.compile(
            rf"(?i)(\b{_SECRET_NAMES}\b[\"']?\s*(?:=|:)\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&)}}\]]+)"
        ),
        rf"\1{MASK}",
    ),
    # sip:user:password@host (RFC 3261 §19.1.1 allows, and discourages, a password in a URI).
    (re.compile(r"(?i)\b(sips?:[^:@\s;>]+:)[^@\s;>]+@"), rf"\1{MASK}@"),
)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by ``***``: known secret values anywhere, and values
    of password/token-like keys, SIP digest responses and XMPP SASL payloads."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _MaskingFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        return mask_secrets(text, self.secrets)

    def _exception_text(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        parts = [p for p in (record.exc_text, record.stack_info) if p]
        return self.mask("\n".join(parts)) if parts else None


class TextFormatter(_MaskingFormatter):
    """``2024-05-01 12:00:00.123 INFO pygasi.call [call=… room=… dir=inbound] message``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
        context = " ".join(
            f"{label}={getattr(record, name)}"
            for name, label in zip(CALL_FIELDS, ("call", "room", "dir"), strict=True)
            if getattr(record, name, None) is not None
        )
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname} {record.name} "
        if context:
            line += f"[{context}] "
        line += self.mask(record.getMessage())
        extra = self._exception_text(record)
        return f"{line}\n{extra}" if extra else line


class JsonFormatter(_MaskingFormatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, and
    ``call_id``/``room``/``direction`` when the record has them, ``exc`` for an exception."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.mask(record.getMessage()),
        }
        for name in CALL_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = self.mask(str(value))
        extra = self._exception_text(record)
        if extra:
            entry["exc"] = extra
        return json.dumps(entry, ensure_ascii=False)


def make_formatter(config: LoggingConfig, secrets: Iterable[str] = ()) -> logging.Formatter:
    return JsonFormatter(secrets) if config.format == "json" else TextFormatter(secrets)


def setup_logging(
    config: LoggingConfig, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Route every log record to ``stream`` (default stderr: journald stores it) in the
    configured format and level, masking ``secrets`` (the configured passwords) and credential
    patterns. Replaces handlers set up earlier; returns the handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(make_formatter(config, secrets))
    root.addHandler(handler)
    level = logging.getLevelNamesMapping()[config.level.upper()]
    root.setLevel(level)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)
    return handler


class CallLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose records carry one call's ``call_id``, ``room`` and ``direction``.

    Extras given to a single call are kept too (``LoggerAdapter`` alone would drop them). The
    room is often known only after the INVITE has been read: :meth:`set_room`.
    """

    def __init__(self, logger: logging.Logger, call_id: str, room: str | None, direction: str):
        super().__init__(logger, {"call_id": call_id, "room": room, "direction": direction})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        given: Mapping[str, object] = kwargs.get("extra") or {}
        kwargs["extra"] = {**(self.extra or {}), **given}
        return msg, kwargs

    def set_room(self, room: str | None) -> None:
        assert isinstance(self.extra, dict)
        self.extra["room"] = room

    @property
    def call_id(self) -> str:
        assert self.extra is not None
        return str(self.extra["call_id"])


def call_logger(
    call_id: str, room: str | None, direction: str, logger: logging.Logger | None = None
) -> CallLogger:
    """The logger for one call's events: ``call_logger(call.call_id, room, "inbound")``.

    ``direction`` is ``"inbound"`` or ``"outbound"``; ``room`` may be None until known. Logs
    to ``pygasi.call`` unless another logger is given.
    """
    return CallLogger(logger or logging.getLogger(CALL_LOGGER), call_id, room, direction)
