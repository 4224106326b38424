"""Benchmark: what users run, at the latency they have.

Run:  .venv/bin/python bench/upload.py [--files 400] [--latencies 0,20,80] [--schemes https]
      [--rounds 3] [--sdk-files 100] [--many 10000] [--big-gb 1] [--write-results]

For each scheme and latency, one local server in a process of its own on
127.0.0.1, with that latency added to every API call and to every presigned
PUT (an S3-like round trip), its presigned URLs https with a test certificate
(trusted through SSL_CERT_FILE, verification on), and side by side:

* ``%%ingest --no-wait`` of a folder, timed around the cell, in a real IPython
  kernel from this venv (jupyter_client) after ``%load_ext mixpeek_magics`` and
  ``%mixpeek_auth`` (its CPU is the kernel process's);
* ``bulk_upload`` of the same files called directly in this process (it
  submits the batch too, as ``%%ingest`` does);
* the official SDK's per-file flow (PyPI ``mixpeek``: its client for create and
  confirm, urllib3 for the PUT), on a subset at high latency (per-file rates compared).

Then ``--many`` small files through ``%%ingest`` (the kernel's peak RSS growth
and the ``--dry-run`` plan's time), and one 1 GB file through ``bulk_upload``
in a fresh process (its peak RSS growth).

Before each comparison it waits (at most ``--settle-max`` seconds) until creating
a file in the server's uploads folder is cheap again: on an ext4 without a journal
(this dev VM's root), for minutes after thousands of files were deleted each
create costs 0.3-0.9 ms instead of 0.02 ms. The probe's costs are printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from mixpeek_magics._mime import guess_mime  # noqa: E402
from mixpeek_magics.client import Mixpeek  # noqa: E402
from mixpeek_magics.ingest import bulk_upload  # noqa: E402
from mixpeek_magics.ingest.defaults import DEFAULT_CONCURRENCY  # noqa: E402

SCHEMA = {"properties": {"file": {"type": "text"}}}
WARMUP_FILES = 20
SETTLED_CREATE_US = 40.0  # median cost of creating an empty file once the filesystem is quiet: 15-26 us here


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def start_server(
    data_dir: Path, latency_ms: float = 0.0, tls: bool = False
) -> tuple[subprocess.Popen, str, str, str | None]:
    """The local server in a process of its own: ``latency_ms`` added to every API
    call and every presigned PUT (an S3-like round trip); ``tls``: presigned URLs
    are https, with a test certificate whose CA file is returned."""
    cmd = [
        sys.executable,
        "-m",
        "mixpeek_magics.local",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--latency-ms",
        str(latency_ms),
        "--upload-latency-ms",
        str(latency_ms),
        "--log-level",
        "warning",
    ]
    if tls:
        cmd.append("--upload-tls")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    url = key = ca = None
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline and (url is None or key is None):
        line = proc.stdout.readline()
        if not line:
            break
        url = url or (m.group(0) if (m := re.search(r"http://127\.0\.0\.1:\d+", line)) else None)
        key = key or (m.group(0) if (m := re.search(r"sk_test_[A-Za-z0-9_]+", line)) else None)
        ca = ca or (m.group(1) if (m := re.search(r"SSL_CERT_FILE=(\S+)", line)) else None)
    if url is None or key is None or (tls and ca is None):
        proc.kill()
        raise RuntimeError("the local server did not print its URL and key")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain its logs
    return proc, url, key, ca


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_files(folder: Path, n: int, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        size = rng.randint(1024, 100 * 1024)
        p = folder / f"file-{i:04d}.bin"
        p.write_bytes(os.urandom(size))
        paths.append(p)
    return paths


def create_cost_us(folder: Path, n: int = 64) -> float:
    """Median microseconds to create (and close) an empty file in ``folder``: the
    server's uploads folder, since the kernel's cost depends on the folder's block
    group. The files stay until the run's temp dir goes: deleting them would add
    to what is being measured."""
    tag = f"{time.monotonic_ns():x}"
    costs = []
    for i in range(n):
        t0 = time.perf_counter()
        fd = os.open(folder / f"bench-create-probe-{tag}-{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        costs.append(time.perf_counter() - t0)
    costs.sort()
    return 1e6 * costs[n // 2]


def settle_filesystem(folder: Path, max_wait_s: float) -> str:
    """Wait until creating a file in ``folder`` costs what it does on a quiet
    filesystem (see the module's docstring), at most ``max_wait_s``; returns what
    was seen, for the results."""
    t0 = time.monotonic()
    first = cost = create_cost_us(folder)
    while True:
        if cost <= SETTLED_CREATE_US:
            time.sleep(5)  # quiet twice in a row: one cheap probe can be a lull
            cost = create_cost_us(folder)
            if cost <= SETTLED_CREATE_US:
                break
        if time.monotonic() - t0 >= max_wait_s:
            break
        print(
            f"creating a file costs {cost:.0f} us (quiet: < {SETTLED_CREATE_US:.0f} us; files were deleted "
            f"recently): waiting for the filesystem to settle ({time.monotonic() - t0:.0f} s of at most "
            f"{max_wait_s:.0f} s)",
            flush=True,
        )
        time.sleep(15)
        cost = create_cost_us(folder)
    waited = time.monotonic() - t0
    if cost > SETTLED_CREATE_US:
        return (
            f"file creation still costs {cost:.0f} us after {waited:.0f} s of waiting (from {first:.0f} us; "
            f"quiet: < {SETTLED_CREATE_US:.0f} us): the server's per-upload file creates are slow in this run"
        )
    if waited >= 10:
        return f"file creation: {first:.0f} us per file at start, {cost:.0f} us after waiting {waited:.0f} s"
    return f"file creation: {cost:.0f} us per file (quiet)"


def official_sdk_flow(base_url: str, api_key: str, namespace_id: str, ca_file: str | None) -> Any:
    """The per-file flow written with the official SDK (``pip install mixpeek``):
    its generated client for create and confirm, and urllib3 (the SDK's own HTTP
    library; the SDK has no PUT helper) for the PUT, trusting ``ca_file``."""
    import mixpeek
    import urllib3
    from mixpeek.api.bucket_uploads_api import BucketUploadsApi
    from mixpeek.models.confirm_upload_request import ConfirmUploadRequest
    from mixpeek.models.create_upload_request import CreateUploadRequest

    api = BucketUploadsApi(mixpeek.ApiClient(mixpeek.Configuration(host=base_url, access_token=api_key)))
    http = urllib3.PoolManager(ca_certs=ca_file) if ca_file else urllib3.PoolManager()
    headers = {"X-Namespace": namespace_id}

    def run(bucket_id: str, files: list[Path]) -> int:
        done = 0
        for path in files:
            ctype, size = guess_mime(path.name), path.stat().st_size
            up = api.create_upload_buckets(
                bucket_id,
                CreateUploadRequest(
                    filename=path.name, content_type=ctype, file_size_bytes=size, create_object_on_confirm=True
                ),
                _headers=headers,
            )
            with open(path, "rb") as fh:
                r = http.request(
                    "PUT", up.presigned_url, body=fh, headers={"Content-Type": ctype, "Content-Length": str(size)}
                )
            assert r.status == 200, r.status
            confirmed = api.confirm_upload_buckets(
                bucket_id,
                up.upload_id,
                confirm_upload_request=ConfirmUploadRequest(etag=r.headers["ETag"].strip('"'), file_size_bytes=size),
                _headers=headers,
            )
            done += bool(confirmed.object_id)
        return done

    run.version = getattr(mixpeek, "__version__", "?")  # type: ignore[attr-defined]
    return run


class Kernel:
    """A real IPython kernel from this venv (jupyter_client), as a notebook runs one."""

    def __init__(self, work: Path, ca_file: str | None) -> None:
        from jupyter_client import KernelManager

        env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPEEK_")}
        env.update(
            MIXPEEK_MAGICS_DATA_DIR=str(work / "kernel-data"),
            MIXPEEK_MAGICS_CONFIG_DIR=str(work / "kernel-config"),
            MIXPEEK_JOURNAL_PATH=str(work / "kernel-journal.db"),
            PYTHONPATH=str(ROOT),
        )
        if ca_file:
            env["SSL_CERT_FILE"] = ca_file
        work.mkdir(parents=True, exist_ok=True)
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(work))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.pid = self.km.provisioner.process.pid

    def run(self, code: str, timeout: float = 1800) -> str:
        out: list[str] = []

        def hook(msg: dict) -> None:
            c = msg.get("content", {})
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(c.get("traceback", [])))
            elif msg["msg_type"] in ("execute_result", "display_data"):
                out.append(c.get("data", {}).get("text/plain", ""))

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, allow_stdin=False)
        text = "".join(out)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel cell failed: {code[:80]!r}\n{text[-3000:]}")
        return text

    def rss(self) -> tuple[int, int]:
        """(current, peak) RSS of the kernel process, bytes."""
        now = peak = 0
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
        return now, peak

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def ingest_cell(bucket: str, folder: Path, var: str) -> str:
    return f"%%ingest --bucket {bucket} --no-wait -o {var}\n{folder}/\n"


def _timed(fn, pids: list[int]) -> tuple[Any, float, list[float]]:
    """``fn()``, its wall time, and the CPU each of ``pids`` spent meanwhile (from a collected heap)."""
    gc.collect()
    c0 = [proc_cpu_seconds(p) for p in pids]
    t0 = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t0
    return value, wall, [proc_cpu_seconds(p) - c for p, c in zip(pids, c0)]


def compare(
    folder: Path,
    files: list[Path],
    work: Path,
    latency_ms: float,
    tls: bool,
    concurrency: int,
    rounds: int,
    sdk_files: int,
    settle_max_s: float,
) -> tuple[list[str], dict[str, float]]:
    """``%%ingest`` in a kernel, ``bulk_upload`` here and the official SDK's per-file
    flow, against one fresh server with ``latency_ms`` on every API call and PUT."""
    tag = f"{latency_ms:g}ms-{'https' if tls else 'http'}"
    data_dir = work / f"server-{tag}"
    proc, url, key, ca = start_server(data_dir, latency_ms, tls)
    settled = settle_filesystem(data_dir / "uploads", settle_max_s)
    if ca:
        os.environ["SSL_CERT_FILE"] = ca  # this process's clients trust the test certificate the standard way
    kernel = None
    walls: dict[str, list[float]] = {"ingest": [], "bulk": []}
    cpus: dict[str, list[float]] = {"ingest": [], "bulk": []}
    server_cpus: dict[str, list[float]] = {"ingest": [], "bulk": []}
    try:
        with Mixpeek(api_key=key, base_url=url, timeout=600) as root:
            ns = root.namespaces.create("bench-upload", feature_extractors=[])
            client = root.with_options(namespace=ns.namespace_id)
            kernel = Kernel(work / f"kernel-{tag}", ca)
            kernel.run(f"%load_ext mixpeek_magics\n%mixpeek_auth {key} --base-url {url} --namespace bench-upload")
            # Untimed warm-ups: a process's first call pays imports, the first connections and TLS handshakes.
            warm = folder.parent / "warm"
            for name in ("warm-ingest", "warm-bulk", "warm-sdk"):
                client.buckets.create(name, bucket_schema=SCHEMA)
            kernel.run(ingest_cell("warm-ingest", warm, "_w"))
            warm_files = sorted(warm.iterdir())
            bulk_upload(client, "warm-bulk", warm_files, concurrency=concurrency)
            sdk = official_sdk_flow(url, key, ns.namespace_id, ca)
            sdk(client.buckets.create("warm-sdk2", bucket_schema=SCHEMA).bucket_id, warm_files[:5])
            n = len(files)
            for r in range(rounds):
                for side in ("ingest", "bulk") if r % 2 == 0 else ("bulk", "ingest"):
                    bucket = f"{side}-{r}"
                    client.buckets.create(bucket, bucket_schema=SCHEMA)
                    if side == "ingest":
                        _, wall, (cpu, srv_cpu) = _timed(
                            lambda bucket=bucket: kernel.run(ingest_cell(bucket, folder, "_r")), [kernel.pid, proc.pid]
                        )
                        got = int(kernel.run("print(len(_r.objects))").strip().splitlines()[-1])
                    else:
                        res, wall, (cpu, srv_cpu) = _timed(
                            lambda bucket=bucket: bulk_upload(client, bucket, files, concurrency=concurrency),
                            [os.getpid(), proc.pid],
                        )
                        got = len(res.object_ids)
                    assert got == n, (side, got, n)
                    walls[side].append(wall)
                    cpus[side].append(cpu)
                    server_cpus[side].append(srv_cpu)
            some = files[:sdk_files]
            bucket = client.buckets.create("sdk", bucket_schema=SCHEMA).bucket_id
            done, t_sdk, (sdk_cpu, sdk_srv_cpu) = _timed(lambda: sdk(bucket, some), [os.getpid(), proc.pid])
            assert done == len(some)
    finally:
        if kernel is not None:
            kernel.close()
        proc.terminate()
        proc.wait(10)
        os.environ.pop("SSL_CERT_FILE", None)
    med = {side: sorted(v)[len(v) // 2] for side, v in walls.items()}
    cpu = {side: sorted(v)[len(v) // 2] for side, v in cpus.items()}
    srv = {side: sorted(v)[len(v) // 2] for side, v in server_cpus.items()}
    per = {"ingest": med["ingest"] / n, "bulk": med["bulk"] / n, "sdk": t_sdk / len(some)}
    where = f"{latency_ms:g} ms per API call and per PUT, uploads over {'https' if tls else 'http'}"
    lines = [
        f"{where}: `%%ingest` (kernel) {med['ingest']:.2f} s = {1 / per['ingest']:.0f} files/s; "
        f"`bulk_upload` {med['bulk']:.2f} s = {1 / per['bulk']:.0f} files/s; official SDK per-file flow "
        f"{1 / per['sdk']:.1f} files/s ({len(some)} files in {t_sdk:.2f} s) -> %%ingest / bulk_upload "
        f"**{med['ingest'] / med['bulk']:.2f}x** the time, %%ingest **{per['sdk'] / per['ingest']:.1f}x** the SDK's "
        f"speed (bulk_upload {per['sdk'] / per['bulk']:.1f}x)",
        f"  medians of {rounds} rounds (alternating who goes first): %%ingest "
        f"{', '.join(f'{w:.2f}' for w in walls['ingest'])} s; "
        f"bulk_upload {', '.join(f'{w:.2f}' for w in walls['bulk'])} s; "
        f"client CPU per file: %%ingest (kernel process) {1000 * cpu['ingest'] / n:.2f} ms, bulk_upload "
        f"{1000 * cpu['bulk'] / n:.2f} ms, SDK {1000 * sdk_cpu / len(some):.2f} ms; "
        f"the local server's CPU per file (one process): %%ingest {1000 * srv['ingest'] / n:.2f} ms, "
        f"bulk_upload {1000 * srv['bulk'] / n:.2f} ms, SDK {1000 * sdk_srv_cpu / len(some):.2f} ms; {settled}",
    ]
    return lines, {"ratio": med["ingest"] / med["bulk"], "vs_sdk": per["sdk"] / per["ingest"]}


def many_files(work: Path, n: int, tls: bool) -> list[str]:
    """``n`` small files through ``%%ingest`` in a kernel: the kernel's peak RSS
    growth, and the dry-run plan's time for them."""
    folder = work / "many"
    folder.mkdir()
    rng = random.Random(11)
    for i in range(n):
        (folder / f"f{i:05d}.txt").write_bytes(os.urandom(rng.randint(200, 4000)).hex().encode())
    proc, url, key, ca = start_server(work / "server-many", 0.0, tls)
    kernel = None
    try:
        with Mixpeek(api_key=key, base_url=url, timeout=600) as root:
            ns = root.namespaces.create("bench-many", feature_extractors=[])
            client = root.with_options(namespace=ns.namespace_id)
            client.buckets.create("many", bucket_schema=SCHEMA)
            client.buckets.create("warm", bucket_schema=SCHEMA)
            kernel = Kernel(work / "kernel-many", ca)
            kernel.run(f"%load_ext mixpeek_magics\n%mixpeek_auth {key} --base-url {url} --namespace bench-many")
            kernel.run(ingest_cell("warm", folder.parent / "warm", "_w"))  # imports, first connections
            kernel.run("import gc; gc.collect()")
            t0 = time.perf_counter()
            kernel.run(f"%%ingest --bucket many --dry-run -o _plan\n{folder}/\n")
            dry = time.perf_counter() - t0
            assert int(kernel.run("print(len(_plan))").strip().splitlines()[-1]) == n
            kernel.run("del _plan; gc.collect()")
            before, _ = kernel.rss()
            stop = threading.Event()
            peak = [before]

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], kernel.rss()[0])
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            kernel.run(ingest_cell("many", folder, "_r"))
            wall = time.perf_counter() - t0
            stop.set()
            sampler.join()
            got = int(kernel.run("print(len(_r.objects))").strip().splitlines()[-1])
            assert got == n, got
    finally:
        if kernel is not None:
            kernel.close()
        proc.terminate()
        proc.wait(10)
    return [
        f"{n:,} files (0.4-8 KB) through `%%ingest` in a kernel ({'https' if tls else 'http'}, no added "
        f"latency): {wall:.1f} s = {n / wall:.0f} files/s; kernel peak RSS growth **{(peak[0] - before) / 1e6:.1f} "
        f"MB** (from {before / 1e6:.0f} MB; target < 150 MB); `%%ingest --dry-run` plan for them "
        f"**{dry:.2f} s** (target < 2 s)"
    ]


def big_file(work: Path, size_gb: float) -> list[str]:
    proc, url, key, _ = start_server(work / "server-big")
    try:
        with Mixpeek(api_key=key, base_url=url, timeout=600) as root:
            ns = root.namespaces.create("bench-big", feature_extractors=[])
            client = root.with_options(namespace=ns.namespace_id)
            client.buckets.create("big", bucket_schema=SCHEMA)
            big = work / "big.bin"
            chunk = os.urandom(1 << 20)
            with open(big, "wb") as fh:
                for _ in range(int(size_gb * 1024)):
                    fh.write(chunk)
            size = big.stat().st_size
            t0 = time.perf_counter()
            with PeakRSS() as mem:
                result = bulk_upload(client, "big", [big], submit=False)
            elapsed = time.perf_counter() - t0
            big.unlink()
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(result.object_ids) == 1, result.failures
    return [
        f"{size / (1 << 30):.2f} GB file through bulk_upload: {elapsed:.1f} s, peak RSS growth of this process "
        f"**{mem.growth / 1e6:.1f} MB** (from {mem.start / 1e6:.0f} MB; target < 100 MB)"
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    ap.add_argument("--latencies", default="0,20,80", help="comma-separated ms added per API call and per PUT")
    ap.add_argument("--schemes", default="https", help="comma-separated: http, https (the uploads' scheme)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of %%ingest and bulk_upload (median reported)")
    ap.add_argument(
        "--sdk-files", type=int, default=100, help="files through the SDK's per-file flow (half at > 20 ms)"
    )
    ap.add_argument("--many", type=int, default=10000, help="files of the RSS / dry-run run (0: skip)")
    ap.add_argument("--big-gb", type=float, default=1.0)
    ap.add_argument(
        "--settle-max",
        type=float,
        default=60.0,
        help="seconds to wait at most for file creation to be cheap again (0: do not wait)",
    )
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--big-only", action="store_true", help=argparse.SUPPRESS)  # the 1 GB run, in a fresh process
    args = ap.parse_args()
    if args.big_only:
        work = Path(tempfile.mkdtemp(prefix="mixpeek-bench-big-"))
        try:
            print(big_file(work, args.big_gb)[0], flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mixpeek-bench-upload-"))
    lines: list[str] = []
    summary: list[str] = []
    try:
        files = make_files(work / "files", args.files)
        make_files(work / "warm", WARMUP_FILES, seed=3)
        lines.append(
            f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB (1-100 KB each); "
            f"the server in its own process on 127.0.0.1, the kernel in its own; {args.concurrency} PUTs "
            f"in flight"
        )
        print(lines[-1], flush=True)
        for scheme in (x.strip() for x in args.schemes.split(",") if x.strip()):
            for latency in (float(x) for x in args.latencies.split(",") if x.strip()):
                got, nums = compare(
                    work / "files",
                    files,
                    work,
                    latency,
                    scheme == "https",
                    args.concurrency,
                    args.rounds,
                    args.sdk_files if latency <= 20 else max(1, args.sdk_files // 2),
                    args.settle_max,
                )
                lines += got
                print("\n".join(got), flush=True)
                if latency == 20 and scheme == "https":
                    summary.append(
                        f"at 20 ms over https: %%ingest / bulk_upload **{nums['ratio']:.2f}x** (target "
                        f"<= 1.15x: {'met' if nums['ratio'] <= 1.15 else 'NOT met'}); %%ingest versus the "
                        f"official SDK's flow **{nums['vs_sdk']:.1f}x** (target >= 25x: "
                        f"{'met' if nums['vs_sdk'] >= 25 else 'NOT met'})"
                    )
        if args.many > 0:
            got = many_files(work, args.many, "https" in args.schemes)
            lines += got
            print("\n".join(got), flush=True)
        if args.big_gb > 0:
            # A process of its own: its RSS starts from the import, not from the rounds above.
            out = subprocess.run(
                [sys.executable, __file__, "--big-only", "--big-gb", str(args.big_gb)],
                capture_output=True,
                text=True,
                check=True,
            )
            lines.append(out.stdout.strip().splitlines()[-1] + " (in a fresh process)")
            print(lines[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"total wall time of the run: {time.monotonic() - started:.0f} s")
    print(lines[-1], flush=True)
    if args.write_results:
        cmd = "python bench/upload.py " + " ".join(sys.argv[1:])
        write_results(cmd.strip(), summary + lines)
    return 0


def write_results(command: str, lines: list[str]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_section(
        "upload",
        f"## upload\n\nCommand: `{command}` ({stamp}, {os.cpu_count()} cores)\n\n"
        + "\n".join(f"- {line}" for line in lines),
    )


if __name__ == "__main__":
    sys.exit(main())
