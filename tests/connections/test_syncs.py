"""Bucket syncs end to end: moto S3 / Drive fixture -> local server -> objects and tasks."""

from __future__ import annotations

import math
import posixpath
import time
import uuid

import pytest

from mixpeek_magics.client import Mixpeek, errors
from tests.connections.conftest import (
    TIME_SCALE,
    body_for,
    bucket,
    enable_storage,
    s3_connection,
    set_drive,
    wait_until,
)
from tests.fixtures.moto_s3 import nested_keys


def _objects(client, bkt):
    return list(client.objects.iter(bkt))


def _source_paths(client, bkt) -> list[str]:
    return sorted(o.metadata["source_path"] for o in _objects(client, bkt))


def _put(moto, bkt, keys, start=0):
    bodies = {k: body_for(k, start + i) for i, k in enumerate(keys)}
    moto.put_objects(bkt, bodies)
    return bodies


def test_sync_300_nested_objects_with_filters(server, client, recorder, moto):
    src = f"src-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    keys = nested_keys(300, prefix="photos/")
    bodies = _put(moto, src, keys)
    _put(moto, src, ["other/outside.txt", "photos-not/x.txt"])  # outside the prefix
    conn = s3_connection(client, moto)
    bkt = bucket(client)
    filters = {"include_patterns": ["*.png", "*.txt"], "exclude_patterns": ["d1/*"]}
    sync = client.syncs.create(
        bkt,
        connection_id=conn.connection_id,
        source_path=f"{src}/photos",
        sync_mode="initial_only",
        file_filters=filters,
        batch_size=25,
    )
    assert sync.status == "PENDING" and sync.sync_mode == "initial_only"
    assert sync.file_filters.include_patterns == ["*.png", "*.txt"]
    done = client.syncs.wait(bkt, sync.sync_config_id, timeout=60, include_tasks=True, poll=0.05)
    # independent expectation: extension, then the path below photos/ must not start with d1/
    expected = sorted(
        k for k in keys if k.rsplit(".", 1)[1] in ("png", "txt") and not k[len("photos/") :].startswith("d1/")
    )
    assert 100 < len(expected) < 150
    assert _source_paths(client, bkt) == expected
    assert client.buckets.get(bkt).object_count == len(expected)
    assert done.status == "COMPLETED"
    assert done.total_files_discovered == len(expected)
    assert done.total_files_synced == len(expected) and done.total_files_failed == 0
    assert done.total_bytes_synced == sum(len(bodies[k]) for k in expected)
    assert done.batches_created == len(done.batch_ids) == len(done.task_ids) == math.ceil(len(expected) / 25)
    tasks = [client.tasks.get(t) for t in done.task_ids]
    assert all(t.status == "COMPLETED" for t in tasks)
    assert sorted(t.batch_id for t in tasks) == sorted(done.batch_ids)
    assert sorted(t.task_id for t in client.syncs.tasks(bkt, sync.sync_config_id)) == sorted(done.task_ids)
    assert sum(t.object_count for t in tasks) == len(expected)
    assert done.run is not None and done.run.status == "completed" and done.run.files_synced == len(expected)
    # objects are processed from the real bytes, read server-side through the connection
    obj = next(o for o in _objects(client, bkt) if o.metadata["source_path"].endswith(".png"))
    blob = obj.blobs[0]
    assert blob.properties["url"].startswith(f"s3://{src}/photos/")
    assert blob.details["size_bytes"] == len(bodies[obj.metadata["source_path"]])
    assert obj.key_prefix == (posixpath.dirname(obj.metadata["source_path"][len("photos/") :]) or None)
    assert client.connections.get(conn.connection_id).last_used_at is not None
    assert moto.secret_access_key not in recorder.text()


def test_continuous_sync_picks_up_new_and_changed_files_only(server, client, moto):
    src = f"cont-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    first = [f"in/a{i}.txt" for i in range(6)]
    _put(moto, src, first)
    conn = s3_connection(client, moto)
    bkt = bucket(client)
    sync = client.syncs.create(
        bkt,
        connection_id=conn.connection_id,
        source_path=f"{src}/in",
        sync_mode="continuous",
        polling_interval_seconds=30,
        batch_size=4,
    )
    sid = sync.sync_config_id
    s = client.syncs.wait(bkt, sid, timeout=30, include_tasks=True, poll=0.05)
    assert s.status == "ACTIVE" and s.total_files_synced == 6 and s.next_sync_at is not None
    runs = s.sync_run_counter
    # a few polls with nothing new: nothing re-ingested
    wait_until(lambda: client.syncs.get(bkt, sid).sync_run_counter >= runs + 2, timeout=20, what="two more polls")
    s = client.syncs.get(bkt, sid)
    latest = client.syncs.jobs(bkt, sid, limit=1).items[0]  # the runs, most recent first
    assert latest.status == "completed" and not latest.files_synced
    assert len(_objects(client, bkt)) == 6
    # new files and one changed file
    _put(moto, src, [f"in/new{i}.txt" for i in range(3)], start=100)
    moto.put_object(src, "in/a0.txt", b"changed content")
    s = wait_until(
        lambda: (lambda x: x if x.total_files_synced >= 10 else None)(client.syncs.get(bkt, sid)),
        timeout=30,
        what="new files synced",
    )
    objs = _objects(client, bkt)
    assert len(objs) == 9  # the changed file replaced its object
    changed = [o for o in objs if o.metadata["source_path"] == "in/a0.txt"]
    assert len(changed) == 1 and changed[0].blobs[0].details["size_bytes"] == len(b"changed content")
    assert s.total_files_synced == 10 and s.total_files_failed == 0
    assert len(s.task_ids) >= 3


def test_pause_resume_and_trigger(server, client, moto):
    src = f"pr-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    _put(moto, src, ["x/1.txt", "x/2.txt"])
    conn = s3_connection(client, moto)
    bkt = bucket(client)
    sid = client.syncs.create(
        bkt, connection_id=conn.connection_id, source_path=f"{src}/x", polling_interval_seconds=30
    ).sync_config_id
    client.syncs.wait(bkt, sid, timeout=30, include_tasks=True, poll=0.05)
    paused = client.syncs.pause(bkt, sid)
    assert paused.paused is True and paused.status == "SUSPENDED" and paused.is_active is False
    assert paused.next_sync_at is None
    assert [s.sync_config_id for s in client.syncs.list(bkt, is_active=False)] == [sid]
    assert client.syncs.list(bkt, is_active=True).items == []
    _put(moto, src, ["x/3.txt"])
    counter = client.syncs.get(bkt, sid).sync_run_counter
    time.sleep(30 * TIME_SCALE * 4)  # four polling intervals
    s = client.syncs.get(bkt, sid)
    assert s.sync_run_counter == counter and len(_objects(client, bkt)) == 2
    with pytest.raises(errors.ConflictError):
        client.syncs.trigger(bkt, sid)
    resumed = client.syncs.resume(bkt, sid)
    assert resumed.paused is False and resumed.status == "ACTIVE" and resumed.is_active is True
    wait_until(lambda: len(_objects(client, bkt)) == 3, timeout=30, what="file added while paused")
    # pause / resume through update(is_active=...)
    assert client.syncs.update(bkt, sid, is_active=False).paused is True
    assert client.syncs.update(bkt, sid, is_active=True, batch_size=10).batch_size == 10
    # trigger on an initial_only sync: an immediate extra run
    once = client.syncs.create(bkt, connection_id=conn.connection_id, source_path=f"{src}/y", sync_mode="initial_only")
    done = client.syncs.wait(bkt, once.sync_config_id, timeout=30, poll=0.05)
    assert done.status == "COMPLETED" and done.total_files_discovered == 0
    _put(moto, src, ["y/a.txt", "y/b.txt"])
    trig = client.syncs.trigger(bkt, once.sync_config_id)
    assert trig.sync_job_id and trig.status == "QUEUED"
    after = client.syncs.wait(
        bkt, once.sync_config_id, run_id=trig.sync_job_id, timeout=30, include_tasks=True, poll=0.05
    )
    assert after.run.sync_job_id == trig.sync_job_id and after.run.trigger == "manual"
    assert client.syncs.job(bkt, once.sync_config_id, trig.sync_job_id).files_synced == 2
    assert after.status == "COMPLETED" and after.total_files_synced == 2 and after.sync_run_counter == 2
    assert sorted(s.sync_config_id for s in client.syncs.iter(bkt, limit=1)) == sorted([sid, once.sync_config_id])
    assert [s.sync_config_id for s in client.syncs.list(bkt, status="COMPLETED")] == [once.sync_config_id]
    # a connection in use cannot be deleted; deleting its syncs frees it
    with pytest.raises(errors.ConflictError):
        client.connections.delete(conn.connection_id)
    client.syncs.delete(bkt, sid)
    client.syncs.delete(bkt, once.sync_config_id)
    with pytest.raises(errors.NotFoundError):
        client.syncs.get(bkt, sid)
    client.connections.delete(conn.connection_id)


def test_wait_follows_the_run_then_with_include_tasks_its_tasks(server, client, moto):
    """The run ends (its job: completed) once every file is submitted; its tasks
    are still processing then. include_tasks=True returns only once they are terminal."""
    from mixpeek_magics.client.statuses import is_terminal

    server.update_settings(pace_seconds=20)  # x TIME_SCALE: 0.2 s per object
    src = f"wt-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    _put(moto, src, [f"w/{i}.txt" for i in range(6)])
    conn = s3_connection(client, moto)
    bkt = bucket(client)
    sid = client.syncs.create(
        bkt, connection_id=conn.connection_id, source_path=f"{src}/w", sync_mode="initial_only", batch_size=2
    ).sync_config_id
    ran = client.syncs.wait(bkt, sid, timeout=60, poll=0.05)
    assert ran.run is not None and ran.run.status == "completed" and ran.run.files_synced == 6
    assert ran.run.sync_job_id == client.syncs.jobs(bkt, sid).items[0].sync_job_id
    assert len(ran.task_ids) == 3
    assert not all(is_terminal(client.tasks.get(t).status) for t in ran.task_ids)  # still processing
    done = client.syncs.wait(bkt, sid, timeout=60, include_tasks=True, poll=0.05)
    assert done.run.sync_job_id == ran.run.sync_job_id
    assert sorted(done.task_ids) == sorted(ran.task_ids)
    assert all(client.tasks.get(t).status == "COMPLETED" for t in done.task_ids)


def test_bad_sync_requests_create_nothing(server, client, moto):
    conn = s3_connection(client, moto)
    bkt = bucket(client)
    with pytest.raises(errors.APIStatusError) as ei:
        client.syncs.create(bkt, connection_id=conn.connection_id, source_path="no-such-bucket-xyz/p")
    assert "Bucket not found" in str(ei.value)
    with pytest.raises(errors.ValidationError) as ei:
        client.syncs.create(
            bkt, connection_id=conn.connection_id, source_path="x/y", file_filters={"include_pattern": ["*.png"]}
        )  # typo must not sync everything
    assert "include_pattern" in str(ei.value)
    with pytest.raises(errors.NotFoundError):
        client.syncs.create(bkt, connection_id="conn_doesnotexist", source_path="x")
    with pytest.raises(ValueError):
        client.syncs.create(bkt, connection_id=conn.connection_id, source_path="x", polling_interval_seconds=5)
    client.connections.suspend(conn.connection_id)
    with pytest.raises(errors.APIStatusError) as ei:
        client.syncs.create(bkt, connection_id=conn.connection_id, source_path="x")
    assert "SUSPENDED" in str(ei.value)
    assert client.syncs.list(bkt, include_total=True).total == 0


def test_skip_batch_submission_creates_objects_without_tasks(server, client, moto):
    src = f"skip-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    bodies = _put(moto, src, ["a.txt", "b.txt", "c.txt"])
    conn = s3_connection(client, moto)
    bkt = bucket(client)
    s = client.syncs.create(
        bkt, connection_id=conn.connection_id, source_path=src, sync_mode="initial_only", skip_batch_submission=True
    )
    s = client.syncs.wait(bkt, s.sync_config_id, timeout=30, poll=0.05)
    assert s.task_ids == [] and len(s.batch_ids) == 1
    assert s.total_files_synced == 3 and s.total_bytes_synced == sum(len(b) for b in bodies.values())
    assert all(o.status == "PENDING" for o in _objects(client, bkt))  # new, not processed


def test_syncs_survive_a_restart(local_server_factory, tmp_path, moto):
    data_dir = tmp_path / "restart"
    srv = enable_storage(local_server_factory(data_dir=data_dir, time_scale=TIME_SCALE))
    ns = "ns-restart"
    src = f"rs-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    _put(moto, src, ["p/1.txt", "p/2.txt"])
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url, namespace=ns) as c:
        c.namespaces.create(ns, [{"feature_extractor_name": "text_extractor", "version": "v1"}])
        conn = s3_connection(c, moto)
        bkt = bucket(c)
        sid = c.syncs.create(
            bkt, connection_id=conn.connection_id, source_path=f"{src}/p", polling_interval_seconds=30
        ).sync_config_id
        c.syncs.wait(bkt, sid, timeout=30, include_tasks=True, poll=0.05)
    srv.stop()
    _put(moto, src, ["p/3.txt", "p/4.txt"], start=10)
    srv2 = enable_storage(local_server_factory(data_dir=data_dir, time_scale=TIME_SCALE))
    with Mixpeek(api_key=srv2.api_key, base_url=srv2.base_url, namespace=ns) as c:
        assert c.connections.test(conn.connection_id).success  # credentials decrypt after the restart
        s = wait_until(
            lambda: (lambda x: x if x.total_files_synced == 4 else None)(c.syncs.get(bkt, sid)),
            timeout=30,
            what="sync resumed after restart",
        )
        assert s.status == "ACTIVE" and s.sync_mode == "continuous"
        assert sorted(o.metadata["source_path"] for o in c.objects.iter(bkt)) == [f"p/{i}.txt" for i in range(1, 5)]


def test_drive_folder_with_subfolders_and_read_retries(server, client, recorder, drive):
    set_drive(server, drive)
    sa = drive.add_service_account()
    root = drive.add_folder("root", "Team")
    sub = drive.add_folder(root, "Sub")
    deep = drive.add_folder(sub, "Deeper")
    drive.add_folder("root", "Elsewhere")
    files = {}
    files["a.txt"] = drive.add_file(root, "a.txt", b"alpha", "text/plain")
    files["b.txt"] = drive.add_file(sub, "b.txt", b"bravo!", "text/plain")
    files["c.png"] = drive.add_file(deep, "c.png", body_for("c.png", 3), "image/png")
    files["flaky.txt"] = drive.add_file(sub, "flaky.txt", b"works on the 4th try", "text/plain")
    files["broken.txt"] = drive.add_file(deep, "broken.txt", b"never readable", "text/plain")
    drive.add_file(root, "notes", b"", "application/vnd.google-apps.document")  # no binary content: skipped
    drive.add_file(root, "skip.tmp", b"tmp", "text/plain")
    # 3 failed reads then success (3 retries); the other one always fails
    drive.fail_next(404, count=3, path_contains=files["flaky.txt"])
    drive.fail_next(404, count=50, path_contains=files["broken.txt"])
    conn = client.connections.create("team drive", "google_drive", {"credentials": sa})
    bkt = bucket(client)
    s = client.syncs.create(
        bkt,
        connection_id=conn.connection_id,
        source_path="/Team",
        sync_mode="initial_only",
        file_filters={"exclude_patterns": ["*.tmp"]},
        batch_size=2,
    )
    s = client.syncs.wait(bkt, s.sync_config_id, timeout=60, include_tasks=True, poll=0.05)
    assert s.total_files_discovered == 5
    assert s.total_files_synced == 4 and s.total_files_failed == 1
    assert s.run.status == "completed" and s.run.files_failed == 1 and s.run.total_files == 5
    downloads = [p for m, p, q in drive.requests if p.endswith(files["broken.txt"]) and q.get("alt") == "media"]
    assert len(downloads) == 4
    objs = {o.metadata["source_path"]: o for o in _objects(client, bkt)}
    assert sorted(objs) == [
        "/Team/Sub/Deeper/broken.txt",
        "/Team/Sub/Deeper/c.png",
        "/Team/Sub/b.txt",
        "/Team/Sub/flaky.txt",
        "/Team/a.txt",
    ]
    assert objs["/Team/Sub/flaky.txt"].status == "COMPLETED"
    assert objs["/Team/Sub/Deeper/broken.txt"].status == "FAILED"
    assert objs["/Team/Sub/Deeper/c.png"].blobs[0].properties["features"]["width"] == 7
    assert objs["/Team/Sub/Deeper/c.png"].key_prefix == "Sub/Deeper"
    statuses = sorted(str(client.tasks.get(t).status) for t in s.task_ids)
    assert statuses == ["COMPLETED", "COMPLETED", "COMPLETED_WITH_ERRORS"]
    assert sa["private_key"] not in recorder.text()


async def test_async_client_connections_and_syncs(server, moto):
    from mixpeek_magics.client import AsyncMixpeek

    src = f"as-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    _put(moto, src, ["q/1.txt", "q/2.txt", "q/3.txt"])
    async with AsyncMixpeek(api_key=server.api_key, base_url=server.base_url, namespace="ns-async") as c:
        await c.namespaces.create("ns-async", [{"feature_extractor_name": "text_extractor", "version": "v1"}])
        await c.buckets.create("ab", {"text": {"type": "text"}})
        conn = await c.connections.create("async-s3", "s3", moto.provider_config())
        assert [x.name async for x in c.connections.iter(provider_type="s3")] == ["async-s3"]
        s = await c.syncs.create(
            "ab", connection_id=conn.connection_id, source_path=f"{src}/q", sync_mode="initial_only", batch_size=2
        )
        s = await c.syncs.wait("ab", s.sync_config_id, timeout=30, include_tasks=True, poll=0.05)
        assert s.total_files_synced == 3 and len(s.task_ids) == 2
        assert sorted([t.task_id async for t in c.syncs.tasks("ab", s.sync_config_id)]) == sorted(s.task_ids)
