"""Every resource call, through both drivers, against the local server over HTTP."""

from __future__ import annotations

import hashlib

import pytest

from mixpeek_magics.client import AsyncMixpeek, Mixpeek, Page, errors
from mixpeek_magics.client.models import (
    Batch,
    BatchConfirmResult,
    BatchUploadResult,
    Bucket,
    BucketObject,
    ConfirmUploadResult,
    CreateObjectsBatchResult,
    Health,
    Namespace,
    Organization,
    Task,
    Upload,
)
from mixpeek_magics.client.models.common import DeleteResponse
from mixpeek_magics.client.resources.tasks import Tasks
from mixpeek_magics.client.resources.uploads import upload_body
from mixpeek_magics.client.statuses import TaskStatus

from .conftest import collect, resolve, uid

EXTRACTORS = [{"feature_extractor_name": "text_extractor", "version": "v1"}]
SCHEMA = {"properties": {"content": {"type": "text"}}}


def text_blob(text: str) -> dict:
    return {"property": "content", "type": "text", "data": text}


async def make_bucket(client) -> Bucket:
    return await resolve(client.buckets.create(uid("bkt"), SCHEMA, description="client test"))


async def test_organization_and_health(client):
    org = await resolve(client.organization.get())
    assert isinstance(org, Organization) and org.organization_id
    health = await resolve(client.health.check())
    assert isinstance(health, Health) and health.status in ("OK", "DEGRADED")


async def test_namespaces_crud_and_pagination(client):
    names = [uid("ns") for _ in range(3)]
    created = [await resolve(client.namespaces.create(n, EXTRACTORS, description="d")) for n in names]
    assert all(isinstance(ns, Namespace) and ns.namespace_id.startswith("ns") for ns in created)
    got = await resolve(client.namespaces.get(names[0]))
    assert got.namespace_id == created[0].namespace_id and got.description == "d"
    assert got.feature_extractors[0].feature_extractor_name == "text_extractor"
    by_id = await resolve(client.namespaces.get(created[1].namespace_id))
    assert by_id.namespace_name == names[1]
    page = await resolve(client.namespaces.list(limit=2))
    assert isinstance(page, Page) and len(page.items) == 2 and page.next_cursor
    everything = await collect(client.namespaces.iter(limit=2))
    ids = [ns.namespace_id for ns in everything]
    assert len(ids) == len(set(ids)) and {c.namespace_id for c in created} <= set(ids)
    await resolve(client.namespaces.delete(names[2]))
    with pytest.raises(errors.NotFoundError):
        await resolve(client.namespaces.get(names[2]))
    # CreateNamespaceRequest requires only the name: no feature_extractors key is sent
    bare = await resolve(client.namespaces.create(uid("ns")))
    assert bare.namespace_id and not bare.feature_extractors


async def test_buckets_crud_and_pagination(client):
    buckets = [await make_bucket(client) for _ in range(3)]
    assert all(isinstance(b, Bucket) and b.bucket_id for b in buckets)
    got = await resolve(client.buckets.get(buckets[0].bucket_name))
    assert got.bucket_id == buckets[0].bucket_id and got.bucket_schema["properties"]["content"]["type"] == "text"
    page = await resolve(client.buckets.list(limit=2))
    assert len(page.items) == 2 and page.total is not None and page.total >= 3
    everything = await collect(client.buckets.iter(limit=2))
    ids = [b.bucket_id for b in everything]
    assert len(ids) == len(set(ids)) and {b.bucket_id for b in buckets} <= set(ids)
    await resolve(client.buckets.delete(buckets[2].bucket_id))
    with pytest.raises(errors.NotFoundError):
        await resolve(client.buckets.get(buckets[2].bucket_id))


async def test_bare_schema_mapping_is_wrapped(client):
    b = await resolve(client.buckets.create(uid("bkt"), {"content": {"type": "text"}}))
    assert b.bucket_schema["properties"]["content"]["type"] == "text"


async def test_objects(client):
    bucket = await make_bucket(client)
    obj = await resolve(client.objects.create(bucket.bucket_id, [text_blob("hello")], key_prefix="/docs"))
    assert isinstance(obj, BucketObject) and obj.object_id and obj.blobs[0].property == "content"
    many = await resolve(
        client.objects.create_many(bucket.bucket_name, [{"blobs": [text_blob(f"t{i}")]} for i in range(5)])
    )
    assert isinstance(many, CreateObjectsBatchResult) and many.succeeded_count == 5 and not many.failed
    got = await resolve(client.objects.get(bucket.bucket_id, obj.object_id))
    assert got.object_id == obj.object_id and got.bucket_id == bucket.bucket_id
    page = await resolve(client.objects.list(bucket.bucket_id, limit=4))
    assert len(page.items) == 4 and page.next_cursor
    everything = await collect(client.objects.iter(bucket.bucket_id, limit=2))
    ids = [o.object_id for o in everything]
    assert len(ids) == 6 == len(set(ids))
    await resolve(client.objects.delete(bucket.bucket_id, obj.object_id))
    with pytest.raises(errors.NotFoundError):
        await resolve(client.objects.get(bucket.bucket_id, obj.object_id))
    with pytest.raises(ValueError):
        await resolve(client.objects.create_many(bucket.bucket_id, []))


async def test_upload_flow(client, tmp_path):
    bucket = await make_bucket(client)
    path = tmp_path / "note.txt"
    data = b"some text to upload\n" * 1000
    path.write_bytes(data)
    up = await resolve(
        client.uploads.create(
            bucket.bucket_id, "note.txt", "text/plain", file_size_bytes=len(data), metadata={"origin": "test"}
        )
    )
    assert isinstance(up, Upload) and up.presigned_url and up.upload_id
    etag = await resolve(client.uploads.put_file(up.presigned_url, path, "text/plain"))
    assert etag and '"' not in etag
    confirmed = await resolve(
        client.uploads.confirm(bucket.bucket_id, up.upload_id, etag=etag, file_size_bytes=len(data))
    )
    assert isinstance(confirmed, ConfirmUploadResult) and confirmed.status == TaskStatus.COMPLETED
    assert confirmed.object_id
    again = await resolve(client.uploads.get(bucket.bucket_id, up.upload_id))
    assert again.status == "COMPLETED" and again.file_size_bytes == len(data)
    obj = await resolve(client.objects.get(bucket.bucket_id, confirmed.object_id))
    assert obj.blobs and obj.blobs[0].details.get("hash") in (None, hashlib.sha256(data).hexdigest())

    # batch variants
    files = []
    for i in range(3):
        p = tmp_path / f"b{i}.txt"
        p.write_bytes(f"file {i}".encode())
        files.append(p)
    batch = await resolve(
        client.uploads.create_batch(
            bucket.bucket_id, [upload_body(p.name, "text/plain", file_size_bytes=p.stat().st_size) for p in files]
        )
    )
    assert isinstance(batch, BatchUploadResult) and len(batch.uploads) == 3
    confirmations = []
    for u, p in zip(batch.uploads, files):
        tag = await resolve(client.uploads.put_file(u.presigned_url, p, "text/plain"))
        confirmations.append({"upload_id": u.upload_id, "etag": tag, "file_size_bytes": p.stat().st_size})
    result = await resolve(client.uploads.confirm_batch(bucket.bucket_id, confirmations))
    assert isinstance(result, BatchConfirmResult) and result.task_id
    task = await resolve(client.tasks.wait(result.task_id, timeout=30, poll=0.05, poll_max=0.2))
    assert task.status == "COMPLETED", task
    # what became of each upload is on the uploads (UploadResponse.object_id), one filtered list
    wanted = [u.upload_id for u in batch.uploads]
    done = await resolve(
        client.uploads.list(
            bucket.bucket_id, {"AND": [{"field": "upload_id", "operator": "in", "value": wanted}]}, limit=100
        )
    )
    assert sorted(u.upload_id for u in done.items) == sorted(wanted)
    assert all(u.status == "COMPLETED" and u.object_id for u in done.items)
    page = await resolve(client.uploads.list(bucket.bucket_id, limit=2))
    assert len(page.items) == 2
    ups = await collect(client.uploads.iter(bucket.bucket_id, limit=3))
    assert len(ups) == 4 == len({u.upload_id for u in ups})


async def test_batches_and_tasks(client, srv):
    bucket = await make_bucket(client)
    objs = (
        await resolve(
            client.objects.create_many(bucket.bucket_id, [{"blobs": [text_blob(f"doc {i}")]} for i in range(4)])
        )
    ).succeeded
    ids = [o.object_id for o in objs]
    batch = await resolve(client.batches.create(bucket.bucket_id, ids[:2], metadata={"provenance": "test"}))
    assert isinstance(batch, Batch) and batch.batch_id and batch.status == "DRAFT"
    batch = await resolve(client.batches.add_objects(bucket.bucket_id, batch.batch_id, ids[2:]))
    assert sorted(batch.object_ids) == sorted(ids)
    task = await resolve(client.batches.submit(bucket.bucket_id, batch.batch_id))
    assert isinstance(task, Task) and task.task_id
    done = await resolve(client.tasks.wait(task.task_id, timeout=30, poll=0.05, poll_max=0.2))
    assert done.is_terminal and done.status == "COMPLETED", done
    assert (done.batch_id, done.bucket_id, done.object_count) == (batch.batch_id, bucket.bucket_id, 4)
    got = await resolve(client.batches.get(bucket.bucket_id, batch.batch_id))
    assert got.batch_id == batch.batch_id and got.task_id == task.task_id
    assert got.status == "COMPLETED" and not got.failed_objects and not got.failed_object_count
    page = await resolve(client.batches.list(bucket.bucket_id, limit=10))
    assert batch.batch_id in [b.batch_id for b in page.items] and page.total is not None
    # across buckets: POST /v1/batches/list, one status per call
    everywhere = await resolve(client.batches.list_all(status="COMPLETED", bucket_id=bucket.bucket_id, limit=100))
    assert batch.batch_id in [b.batch_id for b in everywhere.items]
    assert all(b.status == "COMPLETED" for b in everywhere.items)
    assert batch.batch_id not in [b.batch_id for b in await resolve(client.batches.list_all(status="FAILED"))]
    all_batches = await collect(client.batches.iter(bucket.bucket_id, limit=1))
    assert [b.batch_id for b in all_batches].count(batch.batch_id) == 1
    failed = await resolve(client.batches.failed_documents(bucket.bucket_id, batch.batch_id))
    assert isinstance(failed, dict)
    retried = await resolve(client.batches.retry(bucket.bucket_id, batch.batch_id))
    assert isinstance(retried, dict)

    # cancel: a draft has nothing to cancel; a running batch's task ends CANCELED (objects of its own: a
    # submit leaves out the objects another batch processed, the service's dedup_strategy "skip")
    fresh = [{"blobs": [text_blob(f"other {i}")]} for i in range(4)]
    made = (await resolve(client.objects.create_many(bucket.bucket_id, fresh))).succeeded
    other = await resolve(client.batches.create(bucket.bucket_id, [o.object_id for o in made]))
    with pytest.raises(errors.ConflictError):
        await resolve(client.batches.cancel(bucket.bucket_id, other.batch_id))
    srv.update_settings(pace_seconds=0.5)
    running = await resolve(client.batches.submit(bucket.bucket_id, other.batch_id))
    canceled = await resolve(client.batches.cancel(bucket.bucket_id, other.batch_id))
    srv.update_settings(pace_seconds=0.0)
    assert isinstance(canceled, Task) and canceled.task_id == running.task_id
    final = await resolve(client.tasks.wait(running.task_id, timeout=30, poll=0.05, poll_max=0.2))
    assert final.status == "CANCELED"

    # tasks: get / list with filters / iter / kill
    got_task = await resolve(client.tasks.get(task.task_id))
    assert got_task.task_id == task.task_id and got_task.status == "COMPLETED"
    completed = await resolve(client.tasks.list(status="COMPLETED", limit=1000))
    assert task.task_id in [t.task_id for t in completed] and all(t.status == "COMPLETED" for t in completed)
    typed = await resolve(client.tasks.list(task_type=done.task_type, limit=1000))
    assert all(t.task_type == done.task_type for t in typed.items) and typed.items
    iterated = await collect(client.tasks.iter(status=TaskStatus.COMPLETED, limit=1))
    assert task.task_id in [t.task_id for t in iterated]
    killed = await resolve(client.tasks.kill(task.task_id))
    assert isinstance(killed, DeleteResponse) and killed.success is not False
    with pytest.raises(errors.NotFoundError):
        await resolve(client.tasks.get("task_does_not_exist"))


async def test_namespace_override_per_call(client, srv):
    other = uid("ns")
    await resolve(client.namespaces.create(other, EXTRACTORS))
    b = await resolve(client.buckets.create(uid("bkt"), SCHEMA, namespace=other))
    with pytest.raises(errors.NotFoundError):
        await resolve(client.buckets.get(b.bucket_id))  # default namespace
    assert (await resolve(client.buckets.get(b.bucket_id, namespace=other))).bucket_id == b.bucket_id
    scoped = client.with_options(namespace=other)
    assert (await resolve(scoped.buckets.get(b.bucket_id))).bucket_id == b.bucket_id
    assert scoped._http is client._http  # shares the pool


async def test_missing_namespace_is_a_clear_error_and_sends_nothing(srv):
    before = len(srv.request_log)
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
        with pytest.raises(errors.ConfigurationError, match="namespace"):
            c.buckets.list()
    assert len(srv.request_log) == before


async def test_async_client_over_asgi_transport(srv, namespace):
    import httpx

    async with AsyncMixpeek(
        api_key=srv.api_key,
        base_url="http://local.test",
        namespace=namespace,
        transport=httpx.ASGITransport(app=srv.app),
    ) as c:
        org = await c.organization.get()
        assert org.organization_id
        b = await c.buckets.create(uid("bkt"), SCHEMA)
        assert (await c.buckets.get(b.bucket_id)).bucket_name == b.bucket_name


def test_sync_client_over_asgi_transport(srv, namespace):
    import httpx

    with Mixpeek(
        api_key=srv.api_key,
        base_url="http://local.test",
        namespace=namespace,
        transport=httpx.ASGITransport(app=srv.app),
    ) as c:
        assert c.organization.get().organization_id
        b = c.buckets.create(uid("bkt"), SCHEMA)
        assert c.buckets.get(b.bucket_id).bucket_id == b.bucket_id


def test_with_options_copy_shares_and_does_not_close_the_pool(srv, namespace):
    c = Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace)
    copy = c.with_options(timeout=5, max_retry_seconds=0)
    assert copy.config.timeout == 5 and copy.config.max_retry_seconds == 0 and c.config.timeout == 30
    assert copy.config.api_key == c.config.api_key and copy.namespace == namespace
    copy.close()
    assert c.organization.get().organization_id  # the shared pool is still open
    c.close()
    with pytest.raises(RuntimeError):
        c._http.get(srv.base_url + "/v1/health")  # the original owned and closed it


def test_resources_are_attributes_made_once_per_client(srv, namespace):
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=namespace) as c:
        assert isinstance(c.tasks, Tasks) and c.tasks is c.tasks and c.tasks._client is c
        copy = c.with_options(namespace="other")
        assert copy.tasks is not c.tasks and copy.tasks._client is copy  # the copy's requests carry its options
        assert "tasks" in dir(c) and "retrievers" in dir(c)
        with pytest.raises(AttributeError):
            c.no_such_resource  # noqa: B018
    ac = AsyncMixpeek(api_key=srv.api_key, base_url=srv.base_url)
    assert type(ac.tasks) is Tasks and ac.tasks._client is ac  # one class serves both clients


async def test_transport_is_the_one_given(srv):
    import httpx

    given = httpx.ASGITransport(app=srv.app)
    with Mixpeek(api_key=srv.api_key, base_url="http://local.test", transport=given) as c:
        assert c.transport is given and c.with_options(timeout=5).transport is given
    async with AsyncMixpeek(api_key=srv.api_key, base_url="http://local.test", transport=given) as ac:
        assert ac.transport is given and (await ac.health.check()).ok
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as plain:
        assert plain.transport is None


async def test_async_context_manager(srv):
    async with AsyncMixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
        assert (await c.health.check()).ok
    assert c._http.is_closed
