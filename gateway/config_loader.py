"""Loading and validating pygasi's configuration (the schema is ``gateway.config``).

One TOML file, then ``PYGASI_SECTION__KEY`` environment overrides, then secrets read from files
(``password_file`` beside every ``password``, ``users_file`` for inbound digest users), then
validation. Every problem raises :class:`ConfigError` naming the key, so ``pygasi check-config``
and ``pygasi run`` can print one line and exit 2. Unknown keys are errors (a typo such as
``alowed_sources`` must not leave a gateway open to anyone).

Environment values are text and are parsed by the key's type: booleans ``true/false``,
``yes/no``, ``on/off``, ``1/0``; numbers as in TOML; lists either comma-separated
(``PCMU,PCMA``) or as a TOML array (``["PCMU", "PCMA"]``); tables as a TOML inline table
(``{ "+15551230000" = "standup" }``) or one entry per variable
(``PYGASI_INBOUND__ROOMS__+15551230000=standup``, the entry's key kept as written).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import ipaddress
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slixmpp import JID
from slixmpp.jid import InvalidJID

from gateway.config import GatewayConfig
from media.ports import parse_port_range
from sip.acl import AddressAllowList
from sip.errors import SipParseError
from sip.grammar import is_token
from sip.uri import parse_uri

ENV_PREFIX = "PYGASI_"
# PYGASI_ variables that are not configuration overrides (read elsewhere).
ENV_NOT_OVERRIDES = frozenset({"PYGASI_CONFIG", "PYGASI_LIBOPUS"})

# Keys the loader reads that are not schema fields: a file holding the secret of the schema
# field beside it (section path -> {file key: field it fills}).
SECRET_FILES: dict[tuple[str, ...], dict[str, str]] = {
    ("sip", "account"): {"password_file": "password"},
    ("xmpp",): {"password_file": "password"},
    ("brewery",): {"password_file": "password"},
    ("inbound", "digest"): {"users_file": "users"},
}

CODECS = ("opus", "G722", "PCMU", "PCMA")  # canonical names, as sip.offer_answer has them
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\Z"
)
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ConfigError(Exception):
    """A configuration problem: ``key`` (e.g. ``sip.listen``, or the file) and what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


# -- values ---------------------------------------------------------------------------------------


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets: ``[::1]:5060``) -> (host without brackets, port).

    With ``default_port``, a bare host (``pbx.example.com``, ``::1``) is accepted too. Raises
    ValueError with the reason.
    """
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r} has an unclosed '['")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r} is not HOST:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        # A bare IPv6 address: a port can only be given with brackets.
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"{text!r} is not HOST:PORT (write IPv6 as [ADDRESS]:PORT)") from None
        host, port_text = text, None
    else:
        host, colon, port = text.partition(":")
        port_text = port if colon else None
        if not _is_ip(host) and _HOSTNAME_RE.match(host) is None:
            raise ValueError(f"{host!r} is not a host name or IP address")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{text!r} has no port (HOST:PORT)")
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def parse_listen(text: str) -> tuple[str, int]:
    """A listening address: an IP literal and a port (a name would need a resolver thread to
    bind, and which of its addresses is meant is ambiguous). Port 0 is not allowed."""
    host, port = parse_host_port(text)
    if not _is_ip(host):
        raise ValueError(f"{host!r} is not an IP address (listen on 0.0.0.0, :: or one address)")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_room(text: str, muc_domain: str) -> None:
    """A room as the configuration may name one: a bare name (joined on ``muc_domain``), a
    bare room JID or a meeting URL (``https://meet.example.com/room``, with an optional tenant
    segment). Raises ValueError when it cannot be a room."""
    if "://" in text:
        url = urlsplit(text)
        segments = [s for s in url.path.split("/") if s]
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{text!r} is not an http(s) meeting URL")
        if not 1 <= len(segments) <= 2:
            raise ValueError(f"{text!r}: a meeting URL's path is /ROOM or /TENANT/ROOM")
        text = segments[-1]
    if "/" in text:
        raise ValueError(f"{text!r} has a resource part; a room is a bare JID")
    node = text if "@" not in text else text.partition("@")[0]
    if not node:
        raise ValueError(f"{text!r} has no room name before '@'")
    try:
        jid = JID(text if "@" in text else f"{text}@{muc_domain or 'conference.invalid'}")
    except InvalidJID as exc:
        raise ValueError(f"{text!r} is not a valid room JID ({exc})") from None
    if not jid.user:
        raise ValueError(f"{text!r} has no room name")


def _check_jid(text: str, *, need_user: bool) -> None:
    try:
        jid = JID(text)
    except InvalidJID as exc:
        raise ValueError(f"{text!r} is not a valid JID ({exc})") from None
    if jid.resource:
        raise ValueError(f"{text!r} has a resource part; a bare JID is needed")
    if need_user and not jid.user:
        raise ValueError(f"{text!r} is not user@domain")


# -- the schema, walked generically ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """One configuration key: its dotted path, TOML type and default (as TOML text)."""

    path: str
    type: str
    default: str


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(f"no TOML form for {value!r}")


def _type_name(kind: Any) -> str:
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    origin = typing.get_origin(kind)
    if origin is list:
        return "list of strings"
    if origin is dict:
        return "table of strings"
    raise TypeError(f"unsupported configuration type {kind!r}")


def schema_keys() -> list[KeyInfo]:
    """Every key of the schema in declaration order, plus the loader's secret-file keys (each
    after the field it fills). The README's key reference and the example file are checked
    against this list."""
    keys: list[KeyInfo] = []

    def walk(cls: type, instance: Any, prefix: tuple[str, ...]) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            value = getattr(instance, f.name)
            if _is_dataclass_type(kind):
                walk(kind, value, (*prefix, f.name))
                continue
            keys.append(KeyInfo(".".join((*prefix, f.name)), _type_name(kind), _toml_value(value)))
            for file_key, target in SECRET_FILES.get(prefix, {}).items():
                if target == f.name:
                    keys.append(KeyInfo(".".join((*prefix, file_key)), "path", '""'))

    walk(GatewayConfig, GatewayConfig(), ())
    return keys


# -- environment overrides ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _EnvValue:
    """A value from the environment: text, parsed by the type of the key it overrides."""

    name: str
    text: str


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    sections = _field_names(GatewayConfig)
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in ENV_NOT_OVERRIDES:
            continue
        text = environ[name]
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            # PYGASI_SIP_LISTEN: meant as an override, but silently ignoring it would be worse.
            lowered = rest.lower()
            if any(lowered.startswith(f"{s}_") or lowered == s for s in sections):
                raise ConfigError(
                    name,
                    "separate section and key with a double underscore, e.g. PYGASI_SIP__LISTEN",
                )
            continue
        parts = rest.split("__")
        cls: type = GatewayConfig
        target = raw
        path: list[str] = []
        for index, part in enumerate(parts):
            key = part.lower()
            hints = _hints(cls)
            file_keys = SECRET_FILES.get(tuple(path), {})
            if key not in hints and key not in file_keys:
                choices = [*hints, *file_keys]
                raise ConfigError(
                    name, f"no setting {key!r} in {_where(path)}{_suggest(key, choices)}"
                )
            kind = hints.get(key)
            last = index == len(parts) - 1
            if kind is not None and _is_dataclass_type(kind):
                if last:
                    raise ConfigError(name, f"{'.'.join((*path, key))} is a section, not a key")
                section = target.setdefault(key, {})
                if not isinstance(section, dict):
                    raise ConfigError(".".join((*path, key)), "must be a table")
                target, cls = section, kind
                path.append(key)
                continue
            if kind is not None and typing.get_origin(kind) is dict and index == len(parts) - 2:
                # One entry of a table: the entry's key is kept as written.
                table = target.setdefault(key, {})
                if not isinstance(table, dict):
                    raise ConfigError(".".join((*path, key)), "must be a table")
                table[parts[-1]] = _EnvValue(name, text)
                break
            if not last:
                raise ConfigError(name, f"{'.'.join((*path, key))} has no sub-keys")
            # The environment wins over the file, also over the file's other way to give a secret.
            for file_key, field_name in file_keys.items():
                if key == field_name:
                    target.pop(file_key, None)
                elif key == file_key:
                    target.pop(field_name, None)
            target[key] = _EnvValue(name, text)
            break


def _where(path: list[str]) -> str:
    return f"[{'.'.join(path)}]" if path else "the top level"


# -- secrets from files ---------------------------------------------------------------------------


def _read_secret(key: str, value: Any, base: Path) -> str:
    if isinstance(value, _EnvValue):
        value = value.text
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a file path")
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(key, f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return text


def _resolve_secret_files(raw: dict[str, Any], base: Path) -> None:
    for section_path, file_keys in SECRET_FILES.items():
        section: Any = raw
        for part in section_path:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict):
            continue
        for file_key, field_name in file_keys.items():
            if file_key not in section:
                continue
            key = ".".join((*section_path, file_key))
            text = _read_secret(key, section.pop(file_key), base)
            if section.get(field_name):
                raise ConfigError(key, f"set {field_name} or {file_key}, not both")
            if field_name == "users":
                section[field_name] = _parse_users(key, text)
            else:
                secret = text.rstrip("\r\n")
                if not secret:
                    raise ConfigError(key, "the file is empty")
                if "\n" in secret:
                    raise ConfigError(key, "the file holds more than one line")
                section[field_name] = secret


def _parse_users(key: str, text: str) -> dict[str, str]:
    """``username:password`` per line; blank lines and ``#`` comments skipped."""
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not colon or not user or not password:
            raise ConfigError(key, f"line {number} is not USERNAME:PASSWORD")
        users[user] = password
    return users


# -- conversion -----------------------------------------------------------------------------------


def _convert(key: str, value: Any, kind: Any) -> Any:
    origin_name = key
    if isinstance(value, _EnvValue):
        origin_name = f"{key} (from {value.name})"
        value = _from_text(origin_name, value.text, kind)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(origin_name, f"must be true or false, not {_show(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(origin_name, f"must be an integer, not {_show(value)}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(origin_name, f"must be a number, not {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(origin_name, "must be a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(origin_name, f"must be a string, not {_show(value)}")
        return value
    origin = typing.get_origin(kind)
    if origin is list:
        if isinstance(value, str):
            value = [value]  # a single name where a list is expected (room_header = "X-Room")
        if not isinstance(value, list):
            raise ConfigError(origin_name, f"must be a list of strings, not {_show(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{origin_name}[{index}]", f"must be a string, not {_show(item)}")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(origin_name, f"must be a table, not {_show(value)}")
        result: dict[str, str] = {}
        for entry, item in value.items():
            result[entry] = _convert(f"{key}.{_show_key(entry)}", item, str)
        return result
    raise TypeError(f"unsupported configuration type {kind!r} for {key}")


def _show(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds |= {list: "a list", dict: "a table"}
    return f"{kinds.get(type(value), type(value).__name__)} ({value!r})"


def _show_key(entry: str) -> str:
    return entry if re.fullmatch(r"[A-Za-z0-9_-]+", entry) else f'"{entry}"'


def _from_text(key: str, text: str, kind: Any) -> Any:
    stripped = text.strip()
    if kind is bool:
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(key, f"{text!r} is not a boolean (true/false, yes/no, on/off, 1/0)")
    if kind is int or kind is float:
        try:
            number = tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError:
            number = None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ConfigError(key, f"{text!r} is not a number")
        return number
    if kind is str:
        return text
    origin = typing.get_origin(kind)
    if origin is list:
        if stripped.startswith("["):
            return _toml_fragment(key, stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    if origin is dict:
        if not stripped.startswith("{"):
            raise ConfigError(key, 'must be a TOML inline table, e.g. { "key" = "value" }')
        return _toml_fragment(key, stripped)
    raise TypeError(f"unsupported configuration type {kind!r}")


def _toml_fragment(key: str, text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(key, f"{text!r} is not valid TOML ({exc})") from None


def _build(cls: type, raw: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = ".".join((*path, name))
        kind = hints.get(name)
        if kind is None:
            raise ConfigError(key, f"unknown key in {_where(list(path))}{_suggest(name, hints)}")
        if _is_dataclass_type(kind):
            if not isinstance(value, dict):
                raise ConfigError(key, f"must be a table ([{key}]), not {_show(value)}")
            values[name] = _build(kind, value, (*path, name))
        else:
            values[name] = _convert(key, value, kind)
    return cls(**values)


# -- validation -----------------------------------------------------------------------------------


def _check(key: str, ok: bool, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


def _value_error(key: str, parse: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return parse(*args, **kwargs)
    except (ValueError, SipParseError) as exc:
        raise ConfigError(key, str(exc)) from None


def _check_range(key: str, text: str, minimum: int) -> tuple[int, int]:
    low, high = _value_error(key, parse_port_range, text)
    _check(key, high - low + 1 >= minimum, f"{text!r} holds fewer than {minimum} ports")
    return (low, high)


def _check_domain(key: str, text: str, required: bool) -> None:
    if not text:
        _check(key, not required, "must not be empty")
        return
    _check(key, _HOSTNAME_RE.match(text) is not None, f"{text!r} is not a domain name")


def _check_file(key: str, text: str) -> None:
    if text and not os.access(text, os.R_OK):
        raise ConfigError(key, f"cannot read {text!r}")


def _check_sip_target(key: str, text: str) -> None:
    """A registrar or proxy: ``host``, ``host:port`` or a SIP URI."""
    if not text:
        return
    if text.lower().startswith(("sip:", "sips:")):
        uri = _value_error(key, parse_uri, text)
        _check(key, uri.user is None or bool(uri.host), f"{text!r} has no host")
        return
    _value_error(key, parse_host_port, text, 5060)


def validate(config: GatewayConfig) -> GatewayConfig:
    """Check values the types alone cannot; canonicalises codec names. Raises ConfigError."""
    sip = config.sip
    _value_error("sip.listen", parse_listen, sip.listen)
    if sip.tls_listen:
        _value_error("sip.tls_listen", parse_listen, sip.tls_listen)
        _check("sip.tls_cert", bool(sip.tls_cert), "sip.tls_listen needs a certificate")
        _check("sip.tls_key", bool(sip.tls_key), "sip.tls_listen needs a private key")
    _check_file("sip.tls_cert", sip.tls_cert)
    _check_file("sip.tls_key", sip.tls_key)
    if sip.public_address:
        _value_error("sip.public_address", parse_host_port, sip.public_address, 5060)
    rtp = _check_range("sip.rtp_ports", sip.rtp_ports, 2)
    _check("sip.codecs", bool(sip.codecs), f"must name at least one of {', '.join(CODECS)}")
    canonical: list[str] = []
    for index, name in enumerate(sip.codecs):
        match = next((c for c in CODECS if c.lower() == name.strip().lower()), None)
        key = f"sip.codecs[{index}]"
        _check(key, match is not None, f"unknown codec {name!r} (known: {', '.join(CODECS)})")
        assert match is not None
        _check(key, match not in canonical, f"{name!r} is listed twice")
        canonical.append(match)
    sip.codecs = canonical
    _check(
        "sip.srtp",
        sip.srtp in ("disabled", "optional", "required"),
        "must be disabled, optional or required",
    )

    account = sip.account
    if account.uri:
        uri = _value_error("sip.account.uri", parse_uri, account.uri)
        _check("sip.account.uri", uri.is_sip, f"{account.uri!r} is not a sip: or sips: URI")
        _check("sip.account.uri", bool(uri.user), f"{account.uri!r} has no user part")
    else:
        for name in ("password", "auth_username", "registrar", "outbound_proxy", "outbound_prefix"):
            if getattr(account, name):
                raise ConfigError(f"sip.account.{name}", "is set but sip.account.uri is empty")
    _check_sip_target("sip.account.registrar", account.registrar)
    _check_sip_target("sip.account.outbound_proxy", account.outbound_proxy)
    _check(
        "sip.account.transport",
        account.transport in ("udp", "tcp", "tls"),
        "must be udp, tcp or tls",
    )
    _check("sip.account.expires", account.expires >= 1, "must be at least 1 second")
    _check("sip.account.ring_timeout", account.ring_timeout > 0, "must be positive")

    inbound = config.inbound
    for name in ("room_header", "password_header", "domain_base_header", "tenant_header"):
        headers: list[str] = getattr(inbound, name)
        _check(f"inbound.{name}", bool(headers), "must name at least one header")
        for index, header in enumerate(headers):
            _check(f"inbound.{name}[{index}]", is_token(header), f"{header!r} is not a header name")
    muc = config.xmpp.muc_domain
    if inbound.default_room:
        _value_error("inbound.default_room", check_room, inbound.default_room, muc)
    for number, room in inbound.rooms.items():
        key = f"inbound.rooms.{_show_key(number)}"
        _check(key, bool(number.strip()), "the called number is empty")
        _value_error(key, check_room, room, muc)
    for index, entry in enumerate(inbound.allowed_sources):
        _value_error(f"inbound.allowed_sources[{index}]", AddressAllowList, [entry])
    for user, password in inbound.digest.users.items():
        key = f"inbound.digest.users.{_show_key(user)}"
        _check(key, bool(user) and ":" not in user, "a user name must be non-empty, without ':'")
        _check(key, bool(password), "the password is empty")
    _check("inbound.invite_timeout", inbound.invite_timeout > 0, "must be positive")
    _check("inbound.mask_keep_digits", inbound.mask_keep_digits >= 0, "must not be negative")
    _check(
        "inbound.heartbeat_seconds", inbound.heartbeat_seconds >= 0, "must not be negative (0: off)"
    )
    _check("inbound.answer_alone_after", inbound.answer_alone_after >= 0, "must not be negative")
    _check("inbound.status_linger", inbound.status_linger >= 0, "must not be negative")

    xmpp = config.xmpp
    _value_error("xmpp.server", parse_host_port, xmpp.server, 5222)
    _check_domain("xmpp.domain", xmpp.domain, required=True)
    _check_domain("xmpp.muc_domain", xmpp.muc_domain, required=True)
    _check_domain("xmpp.focus", xmpp.focus, required=True)
    if xmpp.username:
        user = xmpp.username if "@" in xmpp.username else f"{xmpp.username}@{xmpp.domain}"
        _value_error("xmpp.username", _check_jid, user, need_user=True)
    elif xmpp.password:
        raise ConfigError("xmpp.password", "is set but xmpp.username is empty (anonymous login)")
    for index, address in enumerate(xmpp.ice_addresses):
        key = f"xmpp.ice_addresses[{index}]"
        _check(key, _is_ip(address), f"{address!r} is not an IP address")
    ice = _check_range("xmpp.ice_ports", xmpp.ice_ports, 1)
    _check(
        "xmpp.ice_ports",
        ice[1] < rtp[0] or rtp[1] < ice[0],
        f"{xmpp.ice_ports!r} overlaps sip.rtp_ports {sip.rtp_ports!r}",
    )

    brewery = config.brewery
    if brewery.room:
        _value_error("brewery.room", _check_jid, brewery.room, need_user=True)
    for name in ("username", "allowed_jid"):
        value = getattr(brewery, name)
        if value:
            _value_error(f"brewery.{name}", _check_jid, value, need_user=name == "username")
    if not brewery.room:
        for name in ("username", "password"):
            if getattr(brewery, name):
                raise ConfigError(f"brewery.{name}", "is set but brewery.room is empty")

    if config.api.listen:
        _value_error("api.listen", parse_listen, config.api.listen)
    level = config.logging.level.lower()
    _check("logging.level", level in LOG_LEVELS, f"must be one of {', '.join(LOG_LEVELS)}")
    config.logging.level = level
    _check("logging.format", config.logging.format in ("text", "json"), "must be text or json")
    _check("drain.timeout", config.drain.timeout >= 0, "must not be negative")
    _check("drain.retry_after", config.drain.retry_after >= 0, "must not be negative")
    loop = config.runtime.event_loop
    _check(
        "runtime.event_loop",
        loop in ("asyncio", "uvloop", "auto"),
        "must be asyncio, uvloop or auto",
    )
    _check(
        "runtime.allocator",
        config.runtime.allocator in ("malloc", "pymalloc"),
        "must be malloc or pymalloc",
    )
    if loop == "uvloop":
        _check(
            "runtime.event_loop",
            importlib.util.find_spec("uvloop") is not None,
            "uvloop is not installed (pip install 'pygasi[fast]')",
        )
    _validate_media(config)
    return config


def _validate_media(config: GatewayConfig) -> None:
    media = config.media
    _check("media.jitter_max_ms", 40.0 <= media.jitter_max_ms <= 1000.0, "must be 40 to 1000")
    _check(
        "media.jitter_initial_ms",
        20.0 <= media.jitter_initial_ms <= media.jitter_max_ms,
        f"must be from 20 to media.jitter_max_ms ({media.jitter_max_ms:g})",
    )
    # libopus accepts 500-512000 bit/s; below 6000 even narrowband speech breaks up.
    _check("media.opus_bitrate", 6000 <= media.opus_bitrate <= 510000, "must be 6000 to 510000")
    _check("media.opus_complexity", 0 <= media.opus_complexity <= 10, "must be 0 to 10")
    _check(
        "media.opus_bandwidth", media.opus_bandwidth in ("full", "phone"), "must be full or phone"
    )
    _check("media.loudest", media.loudest >= 0, "must not be negative (0: decode every source)")


# -- entry points ---------------------------------------------------------------------------------


def parse_config(
    document: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    base_dir: str | Path = ".",
) -> GatewayConfig:
    """A validated configuration from an already parsed TOML document (a copy is changed)."""
    raw = _deep_copy(document)
    _apply_environment(raw, os.environ if environ is None else environ)
    _resolve_secret_files(raw, Path(base_dir))
    config = _build(GatewayConfig, raw, ())
    assert isinstance(config, GatewayConfig)
    return validate(config)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, override from ``environ`` (default ``os.environ``) and validate ``path``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), f"cannot read the configuration: {exc.strerror or exc}"
        ) from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(document, environ, path.parent)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def secrets_of(config: GatewayConfig) -> list[str]:
    """Every secret value in ``config`` (for the log filter to mask wherever it appears)."""
    found = [config.sip.account.password, config.xmpp.password, config.brewery.password]
    found += list(config.inbound.digest.users.values())
    return [s for s in found if s]
