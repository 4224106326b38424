"""The SQLite timeline journal: contents, change-only rows, concurrency."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timedelta, timezone

from mixpeek_magics.tracking.journal import Journal, default_journal
from mixpeek_magics.tracking.snapshot import TaskSnapshot

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def snap(tid, status, t, processed=None, total=None, error=None, **kw):
    pct = None if processed is None or not total else 100.0 * processed / total
    return TaskSnapshot(
        task_id=tid,
        status=status,
        processed=processed,
        total=total,
        percentage=pct,
        error=error,
        first_seen=T0,
        observed_at=T0 + timedelta(seconds=t),
        **kw,
    )


def test_records_transitions_only_when_something_changed(tmp_path):
    j = Journal(tmp_path / "j.sqlite3")
    ctx = {"cell": 7, "notebook": "demo.ipynb", "source": "%mixpeek_ingest ./data"}
    meta = {"bucket_id": "bkt_1", "batch_id": "btch_1", "namespace_id": "ns_1"}
    assert j.record(
        snap("t1", "PENDING", 0, task_type="api_buckets_batches_process"),
        ctx,
        base_url="http://127.0.0.1:9/",
        meta=meta,
    )
    assert not j.record(snap("t1", "PENDING", 1), ctx, base_url="http://127.0.0.1:9")  # unchanged poll
    assert j.record(snap("t1", "PROCESSING", 2, 1, 4), ctx, base_url="http://127.0.0.1:9")
    assert j.record(snap("t1", "PROCESSING", 3, 3, 4), ctx, base_url="http://127.0.0.1:9")
    assert j.record(snap("t1", "COMPLETED", 5, 4, 4), ctx, base_url="http://127.0.0.1:9")
    tl = j.timeline("t1")
    assert [r["status"] for r in tl] == ["PENDING", "PROCESSING", "PROCESSING", "COMPLETED"]
    assert [r["processed"] for r in tl] == [None, 1, 3, 4]
    assert tl[-1]["percentage"] == 100.0
    assert tl[0]["observed_at"] == "2024-05-01T12:00:00.000000+00:00"
    (row,) = j.tasks()
    assert row["task_id"] == "t1" and row["base_url"] == "http://127.0.0.1:9"
    assert row["bucket_id"] == "bkt_1" and row["batch_id"] == "btch_1" and row["namespace"] == "ns_1"
    assert row["task_type"] == "api_buckets_batches_process"
    assert row["first_seen"] == "2024-05-01T12:00:00.000000+00:00"
    assert row["started"] == "2024-05-01T12:00:02.000000+00:00"  # first non-PENDING observation
    assert row["finished"] == "2024-05-01T12:00:05.000000+00:00"  # first terminal observation
    assert row["last_status"] == "COMPLETED" and row["terminal"] is True
    assert row["context"] == ctx
    assert j.unfinished() == []


def test_unfinished_per_server_and_failed_items(tmp_path):
    j = Journal(tmp_path / "j.sqlite3")
    j.record(snap("a", "PROCESSING", 0), base_url="http://127.0.0.1:1")
    j.record(snap("b", "PENDING", 0), base_url="http://127.0.0.1:2")
    j.record(snap("c", "FAILED", 0, error="boom"), base_url="http://127.0.0.1:1")
    j.record(snap("d", "COMPLETED_WITH_ERRORS", 0, failed_items=("x.png", "y.png")), base_url="http://127.0.0.1:1")
    j.record(snap("e", "UNKNOWN", 0, error="gone"), base_url="http://127.0.0.1:1", gone=True)
    assert j.unfinished("http://127.0.0.1:1") == ["a"]
    assert sorted(j.unfinished()) == ["a", "b"]
    rows = {r["task_id"]: r for r in j.tasks(base_url="http://127.0.0.1:1")}
    assert rows["c"]["error"] == "boom" and rows["c"]["finished"] is not None
    assert rows["d"]["failed_items"] == ["x.png", "y.png"]
    assert rows["e"]["gone"] is True
    assert [r["task_id"] for r in j.tasks(status="failed")] == ["c"]
    assert {r["task_id"] for r in j.tasks(unfinished=True)} == {"a", "b"}


def test_survives_reopen_and_default_path_from_env(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "journal.sqlite3"
    monkeypatch.setenv("MIXPEEK_JOURNAL_PATH", str(path))
    j = default_journal()
    assert j.path == path
    j.record(snap("t", "PROCESSING", 0), base_url="http://x")
    again = Journal(path)  # a new kernel
    assert again.unfinished("http://x") == ["t"]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"


def _writer(path: str, worker: int, n: int) -> None:
    j = Journal(path)
    for i in range(n):
        tid = f"w{worker}-{i}"
        j.record(snap(tid, "PENDING", 0), {"cell": worker}, base_url="http://127.0.0.1:5")
        j.record(snap(tid, "PROCESSING", 1, 1, 2), base_url="http://127.0.0.1:5")
        j.record(snap(tid, "COMPLETED", 2, 2, 2), base_url="http://127.0.0.1:5")


def test_two_processes_write_at_once(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]  # no "database is locked"
    j = Journal(path)
    rows = j.tasks()
    assert len(rows) == 300
    assert all(r["last_status"] == "COMPLETED" for r in rows)
    n = sqlite3.connect(path).execute("SELECT COUNT(*) FROM transitions").fetchone()[0]
    assert n == 900
    assert len(j.timeline("w1-149")) == 3
