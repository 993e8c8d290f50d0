"""gateway.config_loader: TOML, environment overrides, secrets from files, validation that
names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.config_loader import (
    ConfigError,
    check_room,
    load_config,
    parse_host_port,
    parse_listen,
    secrets_of,
    validate,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pygasi.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **environ: str) -> GatewayConfig:
    return load_config(write(tmp_path, text), environ)


def error(tmp_path: Path, text: str, **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **environ)
    return info.value


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == validate(GatewayConfig())


def test_values_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[sip]
listen = "[::1]:5080"
codecs = ["pcmu", "g722"]
[sip.account]
uri = "sip:gw@pbx.example.com"
password = "pw"
expires = 120
[inbound]
room_header = "X-Only"
invite_timeout = 7200
allowed_sources = ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]
[inbound.rooms]
"+15551230000" = "standup"
"100" = "https://meet.example.com/tenant/room"
[logging]
level = "DEBUG"
""",
    )
    assert config.sip.listen == "[::1]:5080"
    assert config.sip.codecs == ["PCMU", "G722"]  # canonical names
    assert config.sip.account.password == "pw" and config.sip.account.expires == 120
    assert config.inbound.room_header == ["X-Only"]  # a string where a list is expected
    assert config.inbound.invite_timeout == 7200.0
    assert isinstance(config.inbound.invite_timeout, float)
    assert config.inbound.rooms == {
        "+15551230000": "standup",
        "100": "https://meet.example.com/tenant/room",
    }
    assert config.logging.level == "debug"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        # Unknown keys and sections, with a suggestion for a near miss.
        ('[inbound]\nalowed_sources = ["10.0.0.0/8"]', "inbound.alowed_sources", "allowed_sources"),
        ("[sipp]\nlisten = '0.0.0.0:5060'", "sipp", "'sip'"),
        ("[sip.account]\nusername = 'x'", "sip.account.username", "unknown key"),
        ("top = 1", "top", "unknown key"),
        # Types.
        ("[sip]\ncodecs = 'PCMU'\ntranslator = 'yes'", "sip.translator", "true or false"),
        ("[sip.account]\nuri='sip:a@b'\nexpires = 1.5", "sip.account.expires", "integer"),
        ("[sip.account]\nuri='sip:a@b'\nexpires = true", "sip.account.expires", "integer"),
        ("[inbound]\ninvite_timeout = '30'", "inbound.invite_timeout", "number"),
        ("[sip]\ncodecs = ['PCMU', 8]", "sip.codecs[1]", "string"),
        ("sip = 3", "sip", "table"),
        ("[inbound.rooms]\n'100' = 5", "inbound.rooms.100", "string"),
        # host:port.
        ("[sip]\nlisten = '0.0.0.0'", "sip.listen", "no port"),
        ("[sip]\nlisten = '0.0.0.0:70000'", "sip.listen", "1 to 65535"),
        ("[sip]\nlisten = 'localhost:5060'", "sip.listen", "not an IP address"),
        ("[api]\nlisten = '127.0.0.1:http'", "api.listen", "'http'"),
        ("[xmpp]\nserver = 'bad host:5222'", "xmpp.server", "not a host name"),
        ("[xmpp]\nserver = '127.0.0.1:5222:1'", "xmpp.server", "[ADDRESS]:PORT"),
        ("[sip]\npublic_address = 'x y'", "sip.public_address", "not a host name"),
        # Port ranges.
        ("[sip]\nrtp_ports = '40000'", "sip.rtp_ports", "LOW-HIGH"),
        ("[sip]\nrtp_ports = '50000-40000'", "sip.rtp_ports", "LOW <= HIGH"),
        ("[sip]\nrtp_ports = '40000-70000'", "sip.rtp_ports", "1-65535"),
        ("[sip]\nrtp_ports = '40000-40000'", "sip.rtp_ports", "fewer than 2"),
        ("[xmpp]\nice_ports = '49000-50000'", "xmpp.ice_ports", "overlaps sip.rtp_ports"),
        # CIDRs, codecs, rooms.
        (
            "[inbound]\nallowed_sources = ['10.0.0.0/8', '10.0.0.300/32']",
            "inbound.allowed_sources[1]",
            "10.0.0.300/32",
        ),
        ("[sip]\ncodecs = ['PCMU', 'GSM']", "sip.codecs[1]", "unknown codec 'GSM'"),
        ("[sip]\ncodecs = ['PCMU', 'pcmu']", "sip.codecs[1]", "twice"),
        ("[sip]\ncodecs = []", "sip.codecs", "at least one"),
        (
            "[inbound]\ndefault_room = 'daily standup'",
            "inbound.default_room",
            "not a valid room JID",
        ),
        (
            "[inbound]\ndefault_room = '@conference.meet.example.com'",
            "inbound.default_room",
            "no room name",
        ),
        ("[inbound]\ndefault_room = 'room@conference.x/nick'", "inbound.default_room", "resource"),
        (
            "[inbound]\ndefault_room = 'ftp://meet.example.com/room'",
            "inbound.default_room",
            "http(s)",
        ),
        (
            "[inbound]\ndefault_room = 'https://meet.example.com/a/b/c'",
            "inbound.default_room",
            "/TENANT/ROOM",
        ),
        ("[inbound.rooms]\n'+1555' = 'a room'", 'inbound.rooms."+1555"', "not a valid room JID"),
        (
            "[brewery]\nroom = 'JigasiBrewery'\nusername = 'j@auth.x'",
            "brewery.room",
            "not user@domain",
        ),
        # Enumerations and other rules.
        ("[sip]\nsrtp = 'maybe'", "sip.srtp", "disabled, optional or required"),
        (
            "[sip.account]\nuri = 'sip:a@b'\ntransport = 'sctp'",
            "sip.account.transport",
            "udp, tcp or tls",
        ),
        ("[sip.account]\nuri = 'tel:+1555'", "sip.account.uri", "not a sip: or sips: URI"),
        ("[sip.account]\nuri = 'sip:pbx.example.com'", "sip.account.uri", "no user part"),
        ("[sip.account]\npassword = 'x'", "sip.account.password", "uri is empty"),
        (
            "[sip.account]\nuri = 'sip:a@b'\nregistrar = 'a b'",
            "sip.account.registrar",
            "not a host name",
        ),
        ("[sip]\ntls_listen = '0.0.0.0:5061'", "sip.tls_cert", "needs a certificate"),
        ("[sip]\ntls_cert = '/nonexistent/cert.pem'", "sip.tls_cert", "cannot read"),
        ("[inbound]\nroom_header = ['X Room']", "inbound.room_header[0]", "not a header name"),
        ("[inbound]\nroom_header = []", "inbound.room_header", "at least one"),
        ("[inbound]\ninvite_timeout = 0", "inbound.invite_timeout", "positive"),
        ("[xmpp]\npassword = 'x'", "xmpp.password", "anonymous"),
        ("[xmpp]\ndomain = ''", "xmpp.domain", "must not be empty"),
        ("[xmpp]\nmuc_domain = 'conference meet'", "xmpp.muc_domain", "not a domain"),
        ("[logging]\nlevel = 'verbose'", "logging.level", "debug, info"),
        ("[logging]\nformat = 'xml'", "logging.format", "text or json"),
        ("[drain]\ntimeout = -1", "drain.timeout", "negative"),
        ("[runtime]\nevent_loop = 'trio'", "runtime.event_loop", "asyncio, uvloop or auto"),
        ("[runtime]\nallocator = 'jemalloc'", "runtime.allocator", "malloc or pymalloc"),
        ("[media]\njitter_max_ms = 30", "media.jitter_max_ms", "40 to 1000"),
        ("[media]\njitter_max_ms = 1500", "media.jitter_max_ms", "40 to 1000"),
        ("[media]\njitter_initial_ms = 300", "media.jitter_initial_ms", "jitter_max_ms (200)"),
        ("[media]\njitter_initial_ms = 10", "media.jitter_initial_ms", "from 20"),
        ("[media]\nopus_bitrate = 1000", "media.opus_bitrate", "6000 to 510000"),
        ("[media]\nopus_complexity = 11", "media.opus_complexity", "0 to 10"),
        ("[media]\nopus_bandwidth = 'wide'", "media.opus_bandwidth", "full or phone"),
        ("[media]\nloudest = -1", "media.loudest", "negative"),
        ("[media]\nopus_fec = 'maybe'", "media.opus_fec", ""),
    ],
)
def test_problems_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    problem = error(tmp_path, text)
    assert problem.key == key, str(problem)
    assert words in problem.problem, str(problem)
    assert str(problem).startswith(f"{key}: ")


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    problem = error(tmp_path, "[inbound]\nalowed_sources = []")
    assert "did you mean 'allowed_sources'?" in problem.problem


def test_bad_toml_names_the_file_and_line(tmp_path: Path) -> None:
    problem = error(tmp_path, "[sip]\nlisten = \n")
    assert problem.key.endswith("pygasi.toml")
    assert "not valid TOML" in problem.problem and "line 2" in problem.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml", {})
    assert info.value.key.endswith("absent.toml")
    assert "cannot read" in info.value.problem


# -- environment ------------------------------------------------------------------------------------


def test_environment_overrides_are_typed(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "[sip]\nlisten = '0.0.0.0:5060'\n[sip.account]\nuri = 'sip:gw@pbx'\npassword = 'file'\n",
        PYGASI_SIP__LISTEN="127.0.0.1:5080",
        PYGASI_SIP__ACCOUNT__PASSWORD="from-env",
        PYGASI_SIP__ACCOUNT__EXPIRES="90",
        PYGASI_SIP__TRANSLATOR="yes",
        PYGASI_SIP__CODECS="pcma, PCMU",
        PYGASI_INBOUND__PASSWORD_HEADER='["X-Pin"]',
        PYGASI_INBOUND__ALLOWED_SOURCES="",
        PYGASI_INBOUND__INVITE_TIMEOUT="2.5",
        PYGASI_INBOUND__ROOMS__1000="lobbyless",
        PYGASI_API__SHUTDOWN_ENABLED="off",
        PYGASI_MEDIA__OPUS_BANDWIDTH="phone",
        PYGASI_MEDIA__JITTER_MAX_MS="300",
        PYGASI_LIBOPUS="/not/an/override.so",  # another PYGASI_ variable, left alone
    )
    assert config.sip.listen == "127.0.0.1:5080"
    assert config.sip.account.password == "from-env"
    assert config.sip.account.expires == 90
    assert config.sip.translator is True
    assert config.sip.codecs == ["PCMA", "PCMU"]
    assert config.inbound.password_header == ["X-Pin"]
    assert config.inbound.allowed_sources == []
    assert config.inbound.invite_timeout == 2.5
    assert config.inbound.rooms == {"1000": "lobbyless"}
    assert config.api.shutdown_enabled is False
    assert config.media.opus_bandwidth == "phone"
    assert config.media.jitter_max_ms == 300.0


def test_environment_inline_table(tmp_path: Path) -> None:
    config = load(tmp_path, "", PYGASI_INBOUND__ROOMS='{ "+1555" = "a", "200" = "b" }')
    assert config.inbound.rooms == {"+1555": "a", "200": "b"}


@pytest.mark.parametrize(
    ("name", "value", "key", "words"),
    [
        ("PYGASI_SIP__LISTN", "x", "PYGASI_SIP__LISTN", "did you mean 'listen'"),
        ("PYGASI_SPI__LISTEN", "x", "PYGASI_SPI__LISTEN", "no setting 'spi'"),
        ("PYGASI_SIP_LISTEN", "x", "PYGASI_SIP_LISTEN", "double underscore"),
        ("PYGASI_SIP__ACCOUNT", "x", "PYGASI_SIP__ACCOUNT", "is a section"),
        ("PYGASI_SIP__LISTEN__PORT", "1", "PYGASI_SIP__LISTEN__PORT", "no sub-keys"),
        (
            "PYGASI_SIP__TRANSLATOR",
            "maybe",
            "sip.translator (from PYGASI_SIP__TRANSLATOR)",
            "not a boolean",
        ),
        (
            "PYGASI_DRAIN__TIMEOUT",
            "soon",
            "drain.timeout (from PYGASI_DRAIN__TIMEOUT)",
            "not a number",
        ),
        (
            "PYGASI_DRAIN__RETRY_AFTER",
            "1.5",
            "drain.retry_after (from PYGASI_DRAIN__RETRY_AFTER)",
            "integer",
        ),
        (
            "PYGASI_INBOUND__ROOMS",
            "a=b",
            "inbound.rooms (from PYGASI_INBOUND__ROOMS)",
            "inline table",
        ),
        ("PYGASI_SIP__CODECS", "[PCMU", "sip.codecs (from PYGASI_SIP__CODECS)", "not valid TOML"),
        ("PYGASI_SIP__LISTEN", "nowhere", "sip.listen", "no port"),
    ],
)
def test_environment_problems_name_the_variable(
    tmp_path: Path, name: str, value: str, key: str, words: str
) -> None:
    problem = error(tmp_path, "", **{name: value})
    assert problem.key == key, str(problem)
    assert words in problem.problem, str(problem)


# -- secrets from files -----------------------------------------------------------------------------


def test_password_files(tmp_path: Path) -> None:
    (tmp_path / "sip-password").write_text("s3cret\n")
    (tmp_path / "xmpp.pw").write_text("xmpp-pw")
    absolute = tmp_path / "sub" / "brewery.pw"
    absolute.parent.mkdir()
    absolute.write_text("brew\r\n")
    config = load(
        tmp_path,
        f"""
[sip.account]
uri = "sip:gw@pbx.example.com"
password_file = "sip-password"
[xmpp]
username = "jigasi@auth.meet.example.com"
password_file = "xmpp.pw"
[brewery]
room = "JigasiBrewery@internal.auth.meet.example.com"
username = "jigasi@auth.meet.example.com"
password_file = "{absolute}"
""",
    )
    assert config.sip.account.password == "s3cret"  # relative to the config's directory
    assert config.xmpp.password == "xmpp-pw"
    assert config.brewery.password == "brew"
    assert sorted(secrets_of(config)) == ["brew", "s3cret", "xmpp-pw"]


def test_password_file_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("env-file\n")
    config = load(
        tmp_path,
        "[sip.account]\nuri = 'sip:gw@pbx'\npassword = 'in-file'\n",
        PYGASI_SIP__ACCOUNT__PASSWORD_FILE=str(secret),
    )
    assert config.sip.account.password == "env-file"  # the environment wins over the file


def test_users_file(tmp_path: Path) -> None:
    (tmp_path / "users").write_text("# trunks\ntrunk1:pw1\n\n  trunk2:p:w2  \n")
    config = load(tmp_path, "[inbound.digest]\nrealm = 'pygasi'\nusers_file = 'users'\n")
    assert config.inbound.digest.users == {"trunk1": "pw1", "trunk2": "p:w2"}


@pytest.mark.parametrize(
    ("text", "files", "key", "words"),
    [
        (
            "[sip.account]\nuri='sip:a@b'\npassword='x'\npassword_file='pw'",
            {"pw": "y"},
            "sip.account.password_file",
            "not both",
        ),
        (
            "[sip.account]\nuri='sip:a@b'\npassword_file='absent'",
            {},
            "sip.account.password_file",
            "cannot read",
        ),
        ("[xmpp]\nusername='u'\npassword_file='pw'", {"pw": "\n"}, "xmpp.password_file", "empty"),
        (
            "[xmpp]\nusername='u'\npassword_file='pw'",
            {"pw": "a\nb\n"},
            "xmpp.password_file",
            "more than one line",
        ),
        ("[xmpp]\npassword_file=3", {}, "xmpp.password_file", "file path"),
        (
            "[inbound.digest]\nusers_file='u'",
            {"u": "ok:1\nbroken\n"},
            "inbound.digest.users_file",
            "line 2",
        ),
    ],
)
def test_secret_file_problems(
    tmp_path: Path, text: str, files: dict[str, str], key: str, words: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    problem = error(tmp_path, text)
    assert problem.key == key and words in problem.problem, str(problem)


# -- helpers other modules use ----------------------------------------------------------------------


def test_parse_host_port() -> None:
    assert parse_host_port("pbx.example.com", 5060) == ("pbx.example.com", 5060)
    assert parse_host_port("pbx.example.com:5070") == ("pbx.example.com", 5070)
    assert parse_host_port("[2001:db8::1]:5061") == ("2001:db8::1", 5061)
    assert parse_host_port("2001:db8::1", 5060) == ("2001:db8::1", 5060)
    assert parse_listen("0.0.0.0:5060") == ("0.0.0.0", 5060)
    for bad in ("", "host:", "[::1", "[nope]:1", "[::1]x", "h:0", "h:65536"):
        with pytest.raises(ValueError):
            parse_host_port(bad, 5060)


def test_check_room_accepts_every_documented_form() -> None:
    for room in (
        "dailystandup",
        "DailyStandup@conference.meet.example.com",
        "https://meet.example.com/room",
        "https://meet.example.com/tenant/room",
    ):
        check_room(room, "conference.meet.example.com")
