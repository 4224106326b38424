"""build_task_frame on hand-made records (no server): the chunked fast paths
(records read ``_CHUNK`` at a time, values copied per chunk into the final
arrays, the journal join by slices) must give exactly what a plain per-record
build gives, whatever the chunk size and wherever an odd value first shows up.

Records are shaped like the contract's TaskResponse: a batch task's
``additional_data`` holds only documented keys; progress counts, the sync and
the source cell come from the journal."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mixpeek_magics.client import statuses
from mixpeek_magics.frames import TASK_COLUMNS, _schema, build_task_frame, history
from mixpeek_magics.frames._journal import JournalIndex, format_provenance

T0 = pd.Timestamp("2024-05-01T12:00:00", tz="UTC")


@pytest.fixture(params=[1, 3, 7, 2048], ids=lambda c: f"chunk{c}")
def chunk(request, monkeypatch):
    """Every test runs with tiny chunks (odd values land in later chunks) and
    with the default one (everything in one chunk)."""
    monkeypatch.setattr(history, "_CHUNK", request.param)
    monkeypatch.setattr(history, "_JOIN_CHUNK", max(1, request.param // 2))
    return request.param


def task(i: int, **over) -> dict:
    """A record shaped like the API's (all keys present)."""
    rec = {
        "task_id": f"task_{i:04d}",
        "task_type": "api_buckets_batches_process",
        "status": "COMPLETED",
        "inputs": [f"obj_{i}"],
        "outputs": [],
        "error": None,
        "additional_data": {
            "batch_id": f"btch_{i}",
            "bucket_id": "bkt_1",
            "namespace_id": None,
            "current_tier": 0,
            "total_tiers": 1,
            "object_count": 10,
        },
    }
    data = over.pop("data", None)
    if data:
        rec["additional_data"] = {**rec["additional_data"], **data}
    rec.update(over)
    return rec


# --- a plain per-record build, written out as directly as possible -----------


def _ts(value):
    if value is None:
        return pd.NaT
    try:
        return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")
    except ValueError:
        return pd.NaT


def reference_frame(records: list[dict], journal_rows: list[dict] | None = None) -> pd.DataFrame:
    journal = {r["task_id"]: r for r in journal_rows or []}
    cols: dict[str, list] = {c: [] for c in TASK_COLUMNS}
    order = list(statuses.LIFECYCLE_ORDER)
    for r in records:
        a = r.get("additional_data") or {}
        j = journal.get(r.get("task_id"))
        cols["task_id"].append(r.get("task_id"))
        cols["task_type"].append(r.get("task_type"))
        status = statuses.normalize(r.get("status"))
        if status not in order:
            order.append(status)
        cols["status"].append(status)
        cols["is_terminal"].append(status in statuses.TERMINAL)
        for key in ("batch_id", "bucket_id", "namespace_id"):
            cols[key].append(a.get(key))
        for key in ("processed", "total", "percentage", "sync_config_id"):
            cols[key].append(j.get(key) if j else None)
        cols["error"].append(r.get("error"))
        cols["source_cell"].append(format_provenance(j["context"]) if j and j.get("context") else None)
        cols["inputs_count"].append(None if r.get("inputs") is None else len(r["inputs"]))
        cols["outputs_count"].append(None if r.get("outputs") is None else len(r["outputs"]))
        fs, st, fi = (_ts(j.get(k)) if j else pd.NaT for k in ("first_seen", "started", "finished"))
        cols["first_seen"].append(fs)
        cols["started"].append(st)
        cols["finished"].append(fi)
        begin = fs if (pd.isna(st) or st == fi) else st
        cols["duration"].append(pd.NaT if pd.isna(fi) or pd.isna(begin) else fi - begin)
    data = {}
    for name, dtype in TASK_COLUMNS.items():
        if dtype == "category":
            data[name] = pd.Categorical(cols[name], categories=order, ordered=True)
        elif dtype == "bool":
            data[name] = np.array(cols[name], dtype=bool)
        else:
            data[name] = pd.array(cols[name], dtype=dtype)
    return pd.DataFrame(data)


def check(records, journal_rows=None):
    index = JournalIndex.from_rows(journal_rows) if journal_rows else None
    frame = build_task_frame(records, index)
    pd.testing.assert_frame_equal(frame, reference_frame(records, journal_rows), check_exact=True)
    return frame


# --- the tests -----------------------------------------------------------------


def test_plain_records_match_the_reference(chunk):
    frame = check([task(i) for i in range(20)])
    assert frame["batch_id"].tolist() == [f"btch_{i}" for i in range(20)]
    assert frame["processed"].isna().all()  # a task record carries no progress
    assert {c: str(t) for c, t in frame.dtypes.items()} == TASK_COLUMNS


def test_none_and_missing_values_first_seen_in_a_later_chunk(chunk):
    recs = [task(i) for i in range(10)]
    recs[8] = task(8, error="boom", task_type=None, inputs=None, data={"batch_id": None, "namespace_id": "ns_1"})
    recs[9] = task(9, additional_data=None, outputs=None)
    frame = check(recs)
    assert pd.isna(frame.loc[8, "batch_id"]) and pd.isna(frame.loc[9, "bucket_id"])
    assert frame.loc[8, "bucket_id"] == "bkt_1"
    assert frame["error"].isna().sum() == 9 and frame.loc[8, "error"] == "boom"
    assert frame["namespace_id"].notna().tolist() == [False] * 8 + [True, False]
    assert pd.isna(frame.loc[8, "inputs_count"]) and pd.isna(frame.loc[9, "outputs_count"])


def test_progress_counts_and_sync_come_from_the_journal(chunk):
    """What a watcher last observed: processed / total (Int64), percentage (Float64),
    the sync; NA for tasks it never saw or numbers it never had."""
    recs = [task(i) for i in range(9)]
    rows = [
        {
            "task_id": f"task_{i:04d}",
            "first_seen": T0.isoformat(),
            "started": None,
            "finished": None,
            "processed": p,
            "total": t,
            "percentage": q,
            "sync_config_id": y,
        }
        for i, p, t, q, y in [
            (0, 3, 10, 30.0, None),
            (2, None, None, None, "sync_a"),
            (5, 10, 10, 100.0, None),
            (8, 0, 4, 0.0, "sync_b"),
        ]
    ]
    frame = check(recs, rows)
    assert frame["processed"].tolist() == [3, pd.NA, pd.NA, pd.NA, pd.NA, 10, pd.NA, pd.NA, 0]
    assert frame["total"].tolist() == [10, pd.NA, pd.NA, pd.NA, pd.NA, 10, pd.NA, pd.NA, 4]
    assert frame["percentage"].tolist() == [30.0, pd.NA, pd.NA, pd.NA, pd.NA, 100.0, pd.NA, pd.NA, 0.0]
    assert frame["sync_config_id"].tolist()[2] == "sync_a" and frame["sync_config_id"].notna().sum() == 2
    assert str(frame["processed"].dtype) == "Int64" and str(frame["percentage"].dtype) == "Float64"


def test_text_columns_keep_empty_strings_and_convert_other_values(chunk):
    recs = [task(i, task_type=t) for i, t in enumerate(["a", "b", "c", "", 5, None, "d"])]
    frame = check(recs)
    assert frame["task_type"].tolist()[:5] == ["a", "b", "c", "", "5"]
    assert pd.isna(frame.loc[5, "task_type"])


def test_statuses_unknown_lowercase_none_and_unhashable(chunk):
    stats = ["COMPLETED", "failed", None, "BRAND_NEW", ["x"], "brand_new", "PROCESSING", "QUEUED"]
    recs = [task(i, status=s) for i, s in enumerate(stats)]
    frame = build_task_frame(recs)
    cat = frame["status"].cat
    assert list(cat.categories) == list(statuses.LIFECYCLE_ORDER) + ["BRAND_NEW", "['X']"]
    assert frame["status"].astype(str).tolist() == [
        "COMPLETED",
        "FAILED",
        "UNKNOWN",
        "BRAND_NEW",
        "['X']",
        "BRAND_NEW",
        "PROCESSING",
        "QUEUED",
    ]
    assert frame["is_terminal"].tolist() == [True, True, False, False, False, False, False, False]


def test_status_chunks_give_the_one_pass_codes():
    values = ["weird", "COMPLETED", "Weird", None, "other", "WEIRD", "completed", ["l"], "OTHER"]
    whole = _schema.status_categorical(values)
    for size in (1, 2, 4):
        col = _schema.StatusColumn(len(values))
        for lo in range(0, len(values), size):
            col.add(lo, values[lo : lo + size])
        chunked = col.categorical()
        assert list(chunked.categories) == list(whole.categories)
        assert chunked.codes.tolist() == whole.codes.tolist()


def test_odd_records_take_the_completing_path(chunk):
    recs = [task(i) for i in range(9)]
    recs[7] = {"task_id": "task_odd", "status": "FAILED"}  # most keys missing
    recs[8] = task(8, additional_data="not a dict", inputs=5)
    frame = build_task_frame(recs)
    assert frame["task_id"].tolist()[7:] == ["task_odd", "task_0008"]
    assert frame.loc[7:8, "batch_id"].isna().all() and frame.loc[7:8, "inputs_count"].isna().all()
    assert frame["batch_id"].tolist()[:7] == [f"btch_{i}" for i in range(7)]


def test_source_cell_from_the_journal(chunk):
    prov = {"notebook": "a.ipynb", "cell": 4, "source": "%%ingest --bucket b\nmore"}
    recs = [task(i) for i in range(8)]
    rows = [
        {
            "task_id": f"task_{i:04d}",
            "first_seen": (T0 + timedelta(seconds=i)).isoformat(),
            "started": None,
            "finished": None,
            "context": {"notebook": "j.ipynb", "cell": 9, "source": "%ingest"},
        }
        for i in (1, 6, 7)
    ]
    rows.append(
        {
            "task_id": "task_0005",
            "first_seen": T0.isoformat(),
            "started": None,
            "finished": None,
            "context": {"provenance": prov},
        }
    )
    frame = check(recs, rows)
    assert frame.loc[5, "source_cell"] == "a.ipynb [4] %%ingest --bucket b ..."
    assert frame.loc[1, "source_cell"] == "j.ipynb [9] %ingest" == frame.loc[7, "source_cell"]
    assert frame["source_cell"].isna().tolist() == [True, False, True, True, True, False, False, False]


def test_journal_join_partial_hits_durations_and_timestamps(chunk):
    """Tasks missing from the journal anywhere (the join looks slices up at
    once and falls back to one by one for a slice with an unknown id);
    offsets converted to UTC, fractional seconds of any precision, a
    malformed timestamp is NaT for its row only."""
    recs = [task(i) for i in range(9)]
    rows = [
        {
            "task_id": "task_0000",
            "first_seen": "2024-05-01T12:00:00Z",
            "started": "2024-05-01T12:00:01.5Z",
            "finished": "2024-05-01T12:00:04.25Z",
        },
        {
            "task_id": "task_0002",
            "first_seen": "2024-05-01T14:00:00+02:00",
            "started": None,
            "finished": "2024-05-01T14:00:42+02:00",
        },
        {
            "task_id": "task_0003",
            "first_seen": "2024-05-01T12:00:00.123456789+00:00",
            "started": "not a time",
            "finished": "2024-05-01T12:00:00.2+00:00",
        },
        {
            "task_id": "task_0006",
            "first_seen": "2024-05-01T12:00:00.123Z",
            "started": "2024-05-01T12:00:00.123Z",
            "finished": None,
        },
        {
            "task_id": "task_0008",
            "first_seen": "2024-05-01T12:00:00Z",
            "started": "2024-05-01T12:00:09Z",
            "finished": "2024-05-01T12:00:09Z",
        },  # first non-pending observation was the terminal one
        {"task_id": "task_not_listed", "first_seen": "2024-05-01T12:00:00Z", "started": None, "finished": None},
    ]
    frame = check(recs, rows)
    assert frame.loc[0, "duration"] == pd.Timedelta(seconds=2.75)
    assert frame.loc[2, "first_seen"] == T0 and frame.loc[2, "duration"] == pd.Timedelta(seconds=42)
    assert frame.loc[3, "first_seen"] == T0 + pd.Timedelta(nanoseconds=123456789)
    assert pd.isna(frame.loc[3, "started"])  # the malformed one only
    assert frame.loc[3, "finished"] == T0 + pd.Timedelta(milliseconds=200)
    assert frame.loc[3, "duration"] == pd.Timedelta(nanoseconds=200_000_000 - 123456789)
    assert frame.loc[6, "started"] == T0 + pd.Timedelta(milliseconds=123) and pd.isna(frame.loc[6, "duration"])
    assert frame.loc[8, "duration"] == pd.Timedelta(seconds=9)  # from first_seen
    assert frame["first_seen"].notna().tolist() == [True, False, True, True, False, False, True, False, True]
    assert str(frame["first_seen"].dtype) == "datetime64[ns, UTC]"


def test_every_task_journaled(chunk):
    recs = [task(i) for i in range(10)]
    rows = [
        {
            "task_id": f"task_{i:04d}",
            "first_seen": (T0 + timedelta(seconds=i)).isoformat(),
            "started": (T0 + timedelta(seconds=i + 1)).isoformat(),
            "finished": (T0 + timedelta(seconds=i + 4)).isoformat(),
            "context": {"notebook": "n.ipynb", "cell": i % 2, "source": "%ingest"},
        }
        for i in reversed(range(10))
    ]
    frame = check(recs, rows)
    assert frame["duration"].eq(pd.Timedelta(seconds=3)).all()


def test_models_build_the_same_frame(chunk):
    from mixpeek_magics.client.models.tasks import Task

    recs = [task(i, status=s) for i, s in enumerate(["COMPLETED", "FAILED", "NEW_ONE", "PENDING", None] * 2)]
    recs[3]["error"] = "bad"
    models = [Task(**r) if r["status"] is not None else Task(**{**r, "status": "UNKNOWN"}) for r in recs]
    dicts = [m.model_dump(mode="json") for m in models]
    pd.testing.assert_frame_equal(build_task_frame(models), build_task_frame(dicts))


def test_frame_arrays_are_not_shared_with_the_inputs(chunk):
    """The all-missing columns are copies of one array; the datetime columns
    view arrays of the join, not the journal's."""
    recs = [task(i) for i in range(5)]
    rows = [{"task_id": "task_0001", "first_seen": "2024-05-01T12:00:00Z", "started": None, "finished": None}]
    index = JournalIndex.from_rows(rows)
    frame = build_task_frame(recs, index)
    arrays = [frame[c].array for c in ("namespace_id", "sync_config_id", "error", "source_cell")]
    arrays[0][0] = "changed"  # on the array itself: pandas' copy-on-write would not step in
    assert all(a.isna().all() for a in arrays[1:]) and arrays[0].isna().sum() == 4
    started = frame["first_seen"].array
    started[1] = pd.Timestamp("2030-01-01", tz="UTC")
    assert index.first_seen[0] == T0.value


def test_array_helpers_copy_unless_told():
    ns = np.array([0, _schema.NAT, 10**18], dtype=np.int64)
    dt = _schema.datetime_array(ns)
    expected = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").array
    pd.testing.assert_extension_array_equal(dt, expected)
    assert not np.shares_memory(dt.asi8, ns) and np.shares_memory(_schema.datetime_array(ns, copy=False).asi8, ns)
    td = _schema.timedelta_array(ns)
    assert td.tolist()[0] == pd.Timedelta(0) and pd.isna(td[1])
    assert not np.shares_memory(td.asi8, ns)
    obj = np.array(["a", "b"], dtype=object)
    out = _schema.str_array(obj)
    obj[0] = "z"
    assert out.tolist() == ["a", "b"]


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b"],
        ["a", None, "b"],
        [None, "a"],
        [None, None],
        [],
        ["", "x"],
        ["x", 5, 1.5, True],
        [["l"], ("t",)],
        ["x", float("nan")],
        ["x", pd.NA, None],
    ],
)
def test_str_array_same_as_plain_pandas(values):
    """None (and NaN / NA) missing, everything else as its text."""
    expected = (
        pd.array([None if v is None else v for v in values], dtype="str") if values else pd.array([], dtype="str")
    )
    pd.testing.assert_extension_array_equal(_schema.str_array(list(values)), expected)
    col = _schema.TextColumn(len(values))
    for lo in range(len(values)):
        col.add(lo, values[lo : lo + 1])
    pd.testing.assert_extension_array_equal(col.array(), expected)
