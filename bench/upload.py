"""Benchmark: bulk upload versus the sequential per-file flow, and memory on a 1 GB file.

Run:  .venv/bin/python bench/upload.py [--files 500] [--big-gb 1] [--write-results]

Both sides run in this process against the local server started as a separate
process on 127.0.0.1 (so its memory is not counted in ours), in one run:

* baseline: what the official SDK's flow implies, one file at a time:
  create upload -> PUT bytes -> confirm (object created on confirm);
* bulk: ``mixpeek_magics.ingest.bulk_upload`` (batch create with sha256,
  concurrent streamed PUTs, batch confirm), submit=False so both do the same work.

Then one 1 GB file (made in a temp dir, removed after) goes through
``bulk_upload`` while a sampler thread records this process's peak RSS.
"""
from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import write_section  # noqa: E402
from mixpeek_magics.client import Mixpeek  # noqa: E402
from mixpeek_magics.ingest import bulk_upload  # noqa: E402
from mixpeek_magics.ingest.mime import guess_mime  # noqa: E402

SCHEMA = {"properties": {"file": {"type": "text"}}}


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


def compare(files: list[Path], work: Path, latency_ms: float, concurrency: int) -> list[str]:
    """Baseline and bulk against one fresh server with ``latency_ms`` added to every request."""
    proc, url, key = start_server(work / f"server-{latency_ms:g}", latency_ms)
    try:
        with Mixpeek(api_key=key, base_url=url, timeout=600) as root:
            ns = root.namespaces.create("bench-upload", feature_extractors=[])
            client = root.with_options(namespace=ns.namespace_id)
            for name in ("baseline", "bulk"):
                client.buckets.create(name, bucket_schema=SCHEMA)
            me = os.getpid()
            cpu0 = (proc_cpu_seconds(me), proc_cpu_seconds(proc.pid))
            t0 = time.perf_counter()
            n_base = sequential(client, "baseline", files)
            t_base = time.perf_counter() - t0
            cpu1 = (proc_cpu_seconds(me), proc_cpu_seconds(proc.pid))
            t0 = time.perf_counter()
            result = bulk_upload(client, "bulk", files, concurrency=concurrency, submit=False)
            t_bulk = time.perf_counter() - t0
            cpu2 = (proc_cpu_seconds(me), proc_cpu_seconds(proc.pid))
    finally:
        proc.terminate()
        proc.wait(10)
    assert n_base == len(files) == len(result.object_ids), (n_base, len(result.object_ids), result.failures[:3])
    base_rate, bulk_rate = n_base / t_base, len(result.object_ids) / t_bulk
    n = len(files)
    where = "loopback, no added latency" if not latency_ms else f"{latency_ms:g} ms added per request (a WAN-like round trip)"
    return [
        f"{where}: baseline (create -> PUT -> confirm, one file at a time) {t_base:.2f} s = {base_rate:.1f} files/s; "
        f"bulk_upload (batch create + {concurrency} concurrent streamed PUTs + batch confirm) {t_bulk:.2f} s = "
        f"{bulk_rate:.1f} files/s; speed-up **{bulk_rate / base_rate:.2f}x** (target >= 5x)",
        f"  CPU per file (client / server): baseline {1000 * (cpu1[0] - cpu0[0]) / n:.2f} / "
        f"{1000 * (cpu1[1] - cpu0[1]) / n:.2f} ms, bulk {1000 * (cpu2[0] - cpu1[0]) / n:.2f} / "
        f"{1000 * (cpu2[1] - cpu1[1]) / n:.2f} ms; wall per file: baseline {1000 * t_base / n:.2f} ms, "
        f"bulk {1000 * t_bulk / n:.2f} ms",
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
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latencies", default="0,20", help="comma-separated ms added per request, one comparison each")
    ap.add_argument("--big-gb", type=float, default=1.0)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mixpeek-bench-upload-"))
    lines: list[str] = []
    try:
        files = make_files(work / "files", args.files)
        lines.append(f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB (1-200 KB each); "
                     f"server in its own process on 127.0.0.1")
        for latency in (float(x) for x in args.latencies.split(",") if x.strip()):
            lines += compare(files, work, latency, args.concurrency)
            print(lines[-1], flush=True)
        if args.big_gb > 0:
            lines += big_file(work, args.big_gb)
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
