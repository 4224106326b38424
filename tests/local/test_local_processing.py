"""The worker really processes objects: hashes, MIME sniffing, features, failures, cancel."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from functools import partial

import pytest

from mixpeek_magics.local import ReadContext, register_blob_reader, unregister_blob_reader
from tests.local.localhelpers import assert_error, b64, png_bytes, wait_batch, wait_task


def _object(env, object_id: str) -> dict:
    r = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{object_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _details(env, object_id: str) -> dict:
    """What processing found out about an object's (first) blob: details and features."""
    blob = _object(env, object_id)["blobs"][0]
    return {**blob["details"], "features": blob["properties"].get("features")}


def test_text_png_and_broken_png(env):
    text = "hello local server\nsecond line has five words\n"
    png = png_bytes((13, 9))
    o_text = env.text_obj(text, "readme.txt")
    o_png = env.file_obj(png, "photo.png")
    o_bad = env.file_obj(b"\x89PNG\r\n\x1a\n" + b"garbage, not an image" * 5, "broken.png")
    b, task = env.submit(
        [o_text["object_id"], o_png["object_id"], o_bad["object_id"]], metadata={"provenance": {"notebook": "t.ipynb"}}
    )
    assert task["status"] in ("PENDING", "PROCESSING")
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    assert task["error"] is None
    # the task: the documented additional_data keys, the processed object ids; nothing per file
    assert set(task["additional_data"]) == {
        "batch_id",
        "bucket_id",
        "namespace_id",
        "current_tier",
        "total_tiers",
        "collection_ids",
        "object_count",
        "sample_object_ids",
    }
    assert task["additional_data"]["object_count"] == 3
    assert task["outputs"] == [o_text["object_id"], o_png["object_id"]]
    # the batch: final state, failures as FailedObjectRecords, no progress once it ended
    batch = wait_batch(env.c, env.bucket_id, b["batch_id"])
    assert batch["status"] == "COMPLETED_WITH_ERRORS" and batch["progress"] is None
    assert batch["metadata"] == {"provenance": {"notebook": "t.ipynb"}}
    assert batch["failed_object_count"] == 1 and len(batch["failed_objects"]) == 1
    failed = batch["failed_objects"][0]
    assert set(failed) == {"object_id", "error", "error_type", "timestamp"}
    assert failed["object_id"] == o_bad["object_id"] and failed["error"].startswith("cannot decode image")
    assert failed["error_type"] == "permanent" and failed["timestamp"].endswith("Z")
    assert batch["status_message"] == "Completed with errors: 1 of 3 object(s) failed"
    assert batch["tier_tasks"][0]["errors"][0]["affected_document_ids"] == [o_bad["object_id"]]
    assert batch["tier_tasks"][0]["errors"][0]["metadata"] == {"filename": "broken.png"}
    fd = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}/failed-documents").json()
    assert fd["total"] == 1 and fd["failed_documents"][0]["filename"] == "broken.png"
    # what processing found is on the objects
    t = _details(env, o_text["object_id"])
    assert t["filename"] == "readme.txt" and t["mime_type"] == "text/plain"
    assert t["size_bytes"] == len(text.encode()) and t["hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert t["features"] == {"lines": 2, "words": 8, "chars": len(text)}
    p = _details(env, o_png["object_id"])
    assert p["mime_type"] == "image/png" and p["features"]["width"] == 13 and p["features"]["height"] == 9
    assert p["hash"] == hashlib.sha256(png).hexdigest()
    bad = _object(env, o_bad["object_id"])
    assert bad["status"] == "FAILED" and "cannot decode image" in bad["error"]
    assert _object(env, o_png["object_id"])["status"] == "COMPLETED"


def test_mime_sniffing(env):
    samples = {
        "a.pdf": b"%PDF-1.4\n%binary",
        "b.zip": b"PK\x03\x04" + b"\x00" * 30,
        "c.mp4": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16,
        "d.gif": b"GIF89a" + b"\x00" * 10,
        "e.json": b'{"k": [1, 2]}',
        "noext": b"just words here",
        "f.bin": bytes(range(256)),
    }
    ids = {
        env.obj(property="file", type="text", data={"base64": b64(v), "filename": k})["object_id"]: k
        for k, v in samples.items()
        if k != "d.gif"
    }
    task = wait_task(env.c, env.submit(list(ids))[1]["task_id"])
    assert sorted(task["outputs"]) == sorted(ids)
    found = {ids[oid]: _object(env, oid)["blobs"][0] for oid in ids}
    mimes = {name: blob["details"]["mime_type"] for name, blob in found.items()}
    assert mimes == {
        "a.pdf": "application/pdf",
        "b.zip": "application/zip",
        "c.mp4": "video/mp4",
        "e.json": "application/json",
        "noext": "text/plain",
        "f.bin": "application/octet-stream",
    }
    words = {name: blob["properties"]["features"] for name, blob in found.items()}
    assert words["noext"] == {"lines": 1, "words": 3, "chars": 15}
    assert words["f.bin"] == {}


def test_all_failed_is_failed(env):
    o1 = env.file_obj(b"nope", "x.png")
    o2 = env.file_obj(b"also nope", "y.jpg")
    b, task = env.submit([o1["object_id"], o2["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "FAILED"
    assert task["error"] and "all 2 object(s) failed" in task["error"] and "x.png" in task["error"]
    assert task["additional_data"]["error"] == task["error"] and task["outputs"] == []
    batch = wait_batch(env.c, env.bucket_id, b["batch_id"])
    assert batch["status"] == "FAILED" and batch["failed_object_count"] == 2 and batch["error"] == task["error"]
    assert {f["object_id"] for f in batch["failed_objects"]} == {o1["object_id"], o2["object_id"]}
    assert batch["lifecycle"] == "failed" and batch["failure_reason"] == task["error"]


def test_fail_filenames_injection_and_retry(env, local_server):
    local_server.update_settings(fail_filenames=["*_bad.txt"])
    ok = env.text_obj("fine", "good.txt")
    bad = env.text_obj("fails on purpose", "data_bad.txt")
    b, task = env.submit([ok["object_id"], bad["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    f = wait_batch(env.c, env.bucket_id, b["batch_id"])["failed_objects"]
    assert [x["object_id"] for x in f] == [bad["object_id"]] and "injected failure" in f[0]["error"]
    # fix the cause, retry only the failed object
    local_server.update_settings(fail_filenames=[])
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}/retry", json={"retry_mode": "all"})
    assert r.status_code == 200 and r.json()["retried_count"] == 1
    task2 = wait_task(env.c, r.json()["task_id"])
    assert task2["status"] == "COMPLETED" and task2["outputs"] == [bad["object_id"]]
    batch = wait_batch(env.c, env.bucket_id, b["batch_id"])
    assert batch["task_id"] == task2["task_id"] and batch["status"] == "COMPLETED"
    assert batch["failed_object_count"] == 0 and not batch["failed_objects"] and batch["retry_count"] == 1
    assert [t["task_id"] for t in batch["tier_tasks"]] == [task2["task_id"]]


def test_progress_is_visible_with_pace(env, local_server):
    local_server.update_settings(pace_seconds=0.15, fail_filenames=["f4.txt"])
    ids = [env.text_obj(f"text {i}", f"f{i}.txt")["object_id"] for i in range(6)]
    b, task = env.submit(ids)
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
        seen.append((batch["status"], batch["progress"]))
        if batch["status"] not in ("PENDING", "PROCESSING"):
            break
        time.sleep(0.03)
    running = [p for s, p in seen if s == "PROCESSING" and p is not None]
    assert all(p is None for s, p in seen if s == "PENDING")  # null before processing starts
    steps = {p["processed"] for p in running}
    assert len(steps & {1, 2, 3, 4, 5}) >= 3, seen  # intermediate progress was observable
    mid = next(p for p in running if 0 < p["processed"] < 6)
    assert mid["total"] == 6 and mid["percent"] == round(mid["processed"] * 100 / 6, 2)
    assert mid["items_per_second"] > 0 and mid["eta_seconds"] >= 0
    late = next(p for p in running if p["processed"] == 5)
    assert (late["errors"], late["objects_failed"]) == (1, 1) and "injected failure" in late["first_error"]
    # after the end: no progress; the counts are the batch's
    status, progress = seen[-1]
    assert status == "COMPLETED_WITH_ERRORS" and progress is None
    final = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
    assert final["failed_object_count"] == 1 and len(final["loaded_object_ids"]) == 6
    assert final["failed_objects"][0]["object_id"] == ids[4]


def test_progress_refreshes_every_interval_without_pace(env, local_server):
    """Without the demo pace, progress is written every progress_refresh_seconds, not per object."""
    local_server.update_settings(progress_refresh_seconds=60.0)
    calls = []

    def slow(url: str, ctx: ReadContext):
        calls.append(url)
        time.sleep(0.05)
        return b"slow bytes"

    register_blob_reader("slowtest", slow)
    try:
        ids = [env.obj(property="file", type="text", data=f"slowtest://x/{i}.txt")["object_id"] for i in range(8)]
        b, _ = env.submit(ids)
        seen = set()
        while True:
            batch = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
            if batch["status"] not in ("PENDING", "PROCESSING"):
                break
            if batch["progress"] is not None:
                seen.add(batch["progress"]["processed"])
            time.sleep(0.01)
    finally:
        unregister_blob_reader("slowtest")
    assert len(calls) == 8 and batch["status"] == "COMPLETED" and batch["progress"] is None
    assert seen <= {0}, seen  # the first refresh would come after a minute: only the start was written


@pytest.mark.parametrize("how", ["kill", "batch_cancel"])
def test_cancel_stops_promptly(env, local_server, how):
    local_server.update_settings(pace_seconds=30)
    ids = [env.text_obj(f"t{i}", f"t{i}.txt")["object_id"] for i in range(3)]
    b, task = env.submit(ids)
    wait_task(env.c, task["task_id"], until=frozenset({"PROCESSING"}))
    started = time.monotonic()
    if how == "kill":
        r = env.c.delete(f"/v1/tasks/{task['task_id']}")
        assert r.status_code == 200 and r.json()["success"] is True
    else:
        r = env.c.post(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "CANCELED"
    t = wait_task(env.c, task["task_id"], timeout=2)
    assert t["status"] == "CANCELED" and time.monotonic() - started < 1.5
    time.sleep(0.2)
    t = env.c.get(f"/v1/tasks/{task['task_id']}").json()
    assert t["status"] == "CANCELED" and t["outputs"] == []
    batch = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
    assert batch["status"] == "CANCELED" and batch["progress"] is None and batch["lifecycle"] == "canceled"
    assert {_object(env, i)["status"] for i in ids} == {"CANCELED"}
    # kill is idempotent for a task that ended; an unknown id is 404
    assert env.c.delete(f"/v1/tasks/{task['task_id']}").status_code == 200
    assert_error(env.c.delete("/v1/tasks/task_unknown"), 404)
    assert env.c.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "CANCELED"
    # the worker is free again
    local_server.update_settings(pace_seconds=0)
    _, t2 = env.submit([env.text_obj("after", "after.txt")["object_id"]])
    assert wait_task(env.c, t2["task_id"], timeout=5)["status"] == "COMPLETED"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_url_blobs(env, file_server):
    root, base = file_server
    png = png_bytes((21, 2))
    (root / "pic.png").write_bytes(png)
    (root / "doc.txt").write_text("one two three\n")
    o1 = env.obj(property="image", type="image", data=f"{base}/pic.png")
    o2 = env.obj(property="file", type="text", data={"url": f"{base}/doc.txt"})
    o3 = env.obj(property="file", type="text", data=f"{base}/missing.txt")
    o4 = env.obj(property="file", type="pdf", data="s3://some-bucket/report.pdf")
    b, task = env.submit([o1["object_id"], o2["object_id"], o3["object_id"], o4["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["outputs"] == [o1["object_id"], o2["object_id"]]
    pic = _details(env, o1["object_id"])
    assert pic["features"]["width"] == 21 and pic["filename"] == "pic.png"
    assert pic["hash"] == hashlib.sha256(png).hexdigest()
    assert _details(env, o2["object_id"])["features"]["words"] == 3
    batch = wait_batch(env.c, env.bucket_id, b["batch_id"])
    errs = {f["object_id"]: f["error"] for f in batch["failed_objects"]}
    assert "HTTP 404" in errs[o3["object_id"]]
    # s3:// blobs are read through the organization's S3 storage connection; there is none here
    assert "no active S3 storage connection can read s3://some-bucket/" in errs[o4["object_id"]]
    size = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{o1['object_id']}").json()["blobs"][0]["details"][
        "size_bytes"
    ]
    assert size == len(png)


def test_registered_blob_reader(env):
    calls = []

    def reader(url: str, ctx: ReadContext):
        calls.append((url, ctx.bucket_id, ctx.org_id))
        return b"bytes from " + url.encode()

    register_blob_reader("memtest", reader)
    try:
        o = env.obj(property="file", type="text", data="memtest://box/item.txt")
        task = wait_task(env.c, env.submit([o["object_id"]])[1]["task_id"])
    finally:
        unregister_blob_reader("memtest")
    assert task["status"] == "COMPLETED" and task["outputs"] == [o["object_id"]]
    details = _details(env, o["object_id"])
    assert details["size_bytes"] == len(b"bytes from memtest://box/item.txt") and details["filename"] == "item.txt"
    assert calls and calls[0][0] == "memtest://box/item.txt" and calls[0][1] == env.bucket_id
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/objects",
        json={"blobs": [{"property": "file", "type": "text", "data": "memtest://again"}]},
    )
    assert r.status_code == 400 and "memtest" in r.json()["error"]["message"]


def test_deleted_object_fails_in_batch(env):
    a, b_ = env.text_obj("a", "a.txt"), env.text_obj("b", "b.txt")
    batch = env.batch([a["object_id"], b_["object_id"]])
    env.c.delete(f"/v1/buckets/{env.bucket_id}/objects/{b_['object_id']}")
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/batches/{batch['batch_id']}/submit")
    task = wait_task(env.c, r.json()["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    [failed] = wait_batch(env.c, env.bucket_id, batch["batch_id"])["failed_objects"]
    assert failed["object_id"] == b_["object_id"] and "not found" in failed["error"]
