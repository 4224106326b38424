"""Fault injection, restart safety and the command line."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mixpeek_magics.local import LocalServer, LocalSettings
from tests.local.localhelpers import Env, assert_error, client_for, wait_batch, wait_task


@pytest.mark.parametrize("status,field", [(429, "fault_rate_429"), (503, "fault_rate_503")])
def test_injected_faults_happen_before_the_handler(local_server, status, field):
    c = client_for(local_server)
    local_server.update_settings(**{field: 1.0}, retry_after_seconds=7)
    r = c.post("/v1/namespaces", json={"namespace_name": "never", "feature_extractors": []})
    body = assert_error(r, status)
    assert r.headers["Retry-After"] == "7" and body["error"]["details"]["injected"] is True
    assert ("POST", "/v1/namespaces") in local_server.request_log
    local_server.update_settings(**{field: 0.0})
    names = [n["namespace_name"] for n in c.post("/v1/namespaces/list", json={}).json()["results"]]
    assert names == []  # the refused request did nothing


def test_fault_rate_share_and_seed(local_server):
    local_server.update_settings(fault_rate_429=0.3, fault_rate_503=0.2, fault_seed=42, retry_after_seconds=0)
    c = client_for(local_server)
    codes = [c.get("/v1/organizations").status_code for _ in range(150)]
    n429, n503, n200 = codes.count(429), codes.count(503), codes.count(200)
    assert n429 + n503 + n200 == 150
    assert 27 <= n429 <= 63 and 12 <= n503 <= 48, (n429, n503)  # 30% and 20%, within ~3 sigma
    local_server.update_settings(fault_seed=7)
    local_server.update_settings(fault_seed=42)
    again = [c.get("/v1/organizations").status_code for _ in range(150)]
    assert again == codes  # same seed -> same sequence


def test_latency_and_time_scale(local_server):
    c = client_for(local_server)
    local_server.update_settings(latency_ms=300)
    t0 = time.perf_counter()
    assert c.get("/v1/organizations").status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    local_server.update_settings(time_scale=0.01)
    t0 = time.perf_counter()
    c.get("/v1/organizations")
    assert time.perf_counter() - t0 < 0.25


def test_settings_validation_and_env():
    with pytest.raises(ValueError):
        LocalSettings(fault_rate_429=1.5)
    with pytest.raises(ValueError):
        LocalSettings(fault_rate_429=0.6, fault_rate_503=0.6)
    s = LocalSettings.from_env(
        {
            "MIXPEEK_LOCAL_PACE_SECONDS": "0.5",
            "MIXPEEK_LOCAL_FAIL_FILENAMES": "*.bad, x.png",
            "MIXPEEK_LOCAL_WORKERS": "3",
        },
        latency_ms=5,
    )
    assert (s.pace_seconds, s.fail_filenames, s.workers, s.latency_ms) == (0.5, ["*.bad", "x.png"], 3, 5.0)
    with pytest.raises(TypeError):
        LocalSettings().replace(nope=1)


def test_request_log_records_requests(local_server):
    local_server.clear_request_log()
    c = client_for(local_server)
    c.get("/v1/organizations")
    c.post("/v1/tasks/list", json={})
    assert local_server.request_log == [("GET", "/v1/organizations"), ("POST", "/v1/tasks/list")]


def test_restart_keeps_everything(tmp_path, local_server_factory):
    data_dir = tmp_path / "persist"
    srv = local_server_factory(data_dir=data_dir)
    key = srv.api_key
    e = Env(srv)
    obj = e.text_obj("persisted text", "p.txt")
    _, task = e.submit([obj["object_id"]])
    wait_task(e.c, task["task_id"])
    ro = srv.create_api_key(read_only=True)
    other = srv.create_organization("second")
    e.close()
    srv.stop()
    assert not srv.running

    srv2 = local_server_factory(data_dir=data_dir)
    assert srv2.api_key == key and not srv2.key_created
    c = client_for(srv2, namespace="test_ns")
    assert c.get(f"/v1/buckets/{e.bucket_id}/objects/{obj['object_id']}").json()["status"] == "COMPLETED"
    assert c.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "COMPLETED"
    assert c.get(f"/v1/buckets/{e.bucket_id}").json()["object_count"] == 1
    assert client_for(srv2, ro).get("/v1/organizations").status_code == 200
    assert client_for(srv2, other).get("/v1/organizations").json()["organization_name"] == "second"
    # the same LocalServer object can also be started again
    srv2.stop()
    srv2.start()
    assert client_for(srv2).get(f"/v1/tasks/{task['task_id']}").status_code == 200


def test_interrupted_tasks_are_resumed_or_failed(tmp_path, local_server_factory):
    data_dir = tmp_path / "interrupt"
    srv = local_server_factory(data_dir=data_dir, pace_seconds=30)
    e = Env(srv)
    ids = [e.text_obj(f"text {i}", f"t{i}.txt")["object_id"] for i in range(3)]
    b, task = e.submit(ids)
    wait_task(e.c, task["task_id"], until=frozenset({"PROCESSING"}))
    synthetic = srv.seed_tasks(2, statuses=["PENDING", "PROCESSING"])
    e.close()
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 3  # a paced worker does not hold up the stop

    srv2 = local_server_factory(data_dir=data_dir)  # no pace now
    c = client_for(srv2)
    t = wait_task(c, task["task_id"], timeout=10)
    assert t["status"] == "COMPLETED" and t["outputs"] == ids
    # the batch says it was resubmitted after losing its worker, and ends with every object processed
    batch = wait_batch(client_for(srv2, namespace="test_ns"), e.bucket_id, b["batch_id"])
    assert batch["status"] == "COMPLETED" and batch["node_death_resubmit_count"] == 1
    assert batch["failed_object_count"] == 0 and batch["progress"] is None
    for tid in synthetic:  # nothing can resume these: they end FAILED with the reason
        s = c.get(f"/v1/tasks/{tid}").json()
        assert s["status"] == "FAILED" and s["error"] == "interrupted by server restart"


def test_asgi_app_without_http(tmp_path):
    srv = LocalServer(data_dir=tmp_path / "asgi")
    try:
        transport = httpx.ASGITransport(app=srv.app)

        async def go():
            async with httpx.AsyncClient(
                transport=transport, base_url="http://local", headers={"Authorization": f"Bearer {srv.api_key}"}
            ) as c:
                r = await c.post("/v1/namespaces", json={"namespace_name": "asgi", "feature_extractors": []})
                assert r.status_code == 200
                r = await c.post("/v1/namespaces/list", json={})
                return r.json()["total_count"]

        import asyncio

        assert asyncio.run(go()) == 1
        assert ("POST", "/v1/namespaces") in srv.request_log
    finally:
        srv.stop()


def _read_until(proc, pattern: str, timeout: float = 20.0) -> tuple[str, re.Match]:
    out = ""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        out += line
        m = rx.search(out)
        if m:
            return out, m
    raise AssertionError(
        f"pattern {pattern!r} not seen; output so far:\n{out}\nstderr: "
        f"{proc.stderr.read() if proc.poll() is not None else ''}"
    )


def _serve(data_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mixpeek_magics.local",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(Path(__file__).resolve().parents[2]),
    )


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def test_cli_serve_prints_url_and_key(tmp_path):
    data_dir = tmp_path / "cli"
    proc = _serve(data_dir, "--pace", "0.01", "--log-level", "debug")
    try:
        out, m = _read_until(proc, r"API key \((created|existing)[^)]*\): (sk_test_[0-9a-f]+)")
        assert m.group(1) == "created"
        key = m.group(2)
        url = re.search(r"running at (http://127\.0\.0\.1:\d+)", out).group(1)
        assert httpx.get(url + "/v1/health").json()["status"] == "OK"
        assert httpx.get(url + "/v1/organizations", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(url + "/v1/organizations", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
        uploads = re.search(r"Presigned uploads go to (http://127\.0\.0\.1:\d+)", out).group(1)
        assert uploads != url and httpx.put(uploads + "/elsewhere", content=b"x").status_code == 404
    finally:
        rest, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "stopped" in rest
    logs = "\n".join(
        line for line in (rest + err).splitlines() if "API key (" not in line and "MIXPEEK_API_KEY=" not in line
    )  # minus the banner
    assert "GET /v1/organizations" in logs and "rejected invalid API key" in logs  # debug logging was on ...
    assert key[8:] not in logs  # ... and never shows the key after the banner
    # the key persists and is printed again on the next start
    proc = _serve(data_dir)
    try:
        out, m = _read_until(proc, r"API key \((created|existing)[^)]*\): (sk_test_[0-9a-f]+)")
        assert m.group(1) == "existing" and m.group(2) == key
        assert f"Presigned uploads go to {uploads}" in out  # the data dir's upload port again
    finally:
        _stop(proc)
    with socket.socket() as s:  # --upload-port picks one
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    proc = _serve(data_dir, "--upload-port", str(free))
    try:
        out, _m = _read_until(proc, r"API key \((created|existing)[^)]*\): (sk_test_[0-9a-f]+)")
        assert f"Presigned uploads go to http://127.0.0.1:{free}" in out
    finally:
        _stop(proc)
    # the sqlite file holds only hashes of keys
    db = (data_dir / "local-server.sqlite3").read_bytes()
    assert key.encode() not in db


def test_cli_create_key_and_org(tmp_path):
    data_dir = tmp_path / "cli2"
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "mixpeek_magics.local", *a, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    r = run("create-org", "acme")
    assert r.returncode == 0, r.stderr
    acme_key = r.stdout.strip().splitlines()[-1]
    assert acme_key.startswith("sk_test_")
    r = run("create-key", "--org", "acme", "--read-only")
    assert r.returncode == 0 and r.stdout.strip().startswith("sk_test_")
    ro_key = r.stdout.strip()
    r = run("create-key", "--org", "nope")
    assert r.returncode == 1 and "unknown organization" in r.stderr
    srv = LocalServer(data_dir=data_dir).start()
    try:
        org = client_for(srv, acme_key).get("/v1/organizations").json()
        assert org["organization_name"] == "acme"
        assert client_for(srv, ro_key).get("/v1/organizations").json()["organization_id"] == org["organization_id"]
        assert_error(client_for(srv, ro_key).patch("/v1/organizations", json={"organization_name": "x"}), 403)
    finally:
        srv.stop()


def test_sequential_requests_pay_no_delayed_ack(local_server):
    # Without TCP_NODELAY on accepted sockets, Nagle + delayed ACKs add ~40 ms to every answer on loopback.
    c = client_for(local_server)
    c.get("/v1/organizations")
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        assert c.get("/v1/organizations").status_code == 200
        times.append(time.perf_counter() - t0)
    assert sorted(times)[len(times) // 2] < 0.025, times
