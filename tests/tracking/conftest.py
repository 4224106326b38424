"""Fixtures for the tracking tests: a real local server per test, a throw-away journal."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixpeek_magics.tracking import PollPolicy

# Fast, but the same shape as the documented 1 s -> 30 s policy (and batch progress read as often as ticks).
FAST = PollPolicy(initial=0.05, maximum=0.4, factor=2.0, jitter=0.1, max_wait=60, progress_interval=0.05)


@pytest.fixture(autouse=True)
def _journal_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXPEEK_JOURNAL_PATH", str(tmp_path / "journal.sqlite3"))
    yield tmp_path / "journal.sqlite3"


@pytest.fixture
def journal_path(_journal_env) -> Path:
    return _journal_env


@pytest.fixture
def server(tmp_path):
    from mixpeek_magics.local import LocalServer, LocalSettings

    srv = LocalServer(data_dir=tmp_path / "server", port=0, settings=LocalSettings()).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    from mixpeek_magics.client import Mixpeek

    c = Mixpeek(api_key=server.api_key, base_url=server.base_url, timeout=5.0)
    yield c
    c.close()


def set_status(srv, task_id: str, status: str, **kw: Any) -> None:
    assert srv.state.update_task(task_id, status=status, **kw), f"{task_id} not updated"


def wait_until(pred, timeout: float = 20.0, step: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


class Batches:
    """Real batch tasks on the local server (namespace, bucket, text objects, submit)."""

    def __init__(self, srv):
        self.srv = srv
        h = {"Authorization": f"Bearer {srv.api_key}"}
        with httpx.Client(base_url=srv.base_url, headers=h, timeout=10) as c:
            r = c.post("/v1/namespaces", json={"namespace_name": f"ns_{time.monotonic_ns()}", "feature_extractors": []})
            assert r.status_code == 200, r.text
            self.namespace_id = r.json()["namespace_id"]
            c.headers["X-Namespace"] = self.namespace_id
            r = c.post(
                "/v1/buckets",
                json={"bucket_name": "files", "bucket_schema": {"properties": {"content": {"type": "text"}}}},
            )
            assert r.status_code == 200, r.text
            self.bucket_id = r.json()["bucket_id"]
        self.objects: dict[str, str] = {}
        self.batches: dict[str, str] = {}  # task id -> batch id

    def submit(self, n_objects: int, prefix: str = "doc", names: list[str] | None = None) -> str:
        """Objects named ``{prefix}_{i}.txt`` (or ``names``) in a batch, submitted: its task id.
        ``self.objects`` maps each object id to its file name."""
        h = {"Authorization": f"Bearer {self.srv.api_key}", "X-Namespace": self.namespace_id}
        names = names or [f"{prefix}_{i}.txt" for i in range(n_objects)]
        with httpx.Client(base_url=self.srv.base_url, headers=h, timeout=10) as c:
            ids = []
            for i, name in enumerate(names):
                data = {
                    "base64": base64.b64encode(f"text {i}".encode()).decode(),
                    "filename": name,
                    "mime_type": "text/plain",
                }
                r = c.post(
                    f"/v1/buckets/{self.bucket_id}/objects",
                    json={"blobs": [{"property": "content", "type": "text", "data": data}]},
                )
                assert r.status_code == 200, r.text
                ids.append(r.json()["object_id"])
                self.objects[ids[-1]] = name
            r = c.post(f"/v1/buckets/{self.bucket_id}/batches", json={"object_ids": ids})
            assert r.status_code == 200, r.text
            batch_id = r.json()["batch_id"]
            r = c.post(f"/v1/buckets/{self.bucket_id}/batches/{batch_id}/submit")
            assert r.status_code == 200, r.text
            self.batches[r.json()["task_id"]] = batch_id
            return r.json()["task_id"]


class Recorder:
    """ObserveR: every on_update (with connection) and on_finish call."""

    def __init__(self):
        self.updates: list[tuple[dict[str, str], str]] = []
        self.finished: list[list] = []

    def on_update(self, snapshots, connection):
        self.updates.append(({s.task_id: s.status for s in snapshots}, connection))

    def on_finish(self, snapshots):
        self.finished.append(list(snapshots))

    @property
    def connections(self) -> list[str]:
        return [c for _, c in self.updates]

    def statuses_of(self, task_id: str) -> list[str]:
        out: list[str] = []
        for snap, _ in self.updates:
            st = snap.get(task_id)
            if st is not None and (not out or out[-1] != st):
                out.append(st)
        return out


@pytest.fixture(autouse=True)
def _requests_follow_the_contract(request):
    """Every API request of the test is checked against the vendored contract."""
    from tests.fixtures.request_recorder import check_fixture

    yield from check_fixture(request)
