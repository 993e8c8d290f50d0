"""The ``pygasi`` command line: ``run``, ``check-config`` and ``version``.

Exit status: 0 after a clean stop (a finished drain, or a stop asked for with a second
Ctrl-C); 1 when the gateway cannot start (a port in use, ...); 2 for a configuration problem
or bad arguments.

Signals (``pygasi run``): SIGTERM drains gracefully - new INVITEs get 503 with Retry-After,
active calls go on up to ``[drain] timeout``, the trunk is un-REGISTERed, then exit 0 -; a
first SIGINT (Ctrl-C) does the same; a second stops at once (every call hung up with a Reason).
``POST /about/shutdown`` drains like SIGTERM. The HTTP API keeps answering while draining
(health 503 ``draining``).

The gateway package sets ``OPENBLAS_NUM_THREADS=1`` (and the OpenMP/MKL equivalents) when it
is imported, i.e. before this module and before numpy (bench/README.md: otherwise an OpenBLAS
thread busy-waits and doubles the resampler's CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import platform
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from gateway.config import GatewayConfig
from gateway.config_loader import ConfigError, load_config, parse_listen, secrets_of
from gateway.logs import setup_logging
from gateway.metrics import Metrics

DEFAULT_CONFIG = "/etc/pygasi/pygasi.toml"
EXIT_OK, EXIT_START_FAILED, EXIT_CONFIG = 0, 1, 2
# Beyond [drain] timeout the gateway hangs up what is left; give that this long before
# stopping regardless.
DRAIN_GRACE = 30.0

log = logging.getLogger("pygasi")


def package_version() -> str:
    try:
        return version("pygasi")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


class DaemonGateway(Protocol):
    """The part of ``gateway.app.Gateway`` the daemon drives."""

    @property
    def draining(self) -> bool: ...

    async def start(self) -> None: ...

    async def drain(self, timeout: float | None = None) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...

    def version(self) -> dict[str, str]: ...


def sd_notify(state: str) -> None:
    """Tell systemd (``Type=notify``) about our state: ``READY=1``, ``STOPPING=1``, ``STATUS=…``.
    A no-op outside systemd. One datagram, no thread (sd_notify(3))."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
    ):
        sock.sendto(state.encode(), address)


class Daemon:
    """``pygasi run``: the gateway, its HTTP API and the signals that stop them."""

    def __init__(self, config: GatewayConfig, gateway: DaemonGateway, metrics: Metrics) -> None:
        self.config = config
        self.gateway = gateway
        self.metrics = metrics
        self.api: Any = None  # gateway.api.ApiServer once started
        self._done: asyncio.Event | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._interrupts = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- requests (signals and the API) --------------------------------------------------------

    def request_drain(self, why: str) -> None:
        """Graceful: returns at once, the drain runs in a task; the process ends when it does."""
        if self._start_task is not None and not self._start_task.done():
            log.warning("%s while starting: stopping", why)
            self._start_task.cancel()
            return
        if self._drain_task is not None or self._stop_task is not None:
            log.info("%s: already stopping", why)
            return
        log.warning(
            "%s: draining (new calls get 503, active calls go on up to %g s)",
            why,
            self.config.drain.timeout,
        )
        sd_notify("STOPPING=1")
        self._drain_task = self._spawn(self._drain())

    def request_stop(self, why: str) -> None:
        """Immediate: every call is hung up with a Reason."""
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
            return
        if self._stop_task is not None:
            return
        log.warning("%s: stopping now", why)
        sd_notify("STOPPING=1")
        self._stop_task = self._spawn(self._stop())

    def _interrupt(self) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self.request_drain("SIGINT (again to stop at once)")
        else:
            self.request_stop("second SIGINT")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drain(self) -> None:
        timeout = self.config.drain.timeout
        try:
            await asyncio.wait_for(self.gateway.drain(timeout), timeout + DRAIN_GRACE)
        except TimeoutError:
            log.error("drain did not finish %g s after its timeout: stopping", DRAIN_GRACE)
            await self.gateway.stop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("drain failed: stopping")
            await self.gateway.stop()
        else:
            log.info("drained: every call has ended")
        self._finish()

    async def _stop(self) -> None:
        try:
            await self.gateway.stop()
        except Exception:
            log.exception("stop failed")
        if self._drain_task is not None and not self._drain_task.done():
            self._drain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        self._finish()

    def _finish(self) -> None:
        if self._done is not None:
            self._done.set()

    # -- the life cycle ------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.request_drain, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            return await self._run()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)

    async def _run(self) -> int:
        from gateway.api import Api, ApiServer

        self._start_task = self._spawn(self.gateway.start())
        try:
            await self._start_task
        except asyncio.CancelledError:
            if self._start_task.cancelled():
                log.warning("start interrupted")
                await self.gateway.stop()
                return EXIT_OK
            raise
        except Exception as exc:
            # GatewayStartError carries a message an operator can act on; anything else is a
            # bug, and the traceback goes to the log.
            if type(exc).__name__ == "GatewayStartError":
                log.error("cannot start: %s", exc)
            else:
                log.exception("cannot start")
            with contextlib.suppress(Exception):
                await self.gateway.stop()
            return EXIT_START_FAILED
        if self.config.api.listen:
            host, port = parse_listen(self.config.api.listen)
            api = Api(
                self.gateway,
                self.metrics,
                shutdown_enabled=self.config.api.shutdown_enabled,
                request_shutdown=self.request_drain,
            )
            server = ApiServer(api.app(), host, port)
            try:
                await server.start()
            except OSError as exc:
                log.error("cannot start the HTTP API on %s: %s", self.config.api.listen, exc)
                await self.gateway.stop()
                return EXIT_START_FAILED
            self.api = server
            log.info("HTTP API on http://%s:%d/", host if ":" not in host else f"[{host}]", port)
        sd_notify("READY=1")
        import media

        engine = "compiled" if media.COMPILED else f"pure Python: {media.SOURCE_REASON}"
        log.info("pygasi %s ready (media engine %s)", package_version(), engine)
        assert self._done is not None
        try:
            await self._done.wait()
        finally:
            if self.api is not None:
                await self.api.stop()
        return EXIT_OK


def _event_loop_factory(config: GatewayConfig) -> Callable[[], asyncio.AbstractEventLoop] | None:
    choice = config.runtime.event_loop
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":  # the loader checked; installed packages may have changed since
            raise ConfigError("runtime.event_loop", "uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def allocator_restart(config: GatewayConfig, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to start again with when ``[runtime] allocator`` is not the allocator
    this interpreter runs; None to go on.

    CPython picks its allocator before any code runs, from ``PYTHONMALLOC``. Its own small-object
    allocator (pymalloc) gives memory back only as whole 1 MiB arenas, and a few objects made
    during a busy hour (counters, timer handles) keep the arenas that hour opened: after 50
    calls RSS stayed ~11 MiB above its level before them. With glibc's malloc, the idle
    release's ``malloc_trim`` returns every free page: +2.6 MiB, at the same CPU per call
    (bench/README.md, load.py's leak and rooms scenarios). A ``PYTHONMALLOC`` set outside wins."""
    wanted = config.runtime.allocator
    if "PYTHONMALLOC" in environ or wanted == "pymalloc":
        return None
    return {**environ, "PYTHONMALLOC": wanted}


def run(config_path: str, may_restart: bool = True) -> int:
    try:
        config = load_config(config_path)
        loop_factory = _event_loop_factory(config)
    except ConfigError as exc:
        print(f"pygasi: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    restart = allocator_restart(config, os.environ) if may_restart else None
    if restart is not None:
        # The same command line (sys.orig_argv: the interpreter, the script, its arguments)
        # in this same process (systemd keeps its PID), now with the allocator set.
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(sys.executable, sys.orig_argv, restart)
        except OSError as exc:
            print(f"pygasi: cannot restart with PYTHONMALLOC set: {exc}", file=sys.stderr)
    setup_logging(config.logging, secrets_of(config))
    log.info(
        "pygasi %s starting with %s (Python %s, %s event loop, %s allocator)",
        package_version(),
        config_path,
        platform.python_version(),
        "uvloop" if loop_factory is not None else "asyncio",
        os.environ.get("PYTHONMALLOC", "pymalloc"),
    )
    # Imported here: check-config and version need none of the media stack.
    gateway_class: Any = importlib.import_module("gateway.app").Gateway

    async def main() -> int:
        metrics = Metrics(version=package_version())
        gateway: DaemonGateway = gateway_class(config, metrics)
        return await Daemon(config, gateway, metrics).run()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        code = runner.run(main())
    log.info("pygasi stopped (exit status %d)", code)
    return code


def check_config(config_path: str) -> int:
    try:
        load_config(config_path)
    except ConfigError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_CONFIG
    print("OK")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pygasi", description="SIP <-> Jitsi Meet gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    default = os.environ.get("PYGASI_CONFIG", DEFAULT_CONFIG)
    for name, help_text in (
        ("run", "run the gateway"),
        ("check-config", "validate the configuration, print OK or the problem"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--config",
            default=default,
            metavar="PATH",
            help=f"the TOML configuration (default: $PYGASI_CONFIG or {DEFAULT_CONFIG})",
        )
    commands.add_parser("version", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"pygasi {package_version()} (Python {platform.python_version()})")
        return EXIT_OK
    if args.command == "check-config":
        return check_config(args.config)
    if args.command == "run":
        # Started from the command line, the process may start itself again (allocator_restart);
        # called with arguments from other Python code, it must not re-run that program.
        return run(args.config, may_restart=argv is None)
    parser.error(f"unknown command {args.command!r}")
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
