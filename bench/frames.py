"""Benchmark: the task history frame vs a bare ``pd.DataFrame(records)``, in one run.

1. A local server is seeded with ``--tasks`` (100,000) tasks; the client fetches
   them all (``tasks.iter``, ``limit=1000``); the server's ``request_log``
   counts the ``POST /v1/tasks/list`` pages (target: 100 pages of 1,000).
2. A journal in a temp dir gets ``--journaled`` of those tasks (first_seen /
   started / finished), so the join has real work to do.
3. On the same fetched records (the JSON dicts of the tasks), rounds alternate
   ``pd.DataFrame(records)`` (baseline) and ``build_task_frame(records, index)``
   (every column, dtypes, journal join). Ratio of the best times (and of the
   medians); target <= 1.5x. Also: building from the ``Task`` models directly,
   reading the journal, and one ``task_history()`` end to end.
4. Extension import cost in fresh processes: ``python -c pass``, a bare
   IPython ``InteractiveShell``, and the same shell after
   ``%load_ext mixpeek_magics`` (target: < 150 ms more than the bare shell).
   When the magics module does not exist yet, ``import mixpeek_magics`` is
   measured instead and that is said.

    .venv/bin/python bench/frames.py                  # ~1-2 min
    .venv/bin/python bench/frames.py --tasks 20000 --rounds 5 --no-write
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from bench._results import write_section  # noqa: E402
from mixpeek_magics.client import Mixpeek  # noqa: E402
from mixpeek_magics.frames import build_task_frame, task_history  # noqa: E402
from mixpeek_magics.frames._journal import journal_index  # noqa: E402
from mixpeek_magics.local import LocalServer  # noqa: E402
from mixpeek_magics.tracking import Journal  # noqa: E402
from mixpeek_magics.tracking.snapshot import TaskSnapshot  # noqa: E402

COMMAND = ".venv/bin/python bench/frames.py"


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def cpu_timed(fn, *args):
    """(wall seconds, CPU seconds of this thread, result): the CPU time is what
    the ratio uses, since other processes on a shared machine inflate wall time."""
    w0, c0 = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return time.perf_counter() - w0, time.thread_time() - c0, out


def fill_journal(journal: Journal, ids: list[str], base_url: str) -> None:
    """first_seen, started, finished for each id (3 transitions), in chunks."""
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    chunk = 5000
    for k in range(0, len(ids), chunk):
        items = []
        for i, tid in enumerate(ids[k : k + chunk], start=k):
            first = t0 + timedelta(milliseconds=50 * i)
            for status, offset in (("PENDING", 0), ("PROCESSING", 0.5), ("COMPLETED", 3.0 + (i % 7))):
                items.append(
                    (
                        TaskSnapshot(tid, status, first_seen=first, observed_at=first + timedelta(seconds=offset)),
                        {},
                        False,
                    )
                )
        journal.record_many(items, {"notebook": "bench.ipynb", "cell": 1, "source": "%ingest"}, base_url=base_url)


def process_time(code: str, runs: int) -> list[tuple[float, float]]:
    """(wall, CPU user+sys) of fresh ``python -c code`` processes."""
    import resource

    out = []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.append((wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)))
    return out


def import_costs(runs: int) -> tuple[dict[str, list[tuple[float, float]]], str]:
    shell = "from IPython.core.interactiveshell import InteractiveShell\nsh = InteractiveShell.instance()\n"
    load = shell + (
        "sh.run_line_magic('load_ext', 'mixpeek_magics')\nassert 'mixpeek_magics' in sh.extension_manager.loaded\n"
    )
    probe = subprocess.run([sys.executable, "-c", load], cwd=ROOT, capture_output=True, text=True)
    codes = {"python -c pass": "pass", "InteractiveShell": shell}
    if probe.returncode == 0:
        codes["InteractiveShell + %load_ext mixpeek_magics"] = load
        note = "%load_ext mixpeek_magics measured in a real InteractiveShell"
    else:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        codes["InteractiveShell + import mixpeek_magics"] = shell + "import mixpeek_magics\n"
        note = f"%load_ext mixpeek_magics failed in this run ({last}); measured `import mixpeek_magics` instead"
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in codes}
    for _ in range(runs):  # interleaved, so load changes hit every variant alike
        for name, code in codes.items():
            results[name] += process_time(code, 1)
    return results, note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--journaled", type=int, default=None, help="tasks in the journal (default: all)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--import-runs", type=int, default=9)
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    n_journal = args.tasks if args.journaled is None else min(args.journaled, args.tasks)
    wall0 = time.perf_counter()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        srv = LocalServer(data_dir=Path(tmp) / "server", port=0).start()
        try:
            t_seed, ids = timed(srv.seed_tasks, args.tasks)
            client = Mixpeek(api_key=srv.api_key, base_url=srv.base_url)
            srv.clear_request_log()
            t_fetch, models = timed(lambda: list(client.tasks.iter(limit=1000)))
            pages = sum(1 for r in srv.request_log if r == ("POST", "/v1/tasks/list"))
            records = [m.model_dump(mode="json") for m in models]

            journal = Journal(Path(tmp) / "journal.sqlite3")
            t_fill, _ = timed(fill_journal, journal, ids[:n_journal], srv.base_url)
            t_jread, index = timed(journal_index, journal, srv.base_url)

            bare, built, from_models, no_journal = [], [], [], []
            for _ in range(args.rounds):
                gc.collect()
                bare.append(cpu_timed(pd.DataFrame, records)[:2])
                gc.collect()
                wall, cpu, frame = cpu_timed(build_task_frame, records, index)
                built.append((wall, cpu))
                gc.collect()
                from_models.append(cpu_timed(build_task_frame, models, index)[:2])
                gc.collect()
                no_journal.append(cpu_timed(build_task_frame, records)[:2])
            assert len(frame) == args.tasks and frame["first_seen"].notna().sum() == n_journal

            srv.clear_request_log()
            t_hist, hist = timed(lambda: task_history(client, journal=journal))
            assert len(hist) == args.tasks
            client.close()
        finally:
            srv.stop()

    imports, import_note = import_costs(args.import_runs)

    def wall_total() -> float:
        return time.perf_counter() - wall0

    def stats(pairs):
        walls, cpus = [p[0] for p in pairs], [p[1] for p in pairs]
        return min(cpus), statistics.median(cpus), min(walls), statistics.median(walls)

    b, f, m = stats(bare), stats(built), stats(from_models)

    say("## frames")
    say()
    say(
        f"Command: `{COMMAND}` (tasks={args.tasks}, journaled={n_journal}, rounds={args.rounds}, "
        f"import runs={args.import_runs}); measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"on the shared 2-core dev machine (load average at the end: {_load()})."
    )
    say()
    say(
        "CPU time (`time.thread_time()`, min of the rounds) is the headline because other jobs share the "
        "machine and inflate wall time; wall times are shown too."
    )
    say()
    say("| step | value |")
    say("|---|---|")
    say(f"| seed {args.tasks:,} tasks (server) | {t_seed:.2f} s |")
    say(
        f"| fetch all with `client.tasks.iter(limit=1000)` | {t_fetch:.2f} s, **{pages} list requests** "
        f"(target {-(-args.tasks // 1000)}) |"
    )
    say(
        f"| baseline `pd.DataFrame(records)` | CPU best {b[0] * 1000:.1f} ms (median {b[1] * 1000:.1f}); "
        f"wall best {b[2] * 1000:.1f} ms (median {b[3] * 1000:.1f}) |"
    )
    say(
        f"| `build_task_frame(records, journal)` | CPU best {f[0] * 1000:.1f} ms (median {f[1] * 1000:.1f}); "
        f"wall best {f[2] * 1000:.1f} ms (median {f[3] * 1000:.1f}) |"
    )
    say(
        f"| **ratio frame / bare** (target <= 1.5x) | **{f[0] / b[0]:.2f}x** CPU best, {f[1] / b[1]:.2f}x CPU median; "
        f"wall {f[2] / b[2]:.2f}x best, {f[3] / b[3]:.2f}x median |"
    )
    nj = stats(no_journal)
    say(
        f"| same records, no journal data (times all NaT) | CPU best {nj[0] * 1000:.1f} ms (**{nj[0] / b[0]:.2f}x**), "
        f"median {nj[1] * 1000:.1f} ms ({nj[1] / b[1]:.2f}x) |"
    )
    say(
        f"| same, built from the `Task` models | CPU best {m[0] * 1000:.1f} ms (**{m[0] / b[0]:.2f}x**), "
        f"median {m[1] * 1000:.1f} ms ({m[1] / b[1]:.2f}x) |"
    )
    say(f"| journal: write {n_journal:,} timelines (3 transitions each) | {t_fill:.2f} s |")
    say(f"| journal: read + index for the join (`Journal.tasks()` + parse) | {t_jread * 1000:.0f} ms |")
    say(f"| `task_history(client)` end to end (fetch + journal + frame), wall | {t_hist:.2f} s |")
    base = imports["InteractiveShell"]
    base_cpu = statistics.median(c for _, c in base)
    base_wall = statistics.median(w for w, _ in base)
    for name, runs in imports.items():
        cpu = statistics.median(c for _, c in runs)
        wall = statistics.median(w for w, _ in runs)
        extra = (
            ""
            if name in ("python -c pass", "InteractiveShell")
            else (
                f" -> **+{(cpu - base_cpu) * 1000:.0f} ms CPU** (+{(wall - base_wall) * 1000:.0f} ms wall) "
                "over the bare shell (target < 150 ms)"
            )
        )
        say(f"| fresh process: {name} | median CPU {cpu * 1000:.0f} ms, wall {wall * 1000:.0f} ms{extra} |")
    say(f"| total wall time of this run | {wall_total():.1f} s |")
    say()
    say(f"Import note: {import_note}.")
    say(
        "Baseline and frame are timed alternately on the same records (the JSON dicts the API returned); "
        "the frame's time includes every column's dtype (str, lifecycle Categorical, Int64/Float64, "
        "tz-aware datetimes) and the journal join; the journal read is reported on its own line."
    )

    if not args.no_write:
        write_section("frames", "\n".join(lines), Path(args.results))
        print(f"\nwritten to {args.results}")
    return 0


def _load() -> str:
    try:
        import os

        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
