"""Presigned PUTs of the sync client over plain http.client keep-alive connections
(``client._direct``): same results and typed errors as the httpx path, connection
reuse, recovery from connections the server closed, and the cases left to httpx."""
from __future__ import annotations

import hashlib
import http.server
import threading

import httpx
import pytest

from mixpeek_magics.client import Mixpeek, errors
from mixpeek_magics.client._direct import DirectPut

from .conftest import uid

SCHEMA = {"properties": {"file": {"type": "text"}}}


@pytest.fixture
def client(srv, namespace):
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace) as c:
        yield c


@pytest.fixture
def bucket(client):
    return client.buckets.create(uid("bkt"), SCHEMA).bucket_id


def test_put_file_goes_direct_and_reuses_one_connection(client, bucket, tmp_path):
    assert client._direct is not None and client.with_options(namespace="x")._direct is client._direct
    sent, opened = client._direct.sent, client._direct.opened
    for i in range(5):
        body = f"file {i}\n".encode() * (100 + i)
        path = tmp_path / f"f{i}.txt"
        path.write_bytes(body)
        up = client.uploads.create(bucket, path.name, "text/plain", file_size_bytes=len(body))
        etag = client.uploads.put_file(up.presigned_url, path, "text/plain")
        assert etag == hashlib.md5(body).hexdigest()  # the server's ETag of exactly these bytes
        done = client.uploads.confirm(bucket, up.upload_id, etag=etag, file_size_bytes=len(body))
        assert done.object_id
    assert client._direct.sent == sent + 5
    assert client._direct.opened == opened + 1  # one keep-alive connection for all five


def test_an_error_answer_is_the_same_typed_error(client, bucket, tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    up = client.uploads.create(bucket, "a.txt", "text/plain", file_size_bytes=5)
    bad = up.presigned_url.replace("signature=", "signature=0")
    sent = client._direct.sent
    with pytest.raises(errors.PermissionDeniedError) as ei:
        client.uploads.put_file(bad, path, "text/plain")
    assert client._direct.sent == sent + 1
    assert "signature" not in str(ei.value).split("presigned URL signature")[0].lower()  # no query in the URL shown
    with pytest.raises(errors.APIStatusError):
        client.uploads.put_file(up.presigned_url, path, "application/pdf")  # not the declared type


def test_a_custom_transport_sees_every_request(srv):
    seen = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request):
            seen.append(request.method)
            return super().handle_request(request)

    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, transport=Recording()) as c:
        assert c._direct is None


class _ClosingHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 that drops the connection after each answer without saying so,
    like a server whose keep-alive timeout passed."""

    protocol_version = "HTTP/1.1"
    connections = 0
    bodies: list[bytes] = []

    def setup(self):
        type(self).connections += 1
        super().setup()

    def do_PUT(self):
        n = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(n))
        self.send_response(200)
        self.send_header("ETag", '"abc"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def closing_server():
    _ClosingHandler.connections = 0
    _ClosingHandler.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ClosingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_connection_closed_by_the_server_is_replaced(closing_server, tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x" * 1000)
    direct = DirectPut()
    for _ in range(3):
        status, headers, _body = direct.put(f"{closing_server}/up?sig=1", str(path), 1000, {}, 5.0)
        assert status == 200 and dict(headers)["ETag"] == '"abc"'
    assert _ClosingHandler.bodies == [b"x" * 1000] * 3
    assert direct.opened == 3 and _ClosingHandler.connections == 3
    direct.close()


def test_only_the_declared_size_is_sent(closing_server, tmp_path):
    path = tmp_path / "grown.bin"
    path.write_bytes(b"a" * 10 + b"b" * 5)  # grew after its size was declared
    status, _, _ = DirectPut().put(f"{closing_server}/up", str(path), 10, {}, 5.0)
    assert status == 200 and _ClosingHandler.bodies == [b"a" * 10]


def test_proxies_and_unreachable_hosts_are_left_to_httpx(closing_server, tmp_path, monkeypatch):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert DirectPut().put(f"{closing_server}/up", str(path), 1, {}, 5.0) is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert DirectPut().put(f"{closing_server}/up", str(path), 1, {}, 5.0)[0] == 200
    monkeypatch.delenv("HTTP_PROXY")
    assert DirectPut().put("http://127.0.0.1:9/up", str(path), 1, {}, 2.0) is None  # refused
    assert DirectPut().put("ftp://127.0.0.1/up", str(path), 1, {}, 2.0) is None
    assert _ClosingHandler.connections == 1


def test_an_unreachable_upload_target_is_a_connection_error(srv, tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, max_retry_seconds=0.5) as c:
        with pytest.raises(errors.APIConnectionError):
            c.uploads.put_file("http://127.0.0.1:9/_local/uploads/x?signature=s", path, "text/plain")
        assert c._direct.sent == 0
