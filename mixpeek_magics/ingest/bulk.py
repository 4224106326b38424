"""Bulk upload: many local files into a bucket, then one batch submitted for processing.

The flow per chunk of at most 100 files (the API's batch limits):

1. hash each file (sha256, streamed, in worker threads) and guess its MIME type;
2. ``POST .../uploads/batch`` with ``file_hash`` + ``skip_duplicates`` so the
   server answers "already have it" for files it has seen, without a PUT;
3. PUT the new files to their presigned URLs, streamed from disk, with bounded
   concurrency;
4. ``POST .../uploads/confirm/batch`` for the files whose bytes fully arrived,
   wait for that (short) task, then read the uploads themselves
   (``POST .../uploads/list`` filtered ``upload_id in [...]``) for their object
   ids, or why they failed: the confirm task's outputs have no shape the
   contract declares.

Then every new object goes into one batch, which is submitted: the returned
task is what the caller watches. The chunks form one pipeline (one being
prepared, one being PUT, one being confirmed) over one set of clients and
pools; ``on_chunk`` hands each chunk's outcomes to the caller as it ends.
Memory stays bounded: files are read in chunks and at most three chunks of
100 are in flight.

Interrupts: an upload is confirmed only after its bytes fully arrived, so a
cancelled run never leaves a half-confirmed object; uploads created but not
confirmed are deleted on the way out (best effort).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixpeek_magics import _runtime
from mixpeek_magics._mime import guess_mime
from mixpeek_magics.ingest.plan import SNIFF_BYTES, read_digest

CHUNK = 100  # BatchUploadRequest / BatchConfirmRequest maxItems
DEFAULT_CONCURRENCY = 16  # PUTs in flight (bench/RESULTS.md, upload: the choice of 16)
HASH_THREADS = 1  # hashes the next chunk while this one's PUTs go: one keeps ahead of them
API_THREADS = 4  # a sync client's calls: chunks in flight wait for their confirm tasks
RAMP = (16, 48)  # sizes of the first chunks
CHUNKS_IN_FLIGHT = 3  # one being confirmed, one being PUT, the next one being prepared
CONFIRM_POLL = 0.01  # longest first wait for a confirm task (a small batch is confirmed quickly)


@dataclass
class FileSpec:
    """One local file to upload, with the metadata its object gets."""

    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    content_type: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass
class FileOutcome:
    path: str
    status: str  # "uploaded" | "duplicate" | "failed"
    object_id: str | None = None
    upload_id: str | None = None
    sha256: str | None = None
    size: int | None = None
    error: str | None = None


@dataclass
class UploadProgress:
    """Counters handed to ``on_progress`` after every file."""

    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    uploaded: int = 0
    duplicates: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate_bytes(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.bytes_done / elapsed if elapsed > 0 else 0.0


@dataclass
class BulkUploadResult:
    bucket: str
    outcomes: list[FileOutcome]
    batch_id: str | None = None
    task: Any = None  # client Task of the submitted batch, None when nothing new was uploaded
    confirm_task_ids: list[str] = field(default_factory=list)

    @property
    def task_id(self) -> str | None:
        return getattr(self.task, "task_id", None)

    @property
    def object_ids(self) -> list[str]:
        return [o.object_id for o in self.outcomes if o.status == "uploaded" and o.object_id]

    def item_names(self) -> dict[str, str]:
        """object id -> file name, for the watch's failed items (the API names them by id)."""
        return {o.object_id: Path(o.path).name for o in self.outcomes if o.object_id}

    @property
    def duplicates(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "duplicate"]

    @property
    def failures(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def __repr__(self) -> str:
        return (
            f"BulkUploadResult(bucket={self.bucket!r}, uploaded={len(self.object_ids)}, "
            f"duplicates={len(self.duplicates)}, failed={len(self.failures)}, task_id={self.task_id!r})"
        )


def _as_spec(item: Any, metadata: Mapping[str, Any] | None) -> FileSpec:
    """Accept paths, ``FileSpec``, plan items (``.path`` + ``.metadata``) or dicts."""
    base = dict(metadata or {})
    if isinstance(item, FileSpec):
        spec = item
    elif isinstance(item, (str, os.PathLike)):
        spec = FileSpec(item if isinstance(item, Path) else Path(item))
    elif isinstance(item, Mapping):
        spec = FileSpec(
            Path(item["path"]),
            dict(item.get("metadata") or {}),
            item.get("sha256"),
            item.get("content_type") or item.get("mime_type"),
            item.get("size"),
        )
    elif hasattr(item, "path"):
        spec = FileSpec(
            Path(item.path),
            dict(getattr(item, "metadata", None) or {}),
            getattr(item, "sha256", None),
            getattr(item, "mime_type", None),
            getattr(item, "size", None),
        )
    else:
        raise TypeError(f"cannot upload {item!r}: give a path, a FileSpec or a plan item")
    if base:
        spec.metadata = {**base, **spec.metadata}
    return spec


def _chunks(items: Sequence[FileSpec], size: int, ramp: Sequence[int] = RAMP) -> Iterator[list[FileSpec]]:
    """Chunks of ``size``, the first ones smaller: PUTs start after hashing a
    few files, not a hundred, and each next chunk is ready when they end."""
    steps = itertools.chain((min(step, size) for step in ramp), itertools.repeat(size))
    at = 0
    while at < len(items):
        step = next(steps)
        yield list(items[at : at + step])
        at += step


async def _in_threads(
    pool: concurrent.futures.Executor, fn: Callable[[Any], Any], items: Sequence[Any], workers: int
) -> list[Any]:
    """``[fn(item) for item in items]`` on up to ``workers`` threads of ``pool``.

    Each thread works through the shared list: one hand-off between the event
    loop and the pool per thread, not per item (per item, those wake-ups cost
    about as much CPU as hashing a small file). ``fn`` must not raise. When the
    caller is cancelled, items not yet started are dropped."""
    results: list[Any] = [None] * len(items)
    pending = iter(range(len(items)))
    lock = threading.Lock()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            with lock:
                i = next(pending, None)
            if i is None:
                return
            results[i] = fn(items[i])

    loop = asyncio.get_running_loop()
    try:
        await asyncio.gather(*(loop.run_in_executor(pool, drain) for _ in range(max(1, min(workers, len(items))))))
    finally:
        stop.set()
    return results


def _describe(spec: FileSpec) -> FileSpec:
    """Size, sha256 and MIME type (runs in a worker thread: it reads the file,
    once, hashing it and keeping its first bytes for the type)."""
    head = None
    if spec.sha256 is None:
        spec.size, spec.sha256, head = read_digest(spec.path)
    else:
        spec.size = spec.path.stat().st_size
    if spec.content_type is None:
        if head is None:
            with open(spec.path, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
        spec.content_type = guess_mime(spec.path.name, head)
    return spec


async def _read_uploads(api: _Api, bucket: str, upload_ids: Sequence[str], namespace: str | None) -> dict[str, Any]:
    """upload_id -> Upload for these (at most 100) uploads: one ``uploads/list``
    filtered on ``upload_id in [...]``; a GET for any the list did not return
    (a server that refuses or ignores the filter)."""
    from mixpeek_magics.client import errors

    wanted = list(dict.fromkeys(upload_ids))
    found: dict[str, Any] = {}
    filters = {"AND": [{"field": "upload_id", "operator": "in", "value": wanted}]}
    try:
        page = await api(api.client.uploads.list, bucket, filters, limit=max(1, len(wanted)), namespace=namespace)
        found = {u.upload_id: u for u in page.items if u.upload_id in set(wanted)}
    except errors.APIStatusError as exc:
        if exc.status_code in (401, 403) or exc.status_code == 429 or exc.status_code >= 500:
            raise
    for uid in wanted:
        if uid not in found:
            try:
                found[uid] = await api(api.client.uploads.get, bucket, uid, namespace=namespace)
            except errors.NotFoundError:
                pass
    return found


class _Api:
    """The API calls of a bulk upload, on either kind of client: awaited on an
    ``AsyncMixpeek``; on a sync ``Mixpeek``, run on a few threads. A sync
    caller so never loads httpx's async machinery and pays the sync stack's
    (lower) CPU per request."""

    def __init__(self, client: Any) -> None:
        from mixpeek_magics.client import Mixpeek

        self.client = client
        self.pool = (
            concurrent.futures.ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="mixpeek-api")
            if isinstance(client, Mixpeek)
            else None
        )

    async def __call__(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.pool is None:
            return await method(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(method, *args, **kwargs))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)  # queued clean-up calls still run


async def abulk_upload(
    client: Any,
    bucket: str,
    files: Iterable[Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    batch_metadata: Mapping[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    skip_duplicates: bool = True,
    submit: bool = True,
    namespace: str | None = None,
    on_progress: Callable[[UploadProgress], None] | None = None,
    confirm_timeout: float = 600.0,
    put_client: Any = None,
    on_chunk: Callable[[list[FileOutcome]], None] | None = None,
) -> BulkUploadResult:
    """Upload ``files`` into ``bucket`` with an :class:`~mixpeek_magics.client.AsyncMixpeek`
    (or a sync :class:`~mixpeek_magics.client.Mixpeek`, whose calls then run on threads).

    Returns the per-file outcomes and, when ``submit`` and anything new was
    uploaded, the task of the submitted batch (not waited for). ``put_client``:
    a sync :class:`~mixpeek_magics.client.Mixpeek` that sends the PUTs (by
    default ``client`` when it is one, else one made from its configuration).
    ``on_chunk``: called with the outcomes of each chunk once all of them are
    known (after its confirm), so a caller can record them as the upload goes.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    specs = [_as_spec(item, metadata) for item in files]
    missing, bytes_total = [], 0
    for s in specs:  # check everything before sending anything (one stat per file)
        try:
            st = os.stat(s.path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            missing.append(str(s.path))
        else:
            bytes_total += st.st_size
    if missing:
        raise FileNotFoundError(
            "not a readable file: "
            + ", ".join(missing[:10])
            + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        )
    progress = UploadProgress(files_total=len(specs), bytes_total=bytes_total)
    outcomes: list[FileOutcome] = []
    result = BulkUploadResult(bucket=bucket, outcomes=outcomes)

    def tick(outcome: FileOutcome, mine: list[FileOutcome]) -> None:
        outcomes.append(outcome)
        mine.append(outcome)
        progress.files_done += 1
        progress.bytes_done += outcome.size or 0
        if outcome.status == "uploaded":
            progress.uploaded += 1
        elif outcome.status == "duplicate":
            progress.duplicates += 1
        else:
            progress.failed += 1
        if on_progress is not None:
            on_progress(progress)

    def describe(spec: FileSpec) -> FileSpec | FileOutcome:  # in a worker thread
        try:
            return _describe(spec)
        except OSError as exc:
            return FileOutcome(str(spec.path), "failed", error=f"cannot read file: {exc}")

    # The PUTs go through a sync client (``Uploads.put_files``, on threads):
    # per request, httpx's sync stack costs less CPU than its async one, and
    # for many small files the client's CPU, not the network, is the limit.
    from mixpeek_magics.client import Mixpeek

    if put_client is None and isinstance(client, Mixpeek):
        put_client = client
    putter = put_client if put_client is not None else Mixpeek(config=client.config)
    api = _Api(client)
    # One thread sends a chunk's PUTs (one chunk at a time), another one hashes
    # the next chunk's files meanwhile.
    put_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixpeek-put")
    hash_pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(concurrency, HASH_THREADS), thread_name_prefix="mixpeek-hash"
    )
    stop_puts = threading.Event()  # set when the upload is interrupted: PUTs not yet started are dropped

    async def put_all(to_put: list[tuple[FileSpec, Any]]) -> list[Any]:
        files = [(upload.presigned_url, spec.path, spec.content_type) for spec, upload in to_put]
        send = functools.partial(putter.uploads.put_files, files, concurrency=concurrency, cancel=stop_puts)
        try:
            return await asyncio.get_running_loop().run_in_executor(put_pool, send)
        except asyncio.CancelledError:
            stop_puts.set()
            raise

    # Chunks are prepared (hashed, their uploads created) one at a time, in
    # order, so the chunk whose PUTs come next is never slowed by a later one.
    preparing = asyncio.Lock()

    async def prepare(chunk: list[FileSpec], mine: list[FileOutcome]) -> list[tuple[FileSpec, Any]]:
        """Hash the files, create their uploads; the (file, upload) pairs to PUT."""
        described = await _in_threads(hash_pool, describe, chunk, HASH_THREADS)
        ready = [d for d in described if isinstance(d, FileSpec)]
        for d in described:
            if isinstance(d, FileOutcome):
                tick(d, mine)
        if not ready:
            return []
        bodies = [
            {
                "filename": s.filename,
                "content_type": s.content_type,
                "file_size_bytes": s.size or None,  # the API's minimum is 1: an empty file says nothing
                "file_hash": s.sha256,
                "create_object_on_confirm": True,
                "metadata": dict(s.metadata),
                "object_metadata": dict(s.metadata),
            }
            for s in ready
        ]
        if not skip_duplicates:  # the API skips duplicates unless told not to
            for body in bodies:
                body["skip_duplicates"] = False
        creating = asyncio.ensure_future(api(client.uploads.create_batch, bucket, bodies, namespace=namespace))
        try:
            created = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The request may have reached the server: wait for its answer and
            # delete what it created.
            await _settle(creating)
            if not creating.cancelled() and creating.exception() is None:
                await _abandon(
                    api,
                    bucket,
                    [u for u in creating.result().uploads if u.presigned_url and not u.is_duplicate],
                    namespace,
                )
            raise
        to_put = []
        for spec, upload in zip(ready, created.uploads):
            if upload.is_duplicate:
                tick(
                    FileOutcome(
                        str(spec.path), "duplicate", upload.existing_object_id, upload.upload_id, spec.sha256, spec.size
                    ),
                    mine,
                )
            elif not upload.presigned_url:
                tick(
                    FileOutcome(
                        str(spec.path),
                        "failed",
                        None,
                        upload.upload_id,
                        spec.sha256,
                        spec.size,
                        upload.message or "the server gave no presigned URL",
                    ),
                    mine,
                )
            else:
                to_put.append((spec, upload))
        return to_put

    async def process(chunk: list[FileSpec]) -> None:
        mine: list[FileOutcome] = []
        async with preparing:
            to_put = await prepare(chunk, mine)
        # uploads created but not yet confirmed: cleaned up on interrupt
        pending: list[Any] = [upload for _, upload in to_put]
        if to_put:
            await put_and_confirm(to_put, pending, mine)
        if on_chunk is not None:
            on_chunk(mine)

    async def put_and_confirm(to_put: list[tuple[FileSpec, Any]], pending: list[Any], mine: list[FileOutcome]) -> None:
        try:
            put_results = await put_all(to_put)
            confirmations, arrived = [], []
            for (spec, upload), etag in zip(to_put, put_results):
                if isinstance(etag, BaseException):
                    tick(
                        FileOutcome(
                            str(spec.path),
                            "failed",
                            None,
                            upload.upload_id,
                            spec.sha256,
                            spec.size,
                            f"upload failed: {etag}",
                        ),
                        mine,
                    )
                    continue
                confirmations.append({"upload_id": upload.upload_id, "etag": etag, "file_size_bytes": spec.size})
                arrived.append((spec, upload))
            if confirmations:
                confirm = await api(client.uploads.confirm_batch, bucket, confirmations, namespace=namespace)
                # From here the server owns these uploads: nothing to clean up.
                pending.clear()
                result.confirm_task_ids.append(confirm.task_id)
                first_poll = max(0.002, min(CONFIRM_POLL, 0.0001 * len(confirmations)))  # a small batch is quick
                task = await api(
                    client.tasks.wait, confirm.task_id, timeout=confirm_timeout, poll=first_poll, poll_max=0.25
                )
                # The uploads say what became of each file (the task's outputs are not typed).
                uploads = await _read_uploads(api, bucket, [u.upload_id for _, u in arrived], namespace)
                for spec, upload in arrived:
                    done = uploads.get(upload.upload_id)
                    object_id = getattr(done, "object_id", None)
                    if object_id is None and getattr(done, "is_duplicate", False):
                        object_id = getattr(done, "existing_object_id", None)
                    if object_id:
                        tick(
                            FileOutcome(
                                str(spec.path), "uploaded", object_id, upload.upload_id, spec.sha256, spec.size
                            ),
                            mine,
                        )
                    else:
                        why = getattr(done, "message", None) if str(getattr(done, "status", "")) == "FAILED" else None
                        why = why or (task.error if task.status == "FAILED" else None)
                        state = getattr(done, "status", None) or "not found"
                        tick(
                            FileOutcome(
                                str(spec.path),
                                "failed",
                                None,
                                upload.upload_id,
                                spec.sha256,
                                spec.size,
                                why or f"confirm ended {task.status}, upload {state}",
                            ),
                            mine,
                        )
        finally:
            if pending:  # interrupted before confirming: leave nothing half-done behind
                await _abandon(api, bucket, pending, namespace)

    # Three chunks in flight: one being confirmed, one being PUT, the next one
    # being prepared.
    chunk_slots = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

    async def guarded(chunk: list[FileSpec]) -> None:
        try:
            await process(chunk)
        finally:
            chunk_slots.release()

    running: list[asyncio.Task] = []
    try:
        for chunk in _chunks(specs, CHUNK):
            await chunk_slots.acquire()
            running.append(asyncio.ensure_future(guarded(chunk)))
        await asyncio.gather(*running)
    except BaseException:
        stop_puts.set()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        api.close()
        raise
    finally:
        put_pool.shutdown(wait=False, cancel_futures=True)
        hash_pool.shutdown(wait=False, cancel_futures=True)
        if putter is not put_client:
            putter.close()

    try:
        new_ids = result.object_ids
        if submit and new_ids:
            batch = await api(
                client.batches.create,
                bucket,
                new_ids,
                metadata=dict(batch_metadata) if batch_metadata else None,
                namespace=namespace,
            )
            result.batch_id = batch.batch_id
            result.task = await api(client.batches.submit, bucket, batch.batch_id, namespace=namespace)
    finally:
        api.close()
    return result


async def _abandon(api: _Api, bucket: str, uploads: Sequence[Any], namespace: str | None) -> None:
    async def delete(upload: Any) -> None:
        try:
            await api(api.client.uploads.delete, bucket, upload.upload_id, namespace=namespace)
        except Exception:
            pass  # best effort: an unconfirmed upload never becomes an object anyway

    await _settle(asyncio.ensure_future(asyncio.gather(*(delete(u) for u in uploads))))


async def _settle(job: asyncio.Future) -> None:
    """Wait for ``job`` to end even if cancelled meanwhile (clean-up that must not
    be cut short, nor outlived by the client it uses); the caller re-raises."""
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            continue
        except Exception:
            return


def bulk_upload(client: Any, bucket: str, files: Iterable[Any], **kwargs: Any) -> BulkUploadResult:
    """Synchronous :func:`abulk_upload`: takes a ``Mixpeek`` client (or an
    ``AsyncMixpeek``) and runs the upload on the shared background loop, so it
    is safe inside a notebook cell whose event loop is already running."""
    # A sync client makes every call itself (its connections, its transport if it has one).
    return _runtime.run(abulk_upload(client, bucket, files, **kwargs))
