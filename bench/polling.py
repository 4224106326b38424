"""Benchmark: the multiplexed polling engine vs per-task polling, in one run.

Two local servers, each seeded with the same N tasks (PROCESSING) whose
progress and completion a driver thread performs server-side on one schedule:
durations spread evenly between 2 s and 120 s (times ``--scale``), 10 items
each, processed counts moving linearly, ~10 % ending FAILED or
COMPLETED_WITH_ERRORS. The driver notes the server-side time a task became
terminal.

* baseline: one ``tasks.wait`` per task (``GET /v1/tasks/{id}``, the documented
  backoff 1 s -> 30 s, times ``--scale``), all concurrent;
* engine: one ``watch()`` of all tasks (``POST /v1/tasks/list`` ticks, same
  policy times ``--scale``).

Measured: requests per server (its ``request_log``) and the delay between a
task becoming terminal server-side and the watcher reporting it (median, p95;
reported in server seconds, i.e. divided by ``--scale``).

    .venv/bin/python bench/polling.py            # ~2 min at --scale 1
    .venv/bin/python bench/polling.py --scale 0.5 --tasks 200
"""
from __future__ import annotations

import argparse
import asyncio
import random
import re
import shlex
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from mixpeek_magics import _runtime  # noqa: E402
from mixpeek_magics.client import AsyncMixpeek, Mixpeek  # noqa: E402
from mixpeek_magics.local import LocalServer, LocalSettings  # noqa: E402
from mixpeek_magics.tracking import PartialFailureWarning, PollPolicy, watch  # noqa: E402

ITEMS = 10


def plan(n: int, scale: float, seed: int) -> list[tuple[float, str]]:
    """(duration in real seconds, final status) per task, durations spread 2..120 s."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = 2.0 + (118.0 * i / max(1, n - 1))
        r = rng.random()
        final = "FAILED" if r < 0.05 else ("COMPLETED_WITH_ERRORS" if r < 0.10 else "COMPLETED")
        out.append((d * scale, final))
    rng.shuffle(out)
    return out


class Driver(threading.Thread):
    """Moves the seeded tasks of several servers server-side, on one schedule."""

    def __init__(self, servers: list[tuple[LocalServer, list[str]]], schedule: list[tuple[float, str]]):
        super().__init__(daemon=True)
        self.servers = servers
        self.schedule = schedule
        self.finished_at: list[dict[str, float]] = [{} for _ in servers]
        self.t0 = 0.0
        events = []  # (time, index, processed, final or None)
        for i, (dur, final) in enumerate(schedule):
            for k in range(1, ITEMS):
                events.append((dur * k / ITEMS, i, k, None))
            events.append((dur, i, ITEMS, final))
        events.sort(key=lambda e: e[0])
        self.events = events

    def run(self) -> None:
        self.t0 = time.monotonic()
        for at, i, processed, final in self.events:
            delay = self.t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for s, (srv, ids) in enumerate(self.servers):
                tid = ids[i]
                failed = [] if final in (None, "COMPLETED") else [
                    {"object_id": f"obj_{i}", "filename": f"file_{i}.png", "error": "cannot decode image"}]
                ad = {"processed": processed, "total": ITEMS, "percentage": 100.0 * processed / ITEMS,
                      "failed": len(failed), "failed_objects": failed}
                srv.state.update_task(tid, status=final or "PROCESSING", additional_data=ad,
                                      error="synthetic failure" if final == "FAILED" else None)
                if final is not None:
                    self.finished_at[s][tid] = time.monotonic()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def baseline(srv: LocalServer, ids: list[str], scale: float, seen: dict[str, float]) -> None:
    async with AsyncMixpeek(api_key=srv.api_key, base_url=srv.base_url, max_retry_seconds=30) as c:
        async def one(tid: str) -> None:
            await c.tasks.wait(tid, poll=1.0 * scale, poll_max=30.0 * scale)
            seen[tid] = time.monotonic()

        await asyncio.gather(*(one(t) for t in ids))


class Seen:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def on_update(self, snapshots, connection) -> None:
        now = time.monotonic()
        for s in snapshots:
            if s.terminal and s.task_id not in self.at:
                self.at[s.task_id] = now

    def on_finish(self, snapshots) -> None:
        self.on_update(snapshots, "ok")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--scale", type=float, default=1.0, help="time scale of durations and policies")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    scale = args.scale
    schedule = plan(args.tasks, scale, args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        base = LocalServer(data_dir=Path(tmp) / "baseline", port=0, settings=LocalSettings()).start()
        eng = LocalServer(data_dir=Path(tmp) / "engine", port=0, settings=LocalSettings()).start()
        try:
            ids_b = base.state.seed_tasks(args.tasks, statuses=["PROCESSING"])
            ids_e = eng.state.seed_tasks(args.tasks, statuses=["PROCESSING"])
            for srv, ids in ((base, ids_b), (eng, ids_e)):
                for tid in ids:  # start from 0 / 10
                    srv.state.update_task(tid, additional_data={"processed": 0, "total": ITEMS,
                                                                "percentage": 0.0, "failed_objects": []})
            n0_b, n0_e = len(base.request_log), len(eng.request_log)
            driver = Driver([(base, ids_b), (eng, ids_e)], schedule)
            seen_b: dict[str, float] = {}
            seen_e = Seen()
            policy = PollPolicy(initial=1.0 * scale, maximum=30.0 * scale, factor=2.0, jitter=0.1)
            client = Mixpeek(api_key=eng.api_key, base_url=eng.base_url)
            t_start = time.monotonic()
            driver.start()
            fut = _runtime.spawn(baseline(base, ids_b, scale, seen_b))
            handle = watch(client, ids_e, block=False, observers=[seen_e], policy=policy, journal=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PartialFailureWarning)
                handle.wait(raise_on_failure=False)
            fut.result()
            driver.join()
            elapsed = time.monotonic() - t_start
            req_b = len(base.request_log) - n0_b
            req_e = len(eng.request_log) - n0_e
            kinds_e: dict[str, int] = {}
            for method, path in list(eng.request_log)[n0_e:]:
                key = f"{method} {re.sub(r'/task_[0-9a-f]+', '/{id}', path)}"
                kinds_e[key] = kinds_e.get(key, 0) + 1
            fin_b, fin_e = driver.finished_at
            delay_b = [max(0.0, (seen_b[t] - fin_b[t]) / scale) for t in ids_b]
            delay_e = [max(0.0, (seen_e.at[t] - fin_e[t]) / scale) for t in ids_e]
            statuses_ok = sorted(s.status for s in handle.snapshots) == sorted(
                f for _, f in schedule)
            client.close()
        finally:
            base.stop()
            eng.stop()

    med_b, med_e = statistics.median(delay_b), statistics.median(delay_e)
    p95_b, p95_e = pct(delay_b, 0.95), pct(delay_e, 0.95)
    ratio = req_e / req_b
    cmd = "cd /work/main && .venv/bin/python bench/polling.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [
        "## polling",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"{args.tasks} tasks, durations spread 2-120 s (server seconds, run at time scale {scale:g}: "
        f"{elapsed:.0f} s wall), progress moving 10 times per task; policy 1 s -> 30 s backoff, jitter 0.1 "
        f"(times the scale). Delays are server seconds from the task turning terminal server-side to the "
        f"watcher reporting it.",
        "",
        "| | requests | median delay (s) | p95 delay (s) |",
        "|---|---:|---:|---:|",
        f"| baseline: per-task `tasks.wait` (GET each, 1 s -> 30 s) | {req_b} | {med_b:.2f} | {p95_b:.2f} |",
        f"| engine: `watch()` (one `tasks/list` per tick) | {req_e} | {med_e:.2f} | {p95_e:.2f} |",
        "",
        f"- requests engine / baseline: **{ratio:.3f}** (target <= 0.1: {'met' if ratio <= 0.1 else 'NOT met'})",
        f"- median delay engine / baseline: **{med_e / med_b if med_b else float('nan'):.3f}** "
        f"(target <= 1: {'met' if med_e <= med_b else 'NOT met'})",
        f"- p95 delay engine / baseline: {p95_e / p95_b if p95_b else float('nan'):.3f}",
        f"- engine requests by kind: {', '.join(f'{k}: {v}' for k, v in sorted(kinds_e.items()))}",
        f"- final statuses reported correctly by the engine: {statuses_ok}",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section('polling', text, Path(args.results))
    return 0 if (ratio <= 0.1 and med_e <= med_b and statuses_ok) else 1




if __name__ == "__main__":
    sys.exit(main())
