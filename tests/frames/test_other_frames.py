"""objects / batches / failures / connections / syncs frames against the local server."""

from __future__ import annotations

import pandas as pd
import pytest

from mixpeek_magics.frames import (
    batches_frame,
    connections_frame,
    failures_frame,
    objects_frame,
    syncs_frame,
)


def test_objects_frame(frames_env):
    c = frames_env.client
    frames_env.server.update_settings(fail_filenames=["broken*"])
    frames_env.run_batch(["good1.txt", "good2.txt", "broken.txt"])
    f = objects_frame("frames-bucket", client=c)
    assert len(f) == 3
    assert sorted(f["filenames"]) == ["broken.txt", "good1.txt", "good2.txt"]
    by_name = f.set_index("filenames")
    assert by_name.loc["good1.txt", "status"] == "COMPLETED"
    assert by_name.loc["broken.txt", "status"] == "FAILED"
    assert set(f["bucket_id"]) == {frames_env.bucket_id}
    assert f["blob_count"].eq(1).all() and str(f["blob_count"].dtype) == "Int64"
    assert str(f["created_at"].dtype) == "datetime64[ns, UTC]" and f["created_at"].notna().all()
    assert str(f["status"].dtype) == "category"
    # an empty bucket: same columns and dtypes
    c.buckets.create("empty-bucket", bucket_schema={"properties": {"content": {"type": "text"}}})
    empty = objects_frame("empty-bucket", client=c)
    assert len(empty) == 0 and list(empty.columns) == list(f.columns)
    assert {k: str(v) for k, v in empty.dtypes.items()} == {k: str(v) for k, v in f.dtypes.items()}


def test_batches_frame(frames_env):
    c = frames_env.client
    frames_env.server.update_settings(fail_filenames=["bad*"])
    prov = {"notebook": "n.ipynb", "cell": 4, "source": "%ingest x"}
    b1, t1 = frames_env.run_batch(["a.txt", "b.txt"], metadata={"provenance": prov})
    b2, t2 = frames_env.run_batch(["bad.txt"])
    f = batches_frame(frames_env.bucket_id, client=c).set_index("batch_id")
    assert set(f.index) == {b1.batch_id, b2.batch_id}
    assert f.loc[b1.batch_id, "task_id"] == t1.task_id and f.loc[b2.batch_id, "task_id"] == t2.task_id
    assert f.loc[b1.batch_id, "object_count"] == 2 and f.loc[b2.batch_id, "object_count"] == 1
    assert f.loc[b1.batch_id, "status"] == str(b1.status)
    assert f.loc[b2.batch_id, "status"] == str(b2.status)
    assert f.loc[b1.batch_id, "source_cell"] == "n.ipynb [4] %ingest x"
    assert pd.isna(f.loc[b2.batch_id, "source_cell"])


def test_failures_frame_of_task_and_batch(frames_env):
    c = frames_env.client
    frames_env.server.update_settings(fail_filenames=["broken*", "*.bad"])
    batch, task = frames_env.run_batch(["ok.txt", "broken.txt", "x.bad", "fine.txt"])
    assert task.status == "COMPLETED_WITH_ERRORS"
    # the failures are the batch's (object ids), the names the objects' own
    expected = {o.object_id: o for o in batch.failed_objects}
    names = {o.object_id: o.blobs[0].details["filename"] for o in c.objects.iter("frames-bucket")}
    assert sorted(names[oid] for oid in expected) == ["broken.txt", "x.bad"]

    for arg in (task.task_id, task):
        f = failures_frame(arg, client=c)
        assert sorted(f["filename"]) == ["broken.txt", "x.bad"]
        assert set(f["source"]) == {"task"} and set(f["task_id"]) == {task.task_id}
        assert set(f["batch_id"]) == {batch.batch_id}
        for _, row in f.iterrows():
            assert row["error"] == expected[row["object_id"]].error and row["error"]
            assert row["filename"] == names[row["object_id"]]

    for arg, kw in ((batch, {}), (batch.batch_id, {"bucket": "frames-bucket"})):
        f = failures_frame(arg, client=c, **kw)
        assert sorted(f["filename"]) == ["broken.txt", "x.bad"]
        assert set(f["source"]) == {"batch"} and set(f["batch_id"]) == {batch.batch_id}
        assert f["error"].notna().all()

    # nothing failed: an empty frame with the same columns
    _, ok_task = frames_env.run_batch(["fine2.txt"])
    empty = failures_frame(ok_task.task_id, client=c)
    assert len(empty) == 0 and list(empty.columns) == list(f.columns)
    with pytest.raises(ValueError, match="bucket="):
        failures_frame("btch_does_not_exist", client=c)


def test_connections_frame_never_shows_secrets(frames_env):
    c = frames_env.client
    if not hasattr(c, "connections"):
        pytest.fail("client.connections is not available yet (written by another helper)")
    secret, key_id = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AKIAIOSFODNN7EXAMPLE"
    c.connections.create(
        "s3-test",
        "s3",
        test_before_save=False,
        provider_config={
            "credentials": {"type": "access_key", "access_key_id": key_id, "secret_access_key": secret},
            "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:9",
        },
    )
    f = connections_frame(client=c)
    assert len(f) == 1 and f.loc[0, "name"] == "s3-test" and f.loc[0, "provider_type"] == "s3"
    assert f.loc[0, "credential_type"] == "access_key" and f.loc[0, "region"] == "us-east-1"
    assert f.loc[0, "endpoint_url"] == "http://127.0.0.1:9"
    text = f.to_string() + f.to_json(date_format="iso") + repr(f.to_dict())
    assert secret not in text and key_id not in text
    assert len(connections_frame(client=c, provider_type="google_drive")) == 0
    assert len(connections_frame(client=c, provider_type="s3")) == 1
    assert list(connections_frame(client=c, provider_type="google_drive").columns) == list(f.columns)


def test_connection_rows_drop_credentials_whatever_the_server_sends():
    from mixpeek_magics.frames.resources import connection_row

    leaky = {
        "connection_id": "conn_1",
        "name": "drive",
        "provider_type": "google_drive",
        "status": "ACTIVE",
        "provider_config": {
            "credentials": {"type": "service_account", "private_key": "-----BEGIN KEY", "client_email": "x@y"},
            "shared_drive_id": "0AB",
            "client_secret": "shh",
            "oauth_token": "tok",
        },
    }
    row = connection_row(leaky)
    assert row["credential_type"] == "service_account" and row["shared_drive_id"] == "0AB"
    assert "BEGIN KEY" not in repr(row) and "shh" not in repr(row) and "tok" not in repr(row)
    assert "x@y" not in repr(row)


def test_syncs_frame_empty(frames_env):
    c = frames_env.client
    if not hasattr(c, "syncs"):
        pytest.fail("client.syncs is not available yet (written by another helper)")
    f = syncs_frame(frames_env.bucket_id, client=c)
    assert len(f) == 0 and "sync_config_id" in f.columns


def test_syncs_frame_lists_a_bucket_sync(frames_env):
    from tests.fixtures.moto_s3 import moto_s3_server

    c = frames_env.client
    with moto_s3_server() as s3:
        s3.create_bucket("media")
        s3.put_objects("media", {"in/a.txt": b"alpha", "in/b.txt": b"beta"})
        config = s3.provider_config()
        secret = config["credentials"]["secret_access_key"]
        conn = c.connections.create("s3-sync", "s3", config)
        created = c.syncs.create(
            frames_env.bucket_id, connection_id=conn.connection_id, source_path="media/in/", sync_mode="initial_only"
        )
        f = syncs_frame("frames-bucket", client=c)
        assert len(f) == 1 and f.loc[0, "sync_config_id"] == created.sync_config_id
        assert f.loc[0, "connection_id"] == conn.connection_id and f.loc[0, "source_path"] == "media/in/"
        assert f.loc[0, "sync_mode"] == "initial_only" and f.loc[0, "bucket_id"] == frames_env.bucket_id
        assert str(f["total_files_synced"].dtype) == "Int64" and str(f["status"].dtype) == "category"
        assert secret not in f.to_string() + repr(f.to_dict())
        conns = connections_frame(client=c)
        assert secret not in conns.to_string() + repr(conns.to_dict())
