"""gateway.api against a Gateway test double: paths, status codes, JSON bodies, CORS."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api import Api, ApiServer, jigasi_timestamp
from gateway.metrics import Metrics
from tests.ops.fakes import FakeGateway

Client = TestClient[web.Request, web.Application]


class Harness:
    def __init__(self, gateway: FakeGateway, shutdown_enabled: bool = True) -> None:
        self.gateway = gateway
        self.metrics = Metrics(version="0.1.0")
        self.shutdowns: list[str] = []
        self.api = Api(
            gateway, self.metrics, shutdown_enabled=shutdown_enabled,
            request_shutdown=self.request_shutdown,
        )  # fmt: skip

    def request_shutdown(self, why: str) -> None:
        self.shutdowns.append(why)
        self.gateway._draining = True  # what Gateway.drain() does first


async def client_for(harness: Harness) -> Client:
    client: Client = TestClient(TestServer(harness.api.app()))
    await client.start_server()
    return client


@pytest.fixture
async def ready() -> AsyncIterator[tuple[Harness, Client]]:
    harness = Harness(FakeGateway())
    client = await client_for(harness)
    yield harness, client
    await client.close()


async def test_health_ready(ready: tuple[Harness, Client]) -> None:
    _, client = ready
    response = await client.get("/about/health")
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.content_type == "application/json"
    assert await response.json() == {"sip": "listening", "xmpp": "reachable"}


async def test_health_not_ready_gives_the_reason() -> None:
    harness = Harness(FakeGateway(ready=False, reason="SIP trunk not registered: 403 Forbidden"))
    client = await client_for(harness)
    try:
        response = await client.get("/about/health")
        assert response.status == 503
        body = await response.json()
        assert body["reason"] == "SIP trunk not registered: 403 Forbidden"
    finally:
        await client.close()


async def test_stats_has_jigasi_keys(ready: tuple[Harness, Client]) -> None:
    _, client = ready
    response = await client.get("/about/stats")
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = await response.json()
    assert body["conferences"] == 1 and body["participants"] == 3
    assert body["graceful_shutdown"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", body["current_timestamp"])


async def test_version(ready: tuple[Harness, Client]) -> None:
    _, client = ready
    response = await client.get("/about/version")
    assert response.status == 200
    assert await response.json() == {"name": "pygasi", "version": "0.1.0", "os": "Linux"}


async def test_shutdown_drains_and_health_says_so(
    ready: tuple[Harness, Client],
) -> None:
    harness, client = ready
    response = await client.post("/about/shutdown")
    assert response.status == 200
    assert await response.json() == {"status": "draining"}
    assert len(harness.shutdowns) == 1 and "POST /about/shutdown" in harness.shutdowns[0]
    # A second request does not start a second drain.
    assert (await client.post("/about/shutdown")).status == 200
    assert len(harness.shutdowns) == 1
    health = await client.get("/about/health")
    assert health.status == 503
    assert (await health.json())["reason"] == "draining"
    stats = await (await client.get("/about/stats")).json()
    assert stats["graceful_shutdown"] is True


async def test_shutdown_needs_post(ready: tuple[Harness, Client]) -> None:
    harness, client = ready
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, "/about/shutdown")
        assert response.status == 405, method
        assert response.headers["Allow"] == "POST"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert (await response.json())["reason"] == "use POST"
    assert harness.shutdowns == []


async def test_shutdown_disabled() -> None:
    harness = Harness(FakeGateway(), shutdown_enabled=False)
    client = await client_for(harness)
    try:
        response = await client.post("/about/shutdown")
        assert response.status == 403
        assert "shutdown_enabled" in (await response.json())["reason"]
        assert harness.shutdowns == []
        assert harness.gateway.draining is False
    finally:
        await client.close()


async def test_metrics_exposition(ready: tuple[Harness, Client]) -> None:
    harness, client = ready
    harness.metrics.call_started("inbound")
    harness.metrics.registration_state("registered")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    assert 'pygasi_calls_active{direction="inbound"} 1.0' in text
    assert 'pygasi_registration_state{pygasi_registration_state="registered"} 1.0' in text
    openmetrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await openmetrics.text()).endswith("# EOF\n")


async def test_unknown_path_is_json_404(ready: tuple[Harness, Client]) -> None:
    _, client = ready
    response = await client.get("/debug")
    assert response.status == 404
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert (await response.json())["reason"] == "Not Found"
    wrong = await client.post("/about/health")
    assert wrong.status == 405
    assert set(wrong.headers["Allow"].split(",")) == {"GET", "HEAD"}


async def test_a_failing_handler_is_a_json_500() -> None:
    class Broken(FakeGateway):
        def stats(self) -> dict[str, object]:
            raise RuntimeError("boom")

    harness = Harness(Broken())
    client = await client_for(harness)
    try:
        response = await client.get("/about/stats")
        assert response.status == 500
        assert await response.json() == {"reason": "internal error"}
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await client.close()


async def test_api_server_binds_a_real_port() -> None:
    harness = Harness(FakeGateway())
    server = ApiServer(harness.api.app(), "127.0.0.1", 0)
    await server.start()
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/about/health"
        async with ClientSession() as session, session.get(url) as response:
            assert response.status == 200
        # The address is taken now: a second server says so with OSError.
        second = ApiServer(harness.api.app(), "127.0.0.1", server.port)
        with pytest.raises(OSError):
            await second.start()
    finally:
        await server.stop()


def test_jigasi_timestamp() -> None:
    assert jigasi_timestamp(1700000000.25) == "2023-11-14 22:13:20.250"
