"""Benchmark: bulk upload versus the sequential per-file flow, and memory on a 1 GB file.

Run:  .venv/bin/python bench/upload.py [--files 500] [--big-gb 1] [--write-results]

Both sides run in this process against the local server started as a separate
process on 127.0.0.1 (so its memory is not counted in ours), in one run:

* baseline: what the official SDK's flow implies, one file at a time:
  create upload -> PUT bytes -> confirm (object created on confirm), through
  this package's own client (its PUT is the same fast path bulk uses); when
  the official SDK (``pip install mixpeek``) is installed, the same flow
  written with it runs in every loopback round too, and bulk is compared with
  it as well;
* bulk: ``mixpeek_magics.ingest.bulk_upload`` (batch create with sha256,
  concurrent streamed PUTs, batch confirm), submit=False so both do the same work.

Each side runs once, untimed, on the first 20 files before the timed rounds
(one-time costs of a process's first call are not per-file throughput), and
each timed side starts from a collected heap.

Then one 1 GB file (made in a temp dir, removed after) goes through
``bulk_upload`` while a sampler thread records this process's peak RSS.

Before the rounds it waits (at most ``--settle-max`` seconds) until creating a
file in the server's uploads folder is cheap again. Every upload creates a file on the
server, and on an ext4 without a journal (this dev VM's root) the kernel's
inode allocator skips, one by one, every inode deleted in the last 60 s (360 s
while its inode-table block is dirty): after a test run or an earlier
benchmark removed thousands of files, each create costs 0.3-0.9 ms instead of
0.02 ms for minutes. That is the filesystem's state, not this code; the probe's
costs are printed with the results.
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
from mixpeek_magics.client import Mixpeek  # noqa: E402
from mixpeek_magics.ingest import bulk_upload  # noqa: E402
from mixpeek_magics.ingest.bulk import DEFAULT_CONCURRENCY  # noqa: E402
from mixpeek_magics._mime import guess_mime  # noqa: E402

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

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def start_server(data_dir: Path, latency_ms: float = 0.0) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixpeek_magics.local", "serve", "--port", "0", "--data-dir", str(data_dir),
         "--latency-ms", str(latency_ms), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    url = key = None
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline and (url is None or key is None):
        line = proc.stdout.readline()
        if not line:
            break
        url = url or (m.group(0) if (m := re.search(r"http://127\.0\.0\.1:\d+", line)) else None)
        key = key or (m.group(0) if (m := re.search(r"sk_test_[A-Za-z0-9_]+", line)) else None)
    if url is None or key is None:
        proc.kill()
        raise RuntimeError("the local server did not print its URL and key")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain its logs
    return proc, url, key


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
        size = rng.randint(1024, 200 * 1024)
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
        print(f"creating a file costs {cost:.0f} us (quiet: < {SETTLED_CREATE_US:.0f} us; files were deleted "
              f"recently): waiting for the filesystem to settle ({time.monotonic() - t0:.0f} s of at most "
              f"{max_wait_s:.0f} s)", flush=True)
        time.sleep(15)
        cost = create_cost_us(folder)
    waited = time.monotonic() - t0
    if cost > SETTLED_CREATE_US:
        return (f"file creation still costs {cost:.0f} us after {waited:.0f} s of waiting (from {first:.0f} us; "
                f"quiet: < {SETTLED_CREATE_US:.0f} us): the server's per-upload file creates are slow in this run")
    if waited >= 10:
        return f"file creation: {first:.0f} us per file at start, {cost:.0f} us after waiting {waited:.0f} s"
    return f"file creation: {cost:.0f} us per file (quiet)"


def sequential(client: Mixpeek, bucket: str, files: list[Path]) -> int:
    done = 0
    for path in files:
        ctype = guess_mime(path.name)
        up = client.uploads.create(bucket, path.name, ctype, file_size_bytes=path.stat().st_size,
                                   create_object_on_confirm=True)
        etag = client.uploads.put_file(up.presigned_url, path, ctype)
        confirmed = client.uploads.confirm(bucket, up.upload_id, etag=etag, file_size_bytes=path.stat().st_size)
        done += bool(confirmed.object_id)
    return done


def official_sdk_flow(base_url: str, api_key: str, namespace_id: str) -> Any:
    """The same per-file flow written with the official SDK (``pip install mixpeek``):
    its generated client for create and confirm, and urllib3 (the SDK's own HTTP
    library; the SDK has no PUT helper) for the PUT. None when it is not installed."""
    try:
        import mixpeek
        import urllib3
        from mixpeek.api.bucket_uploads_api import BucketUploadsApi
        from mixpeek.models.confirm_upload_request import ConfirmUploadRequest
        from mixpeek.models.create_upload_request import CreateUploadRequest
    except ImportError:
        return None
    api = BucketUploadsApi(mixpeek.ApiClient(mixpeek.Configuration(host=base_url, access_token=api_key)))
    http = urllib3.PoolManager()
    headers = {"X-Namespace": namespace_id}

    def run(bucket_id: str, files: list[Path]) -> int:
        done = 0
        for path in files:
            ctype, size = guess_mime(path.name), path.stat().st_size
            up = api.create_upload_buckets(bucket_id, CreateUploadRequest(
                filename=path.name, content_type=ctype, file_size_bytes=size, create_object_on_confirm=True),
                _headers=headers)
            with open(path, "rb") as fh:
                r = http.request("PUT", up.presigned_url, body=fh,
                                 headers={"Content-Type": ctype, "Content-Length": str(size)})
            assert r.status == 200, r.status
            confirmed = api.confirm_upload_buckets(bucket_id, up.upload_id, confirm_upload_request=ConfirmUploadRequest(
                etag=r.headers["ETag"].strip('"'), file_size_bytes=size), _headers=headers)
            done += bool(confirmed.object_id)
        return done

    run.version = getattr(mixpeek, "__version__", "?")  # type: ignore[attr-defined]
    return run


def _timed(fn, server_pid: int) -> tuple[Any, float, float, float]:
    """``fn()``, its wall time, and the CPU this process and the server spent meanwhile.

    Each side starts from a collected heap: a full collection here costs 10-25 ms
    (5% of a bulk run), and without this whichever side runs second pays for
    the garbage the first one left, by chance. Collections its own allocations
    cause still count."""
    gc.collect()
    me = os.getpid()
    c0, s0 = proc_cpu_seconds(me), proc_cpu_seconds(server_pid)
    t0 = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t0
    return value, wall, proc_cpu_seconds(me) - c0, proc_cpu_seconds(server_pid) - s0


def compare(files: list[Path], work: Path, latency_ms: float, concurrency: int, rounds: int,
            settle_max_s: float) -> list[str]:
    """Baseline and bulk against one fresh server with ``latency_ms`` added to every request.

    ``rounds`` rounds, each with fresh buckets (so no upload is a duplicate of an
    earlier one). On loopback the official SDK's flow runs in every round too,
    when it is installed. The order of the sides rotates from round to round; the
    median ratio is the headline, every round is shown (this machine is shared
    and noisy)."""
    data_dir = work / f"server-{latency_ms:g}"
    proc, url, key = start_server(data_dir, latency_ms)
    settled = settle_filesystem(data_dir / "uploads", settle_max_s)
    print(f"  {settled}", flush=True)
    runs: list[dict[str, tuple[float, float, float]]] = []
    try:
        with Mixpeek(api_key=key, base_url=url, timeout=600) as root:
            ns = root.namespaces.create("bench-upload", feature_extractors=[])
            client = root.with_options(namespace=ns.namespace_id)
            sdk = official_sdk_flow(url, key, ns.namespace_id) if not latency_ms else None
            # One untimed warm-up of each side on a few files: the first call of a
            # process pays one-time costs (the background loop's thread, the first
            # keep-alive connections, lazy imports) that are not per-file throughput.
            warm = files[:WARMUP_FILES]
            sequential(client, client.buckets.create("warmup-baseline", bucket_schema=SCHEMA).bucket_id, warm)
            bulk_upload(client, client.buckets.create("warmup-bulk", bucket_schema=SCHEMA).bucket_id, warm,
                        concurrency=concurrency, submit=False)
            if sdk is not None:
                sdk(client.buckets.create("warmup-sdk", bucket_schema=SCHEMA).bucket_id, warm)
            # Each side uploads all the files into a fresh bucket and returns how many became objects.
            sides: dict[str, Any] = {
                "baseline": lambda b: sequential(client, b, files),
                "bulk": lambda b: len(bulk_upload(client, b, files, concurrency=concurrency,
                                                  submit=False).object_ids),
            }
            if sdk is not None:
                sides["sdk"] = lambda b: sdk(b, files)
            for r in range(rounds):
                names = list(sides)
                names = names[r % len(names):] + names[:r % len(names)]  # who goes first rotates
                timed: dict[str, tuple[float, float, float]] = {}
                for name in names:
                    bucket = client.buckets.create(f"{name}-{r}", bucket_schema=SCHEMA).bucket_id
                    done, *cost = _timed(lambda: sides[name](bucket), proc.pid)
                    assert done == len(files), (name, done)
                    timed[name] = tuple(cost)  # type: ignore[assignment]
                runs.append(timed)
    finally:
        proc.terminate()
        proc.wait(10)
    n = len(files)
    ratios = [run["baseline"][0] / run["bulk"][0] for run in runs]
    order = sorted(range(len(runs)), key=lambda i: ratios[i])
    mid = order[len(order) // 2]  # the median round (rounds is odd by default)
    (t_base, base_cpu, base_srv), (t_bulk, bulk_cpu, bulk_srv) = runs[mid]["baseline"], runs[mid]["bulk"]
    where = ("loopback, no added latency" if not latency_ms
             else f"{latency_ms:g} ms added per request (a WAN-like round trip)")
    per_round = ", ".join(f"{x:.2f}x" for x in ratios)
    sdk_line = []
    if not latency_ms:
        if sdk is None:
            sdk_line = ["  the same flow with the official SDK: not measured (`pip install mixpeek` to include it)"]
        else:
            vs_sdk = sorted(run["sdk"][0] / run["bulk"][0] for run in runs)
            sdk_vs_base = sorted(run["baseline"][0] / run["sdk"][0] for run in runs)
            t_sdk, sdk_cpu, sdk_srv = sorted((run["sdk"] for run in runs), key=lambda x: x[0])[len(runs) // 2]
            sdk_line = [f"  the same flow with the official SDK (mixpeek {sdk.version}: its client for create and "
                        f"confirm, urllib3 for the PUT), in every round: median {t_sdk:.2f} s = {n / t_sdk:.1f} "
                        f"files/s (CPU per file {1000 * sdk_cpu / n:.2f} / {1000 * sdk_srv / n:.2f} ms), "
                        f"{sdk_vs_base[len(runs) // 2]:.2f}x the baseline's speed (median of the rounds); "
                        f"bulk_upload versus it: **{vs_sdk[len(runs) // 2]:.2f}x** (median; rounds "
                        f"{', '.join(f'{x:.2f}x' for x in vs_sdk)})"]
    return [
        f"{where}: baseline (create -> PUT -> confirm, one file at a time) {t_base:.2f} s = {n / t_base:.1f} files/s; "
        f"bulk_upload (batch create + {concurrency} concurrent streamed PUTs + batch confirm) {t_bulk:.2f} s = "
        f"{n / t_bulk:.1f} files/s; speed-up **{n / t_bulk / (n / t_base):.2f}x** (target >= 5x; the median of "
        f"{len(runs)} round{'s' if len(runs) != 1 else ''}, rotating which goes first: {per_round})",
        f"  CPU per file in that round (client / server): baseline {1000 * base_cpu / n:.2f} / "
        f"{1000 * base_srv / n:.2f} ms, bulk {1000 * bulk_cpu / n:.2f} / {1000 * bulk_srv / n:.2f} ms; "
        f"wall per file: baseline {1000 * t_base / n:.2f} ms, bulk {1000 * t_bulk / n:.2f} ms",
        *sdk_line,
        f"  {settled}",
    ]


def big_file(work: Path, size_gb: float) -> list[str]:
    proc, url, key = start_server(work / "server-big")
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
    return [f"{size / (1 << 30):.2f} GB file through bulk_upload: {elapsed:.1f} s, peak RSS growth of this process "
            f"**{mem.growth / 1e6:.1f} MB** (from {mem.start / 1e6:.0f} MB; target < 100 MB)"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    ap.add_argument("--latencies", default="0,20", help="comma-separated ms added per request, one comparison each")
    ap.add_argument("--rounds", type=int, default=7, help="rounds on loopback (the median ratio is reported)")
    ap.add_argument("--latency-rounds", type=int, default=1, help="rounds with added latency (25 s each at 20 ms)")
    ap.add_argument("--big-gb", type=float, default=1.0)
    ap.add_argument("--settle-max", type=float, default=420.0,
                    help="seconds to wait at most for file creation to be cheap again (0: do not wait)")
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

    work = Path(tempfile.mkdtemp(prefix="mixpeek-bench-upload-"))
    lines: list[str] = []
    try:
        files = make_files(work / "files", args.files)
        lines.append(f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB (1-200 KB each); "
                     f"server in its own process on 127.0.0.1")
        print(lines[-1], flush=True)
        for latency in (float(x) for x in args.latencies.split(",") if x.strip()):
            got = compare(files, work, latency, args.concurrency, args.rounds if not latency else args.latency_rounds,
                          args.settle_max)
            lines += got
            print("\n".join(got), flush=True)
        if args.big_gb > 0:
            # A process of its own: its RSS starts from the import, not from the rounds above.
            out = subprocess.run([sys.executable, __file__, "--big-only", "--big-gb", str(args.big_gb)],
                                 capture_output=True, text=True, check=True)
            lines.append(out.stdout.strip().splitlines()[-1] + " (in a fresh process)")
            print(lines[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.write_results:
        cmd = "python bench/upload.py " + " ".join(sys.argv[1:])
        write_results(cmd.strip(), lines)
    return 0


def write_results(command: str, lines: list[str]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_section("upload", f"## upload\n\nCommand: `{command}` ({stamp}, {os.cpu_count()} cores)\n\n"
                  + "\n".join(f"- {line}" for line in lines))


if __name__ == "__main__":
    sys.exit(main())
