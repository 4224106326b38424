"""Which run submits an object that two runs found at once (layer 2, pure Python).

Two runs that ingest the same files at the same time (two kernels, a ``--no-wait`` run
still uploading and a new cell) end up with the same objects: one run made each of them,
the other found it as a duplicate (the server's ``skip_duplicates``) or in the shared
ingest state. The contract's batch deduplication (``dedup_strategy`` skip) only leaves out
objects that already have documents, so two batches submitted at once would both process
them. The rule here: **the run that made an object submits it**. A run leaves the objects
another live run made (and has not submitted yet) to that run, waits a bounded time to see
them taken by a batch, and submits itself whatever is still waiting then (the other run died
or is slower than the bound).

A maker counts as live when it is a run of this process still going or a process on this host
that is still running (its ``owner`` tag in the ingest state), for up to :data:`RACE_WINDOW`
seconds; when neither can be asked (another host, or only the server knows the object), while
the object is less than :data:`UNKNOWN_MAKER_WINDOW` seconds old: a run submits its objects
right after its last chunk is confirmed, and one killed before that must not hold others long.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

RACE_WINDOW = 120.0  # seconds a maker this process can see alive gets to submit an object it made
UNKNOWN_MAKER_WINDOW = 30.0  # seconds from its creation for an object whose maker cannot be asked
RACE_POLL = 1.0  # seconds between two looks at the objects left to another run


def owner_tag() -> str:
    """This process, as the ingest state records who confirmed an object: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    except OSError:
        return False
    return True


def _age_seconds(stamp: str | None) -> float | None:
    """Seconds since an ISO-8601 time (``Z`` or an offset; naive means UTC), None if unreadable."""
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - when).total_seconds()


class ActiveRuns:
    """Who made the objects made by this process's runs: the run while it goes, then "ended"
    (the last :data:`ENDED_KEPT` of them are remembered). Thread-safe."""

    ENDED_KEPT = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maker: dict[str, int] = {}
        self._ended: dict[str, None] = {}  # an ordered set

    def add(self, run: int, object_ids: Iterable[str]) -> None:
        with self._lock:
            for oid in object_ids:
                self._maker[oid] = run

    def end(self, run: int) -> None:
        with self._lock:
            mine = [oid for oid, r in self._maker.items() if r == run]
            for oid in mine:
                del self._maker[oid]
                self._ended[oid] = None
            while len(self._ended) > self.ENDED_KEPT:
                del self._ended[next(iter(self._ended))]

    def made_by_another(self, oid: str, run: int) -> bool:
        """Made by another run of this process that is still going."""
        with self._lock:
            maker = self._maker.get(oid)
        return maker is not None and maker != run

    def made_by_ended(self, oid: str) -> bool:
        with self._lock:
            return oid in self._ended


ACTIVE_RUNS = ActiveRuns()


@dataclass
class Maker:
    """What the ingest state knows of who confirmed an object this run did not make."""

    owner: str | None = None  # ``host:pid``; '' recorded by a run that did not make it; None: an old row
    recorded: str | None = None  # when (ISO-8601)


@dataclass
class LeftToMaker:
    """An object left to the run that made it, until it is taken or the wait is over."""

    key: str
    deadline: float  # time.monotonic()
    pid: int | None = None  # the maker's process on this host, when known
    run: int | None = None  # this run, when the maker is another run of this process


def left_to_maker(
    oid: str, key: str, maker: Maker | None, created_at: str | None, run: int, now: float | None = None
) -> LeftToMaker | None:
    """How long to leave ``oid`` (in no batch yet) to the run that made it, or None to submit
    it now: its maker ended, or made it too long ago to be still going.

    ``maker`` is the ingest state's word (None when only the server knew the object);
    ``created_at`` the object's own time on the server."""
    now = time.monotonic() if now is None else now
    if ACTIVE_RUNS.made_by_another(oid, run):
        return LeftToMaker(key, now + RACE_WINDOW, run=run)
    if ACTIVE_RUNS.made_by_ended(oid):
        return None
    if maker is not None and maker.owner is None:
        return None  # recorded before owners were
    if maker is not None and maker.owner:
        host, _, pid_text = maker.owner.rpartition(":")
        if host == socket.gethostname() and pid_text.isdigit():
            pid = int(pid_text)
            if pid == os.getpid() or not _pid_alive(pid):
                return None
            return LeftToMaker(key, now + RACE_WINDOW, pid=pid)
        created_at = maker.recorded  # another host: only the time tells
    age = _age_seconds(created_at)
    if age is None or age >= UNKNOWN_MAKER_WINDOW:
        return None
    return LeftToMaker(key, now + UNKNOWN_MAKER_WINDOW - max(age, 0.0))


def released(oid: str, wait: LeftToMaker, now: float | None = None) -> bool:
    """The wait for this object's maker is over: past its deadline, or the maker ended."""
    now = time.monotonic() if now is None else now
    if now >= wait.deadline:
        return True
    if wait.pid is not None and not _pid_alive(wait.pid):
        return True
    return wait.run is not None and not ACTIVE_RUNS.made_by_another(oid, wait.run)


def maker_from_row(row: dict[str, Any]) -> Maker:
    return Maker(owner=row.get("owner"), recorded=row.get("updated"))
