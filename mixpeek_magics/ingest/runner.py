"""Executing an ingestion plan (layer 2): files, URLs and syncs -> objects, batch, tasks.

``run_plan(client, plan, bucket, ...)`` is what ``%%ingest`` delegates to:

* local files go through :func:`mixpeek_magics.ingest.bulk.abulk_upload`
  (sha256 + ``skip_duplicates``, confirm only fully uploaded files, unconfirmed
  uploads deleted on interrupt), in chunks, each chunk recorded in the local
  :class:`IngestState` as soon as it is confirmed;
* URLs become objects whose blob references the URL;
* every new object goes into ONE batch carrying provenance metadata, which is
  submitted: its task is what the caller watches;
* ``s3://`` / ``gdrive://`` lines become ``initial_only`` bucket syncs
  (``client.syncs.create``), one per line.

Resumable and duplicate-safe: a file whose (server, namespace, bucket, sha256)
is recorded as submitted is skipped without any request; one that was
confirmed but never submitted (interrupt, kernel restart) is put into this
run's batch without uploading it again; the server's ``skip_duplicates``
catches the rest. Objects another run still going made are left to it
(:mod:`mixpeek_magics.ingest.makers`), so two runs at once submit each object once.

No IPython, widgets or pandas at import time (``failures`` / ``to_frame``
build DataFrames lazily).
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mixpeek_magics import _paths
from mixpeek_magics.ingest.bulk import FileOutcome, FileSpec, UploadProgress
from mixpeek_magics.ingest.defaults import DEFAULT_CONCURRENCY
from mixpeek_magics.ingest.makers import (
    ACTIVE_RUNS,
    RACE_POLL,
    LeftToMaker,
    left_to_maker,
    maker_from_row,
    owner_tag,
    released,
)
from mixpeek_magics.ingest.plan import Plan, PlanItem

if TYPE_CHECKING:
    from mixpeek_magics.client.models.batches import Batch
    from mixpeek_magics.client.models.buckets import Bucket
    from mixpeek_magics.client.models.syncs import SyncConfiguration
    from mixpeek_magics.client.models.tasks import Task
    from mixpeek_magics.tracking.handle import WatchHandle

__all__ = [
    "IngestResult",
    "ItemOutcome",
    "IngestState",
    "IngestError",
    "IngestFailedError",
    "UploadStats",
    "run_plan",
    "resolve_bucket",
    "infer_schema",
    "default_state_path",
    "CHUNK",
]

log = logging.getLogger(__name__)

CHUNK = 100
# an object in one of these states was processed or is being processed; a PENDING one was not
# processed yet, in no batch or in a submitted batch not finished (its batch tells them apart)
_TAKEN = frozenset({"QUEUED", "IN_PROGRESS", "PROCESSING", "COMPLETED"})
# a batch in one of these states is submitted and not finished
_ACTIVE_BATCH = ("PENDING", "QUEUED", "IN_PROGRESS", "PROCESSING")
_BATCH_PAGE = 1000  # batches per list call (the API's most)
_FILE_TYPES = ("image", "video", "audio", "text", "pdf")
_T = TypeVar("_T")


class IngestError(Exception):
    """Ingestion could not start or failed as a whole (message is one short block)."""


class IngestFailedError(IngestError):
    """``--wait``: the ingestion's work FAILED (every item, or a task)."""

    def __init__(self, message: str, result: IngestResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def default_state_path() -> Path:
    return _paths.data_dir() / "ingest-state.sqlite3"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- local state


class IngestState:
    """What this machine already confirmed / submitted, keyed by server + namespace + bucket + content.

    ``key`` is a file's sha256 or ``url:<url>``. ``status`` is ``confirmed``
    (the object exists on the server) or ``submitted`` (it went into a batch).
    """

    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS items (
        server TEXT NOT NULL, namespace_id TEXT NOT NULL DEFAULT '', namespace_name TEXT,
        bucket_id TEXT NOT NULL, bucket_name TEXT, key TEXT NOT NULL, source TEXT,
        object_id TEXT, batch_id TEXT, task_id TEXT, status TEXT NOT NULL, updated TEXT NOT NULL,
        owner TEXT, PRIMARY KEY (server, bucket_id, key));
    CREATE INDEX IF NOT EXISTS items_key ON items (server, key);
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_state_path()
        self._lock = threading.Lock()
        self._migrated = False

    def __repr__(self) -> str:
        return f"IngestState({str(self.path)!r})"

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            con = sqlite3.connect(self.path, timeout=30)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(self._SCHEMA)
                if not self._migrated:
                    columns = {r[1] for r in con.execute("PRAGMA table_info(items)")}
                    if "owner" not in columns:  # a state file written before owners were recorded
                        con.execute("ALTER TABLE items ADD COLUMN owner TEXT")
                    self._migrated = True
                with con:
                    yield con
            finally:
                con.close()

    def lookup(
        self,
        server: str,
        bucket_refs: Iterable[str | None],
        keys: Iterable[str | None],
        namespace_refs: Iterable[str | None] = (),
    ) -> dict[str, dict[str, Any]]:
        """key -> row for the keys known in this bucket (matched by bucket id or name); None keys are left out."""
        wanted = [k for k in keys if k]
        refs = [r for r in bucket_refs if r]
        if not wanted or not refs or (not self.path.exists()):
            return {}
        ns = [n for n in namespace_refs if n]
        out: dict[str, dict[str, Any]] = {}
        with self._db() as con:
            con.row_factory = sqlite3.Row
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                q = (
                    f"SELECT * FROM items WHERE server=? AND key IN ({','.join('?' * len(part))}) "
                    f"AND (bucket_id IN ({','.join('?' * len(refs))}) OR bucket_name IN ({','.join('?' * len(refs))}))"
                )
                params: list[Any] = [server, *part, *refs, *refs]
                if ns:
                    q += (
                        f" AND (namespace_id IN ({','.join('?' * len(ns))}) "
                        f"OR namespace_name IN ({','.join('?' * len(ns))}))"
                    )
                    params += [*ns, *ns]
                for row in con.execute(q, params):
                    d = dict(row)
                    prev = out.get(d["key"])
                    if prev is None or (prev["status"] != "submitted" and d["status"] == "submitted"):
                        out[d["key"]] = d
        return out

    def record(
        self,
        server: str,
        namespace: tuple[str | None, str | None],
        bucket: tuple[str, str | None],
        rows: Sequence[tuple[str, str, str | None]],
        status: str = "confirmed",
        made_here: Container[str | None] | None = None,
    ) -> None:
        """Upsert (key, source, object_id) rows; a submitted row is never downgraded.

        ``owner`` names the process that made the object (see :mod:`mixpeek_magics.ingest.makers`):
        this one for the object ids in ``made_here`` (all when None), '' (not known) for the
        others, which never overwrite a maker's name."""
        if not rows:
            return
        ns_id, ns_name = namespace
        b_id, b_name = bucket
        now = _now()
        me = owner_tag()
        with self._db() as con:
            con.executemany(
                "INSERT INTO items(server, namespace_id, namespace_name, bucket_id, bucket_name, key, source, "
                "object_id, status, updated, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(server, bucket_id, key) DO UPDATE SET object_id=excluded.object_id, "
                "source=excluded.source, updated=excluded.updated, "
                "owner=CASE WHEN excluded.owner<>'' OR items.object_id IS NOT excluded.object_id "
                "THEN excluded.owner ELSE items.owner END, "
                "status=CASE WHEN items.status='submitted' THEN items.status ELSE excluded.status END",
                [
                    (server, ns_id or "", ns_name, b_id, b_name, k, src, oid, status, now)
                    + (me if made_here is None or oid in made_here else "",)
                    for k, src, oid in rows
                ],
            )

    def mark_submitted(
        self, server: str, bucket_id: str, keys: Sequence[str], batch_id: str | None, task_id: str | None
    ) -> None:
        if not keys:
            return
        now = _now()
        with self._db() as con:
            con.executemany(
                "UPDATE items SET status='submitted', batch_id=?, task_id=?, updated=? "
                "WHERE server=? AND bucket_id=? AND key=?",
                [(batch_id, task_id, now, server, bucket_id, k) for k in keys],
            )

    def forget(self, server: str, bucket_id: str, keys: Sequence[str]) -> None:
        with self._db() as con:
            con.executemany(
                "DELETE FROM items WHERE server=? AND bucket_id=? AND key=?", [(server, bucket_id, k) for k in keys]
            )

    def count(self, server: str | None = None) -> int:
        if not self.path.exists():
            return 0
        with self._db() as con:
            if server is None:
                return int(con.execute("SELECT COUNT(*) FROM items").fetchone()[0])
            return int(con.execute("SELECT COUNT(*) FROM items WHERE server=?", (server,)).fetchone()[0])


def item_key(item: PlanItem) -> str | None:
    """The ingest state's key of a plan item: a file's sha256 (None until hashed), ``url:<url>``."""
    if item.kind == "file":
        return item.sha256
    if item.kind == "url":
        return "url:" + item.source
    return None


# --------------------------------------------------------------------------- result


@dataclass
class ItemOutcome:
    """What happened to one plan item."""

    source: str
    kind: str
    status: str  # new | recovered | already_ingested | duplicate | failed | sync
    object_id: str | None = None
    error: str | None = None
    size: int | None = None
    sha256: str | None = None
    sync_id: str | None = None
    line: int | None = None
    row: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadStats:
    """Live counters of the upload phase (shared with displays)."""

    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    uploaded: int = 0
    duplicates: int = 0
    failed: int = 0
    skipped: int = 0
    # files not yet hashed and looked up in the ingest state: files_total may still shrink by them
    unchecked: int = 0
    # objects another run still going made: left to it to submit, for at most left_wait_seconds
    left_to_others: int = 0
    left_wait_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate_bytes(self) -> float:
        e = self.elapsed
        return self.bytes_done / e if e > 0 else 0.0


_FAILURE_COLUMNS = ("source", "stage", "object_id", "task_id", "error")


class IngestResult:
    """The outcome of one ``%%ingest`` (or :func:`run_plan`) run.

    ``objects`` / ``batches`` / ``tasks`` / ``syncs``: ids; ``items``: one
    :class:`ItemOutcome` per plan item; ``failures``: a DataFrame of failed
    items with reasons (upload phase and processing); ``wait()``, ``cancel()``,
    ``to_frame()``; rich HTML repr.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        bucket_id: str | None,
        namespace: str | None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.bucket_id = bucket_id
        self.namespace = namespace
        self.provenance = dict(provenance or {})
        self.items: list[ItemOutcome] = []
        self.batches: list[str] = []
        self.tasks: list[str] = []
        self.syncs: list[str] = []
        self.upload = UploadStats()
        self.handle: WatchHandle | None = None
        self.interrupted = False
        self.final_tasks: dict[str, Task | None] = {}  # None: the task's record expired
        self.final_batches: dict[str, Batch] = {}  # task id -> its Batch, read once the task ended
        self.collections: dict[str, dict[str, Any]] = {}  # --collection: name -> what this run wrote
        self.confirm_tasks: list[str] = []  # the upload-confirm tasks the uploads made (not watched)
        self.left_to_makers = 0  # objects another run made, which it submitted while this one waited
        self.syncs_followed: set[str] = set()  # syncs whose run wait() followed to its end
        self._watch_kwargs: dict[str, Any] = {}
        self.cwd = os.getcwd()  # sources are shown relative to where the cell ran

    # -- ids and counts --------------------------------------------------------------------
    @property
    def objects(self) -> list[str]:
        """Object ids this run put into processing (new, recovered and URL objects)."""
        return [i.object_id for i in self.items if i.status in ("new", "recovered") and i.object_id]

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def already_ingested(self) -> int:
        return self.count("already_ingested") + self.count("duplicate")

    @property
    def new(self) -> int:
        return self.count("new")

    def summary(self) -> str:
        parts = []
        files = [i for i in self.items if i.kind in ("file", "url")]
        if files:
            parts.append(
                f"{len(files)} item{'s' if len(files) != 1 else ''}: "
                f"{self.already_ingested} already ingested, {self.new} new"
            )
            rec = self.count("recovered")
            if rec:
                parts.append(f"{rec} uploaded earlier but never processed, included now")
            if self.left_to_makers:
                parts.append(f"{self.left_to_makers} submitted by the run that made them")
            failed = sum(1 for i in files if i.status == "failed")
            if failed:
                parts.append(f"{failed} failed")
        if self.syncs:
            parts.append(f"{len(self.syncs)} sync{'s' if len(self.syncs) != 1 else ''} started")
        if self.tasks:
            part = f"{len(self.tasks)} task{'s' if len(self.tasks) != 1 else ''}"
            if self.confirm_tasks:  # the server's own, listed by %mixpeek_tasks too
                n = len(self.confirm_tasks)
                part += f" (+{n} upload-confirm task{'s' if n != 1 else ''})"
            parts.append(part)
        elif not self.syncs:
            parts.append("nothing new to process")
        return "; ".join(parts)

    # -- tracking -------------------------------------------------------------------------
    def watch(self, *, block: bool = False, **kwargs: Any) -> WatchHandle | None:
        """Start (once) watching this run's tasks; returns the tracking handle or None."""
        if self.handle is None and self.tasks:
            from mixpeek_magics.tracking import watch

            self._watch_kwargs = dict(kwargs)
            kwargs.setdefault("item_names", self.item_names())
            self.handle = watch(list(self.tasks), client=self.client, block=block, **kwargs)
        return self.handle

    @property
    def status(self) -> str:
        if self.handle is not None:
            return self.handle.status
        if not self.tasks:
            if set(self.syncs) - self.syncs_followed:
                return "submitted"  # a sync's run may still submit batches
            return "completed" if not any(i.status == "failed" for i in self.items) else "failed"
        return "submitted"

    def _follow_syncs(self, timeout: float | None) -> list[str]:
        """Each sync's run to its end (as its job says): the tasks it started that this result
        did not know yet. A run submits a batch per ``batch_size`` files as it goes, so the
        tasks seen when the sync was created are rarely all of them."""
        from mixpeek_magics.client import errors

        new: list[str] = []
        for sid in self.syncs:
            if sid in self.syncs_followed:
                continue
            try:
                sync = self.client.syncs.wait(self.bucket_id or self.bucket, sid, timeout, namespace=self.namespace)
            except errors.MixpeekError as exc:
                raise IngestFailedError(f"cannot follow sync {sid} of {self.bucket!r}: {exc}", self) from None
            self.syncs_followed.add(sid)
            for tid in sync.task_ids or []:
                if str(tid) not in self.tasks:
                    self.tasks.append(str(tid))
                    new.append(str(tid))
        return new

    def wait(self, timeout: float | None = None, raise_on_failure: bool = True) -> IngestResult:
        """Block until every task of this run is terminal, each sync's run included (it submits
        batches as it goes: its later tasks are watched once its run has ended).

        Raises :class:`IngestFailedError` if a task FAILED or every item failed to
        upload; warns (and lists failures) for COMPLETED_WITH_ERRORS.
        """
        self._wait_for_tasks(timeout, raise_on_failure)
        if self._follow_syncs(timeout):
            self.handle = None  # a watch of every task, the syncs' later ones too
            self.watch(**self._watch_kwargs)
            self._wait_for_tasks(timeout, raise_on_failure)
        if raise_on_failure:
            files = [i for i in self.items if i.kind in ("file", "url")]
            if files and all(i.status == "failed" for i in files) and not self.syncs:
                raise IngestFailedError(
                    f"ingest into {self.bucket!r} FAILED: all {len(files)} item(s) failed before processing; "
                    f"first error: {files[0].error}",
                    self,
                )
        return self

    def _wait_for_tasks(self, timeout: float | None, raise_on_failure: bool) -> None:
        handle = self.watch()
        if handle is not None:
            import warnings

            from mixpeek_magics.tracking import PartialFailureWarning, TaskFailedError

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PartialFailureWarning)
                    handle.wait(timeout=timeout, raise_on_failure=True)
            except TaskFailedError as exc:
                self._load_final_tasks()
                if raise_on_failure:
                    raise IngestFailedError(f"ingest into {self.bucket!r} FAILED: {exc}", self) from None
            if not self._all_completed(handle):  # a COMPLETED batch has no failed objects to read
                self._load_final_tasks()

    def _all_completed(self, handle: WatchHandle) -> bool:
        seen = {snap.task_id: snap.status for snap in handle.snapshots}
        return all(seen.get(tid) == "COMPLETED" for tid in self.tasks)

    def item_names(self) -> dict[str, str]:
        """object id -> the item's source as shown (the API names failed objects by id only)."""
        return {i.object_id: self.shown(i.source) or i.source for i in self.items if i.object_id}

    def _load_final_tasks(self) -> None:
        """Each task of this run once it ended, and its batch: the failed objects
        are the batch's (``BatchModel.failed_objects``), not the task's."""
        from mixpeek_magics.client import errors, statuses

        batch_of = dict(zip(self.tasks, self.batches))  # this run's own batch, by submit order
        for tid in self.tasks:
            if tid not in self.final_tasks:
                try:
                    self.final_tasks[tid] = self.client.tasks.get(tid)
                except errors.NotFoundError:  # the record expired: the batch says how it went
                    self.final_tasks[tid] = None
                except Exception:
                    continue
            task = self.final_tasks[tid]
            if tid in self.final_batches or (task is not None and not statuses.is_terminal(task.status)):
                continue
            bucket = (task.bucket_id if task is not None else None) or self.bucket_id
            batch_id = (task.batch_id if task is not None else None) or batch_of.get(tid)
            if not (bucket and batch_id):
                continue
            try:
                batch = self.client.batches.get(bucket, batch_id, namespace=self.namespace)
            except Exception:
                continue
            if task is None and not statuses.is_terminal(batch.status):
                continue
            self.final_batches[tid] = batch

    def cancel(self) -> list[str]:
        """Kill this run's unfinished tasks on the server."""
        if self.handle is not None:
            return self.handle.cancel()
        killed = []
        for tid in self.tasks:
            try:
                self.client.tasks.kill(tid)
                killed.append(tid)
            except Exception:
                pass
        return killed

    def shown(self, source: str | None) -> str | None:
        """A local path as the user would type it: relative to the cell's working
        directory when inside it (saved notebooks then do not depend on where
        the checkout lives); URLs and other paths unchanged."""
        if not source or "://" in source or not os.path.isabs(source):
            return source
        rel = os.path.relpath(source, self.cwd)
        return source if rel.startswith("..") else rel

    def failure_records(self) -> list[dict[str, Any]]:
        rows = [
            {
                "source": self.shown(i.source),
                "stage": "upload" if i.kind == "file" else "create",
                "object_id": i.object_id,
                "task_id": None,
                "error": i.error,
            }
            for i in self.items
            if i.status == "failed"
        ]
        by_object = {i.object_id: self.shown(i.source) for i in self.items if i.object_id}
        for tid, task in self.final_tasks.items():
            batch = self.final_batches.get(tid)
            failed = list(batch.failed_objects or []) if batch is not None else []
            for f in failed:
                rows.append(
                    {
                        "source": by_object.get(f.object_id),
                        "stage": "processing",
                        "object_id": f.object_id,
                        "task_id": tid,
                        "error": f.error,
                    }
                )
            status = (task.status if task is not None else None) or (batch.status if batch is not None else None)
            if status == "FAILED" and not failed:
                rows.append(
                    {
                        "source": None,
                        "stage": "processing",
                        "object_id": None,
                        "task_id": tid,
                        "error": (task.error if task is not None else None)
                        or (batch.error if batch is not None else None)
                        or "task FAILED",
                    }
                )
        return rows

    @property
    def failures(self) -> Any:
        """A DataFrame of failed items with the reason (upload phase and processing)."""
        import pandas as pd

        self._load_final_tasks_if_done()
        return pd.DataFrame(self.failure_records(), columns=list(_FAILURE_COLUMNS))

    def _load_final_tasks_if_done(self) -> None:
        if self.handle is not None and self.handle.done:
            self._load_final_tasks()

    def to_frame(self) -> Any:
        """One row per plan item: source, kind, status, object_id, size, error."""
        import pandas as pd

        cols = ["source", "kind", "status", "object_id", "size", "sha256", "sync_id", "error"]
        rows = [{c: getattr(i, c) for c in cols} for i in self.items]
        for row in rows:
            row["source"] = self.shown(row["source"])
        return pd.DataFrame(rows, columns=cols)

    def __repr__(self) -> str:
        return f"<IngestResult bucket={self.bucket!r} {self.summary()} status={self.status!r}>"

    def _repr_html_(self) -> str | None:
        """The static summary: what was ingested, the tasks' outcome, the failures.
        None in the cell whose board shows it already (its text repr is one line)."""
        board = self.handle.display if self.handle is not None else None
        shown = getattr(board, "shown_in_current_cell", None)
        if callable(shown) and shown():
            return None
        rows = [("bucket", self.bucket), ("summary", self.summary()), ("status", self.status)]
        if self.batches:
            rows.append(("batches", ", ".join(self.batches)))
        if self.tasks:
            rows.append(("tasks", ", ".join(self.tasks)))
        if self.syncs:
            rows.append(("syncs", ", ".join(self.syncs)))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        fails = self.failure_records()
        extra = ""
        if fails:
            items = "".join(
                f"<li>{html.escape(str(f['source']))}: {html.escape(str(f['error']))}</li>" for f in fails[:10]
            )
            more = f"<li>… and {len(fails) - 10} more</li>" if len(fails) > 10 else ""
            extra = f"<details><summary>{len(fails)} failure(s)</summary><ul>{items}{more}</ul></details>"
        tasks = ""
        if self.handle is not None and self.handle.snapshots:
            from mixpeek_magics.tracking.summary import summary_html

            tasks = summary_html(self.handle.snapshots, hint="listed below" if fails else None)
        return f"<div><b>IngestResult</b><table>{body}</table>{tasks}{extra}</div>"


# --------------------------------------------------------------------------- helpers


def infer_schema(plan: Any) -> dict[str, Any]:
    """A bucket schema with one property per blob type found in the plan's sources."""
    types: list[str] = []
    for item in plan.items:
        if item.kind in ("file", "url"):
            t = item.blob_type
            if t and t not in types:
                types.append(t)
        else:  # a sync may bring any file type
            for t in _FILE_TYPES:
                if t not in types:
                    types.append(t)
    if not types:
        raise IngestError(
            "cannot infer a bucket schema: no source has a recognised file type "
            "(image, video, audio, text, pdf, excel); create the bucket yourself"
        )
    return {"properties": {t: {"type": t} for t in types}}


def resolve_bucket(
    client: Any, bucket: str, *, create: bool = False, plan: Any = None, namespace: str | None = None
) -> Any:
    """The bucket (by name or id); created with an inferred schema when ``create``."""
    from mixpeek_magics.client import errors

    try:
        return client.buckets.get(bucket, namespace=namespace)
    except errors.NotFoundError:
        pass
    if create:
        from mixpeek_magics.client.names import check_name

        check_name(bucket, "bucket")
        schema = infer_schema(plan) if plan is not None else {"properties": {"content": {"type": "text"}}}
        try:
            return client.buckets.create(bucket, schema, namespace=namespace)
        except errors.ConflictError:  # created meanwhile (another kernel): use that one
            return client.buckets.get(bucket, namespace=namespace)
    try:
        names = [b.bucket_name for b in client.buckets.iter(max_items=50, namespace=namespace)]
    except errors.MixpeekError:
        names = []
    known = ", ".join(repr(n) for n in names[:20]) + (" …" if len(names) > 20 else "")
    hint = f"buckets in this namespace: {known}" if names else "this namespace has no buckets yet"
    raise IngestError(
        f"bucket {bucket!r} not found ({hint}); add --create-bucket to create it "
        f"with a schema inferred from the sources"
    )


def _property_for(schema: Mapping[str, Any] | None, blob_type: str | None) -> tuple[str, str]:
    props = (schema or {}).get("properties") or {}
    t = (blob_type or "").lower()
    for name, spec in props.items():
        if isinstance(spec, Mapping) and str(spec.get("type", "")).lower() == t and t:
            return name, t
    files = [
        (n, str(s.get("type", "")).lower())
        for n, s in props.items()
        if isinstance(s, Mapping) and str(s.get("type", "")).lower() in (*_FILE_TYPES, "excel")
    ]
    if not t and len(files) == 1:
        return files[0]
    return (t or "file"), (t or "text")


def _groups_of(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in consecutive lists of ``size`` (the last one shorter)."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


# --------------------------------------------------------------------------- execution


def run_plan(
    client: Any,
    plan: Plan,
    bucket: Bucket,
    *,
    namespace: str | None = None,
    namespace_name: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    force: bool = False,
    use_state: bool = True,
    metadata_provenance: Mapping[str, Any] | None = None,
    state: IngestState | None = None,
    server_id: str | None = None,
    on_progress: Callable[[UploadStats], None] | None = None,
    bucket_label: str | None = None,
) -> IngestResult:
    """Upload / create / sync everything in ``plan`` into ``bucket`` (a Bucket model) and
    submit one batch. Returns at once after submitting (does not wait for processing).

    Files not hashed while planning are hashed by the upload, chunk by chunk while
    earlier chunks upload, and looked up in ``state`` before their uploads are created.

    KeyboardInterrupt: uploads in flight are abandoned (never confirmed), what was
    confirmed is recorded, and the interrupt is re-raised; re-running resumes.
    """
    state = state if state is not None else IngestState()
    server = server_id or client.config.base_url
    ns = namespace or client.config.namespace
    result = IngestResult(client, bucket_label or bucket.bucket_name, bucket.bucket_id, ns, metadata_provenance)
    execution = _Execution(
        plan,
        bucket,
        result,
        state=state,
        server=server,
        namespace=(ns, namespace_name),
        concurrency=concurrency,
        force=force,
        use_state=use_state and not force,
        on_progress=on_progress,
    )
    return _run_in_background(client, execution, result)


def _run_in_background(client: Any, execution: _Execution, result: IngestResult) -> IngestResult:
    """``execution`` on the background loop, with an ``AsyncMixpeek`` of ``client``'s configuration.
    On KeyboardInterrupt it is cancelled, given time to abandon its unconfirmed uploads, and re-raised."""
    from mixpeek_magics import _runtime

    done = threading.Event()

    async def main() -> None:
        from mixpeek_magics.client import AsyncMixpeek

        try:
            async with AsyncMixpeek(config=client.config) as aclient:
                await execution.run(aclient)
        finally:
            result.upload.finished = time.monotonic()
            done.set()

    future = _runtime.spawn(main())
    try:
        future.result()
    except KeyboardInterrupt:
        result.interrupted = True
        future.cancel()
        done.wait(15)  # let the upload abandon its unconfirmed files before returning
        raise
    return result


_StateRow = tuple[str, str, str | None]  # (key, source, object id), as IngestState.record takes them


class _Execution:
    """One run of a plan on the background loop: local files through one bulk
    upload, URLs as objects, everything new into one batch, then the syncs."""

    def __init__(
        self,
        plan: Plan,
        bucket: Bucket,
        result: IngestResult,
        *,
        state: IngestState,
        server: str,
        namespace: tuple[str | None, str | None],
        concurrency: int,
        force: bool,
        use_state: bool,
        on_progress: Callable[[UploadStats], None] | None,
    ) -> None:
        self.aclient: Any = None  # the AsyncMixpeek of the run (on the background loop)
        self.plan = plan
        self.bucket = bucket
        self.bucket_id = bucket.bucket_id or bucket.bucket_name
        self.result = result
        self.stats = result.upload
        self.state = state
        self.server = server
        self.namespace = namespace
        self.ns_id = namespace[0]
        self.concurrency = concurrency
        self.force = force
        self.use_state = use_state
        self.on_progress = on_progress
        self.to_submit: list[tuple[str, str]] = []  # (state key, object id) of what this run's batch takes
        self.left: dict[str, LeftToMaker] = {}  # object id -> the wait for the other run that made it
        self.again: list[PlanItem] = []  # files whose duplicate names no object that still exists
        self.by_path: dict[str, PlanItem] = {}  # the files to upload, by normalized path
        self.run_id = id(self)

    async def run(self, aclient: Any) -> None:
        self.aclient = aclient
        try:
            known = self._lookup([item_key(i) for i in (*self.plan.files, *self.plan.urls)])
            fresh = self._skip_known_files(known)
            if fresh:
                await self._upload_files(fresh)
            fresh_urls = [i for i in self.plan.urls if not self._take_known(i, known.get(item_key(i) or ""))]
            for group in _groups_of(fresh_urls, CHUNK):
                await self._create_url_objects(group)
            await self._leave_objects_to_other_runs()
            if self.again:
                await self._upload_again()
            if self.to_submit:
                await self._submit_batch()
            if self.left:
                await self._wait_for_other_runs()
        finally:
            ACTIVE_RUNS.end(self.run_id)
        for item in self.plan.syncs:
            await self._start_sync(item)

    def _tell(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.stats)
            except Exception:
                pass

    def _lookup(self, keys: Iterable[str | None]) -> dict[str, dict[str, Any]]:
        """The ingest state's rows for these keys in this bucket (none when it is not used)."""
        if not self.use_state:
            return {}
        refs = (self.bucket.bucket_id, self.bucket.bucket_name)
        ns_refs = [n for n in self.namespace if n]
        return self.state.lookup(self.server, refs, [k for k in keys if k], namespace_refs=ns_refs)

    def _outcome(
        self,
        item: PlanItem,
        status: str,
        object_id: str | None = None,
        *,
        error: str | None = None,
        sha256: str | None = None,
    ) -> ItemOutcome:
        return ItemOutcome(
            item.source,
            item.kind,
            status,
            object_id,
            error=error,
            size=item.size,
            sha256=sha256 or item.sha256,
            line=item.line,
            row=item.row,
            metadata=item.metadata,
        )

    def _take_known(self, item: PlanItem, row: dict[str, Any] | None, sha256: str | None = None) -> bool:
        """An item the ingest state knows is recorded here: skipped when it was submitted,
        put into this run's batch when it was only confirmed (uploaded, never processed).
        False when the state does not know it."""
        key = sha256 or item_key(item)
        if not row or not key:
            return False
        if row["status"] == "submitted":
            self.result.items.append(self._outcome(item, "already_ingested", row["object_id"], sha256=sha256))
        elif row.get("object_id"):
            self.result.items.append(self._outcome(item, "recovered", row["object_id"], sha256=sha256))
            self.to_submit.append((key, row["object_id"]))
        else:
            return False
        if item.kind == "file":
            self.stats.skipped += 1
        return True

    def _skip_known_files(self, known: Mapping[str, dict[str, Any]]) -> list[PlanItem]:
        """The files to upload: those the state does not know, or whose sha256 is not known yet."""
        fresh = [i for i in self.plan.files if not self._take_known(i, known.get(i.sha256 or ""))]
        self.stats.files_total = len(fresh)
        self.stats.bytes_total = sum(i.size or 0 for i in fresh)
        self.stats.unchecked = sum(1 for i in fresh if i.sha256 is None) if self.use_state else 0
        self.by_path = {os.path.normpath(i.source): i for i in fresh}
        self._tell()
        return fresh

    async def _upload_again(self) -> None:
        """Files the server called duplicates of an object that no longer exists (deleted after
        its upload, which upload deduplication still matches): uploaded again without
        ``skip_duplicates``, as new objects of this run."""
        items, self.again = self.again, []
        log.info("uploading %d file(s) again: their duplicates name objects that no longer exist", len(items))
        self.by_path.update({os.path.normpath(i.source): i for i in items})
        self.stats.files_total += len(items)
        self.stats.bytes_total += sum(i.size or 0 for i in items)
        done, sent = self.stats.files_done, self.stats.bytes_done

        def progress(p: UploadProgress) -> None:
            self.stats.files_done = done + p.files_done
            self.stats.bytes_done = sent + p.bytes_done
            self._tell()

        await self._bulk_upload(items, skip_duplicates=False, on_progress=progress)

    async def _upload_files(self, fresh: list[PlanItem]) -> None:
        """One pipeline over every file: chunks overlap (hash, PUT, confirm) on one set of clients."""
        select = self._select_unknown if self.stats.unchecked else None
        await self._bulk_upload(fresh, skip_duplicates=not self.force, on_progress=self._copy_progress, select=select)
        self.stats.unchecked = 0

    async def _bulk_upload(
        self,
        items: list[PlanItem],
        *,
        skip_duplicates: bool,
        on_progress: Callable[[UploadProgress], None],
        select: Callable[[list[FileSpec]], list[FileSpec]] | None = None,
    ) -> None:
        """``items`` through one bulk upload, each chunk recorded as it is confirmed."""
        from mixpeek_magics.ingest.bulk import abulk_upload

        uploaded = await abulk_upload(
            self.aclient,
            self.bucket_id,
            items,
            concurrency=self.concurrency,
            skip_duplicates=skip_duplicates,
            submit=False,
            namespace=self.ns_id,
            on_progress=on_progress,
            on_chunk=self._record_chunk,
            select=select,
        )
        self.result.confirm_tasks.extend(uploaded.confirm_task_ids)

    def _select_unknown(self, hashed: list[FileSpec]) -> list[FileSpec]:
        """Of a chunk's files just hashed by the upload, those the ingest state does not
        know; the others are recorded (skipped, or put into this run's batch)."""
        rows = self._lookup(s.sha256 for s in hashed)
        new: list[FileSpec] = []
        for spec in hashed:
            item = self.by_path.get(os.path.normpath(spec.path))
            if item is None or item.sha256 is not None:  # looked up before the upload started
                new.append(spec)
                continue
            self.stats.unchecked -= 1
            if self._take_known(item, rows.get(spec.sha256 or ""), spec.sha256):
                self.stats.files_total -= 1
                self.stats.bytes_total -= item.size or 0
            else:
                new.append(spec)
        self._tell()
        return new

    def _copy_progress(self, p: UploadProgress) -> None:
        self.stats.files_done = p.files_done
        self.stats.bytes_done = p.bytes_done
        self._tell()

    def _record_chunk(self, outcomes: list[FileOutcome]) -> None:
        """One chunk's outcomes: recorded as the upload goes, so an interrupt keeps them."""
        confirmed = [row for row in map(self._record_file, outcomes) if row is not None]
        made = {o.object_id for o in outcomes if o.status == "uploaded" and o.object_id}
        ACTIVE_RUNS.add(self.run_id, made)
        self.state.record(
            self.server, self.namespace, (self.bucket_id, self.bucket.bucket_name), confirmed, made_here=made
        )
        self._tell()

    def _record_file(self, o: FileOutcome) -> _StateRow | None:
        """One file's outcome into the result; its state row when its object exists
        (the object then goes into this run's batch)."""
        item = self.by_path.get(os.path.normpath(o.path))
        sha = o.sha256 or (item.sha256 if item else None)
        src = item.source if item else o.path

        def outcome(status: str, error: str | None = None) -> ItemOutcome:
            return ItemOutcome(
                src,
                "file",
                status,
                o.object_id,
                error=error,
                size=o.size,
                sha256=sha,
                line=item.line if item else None,
                row=item.row if item else None,
                metadata=dict(item.metadata) if item else {},
            )

        if o.status == "uploaded":
            self.result.items.append(outcome("new"))
            self.stats.uploaded += 1
        elif o.status == "duplicate" and not o.object_id and item is not None and not self.force:
            self.again.append(item)  # a duplicate of nothing the server names: uploaded again
            return None
        elif o.status == "duplicate":
            # On the server already, but not known here as processed: process it now.
            self.result.items.append(outcome("recovered"))
            self.stats.duplicates += 1
        else:
            self.result.items.append(outcome("failed", o.error))
            self.stats.failed += 1
            return None
        if not (sha and o.object_id):
            return None
        self.to_submit.append((sha, o.object_id))
        return (sha, src, o.object_id)

    def _url_body(self, item: PlanItem) -> dict[str, Any]:
        """A create-object request whose one blob references the URL."""
        prop, btype = _property_for(self.bucket.bucket_schema, item.blob_type)
        blob: dict[str, Any] = {"property": prop, "type": btype, "data": item.source}
        body: dict[str, Any] = {"blobs": [blob], "skip_duplicates": not self.force}
        if item.metadata:
            body["metadata"] = dict(item.metadata)
            blob["metadata"] = dict(item.metadata)
        return body

    async def _create_url_objects(self, group: list[PlanItem]) -> None:
        """Objects for up to 100 URLs in one request; each one recorded as created or failed."""
        bodies = [self._url_body(item) for item in group]
        answer = await self.aclient.objects.create_many(self.bucket_id, bodies, namespace=self.ns_id)
        failed = {f.object_index: f.error for f in answer.failed}
        ok = iter(answer.succeeded)
        created: list[_StateRow] = []
        for idx, item in enumerate(group):
            if idx in failed:
                self.result.items.append(self._outcome(item, "failed", error=failed[idx]))
                continue
            obj = next(ok, None)
            oid = obj.object_id if obj is not None else None
            self.result.items.append(self._outcome(item, "new", oid))
            if oid:
                key = "url:" + item.source
                created.append((key, item.source, oid))
                self.to_submit.append((key, oid))
        ACTIVE_RUNS.add(self.run_id, (oid for _k, _s, oid in created if oid))
        self.state.record(self.server, self.namespace, (self.bucket_id, self.bucket.bucket_name), created)

    async def _leave_objects_to_other_runs(self) -> None:
        """Objects this run did not make (duplicates, recovered ones) stay out of its batch when
        another batch took them (``ObjectResponse.status``: they count as duplicates), or when
        another run that is still going made them and will submit them itself (see
        :mod:`mixpeek_magics.ingest.makers`): those wait in ``self.left``. The contract's
        batch deduplication only skips objects that already have documents, so two batches
        submitted at once would both process an object."""
        made_here = {i.object_id for i in self.result.items if i.status == "new"}
        keys = {oid: k for k, oid in self.to_submit if oid not in made_here}
        if not keys:
            return
        states = await self._not_taken(list(keys))
        if states is None:
            return  # cannot tell: submitted here (the server makes one object per file anyway)
        open_, gone = states
        if gone:
            self._upload_gone_again(gone)
            keys = {oid: k for oid, k in keys.items() if oid not in gone}
        rows = self._lookup(keys.values())
        taken = set(keys) - set(open_) - gone
        for oid, key in keys.items():
            if oid in taken:
                continue
            created_at = open_[oid]
            row = rows.get(key)
            maker = maker_from_row(row) if row is not None and row.get("object_id") == oid else None
            wait = left_to_maker(oid, key, maker, created_at, self.run_id)
            if wait is not None:
                self.left[oid] = wait
        self.to_submit = [
            (k, oid) for k, oid in self.to_submit if oid not in taken and oid not in self.left and oid not in gone
        ]
        self._mark_duplicates(taken)
        self.stats.left_to_others = len(self.left)
        if self.left:
            self.stats.left_wait_seconds = max(w.deadline for w in self.left.values()) - time.monotonic()
        self._tell()

    def _upload_gone_again(self, gone: set[str]) -> None:
        """Items whose object no longer exists: files are uploaded again (``self.again``); their
        outcomes so far are dropped (the new upload gives theirs)."""
        files = {os.path.normpath(i.source): i for i in self.plan.files}
        kept: list[ItemOutcome] = []
        for out in self.result.items:
            item = files.get(os.path.normpath(out.source)) if out.kind == "file" else None
            if out.object_id in gone and item is not None and not self.force:
                self.again.append(item)
                if out.status == "recovered":
                    self.stats.skipped = max(0, self.stats.skipped - 1)
                continue
            if out.object_id in gone:
                out.status, out.error = "failed", f"its object {out.object_id} no longer exists; re-run with --force"
            kept.append(out)
        self.result.items = kept

    async def _not_taken(self, object_ids: list[str]) -> tuple[dict[str, str | None], set[str]] | None:
        """Of ``object_ids``, those neither processed nor in a batch being processed, with their
        ``created_at``, and apart those the bucket no longer has; None when that cannot be read."""
        found = await self._object_states(object_ids)
        if found is None:
            return None
        open_ = {
            oid: found[oid][1] if oid in found else None
            for oid in object_ids
            if oid not in found or found[oid][0] not in _TAKEN
        }
        if any(found.get(oid, (None, None))[0] == "PENDING" for oid in open_):
            in_batches = await self._objects_in_active_batches()
            if in_batches is None:
                return None
            open_ = {oid: created for oid, created in open_.items() if oid not in in_batches}
        gone = {oid for oid in open_ if oid not in found}
        return {oid: created for oid, created in open_.items() if oid not in gone}, gone

    async def _objects_in_active_batches(self) -> set[str] | None:
        """The objects the bucket's submitted, unfinished batches process (``loaded_object_ids``,
        else ``object_ids``); None when they cannot be read."""
        from mixpeek_magics.client import errors

        out: set[str] = set()
        for status in _ACTIVE_BATCH:
            try:
                async for b in self.aclient.batches.iter(
                    self.bucket_id, status=status, limit=_BATCH_PAGE, namespace=self.ns_id
                ):
                    out.update(b.loaded_object_ids if b.loaded_object_ids is not None else b.object_ids or [])
            except errors.MixpeekError:
                return None
        return out

    async def _object_states(self, object_ids: list[str]) -> dict[str, tuple[str | None, str | None]] | None:
        """object id -> (normalized status, created_at), None when they cannot be read."""
        from mixpeek_magics.client import errors, statuses

        out: dict[str, tuple[str | None, str | None]] = {}
        for group in _groups_of(object_ids, CHUNK):
            filters = {"AND": [{"field": "object_id", "operator": "in", "value": group}]}
            try:
                page = await self.aclient.objects.list(
                    self.bucket_id,
                    filters,
                    select=["object_id", "status", "created_at"],
                    limit=len(group),
                    namespace=self.ns_id,
                )
            except errors.MixpeekError:
                return None
            for o in page.items:
                if o.object_id:
                    out[o.object_id] = (statuses.normalize(o.status) if o.status else None, o.created_at)
        return out

    def _mark_duplicates(self, object_ids: set[str]) -> None:
        for item in self.result.items:
            if item.status == "recovered" and item.object_id in object_ids:
                item.status = "duplicate"

    async def _wait_for_other_runs(self) -> None:
        """Until each object left to another run is taken by a batch or its wait is over; those
        still waiting then go into a batch of this run (their maker ended without submitting)."""
        log.info("waiting for %d object(s) another run made to be submitted by it", len(self.left))
        mine: list[tuple[str, str]] = []
        while self.left:
            for oid, wait in list(self.left.items()):
                if released(oid, wait):
                    mine.append((wait.key, oid))
                    del self.left[oid]
            if not self.left:
                break
            await asyncio.sleep(RACE_POLL)
            states = await self._not_taken(list(self.left))
            if states is None:
                continue
            open_, gone = states
            taken = set(self.left) - set(open_) - gone
            for oid in taken:
                del self.left[oid]
            self._mark_duplicates(taken)
            self.result.left_to_makers += len(taken)
            self.stats.left_to_others = len(self.left)
            self._tell()
        self.stats.left_to_others = 0
        if mine:
            self.to_submit = mine
            await self._submit_batch()

    async def _submit_batch(self) -> None:
        """Everything new (uploaded, recovered, URL objects) into one batch, submitted."""
        ids = list(dict.fromkeys(oid for _k, oid in self.to_submit))
        meta = {"provenance": dict(self.result.provenance)} if self.result.provenance else None
        batch = await self.aclient.batches.create(self.bucket_id, ids, metadata=meta, namespace=self.ns_id)
        task = await self.aclient.batches.submit(self.bucket_id, batch.batch_id, namespace=self.ns_id)
        self.result.batches.append(batch.batch_id)
        self.result.tasks.append(task.task_id)
        keys = [k for k, _ in self.to_submit]
        self.state.mark_submitted(self.server, self.bucket_id, keys, batch.batch_id, task.task_id)

    def _sync_request(self, item: PlanItem) -> dict[str, Any]:
        """``syncs.create`` arguments for an s3:// or gdrive:// line: one initial-only sync."""
        source_path = item.source.split("://", 1)[1].strip("/") if "://" in item.source else item.source
        kwargs: dict[str, Any] = dict(
            connection_id=item.connection_id, source_path=source_path, sync_mode="initial_only", namespace=self.ns_id
        )
        meta = {**(item.metadata or {})}
        if self.result.provenance:
            meta["provenance"] = dict(self.result.provenance)
        if meta:
            kwargs["metadata"] = meta
        return kwargs

    async def _start_sync(self, item: PlanItem) -> None:
        """The sync of one line, and the tasks its first run started."""
        try:
            sync = await self.aclient.syncs.create(self.bucket_id, **self._sync_request(item))
        except Exception as exc:  # one bad sync must not hide the others' outcome
            self.result.items.append(ItemOutcome(item.source, item.kind, "failed", error=str(exc), line=item.line))
            return
        sid: str | None = sync.sync_config_id
        if sid:
            self.result.syncs.append(sid)
        self.result.items.append(ItemOutcome(item.source, item.kind, "sync", sync_id=sid, line=item.line))
        for tid in await _sync_tasks(self.aclient, self.bucket_id, sid, self.ns_id):
            if tid not in self.result.tasks:
                self.result.tasks.append(tid)


async def _sync_tasks(
    aclient: Any, bucket_id: str, sync_id: str | None, ns_id: str | None, wait_seconds: float = 10.0
) -> list[str]:
    """The task ids a new sync started (they appear shortly after it is created)."""
    if not sync_id:
        return []
    deadline = time.monotonic() + wait_seconds
    delay = 0.1
    while True:
        try:
            sync: SyncConfiguration = await aclient.syncs.get(bucket_id, sync_id, namespace=ns_id)
        except Exception:
            return []
        if sync.task_ids:
            return [str(t) for t in sync.task_ids]
        if time.monotonic() > deadline:
            return []
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)
