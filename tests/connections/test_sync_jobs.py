"""Sync runs the contract's way, over plain HTTP: every run is a job
(``POST .../syncs/{id}/jobs``, ``GET .../jobs/{sync_job_id}`` -> SyncJobModel), the
sync points at it (``current_sync_run_id``, ``sync_run_counter``, ``sync_progress``,
``batch_ids``, ``task_ids``, ``locked``), and nothing else (no ``last_run``,
no ``failed_files``). A job ends when its batches are submitted; its tasks run on.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.connections.conftest import body_for, enable_storage, wait_until
from tests.contract.contract_schema import problems

TERMINAL = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")
JOB_FIELDS_REQUIRED = {"sync_config_id", "internal_id", "namespace_id"}


class Api:
    """A plain HTTP client of one server and namespace, with a bucket and an S3 connection."""

    def __init__(self, srv, moto):
        self.srv = srv
        self.c = httpx.Client(
            base_url=srv.base_url,
            timeout=30.0,
            headers={"Authorization": f"Bearer {srv.api_key}", "X-Namespace": "jobs-ns"},
        )
        r = self.c.post("/v1/namespaces", json={"namespace_name": "jobs-ns"})
        assert r.status_code == 200, r.text
        r = self.c.post(
            "/v1/buckets",
            json={
                "bucket_name": "media",
                "bucket_schema": {"properties": {"text": {"type": "text"}, "image": {"type": "image"}}},
            },
        )
        assert r.status_code == 200, r.text
        self.bucket = r.json()["bucket_id"]
        r = self.c.post(
            "/v1/organizations/connections",
            json={
                "name": f"s3-{uuid.uuid4().hex[:6]}",
                "provider_type": "s3",
                "provider_config": moto.provider_config(),
            },
        )
        assert r.status_code == 200, r.text
        self.connection_id = r.json()["connection_id"]

    def ok(self, r: httpx.Response, schema: str | None = None) -> dict:
        assert r.status_code == 200, r.text
        body = r.json()
        if schema is not None:
            assert problems(schema, body) == [], problems(schema, body)
        return body

    def sync(self, sid: str) -> dict:
        return self.ok(self.c.get(f"/v1/buckets/{self.bucket}/syncs/{sid}"), "SyncConfigurationModel")

    def jobs(self, sid: str, **body) -> dict:
        return self.ok(self.c.post(f"/v1/buckets/{self.bucket}/syncs/{sid}/jobs", json=body), "SyncJobListResponse")

    def job(self, sid: str, job_id: str) -> dict:
        return self.ok(self.c.get(f"/v1/buckets/{self.bucket}/syncs/{sid}/jobs/{job_id}"), "SyncJobModel")

    def wait_job(self, sid: str, job_id: str, timeout: float = 30.0) -> dict:
        return wait_until(
            lambda: (lambda j: j if j["status"] != "running" else None)(self.job(sid, job_id)),
            timeout=timeout,
            what=f"job {job_id} to end",
        )

    def tasks(self, ids: list[str]) -> list[dict]:
        body = {"filters": {"AND": [{"field": "task_id", "operator": "in", "value": ids}]}}
        return self.ok(self.c.post("/v1/tasks/list", params={"limit": 1000}, json=body), "ListTasksResponse")["results"]

    def close(self) -> None:
        self.c.close()


@pytest.fixture
def paced(local_server_factory):
    # real time (no time scale): a paced object takes long enough for the tasks to outlive their run
    return enable_storage(local_server_factory(pace_seconds=0.15))


def _source(moto, n: int, prefix: str = "in/") -> tuple[str, dict[str, bytes]]:
    src = f"jobs-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    bodies = {f"{prefix}f{i}.txt": body_for(f"f{i}.txt", i) for i in range(n)}
    moto.put_objects(src, bodies)
    return src, bodies


def test_a_run_is_a_job_and_its_tasks_outlive_it(paced, moto):
    api = Api(paced, moto)
    src, bodies = _source(moto, 6)
    r = api.c.post(
        f"/v1/buckets/{api.bucket}/syncs",
        json={
            "connection_id": api.connection_id,
            "source_path": f"{src}/in",
            "sync_mode": "initial_only",
            "batch_size": 2,
        },
    )
    created = api.ok(r, "SyncConfigurationModel")
    sid = created["sync_config_id"]
    assert created["locked"] is False and created["sync_run_counter"] == 0
    assert "last_run" not in created and "failed_files" not in created
    # the first run is a job from the start (queued, then running)
    [job] = api.jobs(sid)["results"]
    assert job["trigger"] == "scheduled" and set(job) >= JOB_FIELDS_REQUIRED
    job = api.wait_job(sid, job["sync_job_id"])
    sync = api.sync(sid)
    tasks_at_job_end = api.tasks(sync["task_ids"])
    # the job is over once the batches are submitted; their tasks still run
    assert job["status"] == "completed" and job["error"] is None and job["phase"] is None
    assert (job["total_files"], job["files_synced"], job["files_failed"], job["files_verified"]) == (6, 6, 0, 0)
    assert job["progress_percent"] == 100.0 and job["started_at"] and job["completed_at"]
    assert job["metadata"]["task_ids"] == sync["task_ids"] and job["metadata"]["batch_ids"] == sync["batch_ids"]
    assert any(t["status"] not in TERMINAL for t in tasks_at_job_end), tasks_at_job_end
    # the sync points at its run
    assert sync["current_sync_run_id"] == job["sync_job_id"] and sync["sync_run_counter"] == 1
    assert sync["locked"] is False and sync["locked_by_worker_id"] is None
    assert len(sync["batch_ids"]) == len(sync["task_ids"]) == sync["batches_created"] == 3
    assert sync["sync_progress"]["sync_job_id"] == job["sync_job_id"]
    assert sync["sync_progress"]["status"] == "completed" and sync["sync_progress"]["task_ids"] == sync["task_ids"]
    assert sync["status"] == "COMPLETED" and sync["last_sync_at"] and sync["next_sync_at"] is None
    assert sync["stats"]["last_run_objects_discovered"] == 6 and sync["stats"]["total_runs_completed"] == 1
    # a client that sees every task end sees the sync's final totals in the same read
    done = wait_until(
        lambda: (lambda ts: ts if all(t["status"] in TERMINAL for t in ts) else None)(api.tasks(sync["task_ids"])),
        timeout=30,
        what="the run's tasks",
    )
    assert {t["status"] for t in done} == {"COMPLETED"}
    final = api.sync(sid)
    assert final["total_files_synced"] == 6 and final["total_files_failed"] == 0
    assert final["total_bytes_synced"] == sum(len(b) for b in bodies.values())
    assert final["total_files_discovered"] == 6
    # the job is the same by id and in the list; an unknown job is 404
    assert api.job(sid, job["sync_job_id"])["files_synced"] == 6
    r = api.c.get(f"/v1/buckets/{api.bucket}/syncs/{sid}/jobs/sjob_nope")
    assert r.status_code == 404 and r.json()["success"] is False
    api.close()


def test_trigger_answers_the_job_and_a_rerun_verifies_unchanged_files(server, moto):
    api = Api(server, moto)
    src, _ = _source(moto, 3)
    sid = api.ok(
        api.c.post(
            f"/v1/buckets/{api.bucket}/syncs",
            json={"connection_id": api.connection_id, "source_path": f"{src}/in", "sync_mode": "initial_only"},
        )
    )["sync_config_id"]
    first = api.jobs(sid)["results"][0]
    api.wait_job(sid, first["sync_job_id"])
    r = api.c.post(f"/v1/buckets/{api.bucket}/syncs/{sid}/trigger")
    trig = api.ok(r)
    assert trig["status"] == "QUEUED" and trig["sync_job_id"] and "run_id" not in trig
    job = api.wait_job(sid, trig["sync_job_id"])
    assert job["trigger"] == "manual" and job["status"] == "completed"
    assert (job["total_files"], job["files_synced"], job["files_verified"]) == (3, 0, 3)
    assert job["progress_percent"] == 100.0 and job["metadata"]["task_ids"] == []
    sync = api.sync(sid)
    assert sync["current_sync_run_id"] == trig["sync_job_id"] and sync["sync_run_counter"] == 2
    assert len(sync["task_ids"]) == 1  # the first run's; the second found nothing new
    listed = api.jobs(sid)
    assert [j["sync_job_id"] for j in listed["results"]] == [trig["sync_job_id"], first["sync_job_id"]]
    assert listed["total"] == 2
    assert len(api.jobs(sid, status="completed")["results"]) == 2 and api.jobs(sid, status="failed")["results"] == []
    r = api.c.post(f"/v1/buckets/{api.bucket}/syncs/{sid}/jobs", json={"status": "COMPLETED"})
    assert r.status_code == 422  # SyncJobStatus is lower case
    # pausing refuses triggers; deleting the sync removes its jobs
    api.ok(api.c.post(f"/v1/buckets/{api.bucket}/syncs/{sid}/pause"))
    assert api.c.post(f"/v1/buckets/{api.bucket}/syncs/{sid}/trigger").status_code == 409
    assert api.c.delete(f"/v1/buckets/{api.bucket}/syncs/{sid}").status_code == 200
    assert api.c.get(f"/v1/buckets/{api.bucket}/syncs/{sid}/jobs/{first['sync_job_id']}").status_code == 404
    api.close()


def test_files_that_fail_processing_are_failed_in_their_job_and_batch(server, moto):
    server.update_settings(fail_filenames=["f1.txt"])
    api = Api(server, moto)
    src, _ = _source(moto, 4)
    sid = api.ok(
        api.c.post(
            f"/v1/buckets/{api.bucket}/syncs",
            json={
                "connection_id": api.connection_id,
                "source_path": f"{src}/in",
                "sync_mode": "initial_only",
                "batch_size": 10,
            },
        )
    )["sync_config_id"]
    job_id = api.jobs(sid)["results"][0]["sync_job_id"]
    api.wait_job(sid, job_id)
    sync = api.sync(sid)
    [task] = wait_until(
        lambda: (lambda ts: ts if all(t["status"] in TERMINAL for t in ts) else None)(api.tasks(sync["task_ids"])),
        timeout=30,
        what="the run's task",
    )
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    sync = api.sync(sid)
    assert (sync["total_files_synced"], sync["total_files_failed"]) == (3, 1)
    job = api.job(sid, job_id)
    assert (job["files_synced"], job["files_failed"], job["total_files"]) == (3, 1, 4)
    batch = api.ok(api.c.get(f"/v1/buckets/{api.bucket}/batches/{sync['batch_ids'][0]}"), "BatchModel")
    [failed] = batch["failed_objects"]
    assert "injected failure" in failed["error"] and batch["failed_object_count"] == 1
    obj = api.ok(api.c.get(f"/v1/buckets/{api.bucket}/objects/{failed['object_id']}"))
    assert obj["blobs"][0]["details"]["filename"] == "f1.txt"
    api.close()


def test_a_restart_interrupts_the_running_job_and_runs_again(local_server_factory, tmp_path, moto):
    data_dir = tmp_path / "jobs-restart"
    srv = enable_storage(local_server_factory(data_dir=data_dir, time_scale=0.01))
    api = Api(srv, moto)
    src, _ = _source(moto, 2)
    sid = api.ok(
        api.c.post(
            f"/v1/buckets/{api.bucket}/syncs",
            json={"connection_id": api.connection_id, "source_path": f"{src}/in", "polling_interval_seconds": 30},
        )
    )["sync_config_id"]
    first = api.jobs(sid)["results"][-1]["sync_job_id"]
    api.wait_job(sid, first)
    bucket = api.bucket
    api.close()
    # a run that was going on when the server stopped: its job says so after the restart
    from mixpeek_magics.local.db import dumps, loads

    store = srv.state.store
    doc = loads(store.one("SELECT doc FROM sync_configs WHERE sync_config_id=?", (sid,))["doc"])
    job = loads(store.one("SELECT doc FROM sync_jobs WHERE sync_job_id=?", (first,))["doc"])
    runner = srv.state.sync_runner
    runner.stop()  # no scheduler: the rows below stay as written
    job.update(status="running", phase="discovering", completed_at=None)
    doc.update(locked_by_worker_id="local-gone", current_sync_run_id=first)
    store.execute("UPDATE sync_jobs SET doc=?, status='running' WHERE sync_job_id=?", (dumps(job), first))
    store.execute("UPDATE sync_configs SET doc=? WHERE sync_config_id=?", (dumps(doc), sid))
    srv.stop()
    srv2 = enable_storage(local_server_factory(data_dir=data_dir, time_scale=0.01))
    c = httpx.Client(
        base_url=srv2.base_url,
        timeout=30.0,
        headers={"Authorization": f"Bearer {srv2.api_key}", "X-Namespace": "jobs-ns"},
    )
    got = c.get(f"/v1/buckets/{bucket}/syncs/{sid}/jobs/{first}").json()
    assert got["status"] == "interrupted" and got["error"] == "interrupted by server restart"
    resumed = wait_until(
        lambda: next(
            (
                j
                for j in c.post(f"/v1/buckets/{bucket}/syncs/{sid}/jobs", json={}).json()["results"]
                if j["trigger"] == "resume" and j["status"] == "completed"
            ),
            None,
        ),
        timeout=30,
        what="a resumed run",
    )
    sync = c.get(f"/v1/buckets/{bucket}/syncs/{sid}").json()
    assert sync["locked"] is False and problems("SyncConfigurationModel", sync) == []
    assert resumed["files_verified"] == 2  # the files the interrupted run had synced are not synced again
    c.close()


def test_official_sdk_reads_syncs_jobs_batches_and_tasks(paced, moto):
    """The official SDK (v0.82 models) reads these answers with its own models."""
    from mixpeek import models

    api = Api(paced, moto)
    src, _ = _source(moto, 3)
    sync = api.ok(
        api.c.post(
            f"/v1/buckets/{api.bucket}/syncs",
            json={"connection_id": api.connection_id, "source_path": f"{src}/in", "sync_mode": "initial_only"},
        )
    )
    sid = sync["sync_config_id"]
    assert models.SyncConfigurationModel.from_dict(sync).locked is False
    job = api.jobs(sid)["results"][0]
    assert models.SyncJobModel.from_dict(job).sync_config_id == sid
    # a batch while it runs (progress) and after (failed objects, none here)
    sync = wait_until(lambda: (lambda s: s if s["batch_ids"] else None)(api.sync(sid)), what="a batch")
    batch_id = sync["batch_ids"][0]
    running = wait_until(
        lambda: (lambda b: b if b["progress"] else None)(
            api.ok(api.c.get(f"/v1/buckets/{api.bucket}/batches/{batch_id}"))
        ),
        timeout=30,
        what="batch progress",
    )
    m = models.BatchModel.from_dict(running)
    assert m.progress is not None and m.progress.total == 3 and m.max_node_death_resubmits == 3
    [task] = api.tasks(sync["task_ids"])
    assert models.TaskResponse.from_dict(task).task_id == task["task_id"]
    listed = api.ok(api.c.post("/v1/tasks/list", json={}))
    assert len(models.ListTasksResponse.from_dict(listed).results) >= 1
    api.wait_job(sid, job["sync_job_id"])
    models.SyncJobListResponse.from_dict(api.jobs(sid))
    models.SyncConfigurationModel.from_dict(api.sync(sid))
    done = wait_until(
        lambda: (lambda b: b if b["status"] in TERMINAL else None)(
            api.ok(api.c.get(f"/v1/buckets/{api.bucket}/batches/{batch_id}"))
        ),
        timeout=30,
        what="batch end",
    )
    m = models.BatchModel.from_dict(done)
    assert m.progress is None and m.failed_object_count == 0 and m.status_message
    models.ListBatchesResponse.from_dict(api.ok(api.c.post("/v1/batches/list", json={})))
    api.close()
