"""Fixtures for storage connections and bucket syncs: a local server (fast
time scale), real clients over HTTP that record every response body, moto's
S3 server and the Drive-v3 fixture."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mixpeek_magics.client import Mixpeek
from tests.fixtures.drive_server import DriveFixture
from tests.fixtures.moto_s3 import moto_s3_server

TIME_SCALE = 0.01


class RecordingTransport(httpx.BaseTransport):
    """Real HTTP; keeps the text of every response (for "no secret in any answer")."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        content = response.read()
        self.bodies.append(content.decode("utf-8", "replace"))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()

    def text(self) -> str:
        return "\n".join(self.bodies)


def enable_storage(srv) -> Any:
    """Make sure the server has connections/syncs (a no-op once the app wires them itself)."""
    from mixpeek_magics.local.sync_runner import install

    install(srv.app, srv.state)
    return srv


def set_drive(srv, drive: DriveFixture) -> None:
    from mixpeek_magics.local import LocalSettings

    if "google_drive_api_root" in LocalSettings.field_names():
        srv.update_settings(google_drive_api_root=drive.api_root)
    else:  # before the setting exists
        srv.state.settings.google_drive_api_root = drive.api_root


@pytest.fixture
def server(local_server_factory):
    srv = local_server_factory(time_scale=TIME_SCALE)
    return enable_storage(srv)


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def client(server, recorder):
    ns = f"ns-{uuid.uuid4().hex[:6]}"
    c = Mixpeek(api_key=server.api_key, base_url=server.base_url, namespace=ns, transport=recorder, max_retry_seconds=5)
    c.namespaces.create(ns, [{"feature_extractor_name": "text_extractor", "version": "v1"}])
    yield c
    c.close()


@pytest.fixture(scope="module")
def moto():
    with moto_s3_server() as s3:
        yield s3


@pytest.fixture
def moto_auth():
    with moto_s3_server(auth=True) as s3:
        yield s3


@pytest.fixture
def drive():
    with DriveFixture() as fx:
        yield fx


def png_bytes(seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4 + seed % 5, 3), (seed % 256, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


def body_for(key: str, i: int = 0) -> bytes:
    if key.endswith(".png"):
        return png_bytes(i)
    if key.endswith(".jpg"):
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (5, 4), (10, i % 256, 30)).save(buf, format="JPEG")
        return buf.getvalue()
    return f"content of {key} #{i}\n".encode() * (1 + i % 4)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}: last value {last!r}")


def s3_connection(client, s3, name: str | None = None, **overrides):
    return client.connections.create(name or f"s3-{uuid.uuid4().hex[:6]}", "s3", s3.provider_config(**overrides))


def bucket(client, name: str | None = None):
    name = name or f"b-{uuid.uuid4().hex[:6]}"
    client.buckets.create(name, {"image": {"type": "image"}, "text": {"type": "text"}, "video": {"type": "video"}})
    return name
