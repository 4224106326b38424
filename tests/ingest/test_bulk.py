"""Bulk upload against the local server: real uploads, hashes, duplicates, interrupts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mixpeek_magics import _runtime
from mixpeek_magics.client import AsyncMixpeek, Mixpeek
from mixpeek_magics.ingest import abulk_upload, bulk_upload

SCHEMA = {"properties": {"file": {"type": "text"}}}


def make_files(folder: Path, n_text: int = 20, n_png: int = 5, broken: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_text):
        p = folder / f"note-{i:03d}.txt"
        p.write_text(f"note {i}\n" + "word " * (50 + i))
        paths.append(p)
    for i in range(n_png):
        p = folder / f"img-{i}.png"
        Image.new("RGB", (10 + i, 7), (i * 40, 0, 0)).save(p)
        paths.append(p)
    if broken:
        p = folder / "broken.png"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
        paths.append(p)
    return paths


def object_count(client) -> int:
    return sum(1 for _ in client.objects.iter("files"))


def test_bulk_upload_processes_every_file_and_names_the_broken_one(client, tmp_path):
    files = make_files(tmp_path / "in")
    seen = []
    result = bulk_upload(
        client,
        "files",
        files,
        concurrency=4,
        metadata={"source": "test"},
        batch_metadata={"provenance": {"cell": 1}},
        on_progress=lambda p: seen.append(p.files_done),
    )
    assert len(result.object_ids) == len(files) and not result.failures and not result.duplicates
    assert seen[-1] == len(files) and seen == sorted(seen)
    task = client.tasks.wait(result.task_id, timeout=60, poll=0.1, poll_max=0.5)
    assert task.status == "COMPLETED_WITH_ERRORS"
    assert task.batch_id == result.batch_id and task.object_count == len(files)
    # the failures are the batch's, by object id; the upload knows which file each object is
    batch = client.batches.get("files", result.batch_id)
    names = {o.object_id: Path(o.path).name for o in result.outcomes}
    assert [names[f.object_id] for f in batch.failed_objects] == ["broken.png"]
    assert batch.failed_object_count == 1 and batch.failed_objects[0].error
    assert (batch.metadata or {}).get("provenance") == {"cell": 1}
    assert object_count(client) == len(files)
    # sha256 computed client-side matches what the server measured
    import hashlib

    note = next(o for o in result.outcomes if o.path.endswith("note-000.txt"))
    assert note.sha256 == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert client.objects.get("files", note.object_id).blobs[0].details["hash"] == note.sha256


def test_rerun_skips_everything_already_ingested(client, tmp_path, local_server):
    files = make_files(tmp_path / "in", n_text=6, n_png=2, broken=False)
    first = bulk_upload(client, "files", files)
    assert len(first.object_ids) == 8
    local_server.clear_request_log()
    again = bulk_upload(client, "files", files + [tmp_path / "in" / "note-000.txt"])
    assert len(again.duplicates) >= 8 and not again.object_ids and again.task is None
    # nothing was PUT: the server said "duplicate" at create time
    assert not [r for r in local_server.request_log if r[0] == "PUT"]
    assert object_count(client) == 8


def test_missing_file_sends_nothing(client, tmp_path, local_server):
    files = make_files(tmp_path / "in", n_text=2, n_png=0, broken=False)
    local_server.clear_request_log()
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        bulk_upload(client, "files", files + [tmp_path / "nope.txt"])
    assert local_server.request_log == []


def test_sync_helper_works_inside_a_running_event_loop(client, tmp_path):
    # A notebook cell runs inside the kernel's loop: the sync API must not nest loops.
    files = make_files(tmp_path / "in", n_text=3, n_png=0, broken=False)

    async def cell():
        return bulk_upload(client, "files", files)

    assert len(asyncio.run(cell()).object_ids) == 3


def test_interrupt_during_upload_leaves_no_object_and_rerun_completes(client, tmp_path, local_server):
    files = make_files(tmp_path / "in", n_text=30, n_png=0, broken=False)
    local_server.update_settings(latency_ms=300)

    async def run():
        async with AsyncMixpeek(config=client.config) as ac:
            return await abulk_upload(ac, "files", files, concurrency=2)

    future = _runtime.spawn(run())
    deadline = time.monotonic() + 10
    while not any(r[0] == "PUT" for r in local_server.request_log):
        assert time.monotonic() < deadline, "no PUT started"
        time.sleep(0.05)
    future.cancel()
    time.sleep(1.5)  # the shielded clean-up finishes
    assert object_count(client) == 0
    local_server.update_settings(latency_ms=0)
    result = bulk_upload(client, "files", files)
    assert len(result.object_ids) == 30
    assert object_count(client) == 30


def test_a_confirmation_the_server_refuses_is_reported_from_the_upload(client, tmp_path, local_server):
    """What became of each file is read on its upload (status, object_id, message), not
    in the confirm task's outputs."""
    files = make_files(tmp_path / "in", n_text=3, n_png=0, broken=False)

    class WrongEtag:  # PUTs the bytes, then reports a wrong ETag for one file
        def __init__(self, real):
            self.real, self.uploads = real, self

        def put_files(self, jobs, concurrency=16, cancel=None):
            tags = self.real.uploads.put_files(jobs, concurrency=concurrency, cancel=cancel)
            return [
                "0" * 32 if str(path).endswith("note-001.txt") else tag for (_url, path, _type), tag in zip(jobs, tags)
            ]

    local_server.clear_request_log()
    result = bulk_upload(client, "files", files, submit=False, put_client=WrongEtag(client))
    by_name = {Path(o.path).name: o for o in result.outcomes}
    assert by_name["note-001.txt"].status == "failed" and "etag" in by_name["note-001.txt"].error.lower()
    assert {n: o.status for n, o in by_name.items() if n != "note-001.txt"} == {
        "note-000.txt": "uploaded",
        "note-002.txt": "uploaded",
    }
    assert all(o.object_id for o in result.outcomes if o.status == "uploaded")
    lists = [p for m, p in local_server.request_log if m == "POST" and p.endswith("/uploads/list")]
    # one filtered list beside the wait for the confirm task, one more if it came before the task ended
    assert 1 <= len(lists) <= 2
    assert not [p for m, p in local_server.request_log if m == "GET" and "/uploads/" in p]


def test_chunks_start_small_then_use_the_api_limit():
    from mixpeek_magics.ingest.bulk import CHUNK, RAMP, _ramped_chunks

    items = list(range(500))
    sizes = [len(c) for c in _ramped_chunks(items, CHUNK)]
    assert sizes[: len(RAMP)] == list(RAMP) and max(sizes) == CHUNK
    assert [x for c in _ramped_chunks(items, CHUNK) for x in c] == items  # each once, in order
    assert [len(c) for c in _ramped_chunks(list(range(10)), CHUNK)] == [10]
    assert [len(c) for c in _ramped_chunks(list(range(20)), CHUNK)] == [RAMP[0], 20 - RAMP[0]]
    assert list(_ramped_chunks([], CHUNK)) == []
    assert [len(c) for c in _ramped_chunks(list(range(7)), 3)] == [3, 3, 1]  # the ramp never exceeds the limit


def test_sync_bulk_upload_makes_every_call_through_the_callers_client(client, tmp_path, local_server):
    import httpx

    seen = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request):
            seen.append((request.method, request.url.path))
            return super().handle_request(request)

    more = make_files(tmp_path / "more", n_text=3, n_png=0, broken=False)
    for p in more:
        p.write_text(p.read_text() + "other bytes")
    with Mixpeek(config=client.config, transport=Recording()) as recorded:
        result = bulk_upload(recorded, "files", more)
        assert len(result.object_ids) == 3 and result.task_id
    assert [m for m, path in seen if path.startswith("/_local/uploads/")] == ["PUT"] * 3
    # every API call went through the caller's client too (no client of its own)
    paths = [path for _, path in seen]
    for wanted in ("/uploads/batch", "/uploads/confirm/batch", "/uploads/list", "/batches", "/submit"):
        assert any(path.endswith(wanted) for path in paths), (wanted, paths)
    assert any(path.startswith("/v1/tasks/") for path in paths)  # the confirm task, waited for


def test_clients_share_one_tls_context_per_trust_setting(monkeypatch):
    """httpx loads the CA bundle (~20 ms) for every client; helpers that open
    clients per call (bulk_upload opens one) share one context instead."""
    import ssl

    import certifi

    from mixpeek_magics.client import _client

    a = Mixpeek(api_key="sk_test_x", base_url="http://127.0.0.1:9")
    b = AsyncMixpeek(api_key="sk_test_x", base_url="http://127.0.0.1:9")
    ctx = _client._ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert a._http._transport._pool._ssl_context is ctx is b._http._transport._pool._ssl_context
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # another trust setting: another context
    c = Mixpeek(api_key="sk_test_x", base_url="http://127.0.0.1:9")
    assert c._http._transport._pool._ssl_context is _client._ssl_context() is not ctx
    a.close()
    c.close()
    _runtime.run(b.aclose())


def test_select_sees_each_chunk_hashed_and_drops_files_before_their_uploads(client, tmp_path, local_server):
    """``select`` gets every chunk's files with their sha256; those it drops get no upload
    and leave the progress totals."""
    import hashlib

    files = make_files(tmp_path / "in", n_text=40, n_png=0, broken=False)
    drop = {str(p) for p in files[::3]}
    seen: list[list[str]] = []
    totals = []

    def select(specs):
        assert all(s.sha256 == hashlib.sha256(s.path.read_bytes()).hexdigest() for s in specs)
        seen.append([str(s.path) for s in specs])
        return [s for s in specs if str(s.path) not in drop]

    local_server.clear_request_log()
    result = bulk_upload(
        client, "files", files, submit=False, select=select, on_progress=lambda p: totals.append(p.files_total)
    )
    assert [p for chunk in seen for p in chunk] == [str(p) for p in files]  # each file once, in order
    assert len(seen) > 1  # chunk by chunk, not all at once
    assert sorted(o.path for o in result.outcomes) == sorted(str(p) for p in files if str(p) not in drop)
    assert all(o.status == "uploaded" for o in result.outcomes)
    assert totals[-1] == len(files) - len(drop) and result.outcomes
    assert len([1 for m, p in local_server.request_log if m == "PUT"]) == len(files) - len(drop)
    assert object_count(client) == len(files) - len(drop)


def test_a_confirm_whose_uploads_settled_is_not_waited_for(client, tmp_path, local_server):
    """The uploads are read beside the wait for the confirm task: at 400 ms a call, a chunk is
    create + confirm + one read (3 round trips), not create + confirm + task + read (4)."""
    files = make_files(tmp_path / "in", n_text=3, n_png=0, broken=False)
    bulk_upload(client, "files", files[:1], submit=False)  # connections warm
    local_server.update_settings(latency_ms=400)
    started = time.monotonic()
    result = bulk_upload(client, "files", files[1:], submit=False)
    elapsed = time.monotonic() - started
    local_server.update_settings(latency_ms=0)
    assert [o.status for o in result.outcomes] == ["uploaded", "uploaded"] and all(result.object_ids)
    assert 1.2 <= elapsed < 1.55, elapsed


def test_a_chunk_being_confirmed_leaves_its_slot_to_the_next(client, tmp_path, local_server):
    """Chunks hold one of the three slots only while they are prepared and PUT: with the
    fourth chunk's create waiting for a slot, it goes out before the first chunk's confirm
    has come back."""
    from mixpeek_magics.ingest.bulk import RAMP

    n = sum(RAMP) + 100 + 5  # chunks of 16, 48, 100 and 5
    files = make_files(tmp_path / "in", n_text=n, n_png=0, broken=False)
    local_server.update_settings(latency_ms=300)
    local_server.clear_request_log()
    result = bulk_upload(client, "files", files, submit=False)
    local_server.update_settings(latency_ms=0)
    assert len(result.object_ids) == n
    log = [(m, p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1]) for m, p in local_server.request_log]
    creates = [i for i, r in enumerate(log) if r == ("POST", "uploads/batch")]
    lists = [i for i, r in enumerate(log) if r == ("POST", "uploads/list")]
    assert len(creates) == 4
    # the first chunk's uploads are read once its confirm came back: the fourth create went out before
    assert creates[3] < lists[0], log


class _TaskStatusLags(httpx.BaseTransport):
    """Real HTTP to the local server, except that the first ``lies`` reads of a task say it is
    still PROCESSING (a service whose task status trails its uploads)."""

    def __init__(self, lies: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.lies = lies
        self.task_reads: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "GET" and request.url.path.startswith("/v1/tasks/"):
            self.task_reads.append(time.monotonic())
            if len(self.task_reads) <= self.lies:
                body = json.loads(response.read())
                body["status"] = "PROCESSING"
                return httpx.Response(response.status_code, headers={"content-type": "application/json"}, json=body)
        return response


def test_a_dropped_wait_for_a_confirm_task_stops_polling(local_server, tmp_path):
    """The uploads were settled at the first read, so the wait for the confirm task is dropped: on a
    sync client it runs on a thread, and must stop at its next poll, not poll on until the task ends."""
    files = make_files(tmp_path / "in", n_text=3, n_png=0, broken=False)
    lagging = _TaskStatusLags(lies=40)
    with Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url, transport=lagging) as c:
        ns = c.namespaces.create("lag", feature_extractors=[])
        c = c.with_options(namespace=ns.namespace_id)
        c.buckets.create("files", bucket_schema=SCHEMA)
        result = bulk_upload(c, "files", files, submit=False)
        assert [o.status for o in result.outcomes] == ["uploaded"] * 3
        returned = time.monotonic()
        time.sleep(1.5)  # a wait still polling would read the task every 0.25 s meanwhile
        after = [t for t in lagging.task_reads if t > returned + 0.5]
        assert not after, f"{len(after)} task reads after the upload returned"
