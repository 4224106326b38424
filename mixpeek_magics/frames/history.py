"""``task_history``: every task of the account as one DataFrame, joined with
the client-side timeline journal (the API keeps no timestamps on tasks).

A task record carries its status and, for a batch task, ``batch_id`` /
``bucket_id`` / ``namespace_id`` in ``additional_data``; progress counts, the
sync and the source cell are what a watcher observed (the journal)."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from mixpeek_magics import _defaults
from mixpeek_magics._extras import require
from mixpeek_magics.client import statuses
from mixpeek_magics.frames import _schema
from mixpeek_magics.frames._journal import JournalIndex, journal_index, open_journal
from mixpeek_magics.frames._time import parse_when

PAGE_LIMIT = 1000


def resolve_client(client: Any = None) -> Any:
    """``client`` or the signed-in session's client (``%mixpeek_auth``)."""
    if client is not None:
        return client
    try:
        return _defaults.default_client()  # raises NotSignedInError without a session
    except LookupError as exc:
        raise RuntimeError(str(exc)) from None


_TOP = ("task_id", "task_type", "status", "error", "additional_data", "inputs", "outputs")
_DATA = ("batch_id", "bucket_id", "namespace_id")  # documented keys of a batch task's additional_data
_get_data = itemgetter(*_DATA)


def _as_dicts(records: Sequence[Any]) -> Sequence[Any]:
    """Dicts as they are; pydantic models through their field ``__dict__`` (no copy)."""
    if not records or isinstance(records[0], dict):
        return records
    try:
        out = list(map(attrgetter("__dict__"), records))
    except AttributeError:
        out = None
    if out is None or not out or "task_id" not in out[0] or "task_id" not in out[-1]:
        out = [r if isinstance(r, dict) else (r.model_dump() if hasattr(r, "model_dump") else dict(r)) for r in records]
    return out


def _complete(records: Sequence[Any]) -> list[dict]:
    """Slow path for odd records: every top-level key present, dicts only."""
    out = []
    for r in records:
        if not isinstance(r, dict):
            r = r.model_dump() if hasattr(r, "model_dump") else dict(getattr(r, "__dict__", r))
        if any(k not in r for k in _TOP):
            r = {**dict.fromkeys(_TOP), **r}
        a = r.get("additional_data")
        if a is not None and not isinstance(a, dict):
            r = {**r, "additional_data": None}
        for key in ("inputs", "outputs"):
            if r.get(key) is not None and not hasattr(r[key], "__len__"):
                r = {**r, key: None}
        out.append(r)
    return out


def build_task_frame(records: Sequence[Any], journal: Any = None):
    """The task history frame of already fetched task records (dicts as the
    API returns them, or ``Task`` models).

    ``journal``: a ``_journal.JournalIndex`` (see ``journal_index``), a
    ``tracking.Journal``, a path, or None for no journal data. The records are
    read in chunks (``_columns``, one pass per chunk) and each chunk's values go
    straight into the final arrays (see ``_Columns``); pandas only wraps them
    (no per-row pandas work).
    """
    require("notebook", "pandas")
    import pandas as pd

    if not isinstance(journal, JournalIndex):
        journal = journal_index(open_journal(journal)) if journal is not None else JournalIndex.empty()
    recs = _as_dicts(records)
    n = len(recs)
    if n == 0:
        return _schema.empty_frame(_schema.TASK_COLUMNS)
    cols = _read_records(records, recs, journal)
    status = cols.status.categorical()
    seen = _observed(journal, cols.ids, n)
    missing = _schema.MissingText(n)  # the all-missing columns: one made, the others copied
    data = {
        "task_id": cols.task_id.array(missing),
        "task_type": cols.task_type.array(missing),
        "status": status,
        "is_terminal": _is_terminal(status),
        "first_seen": seen.first_seen,
        "started": seen.started,
        "finished": seen.finished,
        "duration": _schema.timedelta_array(seen.duration_ns, copy=False),
        "processed": seen.processed if seen.processed is not None else _schema.int_array([None] * n),
        "total": seen.total if seen.total is not None else _schema.int_array([None] * n),
        "percentage": seen.percentage if seen.percentage is not None else _schema.float_array([None] * n),
        "error": cols.error.array(missing),
        "batch_id": cols.batch_id.array(missing),
        "bucket_id": cols.bucket_id.array(missing),
        "namespace_id": cols.namespace_id.array(missing),
        "sync_config_id": seen.sync if seen.sync is not None else missing.get(),
        "source_cell": seen.cell if seen.cell is not None else missing.get(),
        "inputs_count": cols.inputs_count.array(),
        "outputs_count": cols.outputs_count.array(),
    }
    return pd.DataFrame(data, copy=False)


def _read_records(records: Sequence[Any], recs: Sequence[Any], journal: JournalIndex) -> _Columns:
    """The records' columns (``recs``: the records as dicts, see ``_as_dicts``)."""
    if not isinstance(recs, list):
        recs = list(recs)  # sliced per chunk
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the loop allocates no cycles; collections would only rescan the records
    try:
        try:
            return _read(recs, journal, strict=False)
        except _OddRecord:  # missing keys, ...: every record completed first
            return _read(_complete(records), journal, strict=True)
    finally:
        if gc_was_enabled:
            gc.enable()


def _is_terminal(status: Any) -> Any:
    """A bool array: each row's status is terminal (one test per category, not per row)."""
    import numpy as np

    is_terminal_code = np.array([c in statuses.TERMINAL for c in status.categories], dtype=bool)
    return is_terminal_code[status.codes]


class _Observed(NamedTuple):
    """What the journal adds to each task's row (None: not journaled, all missing)."""

    first_seen: Any
    started: Any
    finished: Any
    duration_ns: Any
    cell: Any
    processed: Any
    total: Any
    percentage: Any
    sync: Any


def _observed(journal: JournalIndex, task_ids: list[Any] | None, n: int) -> _Observed:
    """The journal's columns for the tasks ``task_ids`` (None: an empty journal)."""
    import numpy as np

    NAT = _schema.NAT
    if task_ids is not None:
        pos = _journal_rows(journal.pos, task_ids)
        hit = pos >= 0
        if hit.any():
            return _journal_hits(journal, pos, hit)
    first_seen, started, finished = (
        _schema.datetime_array(np.full(n, NAT, dtype=np.int64), copy=False) for _ in range(3)
    )
    return _Observed(first_seen, started, finished, np.full(n, NAT, dtype=np.int64), None, None, None, None, None)


def _journal_hits(journal: JournalIndex, pos: Any, hit: Any) -> _Observed:
    """``_observed`` when some task is journaled: ``pos`` its row (-1: none), ``hit`` pos >= 0."""
    import numpy as np
    import pandas as pd

    NAT = _schema.NAT
    if hit.all():  # every task journaled: plain gathers, nothing to mask
        safe = pos
        fs_ns, st_ns, fi_ns = journal.first_seen[pos], journal.started[pos], journal.finished[pos]
    else:
        safe = np.where(hit, pos, 0)
        fs_ns = np.where(hit, journal.first_seen[safe], NAT)
        st_ns = np.where(hit, journal.started[safe], NAT)
        fi_ns = np.where(hit, journal.finished[safe], NAT)
    # never seen running (no start, or the first non-pending observation was
    # already the terminal one): the duration counts from first_seen
    begin = np.where((st_ns == NAT) | (st_ns == fi_ns), fs_ns, st_ns)
    no_dur = (fi_ns == NAT) | (begin == NAT)
    dur = np.subtract(fi_ns, begin, out=begin)  # in place: one array less to allocate
    dur[no_dur] = NAT
    cell = None
    if journal.has_cells:
        codes = journal.cell_codes[safe] if safe is pos else np.where(hit, journal.cell_codes[safe], -1)
        cell = pd.array(journal.cell_values, dtype="str").take(codes, allow_fill=True)
    processed, total, percentage, sync = journal.observed(safe, None if safe is pos else hit)
    # the arrays are ours: the datetime columns view them (no copies)
    return _Observed(
        _schema.datetime_array(fs_ns, copy=False),
        _schema.datetime_array(st_ns, copy=False),
        _schema.datetime_array(fi_ns, copy=False),
        dur,
        cell,
        processed,
        total,
        percentage,
        sync,
    )


#: records per chunk: the chunk's column lists stay in the CPU cache while the
#: values are copied into the final arrays (and the lists are reused memory)
_CHUNK = 2048


class _OddRecord(Exception):
    """A record ``_columns`` cannot read as it is (``_complete`` it first)."""


def _read(recs: list, journal: JournalIndex, strict: bool) -> _Columns:
    """``_columns`` chunk by chunk into ``_Columns``. Raises ``_OddRecord`` when a
    record is odd (``_columns`` raised), unless ``strict`` (then that error)."""
    n = len(recs)
    cols = _Columns(n, journal)
    for lo in range(0, n, _CHUNK):
        part = recs[lo : lo + _CHUNK]
        if strict:
            cols.add(lo, _columns(part))
            continue
        try:
            rows = _columns(part)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise _OddRecord from exc
        cols.add(lo, rows)
    return cols


class _Columns:
    """The frame's columns while the chunks come in (see ``_schema.TextColumn``,
    ``NumberColumn``, ``StatusColumn``)."""

    def __init__(self, n: int, journal: JournalIndex) -> None:
        Text, Number = _schema.TextColumn, _schema.NumberColumn
        self.task_id, self.task_type, self.error = Text(n), Text(n), Text(n)
        self.batch_id, self.bucket_id, self.namespace_id = Text(n), Text(n), Text(n)
        self.status = _schema.StatusColumn(n)
        self.inputs_count, self.outputs_count = Number(n, "count"), Number(n, "count")
        # the task ids as one list for the journal join, gathered while each
        # chunk is in cache (a tolist() at the end would touch every id again)
        self.ids: list | None = [None] * n if len(journal) else None

    def add(self, lo: int, part: tuple) -> None:
        tid, ttype, stat, err, batch, bucket, ns, nin, nout = part
        self.task_id.add(lo, tid)
        self.task_type.add(lo, ttype)
        self.status.add(lo, stat)
        self.error.add(lo, err)
        self.batch_id.add(lo, batch)
        self.bucket_id.add(lo, bucket)
        self.namespace_id.add(lo, ns)
        self.inputs_count.add(lo, nin)
        self.outputs_count.add(lo, nout)
        if self.ids is not None:
            self.ids[lo : lo + len(tid)] = tid


def _columns(recs: Sequence[dict]) -> tuple:
    """The one pass: plain Python lists per column (fast path: every record
    has the API's top-level keys; a KeyError sends the caller to ``_complete``)."""
    n = len(recs)
    tid: list[Any] = [None] * n
    ttype: list[Any] = [None] * n
    stat: list[Any] = [None] * n
    err: list[Any] = [None] * n
    batch: list[Any] = [None] * n
    bucket: list[Any] = [None] * n
    ns: list[Any] = [None] * n
    nin: list[int | None] = [None] * n
    nout: list[int | None] = [None] * n
    get_data = _get_data
    for i, r in enumerate(recs):
        tid[i] = r["task_id"]
        ttype[i] = r["task_type"]
        stat[i] = r["status"]
        e = r["error"]
        a = r["additional_data"]
        if a:
            try:
                batch[i], bucket[i], ns[i] = get_data(a)
            except KeyError:
                batch[i], bucket[i], ns[i] = map(a.get, _DATA)
        err[i] = e
        x = r["inputs"]
        if x is not None:
            nin[i] = len(x)
        x = r["outputs"]
        if x is not None:
            nout[i] = len(x)
    return tid, ttype, stat, err, batch, bucket, ns, nin, nout


def _journal_rows(rows: dict, task_ids: list):
    """Each task's row in the journal (-1 when not journaled). ``itemgetter``
    looks a whole slice up in one C call (cheaper than ``map`` over
    ``dict.get``); a slice with an id not in the journal is looked up with
    ``get`` instead."""
    import numpy as np

    n = len(task_ids)
    out = np.empty(n, dtype=np.intp)
    for lo in range(0, n, _JOIN_CHUNK):
        part = task_ids[lo : lo + _JOIN_CHUNK]
        k = len(part)
        try:
            found = itemgetter(*part)(rows) if k > 1 else (rows[part[0]],)
        except KeyError:
            found = map(rows.get, part, repeat(-1))
        out[lo : lo + k] = np.fromiter(found, dtype=np.intp, count=k)
    return out


_JOIN_CHUNK = 4096


def _times(values: list):
    """ISO text / datetimes / None -> DatetimeIndex[ns, UTC] (vectorised parse)."""
    import pandas as pd

    try:
        out = pd.to_datetime(values, utc=True, format="ISO8601")
    except (TypeError, ValueError):
        out = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
    return out.as_unit("ns")


def fetch_tasks(client: Any, status: Any = None, task_type: Any = None) -> list:
    """Every task, all pages of ``limit=1000``; the status / task type filter is
    sent to the server when it is a single value."""
    kwargs: dict[str, Any] = {"limit": PAGE_LIMIT}
    if isinstance(status, str):
        kwargs["status"] = statuses.normalize(status)
    if isinstance(task_type, str):
        kwargs["task_type"] = task_type
    return list(client.tasks.iter(**kwargs))


def _one_or_many(value: Any) -> set | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {value}
    return {str(v) for v in value}


def task_history(
    client: Any = None,
    status: str | Iterable[str] | None = None,
    task_type: str | Iterable[str] | None = None,
    since: Any = None,
    until: Any = None,
    bucket: str | None = None,
    include_journal: bool = True,
    journal: Any = None,
):
    """Every task as a DataFrame, joined with the timeline journal.

    ``status`` / ``task_type``: one value or several. ``since`` / ``until``:
    a datetime, an ISO timestamp or a span back from now ("30m", "2h", "1d");
    they filter on ``first_seen`` (tasks never seen in the journal have no
    ``first_seen`` and are dropped by these filters). ``bucket``: a bucket id
    or name. ``journal``: a ``tracking.Journal`` or path (default: the user's
    journal). See ``TASK_COLUMNS`` for the columns and their dtypes.
    """
    require("notebook", "pandas")  # before any request
    since_dt = parse_when(since, name="since")
    until_dt = parse_when(until, name="until")
    if since_dt is not None and until_dt is not None and since_dt > until_dt:
        raise ValueError(f"since ({since_dt.isoformat()}) is after until ({until_dt.isoformat()})")
    client = resolve_client(client)
    bucket_ids = _resolve_bucket(client, bucket) if bucket is not None else None

    records = fetch_tasks(client, status, task_type)
    index = JournalIndex.empty()
    if include_journal:
        base_url = getattr(getattr(client, "config", None), "base_url", None)
        index = journal_index(open_journal(journal), base_url=base_url)
    frame = build_task_frame(records, index)
    return _filter(frame, status=status, task_type=task_type, since=since_dt, until=until_dt, bucket_ids=bucket_ids)


def _resolve_bucket(client: Any, bucket: str) -> set[str]:
    """The ids a ``bucket`` argument stands for (its id, and the id of the bucket named so)."""
    ids = {str(bucket)}
    try:
        found = client.buckets.get(bucket)
    except Exception as exc:
        if type(exc).__name__ == "NotFoundError":
            raise ValueError(f"bucket {bucket!r} not found (give a bucket id or name)") from None
        if str(bucket).startswith("bkt_"):  # an id: filtering needs no lookup (e.g. no namespace set)
            return ids
        raise
    bid = getattr(found, "bucket_id", None) or (found.get("bucket_id") if isinstance(found, dict) else None)
    if bid:
        ids.add(str(bid))
    return ids


def _filter(frame, *, status=None, task_type=None, since=None, until=None, bucket_ids=None):
    import numpy as np
    import pandas as pd

    mask = np.ones(len(frame), dtype=bool)
    wanted = _one_or_many(status)
    if wanted is not None:
        mask &= frame["status"].isin({statuses.normalize(s) for s in wanted}).to_numpy()
    wanted = _one_or_many(task_type)
    if wanted is not None:
        mask &= frame["task_type"].isin(wanted).to_numpy()
    if bucket_ids is not None:
        mask &= frame["bucket_id"].isin(bucket_ids).to_numpy()
    if since is not None:
        mask &= (frame["first_seen"] >= pd.Timestamp(since)).fillna(False).to_numpy(dtype=bool)
    if until is not None:
        mask &= (frame["first_seen"] <= pd.Timestamp(until)).fillna(False).to_numpy(dtype=bool)
    if mask.all():
        return frame
    return frame.loc[mask].reset_index(drop=True)


def task_timeline(task_id: str, journal: Any = None, base_url: str | None = None):
    """One row per observed transition of ``task_id`` (oldest first):
    observed_at, status, processed, total, percentage, error."""
    require("notebook", "pandas")
    import pandas as pd

    if hasattr(task_id, "task_id"):
        task_id = task_id.task_id
    j = open_journal(journal)
    rows = j.timeline(task_id, base_url=base_url) if j is not None else []
    if not rows:
        return _schema.empty_frame(_schema.TIMELINE_COLUMNS)
    observed = _times([r.get("observed_at") for r in rows]).array
    return pd.DataFrame(
        {
            "observed_at": observed,
            "status": _schema.status_categorical([r.get("status") for r in rows]),
            "processed": _schema.int_array([r.get("processed") for r in rows]),
            "total": _schema.int_array([r.get("total") for r in rows]),
            "percentage": _schema.float_array([r.get("percentage") for r in rows]),
            "error": _schema.str_array([r.get("error") for r in rows]),
        }
    )
