"""The HTTP API on Jigasi's paths (jigasi.md §7.2), served by aiohttp on the gateway's loop.

* ``GET /about/health``: 200 with the gateway's details when it is ready (SIP listening, the
  trunk registered and the brewery joined when configured, the XMPP server reachable), else
  503 with ``{"reason": …}``; 503 ``draining`` during a graceful shutdown. No test call is
  placed (Jigasi needs one, or answers 500 "GW not ready.", §7.3 and §9 item 30).
* ``GET /about/stats``: Jigasi's stats keys that apply, with ``current_timestamp``.
* ``GET /about/version``: ``{"name": "pygasi", "version": …, "os": …}``.
* ``POST /about/shutdown``: starts a graceful drain and answers 200 at once (as Jigasi); 403
  when ``[api] shutdown_enabled`` is false; other methods 405.
* ``GET /metrics``: Prometheus text, or OpenMetrics when the Accept header asks for it.

Every answer is JSON (except /metrics) with ``Access-Control-Allow-Origin: *``, errors too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from gateway.metrics import Metrics

log = logging.getLogger("pygasi.api")

CORS = {"Access-Control-Allow-Origin": "*"}


class GatewayStatus(Protocol):
    """What the API reads from the gateway (``gateway.app.Gateway`` has it)."""

    @property
    def draining(self) -> bool: ...

    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...

    def version(self) -> dict[str, str]: ...


def jigasi_timestamp(now: float | None = None) -> str:
    """``yyyy-MM-dd HH:mm:ss.SSS`` in UTC, the form of Jigasi's ``current_timestamp``."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers={**CORS, **headers})


@web.middleware
async def _errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """404s, 405s and failures answer JSON with the CORS header like everything else."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return _json({"reason": exc.reason}, exc.status, **headers)
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return _json({"reason": "internal error"}, 500)
    response.headers.update(CORS)
    return response


class Api:
    """The handlers. ``request_shutdown`` starts the graceful drain (the daemon's; it must
    return at once, the drain runs in its own task)."""

    def __init__(
        self,
        gateway: GatewayStatus,
        metrics: Metrics,
        *,
        shutdown_enabled: bool,
        request_shutdown: Callable[[str], None],
    ) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.shutdown_enabled = shutdown_enabled
        self.request_shutdown = request_shutdown

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_errors_as_json])
        app.router.add_get("/about/health", self.health)
        app.router.add_get("/about/stats", self.stats)
        app.router.add_get("/about/version", self.version)
        app.router.add_route("*", "/about/shutdown", self.shutdown)
        app.router.add_get("/metrics", self.render_metrics)
        return app

    async def health(self, request: web.Request) -> web.Response:
        ready, details = self.gateway.health()
        body = dict(details)
        if self.gateway.draining:
            ready = False
            body["reason"] = "draining"
        if ready:
            body.pop("reason", None)
            return _json(body)
        body.setdefault("reason", "not ready")
        return _json(body, 503)

    async def stats(self, request: web.Request) -> web.Response:
        body = dict(self.gateway.stats())
        body.setdefault("graceful_shutdown", self.gateway.draining)
        body.setdefault("current_timestamp", jigasi_timestamp())
        return _json(body)

    async def version(self, request: web.Request) -> web.Response:
        return _json(dict(self.gateway.version()))

    async def shutdown(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _json({"reason": "use POST"}, 405, Allow="POST")
        if not self.shutdown_enabled:
            return _json(
                {"reason": "shutdown over the API is disabled ([api] shutdown_enabled)"}, 403
            )
        peer = request.remote or "?"
        if not self.gateway.draining:
            log.warning("graceful shutdown requested over the API by %s", peer)
            self.request_shutdown(f"POST /about/shutdown from {peer}")
        return _json({"status": "draining"})

    async def render_metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render(request.headers.get("Accept"))
        return web.Response(body=body, headers={**CORS, "Content-Type": content_type})


class ApiServer:
    """The API on ``host:port`` (an IP literal: binding never waits for a resolver thread).
    ``port`` is the bound port after :meth:`start` (useful with port 0)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.host = host
        self.port = port
        # aiohttp's access log is at INFO on "aiohttp.access"; logs.py quiets it unless debug.
        self._runner = web.AppRunner(app, handle_signals=False)
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        """Bind and serve; raises OSError when the address cannot be bound."""
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await self._site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()
