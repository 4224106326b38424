"""The multi-task polling engine: one implementation, driven by sync and async handles.

One engine watches many tasks of one server:

* each tick is one ``POST /v1/tasks/list`` filtered on ``task_id in [...]``
  (chunks of up to 1000 ids), not one GET per task; tasks the list does not
  return are fetched once with ``GET /v1/tasks/{id}`` (404: its record expired:
  a batch task then follows its batch, anything else is no longer watched). A
  server that rejects the filter (4xx) or ignores it (returns other tasks)
  switches the engine to bounded concurrent GETs;
* a task carries status, not progress: progress and failed items come from
  the batch behind a batch task (its ``additional_data.batch_id`` /
  ``bucket_id``). While batch tasks run, one ``POST /v1/batches/list`` per
  running status (IN_PROGRESS, PROCESSING; one in practice) reads every
  running batch at once, at most every ``policy.progress_interval`` seconds
  (the server refreshes ``progress`` about every 10 s; reading it more often
  reads the same numbers). When a batch task ends with errors (or its counts
  are unknown), one ``GET`` of its batch gives the final counts and the
  failed objects. So a tick costs at most 1 + 2 + (batches that just ended
  with errors) requests, however many tasks are watched;
* ticks follow :class:`~mixpeek_magics.tracking.policy.Scheduler` (backoff
  1 s -> 30 s with jitter, reset on progress, at most one tick per
  ``policy.initial``), on an injectable clock;
* 429 waits ``Retry-After``; timeouts, 5xx and connection errors set
  ``connection="reconnecting"``, keep the last known state and back off (capped
  at ``policy.maximum``) until the server answers again;
* every change is written to the journal (if any) and told to observers.

The engine runs on whatever event loop awaits :meth:`Engine.run`: the
caller's (``awatch``) or ``_runtime``'s background loop (``watch``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mixpeek_magics.client import errors, statuses
from mixpeek_magics.tracking.policy import Backoff, Clock, MonotonicClock, PollPolicy, Scheduler
from mixpeek_magics.tracking.snapshot import TaskSnapshot, WatchObserver, utcnow

if TYPE_CHECKING:
    from mixpeek_magics.client import AsyncMixpeek
    from mixpeek_magics.client.models.batches import Batch
    from mixpeek_magics.client.models.tasks import Task

log = logging.getLogger("mixpeek_magics.tracking")

__all__ = ["Engine", "WatchTimeout", "TaskFailedError", "PartialFailureWarning", "GONE_STATUS", "task_ids_of"]

GONE_STATUS = "UNKNOWN"
# Client retry budget for the engine's own calls: a storm of 429/503 with a short Retry-After is
# absorbed by the client's quick retries; an outage still reaches the engine's reconnect logic (a
# refused connection fails fast whatever the budget).
ENGINE_RETRY_SECONDS = 10.0


class WatchTimeout(errors.MixpeekError, TimeoutError):
    """The watch (or a wait on it) gave up; the tasks themselves are untouched.

    ``snapshots`` is the last known state; ``handle`` the watch (if any), which
    is still polling when only a ``wait(timeout=...)`` ran out.
    """

    def __init__(self, message: str, snapshots: Sequence[TaskSnapshot] = (), handle: Any = None) -> None:
        super().__init__(message)
        self.snapshots = list(snapshots)
        self.handle = handle


class TaskFailedError(errors.MixpeekError):
    """One or more watched tasks FAILED. ``errors`` maps task id -> error text."""

    def __init__(self, failed: Sequence[TaskSnapshot], snapshots: Sequence[TaskSnapshot] = ()) -> None:
        self.failed = list(failed)
        self.task_ids = [s.task_id for s in failed]
        self.errors = {s.task_id: (s.error or "no error text from the server") for s in failed}
        self.snapshots = list(snapshots)
        lines = "; ".join(f"{tid}: {err}" for tid, err in list(self.errors.items())[:10])
        more = f"; and {len(self.errors) - 10} more" if len(self.errors) > 10 else ""
        noun = "task" if len(failed) == 1 else "tasks"
        super().__init__(f"{len(failed)} {noun} FAILED: {lines}{more}")


class PartialFailureWarning(UserWarning):
    """A task ended COMPLETED_WITH_ERRORS: some of its items failed."""


class _FilterRejected(Exception):
    """The server does not support the ``task_id in [...]`` list filter."""


class _Gone:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def task_ids_of(tasks: Any) -> list[str]:
    """Task ids from ids, Task objects or anything with ``.task_id`` (one or many), de-duplicated."""
    if tasks is None:
        return []
    if isinstance(tasks, (str, bytes)) or hasattr(tasks, "task_id") or isinstance(tasks, Mapping):
        tasks = [tasks]
    out: list[str] = []
    seen: set[str] = set()
    for item in tasks:
        if isinstance(item, bytes):
            item = item.decode()
        tid: Any
        if isinstance(item, str):
            tid = item
        elif isinstance(item, Mapping) and "task_id" in item:
            tid = item["task_id"]
        else:
            tid = getattr(item, "task_id", None)
        if not isinstance(tid, str) or not tid.strip():
            raise TypeError(f"cannot watch {item!r}: expected a task id string or an object with .task_id")
        tid = tid.strip()
        if tid not in seen:
            seen.add(tid)
            out.append(tid)
    return out


#: Batch statuses while ``progress`` is refreshed (the list filter takes one of them per call).
RUNNING_BATCH = ("IN_PROGRESS", "PROCESSING")


@dataclass
class _Tracked:
    task_id: str
    snapshot: TaskSnapshot | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    first_seen: datetime | None = None
    journal_label: str | None = None
    done: bool = False
    gone: bool = False
    task: Task | None = None  # the last Task read
    batch: Batch | None = None  # the last Batch read (running list or GET)
    via_batch: bool = False  # the task record expired: its batch stands for it
    final: bool = False  # the batch was read after the task ended
    missed: bool = False  # not in the last running-batches list
    lost: str | None = None  # why neither the task nor its batch can be read any more
    odd_since: float | None = None  # since when it reports a status neither running nor terminal

    @property
    def batch_ref(self) -> tuple[str, str] | None:
        bucket, batch = self.meta.get("bucket_id"), self.meta.get("batch_id")
        return (str(bucket), str(batch)) if bucket and batch else None

    @property
    def status(self) -> str:
        source = self.batch if self.via_batch else self.task
        return statuses.normalize(source.status if source is not None else None)


def _key(s: TaskSnapshot | None) -> tuple[Any, ...] | None:
    if s is None:
        return None
    return (
        s.status,
        s.processed,
        s.total,
        s.percentage,
        s.error,
        s.failed_items,
        s.failed_errors,
        s.failed,
        s.current_tier,
        s.total_tiers,
    )


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for k in ("message", "error", "detail"):
            text = value.get(k)
            if isinstance(text, str):
                return text
    return str(value)


class Engine:
    """Polls a set of tasks until every one is terminal (or gone)."""

    def __init__(
        self,
        client: AsyncMixpeek,
        task_ids: Sequence[str],
        *,
        policy: PollPolicy | None = None,
        observers: Iterable[WatchObserver] = (),
        journal: Any = None,
        context: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        item_names: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.task_ids = list(task_ids)
        self.policy = policy or PollPolicy()
        self.clock: Clock = clock or MonotonicClock()
        self.rng = rng or random.Random()
        self.journal = journal
        self.context = dict(context) if context else None
        self.max_wait = timeout if timeout is not None else self.policy.max_wait
        self._observers: list[WatchObserver] = list(observers)
        self._tracked: dict[str, _Tracked] = {tid: _Tracked(tid) for tid in self.task_ids}
        self.scheduler = Scheduler(self.policy, shared=True, rng=self.rng)
        self._error_backoff = Backoff(self.policy, self.rng)
        self.mode = "list"  # or "get" once the list filter proved unusable
        self.connection = "ok"
        self.state = "pending"  # running / finished / detached / timeout / error
        self.error: BaseException | None = None
        self.notes: list[str] = []
        self.requests = 0  # HTTP requests this engine sent (ticks, fallbacks)
        self.ticks = 0
        self.failed_ticks = 0  # ticks that ended in an error (429, 5xx, connection)
        self.last_failure: BaseException | None = None
        self._detach = False
        self._finished_called = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._done = threading.Event()
        # object id -> what to call it in failed_items (the ingest layer knows its files' names)
        self.item_names: dict[str, str] = dict(item_names or {})
        self._last_progress: float | None = None  # when running batches were last listed
        self._list_batches = True  # False once the server refused POST /v1/batches/list
        self._failing_since: float | None = None  # first failed tick of the current outage
        self._give_up: WatchTimeout | None = None
        self.base_url: str | None = client.config.base_url
        self.namespace: str | None = client.config.namespace

    # ------------------------------------------------------------ public state
    @property
    def snapshots(self) -> list[TaskSnapshot]:
        """Latest snapshot per task (watch order), for tasks observed at least once."""
        return [t.snapshot for t in self._tracked.values() if t.snapshot is not None]

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait_done(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def add_observer(self, observer: WatchObserver) -> None:
        self._observers = [*self._observers, observer]

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info("%s", text)

    # ------------------------------------------------------------ control (any thread)
    def detach(self) -> None:
        """Stop polling; the tasks are untouched."""
        self._detach = True
        self._wake()

    def _wake(self) -> None:
        loop, event = self._loop, self._wake_event
        if loop is None or event is None:
            return
        try:
            if getattr(loop, "_thread_id", None) == threading.get_ident():
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # loop closed
            pass

    async def cancel(self, task_ids: Sequence[str] | None = None) -> list[str]:
        """Kill these (default: all unfinished) tasks server-side, then keep
        watching until they report a terminal status. Runs on the engine's loop."""
        if task_ids is None:
            ids = [t.task_id for t in self._tracked.values() if not t.done]
        else:
            ids = [tid for tid in task_ids if tid in self._tracked and not self._tracked[tid].done]
            unknown = [tid for tid in task_ids if tid not in self._tracked]
            if unknown:
                raise ValueError(f"not watched by this handle: {', '.join(unknown)}")
        for tid in ids:
            try:
                await self.client.tasks.kill(tid)
            except errors.NotFoundError:
                pass
            self.requests += 1
        self.scheduler.poke(ids, self.clock.now())
        self._wake()
        return ids

    # ------------------------------------------------------------ the loop
    async def run(self) -> list[TaskSnapshot]:
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self.state = "running"
        start = self.clock.now()
        for tid in self.task_ids:
            self.scheduler.add(tid, start)
        deadline = start + self.max_wait if self.max_wait is not None else None
        try:
            await self._load_journal()
            while True:
                if self._detach:
                    self.state = "detached"
                    break
                if self._give_up is not None:
                    self.state = "timeout"
                    self.error = self._give_up
                    break
                if not self.scheduler.active:
                    self.state = "finished"
                    break
                now = self.clock.now()
                if deadline is not None and now >= deadline:
                    self.state = "timeout"
                    self.error = WatchTimeout(
                        self.reattach_message(
                            f"Gave up watching after {self.max_wait:g}s with "
                            f"{len(self.scheduler.active)} task(s) unfinished"
                        ),
                        self.snapshots,
                    )
                    break
                at = self.scheduler.next_tick_at()
                assert at is not None
                progress_at = self._progress_due_at()
                if progress_at is not None:  # the running batches' progress is due: a tick reads it
                    last = self.scheduler.last_tick
                    at = min(at, max(progress_at, (now if last is None else last) + self.policy.initial))
                if deadline is not None:
                    at = min(at, deadline)
                if at > now:
                    await self._sleep(at - now)
                    continue
                await self._tick(now)
        except asyncio.CancelledError:
            self.state = "detached"
            raise
        except Exception as exc:  # unrecoverable (401, 403, bug): end the watch with it
            self.state = "error"
            self.error = exc
            log.warning("watch stopped: %s", exc)
        finally:
            self._finish()
        return self.snapshots

    async def _sleep(self, seconds: float) -> None:
        event = self._wake_event
        assert event is not None
        if event.is_set():
            event.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, waker):
                if not fut.done():
                    fut.cancel()
            event.clear()

    async def _tick(self, now: float) -> None:
        ids = self.scheduler.due_ids(now)
        self.ticks += 1
        task_ids = [tid for tid in ids if not self._tracked[tid].via_batch]
        results, failure = await self._fetch(task_ids) if task_ids else ({}, None)
        for tid, obj in list(results.items()):
            tr = self._tracked.get(tid)
            if tr is None:
                continue
            if isinstance(obj, _Gone):
                if tr.batch_ref is not None and not tr.done:
                    # The task record expired (~24 h): its batch says how it went.
                    tr.via_batch = True
                    results.pop(tid)
                    self.note(f"task {tid} {obj.reason}; following its batch {tr.meta['batch_id']}")
                continue
            tr.task = obj
            self._remember(tr, obj)
        if failure is None:
            failure = await self._refresh_batches(now)
        observed = dict(results)
        for tid in ids:
            tr = self._tracked[tid]
            if tr.lost:
                observed[tid] = _Gone(tr.lost)
            elif tr.via_batch and not tr.done:
                observed[tid] = None  # its snapshot comes from the batch
        connection_changed = False
        if failure is None:
            self._error_backoff.reset()
            self._failing_since = None
            connection_changed = self._set_connection("ok")
            self._check_odd_statuses(ids, now)
        changes, to_record = self._apply(observed)
        if changes:
            # a task that just ended says nothing of when the others will move: only a change of a
            # task still running (its status, its batch's progress) resets the watch's backoff
            self.scheduler.observed({tid: ch and not self._tracked[tid].done for tid, ch in changes.items()}, now)
        if to_record:
            await asyncio.to_thread(self._record, to_record)
        if connection_changed or any(changes.values()):
            self._notify()
        for tid, tr in self._tracked.items():
            if tr.done:
                self.scheduler.remove(tid)
        if failure is not None:
            self._handle_failure(failure, now)

    def _handle_failure(self, exc: BaseException, now: float) -> None:
        self.scheduler.mark_tick(now)
        self.failed_ticks += 1
        self.last_failure = exc
        if isinstance(exc, errors.RateLimitError):
            wait = exc.retry_after if exc.retry_after is not None else self._error_backoff.next()
            wait = max(wait, self.policy.initial)
            self.note(f"rate limited by the server; next poll in {wait:g}s")
            self.scheduler.defer(now + wait)
            return
        if isinstance(exc, (errors.APIConnectionError, errors.ServerError, errors.ResponseFormatError)):
            if self._failing_since is None:
                self._failing_since = now
            limit = self.policy.unreachable_timeout
            if limit is not None and now - self._failing_since >= limit:
                self._give_up = WatchTimeout(
                    self.reattach_message(
                        f"Gave up: the server has been unreachable or failing for {now - self._failing_since:.0f}s "
                        f"(limit {limit:g}s; last error: {exc})"
                    ),
                    self.snapshots,
                )
                return
            wait = self._error_backoff.next()
            if limit is not None:  # the last retry lands at the limit, not a backoff after it
                wait = max(self.policy.initial, min(wait, self._failing_since + limit - now))
            log.info("server unreachable or failing (%s); retrying in %.1fs", exc, wait)
            self.scheduler.defer(now + wait)
            if self._set_connection("reconnecting"):
                self._notify()
            return
        raise exc

    def reattach_message(self, head: str) -> str:
        """``head`` + that the tasks may still run on the server and how to pick them up again."""
        left = [tid for tid, tr in self._tracked.items() if not tr.done]
        shown = " ".join(left[:5]) + (f" ... ({len(left) - 5} more)" if len(left) > 5 else "")
        return (
            f"{head}. {len(left)} task(s) may still be running on the server; nothing was cancelled. "
            f"Re-attach when it is back: %mixpeek_watch --unfinished (or %mixpeek_watch {shown}), "
            f"or attach_unfinished(client) / watch(ids, client=client) in Python."
        )

    def _check_odd_statuses(self, ids: Sequence[str], now: float) -> None:
        """A task whose status is neither running nor terminal counts toward a limit, not forever."""
        limit = self.policy.unknown_status_timeout
        for tid in ids:
            tr = self._tracked[tid]
            if tr.done or tr.lost or (tr.task is None and not tr.via_batch):
                continue
            status = tr.status
            if status in statuses.POLLABLE or statuses.is_terminal(status):
                tr.odd_since = None
                continue
            if tr.odd_since is None:
                tr.odd_since = now
            elif limit is not None and now - tr.odd_since >= limit:
                tr.lost = f"reported status {status!r} (neither running nor finished) for {now - tr.odd_since:.0f}s"

    def _set_connection(self, value: str) -> bool:
        if self.connection == value:
            return False
        self.connection = value
        return True

    # ------------------------------------------------------------ fetching
    async def _fetch(self, ids: list[str]) -> tuple[dict[str, Any], BaseException | None]:
        if self.mode == "list":
            try:
                return await self._fetch_list(ids)
            except _FilterRejected as why:
                self.mode = "get"
                self.scheduler.set_shared(False)
                self.note(f"the server does not filter tasks/list by task_id ({why}); polling with GETs instead")
        return await self._fetch_get(ids)

    async def _fetch_list(self, ids: list[str]) -> tuple[dict[str, Any], BaseException | None]:
        found: dict[str, Any] = {}
        missing: list[str] = []
        size = self.policy.batch_size
        for i in range(0, len(ids), size):
            chunk = ids[i : i + size]
            wanted = set(chunk)
            filters = {"AND": [{"field": "task_id", "operator": "in", "value": chunk}]}
            self.requests += 1
            try:
                page = await self.client.tasks.list(filters=filters, limit=len(chunk))
            except errors.APIStatusError as exc:
                code = exc.status_code
                if 400 <= code < 500 and code not in (401, 403, 408, 429):
                    raise _FilterRejected(f"HTTP {code}") from None
                return found, exc
            except errors.MixpeekError as exc:
                return found, exc
            got = {t.task_id: t for t in page.items}
            stray = [tid for tid in got if tid not in wanted]
            if stray:
                raise _FilterRejected(f"it returned {len(stray)} task(s) that were not asked for")
            found.update(got)
            missing.extend(tid for tid in chunk if tid not in got)
        if missing:
            more, failure = await self._fetch_get(missing)
            found.update(more)
            return found, failure
        return found, None

    async def _fetch_get(self, ids: list[str]) -> tuple[dict[str, Any], BaseException | None]:
        sem = asyncio.Semaphore(self.policy.concurrency)
        found: dict[str, Any] = {}
        failures: list[BaseException] = []

        async def one(tid: str) -> None:
            async with sem:
                if failures and not isinstance(failures[0], errors.NotFoundError):
                    return  # the server is failing: do not hammer it
                self.requests += 1
                try:
                    found[tid] = await self.client.tasks.get(tid)
                except errors.NotFoundError:
                    found[tid] = _Gone("not found on the server (deleted or expired)")
                except errors.APIStatusError as exc:
                    code = exc.status_code
                    if 400 <= code < 500 and code not in (401, 403, 408, 429):
                        found[tid] = _Gone(f"the server rejected GET for this id (HTTP {code})")
                    else:
                        failures.append(exc)
                except errors.MixpeekError as exc:
                    failures.append(exc)

        await asyncio.gather(*(one(tid) for tid in ids))
        failure = None
        if failures:
            rate = [f for f in failures if isinstance(f, errors.RateLimitError)]
            fatal = [f for f in failures if isinstance(f, (errors.AuthenticationError, errors.PermissionDeniedError))]
            failure = (fatal or rate or failures)[0]
        return found, failure

    # ------------------------------------------------------------ batches
    def _remember(self, tr: _Tracked, task: Task) -> None:
        data = task.additional_data
        if isinstance(data, Mapping):
            for k in ("bucket_id", "batch_id", "namespace_id"):
                if data.get(k):
                    tr.meta[k] = str(data[k])

    def _wants_final(self, tr: _Tracked) -> bool:
        """An ended batch task whose batch must be read once: it ended with
        errors (the failed objects are on the batch) or its counts are unknown."""
        if tr.final or tr.batch_ref is None or tr.via_batch:
            return False
        status = tr.status
        if not statuses.is_terminal(status):
            return False
        if status in ("COMPLETED_WITH_ERRORS", "FAILED"):
            return True
        if status == "COMPLETED":
            return self._object_count(tr) is None
        return False

    def _object_count(self, tr: _Tracked) -> int | None:
        """How many objects the batch has: the task's ``object_count``, else the batch's own."""
        data = tr.task.additional_data if tr.task is not None else None
        count = _int(data.get("object_count")) if isinstance(data, Mapping) else None
        if count is None and tr.batch is not None:
            ids = tr.batch.object_ids
            if ids:
                count = len(ids)
            elif tr.batch.progress is not None:
                count = _int(tr.batch.progress.total)
        return count

    def _running_batches(self) -> list[_Tracked]:
        return [
            tr
            for tr in self._tracked.values()
            if not tr.done and tr.batch_ref is not None and (tr.via_batch or tr.status in RUNNING_BATCH)
        ]

    def _progress_due_at(self) -> float | None:
        """When the running batches' progress is next due to be read (None: nothing to read)."""
        if self._last_progress is None or not self._running_batches():
            return None
        return self._last_progress + self.policy.progress_interval

    async def _refresh_batches(self, now: float) -> BaseException | None:
        """Progress of the running batches (one list per running status, at most
        every ``progress_interval``) and the final state of batches whose task
        just ended. Returns a failure that should slow the engine down, if any."""
        wanted = self._running_batches()
        reread: list[_Tracked] = [
            tr
            for tr in self._tracked.values()
            if not tr.done and (self._wants_final(tr) or (tr.via_batch and tr.batch is None))
        ]
        due = self._last_progress is None or now - self._last_progress >= self.policy.progress_interval
        if wanted and due:
            self._last_progress = now
            found: dict[str, Batch] = {}
            if self._list_batches:
                ask: set[str] = set()
                for tr in wanted:
                    seen = statuses.normalize(tr.batch.status if tr.batch is not None else None)
                    if tr.missed:  # not where we looked last time: look under both running statuses
                        ask.update(RUNNING_BATCH)
                    elif seen in RUNNING_BATCH:
                        ask.add(seen)
                    elif tr.status in RUNNING_BATCH:
                        ask.add(tr.status)
                for status in sorted(ask):
                    self.requests += 1
                    try:
                        page = await self.client.batches.list_all(status=status, limit=1000)
                    except errors.APIStatusError as exc:
                        code = exc.status_code
                        if code in (401, 403):
                            raise
                        if code in (408, 429) or code >= 500:
                            return exc
                        self._list_batches = False
                        self.note(
                            f"the server does not list batches (HTTP {code}); progress is shown when each batch ends"
                        )
                        break
                    except errors.MixpeekError as exc:
                        return exc
                    for listed in page.items:
                        if listed.batch_id:
                            found[listed.batch_id] = listed
            for tr in wanted:
                ref = tr.batch_ref
                batch = found.get(ref[1]) if ref is not None else None
                if batch is not None:
                    tr.batch, tr.missed = batch, False
                else:
                    tr.missed = True
                    if tr.via_batch and tr not in reread:
                        reread.append(tr)  # left the running list (or never was in it): read where it is
        for tr in reread:
            failure = await self._get_batch(tr)
            if failure is not None:
                return failure
        return None

    async def _get_batch(self, tr: _Tracked) -> BaseException | None:
        bucket, batch_id = tr.batch_ref  # type: ignore[misc]
        namespace = tr.meta.get("namespace_id") or self.namespace
        if not namespace:
            tr.final = True
            self.note(f"cannot read batch {batch_id}: no namespace known for it")
            return None
        self.requests += 1
        try:
            batch = await self.client.batches.get(bucket, batch_id, namespace=namespace)
        except errors.NotFoundError:
            tr.final = True
            if tr.via_batch:
                tr.via_batch = False
                tr.lost = f"expired, and its batch {batch_id} is not found either"
            return None
        except errors.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise
            if exc.status_code in (408, 429) or exc.status_code >= 500:
                return exc
            tr.final = True
            return None
        except errors.MixpeekError as exc:
            return exc
        tr.batch = batch
        tr.final = statuses.is_terminal(tr.status)
        return None

    # ------------------------------------------------------------ applying
    def _apply(
        self, results: Mapping[str, Any]
    ) -> tuple[dict[str, bool], list[tuple[TaskSnapshot, dict[str, Any], bool]]]:
        """Turn fetched tasks (``None``: a task followed through its batch) into
        snapshots; ``({task_id: changed}, journal rows)``."""
        changes: dict[str, bool] = {}
        to_record: list[tuple[TaskSnapshot, dict[str, Any], bool]] = []
        if not results:
            return changes, to_record
        when = utcnow()
        for tid, obj in results.items():
            tr = self._tracked.get(tid)
            if tr is None or tr.done:
                continue
            prev = tr.snapshot
            if isinstance(obj, _Gone):
                snap = self._gone_snapshot(tr, obj.reason, when)
                tr.gone = True
                tr.done = True
                self.note(f"task {tid} {obj.reason}; no longer watched")
            else:
                if obj is None and tr.batch is None:
                    continue  # following a batch not read yet
                snap = self._snapshot_from(tr, when)
                if snap.terminal and not self._wants_final(tr):  # else: read its batch on the next tick
                    tr.done = True
            changed = _key(prev) != _key(snap)
            if not changed and prev is not None:
                snap = replace(prev, observed_at=when)
            tr.snapshot = snap
            changes[tid] = changed
            if changed:
                to_record.append((snap, dict(tr.meta), tr.gone))
        return changes, to_record

    def _label(self, tr: _Tracked) -> str | None:
        if self.context and self.context.get("label"):
            return str(self.context["label"])
        if tr.journal_label:
            return tr.journal_label
        meta = tr.meta
        if meta.get("sync_config_id"):
            return f"sync {meta['sync_config_id']}"
        parts = [str(meta[k]) for k in ("bucket_id", "batch_id") if meta.get(k)]
        return " / ".join(parts) or None

    def _failed_records(self, batch: Batch) -> list[tuple[str, str]]:
        """(name, error) of each failed object of ``batch`` (error "" when the batch gives none)."""
        return [
            (self.item_names.get(item.object_id) or item.object_id, _text(item.error) or _text(item.error_type) or "")
            for item in batch.failed_objects or []
            if item.object_id
        ]

    def _snapshot_from(self, tr: _Tracked, when: datetime) -> TaskSnapshot:
        task, batch = tr.task, tr.batch
        data = task.additional_data if task is not None and not tr.via_batch else None
        if not isinstance(data, Mapping):
            data = {}
        status = tr.status
        terminal = statuses.is_terminal(status)
        progress = batch.progress if batch is not None else None
        processed = total = None
        percentage = None
        if progress is not None:
            processed, total, percentage = _int(progress.processed), _int(progress.total), progress.percent
            if percentage is None and processed is not None and total:
                percentage = round(100.0 * processed / total, 2)
        failed = _int(batch.failed_object_count) if batch is not None else None
        if not failed and progress is not None:
            failed = _int(progress.objects_failed) or _int(progress.errors) or failed
        records = self._failed_records(batch) if batch is not None else []
        failed_items = tuple(name for name, _error in records)
        if not failed and failed_items:
            failed = len(failed_items)
        if terminal and status != "CANCELED":
            count = self._object_count(tr)
            if count is not None and (status != "FAILED" or (failed or 0) >= count):
                processed, total, percentage = count, count, 100.0
        current_tier = _int(data.get("current_tier"))
        total_tiers = _int(data.get("total_tiers"))
        if current_tier is None and batch is not None:
            current_tier = _int(batch.current_tier)
        if total_tiers is None and batch is not None:
            total_tiers = _int(batch.total_tiers)
        error = _text(task.error) if task is not None and not tr.via_batch else None
        if error is None and status == "FAILED":
            error = (
                _text(data.get("error"))
                or (_text(batch.error) if batch is not None else None)
                or (_text(batch.failure_reason) if batch is not None else None)
            )
        prev = tr.snapshot
        first_seen = tr.first_seen or when
        tr.first_seen = first_seen
        finished_at = None
        if terminal:
            finished_at = prev.finished_at if (prev is not None and prev.finished_at) else when
        task_type = _text(task.task_type) if task is not None else (prev.task_type if prev else None)
        return TaskSnapshot(
            task_id=tr.task_id,
            status=status,
            task_type=task_type,
            processed=processed,
            total=total,
            percentage=percentage,
            error=error,
            failed_items=failed_items,
            label=self._label(tr),
            first_seen=first_seen,
            observed_at=when,
            finished_at=finished_at,
            failed=failed,
            current_tier=current_tier,
            total_tiers=total_tiers,
            batch_id=tr.meta.get("batch_id"),
            bucket_id=tr.meta.get("bucket_id"),
            failed_errors=tuple(error for _name, error in records),
        )

    def _gone_snapshot(self, tr: _Tracked, reason: str, when: datetime) -> TaskSnapshot:
        prev = tr.snapshot
        first_seen = tr.first_seen or when
        tr.first_seen = first_seen
        return TaskSnapshot(
            task_id=tr.task_id,
            status=GONE_STATUS,
            task_type=prev.task_type if prev else None,
            processed=prev.processed if prev else None,
            total=prev.total if prev else None,
            percentage=prev.percentage if prev else None,
            error=f"task {reason}",
            failed_items=prev.failed_items if prev else (),
            label=self._label(tr),
            first_seen=first_seen,
            observed_at=when,
            finished_at=None,
            failed=prev.failed if prev else None,
            batch_id=tr.meta.get("batch_id"),
            bucket_id=tr.meta.get("bucket_id"),
            failed_errors=prev.failed_errors if prev else (),
        )

    # ------------------------------------------------------------ journal
    async def _load_journal(self) -> None:
        if self.journal is None:
            return
        try:
            known = await asyncio.to_thread(self.journal.known, self.task_ids, self.base_url)
        except Exception as exc:
            log.warning("could not read the task journal %s: %s", getattr(self.journal, "path", ""), exc)
            return
        from mixpeek_magics.tracking.journal import parse_time

        for tid, row in known.items():
            tr = self._tracked.get(tid)
            if tr is None:
                continue
            tr.first_seen = parse_time(row.get("first_seen"))
            tr.journal_label = row.get("label")
            for k in ("bucket_id", "batch_id", "sync_config_id"):
                if row.get(k):
                    tr.meta[k] = row[k]
            if row.get("namespace"):  # to read the batch should the task record have expired
                tr.meta.setdefault("namespace_id", row["namespace"])

    def _record(self, items: list[tuple[TaskSnapshot, dict[str, Any], bool]]) -> None:
        journal = self.journal
        if journal is None:
            return
        try:
            journal.record_many(items, self.context, base_url=self.base_url, namespace=self.namespace)
        except Exception as exc:  # a full disk must not stop the watch
            log.warning("could not write the task journal %s: %s", getattr(journal, "path", ""), exc)

    # ------------------------------------------------------------ observers
    def _notify(self) -> None:
        snaps = self.snapshots
        for obs in list(self._observers):
            try:
                obs.on_update(snaps, self.connection)
            except Exception:
                log.exception("watch observer %r failed in on_update (ignored)", obs)

    def _finish(self) -> None:
        if self._finished_called:
            return
        self._finished_called = True
        snaps = self.snapshots
        for obs in list(self._observers):
            try:
                obs.on_finish(snaps)
            except Exception:
                log.exception("watch observer %r failed in on_finish (ignored)", obs)
        self._done.set()
