"""Bulk upload: many local files into a bucket, then one batch submitted for processing.

The flow per chunk of at most 100 files (the API's batch limits):

1. hash each file (sha256, streamed, in worker threads) and guess its MIME type;
   the caller's ``select`` may then set aside files it knows by their hash;
2. ``POST .../uploads/batch`` with ``file_hash`` + ``skip_duplicates`` so the
   server answers "already have it" for files it has seen, without a PUT;
3. PUT the new files to their presigned URLs, streamed from disk, with bounded
   concurrency;
4. ``POST .../uploads/confirm/batch`` for the files whose bytes fully arrived,
   then read the uploads themselves (``POST .../uploads/list`` filtered
   ``upload_id in [...]``) for their object ids, or why they failed: the
   confirm task's outputs have no shape the contract declares. That read goes
   out at once, beside a wait for the (short) confirm task; when it finds
   every upload settled the wait is dropped, otherwise the uploads are read
   again once the task ended.

Then every new object goes into one batch, which is submitted: the returned
task is what the caller watches. The chunks form one pipeline (up to three
being prepared or PUT, any number being confirmed: a confirm holds no file
data and mostly waits on the server) over one set of clients and pools;
``on_chunk`` hands each chunk's outcomes to the caller as it ends. Memory
stays bounded: files are read in chunks and at most three chunks of 100 are
being read.

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
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from mixpeek_magics import _runtime
from mixpeek_magics._mime import DEFAULT_MIME, guess_mime
from mixpeek_magics.ingest.defaults import DEFAULT_CONCURRENCY
from mixpeek_magics.ingest.plan import SNIFF_BYTES, PlanItem, read_digest

if TYPE_CHECKING:
    from mixpeek_magics.client.models.tasks import Task
    from mixpeek_magics.client.models.uploads import BatchUploadResult as CreatedUploads, Upload

CHUNK = 100  # BatchUploadRequest / BatchConfirmRequest maxItems
HASH_THREADS = 1  # hashes the next chunk while this one's PUTs go: one keeps ahead of them
API_THREADS = 8  # a sync client's calls: creates, confirms and the waits for confirm tasks of several chunks
RAMP = (16, 48)  # sizes of the first chunks
CHUNKS_IN_FLIGHT = 3  # chunks being prepared or PUT (their confirms do not count)
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
    task: Task | None = None  # the submitted batch's task, None when nothing new was uploaded
    confirm_task_ids: list[str] = field(default_factory=list)

    @property
    def task_id(self) -> str | None:
        return self.task.task_id if self.task is not None else None

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


UploadItem = str | os.PathLike[str] | FileSpec | PlanItem | Mapping[str, Any]


class _ToPut(NamedTuple):
    """A file whose upload was created: its bytes go to ``url``."""

    spec: FileSpec
    upload: Upload
    url: str


def _as_spec(item: UploadItem, metadata: Mapping[str, Any] | None) -> FileSpec:
    """Accept paths, ``FileSpec``, plan items or dicts."""
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
    elif isinstance(item, PlanItem):
        if item.path is None:
            raise TypeError(f"cannot upload {item.source!r}: a {item.kind} plan item is not a local file")
        spec = FileSpec(item.path, dict(item.metadata), item.sha256, item.mime_type, item.size)
    else:
        raise TypeError(f"cannot upload {item!r}: give a path, a FileSpec or a plan item")
    if base:
        spec.metadata = {**base, **spec.metadata}
    return spec


def _total_bytes(specs: Sequence[FileSpec]) -> int:
    """Their total size; raises ``FileNotFoundError`` naming any that is not a readable
    file (one stat per file, everything checked before anything is sent)."""
    missing, total = [], 0
    for s in specs:
        try:
            st = os.stat(s.path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            missing.append(str(s.path))
        else:
            total += st.st_size
    if missing:
        raise FileNotFoundError(
            "not a readable file: "
            + ", ".join(missing[:10])
            + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        )
    return total


_T = TypeVar("_T")
_R = TypeVar("_R")


def _ramped_chunks(items: Sequence[_T], size: int, ramp: Sequence[int] = RAMP) -> Iterator[list[_T]]:
    """Chunks of ``size``, the first ones smaller: PUTs start after hashing a
    few files, not a hundred, and each next chunk is ready when they end."""
    steps = itertools.chain((min(step, size) for step in ramp), itertools.repeat(size))
    at = 0
    while at < len(items):
        step = next(steps)
        yield list(items[at : at + step])
        at += step


async def _in_threads(
    pool: concurrent.futures.Executor, fn: Callable[[_T], _R], items: Sequence[_T], workers: int
) -> list[_R]:
    """``[fn(item) for item in items]`` on up to ``workers`` threads of ``pool``.

    Each thread works through the shared list: one hand-off between the event
    loop and the pool per thread, not per item (per item, those wake-ups cost
    about as much CPU as hashing a small file). ``fn`` must not raise. When the
    caller is cancelled, items not yet started are dropped."""
    results: dict[int, _R] = {}
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
    return [results[i] for i in range(len(items))]


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


def _describe_or_fail(spec: FileSpec) -> FileSpec | FileOutcome:
    """:func:`_describe`, or the failed outcome of a file that cannot be read (in a worker thread)."""
    try:
        return _describe(spec)
    except OSError as exc:
        return FileOutcome(str(spec.path), "failed", error=f"cannot read file: {exc}")


def _outcome(
    spec: FileSpec, status: str, upload: Upload, *, object_id: str | None = None, error: str | None = None
) -> FileOutcome:
    return FileOutcome(str(spec.path), status, object_id, upload.upload_id, spec.sha256, spec.size, error)


def _settled(upload: Upload | None) -> bool:
    """Whether a confirmed upload's outcome is final (it no longer waits on the confirm task)."""
    from mixpeek_magics.client import statuses

    return upload is not None and statuses.is_terminal(str(upload.status))


def _confirmed_outcome(spec: FileSpec, upload: Upload, done: Upload | None, task: Task | None) -> FileOutcome:
    """What became of a confirmed file: its upload, read once settled or after the confirm
    task ended (``done``: None when the server no longer has it), says so; ``task``: the
    ended confirm task, None when every upload settled before it was seen to end."""
    if done is not None and done.is_duplicate:
        # its content became an object first through another upload (often one racing it): not this run's to submit
        return _outcome(spec, "duplicate", upload, object_id=done.existing_object_id or done.object_id)
    object_id = done.object_id if done is not None else None
    if object_id:
        return _outcome(spec, "uploaded", upload, object_id=object_id)
    why = done.message if done is not None and str(done.status) == "FAILED" else None
    if task is not None and task.status == "FAILED":
        why = why or task.error
    state = (done.status if done is not None else None) or "not found"
    ended = f"confirm ended {task.status}" if task is not None else "confirmed"
    return _outcome(spec, "failed", upload, error=why or f"{ended}, upload {state}")


async def _read_uploads(api: _Api, bucket: str, upload_ids: Sequence[str], namespace: str | None) -> dict[str, Upload]:
    """upload_id -> Upload for these (at most 100) uploads: one ``uploads/list``
    filtered on ``upload_id in [...]``; a GET for any the list did not return
    (a server that refuses or ignores the filter)."""
    from mixpeek_magics.client import errors

    wanted = list(dict.fromkeys(upload_ids))
    found: dict[str, Upload] = {}
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


@dataclass(frozen=True)
class _Options:
    """What the caller of :func:`abulk_upload` chose, for every chunk."""

    namespace: str | None
    concurrency: int
    skip_duplicates: bool
    confirm_timeout: float
    on_progress: Callable[[UploadProgress], None] | None
    on_chunk: Callable[[list[FileOutcome]], None] | None
    select: Callable[[list[FileSpec]], list[FileSpec]] | None


class _Pipeline:
    """One bulk upload: its clients, pools and counters, and the steps each chunk
    goes through (prepare: hash, create the uploads; PUT; confirm), with at most
    ``CHUNKS_IN_FLIGHT`` chunks at once: one being confirmed, one being PUT, the
    next one being prepared."""

    def __init__(self, client: Any, bucket: str, opts: _Options, progress: UploadProgress, put_client: Any) -> None:
        from mixpeek_magics.client import Mixpeek

        self.client = client
        self.bucket = bucket
        self.opts = opts
        self.progress = progress
        self.result = BulkUploadResult(bucket=bucket, outcomes=[])
        # The PUTs go through a sync client (``Uploads.put_files``, on threads):
        # per request, httpx's sync stack costs less CPU than its async one, and
        # for many small files the client's CPU, not the network, is the limit.
        if put_client is None and isinstance(client, Mixpeek):
            put_client = client
        self.own_putter = put_client is None
        self.putter = put_client if put_client is not None else Mixpeek(config=client.config)
        self.api = _Api(client)
        # One thread sends a chunk's PUTs (one chunk at a time), another one hashes
        # the next chunk's files meanwhile.
        self.put_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixpeek-put")
        self.hash_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(opts.concurrency, HASH_THREADS), thread_name_prefix="mixpeek-hash"
        )
        self.stop_puts = threading.Event()  # set when the upload is interrupted: PUTs not yet started are dropped
        # Chunks are prepared one at a time, in order, so the chunk whose PUTs
        # come next is never slowed by a later one.
        self.preparing = asyncio.Lock()
        self.chunk_slots = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

    def tick(self, outcome: FileOutcome, mine: list[FileOutcome]) -> None:
        """Count one file's outcome (``mine``: its chunk's outcomes) and tell ``on_progress``."""
        progress = self.progress
        self.result.outcomes.append(outcome)
        mine.append(outcome)
        progress.files_done += 1
        progress.bytes_done += outcome.size or 0
        if outcome.status == "uploaded":
            progress.uploaded += 1
        elif outcome.status == "duplicate":
            progress.duplicates += 1
        else:
            progress.failed += 1
        if self.opts.on_progress is not None:
            self.opts.on_progress(progress)

    async def run(self, specs: Sequence[FileSpec]) -> None:
        """Every chunk through the pipeline. On an error or an interrupt, the chunks
        in flight are cancelled (their unconfirmed uploads deleted) and it re-raises."""
        running: list[asyncio.Task[None]] = []
        try:
            for chunk in _ramped_chunks(specs, CHUNK):
                await self.chunk_slots.acquire()
                running.append(asyncio.ensure_future(self._process_in_slot(chunk)))
            await asyncio.gather(*running)
        except BaseException:
            self.stop_puts.set()
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self.api.close()
            raise
        finally:
            self.put_pool.shutdown(wait=False, cancel_futures=True)
            self.hash_pool.shutdown(wait=False, cancel_futures=True)
            if self.own_putter:
                self.putter.close()

    async def _process_in_slot(self, chunk: list[FileSpec]) -> None:
        held = [True]

        def release() -> None:
            if held:
                held.clear()
                self.chunk_slots.release()

        try:
            await self._process(chunk, release)
        finally:
            release()

    async def _process(self, chunk: list[FileSpec], release: Callable[[], None]) -> None:
        """Prepare, PUT and confirm one chunk; ``release`` frees its slot once its files are read."""
        mine: list[FileOutcome] = []
        async with self.preparing:
            ready = await self._hash(chunk, mine)
            if ready and self.opts.select is not None:
                ready = self._select(self.opts.select, ready)
        # the create calls of several chunks may be in flight together (each waits on the server)
        to_put = self._sort_created(ready, (await self._create_uploads(ready)).uploads, mine) if ready else []
        # uploads created but not yet confirmed: cleaned up on interrupt
        pending = [item.upload for item in to_put]
        if to_put:
            await self._put_and_confirm(to_put, pending, mine, release)
        if self.opts.on_chunk is not None:
            self.opts.on_chunk(mine)

    async def _hash(self, chunk: list[FileSpec], mine: list[FileOutcome]) -> list[FileSpec]:
        """The chunk's files with their size, sha256 and type; those that cannot be read fail here."""
        described = await _in_threads(self.hash_pool, _describe_or_fail, chunk, HASH_THREADS)
        for d in described:
            if isinstance(d, FileOutcome):
                self.tick(d, mine)
        return [d for d in described if isinstance(d, FileSpec)]

    def _select(self, select: Callable[[list[FileSpec]], list[FileSpec]], hashed: list[FileSpec]) -> list[FileSpec]:
        """The files the caller's ``select`` keeps; the others leave this upload's totals."""
        chosen = list(select(hashed))
        kept = {id(spec) for spec in chosen}
        for spec in hashed:
            if id(spec) not in kept:
                self.progress.files_total -= 1
                self.progress.bytes_total -= spec.size or 0
        return chosen

    def _upload_body(self, spec: FileSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "filename": spec.filename,
            "content_type": spec.content_type,
            "file_size_bytes": spec.size or None,  # the API's minimum is 1: an empty file says nothing
            "file_hash": spec.sha256,
            "create_object_on_confirm": True,
            "metadata": dict(spec.metadata),
            "object_metadata": dict(spec.metadata),
        }
        if not self.opts.skip_duplicates:  # the API skips duplicates unless told not to
            body["skip_duplicates"] = False
        return body

    async def _create_uploads(self, ready: list[FileSpec]) -> CreatedUploads:
        bodies = [self._upload_body(spec) for spec in ready]
        ns = self.opts.namespace
        creating = asyncio.ensure_future(self.api(self.client.uploads.create_batch, self.bucket, bodies, namespace=ns))
        try:
            created: CreatedUploads = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The request may have reached the server: wait for its answer and
            # delete what it created.
            await _settle(creating)
            if not creating.cancelled() and creating.exception() is None:
                made = [u for u in creating.result().uploads if u.presigned_url and not u.is_duplicate]
                await _abandon(self.api, self.bucket, made, ns)
            raise
        return created

    def _sort_created(self, ready: list[FileSpec], uploads: list[Upload], mine: list[FileOutcome]) -> list[_ToPut]:
        """Duplicates and refusals are outcomes at once; the rest are the files to PUT."""
        to_put: list[_ToPut] = []
        for spec, upload in zip(ready, uploads):
            if upload.is_duplicate:
                oid = upload.existing_object_id or upload.object_id
                self.tick(_outcome(spec, "duplicate", upload, object_id=oid), mine)
            elif not upload.presigned_url:
                error = upload.message or "the server gave no presigned URL"
                self.tick(_outcome(spec, "failed", upload, error=error), mine)
            else:
                to_put.append(_ToPut(spec, upload, upload.presigned_url))
        return to_put

    async def _put_and_confirm(
        self, to_put: list[_ToPut], pending: list[Upload], mine: list[FileOutcome], release: Callable[[], None]
    ) -> None:
        try:
            etags = await self._put_all(to_put)
            release()
            arrived: list[tuple[_ToPut, Any]] = []
            for item, etag in zip(to_put, etags):
                if isinstance(etag, BaseException):
                    self.tick(_outcome(item.spec, "failed", item.upload, error=f"upload failed: {etag}"), mine)
                else:
                    arrived.append((item, etag))
            if arrived:
                await self._confirm(arrived, pending, mine)
        finally:
            if pending:  # interrupted before confirming: leave nothing half-done behind
                await _abandon(self.api, self.bucket, pending, self.opts.namespace)

    async def _put_all(self, to_put: list[_ToPut]) -> list[Any]:
        """Per file, its ETag or the exception that stopped its PUT."""
        files = [(item.url, item.spec.path, item.spec.content_type or DEFAULT_MIME) for item in to_put]
        send = functools.partial(
            self.putter.uploads.put_files, files, concurrency=self.opts.concurrency, cancel=self.stop_puts
        )
        try:
            etags: list[Any] = await asyncio.get_running_loop().run_in_executor(self.put_pool, send)
        except asyncio.CancelledError:
            self.stop_puts.set()
            raise
        return etags

    async def _confirm(self, arrived: list[tuple[_ToPut, Any]], pending: list[Upload], mine: list[FileOutcome]) -> None:
        """Confirm the files whose bytes arrived, wait for the confirm task, read what became of each."""
        ns = self.opts.namespace
        confirmations = [
            {"upload_id": item.upload.upload_id, "etag": etag, "file_size_bytes": item.spec.size}
            for item, etag in arrived
        ]
        confirm = await self.api(self.client.uploads.confirm_batch, self.bucket, confirmations, namespace=ns)
        # From here the server owns these uploads: nothing to clean up.
        pending.clear()
        self.result.confirm_task_ids.append(confirm.task_id)
        ids = [item.upload.upload_id for item, _ in arrived]
        uploads, task = await self._settled_uploads(confirm.task_id, ids, len(confirmations))
        for item, _etag in arrived:
            done = uploads.get(item.upload.upload_id)
            self.tick(_confirmed_outcome(item.spec, item.upload, done, task), mine)

    async def _settled_uploads(
        self, task_id: str, upload_ids: list[str], count: int
    ) -> tuple[dict[str, Upload], Task | None]:
        """The confirmed uploads (they say what became of each file: the task's outputs are
        not typed), read beside the wait for the confirm task; re-read after it ended unless
        the first read found every one settled (then the wait is dropped and no task returned)."""
        ns = self.opts.namespace
        first_poll = max(0.002, min(CONFIRM_POLL, 0.0001 * count))  # a small batch is quick
        dropped = threading.Event()

        def unless_dropped(_task: Task) -> None:
            if dropped.is_set():  # a wait on a sync client's thread cannot be cancelled: it stops at its next poll
                raise _WaitDropped()

        waiting = asyncio.ensure_future(
            self.api(
                self.client.tasks.wait,
                task_id,
                timeout=self.opts.confirm_timeout,
                poll=first_poll,
                poll_max=0.25,
                on_update=unless_dropped,
            )
        )
        try:
            uploads = await _read_uploads(self.api, self.bucket, upload_ids, ns)
            if all(_settled(uploads.get(uid)) for uid in upload_ids):
                return uploads, None
            task: Task = await waiting
        finally:
            if not waiting.done():
                dropped.set()
                waiting.cancel()
                waiting.add_done_callback(_retrieve)
        return await _read_uploads(self.api, self.bucket, upload_ids, ns), task

    async def submit(self, batch_metadata: Mapping[str, Any] | None) -> None:
        """Every new object into one batch, submitted: its task is what the caller watches."""
        new_ids = self.result.object_ids
        if not new_ids:
            return
        ns = self.opts.namespace
        metadata = dict(batch_metadata) if batch_metadata else None
        batch = await self.api(self.client.batches.create, self.bucket, new_ids, metadata=metadata, namespace=ns)
        self.result.batch_id = batch.batch_id
        self.result.task = await self.api(self.client.batches.submit, self.bucket, batch.batch_id, namespace=ns)


async def abulk_upload(
    client: Any,
    bucket: str,
    files: Iterable[UploadItem],
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
    select: Callable[[list[FileSpec]], list[FileSpec]] | None = None,
) -> BulkUploadResult:
    """Upload ``files`` into ``bucket`` with an :class:`~mixpeek_magics.client.AsyncMixpeek`
    (or a sync :class:`~mixpeek_magics.client.Mixpeek`, whose calls then run on threads).

    Returns the per-file outcomes and, when ``submit`` and anything new was
    uploaded, the task of the submitted batch (not waited for). ``put_client``:
    a sync :class:`~mixpeek_magics.client.Mixpeek` that sends the PUTs (by
    default ``client`` when it is one, else one made from its configuration).
    ``on_chunk``: called with the outcomes of each chunk once all of them are
    known (after its confirm), so a caller can record them as the upload goes.
    ``select``: called (on the event loop) with each chunk's files once hashed,
    before their uploads are created; returns those to upload. The others get
    no outcome here and leave ``UploadProgress``'s totals: the caller accounts
    for them (a file it already ingested, known by its sha256).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    specs = [_as_spec(item, metadata) for item in files]
    progress = UploadProgress(files_total=len(specs), bytes_total=_total_bytes(specs))
    opts = _Options(namespace, concurrency, skip_duplicates, confirm_timeout, on_progress, on_chunk, select)
    pipeline = _Pipeline(client, bucket, opts, progress, put_client)
    await pipeline.run(specs)
    try:
        if submit:
            await pipeline.submit(batch_metadata)
    finally:
        pipeline.api.close()
    return pipeline.result


class _WaitDropped(Exception):
    """Ends a wait for a confirm task whose uploads were found settled without it."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Take a dropped future's exception, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


async def _abandon(api: _Api, bucket: str, uploads: Sequence[Upload], namespace: str | None) -> None:
    async def delete(upload: Upload) -> None:
        try:
            await api(api.client.uploads.delete, bucket, upload.upload_id, namespace=namespace)
        except Exception:
            pass  # best effort: an unconfirmed upload never becomes an object anyway

    await _settle(asyncio.ensure_future(asyncio.gather(*(delete(u) for u in uploads))))


async def _settle(job: asyncio.Future[Any]) -> None:
    """Wait for ``job`` to end even if cancelled meanwhile (clean-up that must not
    be cut short, nor outlived by the client it uses); the caller re-raises."""
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            continue
        except Exception:
            return


def bulk_upload(client: Any, bucket: str, files: Iterable[UploadItem], **kwargs: Any) -> BulkUploadResult:
    """Synchronous :func:`abulk_upload`: takes a ``Mixpeek`` client (or an
    ``AsyncMixpeek``) and runs the upload on the shared background loop, so it
    is safe inside a notebook cell whose event loop is already running."""
    # A sync client makes every call itself (its connections, its transport if it has one).
    return _runtime.run(abulk_upload(client, bucket, files, **kwargs))
