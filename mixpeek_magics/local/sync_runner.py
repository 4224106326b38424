"""Bucket syncs of the local server: the scheduler, the sync runs and their jobs.

A run lists the source through the connection's provider (S3 ListObjectsV2
pages, Drive ``files.list`` pages) with the sync's ``file_filters`` applied,
skips files whose version (ETag / md5 / size / modified time) it already
ingested, creates one object per new or changed file whose blob references
the file (``s3://bucket/key`` or ``gdrive://<file id>``; the worker reads the
bytes through the connection, see :mod:`.connections`), and submits them in
batches of ``batch_size`` objects.

Every run is a job (``SyncJobModel``, table ``sync_jobs``): created queued by
a trigger (or when a scheduled run starts), ``running`` while it lists and
submits, then ``completed`` / ``failed`` (``interrupted`` by a restart,
``skipped`` when the sync was paused before it started). The sync points at
it (``current_sync_run_id``), counts runs (``sync_run_counter``), lists the
batches and tasks runs created (``batch_ids``, ``task_ids``) and summarizes the
current run in ``sync_progress``. A job ends when its batches are submitted,
not when they are processed: their tasks run on, as the real service's do.

When a batch task ends, in the same transaction, its per-object results are
folded into the sync's metrics (``total_files_synced``, ``total_files_failed``,
``total_bytes_synced``) and its job's ``files_synced`` / ``files_failed`` (a
file whose bytes could not be read is failed after all). A failed file read
was already retried by the blob reader; the file is then failed and not
retried until it changes.

``initial_only`` syncs run once (status COMPLETED); ``continuous`` syncs poll
every ``polling_interval_seconds`` x the server's ``time_scale``. Everything
is in SQLite: after a restart, interrupted runs start again (a new job,
trigger ``resume``) and continuous syncs keep polling.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .connections import ConnectionService, ensure_schema
from .db import dumps, loads
from .deps import NsCtx
from .providers import FilterError, ProviderError, SourceFile
from .state import Caller, State

if TYPE_CHECKING:
    from fastapi import FastAPI
from .util import iso, new_id, parse_iso

log = logging.getLogger("mixpeek_magics.local.sync")

__all__ = ["SyncRunner", "install", "public_doc", "job_out", "TERMINAL_TASK"]

TERMINAL_TASK = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")
LOCK_SECONDS = 3600.0
TICK_SECONDS = 0.05
# why a run started -> SyncJobTrigger
JOB_TRIGGERS = {"create": "scheduled", "schedule": "scheduled", "manual": "manual", "restart": "resume"}
# keys of syncs stored by earlier versions that are no SyncConfigurationModel field
_OLD_KEYS = ("last_run", "failed_files", "provider_type")


def public_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored sync as SyncConfigurationModel: internal keys (``_...``) left out, ``locked`` computed."""
    out = {k: v for k, v in doc.items() if not k.startswith("_") and k not in _OLD_KEYS}
    out["locked"] = bool(doc.get("locked_by_worker_id"))
    return out


def job_out(doc: dict[str, Any], now: float) -> dict[str, Any]:
    """A stored job as SyncJobModel (``lag_seconds`` computed for a running job)."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    out["lag_seconds"] = None
    if out.get("status") == "running" and out.get("updated_at"):
        out["lag_seconds"] = max(0, int(now - parse_iso(out["updated_at"])))
    return out


def _percent(job: dict[str, Any]) -> float:
    total = job.get("total_files")
    done = int(job.get("files_synced") or 0) + int(job.get("files_failed") or 0) + int(job.get("files_verified") or 0)
    if total:
        return round(min(100.0, done * 100.0 / total), 2)
    return 100.0 if job.get("status") in ("completed", "skipped") else 0.0


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    """The run in a few numbers: the job's ``progress`` and its sync's ``sync_progress``."""
    meta = job.get("metadata") or {}
    return {
        "sync_job_id": job["sync_job_id"],
        "status": job.get("status"),
        "phase": job.get("phase"),
        "total_files": job.get("total_files"),
        "files_synced": job.get("files_synced"),
        "files_failed": job.get("files_failed"),
        "files_verified": job.get("files_verified"),
        "progress_percent": job.get("progress_percent"),
        "batch_ids": list(meta.get("batch_ids") or []),
        "task_ids": list(meta.get("task_ids") or []),
    }


def _blob_type(mime: str | None, name: str) -> str:
    import mimetypes

    from .services import blob_type_for_content_type

    return blob_type_for_content_type(mime or mimetypes.guess_type(name)[0] or "")


def _pick_property(schema: dict[str, Any] | None, btype: str) -> str:
    """The bucket-schema property a file of type ``btype`` goes into."""
    props = (schema or {}).get("properties") or {}
    file_props = [
        (n, (p or {}).get("type"))
        for n, p in props.items()
        if (p or {}).get("type") in ("text", "image", "audio", "video", "pdf", "excel")
    ]
    for name, t in file_props:
        if t == btype:
            return name
    if file_props:
        return file_props[0][0]
    return "content"


class _Run:
    def __init__(self, sync_id: str, run_id: str | None, trigger: str):
        self.sync_id = sync_id
        self.run_id = run_id  # the job's id (None: created when the run starts)
        self.trigger = trigger
        self.started = 0.0


class SyncRunner:
    """Schedules and executes the bucket syncs of one server state."""

    def __init__(self, state, connections: ConnectionService, max_parallel: int = 2) -> None:
        self.state = state
        self.connections = connections
        ensure_schema(state.store)
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, _Run] = {}
        self._rerun: dict[str, str] = {}  # sync id -> trigger reason of a requested re-run
        self._pending_ids: dict[str, str] = {}  # sync id -> id of the queued job a trigger created
        self._deleted: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="mixpeek-local-sync")
        self._thread: threading.Thread | None = None
        self.worker_id = f"local-{os.getpid()}-{id(self) & 0xFFFF:04x}"

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> SyncRunner:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="mixpeek-local-sync-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def recover(self) -> None:
        """Runs interrupted by a stop: their jobs are ``interrupted``, their locks cleared,
        and they run again now (a new job); jobs still queued stay queued."""
        store = self.state.store
        now = self.state.now()
        finished = iso(now)
        for row in store.query("SELECT sync_job_id, sync_config_id, doc FROM sync_jobs WHERE status='running'"):
            job = loads(row["doc"])
            sync = store.one("SELECT is_active FROM sync_configs WHERE sync_config_id=?", (row["sync_config_id"],))
            if job.get("phase") == "queued" and sync is not None and sync["is_active"]:
                self._pending_ids[row["sync_config_id"]] = row["sync_job_id"]
                self._rerun[row["sync_config_id"]] = (job.get("metadata") or {}).get("triggered_by") or "manual"
                continue

            def interrupted(j: dict[str, Any]) -> None:
                j.update(status="interrupted", phase=None, completed_at=finished, error="interrupted by server restart")

            self._job(row["sync_job_id"], interrupted)
        for row in store.query("SELECT sync_config_id, doc, is_active FROM sync_configs"):
            doc = loads(row["doc"])
            pending = row["sync_config_id"] in self._pending_ids
            if not doc.get("locked_by_worker_id") and not pending:
                continue

            def fix(d: dict[str, Any]) -> None:
                if d.get("locked_by_worker_id") and not d.get("paused") and d.get("is_active"):
                    d["_restart"] = True
                d.update(locked_by_worker_id=None, locked_at=None, lock_expires_at=None)
                if d.get("current_sync_run_id"):
                    job = self._job_doc(d["current_sync_run_id"])
                    if job is not None:
                        d["sync_progress"] = _summary(job)

            self._update(
                row["sync_config_id"],
                fix,
                next_run_at=now if row["is_active"] else None,
                keep_next=not row["is_active"],
            )

    # -- persistence -------------------------------------------------------------
    def _update(
        self,
        sync_id: str,
        fn: Callable[[dict[str, Any]], Any],
        *,
        next_run_at: float | None = None,
        keep_next: bool = True,
    ) -> dict[str, Any] | None:
        """Reload the sync, apply ``fn(doc)``, save (one transaction). ``next_run_at``
        replaces the schedule unless ``keep_next``."""
        state = self.state
        with state.store.tx():
            row = state.store.one("SELECT doc, next_run_at FROM sync_configs WHERE sync_config_id=?", (sync_id,))
            if row is None:
                return None
            doc = loads(row["doc"])
            fn(doc)
            doc["is_active"] = (
                not doc.get("paused") and doc.get("status") != "SUSPENDED" and bool(doc.get("is_active", True))
            )
            nra = row["next_run_at"] if keep_next else next_run_at
            doc["next_sync_at"] = iso(nra) if nra is not None else None
            state.store.execute(
                "UPDATE sync_configs SET doc=?, status=?, is_active=?, next_run_at=? WHERE sync_config_id=?",
                (dumps(doc), doc["status"], 1 if doc["is_active"] else 0, nra, sync_id),
            )
        return doc

    def schedule(self, sync_id: str, at: float | None) -> None:
        self._update(sync_id, lambda d: None, next_run_at=at, keep_next=False)
        self.wake.set()

    def _new_job(self, sync: dict[str, Any], trigger: str, triggered_by: str) -> str:
        """A queued job of ``sync`` (its doc); returns the job's id."""
        job_id = new_id("sjob")
        now = self.state.iso_now()
        doc = {
            "sync_job_id": job_id,
            "sync_config_id": sync["sync_config_id"],
            "internal_id": sync["internal_id"],
            "namespace_id": sync["namespace_id"],
            "status": "running",
            "trigger": JOB_TRIGGERS.get(trigger, trigger),
            "phase": "queued",
            "total_files": None,
            "files_synced": 0,
            "files_failed": 0,
            "files_verified": 0,
            "started_at": None,
            "completed_at": None,
            "updated_at": now,
            "error": None,
            "resumed_via": None,
            "current_cursor": None,
            "throughput_files_per_min": None,
            "progress_percent": 0.0,
            "metadata": {
                "triggered_by": triggered_by,
                "files_discovered": 0,
                "files_new": 0,
                "files_changed": 0,
                "files_unchanged": 0,
                "objects_created": 0,
                "batch_ids": [],
                "task_ids": [],
            },
            "progress": None,
            "_created_at": now,
        }
        doc["progress"] = _summary(doc)
        self.state.store.execute(
            "INSERT INTO sync_jobs(sync_job_id, sync_config_id, status, doc) VALUES (?,?,?,?)",
            (job_id, sync["sync_config_id"], "running", dumps(doc)),
        )
        return job_id

    def _job_doc(self, job_id: str) -> dict[str, Any] | None:
        row = self.state.store.one("SELECT doc FROM sync_jobs WHERE sync_job_id=?", (job_id,))
        return loads(row["doc"]) if row is not None else None

    def _job(self, job_id: str | None, fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
        """Reload a job, apply ``fn(doc)``, save it (progress fields recomputed)."""
        if job_id is None:
            return None
        with self.state.store.tx():
            job = self._job_doc(job_id)
            if job is None:
                return None
            fn(job)
            job["updated_at"] = self.state.iso_now()
            job["progress_percent"] = _percent(job)
            job["progress"] = _summary(job)
            self.state.store.execute(
                "UPDATE sync_jobs SET doc=?, status=? WHERE sync_job_id=?", (dumps(job), job["status"], job_id)
            )
        return job

    # -- API hooks -----------------------------------------------------------------
    def trigger(self, sync_id: str, reason: str = "manual") -> str:
        """Run now (or right after the current run). Returns the id of the run's job
        (the queued one, when a run was already asked for)."""
        with self._lock:
            job_id = self._pending_ids.get(sync_id)
            if job_id is None:
                row = self.state.store.one("SELECT doc FROM sync_configs WHERE sync_config_id=?", (sync_id,))
                job_id = self._new_job(loads(row["doc"]), reason, reason)
                self._pending_ids[sync_id] = job_id
            self._rerun[sync_id] = reason
            running = sync_id in self._running
        if not running:
            self.schedule(sync_id, self.state.now())
        return job_id

    def skip_queued(self, sync_id: str, reason: str) -> None:
        """The sync was paused: a run asked for and not started will not run."""
        with self._lock:
            job_id = self._pending_ids.pop(sync_id, None)
            self._rerun.pop(sync_id, None)
        now = self.state.iso_now()

        def skipped(j: dict[str, Any]) -> None:
            if j.get("phase") == "queued":
                j.update(status="skipped", phase=None, completed_at=now, error=reason)

        self._job(job_id, skipped)

    def forget(self, sync_id: str) -> None:
        with self._lock:
            self._deleted.add(sync_id)
            self._rerun.pop(sync_id, None)
            self._pending_ids.pop(sync_id, None)

    def is_running(self, sync_id: str) -> bool:
        with self._lock:
            return sync_id in self._running

    # -- scheduler -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the scheduler must survive anything
                if self.stop_event.is_set():
                    return
                log.exception("sync scheduler tick failed")
            self.wake.wait(TICK_SECONDS)
            self.wake.clear()

    def _tick(self) -> None:
        state = self.state
        now = state.now()
        due = state.store.query(
            "SELECT sync_config_id FROM sync_configs WHERE is_active=1 AND next_run_at IS NOT "
            "NULL AND next_run_at <= ? ORDER BY next_run_at",
            (now,),
        )
        for row in due:
            sid = row["sync_config_id"]
            with self._lock:
                if sid in self._running or self.stop_event.is_set():
                    continue
                run_id = self._pending_ids.pop(sid, None)
                trigger = self._rerun.pop(sid, None) or "schedule"
                run = _Run(sid, run_id, trigger)
                self._running[sid] = run
            # unschedule first so a slow run is not started twice
            self._update(sid, lambda d: None, next_run_at=None, keep_next=False)
            self._pool.submit(self._run_safe, run)
        self.reconcile()

    def _run_safe(self, run: _Run) -> None:
        try:
            self._run(run)
        except Exception as exc:  # noqa: BLE001
            if not self.stop_event.is_set():
                log.exception("sync %s run %s crashed", run.sync_id, run.run_id)
            self._finish(run, error=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(run.sync_id, None)
                again = run.sync_id in self._rerun and run.sync_id not in self._deleted
            if again and not self.stop_event.is_set():
                self.schedule(run.sync_id, self.state.now())

    # -- a run -------------------------------------------------------------------------
    def _run(self, run: _Run) -> None:
        state = self.state
        sid = run.sync_id
        started = state.iso_now()
        run.started = state.now()

        def begin(d: dict[str, Any]) -> None:
            trig = "restart" if d.pop("_restart", False) and run.trigger == "schedule" else run.trigger
            if run.run_id is None:
                run.run_id = self._new_job(d, trig, trig)
            d.update(
                locked_by_worker_id=self.worker_id,
                locked_at=started,
                lock_expires_at=iso(state.now() + LOCK_SECONDS),
                current_sync_run_id=run.run_id,
                sync_run_counter=int(d.get("sync_run_counter") or 0) + 1,
                resume_objects_processed=0,
                status="ACTIVE" if not d.get("paused") else d.get("status"),
                updated_at=started,
            )
            job = self._job(run.run_id, lambda j: j.update(phase="discovering", started_at=started))
            if job is not None:
                d["sync_progress"] = _summary(job)

        doc = self._update(sid, begin)
        if doc is None:
            return
        row = state.store.one("SELECT * FROM sync_configs WHERE sync_config_id=?", (sid,))
        svc = self.connections
        conn = svc.get_row(doc["connection_id"])
        if conn is None:
            return self._finish(run, error=f"storage connection {doc['connection_id']} no longer exists")
        if conn["status"] in ("SUSPENDED", "ARCHIVED"):
            return self._finish(
                run,
                error=f"storage connection '{loads(conn['doc'])['name']}' is {conn['status']}: "
                "reactivate it (PATCH status ACTIVE) to sync",
            )
        bucket = state.store.one("SELECT doc FROM buckets WHERE bucket_id=?", (row["bucket_id"],))
        if bucket is None:
            return self._finish(run, error=f"bucket {row['bucket_id']} no longer exists", deactivate=True)
        schema = loads(bucket["doc"]).get("bucket_schema")
        ns = NsCtx(row["org_id"], row["namespace_id"], row["namespace_id"], Caller(row["org_id"], False, "sync"))
        try:
            provider = svc.provider_for(conn)
        except ProviderError as err:
            svc.record(conn["connection_id"], False, err.full_message)
            return self._finish(run, error=err.full_message)
        known = {
            r["source_key"]: (r["version"], r["status"], r["object_id"])
            for r in state.store.query(
                "SELECT source_key, version, status, object_id FROM sync_files WHERE sync_config_id=?", (sid,)
            )
        }
        batch_size = int(doc.get("batch_size") or 50)
        limit = int(doc.get("max_objects_per_run") or 100000)
        counts = {"files_discovered": 0, "files_new": 0, "files_changed": 0, "files_unchanged": 0}
        chunk: list[tuple[SourceFile, str | None]] = []
        try:
            for f in provider.iter_files(doc["source_path"], doc.get("file_filters")):
                if self.stop_event.is_set() or sid in self._deleted:
                    return
                counts["files_discovered"] += 1
                old = known.get(f.key)
                if old is not None and old[0] == f.version_token and old[1] != "RETRY":
                    counts["files_unchanged"] += 1
                    continue
                counts["files_changed" if old is not None else "files_new"] += 1
                chunk.append((f, old[2] if old else None))
                if len(chunk) >= batch_size:
                    self._flush(run, doc, ns, schema, conn, chunk, counts)
                    chunk = []
                if counts["files_new"] + counts["files_changed"] >= limit:
                    break
            if chunk:
                self._flush(run, doc, ns, schema, conn, chunk, counts)
        except ProviderError as err:
            svc.record(conn["connection_id"], False, err.full_message)
            return self._finish(run, error=err.full_message, counts=counts)
        except FilterError as err:
            return self._finish(run, error=str(err), counts=counts)
        svc.record(conn["connection_id"], True, used=True)
        self._finish(run, counts=counts)

    def _flush(self, run: _Run, doc: dict[str, Any], ns: NsCtx, schema: Any, conn, chunk, counts) -> None:
        from .routes.batches import new_batch
        from .services import submit_batch

        state = self.state
        sid = run.sync_id
        if state.settings.sync_batch_seconds > 0:
            self.stop_event.wait(state.scaled(state.settings.sync_batch_seconds))
        if self.stop_event.is_set() or sid in self._deleted:
            return
        created: list[tuple[SourceFile, str]] = []
        failures: list[tuple[SourceFile, str]] = []
        skip = bool(doc.get("skip_batch_submission"))
        # one transaction for the chunk: objects, batch, task, file records and metrics become visible
        # together (the worker cannot start the task before the file records exist)
        with state.store.tx():
            self._create_objects(doc, ns, schema, conn, chunk, created, failures)
            batch_id = task_id = None
            if created:
                batch_id = new_batch(
                    state,
                    ns,
                    doc["bucket_id"],
                    [oid for _, oid in created],
                    {
                        "source": "bucket_sync",
                        "sync_config_id": sid,
                        "sync_job_id": run.run_id,
                        "connection_id": conn["connection_id"],
                    },
                )
                if not skip:
                    task_id = submit_batch(state, ns.org_id, ns.namespace_id, doc["bucket_id"], batch_id)
            self._record_chunk(run, chunk, created, failures, batch_id, task_id, skip, counts)

    def _record_chunk(self, run: _Run, chunk, created, failures, batch_id, task_id, skip, counts) -> None:
        state = self.state
        sid = run.sync_id
        rows = [
            (sid, f.key, f.version_token, oid, task_id, "SYNCED" if skip else "SUBMITTED", f.size, None)
            for f, oid in created
        ]
        rows += [(sid, f.key, f.version_token, None, None, "FAILED", f.size, err) for f, err in failures]
        synced_bytes = sum(int(f.size or 0) for f, _ in created) if skip else 0

        def job_progress(j: dict[str, Any]) -> None:
            meta = j.setdefault("metadata", {})
            meta.update(counts)
            meta["objects_created"] = int(meta.get("objects_created") or 0) + len(created)
            if batch_id:
                meta.setdefault("batch_ids", []).append(batch_id)
            if task_id:
                meta.setdefault("task_ids", []).append(task_id)
            j["files_synced"] = int(j.get("files_synced") or 0) + len(created)
            j["files_failed"] = int(j.get("files_failed") or 0) + len(failures)
            j["files_verified"] = counts["files_unchanged"]
            j["total_files"] = counts["files_discovered"]

        def progress(d: dict[str, Any]) -> None:
            d["resume_objects_processed"] = int(d.get("resume_objects_processed") or 0) + len(chunk)
            if batch_id:
                d["batch_ids"] = [*(d.get("batch_ids") or []), batch_id]
                d["batches_created"] = int(d.get("batches_created") or 0) + 1
            if task_id:
                d["task_ids"] = [*(d.get("task_ids") or []), task_id]
            if skip:
                d["total_files_synced"] = int(d.get("total_files_synced") or 0) + len(created)
                d["total_bytes_synced"] = int(d.get("total_bytes_synced") or 0) + synced_bytes
            if failures:
                d["total_files_failed"] = int(d.get("total_files_failed") or 0) + len(failures)
            if job is not None:
                d["sync_progress"] = _summary(job)
            d["updated_at"] = state.iso_now()

        with state.store.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO sync_files(sync_config_id, source_key, version, object_id, task_id, "
                "status, size_bytes, error) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            job = self._job(run.run_id, job_progress)
            self._update(sid, progress)

    def _create_objects(self, doc, ns, schema, conn, chunk, created, failures) -> None:
        """Insert the chunk's objects (the shape ``services.create_object`` gives a
        URL blob), in one statement; the caller holds the transaction."""
        from .services import touch_bucket
        from .util import check_filename

        state = self.state
        sid = doc["sync_config_id"]
        bucket_id = doc["bucket_id"]
        provider_type = conn["provider_type"]
        now = state.iso_now()
        rows = []
        for f, old_object in chunk:
            if old_object:
                self._drop_object(old_object)
            try:
                btype = _blob_type(f.mime_type, f.name)
                url = f"gdrive://{f.file_id}" if provider_type == "google_drive" else f"s3://{f.bucket}/{f.key}"
                rel_dir = posixpath.dirname(f.relative_path.strip("/")) or None
                if rel_dir is not None:
                    check_filename(rel_dir, "key_prefix")
                meta = {
                    "sync_config_id": sid,
                    "connection_id": conn["connection_id"],
                    "source_provider": provider_type,
                    "source_path": f.key,
                    "source_uri": f.uri,
                    "source_etag": f.etag_or_md5,
                    "source_size_bytes": f.size,
                    "source_modified_at": f.modified.isoformat() if f.modified else None,
                }
                blob = {
                    "blob_id": new_id("blob"),
                    "property": _pick_property(schema, btype),
                    "key_prefix": None,
                    "type": btype,
                    "properties": {
                        "connection_id": conn["connection_id"],
                        "sync_config_id": sid,
                        "source_key": f.key,
                        "source_name": f.name,
                        "url": url,
                        "source": "url",
                    },
                    "details": {"filename": f.name, "size_bytes": f.size, "mime_type": f.mime_type, "hash": None},
                }
                oid = new_id("obj")
                d = {
                    "object_id": oid,
                    "bucket_id": bucket_id,
                    "key_prefix": rel_dir,
                    "blobs": [blob],
                    "source_details": [{"type": "bucket", "source_id": bucket_id}],
                    "status": "PENDING",
                    "error": None,
                    "created_at": now,
                    "updated_at": now,
                    "metadata": meta,
                    "skip_duplicates": False,
                }
            except ValueError as exc:
                failures.append((f, str(exc)))
                continue
            rows.append((oid, ns.org_id, ns.namespace_id, bucket_id, "PENDING", None, int(f.size or 0), dumps(d)))
            created.append((f, oid))
        if rows:
            state.store.conn.executemany(
                "INSERT INTO objects(object_id, org_id, namespace_id, bucket_id, status, sha256, size_bytes, doc) "
                "VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            touch_bucket(state, bucket_id)

    def _drop_object(self, object_id: str) -> None:
        """A changed file replaces the object of its previous version."""
        from .services import delete_object_files

        row = self.state.store.one("SELECT doc FROM objects WHERE object_id=?", (object_id,))
        if row is None:
            return
        delete_object_files(self.state, loads(row["doc"]))
        self.state.store.execute("DELETE FROM objects WHERE object_id=?", (object_id,))

    def _finish(
        self, run: _Run, *, error: str | None = None, counts: dict[str, int] | None = None, deactivate: bool = False
    ) -> None:
        state = self.state
        now = state.now()
        finished = iso(now)
        sid = run.sync_id
        box: dict[str, Any] = {}

        def end_job(j: dict[str, Any]) -> None:
            if counts:
                j.setdefault("metadata", {}).update(counts)
                j["total_files"] = counts["files_discovered"]
                j["files_verified"] = counts["files_unchanged"]
            elif j.get("total_files") is None:
                j["total_files"] = 0
            j.update(
                status="failed" if error else "completed",
                phase=None,
                completed_at=finished,
                error=error[:1000] if error else None,
            )
            minutes = max(now - run.started, 1e-6) / 60.0 if run.started else None
            j["throughput_files_per_min"] = round(int(j.get("files_synced") or 0) / minutes, 2) if minutes else None

        def end(d: dict[str, Any]) -> None:
            job = self._job(run.run_id, end_job)
            meta = (job or {}).get("metadata") or {}
            d.update(locked_by_worker_id=None, locked_at=None, lock_expires_at=None, updated_at=finished)
            d["total_files_discovered"] = int(d.get("total_files_discovered") or 0) + int(
                meta.get("files_discovered") or 0
            )
            if job is not None:
                d["sync_progress"] = _summary(job)
                d["_last_job_status"] = job["status"]
                d["stats"] = _stats(d.get("stats"), job, now - run.started if run.started else 0.0)
            if error:
                d["last_error"] = error[:1000]
                d["consecutive_failures"] = int(d.get("consecutive_failures") or 0) + 1
            else:
                d["last_error"] = None
                d["consecutive_failures"] = 0
                d["last_sync_at"] = finished
            if deactivate:
                d["is_active"] = False
            paused = bool(d.get("paused"))
            if paused:
                d["status"] = "SUSPENDED"
                box["next"] = None
            elif error:
                d["status"] = "FAILED"
                box["next"] = (
                    now + state.scaled(int(d.get("polling_interval_seconds") or 300))
                    if d.get("sync_mode") == "continuous" and not deactivate
                    else None
                )
            elif d.get("sync_mode") == "continuous":
                d["status"] = "ACTIVE"
                box["next"] = now + state.scaled(int(d.get("polling_interval_seconds") or 300))
            else:
                d["status"] = "COMPLETED"
                box["next"] = None

        # compute the schedule inside the same transaction as the status
        with state.store.tx():
            doc = self._update(sid, end)
            if doc is not None:
                self._update(sid, lambda d: None, next_run_at=box.get("next"), keep_next=False)
        self.wake.set()

    # -- folding task results into the metrics ------------------------------------
    def reconcile(self) -> int:
        """Fold the results of finished sync tasks that were not folded when they
        ended (the sync runner was not there); returns how many tasks."""
        state = self.state
        rows = state.store.query(
            "SELECT DISTINCT f.task_id AS tid FROM sync_files f JOIN tasks t "
            "ON t.task_id = f.task_id WHERE f.status='SUBMITTED' AND t.status IN "
            "('COMPLETED','COMPLETED_WITH_ERRORS','FAILED','CANCELED')"
        )
        for r in rows:
            self.fold_task(r["tid"])
        return len(rows)

    def fold_task(self, task_id: str) -> None:
        """Fold a finished task's per-object results into its sync and its job (inside
        the caller's transaction: the worker's, when the task ends)."""
        state = self.state
        with state.store.tx() as c:
            task = state.get_task_row(task_id)
            if task is None or task["status"] not in TERMINAL_TASK:
                return
            files = state.store.query(
                "SELECT sync_config_id, source_key, object_id, size_bytes FROM sync_files "
                "WHERE task_id=? AND status='SUBMITTED'",
                (task_id,),
            )
            if not files:
                return
            sid = files[0]["sync_config_id"]
            objects = {
                r["object_id"]: r
                for r in state.store.query(
                    "SELECT object_id, status, size_bytes, json_extract(doc, '$.error') AS error FROM objects "
                    "WHERE object_id IN (SELECT value FROM json_each(?))",
                    (dumps([f["object_id"] for f in files]),),
                )
            }
            canceled = task["status"] == "CANCELED"
            ok = failed = retry = nbytes = 0
            updates: list[tuple[str, str | None, Any, str]] = []  # status, error, size, source key
            for f in files:
                o = objects.get(f["object_id"])
                if o is not None and o["status"] == "COMPLETED":
                    ok += 1
                    size = o["size_bytes"] or f["size_bytes"]
                    nbytes += int(size or 0)
                    updates.append(("SYNCED", None, size, f["source_key"]))
                elif canceled and (o is None or o["status"] not in ("FAILED",)):
                    retry += 1
                    updates.append(
                        ("RETRY", "task canceled before the file was processed", f["size_bytes"], f["source_key"])
                    )
                else:
                    err = (o["error"] if o is not None else None) or task["error"] or "processing failed"
                    failed += 1
                    updates.append(("FAILED", err, f["size_bytes"], f["source_key"]))
            c.executemany(
                "UPDATE sync_files SET status=?, error=?, size_bytes=? WHERE sync_config_id=? AND source_key=?",
                [(st, e, b, sid, k) for st, e, b, k in updates],
            )
            jrow = state.store.one(
                "SELECT sync_job_id FROM sync_jobs WHERE sync_config_id=? AND EXISTS "
                "(SELECT 1 FROM json_each(doc, '$.metadata.task_ids') WHERE value=?)",
                (sid, task_id),
            )

            def job_fold(j: dict[str, Any]) -> None:
                # a file whose bytes could not be read was not synced after all
                j["files_synced"] = max(0, int(j.get("files_synced") or 0) - failed - retry)
                j["files_failed"] = int(j.get("files_failed") or 0) + failed

            job = self._job(jrow["sync_job_id"], job_fold) if jrow is not None and (failed or retry) else None

            def fold(d: dict[str, Any]) -> None:
                d["total_files_synced"] = int(d.get("total_files_synced") or 0) + ok
                d["total_files_failed"] = int(d.get("total_files_failed") or 0) + failed
                d["total_bytes_synced"] = int(d.get("total_bytes_synced") or 0) + nbytes
                if job is not None and d.get("current_sync_run_id") == job["sync_job_id"]:
                    d["sync_progress"] = _summary(job)
                d["updated_at"] = state.iso_now()

            self._update(sid, fold)


def _stats(old: dict[str, Any] | None, job: dict[str, Any], seconds: float) -> dict[str, Any]:
    """SyncStatsModel after a run: the run's numbers and the running totals."""
    st = dict(old or {})
    meta = job.get("metadata") or {}
    seconds = max(0.0, seconds)
    synced = int(meta.get("objects_created") or 0)
    per_min = round(synced * 60.0 / seconds, 2) if seconds > 0 else 0.0
    completed = job["status"] == "completed"
    st.update(
        last_run_at=job.get("completed_at"),
        last_run_duration_seconds=round(seconds, 3),
        last_run_objects_discovered=int(meta.get("files_discovered") or 0),
        last_run_objects_synced=synced,
        last_run_objects_failed=int(job.get("files_failed") or 0),
        last_run_objects_skipped=0,
        last_run_objects_verified=int(meta.get("files_unchanged") or 0),
        last_run_throughput_objects_per_min=per_min,
        updated_at=job.get("completed_at"),
    )
    for key, add in (
        ("total_objects_discovered", st["last_run_objects_discovered"]),
        ("total_objects_synced", synced),
        ("total_objects_failed", st["last_run_objects_failed"]),
        ("total_objects_verified", st["last_run_objects_verified"]),
        ("total_runs_completed", 1 if completed else 0),
        ("total_runs_failed", 0 if completed else 1),
    ):
        st[key] = int(st.get(key) or 0) + add
    st["total_duration_seconds"] = round(float(st.get("total_duration_seconds") or 0.0) + seconds, 3)
    st["peak_objects_per_min"] = max(float(st.get("peak_objects_per_min") or 0.0), per_min)
    return st


def install(app: FastAPI | None, state: State) -> SyncRunner:
    """Enable storage connections and bucket syncs on a server state and its app."""
    from .routes import connections as conn_routes, syncs as sync_routes

    svc = state.storage_connections
    if svc is None:
        svc = ConnectionService(state)
        state.storage_connections = svc
    runner = state.sync_runner
    if runner is None:
        runner = SyncRunner(state, svc)
        state.sync_runner = runner
        runner.start()  # State.close() stops it before the worker and the database
    if app is not None and not getattr(app.state, "storage_sync_installed", False):
        app.state.storage_sync_installed = True
        app.include_router(conn_routes.router)
        app.include_router(sync_routes.router)
    return runner
