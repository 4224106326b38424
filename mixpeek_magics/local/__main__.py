"""CLI: ``python -m mixpeek_magics.local serve|create-key|create-org`` (also ``mixpeek-local``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .settings import LocalSettings


def _data_dir(value: str | None) -> Path:
    if value:
        return Path(value).expanduser()
    from .._paths import local_server_dir

    return local_server_dir()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixpeek-local", description="Local Mixpeek-compatible server")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the server in the foreground")
    s.add_argument("--host", default=os.environ.get("MIXPEEK_LOCAL_HOST", "127.0.0.1"))
    s.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("MIXPEEK_LOCAL_PORT", "8765")),
        help="TCP port (0 picks a free one); default 8765",
    )
    s.add_argument(
        "--upload-port",
        type=int,
        default=int(os.environ["MIXPEEK_LOCAL_UPLOAD_PORT"])
        if os.environ.get("MIXPEEK_LOCAL_UPLOAD_PORT", "").isdigit()
        else None,
        help="TCP port of the presigned-upload endpoint (default: the one this data dir used "
        "last time, else a free one)",
    )
    s.add_argument("--data-dir", help="data directory (default: $MIXPEEK_LOCAL_DATA_DIR or the user data dir)")
    s.add_argument("--pace", dest="pace_seconds", type=float, help="seconds spent on each object")
    s.add_argument("--time-scale", dest="time_scale", type=float, help="multiplies all server-side waits")
    s.add_argument(
        "--progress-refresh",
        dest="progress_refresh_seconds",
        type=float,
        help="seconds between refreshes of a running batch's progress (default 1)",
    )
    s.add_argument(
        "--task-ttl",
        dest="task_ttl_seconds",
        type=float,
        help="seconds a task record lives before GET /v1/tasks/{id} answers 404 (default: forever)",
    )
    s.add_argument(
        "--fail-filenames",
        dest="fail_filenames",
        help="comma-separated fnmatch patterns: matching objects fail processing",
    )
    s.add_argument("--fault-rate-429", dest="fault_rate_429", type=float, help="share of answers replaced by 429")
    s.add_argument("--fault-rate-503", dest="fault_rate_503", type=float, help="share of answers replaced by 503")
    s.add_argument("--retry-after", dest="retry_after_seconds", type=float, help="Retry-After of injected faults")
    s.add_argument("--latency-ms", dest="latency_ms", type=float, help="latency added to each API request")
    s.add_argument(
        "--upload-latency-ms",
        dest="upload_latency_ms",
        type=float,
        help="latency added to each presigned PUT (an S3-like round trip)",
    )
    s.add_argument(
        "--upload-tls",
        dest="upload_tls",
        action="store_true",
        default=None,
        help="serve presigned uploads over HTTPS with a self-signed test certificate",
    )
    s.add_argument("--fault-seed", dest="fault_seed", type=int, help="seed of the fault injection")
    s.add_argument("--workers", type=int, help="worker threads")
    s.add_argument(
        "--google-drive-api-root",
        dest="google_drive_api_root",
        help="Drive v3 API root for google_drive connections (default: Google's)",
    )
    s.add_argument(
        "--google-token-uri",
        dest="google_token_uri",
        help="OAuth token endpoint for google_drive oauth credentials (default: Google's)",
    )
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    k = sub.add_parser("create-key", help="create an API key and print it")
    k.add_argument("--data-dir")
    k.add_argument("--org", help="organization id or name (default organization if omitted)")
    k.add_argument("--read-only", action="store_true")

    o = sub.add_parser("create-org", help="create an organization and print its API key")
    o.add_argument("name")
    o.add_argument("--data-dir")
    return p


def _serve(args: argparse.Namespace) -> int:
    from .server import LocalServer

    overrides = {name: getattr(args, name, None) for name in LocalSettings.field_names()}
    fail_filenames = overrides.get("fail_filenames")
    if fail_filenames is not None:
        overrides["fail_filenames"] = [x.strip() for x in fail_filenames.split(",") if x.strip()]
    try:
        settings = LocalSettings.from_env(**overrides)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    srv = LocalServer(
        data_dir=_data_dir(args.data_dir),
        port=args.port,
        host=args.host,
        settings=settings,
        log_level=args.log_level,
        upload_port=args.upload_port,
    )
    try:
        srv.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        srv.close()
        return 1
    note = "created" if srv.key_created else "existing"
    print(f"Mixpeek local server running at {srv.base_url}", flush=True)
    print(f"Presigned uploads go to {srv.upload_url}", flush=True)
    if srv.upload_ca_file:
        print(f"  trust its test certificate with SSL_CERT_FILE={srv.upload_ca_file}", flush=True)
    print(f"Data directory: {srv.data_dir}", flush=True)
    print(f"API key ({note}, default organization): {srv.api_key}", flush=True)
    print(f"  export MIXPEEK_BASE_URL={srv.base_url} MIXPEEK_API_KEY={srv.api_key}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop.wait(0.5):
            if not srv.running:
                print("error: the server stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        srv.stop()
        print("stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    from .state import State

    state = State(_data_dir(args.data_dir))
    try:
        if args.command == "create-key":
            try:
                org_id = state.resolve_org(args.org)
            except KeyError as exc:
                print(f"error: {exc.args[0]}", file=sys.stderr)
                return 1
            print(state.create_api_key(org_id, read_only=args.read_only))
        elif args.command == "create-org":
            org_id, key = state.create_organization(args.name)
            print(f"organization {org_id} ({args.name})")
            print(key)
        return 0
    finally:
        state.close()


if __name__ == "__main__":
    sys.exit(main())
