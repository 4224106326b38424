"""Two kernels at once: both ingest the same folder into one bucket (--create-bucket) at the same
time, as on two machines (an ingest state each) and on one (a shared ingest state). Both cells must
succeed (no 409), each file must become one object, and each object must go into one batch: the
contract's batch deduplication leaves out only objects that already have documents, so an object in
two batches submitted at once would be processed twice."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
from jupyter_client.manager import start_new_kernel

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(kc, code: str, out: list[str], timeout: float = 120) -> dict:
    def hook(msg):
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(c["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(c["traceback"]))

    return kc.execute_interactive(code, timeout=timeout, output_hook=hook)["content"]


@pytest.fixture(scope="module", params=["two machines", "one machine"])
def twin_run(request, tmp_path_factory):
    """Both kernels' cells run once; the tests below read what they left on the server."""
    from mixpeek_magics.local import LocalServer

    tmp_path = tmp_path_factory.mktemp("twins")
    local_server = LocalServer(data_dir=tmp_path / "server", port=0).start()
    try:
        yield {**_twin_run(local_server, tmp_path, shared_state=request.param == "one machine"), "where": request.param}
    finally:
        local_server.stop()


def _twin_run(local_server, tmp_path, shared_state: bool) -> dict:
    local_server.update_settings(latency_ms=20)  # widens the window where both kernels overlap
    files = tmp_path / "shared"
    files.mkdir()
    n = 12
    for i in range(n):
        (files / f"doc{i:02d}.txt").write_text(f"shared document {i}\n")
    kernels = []
    try:
        for k in range(2):
            # two machines: a data dir each, so only the server knows who made an object (and when)
            env = {
                **os.environ,
                "MIXPEEK_API_KEY": local_server.api_key,
                "MIXPEEK_MAGICS_DATA_DIR": str(tmp_path / ("data" if shared_state else f"data{k}")),
                "MIXPEEK_JOURNAL_PATH": str(tmp_path / f"journal{k}.sqlite3"),
            }
            env.pop("CI", None)
            km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
            kernels.append((km, kc))
        for _km, kc in kernels:
            out: list[str] = []
            r = _run(
                kc,
                "%load_ext mixpeek_magics\n"
                f"%mixpeek_auth --base-url {local_server.base_url} --namespace twins --create-namespace",
                out,
            )
            assert r["status"] == "ok", out
        barrier = threading.Barrier(2)
        results: list[tuple[dict, list[str]]] = [None, None]  # type: ignore[list-item]

        def ingest(i: int) -> None:
            out: list[str] = []
            barrier.wait()
            results[i] = (
                _run(
                    kernels[i][1],
                    textwrap.dedent(f"""\
                %%ingest --bucket twins-bucket --create-bucket --strict -o res
                {files}/*.txt
            """),
                    out,
                ),
                out,
            )

        threads = [threading.Thread(target=ingest, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        both_ok = all(r is not None and r[0]["status"] == "ok" for r in results)
        cells = "" if both_ok else "; ".join(("".join(r[1])[-400:] if r else "hung") for r in results)
    finally:
        for km, kc in kernels:
            kc.stop_channels()
            km.shutdown_kernel(now=True)

    h = {"Authorization": f"Bearer {local_server.api_key}"}
    with httpx.Client(base_url=local_server.base_url, headers=h, timeout=30) as c:
        ns = next(x for x in c.post("/v1/namespaces/list", json={}).json()["results"] if x["namespace_name"] == "twins")
        c.headers["X-Namespace"] = ns["namespace_id"]
        buckets = c.post("/v1/buckets/list", json={}).json()["results"]
        assert [b["bucket_name"] for b in buckets] == ["twins-bucket"]
        bid = buckets[0]["bucket_id"]
        objects = c.post(f"/v1/buckets/{bid}/objects/list", json={"limit": 100}).json()["results"]
        batches = [
            c.get(f"/v1/buckets/{bid}/batches/{b['batch_id']}").json()
            for b in c.post(f"/v1/buckets/{bid}/batches/list", json={}).json()["results"]
        ]
    return {
        "n": n,
        "both_ok": both_ok,
        "cells": cells,
        "objects": objects,
        "batches": batches,
        # what each batch was given, and what it processed (a submit leaves out what another batch took)
        "in_batches": [oid for b in batches for oid in b["object_ids"]],
        "processed": [oid for b in batches for oid in b["loaded_object_ids"] or []],
    }


def test_two_kernels_both_succeed_with_one_object_per_file(twin_run, held):
    where = twin_run["where"]
    held(
        f"two kernels run %%ingest --create-bucket of one folder at once ({where})",
        "both cells succeed (no 409)",
        twin_run["both_ok"],
        twin_run["cells"],
    )
    held(
        f"two kernels ingest the same 12 files ({where})",
        "each file is one object in the bucket",
        len(twin_run["objects"]) == twin_run["n"],
        f"{len(twin_run['objects'])} objects",
    )


def test_two_kernels_submit_and_process_each_object_once(twin_run, held):
    objects = twin_run["objects"]
    ids = sorted(o["object_id"] for o in objects)
    held(
        f"two kernels ingest the same 12 files ({twin_run['where']})",
        "each object submitted in one batch, processed once, COMPLETED",
        sorted(twin_run["in_batches"]) == ids
        and sorted(twin_run["processed"]) == ids
        and all(o["status"] == "COMPLETED" for o in objects),
        f"{len(twin_run['processed'])} processed, {len(twin_run['in_batches'])} submitted, "
        f"{len(twin_run['batches'])} batches",
    )
