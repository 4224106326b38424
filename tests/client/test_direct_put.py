"""Presigned PUTs of the sync client over bare HTTP/1.1 keep-alive connections
(``client._direct``): same results and typed errors as the httpx path, connection
reuse, recovery from connections the server closed, and the cases left to httpx."""
from __future__ import annotations

import hashlib
import http.server
import os
import ssl
import threading
import time

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


# -- the wire: a raw server that answers whatever bytes a test gives it ----------------
class _RawServer:
    """Reads each request (head + Content-Length body) and sends the next canned
    answer; ``close_after`` answers close the connection afterwards."""

    def __init__(self, answers: list[bytes], close_after: bool = False, tls: ssl.SSLContext | None = None):
        import socket

        self.answers, self.close_after, self.tls = list(answers), close_after, tls
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _next_answer(self) -> bytes | None:
        with self.lock:
            return self.answers.pop(0) if self.answers else None

    def _handle(self, conn) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # a client that does not trust the certificate
                conn.close()
                return
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(buf) < length:
                    buf += conn.recv(1 << 20)
                with self.lock:
                    self.requests.append((head, buf[:length]))
                buf = buf[length:]
                answer = self._next_answer()
                if answer is None:
                    return
                conn.sendall(answer)
                if self.close_after:
                    return

    def close(self) -> None:
        self.sock.close()


def _file(tmp_path, size: int):
    path = tmp_path / f"body-{size}.bin"
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    path.write_bytes(data)
    return str(path), data


@pytest.mark.parametrize("size", [0, 1000, 256 * 1024 + 1, 3 * 1024 * 1024 + 5])
def test_bodies_small_and_large_arrive_whole(tmp_path, size):
    path, data = _file(tmp_path, size)
    ok = b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n"
    server = _RawServer([ok, ok])
    direct = DirectPut()
    for _ in range(2):
        status, headers, body = direct.put(server.url + "/u?x=1", path, size, {"Content-Type": "a/b"}, 10.0)
        assert (status, body) == (200, b"") and ("ETag", '"e"') in headers
    assert [r[1] for r in server.requests] == [data, data]
    head = server.requests[0][0].decode()
    assert head.startswith("PUT /u?x=1 HTTP/1.1\r\n") and f"Content-Length: {size}" in head
    assert "Content-Type: a/b" in head and server.connections == 1
    server.close()
    direct.close()


def test_answer_framings(tmp_path):
    """Chunked bodies, interim 100 answers, HTTP/1.0 and bodies that end at close."""
    path, _ = _file(tmp_path, 10)
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n<Err>\r\n3\r\nor/\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ]
    server = _RawServer(answers)
    direct = DirectPut()
    assert direct.put(server.url + "/a", path, 10, {}, 5.0)[::2] == (200, b"ok")
    status, _, body = direct.put(server.url + "/a", path, 10, {}, 5.0)
    assert (status, body) == (403, b"<Err>or/")
    assert direct.put(server.url + "/a", path, 10, {}, 5.0)[0] == 200
    assert server.connections == 1 and direct.opened == 1  # all three on one kept-alive connection
    server.close()

    ended = _RawServer([b"HTTP/1.0 200 OK\r\nETag: \"z\"\r\n\r\nuntil close"] * 2, close_after=True)
    direct = DirectPut()
    for _ in range(2):
        status, _, body = direct.put(ended.url + "/b", path, 10, {}, 5.0)
        assert (status, body) == (200, b"until close")
    assert ended.connections == 2 == direct.opened  # HTTP/1.0 without keep-alive: not reused
    ended.close()


@pytest.mark.parametrize("answer", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
])
def test_answers_not_understood_are_left_to_httpx(tmp_path, answer):
    path, _ = _file(tmp_path, 10)
    server = _RawServer([answer], close_after=True)
    assert DirectPut().put(server.url + "/c", path, 10, {}, 5.0) is None
    server.close()


def test_a_file_shorter_than_declared_is_not_sent_as_complete(tmp_path):
    path, _ = _file(tmp_path, 10)
    server = _RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    assert DirectPut().put(server.url + "/d", path, 11, {}, 5.0) is None
    assert DirectPut().put(server.url + "/d", path, 300 * 1024, {}, 5.0) is None
    assert server.requests == []
    server.close()


def _tls_pair(tmp_path):
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    return server_ctx, ssl.create_default_context(cafile=str(cert_file))


@pytest.mark.parametrize("size", [1000, 2 * 1024 * 1024 + 3])
def test_https_bodies_go_through_tls(tmp_path, size, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # custom trust settings send https to httpx
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server_ctx, client_ctx = _tls_pair(tmp_path)
    path, data = _file(tmp_path, size)
    server = _RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 2, tls=server_ctx)
    direct = DirectPut()
    direct._ssl = client_ctx  # trusts the test certificate (the default is certifi's bundle)
    for _ in range(2):
        assert direct.put(server.url + "/t", path, size, {}, 10.0)[0] == 200
    assert [r[1] for r in server.requests] == [data, data] and direct.opened == 1
    server.close()
    untrusted = DirectPut()  # certifi does not know this certificate: left to httpx, which refuses it too
    assert untrusted.put(server.url + "/t", path, size, {}, 10.0) is None
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    assert direct.put(server.url + "/t", path, size, {}, 10.0) is None and len(server.requests) == 2


# -- many PUTs at once ------------------------------------------------------------------
def test_put_files_sends_many_together_and_reports_each(client, bucket, tmp_path):
    from mixpeek_magics.client._direct import INLINE_BODY

    paths, ups = [], []
    for i in range(12):
        body = f"file {i}\n".encode() * (50 + i)
        path = tmp_path / f"m{i}.txt"
        path.write_bytes(body)
        paths.append(path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(INLINE_BODY + 10))  # too big to go together: sent on its own
    for path in paths:
        ups.append(client.uploads.create(bucket, path.name, "text/plain", file_size_bytes=path.stat().st_size))
    big_up = client.uploads.create(bucket, big.name, "application/octet-stream", file_size_bytes=big.stat().st_size)
    files = [(u.presigned_url, p, "text/plain") for u, p in zip(ups, paths)]
    files[3] = (files[3][0].replace("signature=", "signature=0"), files[3][1], "text/plain")  # tampered
    files.append((big_up.presigned_url, big, "application/octet-stream"))
    files.append((ups[0].presigned_url, tmp_path / "gone.txt", "text/plain"))  # no such file
    opened, sent = client._direct.opened, client._direct.sent
    results = client.uploads.put_files(files, concurrency=4)
    assert len(results) == len(files)
    for i, (path, got) in enumerate(zip(paths, results)):
        if i == 3:
            assert isinstance(got, errors.PermissionDeniedError)
        else:
            assert got == hashlib.md5(path.read_bytes()).hexdigest()
    assert results[12] == hashlib.md5(big.read_bytes()).hexdigest()
    assert isinstance(results[13], FileNotFoundError)
    assert client._direct.opened - opened <= 4  # at most `concurrency` connections
    assert client._direct.sent - sent >= 12
    for i, (u, p) in enumerate(zip(ups, paths)):
        if i != 3:
            assert client.uploads.confirm(bucket, u.upload_id, etag=results[i]).object_id


def test_put_files_on_the_async_client(srv, namespace, tmp_path):
    import asyncio

    from mixpeek_magics.client import AsyncMixpeek

    async def go():
        async with AsyncMixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace) as ac:
            b = (await ac.buckets.create(uid("bkt"), SCHEMA)).bucket_id
            files = []
            for i in range(5):
                path = tmp_path / f"a{i}.txt"
                path.write_bytes(f"async {i}".encode())
                up = await ac.uploads.create(b, path.name, "text/plain", file_size_bytes=path.stat().st_size)
                files.append((up.presigned_url, path, "text/plain"))
            return files, await ac.uploads.put_files(files, concurrency=2)

    files, results = asyncio.run(go())
    assert results == [hashlib.md5(p.read_bytes()).hexdigest() for _, p, _ in files]


def test_put_files_cancel_drops_what_has_not_started(client, bucket, tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"never sent")
    up = client.uploads.create(bucket, "c.txt", "text/plain", file_size_bytes=10)
    cancel = threading.Event()
    cancel.set()
    sent = client._direct.sent
    results = client.uploads.put_files([(up.presigned_url, path, "text/plain")] * 3, cancel=cancel)
    assert all(type(r).__name__ == "CancelledError" for r in results) and client._direct.sent == sent
    with pytest.raises(ValueError):
        client.uploads.put_files([], concurrency=0)


def test_put_many_reuses_connections_and_survives_stale_ones(tmp_path):
    path, data = _file(tmp_path, 5000)
    ok = b"HTTP/1.1 200 OK\r\nETag: \"k\"\r\nContent-Length: 0\r\n\r\n"
    server = _RawServer([ok] * 6)
    direct = DirectPut()
    jobs = [(server.url + f"/p{i}", path, 5000, {"Content-Type": "x/y"}) for i in range(6)]
    answers = direct.put_many(jobs, 2, 5.0)
    assert [a[0] for a in answers] == [200] * 6 and server.connections <= 2
    assert [r[1] for r in server.requests] == [data] * 6
    assert sorted(r[0].split(b" ")[1] for r in server.requests) == sorted(f"/p{i}".encode() for i in range(6))
    server.close()
    # a server that closes after every answer: the kept connections are stale next time
    _ClosingHandler.connections = 0
    _ClosingHandler.bodies = []
    import http.server as hs

    closing = hs.ThreadingHTTPServer(("127.0.0.1", 0), _ClosingHandler)
    threading.Thread(target=closing.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{closing.server_address[1]}/up"
    direct = DirectPut()
    for _ in range(3):
        answers = direct.put_many([(url, path, 5000, {})] * 3, 3, 5.0)
        assert [a[0] for a in answers] == [200] * 3
    assert _ClosingHandler.bodies == [data] * 9
    closing.shutdown()
    closing.server_close()


def test_put_many_sends_exactly_the_declared_size_and_leaves_a_shorter_file(tmp_path):
    path, data = _file(tmp_path, 3000)  # 3000 bytes on disk
    ok = b"HTTP/1.1 200 OK\r\nETag: \"k\"\r\nContent-Length: 0\r\n\r\n"
    server = _RawServer([ok] * 2)
    answers = DirectPut().put_many([(server.url + "/grown", path, 2000, {}),   # grew since it was sized
                                    (server.url + "/shrunk", path, 4000, {}),  # shrank since
                                    (server.url + "/empty", path, 0, {})], 3, 5.0)
    assert answers[0][0] == 200 and answers[1] is None and answers[2][0] == 200
    assert sorted(r[1] for r in server.requests) == sorted([data[:2000], b""])
    assert all(b"/shrunk" not in r[0] for r in server.requests)  # nothing of it was sent
    server.close()


def test_put_many_gives_up_on_silence_and_leaves_what_it_does_not_take(tmp_path):
    import socket as socketlib

    path, _ = _file(tmp_path, 100)
    mute = socketlib.create_server(("127.0.0.1", 0))  # accepts (backlog) but never answers
    url = f"http://127.0.0.1:{mute.getsockname()[1]}/m"
    started = time.monotonic()
    answers = DirectPut().put_many([(url, path, 100, {})], 1, 0.5)
    assert answers == [None] and time.monotonic() - started < 3
    mute.close()
    assert DirectPut().put_many([("https://127.0.0.1:9/x", path, 100, {}), ("ftp://h/x", path, 100, {})],
                                2, 1.0) == [None, None]
