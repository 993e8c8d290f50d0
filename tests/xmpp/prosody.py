"""Debian's Prosody on loopback for tests, configured like a small Jitsi deployment.

Generated into a temp dir (the recipe of reference/deps.md §6.1, run as root in the foreground):

* ``VirtualHost "<domain>"``: anonymous login (SASL ANONYMOUS), as Jitsi's main host;
* ``VirtualHost "auth.<domain>"``: password users (``internal_plain``, written straight into
  Prosody's storage: ``focus`` - a server admin, so it may create rooms and owns them - and
  ``jigasi``);
* ``Component "conference.<domain>" "muc"`` with ``muc_room_locking = false`` (else a second
  joiner gets item-not-found, jingle.md §11) and optionally ``restrict_room_creation``;
* ``Component "internal.auth.<domain>" "muc"`` for a brewery;
* ``Component "focus.<domain>"``: an external component (XEP-0114) with a secret, where the
  Jicofo emulator answers the conference IQ;
* c2s with STARTTLS available (a throw-away self-signed certificate for the domain and its
  sub-domains), not required, so TLS verification on and off can both be exercised;
* a small test module (``mod_pygasi_test``) standing in for two Jitsi plugins a stock Prosody
  lacks: rooms whose name starts with ``lobby`` answer non-owners ``registration-required``
  with ``<lobbyroom>`` inside the error (mod_muc_lobby_rooms), rooms starting with ``full``
  answer them ``service-unavailable`` (mod_muc_max_occupants). Passwords (``not-authorized``),
  members-only and restricted creation (``not-allowed``) are stock Prosody.

Start-up takes ~0.15 s; `stop()` leaves no process (SIGTERM, then SIGKILL to its process group);
`restart()` keeps ports, certificate and accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.peers import free_port

HOST = "127.0.0.1"

TEST_MODULE = r"""
-- Stand-ins for Jitsi's mod_muc_lobby_rooms and mod_muc_max_occupants (tests only).
local st = require "util.stanza";
local jid_split = require "util.jid".split;

module:hook("muc-occupant-pre-join", function(event)
    local room, stanza, origin = event.room, event.stanza, event.origin;
    local node, host = jid_split(room.jid);
    local affiliation = room:get_affiliation(stanza.attr.from);
    if affiliation == "owner" or affiliation == "admin" or affiliation == "member" then
        return;
    end
    if node:match("^lobby") then
        local reply = st.error_reply(stanza, "auth", "registration-required");
        reply.tags[1].attr.code = "407";
        reply:tag("lobbyroom", { xmlns = "http://jitsi.org/jitmeet" })
            :text(node .. "@lobby." .. host:gsub("^[^.]+%.", "")):up():up();
        origin.send(reply);
        return true;
    end
    if node:match("^full") then
        origin.send(st.error_reply(stanza, "cancel", "service-unavailable"));
        return true;
    end
end, 10);
"""


class ProsodyError(RuntimeError):
    """Prosody is missing or did not come up."""


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path


async def domain_certificate(directory: Path, domain: str) -> Certificate:
    """A self-signed certificate (P-256, one day) for ``domain`` and ``*.domain``: a
    verifying client that trusts it as a CA accepts it for the XMPP domain (RFC 6120 §13.7)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ProsodyError("openssl is not installed")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    process = await asyncio.create_subprocess_exec(
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "1", "-subj", f"/CN={domain}",
        "-addext", f"subjectAltName=DNS:{domain},DNS:*.{domain}",
        "-keyout", str(keyfile), "-out", str(certfile),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise ProsodyError(f"openssl could not make a certificate: {output.decode()}")
    keyfile.chmod(0o644)  # Prosody may read it as another user
    return Certificate(certfile, keyfile)


def _encode(part: str) -> str:
    """Prosody's datamanager path encoding: every non-alphanumeric byte as %xx."""
    return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02x}" for c in part)


def _lua(value: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"unsafe Lua string: {value!r}")
    return f'"{value}"'


class Prosody:
    """One Prosody; ``async with Prosody(workdir) as p:`` starts and stops it."""

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "meet.test",
        restrict_room_creation: bool = False,
        users: Mapping[str, str] | None = None,
        certificate: Certificate | None = None,
    ) -> None:
        binary = shutil.which("prosody")
        if binary is None:
            raise ProsodyError("prosody is not installed (Debian prosody)")
        self.binary = binary
        self.workdir = workdir
        self.domain = domain
        self.auth_domain = f"auth.{domain}"
        self.muc_domain = f"conference.{domain}"
        self.internal_muc_domain = f"internal.auth.{domain}"
        self.focus_domain = f"focus.{domain}"
        self.restrict_room_creation = restrict_room_creation
        self.users = dict(users or {"focus": secrets.token_hex(8), "jigasi": secrets.token_hex(8)})
        self.component_secret = secrets.token_hex(12)
        self.c2s_port = free_port(socket.SOCK_STREAM)
        self.component_port = free_port(socket.SOCK_STREAM)
        self.certificate = certificate
        self.config_path = workdir / "prosody.cfg.lua"
        self.data_path = workdir / "data"
        self.plugins_path = workdir / "plugins"
        self.log_path = workdir / "prosody.log"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def focus_jid(self) -> str:
        return f"focus@{self.auth_domain}"

    def password(self, user: str) -> str:
        return self.users[user]

    # -- configuration ----------------------------------------------------------------------------

    def _write_config(self, certificate: Certificate) -> None:
        self.data_path.mkdir(parents=True, exist_ok=True)
        self.plugins_path.mkdir(parents=True, exist_ok=True)
        (self.plugins_path / "mod_pygasi_test.lua").write_text(TEST_MODULE)
        accounts = self.data_path / _encode(self.auth_domain) / "accounts"
        accounts.mkdir(parents=True, exist_ok=True)
        for user, password in self.users.items():
            (accounts / f"{_encode(user)}.dat").write_text(
                f'return {{\n\t["password"] = {_lua(password)};\n}};\n'
            )
        w = self.workdir
        restrict = "true" if self.restrict_room_creation else "false"
        config = f"""
run_as_root = true -- mod_posix refuses root otherwise (deps.md §6.1)
pidfile = {_lua(str(w / "prosody.pid"))}
data_path = {_lua(str(self.data_path))}
plugin_paths = {{ {_lua(str(self.plugins_path))} }}
interfaces = {{ "{HOST}" }}
c2s_ports = {{ {self.c2s_port} }}
c2s_interfaces = {{ "{HOST}" }}
component_ports = {{ {self.component_port} }}
component_interfaces = {{ "{HOST}" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = {_lua(str(w / "prosody.sock"))}
log = {{ info = {_lua(str(self.log_path))}; error = {_lua(str(self.log_path))} }}
modules_enabled = {{ "disco"; "ping"; "saslauth"; "tls"; "roster" }}
modules_disabled = {{ "s2s" }}
admins = {{ {_lua(self.focus_jid)} }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = false
storage = "internal"
certificates = {_lua(str(w / "certs"))}
ssl = {{ certificate = {_lua(str(certificate.certfile))}; key = {_lua(str(certificate.keyfile))} }}
limits = {{ c2s = {{ rate = "10mb/s" }}; component = {{ rate = "10mb/s" }} }}

VirtualHost {_lua(self.domain)}
    authentication = "anonymous"

VirtualHost {_lua(self.auth_domain)}
    authentication = "internal_plain"

Component {_lua(self.muc_domain)} "muc"
    modules_enabled = {{ "pygasi_test" }}
    restrict_room_creation = {restrict}
    muc_room_locking = false
    muc_room_default_public_jids = true
    muc_tombstones = false

Component {_lua(self.internal_muc_domain)} "muc"
    muc_room_locking = false
    muc_tombstones = false

Component {_lua(self.focus_domain)}
    component_secret = {_lua(self.component_secret)}
"""
        (w / "certs").mkdir(exist_ok=True)
        self.config_path.write_text(config)

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            raise ProsodyError("Prosody is already running")
        if self.certificate is None:
            self.certificate = await domain_certificate(self.workdir, self.domain)
        self._write_config(self.certificate)
        self.starts += 1
        command = [self.binary, "--config", str(self.config_path), "-F"]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # Prosody gets SIGTERM if the test process dies.
            command = [setpriv, "--pdeathsig", "TERM", *command]
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for port in (self.c2s_port, self.component_port):
            while True:
                if self.process.returncode is not None:
                    raise ProsodyError(
                        f"prosody exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    _, writer = await asyncio.open_connection(HOST, port)
                except OSError:
                    if loop.time() > deadline:
                        raise ProsodyError(
                            f"prosody did not listen on {port}:\n{self.log_tail()}"
                        ) from None
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (Prosody closes every session with ``system-shutdown``), then SIGKILL to
        the process group after ``grace`` s; returns when no process is left."""
        process, self.process = self.process, None
        if process is None:
            return
        group = process.pid
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        await process.wait()

    async def restart(self, pause: float = 0.0) -> None:
        """Stop and start on the same ports (rooms and sessions are lost, accounts kept)."""
        await self.stop()
        if pause:
            await asyncio.sleep(pause)
        await self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    async def __aenter__(self) -> Prosody:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The test is over: on SIGTERM Prosody may wait up to a second for sessions whose
        # close it has not read yet; nothing is persisted, so do not wait that long.
        await self.stop(grace=0.2)


@contextlib.asynccontextmanager
async def prosody(
    *, restrict_room_creation: bool = False, domain: str = "meet.test"
) -> AsyncIterator[Prosody]:
    """A started Prosody in a fresh temp dir, stopped and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="pygasi-prosody-"))
    try:
        async with Prosody(
            workdir, domain=domain, restrict_room_creation=restrict_room_creation
        ) as instance:
            yield instance
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
