"""The answers about batches, tasks and uploads are contract-shaped as the handlers
build them: every state of a batch (draft, queued, running, each end) validates
against its vendored schema, the official SDK reads it with its own models, and
the contract middleware had nothing to cut from them."""

from __future__ import annotations

import time

import pytest
from mixpeek import models

from tests.contract.contract_schema import problems
from tests.local.localhelpers import Env, wait_batch, wait_task

# the schemas these handlers answer with: the middleware must drop none of their fields
OWN = (
    "BatchModel",
    "BatchProgress",
    "FailedObjectRecord",
    "TierTaskInfo",
    "BatchErrorDetail",
    "TaskResponse",
    "ListBatchesResponse",
    "ListTasksResponse",
    "UploadResponse",
    "ListUploadsResponse",
    "BatchConfirmResponse",
    "ConfirmUploadResponse",
    "BlobDetails",
    "ObjectResponse",
)


def _shaped(schema: str, body: dict) -> dict:
    assert problems(schema, body) == [], (schema, problems(schema, body), body)
    return body


def _nothing_cut(srv) -> None:
    dropped = {k: v for k, v in srv.contract_stats["fields_dropped"].items() if k.split(".")[0] in OWN}
    assert dropped == {}, dropped
    assert srv.contract_stats["violations"] == []


@pytest.fixture
def one_worker(local_server_factory):
    srv = local_server_factory(workers=1, pace_seconds=0.2, fail_filenames=["*bad*"])
    env = Env(srv)
    yield srv, env
    env.close()


def test_every_state_of_a_batch_is_a_batch_model(one_worker):
    srv, env = one_worker
    c, bid = env.c, env.bucket_id
    ids = [env.text_obj(f"t{i}", f"t{i}.txt")["object_id"] for i in range(3)] + [
        env.text_obj("x", "bad.txt")["object_id"]
    ]
    draft = _shaped("BatchModel", env.batch(ids))
    assert draft["status"] == "DRAFT" and draft["lifecycle"] == "accepted" and draft["progress"] is None
    models.BatchModel.from_dict(draft)
    # a first batch (of another object: an object a batch took is left out of the next) takes the only
    # worker: the second one waits, queued
    first, first_task = env.submit([env.text_obj("other", "other.txt")["object_id"]])
    r = c.post(f"/v1/buckets/{bid}/batches/{draft['batch_id']}/submit")
    task = _shaped("TaskResponse", r.json())
    models.TaskResponse.from_dict(task)
    queued = _shaped("BatchModel", c.get(f"/v1/buckets/{bid}/batches/{draft['batch_id']}").json())
    assert queued["status"] == "PENDING" and queued["progress"] is None and queued["lifecycle"] == "queued"
    assert c.get(f"/v1/tasks/{task['task_id']}").json()["queue_position"] == 1
    running = wait_batch(c, bid, draft["batch_id"], until=frozenset({"PROCESSING"}))
    deadline = time.monotonic() + 10
    while not (running["progress"] and 0 < running["progress"]["processed"] < 4) and time.monotonic() < deadline:
        running = c.get(f"/v1/buckets/{bid}/batches/{draft['batch_id']}").json()
        time.sleep(0.02)
    _shaped("BatchModel", running)
    assert 0 < running["progress"]["processed"] < running["progress"]["total"] == 4
    assert running["status_message"].startswith("Processing ") and running["health"] == "healthy"
    assert models.BatchModel.from_dict(running).progress.processed == running["progress"]["processed"]
    done = _shaped("BatchModel", wait_batch(c, bid, draft["batch_id"]))
    assert done["status"] == "COMPLETED_WITH_ERRORS" and done["progress"] is None
    assert done["failed_object_count"] == 1 and done["failed_objects"][0]["object_id"] == ids[3]
    models.BatchModel.from_dict(done)
    # the task after the end; the batch list across buckets and in its bucket
    _shaped("TaskResponse", wait_task(c, task["task_id"]))
    _shaped("TaskResponse", wait_task(c, first_task["task_id"]))
    listed = _shaped("ListBatchesResponse", c.post("/v1/batches/list", json={"bucket_id": bid}).json())
    assert listed["total_count"] == 2 and {b["batch_id"] for b in listed["results"]} == {
        first["batch_id"],
        draft["batch_id"],
    }
    models.ListBatchesResponse.from_dict(listed)
    _shaped("ListBatchesResponse", c.post(f"/v1/buckets/{bid}/batches/list", json={"status": "PENDING"}).json())
    models.ListTasksResponse.from_dict(_shaped("ListTasksResponse", c.post("/v1/tasks/list", json={}).json()))
    _nothing_cut(srv)


def test_failed_and_canceled_batches_and_their_tasks(one_worker):
    srv, env = one_worker
    c, bid = env.c, env.bucket_id
    bad = [env.text_obj("no", f"bad{i}.txt")["object_id"] for i in range(2)]
    b, task = env.submit(bad)
    failed = _shaped("BatchModel", wait_batch(c, bid, b["batch_id"]))
    assert failed["status"] == "FAILED" and failed["failure_category"] == "pipeline" and failed["error"]
    assert failed["failed_object_count"] == 2 and failed["status_message"].startswith("Failed: all 2")
    _shaped("TaskResponse", wait_task(c, task["task_id"]))
    srv.update_settings(pace_seconds=30)
    ok = env.text_obj("slow", "slow.txt")["object_id"]
    b2, task2 = env.submit([ok])
    wait_batch(c, bid, b2["batch_id"], until=frozenset({"PROCESSING"}))
    canceled = _shaped("TaskResponse", c.post(f"/v1/batches/{b2['batch_id']}/cancel").json())
    assert canceled["status"] == "CANCELED" and canceled["cancellation"] == {
        "ray_jobs_requested": 0,
        "ray_jobs_accepted": 0,
        "ray_jobs_refused": 0,
    }
    batch = _shaped("BatchModel", c.get(f"/v1/batches/{b2['batch_id']}").json())
    assert batch["status"] == "CANCELED" and batch["progress"] is None and batch["status_message"] == "Canceled"
    models.BatchModel.from_dict(batch)
    _nothing_cut(srv)


def test_uploads_after_a_batch_confirm(local_server):
    import httpx

    env = Env(local_server)
    c = env.c
    r = c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/batch",
        json={"uploads": [{"filename": f"u{i}.txt", "content_type": "text/plain"} for i in range(3)]},
    )
    ups = r.json()["uploads"]
    for up in ups[:2]:  # the third is never PUT: its confirmation fails
        assert (
            httpx.put(
                up["presigned_url"], content=up["filename"].encode() * 3, headers={"Content-Type": "text/plain"}
            ).status_code
            == 200
        )
    r = c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/confirm/batch",
        json={"confirmations": [{"upload_id": u["upload_id"]} for u in ups]},
    )
    confirm = _shaped("BatchConfirmResponse", r.json())
    task = _shaped("TaskResponse", wait_task(c, confirm["task_id"]))
    assert task["status"] == "COMPLETED_WITH_ERRORS" and all(isinstance(o, str) for o in task["outputs"])
    page = _shaped(
        "ListUploadsResponse",
        c.post(
            f"/v1/buckets/{env.bucket_id}/uploads/list",
            json={
                "filters": {"AND": [{"field": "upload_id", "operator": "in", "value": [u["upload_id"] for u in ups]}]}
            },
        ).json(),
    )
    by_id = {u["upload_id"]: u for u in page["results"]}
    assert [by_id[u["upload_id"]]["status"] for u in ups] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert task["outputs"] == [by_id[u["upload_id"]]["object_id"] for u in ups[:2]]
    assert "no file has been uploaded" in by_id[ups[2]["upload_id"]]["message"]
    one = _shaped("UploadResponse", c.get(f"/v1/buckets/{env.bucket_id}/uploads/{ups[0]['upload_id']}").json())
    assert one["object_id"] == task["outputs"][0] and one["task_id"] == task["task_id"]
    obj = _shaped("ObjectResponse", c.get(f"/v1/buckets/{env.bucket_id}/objects/{one['object_id']}").json())
    assert obj["blobs"][0]["details"]["filename"] == "u0.txt"
    env.close()
    _nothing_cut(local_server)
