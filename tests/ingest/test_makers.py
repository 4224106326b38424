"""The run that made an object submits it: objects another live run made are left to it for a
bounded time, and submitted here once that run ended without taking them (mixpeek_magics.ingest.makers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from mixpeek_magics.ingest import bulk_upload, makers
from mixpeek_magics.ingest.parser import parse_body
from mixpeek_magics.ingest.plan import build_plan
from mixpeek_magics.ingest.runner import IngestState, run_plan
from tests.fixtures.files import make_files

SCHEMA = {"properties": {"file": {"type": "text"}}}


def _iso(seconds_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).isoformat()


def _made_elsewhere(client, files) -> list[str]:
    """The files' objects, made (not submitted) as another run would."""
    made = bulk_upload(client, "files", files, submit=False)
    return [o.object_id for o in made.outcomes]


def _ingest(client, tmp_path, state_name: str = "state.sqlite3"):
    plan = build_plan(parse_body(f"{tmp_path}/in/*.txt"))
    bucket = client.buckets.get("files")
    started = time.monotonic()
    res = run_plan(client, plan, bucket, state=IngestState(tmp_path / state_name))
    return res, time.monotonic() - started


def _batches_holding(client, object_ids) -> list[str]:
    out = []
    for b in client.batches.iter("files"):
        full = client.batches.get("files", b.batch_id)
        if set(object_ids) & set(full.object_ids or []):
            out.append(b.batch_id)
    return out


# --------------------------------------------------------------------------- the rule, unit by unit


def test_a_run_of_this_process_still_going_keeps_its_objects_until_it_ends():
    makers.ACTIVE_RUNS.add(1, ["obj_a"])
    try:
        wait = makers.left_to_maker("obj_a", "k", None, _iso(9999), run=2)
        assert wait is not None and not makers.released("obj_a", wait)
    finally:
        makers.ACTIVE_RUNS.end(1)
    assert makers.released("obj_a", wait)
    # once ended, its objects are this process's: submitted at once, however young
    assert makers.left_to_maker("obj_a", "k", None, _iso(0), run=2) is None


def test_the_ingest_states_owner_decides_on_this_host():
    host = socket.gethostname()
    me = makers.Maker(owner=f"{host}:{os.getpid()}", recorded=_iso(0))
    assert makers.left_to_maker("obj_b", "k", me, _iso(0), run=1) is None  # an ended run of this process
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = makers.Maker(owner=f"{host}:{sleeper.pid}", recorded=_iso(9999))
        wait = makers.left_to_maker("obj_b", "k", live, _iso(9999), run=1)
        assert wait is not None and wait.pid == sleeper.pid and not makers.released("obj_b", wait)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert makers.released("obj_b", wait)  # its process is gone
    dead = makers.Maker(owner=f"{host}:{sleeper.pid}", recorded=_iso(0))
    assert makers.left_to_maker("obj_b", "k", dead, _iso(0), run=1) is None
    assert makers.left_to_maker("obj_b", "k", makers.Maker(owner=None), _iso(0), run=1) is None  # an old row


def test_without_a_process_to_ask_the_objects_age_decides():
    other_host = makers.Maker(owner="elsewhere.example:123", recorded=_iso(10))
    wait = makers.left_to_maker("obj_c", "k", other_host, None, run=1)
    assert wait is not None and wait.deadline - time.monotonic() == pytest.approx(
        makers.UNKNOWN_MAKER_WINDOW - 10, abs=2
    )
    old = makers.Maker(owner="elsewhere.example:123", recorded=_iso(makers.UNKNOWN_MAKER_WINDOW + 5))
    assert makers.left_to_maker("obj_c", "k", old, None, run=1) is None
    # only the server knew it: its created_at
    assert makers.left_to_maker("obj_c", "k", None, _iso(1), run=1) is not None
    assert makers.left_to_maker("obj_c", "k", makers.Maker(owner=""), _iso(1), run=1) is not None
    assert makers.left_to_maker("obj_c", "k", None, _iso(makers.UNKNOWN_MAKER_WINDOW + 5), run=1) is None
    assert makers.left_to_maker("obj_c", "k", None, "not a time", run=1) is None
    assert makers.released("obj_c", makers.LeftToMaker("k", time.monotonic() - 1))


def test_the_state_keeps_the_makers_name_when_another_run_records_the_object(tmp_path):
    state = IngestState(tmp_path / "s.sqlite3")
    ns, bucket = ("ns_1", "demo"), ("bkt_1", "files")
    state.record("srv", ns, bucket, [("sha1", "a.txt", "obj_1")], made_here=set())  # found, not made
    assert state.lookup("srv", ["bkt_1"], ["sha1"])["sha1"]["owner"] == ""
    state.record("srv", ns, bucket, [("sha1", "a.txt", "obj_1")], made_here={"obj_1"})
    assert state.lookup("srv", ["bkt_1"], ["sha1"])["sha1"]["owner"] == makers.owner_tag()
    with state._db() as con:
        con.execute("UPDATE items SET owner='otherhost:1'")
    state.record("srv", ns, bucket, [("sha1", "a.txt", "obj_1")], made_here=set())
    assert state.lookup("srv", ["bkt_1"], ["sha1"])["sha1"]["owner"] == "otherhost:1"


def test_a_state_file_from_before_owners_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE items (server TEXT NOT NULL, namespace_id TEXT NOT NULL DEFAULT '', namespace_name TEXT, "
            "bucket_id TEXT NOT NULL, bucket_name TEXT, key TEXT NOT NULL, source TEXT, object_id TEXT, batch_id TEXT, "
            "task_id TEXT, status TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY (server, bucket_id, key))"
        )
        con.execute(
            "INSERT INTO items VALUES ('srv','', NULL, 'bkt_1', 'files', 'sha0', 'x', 'obj_0', NULL, NULL, 'confirmed', 't')"
        )
    state = IngestState(path)
    assert state.lookup("srv", ["bkt_1"], ["sha0"])["sha0"]["owner"] is None
    state.record("srv", ("", None), ("bkt_1", "files"), [("sha1", "y", "obj_1")])
    assert state.lookup("srv", ["bkt_1"], ["sha1"])["sha1"]["owner"] == makers.owner_tag()


# --------------------------------------------------------------------------- runs against the local server


def test_objects_another_run_is_making_are_left_to_it(client, tmp_path):
    """The other run submits them while this one waits: this run makes no batch of its own."""
    ids = _made_elsewhere(client, make_files(tmp_path / "in", 3))
    makers.ACTIVE_RUNS.add(999, ids)

    def other_run_submits() -> None:
        time.sleep(1.5)
        batch = client.batches.create("files", ids)
        client.batches.submit("files", batch.batch_id)
        makers.ACTIVE_RUNS.end(999)

    t = threading.Thread(target=other_run_submits)
    t.start()
    try:
        res, elapsed = _ingest(client, tmp_path)
    finally:
        t.join()
        makers.ACTIVE_RUNS.end(999)
    assert [i.status for i in res.items] == ["duplicate"] * 3
    assert res.tasks == [] and res.objects == []
    assert res.left_to_makers == 3 and "3 submitted by the run that made them" in res.summary()
    assert 1.4 <= elapsed < 10
    assert len(_batches_holding(client, ids)) == 1


def test_objects_of_a_run_that_ended_without_submitting_are_submitted_here(client, tmp_path):
    ids = _made_elsewhere(client, make_files(tmp_path / "in", 3))
    makers.ACTIVE_RUNS.add(999, ids)
    threading.Timer(1.0, makers.ACTIVE_RUNS.end, args=(999,)).start()
    res, elapsed = _ingest(client, tmp_path)
    assert [i.status for i in res.items] == ["recovered"] * 3 and sorted(res.objects) == sorted(ids)
    assert len(res.tasks) == 1 and 0.9 <= elapsed < 10
    assert len(_batches_holding(client, ids)) == 1


def test_young_objects_only_the_server_knew_wait_out_the_window(client, tmp_path, monkeypatch):
    """Made by a run this machine cannot ask (another machine): left to it until they are
    UNKNOWN_MAKER_WINDOW old, then submitted here; old ones at once."""
    ids = _made_elsewhere(client, make_files(tmp_path / "in", 3))
    monkeypatch.setattr(makers, "UNKNOWN_MAKER_WINDOW", 2.0)
    res, elapsed = _ingest(client, tmp_path)
    assert sorted(res.objects) == sorted(ids) and len(res.tasks) == 1
    assert 1.0 <= elapsed < 10  # waited for the window
    more = [tmp_path / "in" / "g.txt"]
    more[0].write_text("another file\n")
    [late] = _made_elsewhere(client, more)
    monkeypatch.setattr(makers, "UNKNOWN_MAKER_WINDOW", 0.0)
    res2, elapsed2 = _ingest(client, tmp_path, "state2.sqlite3")
    assert late in res2.objects and elapsed2 < 5


def test_pending_objects_of_a_batch_still_running_are_taken(client, tmp_path, local_server):
    """A PENDING object is not processed yet, in no batch or in one not finished: the bucket's
    running batches tell them apart, so these are left to their batch, with no wait and no batch."""
    local_server.update_settings(pace_seconds=0.5)
    try:
        made = bulk_upload(client, "files", make_files(tmp_path / "in", 3))
        assert made.task is not None
        assert {o.status for o in client.objects.iter("files")} == {"PENDING"}
        res, elapsed = _ingest(client, tmp_path)
        running = client.batches.get("files", made.batch_id).status
    finally:
        local_server.update_settings(pace_seconds=0.0)
    assert running in ("PENDING", "QUEUED", "IN_PROGRESS", "PROCESSING")  # still running when the run looked
    assert [i.status for i in res.items] == ["duplicate"] * 3 and res.tasks == []
    assert elapsed < makers.UNKNOWN_MAKER_WINDOW / 2


def test_a_duplicate_of_a_deleted_object_is_uploaded_again(client, tmp_path):
    """Upload deduplication matches an earlier confirmed upload by hash, even when its object was
    deleted since: that file is uploaded again as a new object, and the run submits. A state row
    naming a deleted object it confirmed but never submitted (an interrupted run) heals the same way."""
    import sqlite3

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    (folder / "b.txt").write_text("beta\n")
    first, _ = _ingest(client, tmp_path)
    first.wait(timeout=60)
    gone = next(i.object_id for i in first.items if i.source.endswith("a.txt"))
    client.objects.delete("files", gone)
    (folder / "c.txt").write_text("gamma, new\n")

    def check(res) -> str:
        res.wait(timeout=60)
        by_name = {os.path.basename(i.source): i for i in res.items}
        assert sorted(by_name) == ["a.txt", "b.txt", "c.txt"], res.summary()
        assert by_name["a.txt"].status == "new" and by_name["a.txt"].object_id != gone
        assert by_name["b.txt"].status in ("duplicate", "already_ingested")  # processed by the first run
        assert res.status == "completed" and len(res.batches) == 1
        return by_name["a.txt"].object_id

    again = check(_ingest(client, tmp_path, "another-machine.sqlite3")[0])
    # the first machine: a.txt confirmed, never submitted, and its object deleted meanwhile
    with sqlite3.connect(tmp_path / "state.sqlite3") as con:
        con.execute("UPDATE items SET status='confirmed', object_id=? WHERE source LIKE '%a.txt'", (again,))
    client.objects.delete("files", again)
    gone = again
    check(_ingest(client, tmp_path)[0])


def test_every_page_of_running_batches_is_read(client, tmp_path, local_server, monkeypatch):
    """The objects of running batches beyond the first page of ``batches/list`` count as taken too."""
    from mixpeek_magics.ingest import runner

    ids = _made_elsewhere(client, make_files(tmp_path / "in", 3))
    local_server.update_settings(pace_seconds=3.0)
    try:
        for oid in ids:  # a batch each, running for 3 s: two on the two workers, one waiting
            client.batches.submit("files", client.batches.create("files", [oid]).batch_id)
        deadline = time.monotonic() + 2
        while [b.status for b in client.batches.iter("files")].count("PROCESSING") < 2:
            assert time.monotonic() < deadline, "the two workers did not start"
            time.sleep(0.05)
        monkeypatch.setattr(runner, "_BATCH_PAGE", 1)
        res, elapsed = _ingest(client, tmp_path)
    finally:
        local_server.update_settings(pace_seconds=0.0)
    assert [i.status for i in res.items] == ["duplicate"] * 3 and res.tasks == []
    assert elapsed < 1.5  # known taken at once, not once a batch it missed had ended
