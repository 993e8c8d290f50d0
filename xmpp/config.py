"""Configuration of the conference leg's signalling (one value shared by every call)."""

from __future__ import annotations

from dataclasses import dataclass, field

from xmpp.caps import DEFAULT_CAPS_NODE


@dataclass(frozen=True, slots=True)
class XmppServer:
    """Where and how to connect (jigasi.md §1.4: c2s on TCP 5222, one connection per call).

    ``host`` should be an IP address: a name is resolved with dnspython's asyncio resolver
    (plus ``/etc/hosts``), never with ``getaddrinfo``, which asyncio runs in a thread pool.
    ``tls_verify=False`` accepts Prosody's self-signed certificate (common on Jitsi installs);
    ``ca_file`` trusts a private CA instead. ``starttls=False`` never upgrades (tests only), and
    without TLS the connection fails unless ``allow_plaintext``.
    """

    host: str = "127.0.0.1"
    port: int = 5222
    starttls: bool = True
    tls_verify: bool = True
    ca_file: str | None = None
    allow_plaintext: bool = False


@dataclass(frozen=True, slots=True)
class ParticipantConfig:
    """The Jitsi deployment and our behaviour in it.

    ``domain`` is the XMPP domain we log into (SASL ANONYMOUS when ``username`` is None);
    ``username`` is a bare JID (``jigasi@auth.meet.example.com``) or a local part of
    ``domain``. Authenticated login is how secure-domain and lobby-whitelisted deployments let
    a gateway in (jingle.md §10: list our domain or bare JID in ``muc_lobby_whitelist``).
    Deployments with JWT on WebSocket only are not supported yet: there, list the gateway's
    account in ``token_verification_allowlist`` (§10) and use TCP 5222.
    """

    domain: str
    muc_domain: str | None = None  # default "conference.<domain>"
    focus_component: str | None = None  # default "focus.<domain>" (jingle.md §1)
    focus_nick: str = "focus"
    server: XmppServer = field(default_factory=XmppServer)
    username: str | None = None
    password: str | None = None
    region: str | None = None  # <jitsi_participant_region>
    stats_id: str | None = None  # <stats-id>
    caps_node: str = DEFAULT_CAPS_NODE
    advertise_jigasi: bool = True  # <features> and disco: http://jitsi.org/protocol/jigasi
    advertise_audio_mute: bool = True  # lets Jicofo force-mute us (jingle.md §9)
    conference_request: bool = True  # the focus IQ before joining (§2.2)
    conference_properties: tuple[tuple[str, str], ...] = (("rtcstatsEnabled", "false"),)
    machine_uid: str | None = None
    send_transport_info: bool = False  # Jigasi's transport-info before the accept
    # Timers (seconds).
    connect_timeout: float = 10.0
    reply_timeout: float = 15.0  # Jicofo's and Smack's IQ reply timeout (jingle.md §3.1)
    join_timeout: float = 10.0  # Jigasi's MUC_JOIN_TIMEOUT
    conference_timeout: float = 60.0  # overall, while the focus answers ready="false"
    conference_backoff: tuple[float, float] = (1.0, 120.0)  # lib-jitsi-meet's retry delays
    ping_interval: float = 30.0  # XEP-0199 keepalive (Jigasi: 30 s)
    ping_timeout: float = 10.0
    reconnect_backoff: tuple[float, float] = (0.5, 30.0)  # first and maximum delay

    @property
    def muc(self) -> str:
        return self.muc_domain or f"conference.{self.domain}"

    @property
    def focus(self) -> str:
        return self.focus_component or f"focus.{self.domain}"

    @property
    def anonymous(self) -> bool:
        return self.username is None

    def user_jid(self) -> str:
        """The bare JID to log in with (the domain alone for SASL ANONYMOUS)."""
        if self.username is None:
            return self.domain
        return self.username if "@" in self.username else f"{self.username}@{self.domain}"
