"""Happy paths of every local-server route, over real HTTP."""

from __future__ import annotations

import httpx

from tests.local.localhelpers import assert_error, b64, client_for, png_bytes, validation_errors, wait_batch, wait_task


def test_health_needs_no_key(local_server):
    r = httpx.get(local_server.base_url + "/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "OK"
    assert set(body["data"]) >= {"cache", "metadata", "vector_store", "object_storage", "task_queue", "inference"}
    assert all(body["data"][k] is True for k in ("metadata", "task_queue", "object_storage"))


def test_organization_get_and_patch(local_server):
    c = client_for(local_server)
    org = c.get("/v1/organizations").json()
    assert org["organization_id"].startswith("org_")
    for field in ("organization_name", "account_type", "credit_count", "rate_limits", "created_at", "updated_at"):
        assert field in org
    r = c.patch("/v1/organizations", json={"organization_name": "renamed", "metadata": {"team": "x"}})
    assert r.status_code == 200
    assert c.get("/v1/organizations").json()["organization_name"] == "renamed"
    assert c.get("/v1/organizations").json()["metadata"] == {"team": "x"}


def test_namespace_crud_and_list(local_server):
    c = client_for(local_server)
    created = []
    for i in range(5):
        r = c.post(
            "/v1/namespaces",
            json={
                "namespace_name": f"ns{i}",
                "description": f"description number {i}",
                "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
            },
        )
        assert r.status_code == 200, r.text
        ns = r.json()
        assert ns["namespace_id"].startswith("ns_")
        assert ns["feature_extractors"][0]["feature_extractor_id"] == "text_extractor_v1"
        created.append(ns["namespace_id"])
    r = c.post("/v1/namespaces", json={"namespace_name": "ns0", "feature_extractors": []})
    assert_error(r, 409, "already exists")
    # get by id and by name
    assert c.get(f"/v1/namespaces/{created[1]}").json()["namespace_name"] == "ns1"
    assert c.get("/v1/namespaces/ns2").json()["namespace_id"] == created[2]
    # list with cursor pagination: every namespace exactly once
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "include_total": "true"}
        if cursor:
            params["cursor"] = cursor
        page = c.post("/v1/namespaces/list", params=params, json={}).json()
        assert page["total_count"] == 5 and page["pagination"]["total"] == 5
        seen += [n["namespace_id"] for n in page["results"]]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(created) and len(seen) == 5
    # filters and search
    r = c.post("/v1/namespaces/list", json={"filters": {"namespace_name": "ns3"}}).json()
    assert [n["namespace_id"] for n in r["results"]] == [created[3]]
    r = c.post("/v1/namespaces/list", json={"search": "NUMBER 4"}).json()
    assert [n["namespace_name"] for n in r["results"]] == ["ns4"]
    # update, patch, delete
    r = c.put(f"/v1/namespaces/{created[0]}", json={"namespace_name": "renamed0"})
    assert r.status_code == 200 and r.json()["namespace_name"] == "renamed0"
    r = c.patch("/v1/namespaces/renamed0", json={"description": "new description"})
    assert r.json()["description"] == "new description" and r.json()["namespace_name"] == "renamed0"
    r = c.delete("/v1/namespaces/renamed0")
    assert r.status_code == 200
    task = c.get(f"/v1/tasks/{r.json()['task_id']}").json()
    assert task["task_type"] == "api_namespaces_delete" and task["status"] == "COMPLETED"
    assert_error(c.get(f"/v1/namespaces/{created[0]}"), 404, "not found")


def test_bucket_crud_counts(env):
    c, bid = env.c, env.bucket_id
    b = c.get(f"/v1/buckets/{bid}").json()
    assert b["bucket_name"] == "files" and b["object_count"] == 0 and b["total_size_bytes"] == 0
    assert b["bucket_schema"]["properties"]["image"]["type"] == "image"
    assert c.get("/v1/buckets/files").json()["bucket_id"] == bid
    o1 = env.text_obj("hello")
    env.text_obj("abc", "b.txt")
    b = c.get(f"/v1/buckets/{bid}").json()
    assert b["object_count"] == 2 and b["total_size_bytes"] == 8
    assert b["last_upload_at"] is not None
    c.delete(f"/v1/buckets/{bid}/objects/{o1['object_id']}")
    b = c.get(f"/v1/buckets/{bid}").json()
    assert b["object_count"] == 1 and b["total_size_bytes"] == 3
    r = c.put(f"/v1/buckets/{bid}", json={"description": "desc", "metadata": {"k": 1}})
    assert r.json()["description"] == "desc" and r.json()["metadata"] == {"k": 1}
    r = c.patch(f"/v1/buckets/{bid}", json={"bucket_name": "renamed"})
    assert r.json()["bucket_name"] == "renamed"
    # a second bucket with its own schema; list with body pagination
    # the contract's type enum is lower case: the real service refuses other spellings
    r = c.post(
        "/v1/buckets", json={"bucket_name": "second", "bucket_schema": {"properties": {"video": {"type": "VIDEO"}}}}
    )
    assert validation_errors(r)[0]["loc"][-1] == "type"
    r = c.post(
        "/v1/buckets", json={"bucket_name": "second", "bucket_schema": {"properties": {"video": {"type": "video"}}}}
    )
    assert r.status_code == 200 and r.json()["bucket_schema"]["properties"]["video"]["type"] == "video"
    assert "namespace_id" not in r.json()  # not a BucketResponse field
    page = c.post("/v1/buckets/list", json={"limit": 1}).json()
    assert page["total_count"] == 2 and len(page["results"]) == 1 and page["pagination"]["next_cursor"]
    page2 = c.post("/v1/buckets/list", params={"cursor": page["pagination"]["next_cursor"], "limit": 1}, json={}).json()
    assert {page["results"][0]["bucket_id"], page2["results"][0]["bucket_id"]} == {bid, r.json()["bucket_id"]}
    assert c.post("/v1/buckets/list", json={"search": "SEC"}).json()["total_count"] == 1
    # bad schema type -> 422
    r = c.post("/v1/buckets", json={"bucket_name": "bad", "bucket_schema": {"properties": {"x": {"type": "hologram"}}}})
    assert validation_errors(r)[0]["loc"][0] == "body"
    # delete
    r = c.delete(f"/v1/buckets/{bid}")
    assert r.status_code == 200 and r.json()["object_count"] == 1
    assert c.get(f"/v1/tasks/{r.json()['task_id']}").json()["task_type"] == "api_buckets_delete"
    assert_error(c.get(f"/v1/buckets/{bid}"), 404)


def test_object_create_formats_and_list(env, local_server):
    c, bid = env.c, env.bucket_id
    png = png_bytes()
    forms = [
        {"property": "image", "type": "image", "data": "data:image/png;base64," + b64(png)},
        {
            "property": "image",
            "type": "image",
            "data": {"base64": b64(png), "mime_type": "image/png", "filename": "a.png"},
        },
        {"property": "content", "type": "text", "data": "plain inline text"},
        {"property": "file", "type": "text", "data": "https://example.invalid/docs/readme.txt"},
        {"property": "file", "type": "pdf", "data": "s3://bucket/key/report.pdf"},
        {"property": "file", "type": "text", "data": {"url": "http://127.0.0.1:9/x.txt"}},
    ]
    ids = []
    for i, blob in enumerate(forms):
        r = c.post(f"/v1/buckets/{bid}/objects", json={"blobs": [blob], "metadata": {"i": i, "kind": f"k{i % 2}"}})
        assert r.status_code == 200, r.text
        o = r.json()
        # a new object is PENDING (not processed yet), as the contract describes ObjectResponse.status
        assert o["object_id"].startswith("obj_") and o["bucket_id"] == bid and o["status"] == "PENDING"
        assert o["blobs"][0]["blob_id"].startswith("blob_")
        ids.append(o["object_id"])
    o = c.get(f"/v1/buckets/{bid}/objects/{ids[1]}").json()
    assert o["blobs"][0]["details"] == {
        "filename": "a.png",
        "size_bytes": len(png),
        "mime_type": "image/png",
        "hash": __import__("hashlib").sha256(png).hexdigest(),
    }
    assert c.get(f"/v1/buckets/{bid}/objects/{ids[3]}").json()["blobs"][0]["details"]["filename"] == "readme.txt"
    # invalid data forms
    for bad in ("not a url", {"nothing": 1}, "ftp://host/file"):
        r = c.post(f"/v1/buckets/{bid}/objects", json={"blobs": [{"property": "image", "type": "image", "data": bad}]})
        assert_error(r, 400)
    r = c.post(
        f"/v1/buckets/{bid}/objects",
        json={"blobs": [{"property": "image", "type": "image", "data": {"base64": "!!!notbase64"}}]},
    )
    assert_error(r, 400, "base64")
    # list: filters, pagination, select
    page = c.post(f"/v1/buckets/{bid}/objects/list", params={"limit": 4, "include_total": True}, json={}).json()
    assert page["pagination"]["total"] == 6 and len(page["results"]) == 4
    rest = c.post(
        f"/v1/buckets/{bid}/objects/list", params={"cursor": page["pagination"]["next_cursor"]}, json={}
    ).json()
    assert [x["object_id"] for x in page["results"] + rest["results"]] == ids
    assert rest["pagination"]["next_cursor"] is None
    r = c.post(
        f"/v1/buckets/{bid}/objects/list",
        json={
            "filters": {
                "AND": [
                    {"field": "metadata.kind", "operator": "eq", "value": "k1"},
                    {"field": "metadata.i", "operator": "gte", "value": 3},
                ]
            }
        },
    )
    assert [x["object_id"] for x in r.json()["results"]] == [ids[3], ids[5]]
    r = c.post(f"/v1/buckets/{bid}/objects/list", json={"filters": {"metadata.i": 2}, "select": ["metadata.i"]})
    assert r.json()["results"] == [{"object_id": ids[2], "bucket_id": bid, "metadata": {"i": 2}}]
    # update / patch
    r = c.patch(f"/v1/buckets/{bid}/objects/{ids[0]}", json={"key_prefix": "folder/sub", "metadata": {"extra": True}})
    assert r.status_code == 200 and r.json()["key_prefix"] == "folder/sub" and r.json()["metadata"]["extra"] is True
    assert r.json()["metadata"]["i"] == 0
    r = c.put(f"/v1/buckets/{bid}/objects/{ids[0]}", json={"metadata": {"i": 100}})
    assert r.json()["metadata"]["i"] == 100
    assert c.delete(f"/v1/buckets/{bid}/objects/{ids[0]}").status_code == 204
    assert_error(c.get(f"/v1/buckets/{bid}/objects/{ids[0]}"), 404)


def test_object_skip_duplicates(env):
    c, bid = env.c, env.bucket_id
    first = env.text_obj("same bytes", "one.txt")
    blob = {"property": "content", "type": "text", "data": {"base64": b64(b"same bytes"), "filename": "two.txt"}}
    r = c.post(f"/v1/buckets/{bid}/objects", json={"blobs": [blob], "skip_duplicates": True})
    assert r.status_code == 200
    assert r.json()["object_id"] == first["object_id"] and r.json()["is_duplicate"] is True
    r = c.post(f"/v1/buckets/{bid}/objects", json={"blobs": [blob], "skip_duplicates": False})
    assert r.json()["object_id"] != first["object_id"]
    assert c.get(f"/v1/buckets/{bid}").json()["object_count"] == 2


def test_objects_batch_partial_success(env):
    c, bid = env.c, env.bucket_id
    objs = [
        {"blobs": [{"property": "content", "type": "text", "data": "one"}]},
        {"blobs": [{"property": "content", "type": "text", "data": {"base64": b64(b"x"), "filename": "../evil"}}]},
        {"blobs": [{"property": "content", "type": "text"}]},  # no data
        {"blobs": [{"property": "content", "type": "text", "data": "two"}]},
    ]
    r = c.post(f"/v1/buckets/{bid}/objects/batch", json={"objects": objs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_requested"] == 4 and body["succeeded_count"] == 2 and body["failed_count"] == 2
    assert [f["object_index"] for f in body["failed"]] == [1, 2]
    assert ".." in body["failed"][0]["error"] and "data" in body["failed"][1]["error"]


def test_objects_batch_auto_process(env):
    c, bid = env.c, env.bucket_id
    objs = [{"blobs": [{"property": "content", "type": "text", "data": f"text number {i}"}]} for i in range(3)]
    r = c.post(f"/v1/buckets/{bid}/objects/batch", params={"auto_process": True}, json={"objects": objs})
    assert r.status_code == 200, r.text
    ids = [o["object_id"] for o in r.json()["succeeded"]]
    # the answer names no task: the batch that processes the objects is found by listing batches
    [batch] = c.post(f"/v1/buckets/{bid}/batches/list", json={}).json()["results"]
    assert batch["object_ids"] == ids
    batch = wait_batch(c, bid, batch["batch_id"])
    assert batch["status"] == "COMPLETED" and batch["failed_object_count"] == 0 and batch["progress"] is None
    task = wait_task(c, batch["task_id"])
    assert task["status"] == "COMPLETED" and task["additional_data"]["object_count"] == 3
    st = {o["status"] for o in c.post(f"/v1/buckets/{bid}/objects/list", json={}).json()["results"]}
    assert st == {"COMPLETED"}


def test_batch_routes(env):
    c, bid = env.c, env.bucket_id
    o1, o2 = env.text_obj("a b c"), env.text_obj("d e", "d.txt")
    b = env.batch([o1["object_id"]], metadata={"provenance": {"source": "test"}})
    assert b["batch_id"].startswith("btch_") and b["status"] == "DRAFT" and b["bucket_id"] == bid
    assert_error(c.post(f"/v1/buckets/{bid}/batches", json={"object_ids": ["obj_missing"]}), 400, "obj_missing")
    r = c.post(f"/v1/buckets/{bid}/batches/{b['batch_id']}/objects", json={"object_ids": [o2["object_id"]]})
    assert r.json()["object_ids"] == [o1["object_id"], o2["object_id"]]
    r = c.patch(f"/v1/buckets/{bid}/batches/{b['batch_id']}", json={"metadata": {"note": "n"}})
    assert r.json()["metadata"] == {"provenance": {"source": "test"}, "note": "n"}
    r = c.post(f"/v1/buckets/{bid}/batches/{b['batch_id']}/submit")
    task = r.json()
    assert task["task_type"] == "api_buckets_batches_process" and task["status"] in (
        "PENDING",
        "PROCESSING",
        "COMPLETED",
    )
    task = wait_task(c, task["task_id"])
    assert task["status"] == "COMPLETED"
    # a batch task's additional_data holds the documented keys only; the rest is on the batch
    ad = task["additional_data"]
    assert ad == {
        "batch_id": b["batch_id"],
        "bucket_id": bid,
        "namespace_id": env.namespace_id,
        "current_tier": 0,
        "total_tiers": 1,
        "collection_ids": [],
        "object_count": 2,
        "sample_object_ids": [o1["object_id"], o2["object_id"]],
    }
    assert task["outputs"] == [o1["object_id"], o2["object_id"]] and task["queue_position"] is None
    got = c.get(f"/v1/buckets/{bid}/batches/{b['batch_id']}").json()
    assert got["status"] == "COMPLETED" and got["task_id"] == task["task_id"]
    assert got["metadata"]["provenance"] == {"source": "test"}
    assert got["progress"] is None and got["failed_object_count"] == 0 and not got["failed_objects"]
    assert got["status_message"] == "Completed: 2 object(s) processed" and got["lifecycle"] == "indexed"
    assert got["tier_tasks"][0]["status"] == "COMPLETED" and got["tier_tasks"][0]["tier_num"] == 0
    assert got["tier_tasks"][0]["collection_ids"] is None  # v0.82: null or at least one
    assert (got["max_node_death_resubmits"], got["max_deploy_resubmits"]) == (3, 3)
    # the same batch by id alone, and across buckets
    assert c.get(f"/v1/batches/{b['batch_id']}").json() == got
    assert [x["batch_id"] for x in c.post("/v1/batches/list", json={"status": "COMPLETED"}).json()["results"]] == [
        b["batch_id"]
    ]
    assert_error(c.post(f"/v1/buckets/{bid}/batches/{b['batch_id']}/submit"), 409, "already submitted")
    assert_error(
        c.post(f"/v1/buckets/{bid}/batches/{b['batch_id']}/objects", json={"object_ids": [o1["object_id"]]}),
        409,
        "DRAFT",
    )
    env.batch([o2["object_id"]])
    lst = c.post(f"/v1/buckets/{bid}/batches/list", json={"limit": 1}).json()
    assert lst["total_count"] == 2 and len(lst["results"]) == 1
    assert c.post(f"/v1/buckets/{bid}/batches/list", json={"status": "COMPLETED"}).json()["total_count"] == 1
    assert validation_errors(c.post(f"/v1/buckets/{bid}/batches/list", json={"status": "completed"}))
    assert validation_errors(c.post(f"/v1/buckets/{bid}/batches", json={"object_ids": []}))[0]["type"] == "too_short"
    draft = env.batch([o2["object_id"]])
    assert draft["status_message"] == "Draft: 1 object(s), not submitted yet" and draft["progress"] is None
    assert c.delete(f"/v1/buckets/{bid}/batches/{draft['batch_id']}").json()["success"] is True
    assert_error(c.get(f"/v1/buckets/{bid}/batches/{draft['batch_id']}"), 404)


def test_unknown_route_uses_error_shape(local_server):
    r = client_for(local_server).get("/v1/does-not-exist")
    assert_error(r, 404)
