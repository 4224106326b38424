"""The worker really processes objects: hashes, MIME sniffing, features, failures, cancel."""
from __future__ import annotations

import hashlib
import http.server
import threading
import time
from functools import partial

import pytest

from mixpeek_magics.local import ReadContext, register_blob_reader, unregister_blob_reader
from tests.local.localhelpers import b64, png_bytes, wait_task


def test_text_png_and_broken_png(env):
    text = "hello local server\nsecond line has five words\n"
    png = png_bytes((13, 9))
    o_text = env.text_obj(text, "readme.txt")
    o_png = env.file_obj(png, "photo.png")
    o_bad = env.file_obj(b"\x89PNG\r\n\x1a\n" + b"garbage, not an image" * 5, "broken.png")
    b, task = env.submit([o_text["object_id"], o_png["object_id"], o_bad["object_id"]],
                         metadata={"provenance": {"notebook": "t.ipynb"}})
    assert task["status"] in ("PENDING", "PROCESSING")
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    assert task["error"] is None
    ad = task["additional_data"]
    assert (ad["processed"], ad["total"], ad["failed"], ad["percentage"]) == (3, 3, 1, 100.0)
    assert ad["metadata"] == {"provenance": {"notebook": "t.ipynb"}}
    assert len(ad["failed_objects"]) == 1
    failed = ad["failed_objects"][0]
    assert failed["object_id"] == o_bad["object_id"] and failed["filename"] == "broken.png"
    assert failed["error"].startswith("cannot decode image")
    outs = {o["object_id"]: o for o in task["outputs"]}
    t = outs[o_text["object_id"]]
    assert t["status"] == "COMPLETED" and t["filename"] == "readme.txt" and t["mime_type"] == "text/plain"
    assert t["size_bytes"] == len(text.encode()) and t["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert t["features"] == {"lines": 2, "words": 8, "chars": len(text)}
    p = outs[o_png["object_id"]]
    assert p["mime_type"] == "image/png" and p["features"]["width"] == 13 and p["features"]["height"] == 9
    assert p["sha256"] == hashlib.sha256(png).hexdigest()
    assert outs[o_bad["object_id"]]["status"] == "FAILED"
    # objects carry their own status/error; the batch mirrors the task
    bad = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{o_bad['object_id']}").json()
    assert bad["status"] == "FAILED" and "cannot decode image" in bad["error"]
    good = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{o_png['object_id']}").json()
    assert good["status"] == "COMPLETED" and good["blobs"][0]["properties"]["features"]["width"] == 13
    batch = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
    assert batch["status"] == "COMPLETED_WITH_ERRORS"
    assert batch["tier_tasks"][0]["errors"][0]["affected_document_ids"] == [o_bad["object_id"]]
    fd = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}/failed-documents").json()
    assert fd["total"] == 1 and fd["failed_documents"][0]["filename"] == "broken.png"


def test_mime_sniffing(env):
    samples = {"a.pdf": b"%PDF-1.4\n%binary", "b.zip": b"PK\x03\x04" + b"\x00" * 30,
               "c.mp4": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16, "d.gif": b"GIF89a" + b"\x00" * 10,
               "e.json": b'{"k": [1, 2]}', "noext": b"just words here", "f.bin": bytes(range(256))}
    ids = {env.obj(property="file", type="text", data={"base64": b64(v), "filename": k})["object_id"]: k
           for k, v in samples.items() if k != "d.gif"}
    task = wait_task(env.c, env.submit(list(ids))[1]["task_id"])
    mimes = {ids[o["object_id"]]: o["mime_type"] for o in task["outputs"]}
    assert mimes == {"a.pdf": "application/pdf", "b.zip": "application/zip", "c.mp4": "video/mp4",
                     "e.json": "application/json", "noext": "text/plain", "f.bin": "application/octet-stream"}
    words = {ids[o["object_id"]]: o["features"] for o in task["outputs"]}
    assert words["noext"] == {"lines": 1, "words": 3, "chars": 15}
    assert words["f.bin"] == {}


def test_all_failed_is_failed(env):
    o1 = env.file_obj(b"nope", "x.png")
    o2 = env.file_obj(b"also nope", "y.jpg")
    _, task = env.submit([o1["object_id"], o2["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "FAILED"
    assert task["error"] and "all 2 object(s) failed" in task["error"] and "x.png" in task["error"]
    assert task["additional_data"]["failed"] == 2
    assert {f["filename"] for f in task["additional_data"]["failed_objects"]} == {"x.png", "y.jpg"}


def test_fail_filenames_injection_and_retry(env, local_server):
    local_server.update_settings(fail_filenames=["*_bad.txt"])
    ok = env.text_obj("fine", "good.txt")
    bad = env.text_obj("fails on purpose", "data_bad.txt")
    b, task = env.submit([ok["object_id"], bad["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    f = task["additional_data"]["failed_objects"]
    assert [x["filename"] for x in f] == ["data_bad.txt"] and "injected failure" in f[0]["error"]
    # fix the cause, retry only the failed object
    local_server.update_settings(fail_filenames=[])
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}/retry", json={"retry_mode": "all"})
    assert r.status_code == 200 and r.json()["retried_count"] == 1
    task2 = wait_task(env.c, r.json()["task_id"])
    assert task2["status"] == "COMPLETED" and [o["object_id"] for o in task2["outputs"]] == [bad["object_id"]]
    batch = env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
    assert batch["task_id"] == task2["task_id"] and batch["status"] == "COMPLETED"


def test_progress_is_visible_with_pace(env, local_server):
    local_server.update_settings(pace_seconds=0.15)
    ids = [env.text_obj(f"text {i}", f"f{i}.txt")["object_id"] for i in range(6)]
    _, task = env.submit(ids)
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        t = env.c.get(f"/v1/tasks/{task['task_id']}").json()
        seen.add((t["status"], t["additional_data"]["processed"]))
        if t["status"] == "COMPLETED":
            break
        time.sleep(0.03)
    processing = {p for s, p in seen if s == "PROCESSING"}
    assert len(processing) >= 3, seen  # intermediate progress was observable
    assert ("COMPLETED", 6) in seen


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
    assert t["status"] == "CANCELED" and t["additional_data"]["processed"] == 0
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()["status"] == "CANCELED"
    # kill is idempotent, also for unknown ids
    assert env.c.delete(f"/v1/tasks/{task['task_id']}").status_code == 200
    assert env.c.delete("/v1/tasks/task_unknown").json()["success"] is True
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
    _, task = env.submit([o1["object_id"], o2["object_id"], o3["object_id"], o4["object_id"]])
    task = wait_task(env.c, task["task_id"])
    outs = {o["object_id"]: o for o in task["outputs"]}
    assert outs[o1["object_id"]]["features"]["width"] == 21 and outs[o1["object_id"]]["filename"] == "pic.png"
    assert outs[o1["object_id"]]["sha256"] == hashlib.sha256(png).hexdigest()
    assert outs[o2["object_id"]]["features"]["words"] == 3
    errs = {f["object_id"]: f["error"] for f in task["additional_data"]["failed_objects"]}
    assert "HTTP 404" in errs[o3["object_id"]]
    # s3:// blobs are read through the organization's S3 storage connection; there is none here
    assert "no active S3 storage connection can read s3://some-bucket/" in errs[o4["object_id"]]
    size = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{o1['object_id']}").json()["blobs"][0]["details"]["size_bytes"]
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
    assert task["status"] == "COMPLETED"
    assert task["outputs"][0]["size_bytes"] == len(b"bytes from memtest://box/item.txt")
    assert task["outputs"][0]["filename"] == "item.txt"
    assert calls and calls[0][0] == "memtest://box/item.txt" and calls[0][1] == env.bucket_id
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/objects",
                   json={"blobs": [{"property": "file", "type": "text", "data": "memtest://again"}]})
    assert r.status_code == 400 and "memtest" in r.json()["error"]["message"]


def test_deleted_object_fails_in_batch(env):
    a, b_ = env.text_obj("a", "a.txt"), env.text_obj("b", "b.txt")
    batch = env.batch([a["object_id"], b_["object_id"]])
    env.c.delete(f"/v1/buckets/{env.bucket_id}/objects/{b_['object_id']}")
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/batches/{batch['batch_id']}/submit")
    task = wait_task(env.c, r.json()["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    assert "not found" in task["additional_data"]["failed_objects"][0]["error"]
