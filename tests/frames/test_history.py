"""task_history / task_timeline against the local server and a real journal."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mixpeek_magics.client import statuses
from mixpeek_magics.frames import TASK_COLUMNS, task_history, task_timeline
from mixpeek_magics.tracking.snapshot import TaskSnapshot

from .conftest import T0, at

EXPECTED_DTYPES = {
    "task_id": "str",
    "task_type": "str",
    "status": "category",
    "is_terminal": "bool",
    "first_seen": "datetime64[ns, UTC]",
    "started": "datetime64[ns, UTC]",
    "finished": "datetime64[ns, UTC]",
    "duration": "timedelta64[ns]",
    "processed": "Int64",
    "total": "Int64",
    "percentage": "Float64",
    "error": "str",
    "batch_id": "str",
    "bucket_id": "str",
    "namespace_id": "str",
    "sync_config_id": "str",
    "source_cell": "str",
    "inputs_count": "Int64",
    "outputs_count": "Int64",
}


def _dtypes(frame) -> dict[str, str]:
    return {c: str(t) for c, t in frame.dtypes.items()}


def record(journal, task_id, steps, context=None, base_url=None, task_type="api_buckets_batches_process"):
    """``steps``: [(seconds after T0, status), ...] observed in that order."""
    first = at(T0, steps[0][0])
    for secs, status in steps:
        journal.record(
            TaskSnapshot(
                task_id=task_id, status=status, task_type=task_type, first_seen=first, observed_at=at(T0, secs)
            ),
            context,
            base_url=base_url,
        )


def test_columns_and_dtypes_with_rows_and_empty(frames_env, tmp_path):
    c = frames_env.client
    frames_env.server.seed_tasks(12, statuses=["COMPLETED", "FAILED", "PROCESSING"])
    frame = task_history(c, journal=frames_env.journal)
    assert list(frame.columns) == list(EXPECTED_DTYPES) == list(TASK_COLUMNS)
    assert _dtypes(frame) == EXPECTED_DTYPES
    assert len(frame) == 12
    # a task record carries no progress; nothing watched it, so nothing is known
    assert frame["processed"].isna().all() and frame["total"].isna().all() and frame["batch_id"].isna().all()
    assert frame.loc[frame.status == "FAILED", "error"].eq("synthetic failure").all()
    assert frame.loc[frame.status == "COMPLETED", "error"].isna().all()
    assert frame["is_terminal"].tolist() == [statuses.is_terminal(s) for s in frame["status"].astype(str)]
    # nothing journaled: no times
    assert frame["first_seen"].isna().all() and frame["duration"].isna().all()

    # no rows at all: same columns, same dtypes
    empty = task_history(c, status="CANCELED", journal=frames_env.journal)
    assert len(empty) == 0
    assert list(empty.columns) == list(EXPECTED_DTYPES)
    assert _dtypes(empty) == EXPECTED_DTYPES
    assert list(empty["status"].cat.categories) == list(statuses.LIFECYCLE_ORDER)
    assert empty["status"].cat.ordered


def test_status_categorical_lifecycle_order_keeps_unknown(frames_env):
    import httpx

    from mixpeek_magics.client import Mixpeek
    from tests.fixtures.newer_server import NewerServer

    srv = frames_env.server
    srv.seed_tasks(6, statuses=["COMPLETED", "QUEUED", "SKIPPED", "PENDING", "FAILED", "PROCESSING"])
    front = NewerServer(srv.app, {b'"SKIPPED"': b'"BRAND_NEW_STATUS"'})  # a status v0.82 does not have
    with Mixpeek(api_key=srv.api_key, base_url="http://local.test", transport=httpx.ASGITransport(app=front)) as c:
        frame = task_history(c, include_journal=False)
    cat = frame["status"].cat
    assert cat.ordered
    assert list(cat.categories[: len(statuses.LIFECYCLE_ORDER)]) == list(statuses.LIFECYCLE_ORDER)
    assert list(cat.categories[len(statuses.LIFECYCLE_ORDER) :]) == ["BRAND_NEW_STATUS"]
    assert sorted(frame["status"].astype(str)) == sorted(
        ["COMPLETED", "QUEUED", "BRAND_NEW_STATUS", "PENDING", "FAILED", "PROCESSING"]
    )
    # sorting follows the lifecycle, unknown last
    ordered = frame.sort_values("status")["status"].astype(str).tolist()
    assert ordered == ["PENDING", "QUEUED", "PROCESSING", "COMPLETED", "FAILED", "BRAND_NEW_STATUS"]
    assert not frame.loc[frame.status == "BRAND_NEW_STATUS", "is_terminal"].any()
    assert frame.loc[frame.status == "QUEUED", "is_terminal"].eq(False).all()


def test_journal_join_times_durations_and_source_cell(frames_env):
    srv, c, journal = frames_env.server, frames_env.client, frames_env.journal
    ran, instant, running, unseen = srv.seed_tasks(4, statuses=["COMPLETED", "FAILED", "PROCESSING", "COMPLETED"])
    record(
        journal,
        ran,
        [(0, "PENDING"), (3, "PENDING"), (4, "PROCESSING"), (9.5, "PROCESSING"), (10, "COMPLETED")],
        context={"notebook": "analysis.ipynb", "cell": 7, "source": "%ingest --bucket photos"},
        base_url=srv.base_url,
    )
    record(journal, instant, [(20, "PENDING"), (22.25, "FAILED")])  # never seen running
    record(journal, running, [(30, "QUEUED"), (31, "PROCESSING")])
    frame = task_history(c, journal=journal).set_index("task_id")
    ts = lambda s: pd.Timestamp(at(T0, s))  # noqa: E731

    assert frame.loc[ran, "first_seen"] == ts(0)
    assert frame.loc[ran, "started"] == ts(4)
    assert frame.loc[ran, "finished"] == ts(10)
    assert frame.loc[ran, "duration"] == pd.Timedelta(seconds=6)
    assert frame.loc[ran, "source_cell"] == "analysis.ipynb [7] %ingest --bucket photos"

    assert frame.loc[instant, "first_seen"] == ts(20)
    # its first non-pending observation was the terminal one: never seen running
    assert frame.loc[instant, "started"] == ts(22.25) == frame.loc[instant, "finished"]
    assert frame.loc[instant, "duration"] == pd.Timedelta(seconds=2.25)  # finished - first_seen

    assert frame.loc[running, "started"] == ts(31) and pd.isna(frame.loc[running, "finished"])
    assert pd.isna(frame.loc[running, "duration"])
    assert pd.isna(frame.loc[unseen, "first_seen"]) and pd.isna(frame.loc[unseen, "duration"])
    assert str(frame["first_seen"].dtype) == "datetime64[ns, UTC]"

    # include_journal=False: the same tasks, no times
    bare = task_history(c, include_journal=False, journal=journal)
    assert set(bare.task_id) == set(frame.index) and bare["first_seen"].isna().all()


def test_duration_falls_back_to_first_seen_when_never_seen_running(frames_env):
    from mixpeek_magics.frames import build_task_frame
    from mixpeek_magics.frames._journal import JournalIndex

    srv, c = frames_env.server, frames_env.client
    (tid,) = srv.seed_tasks(1, statuses=["COMPLETED"])
    rows = [{"task_id": tid, "first_seen": at(T0, 0).isoformat(), "started": None, "finished": at(T0, 42).isoformat()}]
    frame = build_task_frame(list(c.tasks.iter()), JournalIndex.from_rows(rows))
    assert pd.isna(frame.loc[0, "started"])
    assert frame.loc[0, "duration"] == pd.Timedelta(seconds=42)


def test_task_timeline_rows(frames_env):
    srv, journal = frames_env.server, frames_env.journal
    (tid,) = srv.seed_tasks(1, statuses=["COMPLETED"])
    record(journal, tid, [(0, "PENDING"), (1, "PENDING"), (2, "PROCESSING"), (5, "COMPLETED")])
    tl = task_timeline(tid, journal=journal)
    # an unchanged observation writes no transition
    assert tl["status"].astype(str).tolist() == ["PENDING", "PROCESSING", "COMPLETED"]
    assert tl["observed_at"].tolist() == [pd.Timestamp(at(T0, s)) for s in (0, 2, 5)]
    assert list(tl.columns) == ["observed_at", "status", "processed", "total", "percentage", "error"]
    empty = task_timeline("task_never_seen", journal=journal)
    assert len(empty) == 0 and list(empty.columns) == list(tl.columns)
    assert {c: str(t) for c, t in empty.dtypes.items()} == {c: str(t) for c, t in tl.dtypes.items()}


def test_since_until_filter_on_first_seen(frames_env):
    srv, c, journal = frames_env.server, frames_env.client, frames_env.journal
    now = datetime.now(timezone.utc)
    old, recent, unseen = srv.seed_tasks(3, statuses=["COMPLETED", "COMPLETED", "COMPLETED"])
    for tid, ago in ((old, timedelta(hours=3)), (recent, timedelta(minutes=20))):
        journal.record(TaskSnapshot(task_id=tid, status="COMPLETED", first_seen=now - ago, observed_at=now - ago))

    ids = lambda f: set(f.task_id)  # noqa: E731
    assert ids(task_history(c, journal=journal)) == {old, recent, unseen}
    assert ids(task_history(c, since="1h", journal=journal)) == {recent}
    assert ids(task_history(c, since="30m", journal=journal)) == {recent}
    assert ids(task_history(c, since="10m", journal=journal)) == set()
    assert ids(task_history(c, since="1d", journal=journal)) == {old, recent}
    assert ids(task_history(c, until="2h", journal=journal)) == {old}
    assert ids(task_history(c, since="4h", until="1h", journal=journal)) == {old}
    iso = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(task_history(c, since=iso, journal=journal)) == {recent}
    assert ids(task_history(c, until=now - timedelta(hours=1), journal=journal)) == {old}
    with pytest.raises(ValueError, match="not understood"):
        task_history(c, since="yesterday-ish", journal=journal)
    with pytest.raises(ValueError, match="unit"):
        task_history(c, since="3 fortnights", journal=journal)
    with pytest.raises(ValueError, match="after until"):
        task_history(c, since="1h", until="2h", journal=journal)


def test_parse_when_forms():
    from mixpeek_magics.frames import parse_when

    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_when("2h", now=now) == now - timedelta(hours=2)
    assert parse_when("30m", now=now) == now - timedelta(minutes=30)
    assert parse_when("1d", now=now) == now - timedelta(days=1)
    assert parse_when("90 seconds", now=now) == now - timedelta(seconds=90)
    assert parse_when(timedelta(minutes=5), now=now) == now - timedelta(minutes=5)
    assert parse_when("2024-04-30T10:00:00Z") == datetime(2024, 4, 30, 10, tzinfo=timezone.utc)
    assert parse_when("2024-04-30T12:00:00+02:00") == datetime(2024, 4, 30, 10, tzinfo=timezone.utc)
    assert parse_when("2024-04-30") == datetime(2024, 4, 30, tzinfo=timezone.utc)
    assert parse_when(datetime(2024, 4, 30, 10)) == datetime(2024, 4, 30, 10, tzinfo=timezone.utc)
    assert parse_when(pd.Timestamp("2024-04-30 10:00", tz="UTC")) == datetime(2024, 4, 30, 10, tzinfo=timezone.utc)
    assert parse_when(None) is None


def test_status_and_type_filters(frames_env):
    srv, c = frames_env.server, frames_env.client
    type_a, type_b = "api_buckets_batches_process", "api_buckets_uploads_batch_confirm"  # TaskType values
    srv.seed_tasks(9, statuses=["COMPLETED", "FAILED", "PROCESSING"], task_type=type_a)
    srv.seed_tasks(4, statuses=["COMPLETED"], task_type=type_b)
    srv.clear_request_log()
    f = task_history(c, status="completed", include_journal=False)
    assert len(f) == 3 + 4 and set(f.status.astype(str)) == {"COMPLETED"}
    f = task_history(c, status=["COMPLETED", "FAILED"], task_type=type_a, include_journal=False)
    assert len(f) == 6 and set(f.task_type) == {type_a}
    f = task_history(c, task_type=[type_b], include_journal=False)
    assert len(f) == 4


def test_bucket_filter_by_id_and_name(frames_env):
    srv, c = frames_env.server, frames_env.client
    other = c.buckets.create("other-bucket", bucket_schema={"properties": {"content": {"type": "text"}}})
    _, t1 = frames_env.run_batch(["a.txt", "b.txt"])
    _, t2 = frames_env.run_batch(["c.txt"], bucket=other.bucket_id)
    srv.seed_tasks(5)
    all_tasks = task_history(c, include_journal=False)
    assert {t1.task_id, t2.task_id} <= set(all_tasks.task_id)
    by_name = task_history(c, bucket="frames-bucket", include_journal=False)
    by_id = task_history(c, bucket=frames_env.bucket_id, include_journal=False)
    assert set(by_name.task_id) == set(by_id.task_id)
    assert t1.task_id in set(by_id.task_id) and t2.task_id not in set(by_id.task_id)
    assert set(by_id.bucket_id) == {frames_env.bucket_id}
    row = by_id.set_index("task_id").loc[t1.task_id]
    assert row["namespace_id"] == frames_env.namespace_id and row["batch_id"]
    assert pd.isna(row["processed"])  # never watched: the task record has no counts
    assert row["status"] == "COMPLETED" and row["inputs_count"] >= 1 and pd.notna(row["outputs_count"])
    assert set(task_history(c, bucket="other-bucket", include_journal=False).task_id) >= {t2.task_id}
    with pytest.raises(ValueError, match="not found"):
        task_history(c, bucket="no-such-bucket", include_journal=False)


def test_source_cell_and_counts_of_a_watched_task(frames_env):
    from mixpeek_magics.tracking import PollPolicy, watch

    c = frames_env.client
    prov = {"notebook": "ingest.ipynb", "cell": 3, "source": "%%ingest --bucket frames-bucket"}
    _, task = frames_env.run_batch(["p.txt", "q.txt"], metadata={"provenance": prov})
    watch(
        task.task_id, client=c, journal=frames_env.journal, context=prov, policy=PollPolicy(initial=0.05, maximum=0.2)
    )
    frame = task_history(c, journal=frames_env.journal).set_index("task_id")
    row = frame.loc[task.task_id]
    assert row["source_cell"] == "ingest.ipynb [3] %%ingest --bucket frames-bucket"
    assert row["processed"] == 2 and row["total"] == 2 and row["percentage"] == 100.0


def test_pagination_fetches_every_page(frames_env):
    srv, c = frames_env.server, frames_env.client
    ids = srv.seed_tasks(2600)
    srv.clear_request_log()
    frame = task_history(c, include_journal=False)
    pages = [r for r in srv.request_log if r == ("POST", "/v1/tasks/list")]
    assert len(frame) == 2600 and set(frame.task_id) == set(ids)
    assert frame.task_id.is_unique
    assert len(pages) == 3  # 1000 + 1000 + 600


def test_models_and_dicts_build_the_same_frame(frames_env):
    from mixpeek_magics.frames import build_task_frame

    srv, c = frames_env.server, frames_env.client
    srv.seed_tasks(30, statuses=["COMPLETED", "SKIPPED", "FAILED"])
    models = list(c.tasks.iter())
    a = build_task_frame(models)
    b = build_task_frame([m.model_dump(mode="json") for m in models])
    pd.testing.assert_frame_equal(a, b)
    # odd records (missing keys, null additional_data) take the slow path but still work
    odd = [
        {"task_id": "task_x", "status": "COMPLETED"},
        {"task_id": "task_y", "status": "FAILED", "additional_data": None, "inputs": None},
    ]
    f = build_task_frame(odd)
    assert f.task_id.tolist() == ["task_x", "task_y"] and f.processed.isna().all()


def test_no_client_and_no_session_is_a_clear_error():
    with pytest.raises(RuntimeError, match="mixpeek_auth|client="):
        task_history()
