"""kill -9 of the ingesting process after its first chunk was confirmed, then a re-run: every file is
one object, each object goes into exactly one batch (nothing uploaded or processed twice)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.ingest.parser import parse_body
    from mixpeek_magics.ingest.plan import build_plan
    from mixpeek_magics.ingest.runner import IngestState, resolve_bucket, run_plan

    url, key, folder, state_path = sys.argv[1:]
    c = Mixpeek(api_key=key, base_url=url).with_options(namespace="resume")
    plan = build_plan(parse_body(folder + "/*.txt"))
    bucket = resolve_bucket(c, "files", create=True, plan=plan)
    res = run_plan(c, plan, bucket, state=IngestState(state_path), concurrency=2)
    print("DONE", len(res.items), flush=True)
""")


def _confirmed(state_path: Path) -> int:
    if not state_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_mid_ingest_then_rerun_resumes_without_duplicates(local_server, tmp_path, held):
    n = 250  # three chunks of at most 100
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i:03d}.txt").write_text(f"file {i}\n")
    h = {"Authorization": f"Bearer {local_server.api_key}"}
    ns = httpx.post(local_server.base_url + "/v1/namespaces", json={"namespace_name": "resume"}, headers=h).json()
    state_path = tmp_path / "ingest-state.sqlite3"
    args = [sys.executable, "-c", SCRIPT, local_server.base_url, local_server.api_key, str(folder), str(state_path)]
    local_server.update_settings(upload_latency_ms=60)  # slow PUTs: the kill lands mid-run
    proc = subprocess.Popen(args, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _confirmed(state_path) < 100 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    at_kill = _confirmed(state_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    killed_mid_run = proc.returncode == -signal.SIGKILL and 100 <= at_kill < n
    local_server.update_settings(upload_latency_ms=0)
    rerun = subprocess.run(args, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=120, check=False)
    with httpx.Client(
        base_url=local_server.base_url, headers={**h, "X-Namespace": ns["namespace_id"]}, timeout=30
    ) as c:
        bid = c.post("/v1/buckets/list", json={}).json()["results"][0]["bucket_id"]
        objects: list[dict] = []
        while True:  # paged: the API answers at most 100 per page
            page = c.post(
                f"/v1/buckets/{bid}/objects/list", params={"limit": 100, "offset": len(objects)}, json={}
            ).json()["results"]
            if not page:
                break
            objects += page
        batches = c.post(f"/v1/buckets/{bid}/batches/list", json={}).json()["results"]
        in_batches = [
            o for b in batches for o in c.get(f"/v1/buckets/{bid}/batches/{b['batch_id']}").json()["object_ids"]
        ]
    ids = sorted(o["object_id"] for o in objects)
    held(
        "kill -9 the ingesting process after a confirmed chunk, then re-run",
        "re-run completes; one object per file; each object in one batch",
        killed_mid_run
        and rerun.returncode == 0
        and "DONE" in rerun.stdout
        and len(ids) == n
        and sorted(in_batches) == ids,
        f"killed at {at_kill} confirmed, {len(ids)} objects, {len(in_batches)} batch entries, "
        f"{len(batches)} batch(es); {rerun.stderr[-300:]}",
    )


def _uploads(c: httpx.Client, bid: str) -> list[dict]:
    out: list[dict] = []
    while True:
        page = c.post(f"/v1/buckets/{bid}/uploads/list", json={"limit": 100, "offset": len(out)}).json()["results"]
        if not page:
            return out
        out += page


def test_sigint_mid_upload_leaves_no_pending_upload(local_server, tmp_path, held):
    n = 120
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(n):
        (folder / f"g{i:03d}.txt").write_text(f"interrupted {i}\n")
    h = {"Authorization": f"Bearer {local_server.api_key}"}
    ns = httpx.post(local_server.base_url + "/v1/namespaces", json={"namespace_name": "resume"}, headers=h).json()
    local_server.update_settings(upload_latency_ms=300)  # PUTs in flight when the interrupt comes
    args = [
        sys.executable,
        "-c",
        SCRIPT,
        local_server.base_url,
        local_server.api_key,
        str(folder),
        str(tmp_path / "state.sqlite3"),
    ]
    proc = subprocess.Popen(args, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with httpx.Client(
        base_url=local_server.base_url, headers={**h, "X-Namespace": ns["namespace_id"]}, timeout=30
    ) as c:
        pending_seen = 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            buckets = c.post("/v1/buckets/list", json={}).json()["results"]
            if buckets:
                pending_seen = sum(u["status"] == "PENDING" for u in _uploads(c, buckets[0]["bucket_id"]))
                if pending_seen:
                    break
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        bid = c.post("/v1/buckets/list", json={}).json()["results"][0]["bucket_id"]
        left = [u["upload_id"] for u in _uploads(c, bid) if u["status"] == "PENDING"]
    held(
        "SIGINT while uploads are pending",
        "the run stops; no PENDING upload is left on the server",
        pending_seen > 0 and proc.returncode != 0 and "DONE" not in out and not left,
        f"{pending_seen} pending at the interrupt, {len(left)} left; {err.strip().splitlines()[-1:]}",
    )
