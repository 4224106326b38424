"""Background worker: really processes each object of a submitted batch.

For every object it reads the bytes (stored blob, http(s) URL, registered
scheme), computes size, sha256, a sniffed MIME type and simple features
(text: lines/words/chars; image: width/height via Pillow), and records the
result on the object. Progress and failures go where the contract has them:
the batch's ``progress`` (refreshed every ``progress_refresh_seconds`` while it
runs), ``failed_objects`` and ``failed_object_count``; the task keeps only its
status, the documented ``additional_data`` keys and the processed object ids.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import posixpath
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .blobs import CHUNK, BlobCanceled, BlobReadError, ReadContext, materialize, remove_quietly
from .collections import run_collections_for_object
from .db import loads
from .errors import APIError
from .sniff import SNIFF_BYTES, TextStats, image_features, is_text, sniff_mime, wants_image

log = logging.getLogger("mixpeek_magics.local.worker")


class Stopping(Exception):
    """The server is stopping: leave the task for recovery on the next start."""


# Confirmations done per transaction: a few ms of holding the database lock,
# which request handlers (the presigned PUTs among them) wait for.
CONFIRM_GROUP = 20


def error_type(message: str) -> str:
    """FailedObjectRecord.error_type: transient (worth retrying) or permanent (bad data)."""
    m = message.lower()
    if any(
        w in m
        for w in ("timed out", "timeout", "connection", "temporar", "http 5", "http 429", "unavailable", "throttl")
    ):
        return "transient"
    return "permanent"


class _BatchRun:
    """A batch task working through its objects: counts and failures in memory, the
    batch's ``progress`` written every ``progress_refresh_seconds`` (every object
    while the demo pace is on, so demos show each step)."""

    def __init__(self, state: Any, task_id: str, batch_id: str, total: int) -> None:
        self.state, self.task_id, self.batch_id, self.total = state, task_id, batch_id, total
        self.processed = 0
        self.failures: list[dict[str, Any]] = []  # FailedObjectRecords
        self.filenames: dict[str, str | None] = {}
        self.done: list[str] = []  # object ids processed successfully (the task's outputs)
        self.documents = 0  # documents the collections wrote for these objects
        self.started = time.monotonic()
        self.last_flush = self.started
        self.every_item = state.settings.pace_seconds > 0

    def start(self, ad: dict[str, Any]) -> bool:
        """Mark the task PROCESSING; False when it was canceled meanwhile."""
        from .services import batch_started

        with self.state.store.tx():
            if not self.state.update_task(self.task_id, status="PROCESSING", additional_data=ad, outputs=[]):
                return False
            batch_started(self.state, self.batch_id, self.task_id, self.total)
        return True

    def add(self, object_id: str, error: str | None, filename: str | None) -> None:
        self.processed += 1
        if error is None:
            self.done.append(object_id)
        else:
            self.failures.append(
                {
                    "object_id": object_id,
                    "error": error,
                    "error_type": error_type(error),
                    "timestamp": self.state.iso_now(),
                }
            )
            self.filenames[object_id] = filename
        now = time.monotonic()
        if self.every_item or now - self.last_flush >= self.state.settings.progress_refresh_seconds:
            self.last_flush = now
            self.flush()

    def progress(self) -> dict[str, Any]:
        from .services import progress_dict

        first = self.failures[0]["error"] if self.failures else None
        return progress_dict(self.processed, self.total, len(self.failures), first, time.monotonic() - self.started)

    def flush(self) -> None:
        from .services import batch_progress

        batch_progress(self.state, self.batch_id, self.task_id, self.progress(), list(self.failures))


def _tier_errors(run: _BatchRun) -> list[dict[str, Any]]:
    """The batch's failures as tier errors (with the filename in their metadata)."""
    return [
        {
            "error_type": "runtime",
            "message": f["error"],
            "component": "local-worker",
            "stage": "object_processing",
            "traceback": None,
            "timestamp": f["timestamp"],
            "affected_document_ids": [f["object_id"]],
            "affected_count": 1,
            "recovery_suggestion": None,
            "metadata": {"filename": run.filenames.get(f["object_id"])},
        }
        for f in run.failures
    ]


class Worker:
    def __init__(self, state) -> None:
        self.state = state
        self.queue: queue.Queue[str] = queue.Queue()
        self.stop_event = threading.Event()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        for i in range(self.state.settings.workers):
            t = threading.Thread(target=self._loop, name=f"mixpeek-local-worker-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        with self._lock:
            for ev in self._cancel.values():
                ev.set()
        for _ in self.threads:
            self.queue.put(None)  # type: ignore[arg-type]  # wake idle threads
        for t in self.threads:
            t.join(timeout)
        self.threads.clear()

    def submit(self, task_id: str) -> None:
        with self._lock:
            self._cancel.setdefault(task_id, threading.Event())
        self.queue.put(task_id)

    def cancel(self, task_id: str) -> None:
        with self._lock:
            ev = self._cancel.get(task_id)
        if ev is not None:
            ev.set()

    def _event(self, task_id: str) -> threading.Event:
        with self._lock:
            return self._cancel.setdefault(task_id, threading.Event())

    # -- loop ----------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                task_id = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if task_id is None:
                break
            try:
                self._run(task_id)
            except Stopping:
                pass
            except Exception as exc:  # noqa: BLE001 - a task must never be left stuck
                log.exception("task %s crashed", task_id)
                try:
                    self._fail(task_id, f"internal error: {type(exc).__name__}: {exc}")
                except Exception:  # pragma: no cover
                    log.exception("could not mark task %s failed", task_id)
            finally:
                if not self.stop_event.is_set():
                    with self._lock:
                        self._cancel.pop(task_id, None)

    def _fail(self, task_id: str, message: str) -> None:
        from .services import after_batch_task, update_batch_status

        row = self.state.get_task_row(task_id)
        ad = loads(row["additional_data"]) if row else {}
        ad = ad or {}
        ad["error"] = message
        job = loads(row["job"]) if row else None
        with self.state.store.tx():
            self.state.update_task(task_id, status="FAILED", error=message, additional_data=ad)
            if job and job.get("kind") == "batch":
                update_batch_status(self.state, job["batch_id"], "FAILED", error=message, task_id=task_id)
                after_batch_task(self.state, task_id)

    def _run(self, task_id: str) -> None:
        row = self.state.get_task_row(task_id)
        if row is None or row["status"] not in ("PENDING", "QUEUED"):
            return
        job = loads(row["job"]) or {}
        kind = job.get("kind")
        if kind == "batch":
            self._run_batch(task_id, row, job)
        elif kind == "confirm_batch":
            self._run_confirm_batch(task_id, row, job)
        else:
            self._fail(task_id, f"unknown job kind {kind!r}")

    # -- pacing / cancellation -------------------------------------------------
    def _check(self, cancel: threading.Event) -> bool:
        """True when the task was canceled; raises Stopping when the server stops."""
        if self.stop_event.is_set():
            raise Stopping()
        return cancel.is_set()

    def _pace(self, cancel: threading.Event) -> None:
        delay = self.state.scaled(self.state.settings.pace_seconds)
        if delay > 0:
            cancel.wait(delay)

    def _next_item(self, cancel: threading.Event, paced: bool = True) -> bool:
        """Before each item: honour cancel, wait the demo pace, honour cancel again."""
        if self._check(cancel):
            return False
        if paced:
            self._pace(cancel)
        return not self._check(cancel)

    # -- batch processing --------------------------------------------------------
    def _run_batch(self, task_id: str, row, job: dict[str, Any]) -> None:
        cancel = self._event(task_id)
        ad = loads(row["additional_data"]) or {}
        object_ids: list[str] = list(job.get("object_ids") or [])
        batch_id = job["batch_id"]
        ad["current_tier"] = 0
        run = _BatchRun(self.state, task_id, batch_id, len(object_ids))
        if not run.start(ad):
            return  # canceled meanwhile
        for oid in object_ids:
            if not self._next_item(cancel):
                return
            result = self._process_batch_object(oid, batch_id, cancel)
            if result is None:
                return  # canceled while it was processed
            run.add(
                oid,
                None if result["status"] == "COMPLETED" else (result.get("error") or "processing failed"),
                result.get("filename"),
            )
            run.documents += int(result.get("documents_written") or 0)
        if self._check(cancel):
            return
        self._end_batch_task(run, ad)

    def _process_batch_object(self, oid: str, batch_id: str, cancel: threading.Event) -> dict[str, Any] | None:
        """Process one object of a batch and save its status: the result, or None when the
        task was canceled meanwhile (``Stopping`` when the server stops)."""
        from .services import save_object

        state = self.state
        orow = state.store.one("SELECT doc, org_id, namespace_id, bucket_id FROM objects WHERE object_id=?", (oid,))
        if orow is None:
            return {
                "object_id": oid,
                "filename": None,
                "status": "FAILED",
                "error": "object not found (deleted before processing)",
            }
        d = loads(orow["doc"])  # PENDING until its run ends, as the contract describes an object
        ctx = ReadContext(
            org_id=orow["org_id"],
            namespace_id=orow["namespace_id"],
            bucket_id=orow["bucket_id"],
            object_id=oid,
            data_dir=state.data_dir,
            state=state,
            cancel=cancel,
        )
        try:
            result = self.process_object(d, ctx)
            if result["status"] == "COMPLETED":
                result = self._run_collections(d, orow, batch_id, cancel, result)
        except BlobCanceled:
            if self.stop_event.is_set():
                raise Stopping() from None
            return None
        if cancel.is_set() and self.stop_event.is_set():
            raise Stopping()
        d["status"] = "COMPLETED" if result["status"] == "COMPLETED" else "FAILED"
        d["error"] = result.get("error")
        d["updated_at"] = state.iso_now()
        if cancel.is_set():
            return None
        save_object(state, d)
        return result

    def _end_batch_task(self, run: _BatchRun, ad: dict[str, Any]) -> None:
        """The task's and the batch's final status (FAILED when every object failed), in one transaction."""
        from .services import after_batch_task, finish_batch

        state, task_id, total = self.state, run.task_id, run.total
        failed = len(run.failures)
        error = None
        if total and failed == total:
            status = "FAILED"
            first = run.failures[0]
            name = run.filenames.get(first["object_id"]) or first["object_id"]
            error = f"all {total} object(s) failed; first: {name}: {first['error']}"
            ad["error"] = error
        elif failed:
            status = "COMPLETED_WITH_ERRORS"
        else:
            status = "COMPLETED"
        with state.store.tx():
            if state.update_task(task_id, status=status, additional_data=ad, outputs=run.done, error=error):
                finish_batch(
                    state, run.batch_id, task_id, status, run.failures, _tier_errors(run), error, run.documents
                )
                after_batch_task(state, task_id)

    def _run_collections(
        self, d: dict[str, Any], orow: Any, batch_id: str, cancel: threading.Event, result: dict[str, Any]
    ) -> dict[str, Any]:
        """Tier 0: every collection whose source is the object's bucket writes its documents."""
        obj = {**d, "org_id": orow["org_id"], "namespace_id": orow["namespace_id"]}
        runs = run_collections_for_object(self.state, obj, batch_id, cancel=cancel)
        result = {**result, "documents_written": sum(len(r["document_ids"]) for r in runs)}
        failed = [r for r in runs if r["status"] == "FAILED"]
        if not failed:
            return result
        return {
            **result,
            "status": "FAILED",
            "error": "; ".join(f"collection {r['collection_name']}: {r['error']}" for r in failed),
        }

    def process_object(self, d: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        """Process every blob of an object; the first blob gives the top-level fields."""
        blob_results = []
        error = None
        for blob in d.get("blobs", []):
            res = self.process_blob(blob, ctx)
            blob_results.append(res)
            if res.get("error") and error is None:
                error = res["error"]
        first = blob_results[0] if blob_results else {}
        filename = first.get("filename")
        return {
            "object_id": d["object_id"],
            "filename": filename,
            "status": "FAILED" if error else "COMPLETED",
            "mime_type": first.get("mime_type"),
            "size_bytes": first.get("size_bytes"),
            "sha256": first.get("sha256"),
            "features": first.get("features", {}),
            **({"error": error} if error else {}),
            **({"blobs": blob_results} if len(blob_results) > 1 else {}),
        }

    def process_blob(self, blob: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        state = self.state
        details = blob.setdefault("details", {})
        props = blob.setdefault("properties", {})
        filename = details.get("filename") or blob.get("property")
        res: dict[str, Any] = {
            "blob_id": blob.get("blob_id"),
            "property": blob.get("property"),
            "filename": filename,
            "mime_type": None,
            "size_bytes": None,
            "sha256": None,
            "features": {},
        }
        for pattern in state.settings.fail_filenames:
            base = posixpath.basename(filename or "")
            if fnmatch.fnmatch(filename or "", pattern) or fnmatch.fnmatch(base, pattern):
                res["error"] = f"injected failure: filename matches fail pattern {pattern!r}"
                return res
        url = props.get("url")
        if not url:
            res["error"] = "blob has no data"
            return res
        tmp = None
        ctx.extra["blob_properties"] = props
        try:
            path, is_tmp = materialize(url, ctx, state.data_dir / "tmp")
            tmp = path if is_tmp else None
            size, sha, head, text = self._scan(path, ctx)
            mime = sniff_mime(head, filename)
            res.update(size_bytes=size, sha256=sha, mime_type=mime)
            if wants_image(blob.get("type"), filename, mime):
                res["features"] = image_features(path)
            elif text is not None:
                res["features"] = text
            details.update(size_bytes=size, hash=sha, mime_type=details.get("mime_type") or mime)
            details["sniffed_mime_type"] = mime
            props["features"] = res["features"]
        except BlobCanceled:
            raise
        except (BlobReadError, ValueError) as exc:
            res["error"] = str(exc)
        except OSError as exc:
            res["error"] = f"cannot read blob: {exc}"
        except Exception as exc:  # noqa: BLE001
            log.debug("blob processing error: %s", traceback.format_exc())
            res["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if tmp is not None:
                remove_quietly(tmp)
        return res

    def _scan(self, path: Path, ctx: ReadContext) -> tuple[int, str, bytes, dict | None]:
        """Stream the file once: size, sha256, the first bytes, text statistics."""
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            sha.update(head)
            size = len(head)
            stats = TextStats() if is_text(head) else None
            if stats is not None:
                stats.feed(head)
            while True:
                ctx.check_cancel()
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
                size += len(chunk)
                if stats is not None:
                    stats.feed(chunk)
        return size, sha.hexdigest(), head, (stats.result() if stats is not None else None)

    # -- uploads batch confirm ---------------------------------------------------
    # Not paced: the pace setting makes *processing* visible in demos; confirming
    # uploads is bookkeeping and would only make every demo upload look slow.
    def _run_confirm_batch(self, task_id: str, row, job: dict[str, Any]) -> None:
        """Each upload's outcome goes on the upload (status COMPLETED with its
        object_id, or FAILED with the reason in ``message``), where the contract
        has it; the task's ``outputs`` are the object ids confirmed."""
        from .services import confirm_uploads

        state = self.state
        cancel = self._event(task_id)
        ad = loads(row["additional_data"]) or {}
        confirmations = job.get("confirmations") or []
        total = len(confirmations)
        if not state.update_task(task_id, status="PROCESSING", outputs=[]):
            return
        object_ids: list[str] = []
        failures: list[str] = []
        for at in range(0, total, CONFIRM_GROUP):
            if not self._next_item(cancel, paced=False):
                return
            group = confirmations[at : at + CONFIRM_GROUP]
            results = confirm_uploads(
                state, row["org_id"], job["namespace_id"], job["bucket_id"], group, task_id=task_id
            )
            for conf, (r, _up) in zip(group, results):
                if isinstance(r, APIError):
                    failures.append(f"{conf.get('upload_id')}: {r.message}")
                elif r.get("object_id"):
                    object_ids.append(r["object_id"])
            state.update_task(task_id, outputs=object_ids)
        if self._check(cancel):
            return
        error = None
        if total and len(failures) == total:
            status = "FAILED"
            error = f"all {total} confirmation(s) failed; first: {failures[0]}"
            ad["error"] = error
        else:
            status = "COMPLETED_WITH_ERRORS" if failures else "COMPLETED"
        state.update_task(task_id, status=status, additional_data=ad, outputs=object_ids, error=error)
