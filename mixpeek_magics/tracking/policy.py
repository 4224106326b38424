"""When to poll: the backoff policy, the clock it runs on, and the scheduler.

Everything here is pure logic on an injectable clock, so the schedule and its
resets are unit-tested without sleeping (``ManualClock``).

The documented guidance is exponential backoff from 1 s to 30 s while a task is
PENDING / QUEUED / IN_PROGRESS / PROCESSING. Each watched task keeps its own
``Backoff``: it grows by ``factor`` per unchanged observation, is capped at
``maximum``, is jittered by ``±jitter`` (a fraction) and goes back to
``initial`` when the task's progress moves (status, processed, total or
percentage changed).

The ``Scheduler`` turns those per-task backoffs into *ticks*: one tick at the
earliest due time, never sooner than ``initial`` after the previous tick, so
the request rate is bounded however many tasks are watched.

* ``shared=True`` (one ``POST /v1/tasks/list`` observes every watched task in
  the same request): every tick observes all tasks; a change in any of them is
  progress for the watch and resets everyone's backoff, so the tick interval is
  the shortest backoff of the watch. (The engine reports as changes only those
  of tasks still running: one task ending says nothing of when the others move.)
* ``shared=False`` (fallback, one ``GET`` per task): a tick observes only the
  tasks that are due (or due within ``initial``), each on its own schedule.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

DEFAULT_MAX_WAIT = 24 * 3600.0


class Clock(Protocol):
    """Monotonic seconds and an async sleep on the same time line."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock for tests: ``sleep`` advances time at once and records the wait."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll and for how long.

    ``initial`` / ``maximum`` / ``factor``: exponential backoff, seconds.
    ``jitter``: each delay is multiplied by a uniform factor in
    ``[1 - jitter, 1 + jitter]`` and then capped at ``maximum``.
    ``max_wait``: upper bound on a whole watch, seconds (``None`` = unbounded);
    exceeding it ends the watch with ``WatchTimeout``, the tasks untouched.
    ``concurrency``: parallel GETs in the fallback mode.
    ``batch_size``: task ids per ``POST /v1/tasks/list`` (the API allows 1000).
    ``progress_interval``: least seconds between two reads of the running
    batches' progress (the server refreshes it about every 10 s).
    ``unreachable_timeout``: the watch gives up (``WatchTimeout``, the tasks
    untouched) once the server has been unreachable or failing this long
    without a break (``None``: keep reconnecting until ``max_wait``).
    ``unknown_status_timeout``: a task reporting a status that is neither
    running nor terminal (one this client does not know, UNKNOWN, DRAFT, ...)
    this long is no longer watched: it ends as UNKNOWN instead of forever.
    """

    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    max_wait: float | None = DEFAULT_MAX_WAIT
    concurrency: int = 8
    batch_size: int = 1000
    progress_interval: float = 10.0
    unreachable_timeout: float | None = None
    unknown_status_timeout: float | None = 300.0

    def __post_init__(self) -> None:
        if not (self.initial > 0 and math.isfinite(self.initial)):
            raise ValueError(f"PollPolicy.initial must be a positive number of seconds (got {self.initial!r})")
        if not (self.maximum >= self.initial):
            raise ValueError(f"PollPolicy.maximum ({self.maximum!r}) must be >= initial ({self.initial!r})")
        if not self.factor >= 1.0:
            raise ValueError(f"PollPolicy.factor must be >= 1 (got {self.factor!r})")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"PollPolicy.jitter must be in [0, 1) (got {self.jitter!r})")
        if self.max_wait is not None and not self.max_wait > 0:
            raise ValueError(f"PollPolicy.max_wait must be positive seconds or None (got {self.max_wait!r})")
        if not int(self.concurrency) >= 1:
            raise ValueError(f"PollPolicy.concurrency must be >= 1 (got {self.concurrency!r})")
        if not (self.progress_interval >= 0 and math.isfinite(self.progress_interval)):
            raise ValueError(f"PollPolicy.progress_interval must be >= 0 seconds (got {self.progress_interval!r})")
        for name in ("unreachable_timeout", "unknown_status_timeout"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"PollPolicy.{name} must be positive seconds or None (got {value!r})")
        if not 1 <= int(self.batch_size) <= 1000:
            raise ValueError(f"PollPolicy.batch_size must be in 1..1000 (got {self.batch_size!r})")

    def base_delay(self, attempt: int) -> float:
        """The un-jittered delay after ``attempt`` unchanged observations (0-based)."""
        if attempt <= 0:
            return min(self.initial, self.maximum)
        # Avoid float overflow for very long watches.
        exponent = min(attempt, 1000)
        try:
            value = self.initial * (self.factor**exponent)
        except OverflowError:
            value = self.maximum
        return min(self.maximum, value)

    def jittered(self, delay: float, rng: random.Random) -> float:
        if self.jitter:
            delay *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return min(self.maximum, max(0.0, delay))

    def schedule(self, n: int) -> list[float]:
        """The first ``n`` un-jittered delays: 1, 2, 4, 8, 16, 30, 30, ... by default."""
        return [self.base_delay(i) for i in range(n)]


class Backoff:
    """One exponential backoff sequence, reset to ``initial`` on progress."""

    def __init__(self, policy: PollPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        self.attempt = 0
        self.last: float = policy.initial

    def next(self) -> float:
        """The next delay (jittered), then grow."""
        delay = self.policy.jittered(self.policy.base_delay(self.attempt), self.rng)
        self.attempt += 1
        self.last = delay
        return delay

    def reset(self) -> None:
        self.attempt = 0

    @property
    def current(self) -> float:
        """The un-jittered delay ``next()`` would start from."""
        return self.policy.base_delay(self.attempt)


class Scheduler:
    """Per-task due times and the tick they are polled on. Pure, clock-driven."""

    def __init__(
        self,
        policy: PollPolicy,
        *,
        shared: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.shared = shared
        self.rng = rng or random.Random()
        self._backoff: dict[str, Backoff] = {}
        self._due: dict[str, float] = {}
        self.last_tick: float | None = None

    # ------------------------------------------------------------------ tasks
    def add(self, task_id: str, now: float) -> None:
        """Watch ``task_id``; it is due at once."""
        if task_id not in self._backoff:
            self._backoff[task_id] = Backoff(self.policy, self.rng)
        self._due[task_id] = now

    def remove(self, task_id: str) -> None:
        self._backoff.pop(task_id, None)
        self._due.pop(task_id, None)

    def poke(self, task_ids: Iterable[str], now: float) -> None:
        """Reset these tasks' backoff and make them due now (e.g. after a cancel)."""
        for tid in task_ids:
            if tid in self._backoff:
                self._backoff[tid].reset()
                self._due[tid] = now

    @property
    def active(self) -> list[str]:
        return list(self._due)

    def due_at(self, task_id: str) -> float:
        return self._due[task_id]

    def backoff(self, task_id: str) -> Backoff:
        return self._backoff[task_id]

    # ------------------------------------------------------------------ ticks
    def next_tick_at(self) -> float | None:
        """When the next tick should run (``None`` when nothing is watched).

        The earliest due time, but never sooner than ``initial`` after the
        previous tick: at most one tick per ``initial`` seconds.
        """
        if not self._due:
            return None
        earliest = min(self._due.values())
        if self.last_tick is not None:
            earliest = max(earliest, self.last_tick + self.policy.initial)
        return earliest

    def due_ids(self, now: float) -> list[str]:
        """The ids to poll on a tick at ``now``.

        Shared mode: all watched tasks (one request observes them all anyway).
        Per-task mode: the tasks due by ``now + initial`` (so tasks whose due
        times are close share one tick instead of causing one tick each).
        """
        if self.shared:
            return sorted(self._due, key=self._due.__getitem__)
        horizon = now + self.policy.initial
        return sorted((t for t, d in self._due.items() if d <= horizon), key=self._due.__getitem__)

    def observed(self, changes: dict[str, bool], now: float) -> None:
        """Record a tick's observations: ``{task_id: changed}``.

        Changed tasks restart at ``initial``; unchanged ones grow their backoff.
        In shared mode a change of any task counts as progress for all.
        """
        self.last_tick = now
        any_change = any(changes.values())
        for tid, changed in changes.items():
            bo = self._backoff.get(tid)
            if bo is None:
                continue
            if changed or (self.shared and any_change):
                bo.reset()
            self._due[tid] = now + bo.next()

    def mark_tick(self, now: float) -> None:
        """A tick ran without observing anything (error, rate limit)."""
        self.last_tick = now

    def defer(self, until: float) -> None:
        """Nothing is polled before ``until`` (Retry-After, reconnect backoff)."""
        for tid, due in self._due.items():
            if due < until:
                self._due[tid] = until

    def set_shared(self, shared: bool) -> None:
        self.shared = shared
