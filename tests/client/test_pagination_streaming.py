"""Auto-pagination over thousands of tasks, unknown values from the server, streaming uploads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mixpeek_magics.client import AsyncMixpeek, Mixpeek
from mixpeek_magics.client.statuses import TaskStatus

from .conftest import collect, uid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    from mixpeek_magics.local import LocalServer

    srv = LocalServer(data_dir=tmp_path_factory.mktemp("seeded"), port=0).start()
    ids = srv.seed_tasks(2500)
    yield srv, ids
    srv.stop()


def list_requests(srv) -> int:
    return sum(1 for e in srv.request_log if e[0] == "POST" and e[1] == "/v1/tasks/list")


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("limit", [1000, 300])
async def test_iterates_2500_tasks_exactly_once(seeded, kind, limit):
    srv, seeded_ids = seeded
    cls = Mixpeek if kind == "sync" else AsyncMixpeek
    c = cls(api_key=srv.api_key, base_url=srv.base_url)
    before = list_requests(srv)
    try:
        tasks = await collect(c.tasks.iter(limit=limit))
    finally:
        if kind == "sync":
            c.close()
        else:
            await c.aclose()
    ids = [t.task_id for t in tasks]
    assert len(ids) == len(set(ids)) == 2500
    assert set(ids) == set(seeded_ids)
    assert list_requests(srv) - before == math.ceil(2500 / limit)


def test_iteration_is_lazy(seeded):
    srv, _ = seeded
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
        before = list_requests(srv)
        it = c.tasks.iter(limit=100)
        assert list_requests(srv) == before  # nothing fetched yet
        first = [next(it) for _ in range(150)]
        assert list_requests(srv) - before == 2  # two pages for 150 items
        it.close()
        assert len({t.task_id for t in first}) == 150


def test_list_page_and_status_filter(seeded):
    srv, _ = seeded
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
        page = c.tasks.list(limit=10, include_total=True)
        assert len(page) == 10 and page.next_cursor and page.total == 2500
        nxt = c.tasks.list(limit=10, cursor=page.next_cursor)
        assert not {t.task_id for t in page} & {t.task_id for t in nxt}
        failed = list(c.tasks.iter(status="FAILED", limit=1000))
        assert failed and all(t.status is TaskStatus.FAILED for t in failed)
        assert all(t.error for t in failed)
        everything = list(c.tasks.iter(limit=1000))
        assert len(failed) == sum(1 for t in everything if t.status == "FAILED")
        assert len(failed) < len(everything)


def test_unknown_status_and_type_through_the_server(tmp_path):
    import httpx

    from mixpeek_magics.local import LocalServer
    from tests.fixtures.newer_server import NewerServer

    srv = LocalServer(data_dir=tmp_path, port=0).start()
    try:
        ids = srv.seed_tasks(4, statuses=["QUEUED", "INTERRUPTED", "SKIPPED", "COMPLETED"])
        front = NewerServer(
            srv.app,
            {b'"SKIPPED"': b'"SOMETHING_NEWER"', b'"api_buckets_batches_process"': b'"api_future_kind_of_task"'},
        )
        with Mixpeek(api_key=srv.api_key, base_url="http://local.test", transport=httpx.ASGITransport(app=front)) as c:
            tasks = {t.task_id: t for t in c.tasks.iter()}
            got = [tasks[i] for i in ids]
            assert [t.status for t in got] == ["QUEUED", "INTERRUPTED", "SOMETHING_NEWER", "COMPLETED"]
            assert got[0].status is TaskStatus.QUEUED and type(got[2].status) is str
            assert all(t.task_type == "api_future_kind_of_task" for t in got)
            assert [t.is_terminal for t in got] == [False, False, False, True]
            assert got[0].object_count == 0 and got[1].object_count == 1  # a documented key (seeded: the index)
            assert c.tasks.get(ids[2]).status == "SOMETHING_NEWER"
    finally:
        srv.stop()


_STREAM_SCRIPT = textwrap.dedent("""
    import asyncio, json, os, sys, tracemalloc
    from mixpeek_magics.client import Mixpeek, AsyncMixpeek
    base, key, ns, bucket, path, kind = sys.argv[1:7]
    size = os.path.getsize(path)
    tracemalloc.start()
    if kind == "sync":
        with Mixpeek(api_key=key, base_url=base, namespace=ns) as c:
            up = c.uploads.create(bucket, "big.bin", "application/octet-stream", file_size_bytes=size)
            tracemalloc.reset_peak()
            mem0 = tracemalloc.get_traced_memory()[0]
            etag = c.uploads.put_file(up.presigned_url, path, "application/octet-stream")
            peak = tracemalloc.get_traced_memory()[1] - mem0
            res = c.uploads.confirm(bucket, up.upload_id, etag=etag, file_size_bytes=size)
    else:
        async def main():
            async with AsyncMixpeek(api_key=key, base_url=base, namespace=ns) as c:
                up = await c.uploads.create(bucket, "big.bin", "application/octet-stream", file_size_bytes=size)
                tracemalloc.reset_peak()
                mem0 = tracemalloc.get_traced_memory()[0]
                etag = await c.uploads.put_file(up.presigned_url, path, "application/octet-stream")
                peak = tracemalloc.get_traced_memory()[1] - mem0
                res = await c.uploads.confirm(bucket, up.upload_id, etag=etag, file_size_bytes=size)
                return etag, peak, res
        etag, peak, res = asyncio.run(main())
    print(json.dumps({"peak": peak, "etag": etag, "status": str(res.status), "size": size}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_put_file_streams_without_loading_the_file(kind, srv, namespace, tmp_path):
    size = 50 * 1024 * 1024
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        block = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(size // len(block)):
            fh.write(block)
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace) as c:
        bucket = c.buckets.create(uid("bkt"), {"properties": {"file": {"type": "pdf"}}}).bucket_id
    # The client runs in its own process so tracemalloc sees only the client's allocations.
    out = subprocess.run(
        [sys.executable, "-c", _STREAM_SCRIPT, srv.base_url, srv.api_key, namespace, bucket, str(path), kind],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "COMPLETED" and result["etag"]
    # the growth during the upload: a few 1 MiB chunks, nowhere near the 50 MiB file
    assert result["peak"] < 6 * 1024 * 1024, result
