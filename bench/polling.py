"""Benchmark: the multiplexed polling engine vs per-task polling, in one run.

Two local servers, each with the same N batch tasks (PROCESSING; a batch of
10 objects behind each, submitted with the server's worker stopped) whose
progress and completion a driver thread performs server-side on one schedule:
durations spread evenly between 2 s and 120 s (times ``--scale``), the batch's
``progress`` moving linearly 10 times, ~10 % ending FAILED or
COMPLETED_WITH_ERRORS with failed objects. The driver notes the server-side
time a task became terminal.

* baseline: one ``tasks.wait`` per task (``GET /v1/tasks/{id}``, the documented
  backoff 1 s -> 30 s, times ``--scale``), all concurrent;
* engine: one ``watch()`` of all tasks (``POST /v1/tasks/list`` ticks, same
  policy times ``--scale``), reading the running batches' progress (``POST
  /v1/batches/list``, at most every 10 s times ``--scale``) and the failed
  objects of each batch that ended with errors (one ``GET``).

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
from mixpeek_magics.local import LocalServer, LocalSettings, services  # noqa: E402
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
    """Moves the batches (and their tasks) of several servers server-side, on one schedule."""

    def __init__(
        self, servers: list[tuple[LocalServer, list[tuple[str, str, list[str]]]]], schedule: list[tuple[float, str]]
    ):
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
            for s, (srv, batches) in enumerate(self.servers):
                tid, batch_id, object_ids = batches[i]
                state = srv.state
                if final is None:
                    progress = services.progress_dict(processed, ITEMS, 0, None, max(0.001, at))
                    services.batch_progress(state, batch_id, tid, progress, [])
                    continue
                failed = (
                    []
                    if final == "COMPLETED"
                    else [
                        {
                            "object_id": oid,
                            "error": "cannot decode image",
                            "error_type": "runtime",
                            "timestamp": state.iso_now(),
                        }
                        for oid in (object_ids if final == "FAILED" else object_ids[:1])
                    ]
                )
                error = "synthetic failure" if final == "FAILED" else None
                services.finish_batch(state, batch_id, tid, final, failed, [], error)
                state.update_task(tid, status=final, error=error)
                self.finished_at[s][tid] = time.monotonic()


def setup(srv: LocalServer, n: int) -> list[tuple[str, str, list[str]]]:
    """N batches of ITEMS text objects, submitted and started (PROCESSING, progress 0 / ITEMS)
    with the worker stopped, so only the driver moves them: (task id, batch id, object ids) each."""
    srv.state.worker.stop()
    out = []
    with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
        ns = c.namespaces.create("bench-polling", [{"feature_extractor_name": "text_extractor", "version": "v1"}])
        c = c.with_options(namespace=ns.namespace_id)
        bucket = c.buckets.create("bench", {"properties": {"content": {"type": "text"}}}).bucket_id
        ids: list[str] = []
        for start in range(0, n * ITEMS, 100):
            bodies = [
                {"blobs": [{"property": "content", "type": "text", "data": f"item {k}"}]}
                for k in range(start, min(start + 100, n * ITEMS))
            ]
            ids.extend(o.object_id for o in c.objects.create_many(bucket, bodies).succeeded)
        for i in range(n):
            mine = ids[i * ITEMS : (i + 1) * ITEMS]
            batch_id = c.batches.create(bucket, mine).batch_id
            tid = c.batches.submit(bucket, batch_id).task_id
            srv.state.update_task(tid, status="PROCESSING")
            services.batch_started(srv.state, batch_id, tid, ITEMS)
            out.append((tid, batch_id, mine))
    return out


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
            batches_b, batches_e = setup(base, args.tasks), setup(eng, args.tasks)
            ids_b, ids_e = [t for t, _, _ in batches_b], [t for t, _, _ in batches_e]
            n0_b, n0_e = len(base.request_log), len(eng.request_log)
            driver = Driver([(base, batches_b), (eng, batches_e)], schedule)
            seen_b: dict[str, float] = {}
            seen_e = Seen()
            policy = PollPolicy(
                initial=1.0 * scale, maximum=30.0 * scale, factor=2.0, jitter=0.1, progress_interval=10.0 * scale
            )
            client = Mixpeek(api_key=eng.api_key, base_url=eng.base_url)
            t_start = time.monotonic()
            driver.start()
            fut = _runtime.spawn(baseline(base, ids_b, scale, seen_b))
            handle = watch(ids_e, client=client, block=False, observers=[seen_e], policy=policy, journal=None)
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
                shape = re.sub(r"/(task|btch|bkt)_[0-9a-f]+", lambda m: "/{" + m.group(1) + "}", path)
                key = f"{method} {shape}"
                kinds_e[key] = kinds_e.get(key, 0) + 1
            fin_b, fin_e = driver.finished_at
            delay_b = [max(0.0, (seen_b[t] - fin_b[t]) / scale) for t in ids_b]
            delay_e = [max(0.0, (seen_e.at[t] - fin_e[t]) / scale) for t in ids_e]
            statuses_ok = sorted(s.status for s in handle.snapshots) == sorted(f for _, f in schedule)
            by_task = {s.task_id: s for s in handle.snapshots}
            counts_ok = all(
                by_task[t].processed == by_task[t].total == ITEMS
                for t, (_, final) in zip(ids_e, schedule)
                if final != "FAILED"
            )
            failed_ok = all(
                len(by_task[t].failed_items) == (ITEMS if final == "FAILED" else 1)
                for t, (_, final) in zip(ids_e, schedule)
                if final != "COMPLETED"
            )
            client.close()
        finally:
            base.stop()
            eng.stop()

    med_b, med_e = statistics.median(delay_b), statistics.median(delay_e)
    p95_b, p95_e = pct(delay_b, 0.95), pct(delay_e, 0.95)
    ratio = req_e / req_b
    cmd = "cd /work/main && .venv/bin/python bench/polling.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    lines = [
        "## polling",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"{args.tasks} batch tasks, durations spread 2-120 s (server seconds, run at time scale {scale:g}: "
        f"{elapsed:.0f} s wall), each batch's progress moving 10 times; policy 1 s -> 30 s backoff, jitter 0.1, "
        f"batch progress read at most every 10 s (times the scale). Delays are server seconds from the task "
        f"turning terminal server-side to the watcher reporting it.",
        "",
        "| | requests | median delay (s) | p95 delay (s) |",
        "|---|---:|---:|---:|",
        f"| baseline: per-task `tasks.wait` (GET each, 1 s -> 30 s) | {req_b} | {med_b:.2f} | {p95_b:.2f} |",
        f"| engine: `watch()` (one `tasks/list` per tick, running batches listed, ended-with-errors batches read) "
        f"| {req_e} | {med_e:.2f} | {p95_e:.2f} |",
        "",
        f"- requests engine / baseline: **{ratio:.3f}** (target <= 0.1: {'met' if ratio <= 0.1 else 'NOT met'})",
        f"- median delay engine / baseline: **{med_e / med_b if med_b else float('nan'):.3f}** "
        f"(target <= 1: {'met' if med_e <= med_b else 'NOT met'})",
        f"- p95 delay engine / baseline: {p95_e / p95_b if p95_b else float('nan'):.3f}",
        f"- engine requests by kind: {', '.join(f'{k}: {v}' for k, v in sorted(kinds_e.items()))}",
        f"- final statuses reported correctly by the engine: {statuses_ok}; final counts processed == total: "
        f"{counts_ok}; failed items listed: {failed_ok}",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("polling", text, Path(args.results))
    return 0 if (ratio <= 0.1 and med_e <= med_b and statuses_ok and counts_ok and failed_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
