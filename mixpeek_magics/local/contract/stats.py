"""What the contract middleware saw: responses checked, fields dropped, violations, refusals.

Every :class:`ContractStats` also adds to the process-wide :data:`TOTALS`, which
the test suite reads at the end of a session.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

MAX_VIOLATIONS = 200
#: a file each server appends JSON lines of what it saw to: what is new after each request
#: (a notebook kernel is killed without notice), when it stops and at exit
REPORT_ENV = "MIXPEEK_LOCAL_CONTRACT_REPORT"
#: a process id whose servers write no lines (the test run's own: it reads TOTALS instead)
REPORT_EXCEPT_PID_ENV = "MIXPEEK_LOCAL_CONTRACT_REPORT_EXCEPT_PID"
_COUNTERS = ("responses_checked", "responses_projected", "requests_accepted", "violations_total", "undeclared_on_wire")
_COUNTED = ("fields_dropped", "requests_refused", "responses_undeclared", "requests_unmatched")


class ContractStats:
    def __init__(self, parent: ContractStats | None = None):
        self._lock = threading.Lock()
        self._parent = parent
        self.responses_checked = 0
        self.responses_projected = 0
        self.requests_accepted = 0
        self.violations_total = 0
        self.undeclared_on_wire = 0  # undeclared fields found in answers after projection
        self.fields_dropped: Counter[str] = Counter()
        self.requests_refused: Counter[str] = Counter()
        self.responses_undeclared: Counter[str] = Counter()  # operations the contract gives no schema
        self.requests_unmatched: Counter[str] = Counter()  # /v1 requests that are no contract operation
        self.violations: list[dict[str, Any]] = []
        self._reported: dict[str, Any] | None = None
        self._report_lock = threading.Lock()
        self.label = ""  # says whose stats a report line holds (a server's data dir)

    # -- recording -------------------------------------------------------------
    def request_accepted(self) -> None:
        with self._lock:
            self.requests_accepted += 1
        if self._parent is not None:
            self._parent.request_accepted()

    def request_refused(self, reasons: list[str]) -> None:
        with self._lock:
            for r in reasons:
                self.requests_refused[r] += 1
        if self._parent is not None:
            self._parent.request_refused(reasons)

    def request_unmatched(self, method: str, path: str) -> None:
        key = f"{method} {path}" if len(self.requests_unmatched) < 100 else "(other)"
        with self._lock:
            self.requests_unmatched[key] += 1
        if self._parent is not None:
            self._parent.request_unmatched(method, path)

    def response(self, checked: bool, dropped: Counter | None, violations: list[dict[str, Any]]) -> None:
        with self._lock:
            self.responses_projected += 1
            if checked:
                self.responses_checked += 1
            if dropped:
                self.fields_dropped.update(dropped)
            if violations:
                self.violations_total += len(violations)
                self.undeclared_on_wire += sum(1 for v in violations if v.get("type") == "extra_forbidden")
                room = MAX_VIOLATIONS - len(self.violations)
                if room > 0:
                    self.violations.extend(violations[:room])
        if self._parent is not None:
            self._parent.response(checked, dropped, violations)

    def response_undeclared(self, operation: str) -> None:
        with self._lock:
            self.responses_undeclared[operation] += 1
        if self._parent is not None:
            self._parent.response_undeclared(operation)

    # -- reading -----------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            d: dict[str, Any] = {k: getattr(self, k) for k in _COUNTERS}
            for k in _COUNTED:
                d[k] = dict(getattr(self, k))
            d["fields_dropped_total"] = sum(self.fields_dropped.values())
            d["requests_refused_total"] = sum(self.requests_refused.values())
            d["violations"] = [dict(v) for v in self.violations]
            return d

    def report(self) -> None:
        """Append what is new since the last report to ``$MIXPEEK_LOCAL_CONTRACT_REPORT``
        as one JSON line, when that names a file (and this process is not excepted)."""
        import os

        path = os.environ.get(REPORT_ENV)
        if not path or os.environ.get(REPORT_EXCEPT_PID_ENV) == str(os.getpid()):
            return
        with self._report_lock:
            now = self.as_dict()
            delta = difference(now, self._reported)
            self._reported = now
            if empty(delta):
                return
            try:
                append_report(path, {"pid": os.getpid(), "server": self.label, **delta})
            except OSError:  # a report is worth less than the request it follows
                pass

    def since(self, before: dict[str, Any] | None) -> dict[str, Any]:
        """What was recorded after the ``as_dict()`` snapshot ``before``."""
        return difference(self.as_dict(), before)


def difference(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """``now`` minus ``before`` (two ``as_dict()`` snapshots of one stats, ``before`` the older)."""
    if not before:
        return now
    out: dict[str, Any] = {k: now[k] - before.get(k, 0) for k in _COUNTERS}
    for k in _COUNTED:
        c = Counter(now[k])
        c.subtract(before.get(k) or {})
        out[k] = {n: v for n, v in c.items() if v > 0}
    out["fields_dropped_total"] = sum(out["fields_dropped"].values())
    out["requests_refused_total"] = sum(out["requests_refused"].values())
    out["violations"] = now["violations"][len(before.get("violations") or []) :]
    return out


def empty(d: dict[str, Any]) -> bool:
    return not (
        d.get("responses_projected")
        or d.get("requests_accepted")
        or d.get("requests_refused")
        or d.get("violations_total")
    )


def merge(into: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    """Add the ``as_dict()`` of one stats to a running sum of them."""
    for k in _COUNTERS:
        into[k] = into.get(k, 0) + int(d.get(k) or 0)
    for k in _COUNTED:
        c = Counter(into.get(k) or {})
        c.update(d.get(k) or {})
        into[k] = dict(c)
    into["fields_dropped_total"] = sum(into["fields_dropped"].values())
    into["requests_refused_total"] = sum(into["requests_refused"].values())
    into["violations"] = ((into.get("violations") or []) + list(d.get("violations") or []))[: 5 * MAX_VIOLATIONS]
    return into


#: everything every server of this process recorded
TOTALS = ContractStats()


def append_report(path: str, line: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` (one write: lines of several processes do not interleave)."""
    import json
    import os

    data = (json.dumps(line, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
