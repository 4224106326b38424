"""``watch`` / ``awatch`` / ``attach_unfinished`` and the handles they return.

Both handles drive the one :class:`~mixpeek_magics.tracking.engine.Engine`:

* :func:`watch` (sync code, notebook cells): the engine runs on the
  ``_runtime`` background loop, so a cell can return at once (``block=False``)
  while polling continues and observers keep being called. The engine gets an
  ``AsyncMixpeek`` of its own with the client's config (api key, base URL,
  namespace, timeout) and, when the client was given an async httpx transport
  (``client.transport``, e.g. ``httpx.ASGITransport``), that transport; a
  *sync* transport cannot drive an async client, so the engine then talks
  HTTP to ``base_url`` itself (tests use a real local server over HTTP).
* :func:`awatch` (async code): the engine runs on the caller's loop, with the
  caller's ``AsyncMixpeek`` (and its transport).

Both take the tasks first and the client as a keyword: ``watch(tasks, client=c)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from mixpeek_magics.client import AsyncMixpeek, Mixpeek

from mixpeek_magics.tracking.engine import (
    ENGINE_RETRY_SECONDS,
    GONE_STATUS,
    Engine,
    PartialFailureWarning,
    TaskFailedError,
    WatchTimeout,
    task_ids_of,
)
from mixpeek_magics.tracking.policy import Clock, PollPolicy
from mixpeek_magics.tracking.snapshot import TaskSnapshot, WatchObserver

__all__ = ["watch", "awatch", "attach_unfinished", "aattach_unfinished", "WatchHandle", "AsyncWatchHandle"]


class _Default:
    def __repr__(self) -> str:
        return "<default journal>"


DEFAULT_JOURNAL: Any = _Default()


def _resolve_journal(journal: Any) -> Any:
    if journal is DEFAULT_JOURNAL:
        from mixpeek_magics.tracking.journal import default_journal

        return default_journal()
    if isinstance(journal, (str, Path)):
        from mixpeek_magics.tracking.journal import Journal

        return Journal(journal)
    return journal


def _is_async_client(client: object) -> bool:
    from mixpeek_magics.client import AsyncMixpeek

    return isinstance(client, AsyncMixpeek)


def _given_client(client: Mixpeek | AsyncMixpeek | None) -> Mixpeek | AsyncMixpeek:
    """``client``, else the signed-in one (the notebook session registers it)."""
    if client is not None:
        return client
    from mixpeek_magics._defaults import default_client

    found: Mixpeek | AsyncMixpeek = default_client()
    return found


def _engine_client_for_sync_api(client: Mixpeek | AsyncMixpeek) -> AsyncMixpeek:
    """A fresh ``AsyncMixpeek`` for the background loop: same config, small retry budget, and
    the caller's transport when it is an async one (a sync transport cannot drive it)."""
    import httpx

    from mixpeek_magics.client import AsyncMixpeek

    cfg = client.config.replace(max_retry_seconds=ENGINE_RETRY_SECONDS)
    transport = client.transport
    if isinstance(transport, httpx.AsyncBaseTransport):
        return AsyncMixpeek(config=cfg, transport=_no_close(transport))
    return AsyncMixpeek(config=cfg)


def _no_close(transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
    """Wrap an async transport shared with the caller's client: closing ours leaves it open."""
    import httpx

    class _NoClose(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await transport.handle_async_request(request)

        async def aclose(self) -> None:
            pass

    return _NoClose()


def _engine_client_for_async_api(client: AsyncMixpeek) -> AsyncMixpeek:
    """The caller's ``AsyncMixpeek`` (same pool and transport), with a small retry budget."""
    return client.with_options(max_retry_seconds=ENGINE_RETRY_SECONDS)


def overall_status(engine: Engine) -> str:
    """``running`` / ``completed`` / ``completed_with_errors`` / ``failed`` /
    ``canceled`` / ``unknown`` / ``detached`` / ``timeout`` / ``error``."""
    if not engine.done:
        return "running"
    if engine.state in ("detached", "timeout", "error"):
        return engine.state
    snaps = engine.snapshots
    names = {s.status for s in snaps}
    if "FAILED" in names:
        return "failed"
    if "COMPLETED_WITH_ERRORS" in names:
        return "completed_with_errors"
    if "CANCELED" in names:
        return "canceled"
    if snaps and names <= {GONE_STATUS}:
        return "unknown"
    return "completed"


def overall_progress(engine: Engine) -> float:
    """Mean completion of the watched tasks, 0..1 (finished tasks count as 1)."""
    ids = engine.task_ids
    if not ids:
        return 1.0
    by_id = {s.task_id: s for s in engine.snapshots}
    total = 0.0
    for tid in ids:
        s = by_id.get(tid)
        if s is None:
            continue
        if s.terminal or s.status == GONE_STATUS:
            total += 1.0
        else:
            total += s.fraction or 0.0
    return total / len(ids)


def _outcome(engine: Engine, raise_on_failure: bool, handle: Any) -> list[TaskSnapshot]:
    snaps = engine.snapshots
    if engine.state == "timeout":
        err = engine.error if isinstance(engine.error, WatchTimeout) else WatchTimeout("watch timed out", snaps)
        err.handle = handle
        err.snapshots = snaps
        raise err
    if engine.state == "error" and engine.error is not None:
        raise engine.error
    for s in snaps:
        if s.status == "COMPLETED_WITH_ERRORS":
            items = ", ".join(s.failed_items[:10]) or (
                f"see its batch's failed_objects (client.batches.get({s.bucket_id!r}, {s.batch_id!r}))"
                if s.batch_id
                else "the server listed none"
            )
            more = f" and {len(s.failed_items) - 10} more" if len(s.failed_items) > 10 else ""
            warnings.warn(
                PartialFailureWarning(f"task {s.task_id} COMPLETED_WITH_ERRORS; failed item(s): {items}{more}"),
                stacklevel=_caller_stacklevel(),
            )
    if raise_on_failure:
        failed = [s for s in snaps if s.status == "FAILED"]
        if failed:
            raise TaskFailedError(failed, snaps)
    return snaps


#: Frames a warning should not point at: this package, and IPython's magic machinery.
_INTERNAL_MODULES = ("mixpeek_magics.", "IPython.core.", "traitlets.")


def _caller_stacklevel() -> int:
    """``warnings.warn``'s stacklevel of the first frame outside this package (and
    IPython's magic machinery), for a warning that points at the user's line or cell."""
    frame: FrameType | None = sys._getframe(1)  # the function calling warnings.warn: stacklevel 1
    level = 1
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        internal = (
            module == "mixpeek_magics"
            or module.startswith(_INTERNAL_MODULES)
            or frame.f_code.co_filename.startswith("<decorator-gen")
        )
        if not internal:
            return level
        frame = frame.f_back
        level += 1
    return 1


def _interrupt_message(engine: Engine, detached: bool) -> str:
    left = [t for t in engine.task_ids if not _finished(engine, t)]
    shown = ", ".join(repr(t) for t in left[:5])
    more = f", ... ({len(left) - 5} more)" if len(left) > 5 else ""
    head = (
        f"Stopped waiting: {len(left)} task(s) keep running on the server; this watch is detached."
        if detached
        else f"Stopped waiting: {len(left)} task(s) keep running; the watch keeps polling in the background."
    )
    lines = [head]
    if detached:
        lines.append(
            f"  re-attach: h = watch([{shown}{more}], client=client, block=False)   or   h = attach_unfinished(client)"
        )
        lines.append("  cancel them on the server: h.cancel()")
    else:
        lines.append("  wait again: handle.wait()   stop polling: handle.detach()   cancel the tasks: handle.cancel()")
    return "\n".join(lines)


def _finished(engine: Engine, task_id: str) -> bool:
    for s in engine.snapshots:
        if s.task_id == task_id:
            return s.terminal or s.status == GONE_STATUS
    return False


class _HandleBase:
    _engine: Engine
    #: The board showing this watch, when a front end (the notebook layer) attached one.
    display: Any = None

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def task_ids(self) -> list[str]:
        return list(self._engine.task_ids)

    @property
    def snapshots(self) -> list[TaskSnapshot]:
        """The latest snapshot of every task observed so far."""
        return self._engine.snapshots

    @property
    def status(self) -> str:
        return overall_status(self._engine)

    @property
    def progress(self) -> float:
        return overall_progress(self._engine)

    @property
    def connection(self) -> str:
        return self._engine.connection

    @property
    def done(self) -> bool:
        return self._engine.done

    @property
    def notes(self) -> list[str]:
        return list(self._engine.notes)

    def add_observer(self, observer: WatchObserver) -> None:
        """Tell ``observer`` about every further change (and the current state at once)."""
        self._engine.add_observer(observer)
        snaps = self._engine.snapshots
        try:
            if snaps:
                observer.on_update(snaps, self._engine.connection)
            if self._engine.done:
                observer.on_finish(snaps)
        except Exception:
            import logging

            logging.getLogger("mixpeek_magics.tracking").exception("observer failed (ignored)")

    def detach(self) -> None:
        """Stop polling; the tasks keep running on the server."""
        self._engine.detach()

    def _cancel_ids(self, task_id: str | Sequence[str] | None) -> list[str] | None:
        if task_id is None:
            return None
        return task_ids_of(task_id)

    def __repr__(self) -> str:
        n = len(self._engine.task_ids)
        return f"<{type(self).__name__} {n} task(s) status={self.status!r} progress={self.progress:.0%}>"

    def _repr_html_(self) -> str | None:
        """The static summary (HTML front ends, marimo); None in the cell whose board shows it already."""
        board = self.display
        shown = getattr(board, "shown_in_current_cell", None)
        if callable(shown) and shown():
            return None
        render = getattr(board, "summary_html", None)
        if callable(render):
            return str(render())
        from mixpeek_magics.tracking.summary import summary_html

        return summary_html(self.snapshots)


class WatchHandle(_HandleBase):
    """A watch running on the background loop; every method is synchronous."""

    def __init__(self, engine: Engine, future: concurrent.futures.Future[Any], client: Mixpeek | AsyncMixpeek) -> None:
        self._engine = engine
        self._future = future
        self._client = client

    def wait(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[TaskSnapshot]:
        """Block until every task is terminal; the final snapshots.

        Raises ``TaskFailedError`` if a task FAILED (unless
        ``raise_on_failure=False``), warns ``PartialFailureWarning`` for
        COMPLETED_WITH_ERRORS, raises ``WatchTimeout`` if the watch hit its
        ``max_wait`` or this wait hit ``timeout`` (the watch then continues).
        Ctrl-C / the stop button stops waiting, not the watch.
        """
        try:
            self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise WatchTimeout(
                f"still running after waiting {timeout:g}s; the watch continues "
                f"(handle.wait() again, handle.detach() or handle.cancel())",
                self.snapshots,
                self,
            ) from None
        except concurrent.futures.CancelledError:
            pass
        except KeyboardInterrupt:
            print(_interrupt_message(self._engine, detached=False), file=sys.stderr)
            raise
        return _outcome(self._engine, raise_on_failure, self)

    def cancel(self, task_id: str | Sequence[str] | None = None) -> list[str]:
        """Kill the tasks (default: all unfinished) server-side and keep
        watching until they report CANCELED. Returns the ids asked to stop."""
        from mixpeek_magics import _runtime
        from mixpeek_magics.client import AsyncMixpeek

        ids = self._cancel_ids(task_id)
        if not self._engine.done:
            return _runtime.run(self._engine.cancel(ids))
        # The watch is over (detached): kill without watching.
        targets = ids if ids is not None else [t for t in self._engine.task_ids if not _finished(self._engine, t)]
        client = self._client
        for tid in targets:
            if isinstance(client, AsyncMixpeek):
                _runtime.run(client.tasks.kill(tid))
            else:
                client.tasks.kill(tid)
        return targets

    def detach(self) -> None:
        """Stop polling (returns once the engine stopped); the tasks keep running."""
        self._engine.detach()
        try:
            self._future.result(timeout=10)
        except BaseException:
            pass


class AsyncWatchHandle(_HandleBase):
    """A watch running as a task on the caller's event loop."""

    def __init__(self, engine: Engine, task: asyncio.Task[Any], client: AsyncMixpeek) -> None:
        self._engine = engine
        self._task = task
        self._client = client

    async def wait(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[TaskSnapshot]:
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            raise WatchTimeout(
                f"still running after waiting {timeout:g}s; the watch continues",
                self.snapshots,
                self,
            ) from None
        return _outcome(self._engine, raise_on_failure, self)

    async def cancel(self, task_id: str | Sequence[str] | None = None) -> list[str]:
        ids = self._cancel_ids(task_id)
        if not self._engine.done:
            return await self._engine.cancel(ids)
        targets = ids if ids is not None else [t for t in self._engine.task_ids if not _finished(self._engine, t)]
        for tid in targets:
            await self._client.tasks.kill(tid)
        return targets

    async def adetach(self) -> None:
        self._engine.detach()
        await asyncio.wait({self._task})

    def __await__(self) -> Any:
        return self.wait().__await__()


def _names_of(tasks: Any, given: Mapping[str, str] | None) -> dict[str, str] | None:
    """``given``, else what the watched results know their objects as (an
    ingest result's ``item_names()``: object id -> file), else None."""
    if given is not None:
        return dict(given)
    items = tasks if isinstance(tasks, (list, tuple)) else [tasks]
    names: dict[str, str] = {}
    for item in items:
        known = getattr(item, "item_names", None)
        if callable(known):
            known = known()
        if isinstance(known, Mapping):
            names.update(known)
    return names or None


def _make_engine(
    engine_client: AsyncMixpeek,
    user_client: Mixpeek | AsyncMixpeek,
    tasks: Any,
    observers: Iterable[WatchObserver],
    policy: PollPolicy | None,
    journal: Any,
    context: Mapping[str, Any] | None,
    timeout: float | None,
    clock: Clock | None,
    item_names: Mapping[str, str] | None = None,
) -> Engine:
    ids = task_ids_of(tasks)
    if not ids:
        raise ValueError("nothing to watch: pass one or more task ids or Task objects")
    engine = Engine(
        engine_client,
        ids,
        policy=policy,
        observers=observers,
        journal=_resolve_journal(journal),
        context=context,
        timeout=timeout,
        clock=clock,
        item_names=_names_of(tasks, item_names),
    )
    engine.base_url = user_client.config.base_url
    engine.namespace = user_client.config.namespace
    return engine


def watch(
    tasks: Any,
    *,
    client: Mixpeek | AsyncMixpeek | None = None,
    block: bool = True,
    observers: Iterable[WatchObserver] = (),
    policy: PollPolicy | None = None,
    journal: Any = DEFAULT_JOURNAL,
    context: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
    item_names: Mapping[str, str] | None = None,
) -> WatchHandle:
    """Watch ``tasks`` (ids, Task objects, objects with ``.task_id``) until all are terminal.

    ``client``: a ``Mixpeek`` or ``AsyncMixpeek`` (default: the signed-in one). ``block=True`` waits (Ctrl-C
    detaches the watch and says how to re-attach or cancel; the tasks keep
    running); ``block=False`` returns at once while the engine keeps polling
    on the background loop. ``journal``: the default journal, a ``Journal``,
    a path, or ``None`` for none. ``context``: ``{"cell", "notebook",
    "source", "label"}`` recorded with the tasks. ``timeout``: overrides
    ``policy.max_wait``; on expiry the watch ends with ``WatchTimeout``.
    ``item_names``: object id -> name (e.g. the uploaded file's), shown in
    ``failed_items`` instead of the id (the API's failed objects carry ids
    only); by default the watched results' own (``bulk_upload`` and
    ``%%ingest`` results name their files).
    """
    from mixpeek_magics import _runtime

    client = _given_client(client)
    # Sync or async client: never reuse a pool across event loops; same config, own client.
    engine_client = _engine_client_for_sync_api(client)
    engine = _make_engine(engine_client, client, tasks, observers, policy, journal, context, timeout, clock, item_names)

    async def main() -> list[TaskSnapshot]:
        try:
            return await engine.run()
        finally:
            try:
                await engine_client.aclose()
            except Exception:
                pass

    handle = WatchHandle(engine, _runtime.spawn(main()), client)
    if block:
        try:
            handle._future.result()
        except KeyboardInterrupt:
            engine.detach()
            print(_interrupt_message(engine, detached=True), file=sys.stderr)
            raise
        except concurrent.futures.CancelledError:
            pass
        if engine.state in ("timeout", "error"):
            _outcome(engine, False, handle)
    return handle


async def awatch(
    tasks: Any,
    *,
    client: AsyncMixpeek,
    observers: Iterable[WatchObserver] = (),
    policy: PollPolicy | None = None,
    journal: Any = DEFAULT_JOURNAL,
    context: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
    item_names: Mapping[str, str] | None = None,
) -> AsyncWatchHandle:
    """Start watching ``tasks`` on the running loop with ``client``, an ``AsyncMixpeek``;
    ``await h.wait()``."""
    if not _is_async_client(client):
        raise TypeError("awatch() needs an AsyncMixpeek; use watch() with a Mixpeek client")
    engine_client = _engine_client_for_async_api(client)
    engine = _make_engine(engine_client, client, tasks, observers, policy, journal, context, timeout, clock, item_names)
    task = asyncio.ensure_future(engine.run())
    return AsyncWatchHandle(engine, task, client)


def attach_unfinished(client: Mixpeek | AsyncMixpeek, journal: Any = None, **watch_kwargs: Any) -> WatchHandle | None:
    """Watch again every task the journal saw unfinished on this client's server.

    Returns ``None`` when there is nothing to re-attach to.
    """
    jr = _resolve_journal(DEFAULT_JOURNAL if journal is None else journal)
    ids = jr.unfinished(base_url=client.config.base_url)
    if not ids:
        return None
    watch_kwargs.setdefault("block", False)
    return watch(ids, client=client, journal=jr, **watch_kwargs)


async def aattach_unfinished(client: AsyncMixpeek, journal: Any = None, **watch_kwargs: Any) -> AsyncWatchHandle | None:
    jr = _resolve_journal(DEFAULT_JOURNAL if journal is None else journal)
    ids = await asyncio.to_thread(jr.unfinished, client.config.base_url)
    if not ids:
        return None
    return await awatch(ids, client=client, journal=jr, **watch_kwargs)
