"""Presigned PUTs of the sync client: each on a lane (one transport, one keep-alive
connection) borrowed from the client and given back, reused across calls."""

from __future__ import annotations

import hashlib
import socket

import pytest

from mixpeek_magics.client import Mixpeek, errors

from .conftest import uid


def _files(tmp_path, n: int) -> list:
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i}.txt"
        p.write_bytes(f"lane file {i} ".encode() * (i + 1))
        paths.append(p)
    return paths


def _uploads(c: Mixpeek, bucket: str, paths: list) -> list:
    bodies = [{"filename": p.name, "content_type": "text/plain", "file_size_bytes": p.stat().st_size} for p in paths]
    return c.uploads.create_batch(bucket, bodies).uploads


def test_put_files_reuse_a_lane_per_sender_across_calls(srv, namespace, tmp_path):
    paths = _files(tmp_path, 24)
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace) as c:
        bucket = c.buckets.create(uid("bkt"), {"properties": {"file": {"type": "text"}}}).bucket_id
        for half in (paths[:12], paths[12:]):
            ups = _uploads(c, bucket, half)
            etags = c.uploads.put_files([(u.presigned_url, p, "text/plain") for u, p in zip(ups, half)], concurrency=6)
            assert etags == [hashlib.md5(p.read_bytes()).hexdigest() for p in half]
            done = c.uploads.confirm_batch(bucket, [{"upload_id": u.upload_id, "etag": e} for u, e in zip(ups, etags)])
            assert c.tasks.wait(done.task_id, timeout=30, poll=0.01).status == "COMPLETED"
        lanes = c._put_lanes
        assert lanes is not None
        # at most one lane per sender, the second call reusing the first one's
        assert 1 <= len(lanes._every) <= 6
        assert len(lanes._idle) == len(lanes._every)  # every lane given back


def test_a_copy_shares_the_lanes_and_closing_the_original_ends_them(srv, namespace, tmp_path):
    path = _files(tmp_path, 1)[0]
    c = Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace)
    bucket = c.buckets.create(uid("bkt"), {"properties": {"file": {"type": "text"}}}).bucket_id
    copy = c.with_options(timeout=20)
    assert copy._put_lanes is c._put_lanes
    up = _uploads(c, bucket, [path])[0]
    copy.close()  # a copy's close leaves the shared connections open
    assert c.uploads.put_file(up.presigned_url, path, "text/plain") == hashlib.md5(path.read_bytes()).hexdigest()
    c.close()
    with pytest.raises(errors.ConfigurationError, match="closed"):
        copy.uploads.put_file(up.presigned_url, path, "text/plain")


def test_a_put_to_nobody_listening_is_a_connection_error(tmp_path):
    path = _files(tmp_path, 1)[0]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Mixpeek(api_key="sk_test_x", base_url="http://127.0.0.1:1", max_retry_seconds=0.3) as c:
        with pytest.raises(errors.APIConnectionError) as info:
            c.uploads.put_file(f"http://127.0.0.1:{port}/_local/uploads/x?sig=secret", path, "text/plain")
    assert "secret" not in str(info.value)  # the presigned URL's signature stays out of the message
