"""Duplicates the local server decides: repeated idempotency keys, uploads confirmed after their
content became an object, batches submitted with objects another batch took, auto_submit."""

from __future__ import annotations

import hashlib
import threading

import httpx

from tests.local.localhelpers import b64, client_for, wait_batch, wait_task


def _object_body(text: str, key: str | None) -> dict:
    body: dict = {
        "blobs": [{"property": "content", "type": "text", "data": {"base64": b64(text.encode()), "filename": "k.txt"}}]
    }
    if key is not None:
        body["idempotency_key"] = key
    return body


def _count(env, bucket_id: str | None = None) -> int:
    r = env.c.post(f"/v1/buckets/{bucket_id or env.bucket_id}/objects/list", json={}, params={"limit": 1000})
    assert r.status_code == 200, r.text
    return len(r.json()["results"])


def test_a_repeated_idempotency_key_returns_the_first_object(env):
    url = f"/v1/buckets/{env.bucket_id}/objects"
    first = env.c.post(url, json=_object_body("first try", "key-1"))
    assert first.status_code == 200, first.text
    again = env.c.post(url, json=_object_body("first try", "key-1"))  # a retry whose first answer was lost
    assert again.status_code == 200, again.text
    assert again.json()["object_id"] == first.json()["object_id"]
    assert "idempotency_key" not in again.json()  # not an ObjectResponse field
    other = env.c.post(url, json=_object_body("first try", "key-2"))
    assert other.json()["object_id"] != first.json()["object_id"]
    no_key = [env.c.post(url, json=_object_body("first try", None)).json()["object_id"] for _ in range(2)]
    assert len(set(no_key)) == 2  # without a key every create makes an object
    assert _count(env) == 4
    # the batch create takes the key per object; a retried call makes nothing new
    many = {"objects": [_object_body("a", "many-a"), _object_body("b", "many-b")]}
    made = env.c.post(f"{url}/batch", json=many).json()["succeeded"]
    again = env.c.post(f"{url}/batch", json=many).json()["succeeded"]
    assert [o["object_id"] for o in again] == [o["object_id"] for o in made]
    assert _count(env) == 6


def test_idempotency_keys_are_per_bucket_and_organization(env, local_server):
    key = "shared-key"
    mine = env.c.post(f"/v1/buckets/{env.bucket_id}/objects", json=_object_body("x", key)).json()["object_id"]
    r = env.c.post("/v1/buckets", json={"bucket_name": "second", "bucket_schema": {"properties": {}}})
    second = r.json()["bucket_id"]
    there = env.c.post(f"/v1/buckets/{second}/objects", json=_object_body("x", key)).json()["object_id"]
    assert there != mine and _count(env, second) == 1
    other_key = local_server.create_organization("other")
    with client_for(local_server, other_key) as root:
        ns = root.post("/v1/namespaces", json={"namespace_name": "theirs"}).json()["namespace_id"]
    with client_for(local_server, other_key, namespace=ns) as c:
        b = c.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": {"properties": {}}}).json()
        theirs = c.post(f"/v1/buckets/{b['bucket_id']}/objects", json=_object_body("x", key)).json()["object_id"]
    assert theirs not in (mine, there)
    # a deleted object frees its key
    env.c.delete(f"/v1/buckets/{env.bucket_id}/objects/{mine}")
    fresh = env.c.post(f"/v1/buckets/{env.bucket_id}/objects", json=_object_body("x", key)).json()["object_id"]
    assert fresh != mine


def test_concurrent_creates_with_one_key_make_one_object(env, local_server):
    url = f"/v1/buckets/{env.bucket_id}/objects"
    barrier = threading.Barrier(6)
    ids: list[str] = []

    def create() -> None:
        with client_for(local_server, namespace=env.namespace_id) as c:
            barrier.wait()
            r = c.post(url, json=_object_body("raced", "race-key"))
            assert r.status_code == 200, r.text
            ids.append(r.json()["object_id"])

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 6 and len(set(ids)) == 1
    assert _count(env) == 1


def _upload(env, data: bytes, name: str) -> dict:
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads",
        json={"filename": name, "content_type": "text/plain", "file_hash": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["presigned_url"], up
    put = httpx.put(up["presigned_url"], content=data, headers={"Content-Type": "text/plain"}, timeout=30)
    assert put.status_code == 200, put.text
    return up


def test_an_upload_confirmed_after_its_content_became_an_object_is_a_duplicate(env):
    data = b"the same bytes, uploaded twice at once\n"
    first, second = _upload(env, data, "one.txt"), _upload(env, data, "two.txt")  # neither confirmed yet
    confirmations = [{"upload_id": u["upload_id"]} for u in (first, second)]
    done = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/confirm/batch", json={"confirmations": confirmations})
    wait_task(env.c, done.json()["task_id"])
    ids = [first["upload_id"], second["upload_id"]]
    listed = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/list",
        json={"filters": {"AND": [{"field": "upload_id", "operator": "in", "value": ids}]}},
    ).json()["results"]
    a, b = sorted(listed, key=lambda u: ids.index(u["upload_id"]))
    assert a["status"] == "COMPLETED" and a["is_duplicate"] is False and a["object_id"]
    assert b["status"] == "COMPLETED" and b["is_duplicate"] is True
    assert b["existing_object_id"] == a["object_id"] and b["duplicate_of_upload_id"] == a["upload_id"]
    assert _count(env) == 1
    # a single confirm of an upload created before the others were confirmed: the same on the upload
    third = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads", json={"filename": "three.txt", "content_type": "text/plain"}
    ).json()
    httpx.put(third["presigned_url"], content=data, headers={"Content-Type": "text/plain"}, timeout=30)
    conf = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{third['upload_id']}/confirm", json={}).json()
    assert conf["object_id"] == a["object_id"]
    got = env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{third['upload_id']}").json()
    assert got["is_duplicate"] is True and got["existing_object_id"] == a["object_id"]
    assert _count(env) == 1


def test_a_submit_leaves_out_objects_already_processed(env, local_server):
    x = env.text_obj("processed first", "x.txt")["object_id"]
    y = env.text_obj("not yet processed", "y.txt")["object_id"]
    first, task = env.submit([x])
    wait_task(env.c, task["task_id"])
    second, task2 = env.submit([x, y])
    done = wait_batch(env.c, env.bucket_id, second["batch_id"])
    assert done["object_ids"] == [x, y] and done["loaded_object_ids"] == [y]
    assert "1 already processed" in done["status_message"]
    assert task2["additional_data"]["object_count"] == 1
    # a batch asking for it processes it again
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/batches", json={"object_ids": [x], "dedup_strategy": "force", "auto_submit": True}
    )
    assert r.status_code == 200, r.text
    forced = r.json()
    assert forced["dedup_strategy"] == "force" and forced["task_id"] and forced["status"] == "PENDING"
    assert wait_batch(env.c, env.bucket_id, forced["batch_id"])["loaded_object_ids"] == [x]
    # an object another batch is still processing has no documents yet: `skip` does not cover it
    local_server.update_settings(pace_seconds=0.3)
    z = env.text_obj("slow", "z.txt")["object_id"]
    slow, _ = env.submit([z])
    wait_batch(env.c, env.bucket_id, slow["batch_id"], until=frozenset({"PROCESSING"}))
    racing, racing_task = env.submit([z])
    assert racing_task["additional_data"]["object_count"] == 1
    local_server.update_settings(pace_seconds=0.0)
    assert wait_batch(env.c, env.bucket_id, slow["batch_id"])["loaded_object_ids"] == [z]
    assert wait_batch(env.c, env.bucket_id, racing["batch_id"])["loaded_object_ids"] == [z]


def test_a_collection_without_the_objects_documents_processes_them_again(env, local_server):
    from mixpeek_magics.client import Mixpeek

    x = env.text_obj("lighthouse keepers", "x.txt")["object_id"]
    _, task = env.submit([x])
    wait_task(env.c, task["task_id"])
    with Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url, namespace=env.namespace_id) as c:
        c.collections.create("late", env.bucket_id, "text_extractor")
    first, task = env.submit([x])  # the new collection has no documents of x: processed for it
    batch = wait_batch(env.c, env.bucket_id, first["batch_id"])
    assert batch["loaded_object_ids"] == [x] and batch.get("dedup_audit") is None
    again, _ = env.submit([x])  # now it has: skipped, and the audit says so per collection
    batch = wait_batch(env.c, env.bucket_id, again["batch_id"])
    assert batch["loaded_object_ids"] == []
    [(cid, audit)] = batch["dedup_audit"].items()
    assert cid.startswith("col_") and audit["skipped_object_ids"] == [x] and audit["processed"] == 0


def test_auto_submit_in_the_query_or_the_body(env):
    a = env.text_obj("a", "a.txt")["object_id"]
    b = env.text_obj("b", "b.txt")["object_id"]
    url = f"/v1/buckets/{env.bucket_id}/batches"
    by_query = env.c.post(url, json={"object_ids": [a]}, params={"auto_submit": "true"}).json()
    assert by_query["status"] == "PENDING" and by_query["task_id"]
    by_alias = env.c.post(url, json={"object_ids": [b], "trigger_processing": True}).json()
    assert by_alias["status"] == "PENDING" and by_alias["task_id"]
    query_wins = env.c.post(url, json={"object_ids": [b], "auto_submit": True}, params={"auto_submit": "false"})
    assert query_wins.json()["status"] == "DRAFT" and query_wins.json()["task_id"] is None
    for batch in (by_query, by_alias):
        assert wait_batch(env.c, env.bucket_id, batch["batch_id"])["status"] == "COMPLETED"
