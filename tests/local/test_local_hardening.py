"""The local server's own hardening: private files, capped request bodies, bounded body reads."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time
from urllib.parse import urlsplit

import httpx

from tests.local.localhelpers import Env, wait_batch


def test_data_dir_is_private(local_server_factory, tmp_path):
    data_dir = tmp_path / "private"
    data_dir.mkdir(mode=0o755)  # an existing, readable directory is tightened too
    os.chmod(data_dir, 0o755)
    srv = local_server_factory(data_dir=data_dir)
    env = Env(srv)
    try:
        env.text_obj("inline blob")  # a blob written by the API
        data = b"uploaded bytes\n"
        up = env.c.post(
            f"/v1/buckets/{env.bucket_id}/uploads",
            json={
                "filename": "u.txt",
                "content_type": "text/plain",
                "file_size_bytes": len(data),
                "file_hash": hashlib.sha256(data).hexdigest(),
            },
        ).json()
        assert httpx.put(up["presigned_url"], content=data, headers={"Content-Type": "text/plain"}).status_code == 200
        conf = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}).json()
        r = env.c.post(f"/v1/buckets/{env.bucket_id}/batches", json={"object_ids": [conf["object_id"]]})
        batch = r.json()["batch_id"]
        env.c.post(f"/v1/buckets/{env.bucket_id}/batches/{batch}/submit", json={})
        wait_batch(env.c, env.bucket_id, batch)
    finally:
        env.close()
    srv.stop()
    seen = {"files": 0, "db": False}
    loose: list[str] = []
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + [""]:
            path = os.path.join(root, name)
            if stat.S_IMODE(os.stat(path).st_mode) != 0o700:
                loose.append(f"{path} {oct(os.stat(path).st_mode)}")
        for name in files:
            path = os.path.join(root, name)
            seen["files"] += 1
            seen["db"] |= name.endswith((".sqlite3", ".db"))
            if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
                loose.append(f"{path} {oct(os.stat(path).st_mode)}")
    assert seen["files"] >= 3 and seen["db"], seen
    assert not loose, loose


def _raw_post(server, path: str, head: bytes, chunks) -> tuple[int, dict]:
    """POST over a raw socket, sending ``chunks`` only until the server has answered (a real
    client that keeps writing after an early 413 may meet a reset instead of the answer)."""
    import json
    import select

    parts = urlsplit(server.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as s:
        s.sendall(
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + server.api_key.encode()
            + b"\r\nContent-Type: application/json\r\n"
            + head
            + b"\r\n"
        )
        for chunk in chunks:
            if select.select([s], [], [], 0.02)[0]:
                break
            s.sendall(chunk)
        answer = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            answer += got
            header, _, body = answer.partition(b"\r\n\r\n")
            length = [
                int(v)
                for k, _, v in (ln.partition(b":") for ln in header.split(b"\r\n"))
                if k.strip().lower() == b"content-length"
            ]
            if length and len(body) >= length[0]:
                break
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.partition(b"\r\n\r\n")[2])


def test_oversized_json_body_is_refused_before_reading(local_server):
    local_server.update_settings(max_request_bytes=1024 * 1024)
    env = Env(local_server)
    try:
        path = f"/v1/buckets/{env.bucket_id}/objects"
        # a declared length over the cap: refused before the body is read (none is sent)
        status, body = _raw_post(local_server, path, b"Content-Length: 2097152\r\n", [])
        assert status == 413 and "limit" in body["error"]["message"]
        assert body["error"]["details"]["max_bytes"] == 1024 * 1024
        # chunked, with no Content-Length: refused as the bytes arrive
        chunk = b" " * 65536
        frames = [b'10\r\n{"blobs": [     \r\n'] + [b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(40)]
        status, body = _raw_post(local_server, path, b"Transfer-Encoding: chunked\r\n", frames)
        assert status == 413 and body["status"] == 413
        # nothing was stored, and a normal body still works
        listed = env.c.post(f"/v1/buckets/{env.bucket_id}/objects/list", json={}).json()
        assert listed["results"] == []
        assert env.text_obj("small")["object_id"].startswith("obj_")
    finally:
        env.close()


def test_a_stalled_body_is_cut_off(local_server):
    local_server.update_settings(body_read_timeout_seconds=1.0)
    parts = urlsplit(local_server.base_url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as s:
        s.sendall(
            b"POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + local_server.api_key.encode()
            + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"namespace_name"'
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"RequestTimeoutError"' in answer and took < 5, (took, answer)
    names = httpx.post(
        local_server.base_url + "/v1/namespaces/list",
        json={},
        headers={"Authorization": f"Bearer {local_server.api_key}"},
    ).json()["results"]
    assert names == []
