"""pygasi's configuration: one TOML file (config/pygasi.example.toml documents every key).

This module holds the schema as dataclasses with the documented defaults. Loading (TOML,
``PYGASI_SECTION__KEY`` environment overrides, ``*_file`` secrets) and validation (a message
naming the key and the problem, exit code 2) live beside it in ``gateway/config_loader.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SipAccountConfig:
    """``[sip.account]``: register to a trunk and/or send calls through it."""

    uri: str = ""  # e.g. sip:gateway@pbx.example.com; empty: no account
    password: str = ""
    auth_username: str = ""  # default: the uri's user
    registrar: str = ""  # default: the uri's host
    outbound_proxy: str = ""
    transport: str = "udp"  # udp | tcp | tls
    expires: int = 600
    ring_timeout: float = 60.0  # dial-out: CANCEL after this long ringing (issue #6)
    outbound_prefix: str = ""  # dial-out: prepended to dialled numbers (issue #6)


@dataclass
class SipConfig:
    """``[sip]``."""

    listen: str = "0.0.0.0:5060"  # UDP and TCP
    tls_listen: str = ""  # e.g. "0.0.0.0:5061"; needs tls_cert/tls_key
    tls_cert: str = ""
    tls_key: str = ""
    tls_verify: bool = True  # verify the trunk's certificate on TLS connections we open
    public_address: str = ""  # for Contact/SDP behind NAT
    rtp_ports: str = "40000-49999"  # SIP-leg RTP; keep clear of the bridge's UDP 10000
    codecs: list[str] = field(default_factory=lambda: ["opus", "G722", "PCMU", "PCMA"])
    srtp: str = "optional"  # disabled | optional | required (SDES, RFC 4568)
    translator: bool = False  # forward Opus SSRCs to the trunk without decoding (design.md)
    account: SipAccountConfig = field(default_factory=SipAccountConfig)


@dataclass
class InboundDigestConfig:
    """``[inbound.digest]``: challenge inbound INVITEs (trunks that authenticate by password)."""

    realm: str = ""
    users: dict[str, str] = field(default_factory=dict)  # username -> password


@dataclass
class InboundConfig:
    """``[inbound]``: who may call and which room a call goes to (jigasi.md §1.2, §1.3)."""

    room_header: list[str] = field(default_factory=lambda: ["X-Room-Name", "Jitsi-Conference-Room"])
    password_header: list[str] = field(
        default_factory=lambda: ["X-Room-Pass", "Jitsi-Conference-Room-Pass"]
    )
    domain_base_header: list[str] = field(
        default_factory=lambda: ["X-Domain-Base", "Jitsi-Conference-Domain-Base"]
    )
    tenant_header: list[str] = field(
        default_factory=lambda: ["X-Domain-Tenant", "Jitsi-Conference-Domain-Tenant"]
    )
    default_room: str = ""
    uri_fallback: bool = False  # use the Request-URI user part as the room
    allowed_sources: list[str] = field(default_factory=list)  # CIDRs
    digest: InboundDigestConfig = field(default_factory=InboundDigestConfig)
    invite_timeout: float = 30.0  # seconds to wait for the focus's session-initiate
    mask_caller_id: bool = False
    mask_keep_digits: int = 4  # with mask_caller_id: the last N digits stay visible
    heartbeat_seconds: float = 0.0  # 0: off (jigasi.md §1.8)
    hangup_when_only_gateways: bool = True  # jigasi.md §1.9 ALLOW_ONLY_JIGASIS_IN_ROOM=false
    # A caller still waiting for the focus's invite (alone in the room, jigasi.md §1.8) is
    # answered after this many seconds and waits on; 0: never answered before the invite.
    answer_alone_after: float = 15.0
    # After the phone hangs up, our presence status shows why this long before we leave the
    # room (jigasi.md §1.9: 5 s).
    status_linger: float = 5.0
    rooms: dict[str, str] = field(default_factory=dict)  # called number -> room


@dataclass
class XmppConfig:
    """``[xmpp]``: the conference side."""

    server: str = "127.0.0.1:5222"
    domain: str = "meet.example.com"
    muc_domain: str = "conference.meet.example.com"
    focus: str = "focus.meet.example.com"
    username: str = ""  # empty: anonymous login
    password: str = ""
    tls_verify: bool = True
    ice_ports: str = "50000-59999"  # conference-leg ICE host candidates
    # Addresses to offer ICE host candidates on; empty: every interface address (loopback
    # excluded). E.g. ["127.0.0.1"] when the bridge runs on the same host.
    ice_addresses: list[str] = field(default_factory=list)
    region: str = ""
    stats_id: str = ""


@dataclass
class BreweryConfig:
    """``[brewery]``: dial-out (issue #6); empty room: dial-out off."""

    room: str = ""  # e.g. JigasiBrewery@internal.auth.meet.example.com
    username: str = ""  # full JID, e.g. jigasi@auth.meet.example.com
    password: str = ""
    allowed_jid: str = ""  # default: the brewery room's bare JID


@dataclass
class ApiConfig:
    """``[api]``: the HTTP API (jigasi.md §7.2)."""

    listen: str = "127.0.0.1:8788"
    shutdown_enabled: bool = True  # POST /about/shutdown on the (loopback) API


@dataclass
class LoggingConfig:
    """``[logging]``."""

    level: str = "info"
    format: str = "text"  # text | json


@dataclass
class DrainConfig:
    """``[drain]``: graceful shutdown (SIGTERM or POST /about/shutdown)."""

    timeout: float = 3600.0  # give up waiting for calls after this long
    retry_after: int = 300  # Retry-After on the 503 to new INVITEs while draining


@dataclass
class RuntimeConfig:
    """``[runtime]``: the process itself."""

    # asyncio | uvloop | auto (uvloop when installed: pip install 'pygasi[fast]')
    event_loop: str = "asyncio"
    # malloc | pymalloc: CPython's allocator for small objects (gateway.cli: PYTHONMALLOC)
    allocator: str = "malloc"


@dataclass
class MediaConfig:
    """``[media]``: the audio engine (media/; gateway.media_settings turns it into its settings)."""

    jitter_initial_ms: float = 40.0  # the adaptive jitter buffers' starting delay
    jitter_max_ms: float = 200.0  # and their cap (phone side and conference side)
    opus_bitrate: int = 32000  # bit/s of each phone's voice towards the conference
    opus_complexity: int = 5  # 0-10: 5 costs half of 10 (reference/anchors.md §6.1)
    opus_fec: bool = True  # in-band FEC: each packet carries a copy of the previous one
    opus_bandwidth: str = "full"  # full | phone: encode only the phone codec's audio band
    loudest: int = 0  # decode at most this many conference participants per room (0: all)


@dataclass
class GatewayConfig:
    sip: SipConfig = field(default_factory=SipConfig)
    inbound: InboundConfig = field(default_factory=InboundConfig)
    xmpp: XmppConfig = field(default_factory=XmppConfig)
    brewery: BreweryConfig = field(default_factory=BreweryConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    drain: DrainConfig = field(default_factory=DrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
