"""Across processes: re-attach from the journal after a "kernel" exits, and a real
kernel running several queued cells at once (as Run All does)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mixpeek_magics.tracking import Journal, attach_unfinished

from .conftest import FAST, set_status

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.tracking import watch, Journal, PollPolicy
    base_url, key, jpath, *ids = sys.argv[1:]
    c = Mixpeek(api_key=key, base_url=base_url)
    h = watch(ids, client=c, block=False, journal=Journal(jpath), policy=PollPolicy(initial=0.05, maximum=0.2),
              context={"cell": 3, "notebook": "ingest.ipynb", "source": "%mixpeek_watch --all"})
    deadline = time.monotonic() + 20
    while len(h.snapshots) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    print("observed", len(h.snapshots), flush=True)
    os._exit(0)   # the kernel dies without saying goodbye
    """
)


def test_reattach_after_a_new_process_starts(server, client, tmp_path):
    running = server.seed_tasks(2, statuses=["PROCESSING"])
    (done,) = server.seed_tasks(1, statuses=["COMPLETED"])
    jpath = tmp_path / "kernels.sqlite3"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, server.base_url, server.api_key, str(jpath), *running, done],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "observed 3" in out.stdout
    j = Journal(jpath)
    assert sorted(j.unfinished(server.base_url)) == sorted(running)
    assert j.unfinished("http://127.0.0.1:1") == []
    first_seen = {r["task_id"]: r["first_seen"] for r in j.tasks()}

    h = attach_unfinished(client, journal=j, policy=FAST)
    assert h is not None and sorted(h.task_ids) == sorted(running)
    for tid in running:
        set_status(server, tid, "COMPLETED")
    final = h.wait(timeout=20)
    assert {s.status for s in final} == {"COMPLETED"}
    for s in final:  # first_seen comes from the journal, i.e. the first kernel
        assert s.first_seen.isoformat(timespec="microseconds") == first_seen[s.task_id]
    rows = {r["task_id"]: r for r in j.tasks()}
    for tid in running:
        assert [t["status"] for t in j.timeline(tid)] == ["PROCESSING", "COMPLETED"]
        assert rows[tid]["context"] == {"cell": 3, "notebook": "ingest.ipynb", "source": "%mixpeek_watch --all"}
        assert rows[tid]["finished"] is not None and rows[tid]["started"] == rows[tid]["first_seen"]
    assert j.unfinished(server.base_url) == []
    assert attach_unfinished(client, journal=j) is None


@pytest.mark.slow
def test_kernel_runs_queued_watch_cells(server, tmp_path):
    import jupyter_client

    ids = server.seed_tasks(3, statuses=["PROCESSING"])
    cells = [
        textwrap.dedent(f"""
            from mixpeek_magics.client import Mixpeek
            from mixpeek_magics.tracking import watch, PollPolicy
            c = Mixpeek(api_key={server.api_key!r}, base_url={server.base_url!r})
            ids = {ids!r}
            policy = PollPolicy(initial=0.05, maximum=0.3)
            print("setup ok")
        """),
        "h = watch(ids, client=c, block=False, policy=policy, context={'cell': 2})\nprint('started', h.status)",
        "h1 = watch(ids[:1], client=c, block=True, policy=policy)\nprint('first', h1.snapshots[0].status)",
        "final = h.wait(timeout=30)\nprint('final', sorted(s.status for s in final))",
    ]
    env = dict(os.environ, MIXPEEK_JOURNAL_PATH=str(tmp_path / "kernel-journal.sqlite3"), PYTHONPATH=str(REPO_ROOT))
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(REPO_ROOT))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        # the tasks finish while the cells are queued / running
        timer = threading.Timer(1.5, lambda: [set_status(server, t, "COMPLETED") for t in ids])
        timer.start()
        msg_ids = [kc.execute(code) for code in cells]  # all at once, like Run All
        replies = {}
        outputs: dict[str, str] = {m: "" for m in msg_ids}
        while len(replies) < len(msg_ids):
            reply = kc.get_shell_msg(timeout=60)
            parent = reply["parent_header"].get("msg_id")
            if parent in outputs:
                replies[parent] = reply["content"]
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=2)
            except Exception:
                break
            parent = msg["parent_header"].get("msg_id")
            if msg["msg_type"] == "stream" and parent in outputs:
                outputs[parent] += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle" and parent == msg_ids[-1]:
                break
        timer.join()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    statuses = [replies[m]["status"] for m in msg_ids]
    assert statuses == ["ok"] * len(cells), [replies[m] for m in msg_ids]
    assert "setup ok" in outputs[msg_ids[0]]
    assert "started running" in outputs[msg_ids[1]]
    assert "first COMPLETED" in outputs[msg_ids[2]]
    assert "final ['COMPLETED', 'COMPLETED', 'COMPLETED']" in outputs[msg_ids[3]]
    rows = Journal(tmp_path / "kernel-journal.sqlite3").tasks()
    assert {r["task_id"] for r in rows} == set(ids) and all(r["last_status"] == "COMPLETED" for r in rows)
