"""Fixtures of the contract tests: a server with storage peers, and clients that record every exchange."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.drive_server import DriveFixture
from tests.fixtures.moto_s3 import moto_s3_server


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    content_type: str
    body: bytes
    request_body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Recorder(httpx.BaseTransport):
    """Real HTTP; keeps every request and answer."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        content = response.read()
        self.exchanges.append(
            Exchange(
                request.method,
                request.url.path,
                response.status_code,
                response.headers.get("content-type", ""),
                content,
                request.content,
            )
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


class Api:
    """An httpx client of one server (and namespace) whose exchanges are recorded."""

    def __init__(self, srv, recorder: Recorder, namespace: str | None = None):
        headers = {"Authorization": f"Bearer {srv.api_key}"}
        if namespace:
            headers["X-Namespace"] = namespace
        self.srv = srv
        self.http = httpx.Client(base_url=srv.base_url, headers=headers, transport=recorder, timeout=30.0)

    def call(self, method: str, path: str, json: Any = None, expect: int | tuple[int, ...] = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, json=json, **kw)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in wanted, f"{method} {path}: {r.status_code} {r.text[:800]}"
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None

    def close(self) -> None:
        self.http.close()


def wait_for(fn, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def png_bytes(seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (5 + seed % 4, 4), (seed % 256, 60, 90)).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


@pytest.fixture(scope="module")
def moto():
    with moto_s3_server() as s3:
        yield s3


@pytest.fixture
def drive():
    with DriveFixture() as fx:
        yield fx


@dataclass
class Driven:
    routes: set[tuple[str, str]]
    exchanges: list[Exchange]
    stats: dict[str, Any]


@pytest.fixture(scope="package")
def driven(tmp_path_factory) -> Driven:
    """One server driven through every route it serves (tests/contract/drive.py), every exchange recorded."""
    from mixpeek_magics.local import LocalServer, LocalSettings
    from tests.contract.drive import drive_everything, served_routes

    with moto_s3_server() as moto, DriveFixture() as drive:
        srv = LocalServer(
            data_dir=tmp_path_factory.mktemp("contract-server"),
            port=0,
            settings=LocalSettings(time_scale=0.01, google_drive_api_root=drive.api_root),
        ).start()
        recorder = Recorder()
        try:
            drive_everything(srv, recorder, moto, drive)
            return Driven(served_routes(srv.app), list(recorder.exchanges), srv.contract_stats)
        finally:
            recorder.close()
            srv.stop()
