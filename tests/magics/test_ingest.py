"""%%ingest through a real IPython shell against the local server."""

from __future__ import annotations

import os
import signal
import time

import pandas as pd
import pytest
from IPython.core.error import UsageError

from mixpeek_magics.ingest import bulk, runner
from mixpeek_magics.notebook import session
from mixpeek_magics.notebook.magics.ingest import IngestRunError, IngestValidationError
from tests.fixtures.files import make_files

WRITES = ("/uploads", "/objects", "/batches", "/syncs", "/buckets", "/_local/")


def writes(server, since):
    return [
        (m, p)
        for m, p in server.request_log[since:]
        if m in ("POST", "PUT", "PATCH", "DELETE") and any(w in p for w in WRITES) and not p.endswith("/list")
    ]


def objects_of(bucket):
    c = session.signed_in_client()
    return list(c.objects.iter(bucket))


def sha_of(obj):
    return (obj.blobs[0].details or {}).get("hash")


def test_ingest_files_end_to_end(ip, signed_in, tmp_path, capsys):
    make_files(tmp_path / "data", 4)
    ip.run_cell_magic(
        "ingest", '--bucket docs --create-bucket -o res --metadata \'{"campaign": "q3"}\'', "data/*.txt\n"
    )
    res = ip.user_ns["res"]
    assert isinstance(res, runner.IngestResult)
    assert len(res.objects) == 4 and len(res.batches) == 1 and len(res.tasks) == 1
    assert res.status == "completed"
    out = capsys.readouterr().out
    assert "4 items: 0 already ingested, 4 new" in out
    assert "Uploaded 4/4 files" in out
    objs = objects_of("docs")
    assert len(objs) == 4 and all(o.metadata == {"campaign": "q3"} for o in objs)
    frame = res.to_frame()
    assert list(frame["status"]) == ["new"] * 4
    assert res.failures.empty and list(res.failures.columns) == ["source", "stage", "object_id", "task_id", "error"]
    assert "<table>" in res._repr_html_() and "docs" in res._repr_html_()
    # provenance travels with the batch, and the journal recorded the cell
    batch = session.signed_in_client().batches.get("docs", res.batches[0])
    prov = batch.metadata["provenance"]
    assert prov["source"].startswith("%%ingest --bucket docs") and "cell" in prov
    from mixpeek_magics.tracking import default_journal

    row = default_journal().known(res.tasks)[res.tasks[0]]
    assert row["context"]["source"].startswith("%%ingest --bucket docs")
    assert row["last_status"] == "COMPLETED"


def test_a_completed_run_reads_nothing_more_once_the_watch_saw_it_end(ip, signed_in, tmp_path):
    """The watch saw every task COMPLETED: a COMPLETED batch has no failed objects, so no
    task or batch is read again after it (each read is a round trip the cell waits for)."""
    make_files(tmp_path / "data", 3)
    mark = len(signed_in.request_log)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket -o res", "data/\n")
    res = ip.user_ns["res"]
    log = signed_in.request_log[mark:]
    assert res.status == "completed" and res.failures.empty
    last_watch = max(i for i, (m, p) in enumerate(log) if p == "/v1/tasks/list")
    after = [(m, p) for m, p in log[last_watch + 1 :] if p.startswith("/v1/")]
    assert not [r for r in after if r[0] == "GET" and ("/tasks/" in r[1] or "/batches/" in r[1])], after


def test_rerun_skips_what_was_ingested(ip, signed_in, tmp_path, capsys):
    make_files(tmp_path / "data", 3)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket", "data/\n")
    make_files(tmp_path / "data", 5)  # two more files, the three first unchanged
    capsys.readouterr()
    mark = len(signed_in.request_log)
    ip.run_cell_magic("ingest", "--bucket docs -o res", "data/\n")
    res = ip.user_ns["res"]
    assert "5 items: 3 already ingested, 2 new" in capsys.readouterr().out
    assert len(res.objects) == 2
    # only the two new files were uploaded
    assert len([1 for m, p in signed_in.request_log[mark:] if m == "PUT" and "/_local/uploads/" in p]) == 2
    assert len(objects_of("docs")) == 5
    mark = len(signed_in.request_log)
    ip.run_cell_magic("ingest", "--bucket docs -o res", "data/\n")
    assert ip.user_ns["res"].tasks == [] and writes(signed_in, mark) == []
    # --force ingests again
    ip.run_cell_magic("ingest", "--bucket docs --force -o res", "data/f0.txt\n")
    assert len(ip.user_ns["res"].objects) == 1
    assert len(objects_of("docs")) == 6


def test_a_run_hashes_files_as_it_uploads_them_and_still_skips_what_was_ingested(
    ip, signed_in, tmp_path, capsys, monkeypatch
):
    """Planning a run reads no file whole: the upload hashes each chunk while the previous
    one uploads, sends the hash with each upload, and skips files already ingested."""
    import hashlib

    from mixpeek_magics.ingest import plan as plan_mod

    hashed_while_planning = []
    real_sha256_file = plan_mod.sha256_file
    monkeypatch.setattr(
        plan_mod, "sha256_file", lambda *a, **k: hashed_while_planning.append(a) or real_sha256_file(*a, **k)
    )
    files = make_files(tmp_path / "data", 30)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket --no-wait", "data/\n")
    assert hashed_while_planning == []
    c = session.signed_in_client()
    want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert {u.filename: u.file_hash for u in c.uploads.iter("docs")} == want
    make_files(tmp_path / "data", 34)  # four more
    capsys.readouterr()
    ip.run_cell_magic("ingest", "--bucket docs --no-wait -o res", "data/\n")
    out = capsys.readouterr().out
    assert "34 items: 30 already ingested, 4 new" in out
    assert "Uploading 4 files" in out and "Uploading 34 files" not in out  # the bar counts what it uploads
    assert len(list(c.uploads.iter("docs"))) == 34  # no upload created for the 30 ingested files
    res = ip.user_ns["res"]
    assert res.upload.files_total == 4 and res.upload.skipped == 30 and res.upload.unchecked == 0
    assert {i.sha256 for i in res.items} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("data/*")
    }
    # nothing new: no progress display, only the final line
    ip.run_cell_magic("ingest", "--bucket docs --no-wait", "data/\n")
    out = capsys.readouterr().out
    assert "Uploading" not in out
    assert "Upload: nothing new to upload · 34 already ingested (skipped)" in out
    assert hashed_while_planning == []


def test_dry_run_sends_nothing_and_knows_what_was_ingested(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 2)
    (tmp_path / "data" / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    mark = len(signed_in.request_log)
    frame = ip.run_cell_magic(
        "ingest", "--bucket docs --dry-run", 'data/*.txt  {"k": 1}\ndata/pic.png\nhttps://example.com/a.mp4\n'
    )
    assert signed_in.request_log[mark:] == []
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns)[:5] == ["source", "kind", "size", "mime_type", "state"]
    assert list(frame["kind"]) == ["file", "file", "file", "url"]
    assert list(frame["state"]) == ["new"] * 4
    assert list(frame["mime_type"])[2:] == ["image/png", "video/mp4"]
    assert frame["metadata"][0] == {"k": 1}
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket", "data/f0.txt\n")
    mark = len(signed_in.request_log)
    ip.run_cell_magic("ingest", "--bucket docs --dry-run -o plan", "data/*.txt\n")
    assert signed_in.request_log[mark:] == []
    assert list(ip.user_ns["plan"]["state"]) == ["already ingested", "new"]


def test_validation_collects_every_error_and_sends_nothing(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 1)
    body = 'data/f0.txt\nmissing/*.jpg\nhttps://example.com/x.png {"a": }\n{undefined_var}/x.png\ndata/nope.txt\n'
    mark = len(signed_in.request_log)
    with pytest.raises(IngestValidationError) as ei:
        ip.run_cell_magic("ingest", "--bucket docs --create-bucket", body)
    text = str(ei.value)
    assert "nothing was sent" in text
    for needle in (
        "line 2",
        "no files match 'missing/*.jpg'",
        "line 3, col",
        "line 4, col",
        "undefined_var",
        "line 5",
        "file not found",
    ):
        assert needle in text, needle
    assert len(ei.value.problems) == 4
    assert writes(signed_in, mark) == []
    # as a cell: fails, with the list and no traceback
    res = ip.run_cell("%%ingest --bucket docs\nmissing.txt\n")
    assert isinstance(res.error_in_exec, IngestValidationError)
    assert res.error_in_exec._render_traceback_()[0].startswith("IngestError: 1 problem")


def test_unknown_connection_is_reported_with_other_errors(ip, signed_in, tmp_path):
    c = session.signed_in_client()
    from tests.fixtures.moto_s3 import moto_s3_server

    with moto_s3_server() as s3:
        s3.create_bucket("raw")
        c.connections.create("Production S3", "s3", s3.provider_config())
        mark = len(signed_in.request_log)
        with pytest.raises(IngestValidationError) as ei:
            ip.run_cell_magic(
                "ingest",
                "--bucket docs --create-bucket",
                'gone.txt\ns3://raw/x/ via "Production S4"\ns3://raw/ via "Production S3"\n',
            )
        text = str(ei.value)
        assert "line 1" in text and "line 2: unknown connection 'Production S4'; did you mean 'Production S3'?" in text
        assert "line 3" not in text
        assert writes(signed_in, mark) == []


def test_usage_errors(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 1)
    for line, body, msg in [
        ("", "data/f0.txt", "--bucket"),
        ("--bucket b --metadata '[1]'", "data/f0.txt", "JSON object"),
        ("--bucket b --metadata '{bad'", "data/f0.txt", "not valid JSON"),
        ("--bucket b --concurrency 0", "data/f0.txt", "at least 1"),
        ("--bucket b", "  \n  # only a comment\n", "nothing to ingest"),
        ("--bucket b --frame nope --path-col p", "", "no variable named 'nope'"),
        ("--bucket b", "", "nothing to ingest"),
        ("--bucket b --frame df_x", "", "--path-col"),
        ("--bucket b --path-col p", "data/f0.txt", "--frame"),
    ]:
        with pytest.raises(UsageError, match=msg):
            if body:
                ip.run_cell_magic("ingest", line, body)
            else:
                ip.run_line_magic("ingest", line)


def test_unknown_bucket_lists_buckets(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 1)
    ip.run_cell_magic("ingest", "--bucket first --create-bucket", "data/f0.txt\n")
    mark = len(signed_in.request_log)
    with pytest.raises(IngestRunError, match="bucket 'second' not found.*'first'.*--create-bucket"):
        ip.run_cell_magic("ingest", "--bucket second", "data/f0.txt\n")
    assert writes(signed_in, mark) == []


def test_create_bucket_infers_schema(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 1)
    (tmp_path / "data" / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    ip.run_cell_magic("ingest", "--bucket mixed --create-bucket --no-wait", "data/\n")
    schema = session.signed_in_client().buckets.get("mixed").bucket_schema["properties"]
    assert {v["type"] for v in schema.values()} == {"text", "image"}


def test_urls_with_metadata_and_interpolation(ip, signed_in, http_files, tmp_path):
    base, root = http_files
    (root / "a.txt").write_text("hello from a url\n")
    (root / "b.txt").write_text("and another one\n")
    ip.user_ns["srv_url"] = base
    ip.run_cell_magic(
        "ingest", "--bucket web --create-bucket -o res", '{srv_url}/a.txt  {"title": "A"}\n{srv_url}/b.txt\n'
    )
    res = ip.user_ns["res"]
    assert [i.kind for i in res.items] == ["url", "url"] and len(res.objects) == 2
    assert res.status == "completed"
    objs = {o.object_id: o for o in objects_of("web")}
    assert objs[res.items[0].object_id].metadata == {"title": "A"}
    task = session.signed_in_client().tasks.get(res.tasks[0])
    assert task.status == "COMPLETED" and task.object_count == 2 and task.batch_id == res.batches[0]
    (snap,) = res.handle.snapshots  # the watch read the counts from the batch
    assert snap.processed == snap.total == 2
    # re-running does not create the URL objects again
    ip.run_cell_magic("ingest", "--bucket web -o res", "{srv_url}/a.txt\n{srv_url}/b.txt\n")
    assert ip.user_ns["res"].already_ingested == 2 and len(objects_of("web")) == 2


def test_frame_rows_with_metadata_columns(ip, signed_in, tmp_path):
    files = make_files(tmp_path / "data", 3)
    ip.user_ns["df"] = pd.DataFrame(
        {
            "path": [str(p) for p in files],
            "label": ["a", "b", "c"],
            "split": ["train", "train", "test"],
            "junk": [1, 2, 3],
        }
    )
    ip.run_line_magic(
        "ingest", "--bucket frames --create-bucket --frame df --path-col path --metadata-cols label,split -o res"
    )
    res = ip.user_ns["res"]
    assert len(res.objects) == 3
    meta = sorted((o.metadata["label"], o.metadata["split"]) for o in objects_of("frames"))
    assert meta == [("a", "train"), ("b", "train"), ("c", "test")]
    ip.user_ns["df"] = pd.DataFrame({"path": [str(files[0]), str(tmp_path / "gone.txt")]})
    with pytest.raises(IngestValidationError, match="row 1: file not found"):
        ip.run_line_magic("ingest", "--bucket frames --frame df --path-col path")


def test_failed_items_warn_all_failed_raises_and_retry(ip, signed_in, tmp_path, capsys):
    make_files(tmp_path / "data", 3)
    make_files(tmp_path / "data", 2, prefix="bad")
    signed_in.update_settings(fail_filenames=["bad*"])
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket --no-strict -o res", "data/\n")
    res = ip.user_ns["res"]
    assert res.status == "completed_with_errors"
    err = capsys.readouterr().err
    assert "2 item(s) failed" in err and "bad0.txt" in err
    fails = res.failures
    assert len(fails) == 2 and set(fails["stage"]) == {"processing"}
    assert all(s.endswith(("bad0.txt", "bad1.txt")) for s in fails["source"])
    # everything fails -> FAILED -> the cell raises (headless runs stop)
    make_files(tmp_path / "only_bad", 2, prefix="bad_x")
    res2 = ip.run_cell("%%ingest --bucket docs -o res2\nonly_bad/\n")
    assert isinstance(res2.error_in_exec, IngestRunError) and "FAILED" in str(res2.error_in_exec)
    assert ip.user_ns["res2"].status == "failed"
    # retry the failed items of the first result once the cause is fixed
    signed_in.update_settings(fail_filenames=[])
    ip.run_line_magic("ingest", "--bucket docs --retry-failed res -o res3")
    res3 = ip.user_ns["res3"]
    assert len(res3.objects) == 2 and res3.status == "completed"
    assert sorted(os.path.basename(i.source) for i in res3.items) == ["bad0.txt", "bad1.txt"]
    assert len(objects_of("docs")) == 7  # reprocessed, not duplicated
    # and by task id
    ip.run_line_magic("ingest", f"--bucket docs --retry-failed {ip.user_ns['res2'].tasks[0]} -o res4")
    assert ip.user_ns["res4"].status == "completed" and len(objects_of("docs")) == 7


def test_no_wait_returns_at_once_and_wait_later(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 3)
    signed_in.update_settings(pace_seconds=0.5)
    t0 = time.monotonic()
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket --no-wait -o res", "data/\n")
    res = ip.user_ns["res"]
    assert time.monotonic() - t0 < 1.5 + 1.0  # upload only; processing takes 1.5 s more
    assert res.status == "running"
    res.wait()
    assert res.status == "completed"


def test_cancel(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 4)
    signed_in.update_settings(pace_seconds=1.0)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket --no-wait -o res", "data/\n")
    res = ip.user_ns["res"]
    assert res.cancel() == res.tasks
    res.wait(timeout=15)
    assert res.status == "canceled"
    assert session.signed_in_client().tasks.get(res.tasks[0]).status == "CANCELED"


def test_interrupt_mid_upload_then_resume(ip, signed_in, tmp_path, monkeypatch, capsys):
    files = make_files(tmp_path / "data", 7, size=2000)
    monkeypatch.setattr(bulk, "CHUNK", 2)  # the upload pipeline's chunks
    signed_in.update_settings(upload_latency_ms=150)  # the interrupt lands while PUTs remain
    real = runner.run_plan
    fired = []

    def interrupting(*a, **kw):
        inner = kw["on_progress"]

        def on_progress(stats):
            inner(stats)
            if stats.files_done >= 3 and not fired:
                fired.append(stats.files_done)
                os.kill(os.getpid(), signal.SIGINT)  # the stop button

        kw["on_progress"] = on_progress
        return real(*a, **kw)

    monkeypatch.setattr(runner, "run_plan", interrupting)
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("ingest", "--bucket docs --create-bucket --concurrency 1", "data/\n")
    assert fired
    assert "Re-run the cell to resume" in capsys.readouterr().err
    time.sleep(0.5)
    c = session.signed_in_client()
    uploads = list(c.uploads.iter("docs"))
    assert all(u.status != "PENDING" for u in uploads), [u.status for u in uploads]  # nothing half-done
    confirmed = objects_of("docs")
    assert 2 <= len(confirmed) < 7
    assert len({sha_of(o) for o in confirmed}) == len(confirmed)
    monkeypatch.setattr(runner, "run_plan", real)
    ip.run_cell_magic("ingest", "--bucket docs -o res", "data/\n")
    res = ip.user_ns["res"]
    objs = objects_of("docs")
    assert len(objs) == len(files)
    assert len({sha_of(o) for o in objs}) == len(files)
    # every object, including the ones confirmed before the interrupt, was processed
    task = c.tasks.get(res.tasks[0])
    assert task.status == "COMPLETED" and task.object_count == len(files)
    assert sorted(res.objects) == sorted(o.object_id for o in objs)


def test_syncs_start_initial_only_syncs(ip, signed_in, tmp_path):
    from tests.fixtures.moto_s3 import moto_s3_server

    with moto_s3_server() as s3:
        s3.create_bucket("raw-media")
        s3.put_objects("raw-media", {"2026/a.txt": b"alpha\n", "2026/b.txt": b"beta\n", "other/c.txt": b"c\n"})
        c = session.signed_in_client()
        conn = c.connections.create("Production S3", "s3", s3.provider_config())
        make_files(tmp_path / "data", 1)
        ip.run_cell_magic(
            "ingest",
            "--bucket synced --create-bucket -o res",
            'data/f0.txt\ns3://raw-media/2026/ via "Production S3"\n',
        )
        res = ip.user_ns["res"]
        assert len(res.syncs) == 1
        sync = c.syncs.get("synced", res.syncs[0])
        assert sync.sync_mode == "initial_only" and sync.connection_id == conn.connection_id
        assert len(res.tasks) >= 2
        assert res.status in ("completed", "completed_with_errors")
        names = sorted(
            os.path.basename(sha)
            for sha in [(o.blobs[0].details or {}).get("filename") or "" for o in objects_of("synced")]
        )
        assert names == ["a.txt", "b.txt", "f0.txt"]


def test_ingest_leaves_objects_another_run_is_making_to_it(ip, signed_in, tmp_path, capsys):
    """Another run of this kernel (a --no-wait one still going, say) made these files' objects:
    the cell says it leaves them to that run, which submits them; this cell makes no batch."""
    import threading

    from mixpeek_magics.ingest import makers

    files = make_files(tmp_path / "data", 3)
    c = session.signed_in_client()
    c.buckets.create("docs", bucket_schema={"properties": {"file": {"type": "text"}}})
    ids = [o.object_id for o in bulk.bulk_upload(c, "docs", files, submit=False).outcomes]
    makers.ACTIVE_RUNS.add(424242, ids)

    def other_run_submits() -> None:
        time.sleep(1.0)
        c.batches.submit("docs", c.batches.create("docs", ids).batch_id)
        makers.ACTIVE_RUNS.end(424242)

    t = threading.Thread(target=other_run_submits)
    t.start()
    try:
        ip.run_cell_magic("ingest", "--bucket docs -o res", "data/\n")
    finally:
        t.join()
        makers.ACTIVE_RUNS.end(424242)
    res = ip.user_ns["res"]
    out = capsys.readouterr().out
    assert "Another run made 3 of these objects and has not submitted them yet" in out
    assert "3 submitted by the run that made them" in out
    assert res.batches == [] and res.status == "completed"


def test_a_sync_is_followed_until_its_run_ends(ip, signed_in, tmp_path):
    """A sync run submits a batch per batch_size files as it goes: the cell waits for the run to
    end and for every task it started, not only those there when the sync was created."""
    from tests.fixtures.moto_s3 import moto_s3_server

    with moto_s3_server() as s3:
        s3.create_bucket("raw-media")
        s3.put_objects("raw-media", {f"many/f{i:03d}.txt": f"file {i}\n".encode() for i in range(101)})
        c = session.signed_in_client()
        c.connections.create("Slow S3", "s3", s3.provider_config())
        signed_in.update_settings(sync_batch_seconds=1.0)
        try:
            ip.run_cell_magic(
                "ingest", "--bucket synced --create-bucket -o res", 's3://raw-media/many/ via "Slow S3"\n'
            )
        finally:
            signed_in.update_settings(sync_batch_seconds=0.0)
        res = ip.user_ns["res"]
        sync = c.syncs.get("synced", res.syncs[0])
        assert len(sync.task_ids) == 3 and sorted(res.tasks) == sorted(sync.task_ids)  # 50 + 50 + 1 files
        assert res.status == "completed"
        assert all(c.tasks.get(t).status == "COMPLETED" for t in res.tasks)
        assert len(objects_of("synced")) == 101
