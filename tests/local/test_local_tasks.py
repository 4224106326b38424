"""Task listing: filters (LogicalOperator), keyset pagination, validation, speed."""

from __future__ import annotations

import time

import pytest

from tests.local.localhelpers import assert_error, client_for, validation_errors, wait_task


def all_pages(c, body=None, limit=1000, **params):
    ids, cursor, pages = [], None, 0
    while True:
        q = {"limit": limit, **params}
        if cursor:
            q["cursor"] = cursor
        r = c.post("/v1/tasks/list", params=q, json=body or {})
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [t["task_id"] for t in page["results"]]
        pages += 1
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            return ids, pages


def test_cursor_pagination_over_2500_tasks(local_server):
    seeded = local_server.seed_tasks(2500)
    assert len(seeded) == len(set(seeded)) == 2500
    c = client_for(local_server)
    ids, pages = all_pages(c, limit=1000)
    assert pages == 3 and len(ids) == 2500 and set(ids) == set(seeded)  # each id exactly once
    assert ids == list(reversed(seeded))  # newest first
    ids, pages = all_pages(c, limit=333)
    assert pages == 8 and len(ids) == len(set(ids)) == 2500
    page = c.post("/v1/tasks/list", params={"limit": 10, "include_total": True}, json={}).json()
    assert page["pagination"]["total"] == 2500 and page["pagination"]["total_pages"] == 250
    assert page["pagination"]["page"] == 1 and page["pagination"]["page_size"] == 10
    # offset pagination too
    p2 = c.post("/v1/tasks/list", params={"limit": 10, "offset": 10}, json={}).json()
    assert [t["task_id"] for t in p2["results"]] == list(reversed(seeded))[10:20]
    # a cursor only works for the query it came from
    cur = page["pagination"]["next_cursor"]
    assert_error(c.post("/v1/tasks/list", params={"cursor": cur}, json={"status": "FAILED"}), 400, "cursor")
    assert_error(c.post("/v1/tasks/list", params={"cursor": "garbage!!"}, json={}), 400, "cursor")


def test_pagination_with_status_filter_is_consistent(local_server):
    local_server.seed_tasks(1200, statuses=["COMPLETED", "FAILED", "PENDING"])
    c = client_for(local_server)
    ids, _ = all_pages(c, body={"status": "FAILED"}, limit=150)
    assert len(ids) == len(set(ids)) == 400
    page = c.post("/v1/tasks/list", params={"include_total": True, "limit": 1}, json={"status": "FAILED"}).json()
    assert page["pagination"]["total"] == 400 and page["results"][0]["status"] == "FAILED"
    # ListTasksRequest.status is one TaskStatusEnum value, spelled as the contract spells it
    for bad in ("failed", ["FAILED", "CANCELED"], "DONE"):
        [err] = validation_errors(c.post("/v1/tasks/list", json={"status": bad}))
        assert err["loc"] == ["body", "status"] and err["type"] == "enum"


@pytest.mark.parametrize("params", [{"limit": 5000}, {"limit": 0}, {"offset": 10001}, {"offset": -1}, {"limit": "abc"}])
def test_invalid_list_params_are_422(local_server, params):
    r = client_for(local_server).post("/v1/tasks/list", params=params, json={})
    assert r.status_code == 422
    detail = r.json()["error"]["details"]["errors"]
    assert detail[0]["loc"][0] == "query" and detail[0]["loc"][1] in params
    assert isinstance(detail[0]["msg"], str) and isinstance(detail[0]["type"], str)


def test_invalid_filters_are_422(local_server):
    c = client_for(local_server)
    r = c.post("/v1/tasks/list", json={"filters": {"AND": [{"field": "status", "operator": "like", "value": "x"}]}})
    assert r.status_code == 422 and "unknown operator" in r.json()["error"]["details"]["errors"][0]["msg"]
    r = c.post("/v1/tasks/list", json={"filters": {"AND": [{"field": "secret_column", "value": "x"}]}})
    assert r.status_code == 422 and "cannot filter" in r.json()["error"]["details"]["errors"][0]["msg"]
    r = c.post("/v1/tasks/list", json={"filters": {"AND": [{"field": "task_id", "operator": "in", "value": "x"}]}})
    assert r.status_code == 422 and "list" in r.json()["error"]["details"]["errors"][0]["msg"]


def test_task_filters(env, local_server):
    c = env.root
    seeded = local_server.seed_tasks(
        30, statuses=["COMPLETED", "FAILED", "CANCELED"], task_type="api_buckets_uploads_batch_confirm"
    )
    o = env.text_obj("x")
    b, task = env.submit([o["object_id"]], metadata={"provenance": {"cell": 7, "user": "Ada"}})
    wait_task(c, task["task_id"])
    # seeded tasks: additional_data.object_count is the index; the batch task's is 1

    def ids(body):
        r = c.post("/v1/tasks/list", params={"limit": 1000}, json=body)
        assert r.status_code == 200, r.text
        return [t["task_id"] for t in r.json()["results"]]

    pick = [seeded[3], seeded[7], task["task_id"], "task_not_there"]
    assert set(ids({"filters": {"AND": [{"field": "task_id", "operator": "in", "value": pick}]}})) == set(pick[:3])
    assert len(ids({"filters": {"AND": [{"field": "task_id", "operator": "nin", "value": pick}]}})) == 28
    assert set(ids({"status": "FAILED"})) == set(seeded[1::3])
    assert set(
        ids({"filters": {"AND": [{"field": "status", "operator": "in", "value": ["FAILED", "CANCELED"]}]}})
    ) == set(seeded[1::3]) | set(seeded[2::3])
    assert ids({"task_type": "api_buckets_batches_process"}) == [task["task_id"]]
    assert len(ids({"task_type": "api_buckets_uploads_batch_confirm"})) == 30
    assert ids(
        {"filters": {"AND": [{"field": "additional_data.batch_id", "operator": "eq", "value": b["batch_id"]}]}}
    ) == [task["task_id"]]
    assert ids({"filters": {"additional_data.object_count": 7}}) == [seeded[7]]
    assert ids(
        {"filters": {"AND": [{"field": "additional_data.bucket_id", "operator": "eq", "value": env.bucket_id.upper()}]}}
    ) == [task["task_id"]]
    assert (
        ids(
            {
                "filters": {
                    "case_sensitive": True,
                    "AND": [{"field": "additional_data.bucket_id", "operator": "eq", "value": env.bucket_id.upper()}],
                }
            }
        )
        == []
    )
    assert ids({"filters": {"AND": [{"field": "additional_data.batch_id", "operator": "exists", "value": True}]}}) == [
        task["task_id"]
    ]
    assert (
        len(ids({"filters": {"AND": [{"field": "additional_data.batch_id", "operator": "exists", "value": False}]}}))
        == 30
    )
    assert ids(
        {
            "filters": {
                "OR": [
                    {"field": "task_id", "operator": "eq", "value": seeded[0]},
                    {"field": "task_id", "operator": "eq", "value": seeded[1]},
                ]
            }
        }
    ) == [seeded[1], seeded[0]]
    not_completed = ids({"filters": {"NOT": [{"field": "status", "operator": "eq", "value": "COMPLETED"}]}})
    assert set(not_completed) == set(seeded[1::3]) | set(seeded[2::3])
    assert set(
        ids({"filters": {"AND": [{"field": "task_id", "operator": "starts_with", "value": seeded[5][:12]}]}})
    ) >= {seeded[5]}
    assert ids(
        {
            "filters": {
                "AND": [{"field": "additional_data.sample_object_ids", "operator": "contains", "value": o["object_id"]}]
            }
        }
    ) == [task["task_id"]]
    assert (
        len(ids({"filters": {"AND": [{"field": "additional_data.object_count", "operator": "gte", "value": 25}]}})) == 5
    )
    assert (
        len(
            ids(
                {
                    "filters": {
                        "AND": [
                            {"field": "additional_data.object_count", "operator": "lt", "value": 3},
                            {"field": "status", "operator": "ne", "value": "COMPLETED"},
                        ]
                    }
                }
            )
        )
        == 2
    )
    nested = {
        "OR": [
            {
                "AND": [
                    {"field": "status", "operator": "eq", "value": "FAILED"},
                    {"field": "additional_data.object_count", "operator": "lte", "value": 4},
                ]
            },
            {"field": "task_id", "operator": "eq", "value": task["task_id"]},
        ]
    }
    assert set(ids({"filters": nested})) == {seeded[1], seeded[4], task["task_id"]}
    assert ids({"filters": {"AND": [{"field": "task_type", "operator": "regex", "value": "^api_buckets_b"}]}}) == [
        task["task_id"]
    ]


def test_get_task_and_404(local_server):
    c = client_for(local_server)
    tid = local_server.seed_tasks(1, statuses=["FAILED"])[0]
    t = c.get(f"/v1/tasks/{tid}").json()
    assert set(t) == {
        "task_id",
        "task_type",
        "status",
        "inputs",
        "outputs",
        "additional_data",
        "error",
        "queue_position",
    }
    assert t["status"] == "FAILED" and t["error"]
    assert_error(c.get("/v1/tasks/task_nope"), 404, "not found")


def test_page_of_1000_is_fast_with_100k_tasks(local_server):
    # the server's own speed: the test-time check of every answer against its schema is off
    local_server.update_settings(contract_check=False)
    started = time.perf_counter()
    local_server.seed_tasks(100_000)
    seed_time = time.perf_counter() - started
    assert seed_time < 20
    c = client_for(local_server)
    c.post("/v1/tasks/list", params={"limit": 1000}, json={})  # warm up
    page = c.post("/v1/tasks/list", params={"limit": 1000}, json={}).json()
    cursor = page["pagination"]["next_cursor"]
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        r = c.post("/v1/tasks/list", params={"limit": 1000, "cursor": cursor}, json={})
        timings.append(time.perf_counter() - t0)
        assert r.status_code == 200 and len(r.json()["results"]) == 1000
        cursor = r.json()["pagination"]["next_cursor"]
    assert min(timings) < 0.1, timings
    # deep into the table the keyset query stays fast too (the best of three: a collection of the
    # test process's garbage, which the in-process server shares, can land on any one of them)
    deep = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = c.post(
            "/v1/tasks/list",
            params={"limit": 1000},
            json={"filters": {"AND": [{"field": "status", "operator": "eq", "value": "FAILED"}]}},
        )
        deep.append(time.perf_counter() - t0)
        assert r.status_code == 200 and len(r.json()["results"]) == 1000
    assert min(deep) < 0.5, deep


def test_task_ttl_expires_task_records_and_the_batch_keeps_everything(env, local_server):
    """With task_ttl_seconds, a task older than that is gone from GET, list and kill
    (404), as the real service's records are after about 24 h; its batch still answers."""
    c = env.c
    o = env.text_obj("kept by the batch")
    b, task = env.submit([o["object_id"]])
    wait_task(c, task["task_id"])
    local_server.update_settings(task_ttl_seconds=3600)
    assert c.get(f"/v1/tasks/{task['task_id']}").status_code == 200  # younger than the TTL
    local_server.advance_clock(3601)
    assert_error(c.get(f"/v1/tasks/{task['task_id']}"), 404, task["task_id"], "NotFoundError")
    listed = c.post("/v1/tasks/list", params={"include_total": True}, json={}).json()
    assert task["task_id"] not in [t["task_id"] for t in listed["results"]] and listed["pagination"]["total"] == 0
    assert (
        c.post(
            "/v1/tasks/list",
            json={"filters": {"AND": [{"field": "task_id", "operator": "in", "value": [task["task_id"]]}]}},
        ).json()["results"]
        == []
    )
    assert_error(c.delete(f"/v1/tasks/{task['task_id']}"), 404)
    # the batch keeps what its task did
    batch = c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()
    assert batch["task_id"] == task["task_id"] and batch["status"] == "COMPLETED"
    assert batch["tier_tasks"][0]["task_id"] == task["task_id"] and batch["failed_object_count"] == 0
    # a task created now is visible until it is as old
    _, fresh = env.submit([env.text_obj("new", "new.txt")["object_id"]])
    assert wait_task(c, fresh["task_id"])["status"] == "COMPLETED"
    assert [t["task_id"] for t in c.post("/v1/tasks/list", json={}).json()["results"]] == [fresh["task_id"]]
    # records are kept: without a TTL the old task answers again
    local_server.update_settings(task_ttl_seconds=None)
    assert c.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "COMPLETED"


def test_queue_position_of_waiting_tasks(local_server_factory):
    from tests.local.localhelpers import Env

    srv = local_server_factory(workers=1, pace_seconds=30)
    env = Env(srv)
    try:
        ids = [env.text_obj(f"t{i}", f"t{i}.txt")["object_id"] for i in range(3)]
        tasks = [env.submit([oid])[1] for oid in ids]
        running = wait_task(env.c, tasks[0]["task_id"], until=frozenset({"PROCESSING"}))
        assert running["queue_position"] is None
        # one worker, busy: the others wait, 1-based, in the order they came
        waiting = [env.c.get(f"/v1/tasks/{t['task_id']}").json() for t in tasks[1:]]
        assert [(t["status"], t["queue_position"]) for t in waiting] == [("PENDING", 1), ("PENDING", 2)]
        listed = {t["task_id"]: t["queue_position"] for t in env.c.post("/v1/tasks/list", json={}).json()["results"]}
        assert listed == {tasks[0]["task_id"]: None, tasks[1]["task_id"]: 1, tasks[2]["task_id"]: 2}
        # a finished task leaves the queue: the next one starts, the last moves up
        env.c.delete(f"/v1/tasks/{tasks[0]['task_id']}")
        second = wait_task(env.c, tasks[1]["task_id"], until=frozenset({"PROCESSING"}))
        assert second["queue_position"] is None
        assert env.c.get(f"/v1/tasks/{tasks[2]['task_id']}").json()["queue_position"] == 1
    finally:
        for t in tasks:
            env.c.delete(f"/v1/tasks/{t['task_id']}")
        env.close()
