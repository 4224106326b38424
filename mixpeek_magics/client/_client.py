"""The two drivers: :class:`Mixpeek` (sync) and :class:`AsyncMixpeek` (async).

Both execute the same request specs and run the same sans-IO flows
(see ``_core``); the only code written twice is the ten-line effect loop and
reading a file in chunks for presigned uploads.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from mixpeek_magics.client._core import Context, Emit, Flow, Outcome, RequestSpec, Send, Sleep
from mixpeek_magics.client.config import ClientConfig
from mixpeek_magics.client.errors import ConfigurationError, redact_key

if TYPE_CHECKING:
    from mixpeek_magics.client.resources.batches import Batches
    from mixpeek_magics.client.resources.buckets import Buckets
    from mixpeek_magics.client.resources.collections import Collections
    from mixpeek_magics.client.resources.connections import Connections
    from mixpeek_magics.client.resources.documents import Documents
    from mixpeek_magics.client.resources.health import HealthResource
    from mixpeek_magics.client.resources.namespaces import Namespaces
    from mixpeek_magics.client.resources.objects import Objects
    from mixpeek_magics.client.resources.organization import Organizations
    from mixpeek_magics.client.resources.retrievers import Retrievers
    from mixpeek_magics.client.resources.syncs import Syncs
    from mixpeek_magics.client.resources.tasks import Tasks
    from mixpeek_magics.client.resources.uploads import Uploads

log = logging.getLogger("mixpeek_magics.client")

UPLOAD_CHUNK = 1 << 20  # 1 MiB per read when streaming a file


def _safe_url(url: httpx.URL | str) -> str:
    """The URL without its query string (presigned URLs carry signatures there).

    Plain string splitting: parsing a presigned URL with httpx.URL would
    validate every character of its long query again."""
    return str(url).split("#", 1)[0].split("?", 1)[0]


_ssl_contexts: dict[tuple[str | None, str | None], Any] = {}
_ssl_lock = threading.Lock()


def _ssl_context() -> Any:
    """httpx's default TLS context, made once per process and trust setting.

    httpx builds a fresh one (loading the whole CA bundle) for every client it
    creates; helpers that open a client per call (bulk uploads, watches)
    would pay that each time. Keyed by the variables httpx reads, so a
    changed trust setting still takes effect."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _ssl_lock:
        ctx = _ssl_contexts.get(key)
        if ctx is None:
            ctx = _ssl_contexts[key] = httpx.create_ssl_context()
        return ctx


class BaseClient:
    """Configuration, request building and resource lookup shared by both drivers."""

    _RESOURCES_PACKAGE = "mixpeek_magics.client.resources"

    organization: Organizations
    health: HealthResource
    namespaces: Namespaces
    buckets: Buckets
    objects: Objects
    uploads: Uploads
    batches: Batches
    connections: Connections
    syncs: Syncs
    tasks: Tasks
    collections: Collections
    documents: Documents
    retrievers: Retrievers

    def __init__(self, config: ClientConfig, http: Any, owns_http: bool) -> None:
        self._config = config
        self._http = http
        self._owns_http = owns_http

    # -- configuration -----------------------------------------------------
    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def namespace(self) -> str | None:
        return self._config.namespace

    def with_options(self, **changes: Any) -> Any:
        """A copy with other options (``namespace``, ``timeout``, ``max_retry_seconds``,
        ``api_key``, ``base_url``) sharing this client's connection pool.
        Closing the copy leaves the pool open; close the original."""
        clone = object.__new__(type(self))
        BaseClient.__init__(clone, self._config.replace(**changes), self._http, owns_http=False)
        return clone

    def _context(self) -> Context:
        cfg = self._config
        return Context(base_url=cfg.base_url, api_key=cfg.api_key, max_retry_seconds=cfg.max_retry_seconds)

    def __repr__(self) -> str:
        cfg = self._config
        return (
            f"{type(self).__name__}(base_url={cfg.base_url!r}, namespace={cfg.namespace!r}, "
            f"api_key={redact_key(cfg.api_key)!r})"
        )

    __str__ = __repr__

    # -- resources ---------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(name)
        module_name = f"{self._RESOURCES_PACKAGE}.{name}"
        if importlib.util.find_spec(module_name) is None:
            raise AttributeError(f"{type(self).__name__!s} has no resource or attribute {name!r}")
        resource_cls = getattr(importlib.import_module(module_name), "RESOURCE", None)
        if resource_cls is None:
            raise AttributeError(name)
        resource = resource_cls(self)
        self.__dict__[name] = resource
        return resource

    def __dir__(self) -> list[str]:
        import pkgutil

        from mixpeek_magics.client import resources

        names = [m.name for m in pkgutil.iter_modules(resources.__path__) if not m.name.startswith("_")]
        return sorted(set(super().__dir__()) | set(names))

    # -- request building --------------------------------------------------
    def _headers(self, spec: RequestSpec) -> httpx.Headers:
        # httpx.Headers masks Authorization in its repr (tracebacks that show locals).
        cfg = self._config
        headers = httpx.Headers()
        if spec.authenticated:
            if not cfg.api_key:
                raise ConfigurationError("No API key: pass api_key=..., set MIXPEEK_API_KEY, or run %mixpeek_auth")
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        elif cfg.api_key and not spec.presigned:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        if spec.namespaced:
            ns = spec.namespace or cfg.namespace
            if not ns:
                raise ConfigurationError(
                    f"{spec.method} {spec.path.split('?')[0]} needs a namespace: pass namespace=..., "
                    "use client.with_options(namespace=...), or set MIXPEEK_NAMESPACE"
                )
            headers["X-Namespace"] = ns
        if spec.headers:
            headers.update(dict(spec.headers))
        if spec.presigned:
            headers["Content-Length"] = str(spec.upload_size or 0)
        return headers

    def _url(self, spec: RequestSpec) -> str:
        if spec.path.startswith(("http://", "https://")):
            return spec.path
        return self._config.base_url + spec.path

    def _build(self, spec: RequestSpec, content: Any = None) -> httpx.Request:
        timeout = spec.timeout if spec.timeout is not None else self._config.timeout
        return self._http.build_request(
            spec.method,
            self._url(spec),
            params=spec.params,
            json=spec.json,
            content=content,
            headers=self._headers(spec),
            timeout=timeout,
        )

    @staticmethod
    def _outcome(request: httpx.Request, response: httpx.Response | None, error: BaseException | None) -> Outcome:
        url = _safe_url(request.url)
        if response is None:
            return Outcome(error=error, method=request.method, url=url)
        log.debug("%s %s -> %s", request.method, url, response.status_code)
        return Outcome(
            status_code=response.status_code,
            headers=response.headers,
            content=response.content,
            method=request.method,
            url=url,
        )


def _closed_error() -> ConfigurationError:
    return ConfigurationError(
        "this client was closed (signed out, or close() / a with-block ended): "
        "take the current one with mixpeek_magics.signed_in_client(), or create a new Mixpeek()"
    )


def _read_head(path: str, size: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def _file_chunks(path: str, size: int) -> Iterator[bytes]:
    """Sync file reader for presigned uploads: never more than one chunk in memory."""
    with open(path, "rb") as fh:
        sent = 0
        while sent < size:
            chunk = fh.read(min(UPLOAD_CHUNK, size - sent))
            if not chunk:
                break
            sent += len(chunk)
            yield chunk


async def _afile_chunks(path: str, size: int) -> AsyncIterator[bytes]:
    """Async twin of ``_file_chunks``: the reads run in a worker thread."""
    import anyio

    if size <= UPLOAD_CHUNK:
        # A file of one chunk: open, read and close in a single thread hop (the
        # per-hop cost dominates for the many small files of a bulk upload).
        chunk = await anyio.to_thread.run_sync(_read_head, path, size)
        if chunk:
            yield chunk
        return
    async with await anyio.open_file(path, "rb") as fh:
        sent = 0
        while sent < size:
            chunk = await fh.read(min(UPLOAD_CHUNK, size - sent))
            if not chunk:
                break
            sent += len(chunk)
            yield chunk


# =========================================================================== sync


class _SyncOverAsyncTransport(httpx.BaseTransport):
    """Lets the sync client use an async transport (e.g. ``httpx.ASGITransport(app)``)
    by running each exchange on the package's background event loop."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from mixpeek_magics import _runtime

        body = request.read()
        async_request = httpx.Request(
            request.method, request.url, headers=request.headers, content=body, extensions=request.extensions
        )

        async def exchange() -> tuple[int, list[tuple[bytes, bytes]], bytes, dict]:
            response = await self._transport.handle_async_request(async_request)
            try:
                content = b"".join([part async for part in response.stream])
            finally:
                await response.aclose()
            return response.status_code, response.headers.raw, content, dict(response.extensions)

        status, headers, content, extensions = _runtime.run(exchange())
        return httpx.Response(status, headers=headers, content=content, extensions=extensions, request=request)

    def close(self) -> None:
        from mixpeek_magics import _runtime

        _runtime.run(self._transport.aclose())


class Mixpeek(BaseClient):
    """Synchronous Mixpeek client.

    ``Mixpeek(api_key=None, base_url=None, namespace=None, timeout=30.0,
    max_retry_seconds=60.0, transport=None)``; missing values come from
    ``MIXPEEK_API_KEY`` / ``MIXPEEK_BASE_URL`` / ``MIXPEEK_NAMESPACE``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        max_retry_seconds: float | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        *,
        config: ClientConfig | None = None,
    ) -> None:
        cfg = config or ClientConfig.resolve(api_key, base_url, namespace, timeout, max_retry_seconds)
        if (
            transport is not None
            and not isinstance(transport, httpx.BaseTransport)
            and isinstance(transport, httpx.AsyncBaseTransport)
        ):
            transport = _SyncOverAsyncTransport(transport)
        http = httpx.Client(
            transport=transport,
            timeout=cfg.timeout,
            follow_redirects=False,
            headers={"User-Agent": cfg.user_agent},
            verify=_ssl_context() if transport is None else True,
        )
        super().__init__(cfg, http, owns_http=True)

    # -- driver ------------------------------------------------------------
    def _send(self, spec: RequestSpec) -> Outcome:
        content = _file_chunks(spec.upload_path, spec.upload_size or 0) if spec.presigned else None
        request = self._build(spec, content)
        if self._http.is_closed:
            raise _closed_error()
        try:
            response = self._http.send(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            return self._outcome(request, None, exc)
        return self._outcome(request, response, None)

    def _put_files(
        self,
        uploads: Any,
        files: Sequence[tuple[str, Any, str]],
        concurrency: int,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> list[Any]:
        """``Uploads.put_files`` on this driver: ``put_file`` on up to ``concurrency``
        threads sharing this client's keep-alive connections."""

        def one(file: tuple[str, Any, str]) -> Any:
            if cancel is not None and cancel.is_set():
                return concurrent.futures.CancelledError()
            url, path, content_type = file
            try:
                return uploads.put_file(url, path, content_type, timeout=timeout)
            except Exception as exc:  # one file's failure must not sink the others
                return exc

        if len(files) <= 1:
            return [one(f) for f in files]
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=min(concurrency, len(files)), thread_name_prefix="mixpeek-put"
        ) as pool:
            return list(pool.map(one, files))

    def _execute(self, flow: Flow) -> Any:
        """Run a flow to completion and return its value."""
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = self._perform(effect)

    def _iterate(self, flow: Flow) -> Iterator[Any]:
        """Run an emitting flow, yielding what it emits."""

        def run() -> Iterator[Any]:
            reply: Any = None
            try:
                while True:
                    try:
                        effect = flow.send(reply)
                    except StopIteration:
                        return
                    if isinstance(effect, Emit):
                        reply = None
                        yield effect.value
                    else:
                        reply = self._perform(effect)
            finally:
                flow.close()

        return run()

    def _perform(self, effect: Any) -> Any:
        if isinstance(effect, Send):
            return self._send(effect.spec)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Mixpeek:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# =========================================================================== async


class AsyncMixpeek(BaseClient):
    """Asynchronous Mixpeek client: the same resources, every call awaited
    (``iter`` methods return async iterators)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        max_retry_seconds: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        config: ClientConfig | None = None,
    ) -> None:
        cfg = config or ClientConfig.resolve(api_key, base_url, namespace, timeout, max_retry_seconds)
        http = httpx.AsyncClient(
            transport=transport,
            timeout=cfg.timeout,
            follow_redirects=False,
            headers={"User-Agent": cfg.user_agent},
            verify=_ssl_context() if transport is None else True,
        )
        super().__init__(cfg, http, owns_http=True)

    # -- driver ------------------------------------------------------------
    async def _send(self, spec: RequestSpec) -> Outcome:
        content = _afile_chunks(spec.upload_path, spec.upload_size or 0) if spec.presigned else None
        request = self._build(spec, content)
        if self._http.is_closed:
            raise _closed_error()
        try:
            response = await self._http.send(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            return self._outcome(request, None, exc)
        return self._outcome(request, response, None)

    async def _put_files(
        self,
        uploads: Any,
        files: Sequence[tuple[str, Any, str]],
        concurrency: int,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> list[Any]:
        """``Uploads.put_files`` on this driver: ``put_file`` ``concurrency`` at a time."""
        import asyncio

        slots = asyncio.Semaphore(concurrency)

        async def one(url: str, path: Any, content_type: str) -> Any:
            async with slots:
                if cancel is not None and cancel.is_set():
                    return concurrent.futures.CancelledError()
                try:
                    return await uploads.put_file(url, path, content_type, timeout=timeout)
                except Exception as exc:  # one file's failure must not sink the others
                    return exc

        return list(await asyncio.gather(*(one(*f) for f in files)))

    async def _execute(self, flow: Flow) -> Any:
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = await self._perform(effect)

    def _iterate(self, flow: Flow) -> AsyncIterator[Any]:
        async def run() -> AsyncIterator[Any]:
            reply: Any = None
            try:
                while True:
                    try:
                        effect = flow.send(reply)
                    except StopIteration:
                        return
                    if isinstance(effect, Emit):
                        reply = None
                        yield effect.value
                    else:
                        reply = await self._perform(effect)
            finally:
                flow.close()

        return run()

    async def _perform(self, effect: Any) -> Any:
        if isinstance(effect, Send):
            return await self._send(effect.spec)
        if isinstance(effect, Sleep):
            import anyio

            await anyio.sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    # -- lifecycle ---------------------------------------------------------
    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncMixpeek:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
