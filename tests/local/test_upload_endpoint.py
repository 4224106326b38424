"""The upload endpoint: the S3-like PUT target on a port of its own (HTTP details,
keep-alive, interrupted bodies, restarts, shutdown)."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.parse

import httpx
import pytest

from mixpeek_magics.local import LocalServer
from tests.local.localhelpers import Env, client_for


def create_upload(env, data: bytes, content_type: str = "text/plain", name: str = "a.txt") -> dict:
    body = {"filename": name, "content_type": content_type}
    if data:  # the API takes no declared size of 0: an empty file declares none
        body["file_size_bytes"] = len(data)
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def raw_exchange(url: str, request: bytes, read_until_close: bool = True, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the URL's host and port; what comes back (until close, or one read)."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if not read_until_close:
                break
        return b"".join(chunks)


def target(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def confirm(env, upload_id: str) -> dict:
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{upload_id}/confirm", json={})
    assert r.status_code == 200, r.text
    return r.json()


def test_keep_alive_requests_on_one_connection_and_http_details(env, local_server):
    bodies = [b"first body\n", b"second, longer body\n" * 50, b""]
    ups = [create_upload(env, b) for b in bodies]
    assert all(u["presigned_url"].startswith(local_server.upload_url + "/_local/uploads/") for u in ups)
    with httpx.Client(timeout=10) as http:
        answers = [
            http.put(u["presigned_url"], content=b, headers={"Content-Type": "text/plain"}) for u, b in zip(ups, bodies)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["ETag"] for a in answers] == [f'"{hashlib.md5(b).hexdigest()}"' for b in bodies]
        other = http.get(ups[0]["presigned_url"])
        assert other.status_code == 405 and other.headers["Allow"] == "PUT"
        assert other.json()["success"] is False
        missing = http.put(local_server.upload_url + "/v1/namespaces", content=b"x")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    for u, b in zip(ups, bodies):
        assert confirm(env, u["upload_id"])["file_size_bytes"] == len(b)
    # the same socket carried two PUTs: one exchange, two answers
    a, b = create_upload(env, b"one"), create_upload(env, b"two")
    req = b"".join(
        f"PUT {target(u['presigned_url'])} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        f"Content-Length: 3\r\n\r\n".encode()
        + body
        for u, body in ((a, b"one"), (b, b"two"))
    )
    got = raw_exchange(local_server.upload_url, req + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.count(b"HTTP/1.1 200 OK") == 2 and got.count(b"HTTP/1.1 404") == 1
    assert got.rstrip().endswith(b"}") and b"connection: close" in got.lower()


def test_chunked_bodies_and_expect_continue(env, local_server):
    data = os.urandom(300_000)
    up = create_upload(env, data, "application/octet-stream", "c.bin")

    def pieces():
        for i in range(0, len(data), 70_001):
            yield data[i : i + 70_001]

    r = httpx.put(up["presigned_url"], content=pieces(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert confirm(env, up["upload_id"])["file_hash"] == hashlib.sha256(data).hexdigest()

    # Expect: 100-continue: accepted -> "100 Continue" first; refused -> the refusal at once, and close
    up = create_upload(env, b"12345")
    head = (
        f"PUT {target(up['presigned_url'])} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    parts = urllib.parse.urlsplit(up["presigned_url"])
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"12345")
        assert b"HTTP/1.1 200 OK" in sock.recv(1000)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.replace(b"signature=", b"signature=0"))
        refused = b""
        while b"SignatureDoesNotMatch" not in refused and (chunk := sock.recv(4096)):
            refused += chunk
    assert refused.startswith(b"HTTP/1.1 403") and b"SignatureDoesNotMatch" in refused


def test_malformed_requests_are_refused_and_the_endpoint_stays_up(env, local_server):
    got = raw_exchange(local_server.upload_url, b"this is not HTTP\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400")
    up = create_upload(env, b"fine")
    r = httpx.put(up["presigned_url"], content=b"fine", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    # HTTP/1.0 without keep-alive: answered, then closed
    up = create_upload(env, b"ten")
    got = raw_exchange(
        up["presigned_url"],
        f"PUT {target(up['presigned_url'])} HTTP/1.0\r\n"
        "Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nten".encode(),
    )
    assert got.startswith(b"HTTP/1.1 200") and b"connection: close" in got.lower()


def test_a_body_cut_short_keeps_nothing_and_the_upload_stays_pending(env, local_server):
    data = os.urandom(200_000)
    up = create_upload(env, data, "application/octet-stream", "cut.bin")
    parts = urllib.parse.urlsplit(up["presigned_url"])
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"PUT {target(up['presigned_url'])} HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data[:90_000]
        )
        time.sleep(0.2)
    uploads = local_server.state.uploads_dir
    deadline = time.monotonic() + 5
    while any(name.startswith(up["upload_id"]) for name in os.listdir(uploads)):
        assert time.monotonic() < deadline, os.listdir(uploads)
        time.sleep(0.05)
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={})
    assert r.status_code == 400 and "no file has been uploaded" in r.json()["error"]["message"]
    # sending it whole afterwards works
    r = httpx.put(up["presigned_url"], content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and confirm(env, up["upload_id"])["file_size_bytes"] == len(data)


def test_the_port_survives_a_restart_and_stop_closes_every_connection(tmp_path):
    srv = LocalServer(data_dir=tmp_path / "d", port=0).start()
    try:
        env = Env(srv)
        first = srv.upload_url
        up = create_upload(env, b"later")
        idle = httpx.Client(timeout=5)  # leaves a keep-alive connection open on the endpoint
        ok = create_upload(env, b"now")
        assert idle.put(ok["presigned_url"], content=b"now", headers={"Content-Type": "text/plain"}).status_code == 200
        srv.stop()
        port = urllib.parse.urlsplit(first).port
        with pytest.raises(OSError):  # nothing listens any more, idle connections notwithstanding
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        idle.close()
        srv.start()
        env.c = client_for(srv, namespace=env.namespace_id)
        assert srv.upload_url == first  # the same port again: URLs issued before still work
        r = httpx.put(up["presigned_url"], content=b"later", headers={"Content-Type": "text/plain"})
        assert r.status_code == 200
    finally:
        srv.stop()
    # when that port is taken, another one is used
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old port may be in TIME_WAIT
    blocker.bind(("127.0.0.1", urllib.parse.urlsplit(first).port))
    blocker.listen(1)
    try:
        with LocalServer(data_dir=tmp_path / "d", port=0) as again:
            assert again.upload_url and again.upload_url != first
            env.c = client_for(again, namespace=env.namespace_id)  # same data dir: same namespace and bucket
            up = create_upload(env, b"moved")
            assert up["presigned_url"].startswith(again.upload_url)
            assert (
                httpx.put(up["presigned_url"], content=b"moved", headers={"Content-Type": "text/plain"}).status_code
                == 200
            )
            env.c.close()
    finally:
        blocker.close()


def test_urls_name_the_host_the_client_used(env, local_server):
    """A client that reached the API as localhost gets upload URLs on localhost."""
    c = client_for(local_server, namespace=env.namespace_id)
    c.base_url = local_server.base_url.replace("127.0.0.1", "localhost")
    r = c.post(
        f"/v1/buckets/{env.bucket_id}/uploads",
        json={"filename": "h.txt", "content_type": "text/plain", "file_size_bytes": 1},
    )
    port = urllib.parse.urlsplit(local_server.upload_url).port
    assert r.json()["presigned_url"].startswith(f"http://localhost:{port}/_local/uploads/")
    c.close()


def test_concurrent_puts_all_land_and_a_failed_record_is_a_500(env, local_server, monkeypatch):
    import concurrent.futures

    from mixpeek_magics.local.upload_sink import RECORD_SQL

    datas = [os.urandom(20_000 + i) for i in range(12)]
    ups = [create_upload(env, d, "application/octet-stream", f"t{i}.bin") for i, d in enumerate(datas)]

    def send(pair):
        up, data = pair
        return httpx.put(up["presigned_url"], content=data, headers={"Content-Type": "application/octet-stream"})

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, zip(ups, datas)))
    assert [a.status_code for a in answers] == [200] * 12
    assert [a.headers["ETag"] for a in answers] == [f'"{hashlib.md5(d).hexdigest()}"' for d in datas]
    for up, data in zip(ups, datas):
        assert confirm(env, up["upload_id"])["file_hash"] == hashlib.sha256(data).hexdigest()

    up = create_upload(env, b"lost")
    real_execute = local_server.state.store.execute

    def broken_execute(sql, *args, **kwargs):
        if sql == RECORD_SQL:
            raise RuntimeError("disk on fire")
        return real_execute(sql, *args, **kwargs)

    monkeypatch.setattr(local_server.state.store, "execute", broken_execute)
    r = httpx.put(up["presigned_url"], content=b"lost", headers={"Content-Type": "text/plain"})
    assert r.status_code == 500 and "PUT it again" in r.json()["error"]["message"]
    monkeypatch.undo()
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={})
    assert r.status_code == 400 and "no file has been uploaded" in r.json()["error"]["message"]
    r = httpx.put(up["presigned_url"], content=b"lost", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and confirm(env, up["upload_id"])["file_size_bytes"] == 4


def test_part_files_of_a_dead_server_process_are_swept_at_start(tmp_path):
    import subprocess
    import sys

    from mixpeek_magics.local.upload_sink import part_path

    with LocalServer(data_dir=tmp_path / "d", port=0) as srv:
        env = Env(srv)
        up = create_upload(env, b"kept")
        r = httpx.put(up["presigned_url"], content=b"kept", headers={"Content-Type": "text/plain"})
        assert r.status_code == 200
        uploads = srv.state.uploads_dir
        env.close()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(gone.stdout)  # that process has exited
    final = os.path.join(uploads, up["upload_id"])
    orphan = part_path(final, "1-1", pid=dead_pid)
    mine = part_path(final, "2-1")  # this process lives: as if one of its PUTs were in flight
    unrelated = os.path.join(uploads, "notes.part")
    for path in (orphan, mine, unrelated):
        with open(path, "wb") as fh:
            fh.write(b"half a body")
    with LocalServer(data_dir=tmp_path / "d", port=0) as again:
        assert not os.path.exists(orphan)
        assert os.path.exists(mine) and os.path.exists(unrelated)
        with open(final, "rb") as fh:
            assert fh.read() == b"kept"  # received uploads are untouched
        c = client_for(again, namespace=env.namespace_id)  # same data dir: same namespace and bucket
        r = c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={})
        assert r.status_code == 200 and r.json()["file_size_bytes"] == 4
        c.close()


def test_https_endpoint_with_a_test_certificate_and_put_latency(tmp_path, monkeypatch):
    """Real presigned URLs are https: the endpoint serves TLS with a certificate
    only its CA file makes trusted, and can add an S3-like round trip per PUT."""
    import ssl

    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.local import LocalSettings

    settings = LocalSettings(upload_tls=True, upload_latency_ms=60)
    with LocalServer(data_dir=tmp_path / "d", port=0, settings=settings) as srv:
        assert srv.upload_url.startswith("https://127.0.0.1:") and os.path.exists(srv.upload_ca_file)
        env = Env(srv)
        up = create_upload(env, b"secure")
        assert up["presigned_url"].startswith(srv.upload_url + "/_local/uploads/")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.put(up["presigned_url"], content=b"secure", headers={"Content-Type": "text/plain"})
        started = time.monotonic()
        r = httpx.put(
            up["presigned_url"],
            content=b"secure",
            headers={"Content-Type": "text/plain"},
            verify=ssl.create_default_context(cafile=srv.upload_ca_file),
        )
        assert r.status_code == 200 and time.monotonic() - started >= 0.06
        assert confirm(env, up["upload_id"])["file_size_bytes"] == 6
        # the product's client trusts it through SSL_CERT_FILE, verification on
        monkeypatch.setenv("SSL_CERT_FILE", srv.upload_ca_file)
        up = create_upload(env, b"via client")
        path = tmp_path / "f.txt"
        path.write_bytes(b"via client")
        with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=env.namespace_id) as c:
            etag = c.uploads.put_file(up["presigned_url"], path, "text/plain")
        assert etag == hashlib.md5(b"via client").hexdigest()
        ca = open(srv.upload_ca_file, "rb").read()
        env.close()
    with LocalServer(data_dir=tmp_path / "d", port=0, settings=settings) as again:  # the same certificate
        assert open(again.upload_ca_file, "rb").read() == ca
