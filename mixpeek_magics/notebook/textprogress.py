"""Text progress: the same ``WatchObserver`` API as the widgets, written to a stream.

On a TTY one line is rewritten in place with ``\\r`` (at most ~10 times a
second); elsewhere (nbconvert, papermill, CI logs) plain lines are appended: at
most one every ``interval`` seconds, plus one on every status change, plus the
final summary. No ANSI escapes are ever written.

Also home of the two helpers the widgets share: ``Throttle`` (coalesce fast
updates into at most one flush per interval) and ``RateEstimator`` (ETA from
the observed rate of progress).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from mixpeek_magics.notebook import display
from mixpeek_magics.tracking import summary
from mixpeek_magics.tracking.snapshot import TaskSnapshot

__all__ = ["Throttle", "RateEstimator", "TextProgress"]

log = logging.getLogger(__name__)

_NOTHING = object()


class Throttle:
    """Coalesce states submitted at any rate into at most one flush per ``interval``.

    ``submit(state)`` keeps only the latest state. The first submit after a quiet
    period flushes at once (in the caller's thread); later ones within the
    interval arm one timer that flushes the latest state when the interval is
    over. ``finish(state)`` cancels the timer and flushes ``state`` synchronously;
    later submits are ignored. Flushes never overlap and run in submit order.
    ``flush_count`` counts the flushes actually done (the front-end updates).
    """

    def __init__(
        self, flush: Callable[[Any], None], interval: float = 0.1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._flush_fn = flush
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: Any = _NOTHING
        self._timer: threading.Timer | None = None
        self._last = float("-inf")
        self._finished = False
        self.flush_count = 0
        self.submit_count = 0

    @property
    def finished(self) -> bool:
        return self._finished

    def submit(self, state: Any, *, only_if_idle: bool = False) -> None:
        flush_now = False
        with self._lock:
            if self._finished:
                return
            if only_if_idle and (self._pending is not _NOTHING or self._timer is not None):
                return
            self.submit_count += 1
            self._pending = state
            if self._timer is not None:
                return
            wait = self._last + self.interval - self._clock()
            if wait <= 0 or self.interval <= 0:
                self._last = self._clock()
                flush_now = True
            else:
                timer = threading.Timer(wait, self._on_timer)
                timer.daemon = True
                timer.name = "mixpeek-magics-display-throttle"
                self._timer = timer
                timer.start()
        if flush_now:
            self._flush()

    def submit_if_idle(self, state: Any) -> None:
        """``submit(state)`` unless a newer state is already waiting to be flushed."""
        self.submit(state, only_if_idle=True)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            self._last = self._clock()
        self._flush()

    def _flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                state, self._pending = self._pending, _NOTHING
            if state is _NOTHING:
                return
            self.flush_count += 1
            try:
                self._flush_fn(state)
            except Exception:  # an observer must never raise into the watch engine
                log.exception("progress display update failed")
            finally:
                with self._lock:  # the interval counts from the end of a (slow) flush
                    self._last = self._clock()

    def flush_pending(self) -> None:
        """Flush the latest state now if one is waiting (cancels the timer)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = self._clock()
        self._flush()

    def finish(self, state: Any) -> None:
        with self._lock:
            self._finished = True
            self._pending = state
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._flush()


class RateEstimator:
    """Progress rate over a sliding time window, and the ETA it implies.

    Feed ``add(t, done)`` with observation times (seconds) and cumulative done
    units. Progress going backwards (a retried task) restarts the estimate.
    """

    def __init__(self, window: float = 120.0, min_span: float = 0.5) -> None:
        self.window = window
        self.min_span = min_span
        self._samples: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def add(self, t: float, done: float) -> None:
        s = self._samples
        if s:
            last_t, last_done = s[-1]
            if done < last_done:
                s.clear()
            elif t <= last_t:
                if t == last_t:
                    s[-1] = (t, done)
                return
            elif done == last_done and len(s) >= 2 and s[-2][1] == done:
                s[-1] = (t, done)  # a plateau: keep its two ends only
                return
        s.append((t, done))
        while len(s) > 2 and s[1][0] < t - self.window:
            s.popleft()
        while len(s) > 512:
            s.popleft()

    def rate(self) -> float | None:
        """Done units per second, or None before two samples ``min_span`` apart."""
        s = self._samples
        if len(s) < 2:
            return None
        (t0, d0), (t1, d1) = s[0], s[-1]
        if t1 - t0 < self.min_span:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta(self, remaining: float) -> float | None:
        if remaining <= 0:
            return 0.0
        r = self.rate()
        if not r or r <= 0:
            return None
        return remaining / r


def task_progress_units(snap: TaskSnapshot) -> tuple[float, float] | None:
    """(done, total) in items if known, else in percent points."""
    if snap.total:
        return float(snap.processed or 0), float(snap.total)
    if snap.percentage is not None:
        return float(snap.percentage), 100.0
    return None


def board_units(snapshots: Sequence[TaskSnapshot]) -> tuple[float, float] | None:
    ov = summary.overall_progress(snapshots)
    if not ov.total:
        return None
    return float(ov.done), float(ov.total)


def observed_time(snapshots: Sequence[TaskSnapshot]) -> float | None:
    if not snapshots:
        return None
    return max(s.observed_at for s in snapshots).timestamp()


class _StreamInfo:
    @staticmethod
    def isatty(stream: Any) -> bool:
        try:
            return bool(stream.isatty())
        except Exception:
            return False


class TextProgress:
    """A ``WatchObserver`` that writes progress text to ``stream`` (default ``sys.stdout``).

    ``tty`` overrides the stream's ``isatty()``. ``interval`` is the minimum time
    between periodic lines when not on a TTY (status changes and the final
    summary are always written). ``on_cancel`` is accepted for API symmetry with
    the widgets; a text display has no button, so it is never called here.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        title: str | None = None,
        tty: bool | None = None,
        interval: float = 5.0,
        min_interval: float = 0.1,
        width: int = summary.BAR_WIDTH,
        on_cancel: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        failure_hint: str | None = None,
    ) -> None:
        self._stream_arg = stream
        self.title = title
        self.failure_hint = failure_hint
        self.tty = _StreamInfo.isatty(self.stream) if tty is None else bool(tty)
        self.interval = interval
        self.width = width
        self.on_cancel = on_cancel
        self._clock = clock
        self._lock = threading.RLock()
        self._estimator = RateEstimator()
        self._last_line_at = float("-inf")
        self._last_signature: Any = None
        self._last_len = 0
        self._last_line: str | None = None
        self._snapshots: list[TaskSnapshot] = []
        self._connection = "ok"
        self.finished = False
        self.lines_written = 0
        self._throttle = Throttle(self._write_tty, interval=min_interval, clock=clock) if self.tty else None
        self._created_parent = display.current_parent()

    # -- observer API -----------------------------------------------------------------

    @property
    def stream(self) -> TextIO:
        return self._stream_arg if self._stream_arg is not None else sys.stdout

    @property
    def flush_count(self) -> int:
        return self._throttle.flush_count if self._throttle else self.lines_written

    def on_update(self, snapshots: Sequence[TaskSnapshot], connection: str = "ok") -> None:
        snaps = list(snapshots)
        with self._lock:
            if self.finished:
                return
            self._snapshots, self._connection = snaps, connection
        if self._throttle is not None:
            self._throttle.submit((snaps, connection, False))
            return
        signature = (connection, tuple((s.task_id, s.status) for s in snaps))
        with self._lock:
            now = self._clock()
            changed = signature != self._last_signature
            if not changed and now - self._last_line_at < self.interval:
                self._sample(snaps)
                return
            self._last_signature = signature
            self._last_line_at = now
            self._write_line(self._line(snaps, connection))

    def on_finish(self, snapshots: Sequence[TaskSnapshot]) -> None:
        snaps = list(snapshots)
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._snapshots, self._connection = snaps, "ok"
        if self._throttle is not None:
            self._throttle.finish((snaps, "ok", True))
        else:
            with self._lock:
                self._write_final(snaps)

    # -- text ---------------------------------------------------------------------------

    def text(self) -> str:
        """The stable summary of the latest state (same as the widgets' text/plain)."""
        with self._lock:
            return summary.render_summary_text(
                self._snapshots, self._connection, hint=self.failure_hint if self.finished else None
            )

    def __repr__(self) -> str:
        return self.text()

    def shown_in_current_cell(self) -> bool:
        """True while the cell it writes to still runs (its lines are the outcome there)."""
        return display.same_cell(self._created_parent)

    def summary_html(self) -> str:
        with self._lock:
            return summary.summary_html(self._snapshots, self.title, hint=self.failure_hint)

    def _sample(self, snaps: Sequence[TaskSnapshot]) -> float | None:
        """Record a rate sample; return the ETA in seconds (None if unknown)."""
        units = (task_progress_units(snaps[0]) if len(snaps) == 1 else board_units(snaps)) if snaps else None
        t = observed_time(snaps)
        if units is None or t is None:
            return None
        done, total = units
        self._estimator.add(t, done)
        return self._estimator.eta(total - done)

    def _line(self, snaps: Sequence[TaskSnapshot], connection: str) -> str:
        eta = self._sample(snaps)
        if len(snaps) == 1:
            line = summary.task_line(snaps[0], eta=eta, timing=True, width=self.width)
            if connection == "reconnecting":
                line += "  (reconnecting…)"
        else:
            line = summary.board_line(snaps, connection=connection, eta=eta, timing=True, width=self.width)
        return f"{self.title}: {line}" if self.title else line

    def _write(self, text: str) -> None:
        stream = self.stream
        try:
            stream.write(text)
            stream.flush()
        except Exception:
            log.debug("could not write progress text", exc_info=True)

    def _write_line(self, line: str) -> None:
        self.lines_written += 1
        self._last_line = line
        self._write(line + "\n")

    def _write_tty(self, state: tuple[list[TaskSnapshot], str, bool]) -> None:
        snaps, connection, final = state
        with self._lock:
            if final:
                self._write_final(snaps)
                return
            line = self._line(snaps, connection)
            pad = " " * max(0, self._last_len - len(line))
            self._last_len = len(line)
            self.lines_written += 1
            self._write("\r" + line + pad)

    def _write_final(self, snaps: Sequence[TaskSnapshot]) -> None:
        line = self._line(snaps, "ok")
        lines = summary.error_lines(snaps, hint=self.failure_hint)
        if self.tty:
            pad = " " * max(0, self._last_len - len(line))
            self._last_len = 0
            self.lines_written += 1
            self._write("\r" + line + pad + "\n" + "".join(x + "\n" for x in lines))
        else:
            if line != self._last_line:  # the last status change already wrote this very line
                self._write_line(line)
            for x in lines:
                self._write(x + "\n")
