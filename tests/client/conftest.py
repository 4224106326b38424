"""Fixtures for client tests: real local servers, real clients (sync and async)."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import pytest

from mixpeek_magics.client import AsyncMixpeek, Mixpeek


async def resolve(value: Any) -> Any:
    """Await ``value`` if the async client returned an awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


async def collect(iterator: Any) -> list[Any]:
    """Drain an iterator or async iterator into a list."""
    if hasattr(iterator, "__aiter__"):
        return [x async for x in iterator]
    return list(iterator)


def _start(tmp_path_factory, **settings):
    from mixpeek_magics.local import LocalServer, LocalSettings

    srv = LocalServer(data_dir=tmp_path_factory.mktemp("mixpeek-local"), port=0, settings=LocalSettings(**settings))
    srv.start()
    return srv


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One local server shared by a test module (settings are reset after each test)."""
    server = _start(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture
def fresh_srv(tmp_path_factory):
    """A server of its own, for tests that count requests or inject faults."""
    server = _start(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_faults(request):
    yield
    if "srv" in request.fixturenames:
        request.getfixturevalue("srv").update_settings(
            fault_rate_429=0.0, fault_rate_503=0.0, latency_ms=0.0, pace_seconds=0.0
        )


@pytest.fixture(scope="module")
def namespace(srv) -> str:
    name = f"ns-client-{uuid.uuid4().hex[:8]}"
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
        c.namespaces.create(name, [{"feature_extractor_name": "text_extractor", "version": "v1"}])
    return name


@pytest.fixture(params=["sync", "async"])
async def client(request, srv, namespace):
    """The same tests run against ``Mixpeek`` and ``AsyncMixpeek`` over real HTTP."""
    if request.param == "sync":
        c = Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace, max_retry_seconds=10)
        yield c
        c.close()
    else:
        c = AsyncMixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace, max_retry_seconds=10)
        yield c
        await c.aclose()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _requests_follow_the_contract(request):
    """Every API request of the test is checked against the vendored contract."""
    from tests.fixtures.request_recorder import check_fixture

    yield from check_fixture(request)
