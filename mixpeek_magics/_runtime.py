"""One background event loop per process, on its own daemon thread.

Synchronous code (scripts, notebook cells) runs coroutines here instead of
calling ``asyncio.run`` inside a kernel whose loop is already running. This is
the alternative to the archived ``nest_asyncio``, which hangs queued cells on
ipykernel 7: the kernel's loop is never re-entered, so Run All keeps working.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            new_loop = asyncio.new_event_loop()
            ready = threading.Event()

            def _run() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(ready.set)
                new_loop.run_forever()

            # An empty context: the loop must not inherit the context of the cell
            # that happened to start it (see spawn()).
            thread = threading.Thread(
                target=contextvars.Context().run, args=(_run,), name="mixpeek-magics-loop", daemon=True
            )
            thread.start()
            ready.wait()
            _loop, _thread = new_loop, thread
        return _loop


def on_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def spawn(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the background loop and return at once.

    The coroutine runs in an empty ``contextvars`` context, not a copy of the
    caller's: ipykernel 7 keeps the parent message of each cell in a context
    variable, and a watch started in cell 1 that publishes while cell 5 runs
    must not claim to be output of long-finished cell 1 (front ends and
    nbclient drop such messages). Without it, output falls back to the cell
    executing now, and display updates by id still reach the original cell.
    """
    target = loop()
    return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, target)


def run(coro: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and block the caller until it ends.

    A KeyboardInterrupt in the caller (the kernel's stop button) cancels the
    coroutine and is re-raised, so the caller decides what an interrupt means.
    """
    if on_loop_thread():
        raise RuntimeError("mixpeek_magics._runtime.run() called from the background loop itself; await instead")

    async def _wrap() -> T:
        return await coro

    future = spawn(_wrap())
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise
