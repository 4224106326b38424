"""``LocalServer``: the local Mixpeek-compatible server, in-process or as a CLI."""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .contract.stats import TOTALS as CONTRACT_TOTALS, ContractStats
from .settings import LocalSettings
from .state import State
from .util import mask_key

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from .upload_endpoint import UploadEndpoint

log = logging.getLogger("mixpeek_magics.local")
_LIVE: weakref.WeakSet[LocalServer] = weakref.WeakSet()  # for the contract report at exit


@atexit.register
def _report_at_exit() -> None:
    for srv in list(_LIVE):
        try:
            srv.report_contract_stats()
        except Exception as exc:  # noqa: BLE001 - interpreter shutdown: report what can be
            log.debug("contract report at exit failed: %s", exc)


def _quick_stop_server_class() -> type[uvicorn.Server]:
    import asyncio

    import uvicorn

    class QuickStopServer(uvicorn.Server):
        """uvicorn.Server that notices stop requests at once (not on its 0.1 s tick)."""

        _loop: asyncio.AbstractEventLoop | None = None
        _exit_event: asyncio.Event | None = None

        def install_signal_handlers(self) -> None:  # runs in a thread: no signals
            pass

        def request_exit(self) -> None:
            self.should_exit = True
            loop, event = self._loop, self._exit_event
            if loop is not None and event is not None:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:
                    pass

        async def main_loop(self) -> None:
            self._exit_event = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                try:
                    await asyncio.wait_for(self._exit_event.wait(), 0.1)
                except asyncio.TimeoutError:
                    pass
                should_exit = await self.on_tick(counter)

    return QuickStopServer


class _Lazy:
    cls: type[uvicorn.Server] | None = None


def _QuickStopServer(config: uvicorn.Config) -> uvicorn.Server:  # noqa: N802 - behaves like a class
    if _Lazy.cls is None:
        _Lazy.cls = _quick_stop_server_class()
    return _Lazy.cls(config)


class LocalServer:
    """A Mixpeek-compatible HTTP server backed by SQLite and files in ``data_dir``.

    >>> srv = LocalServer(data_dir=tmp, port=0).start()   # doctest: +SKIP
    >>> srv.base_url, srv.api_key                          # doctest: +SKIP

    ``app`` is the ASGI application (usable with ``httpx.ASGITransport`` even
    before ``start()``); ``stop()`` stops the HTTP server, the worker and closes
    the database. A stopped server can be started again (same data_dir).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        settings: LocalSettings | None = None,
        log_level: str = "warning",
        upload_port: int | None = None,
    ):
        if data_dir is None:
            from .._paths import local_server_dir

            data_dir = local_server_dir()
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.host = host
        self.requested_port = int(port)
        self.port: int | None = None
        # Presigned PUTs go to a port of their own, as real ones go to S3 (see
        # upload_endpoint); None: the one this data dir had last time, else any.
        self.requested_upload_port = upload_port
        self._uploads: UploadEndpoint | None = None
        self.log_level = log_level
        self._settings = settings or LocalSettings()
        self._state: State | None = None
        self._app: FastAPI | None = None
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._contract_stats = ContractStats(parent=CONTRACT_TOTALS)  # across restarts of this server
        self._contract_stats.label = str(self.data_dir)
        _LIVE.add(self)
        self._open()

    # -- state ---------------------------------------------------------------
    def _open(self) -> None:
        from .app import create_app
        from .upload_sink import sweep_orphan_parts
        from .worker import Worker

        state = State(self.data_dir, self._settings)
        swept = sweep_orphan_parts(state.uploads_dir)
        if swept:
            log.info("removed %d partial upload file(s) left by an earlier server process", swept)
        state.contract_stats = self._contract_stats
        worker = state.worker = Worker(state)
        worker.start()
        for task_id in state.recover_tasks():
            worker.submit(task_id)
        self._state = state
        self._app = create_app(state)
        self._api_key = state.default_api_key
        self._org_id = state.default_org_id
        self._key_created = state.key_created_now

    @property
    def state(self) -> State:
        if self._state is None or self._state.closed:
            self._open()
        assert self._state is not None  # _open() sets it or raises
        return self._state

    @property
    def app(self) -> FastAPI:
        self.state  # noqa: B018 - reopen after stop()
        assert self._app is not None  # set by _open() with the state
        return self._app

    @property
    def api_key(self) -> str:
        """The default organization's ``sk_test_...`` key (a local development key)."""
        return self._api_key

    @property
    def key_created(self) -> bool:
        """True when the default key was generated when this server opened its data dir."""
        return self._key_created

    @property
    def default_organization_id(self) -> str:
        return self._org_id

    @property
    def settings(self) -> LocalSettings:
        return self.state.settings

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not running: call start() first")
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> LocalServer:
        import uvicorn

        if self.running:
            return self
        app = self.app
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so, and accepted
        # ones inherit it; with proto 0, Nagle + delayed ACKs add ~40 ms to every answer.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level=self.log_level,
            access_log=self.log_level in ("debug", "info"),
            lifespan="off",
            timeout_keep_alive=30,
        )
        server = _QuickStopServer(config)
        self._server = server
        self._sock = sock

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException:  # pragma: no cover
                log.exception("local server crashed")

        self._thread = threading.Thread(target=run, name=f"mixpeek-local-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"local server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self._start_uploads()
        log.info("local server at %s (key %s)", self.base_url, mask_key(self.api_key))
        return self

    def _start_uploads(self) -> None:
        from .upload_endpoint import UploadEndpoint

        tls_dir = self.data_dir / "tls" if self.state.settings.upload_tls else None
        try:
            self._uploads = UploadEndpoint(self.state, self.host, self.requested_upload_port, tls_dir).start()
        except BaseException:
            self.stop()
            raise

    def _stop_uploads(self) -> None:
        if self._uploads is not None:
            self._uploads.stop()
            self._uploads = None

    @property
    def upload_url(self) -> str | None:
        """Where presigned PUTs go while the server runs (None: stopped)."""
        if self._uploads is None or self._uploads.port is None:
            return None
        from .services import upload_base_url

        return upload_base_url(self.base_url, self._uploads.port, self._uploads.scheme)

    @property
    def upload_ca_file(self) -> str | None:
        """The CA certificate (PEM) clients trust for an https upload endpoint
        (``verify=`` or ``SSL_CERT_FILE``); None over plain HTTP."""
        return self._uploads.ca_file if self._uploads is not None else None

    def serve_forever(self) -> None:
        """Run in the foreground (CLI); returns on Ctrl-C / SIGTERM."""
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.requested_port,
            log_level=self.log_level,
            access_log=self.log_level in ("debug", "info"),
            lifespan="off",
        )
        server = uvicorn.Server(config)
        self._server = server
        self._start_uploads()
        try:
            server.run()
        finally:
            self._server = None
            self._stop_uploads()
            self.close()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_uploads()
        server, thread = self._server, self._thread
        if server is not None:
            if hasattr(server, "request_exit"):
                server.request_exit()
            else:
                server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:  # pragma: no cover
                server.force_exit = True
                thread.join(timeout)
        sock = self._sock
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
            self._sock = None
        self._server = None
        self._thread = None
        self.port = None
        self.close()

    def close(self) -> None:
        """Stop the worker and close the database (the HTTP server must be stopped)."""
        if self._state is not None and not self._state.closed:
            self._state.close()
        self.report_contract_stats()

    # -- the contract ------------------------------------------------------------
    @property
    def contract_stats(self) -> dict[str, Any]:
        """What the contract middleware saw since this server was created: responses
        checked, fields dropped (by ``Schema.field``), violations, requests refused."""
        return self._contract_stats.as_dict()

    def report_contract_stats(self) -> None:
        """Append what is new in :attr:`contract_stats` to the file named by
        ``$MIXPEEK_LOCAL_CONTRACT_REPORT`` (one JSON line), if it names one."""
        self._contract_stats.report()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port else "stopped"
        return f"<LocalServer {where} data_dir={str(self.data_dir)!r} key={mask_key(self.api_key)}>"

    # -- administration ----------------------------------------------------------
    def create_organization(self, name: str) -> str:
        """Create another organization; returns its API key."""
        _org_id, key = self.state.create_organization(name)
        return key

    def create_api_key(self, org: str | None = None, read_only: bool = False) -> str:
        """A new key for ``org`` (id or name; default organization when None)."""
        state = self.state
        return state.create_api_key(state.resolve_org(org), read_only=read_only)

    def organization_of(self, api_key: str) -> str:
        return self.state.authenticate(f"Bearer {api_key}").org_id

    def update_settings(self, **fields: Any) -> LocalSettings:
        state = self.state
        with state.settings_lock:
            new = state.settings.replace(**fields)
            state.settings = new
            self._settings = new
            if "fault_seed" in fields:
                import random

                state.fault_rng = random.Random(new.fault_seed)
        return new

    @property
    def request_log(self) -> list[tuple[str, str]]:
        return list(self.state.request_log)

    def clear_request_log(self) -> None:
        self.state.request_log.clear()

    def seed_tasks(
        self, n: int, statuses: Iterable[str] | None = None, task_type: str | None = None, org: str | None = None
    ) -> list[str]:
        """Insert ``n`` synthetic tasks quickly (pagination tests, benchmarks); returns their ids."""
        state = self.state
        return state.seed_tasks(
            n, statuses=statuses, task_type=task_type, org_id=state.resolve_org(org) if org else None
        )

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock forward (e.g. to expire presigned URLs in tests)."""
        self.state.clock_offset += float(seconds)
