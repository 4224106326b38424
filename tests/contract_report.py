"""Session-wide contract report (loaded by tests/conftest.py).

Every local server started during the run counts what its contract middleware
saw: the servers of this process in ``mixpeek_magics.local.contract.stats.TOTALS``,
the others (notebook kernels started by nbval, CLI servers) as JSON lines in
the file ``$MIXPEEK_LOCAL_CONTRACT_REPORT`` names, which is set here before any
kernel starts so they inherit it. At the end one line sums them up; any answer
that broke its contract schema fails the session.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

import pytest

REPORT_ENV = "MIXPEEK_LOCAL_CONTRACT_REPORT"
EXCEPT_PID_ENV = "MIXPEEK_LOCAL_CONTRACT_REPORT_EXCEPT_PID"
_STATS_MODULE = "mixpeek_magics.local.contract.stats"
_run: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        fd, path = tempfile.mkstemp(prefix="mixpeek-contract-", suffix=".jsonl")
        os.close(fd)
        os.environ[REPORT_ENV] = path
        _run["created"] = path
    _run["path"] = path
    _run["offset"] = os.path.getsize(path) if os.path.exists(path) else 0
    # this process's servers are counted in memory; only other processes write lines
    _run["except_pid"] = os.environ.get(EXCEPT_PID_ENV)
    os.environ[EXCEPT_PID_ENV] = str(os.getpid())
    stats = sys.modules.get(_STATS_MODULE)
    _run["before"] = stats.TOTALS.as_dict() if stats is not None else None


def _collect() -> dict[str, Any]:
    from mixpeek_magics.local.contract import stats

    total: dict[str, Any] = {}
    stats.merge(total, stats.difference(stats.TOTALS.as_dict(), _run.get("before")))
    pids: set[int] = set()
    path = _run.get("path")
    if path and os.path.exists(path):
        with open(path, "rb") as fh:
            fh.seek(_run.get("offset", 0))
            for raw in fh:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("pid") == os.getpid():
                    continue
                pids.add(line.get("pid"))
                stats.merge(total, line)
    total["other_processes"] = len(pids)
    return total


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "path" not in _run:
        return
    try:
        total = _collect()
    finally:
        if _run.get("except_pid") is None:
            os.environ.pop(EXCEPT_PID_ENV, None)
        else:
            os.environ[EXCEPT_PID_ENV] = _run["except_pid"]
        if "created" in _run:
            os.environ.pop(REPORT_ENV, None)
            try:
                os.unlink(_run["created"])
            except OSError:
                pass
    _run["total"] = total
    if (total.get("violations_total") or total.get("undeclared_on_wire")) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def summary_line(t: dict[str, Any]) -> str:
    refused = ", ".join(f"{k} {v}" for k, v in sorted(t.get("requests_refused", {}).items())) or "none"
    return (
        f"contract: {t.get('responses_checked', 0)} responses checked, "
        f"{t.get('undeclared_on_wire', 0)} undeclared fields on the wire, "
        f"{t.get('violations_total', 0)} schema violations, "
        f"{t.get('requests_refused_total', 0)} requests refused ({refused}), "
        f"{t.get('requests_accepted', 0)} accepted, "
        f"{t.get('fields_dropped_total', 0)} fields dropped by the projection, "
        f"{sum(t.get('responses_undeclared', {}).values())} answers without a contract schema, "
        f"{t.get('other_processes', 0)} other processes reporting"
    )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    total = _run.get("total")
    if total is None:
        return
    tr = terminalreporter
    tr.write_sep("-", "contract (vendored v0.82)")
    bad = bool(total.get("violations_total") or total.get("undeclared_on_wire"))
    tr.write_line(summary_line(total), red=bad, green=not bad)
    dropped = sorted(total.get("fields_dropped", {}).items(), key=lambda kv: -kv[1])
    if dropped:
        tr.write_line("  dropped most: " + ", ".join(f"{k} x{v}" for k, v in dropped[:12]))
    if bad:
        seen: set[tuple] = set()
        for v in total.get("violations", []):
            key = (v.get("operation"), v.get("path"), v.get("type"))
            if key in seen:
                continue
            seen.add(key)
            got = f" (got {v['input']!r})" if "input" in v else ""
            tr.write_line(
                f"  VIOLATION {v.get('operation')} -> {v.get('status')} {v.get('schema')} "
                f"{v.get('path')}: {v.get('type')}{got}: {v.get('msg')}",
                red=True,
            )
            if len(seen) >= 30:
                break
        tr.write_line("  the session fails: an answer broke its contract schema", red=True)
