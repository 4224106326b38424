"""Helpers for the local server tests: plain httpx clients, namespace + bucket setup."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx


def client_for(srv, key: str | None = None, namespace: str | None = None, **kw: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or srv.api_key}"}
    if namespace:
        headers["X-Namespace"] = namespace
    return httpx.Client(base_url=srv.base_url, headers=headers, timeout=30.0, **kw)


def wait_task(
    client: httpx.Client,
    task_id: str,
    timeout: float = 15.0,
    until: frozenset[str] = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"}),
):
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        task = r.json()
        if task["status"] in until:
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {task['status']} after {timeout}s: {task}")
        time.sleep(0.02)


TERMINAL = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"})


def wait_batch(
    client: httpx.Client, bucket_id: str, batch_id: str, timeout: float = 15.0, until: frozenset[str] = TERMINAL
) -> dict:
    """Poll GET batch (BatchModel) until its status is in ``until``; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/buckets/{bucket_id}/batches/{batch_id}")
        assert r.status_code == 200, r.text
        batch = r.json()
        if batch["status"] in until:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch['status']} after {timeout}s: {batch}")
        time.sleep(0.02)


def validation_errors(resp: httpx.Response) -> list[dict]:
    """The ``{loc, msg, type}`` problems of a 422 ErrorResponse."""
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["success"] is False and body["error"]["type"] == "ValidationError", body
    return body["error"]["details"]["errors"]


def png_bytes(size=(7, 5), color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def assert_error(resp: httpx.Response, status: int, contains: str | None = None, type: str | None = None) -> dict:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    body = resp.json()
    assert body["success"] is False
    assert body["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str) and body["error"]["type"]
    assert "details" in body["error"]
    if contains:
        assert contains.lower() in body["error"]["message"].lower(), body["error"]["message"]
    if type:
        assert body["error"]["type"] == type
    return body


class Env:
    """A server, a client for its default organization, a namespace and a bucket."""

    def __init__(self, srv):
        self.srv = srv
        self.root = client_for(srv)
        r = self.root.post("/v1/namespaces", json={"namespace_name": "test_ns", "feature_extractors": []})
        assert r.status_code == 200, r.text
        self.namespace_id = r.json()["namespace_id"]
        self.c = client_for(srv, namespace=self.namespace_id)
        r = self.c.post(
            "/v1/buckets",
            json={
                "bucket_name": "files",
                "bucket_schema": {
                    "properties": {"content": {"type": "text"}, "image": {"type": "image"}, "file": {"type": "text"}}
                },
            },
        )
        assert r.status_code == 200, r.text
        self.bucket_id = r.json()["bucket_id"]

    def obj(self, **blob: Any) -> dict:
        blob.setdefault("property", "content")
        blob.setdefault("type", "text")
        r = self.c.post(f"/v1/buckets/{self.bucket_id}/objects", json={"blobs": [blob]})
        assert r.status_code == 200, r.text
        return r.json()

    def text_obj(self, text: str, filename: str = "note.txt") -> dict:
        return self.obj(data={"base64": b64(text.encode()), "filename": filename, "mime_type": "text/plain"})

    def file_obj(self, data: bytes, filename: str, type: str = "image", prop: str = "image") -> dict:
        return self.obj(property=prop, type=type, data={"base64": b64(data), "filename": filename})

    def batch(self, object_ids: list[str], metadata: dict | None = None) -> dict:
        body: dict[str, Any] = {"object_ids": object_ids}
        if metadata is not None:
            body["metadata"] = metadata
        r = self.c.post(f"/v1/buckets/{self.bucket_id}/batches", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def submit(self, object_ids: list[str], metadata: dict | None = None) -> tuple[dict, dict]:
        b = self.batch(object_ids, metadata)
        r = self.c.post(f"/v1/buckets/{self.bucket_id}/batches/{b['batch_id']}/submit")
        assert r.status_code == 200, r.text
        return b, r.json()

    def close(self) -> None:
        self.root.close()
        self.c.close()
