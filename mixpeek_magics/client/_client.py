"""The two drivers: :class:`Mixpeek` (sync) and :class:`AsyncMixpeek` (async).

Both execute the same request specs and run the same sans-IO flows (see
``_core``) through the same resource classes, so no request, retry rule,
pagination step or polling loop is written twice. Each driver writes its own
I/O, in pairs that mirror each other: building its httpx client, sending one
request (``_send``), the effect loop (``_execute``, ``_iterate``, ``_perform``),
reading a file in chunks for a presigned PUT, PUTting many files at once
(threads / ``asyncio.gather``) and closing; and one ``cached_property`` per
resource, typed for that driver (``AsyncMixpeek``'s by ``resources/_async.py``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from mixpeek_magics.client._core import Context, Emit, Flow, Outcome, RequestSpec, Send, Sleep
from mixpeek_magics.client.config import ClientConfig
from mixpeek_magics.client.errors import ConfigurationError, redact_key

if TYPE_CHECKING:
    import ssl

    from mixpeek_magics.client.resources._async import (
        AsyncBatches,
        AsyncBuckets,
        AsyncCollections,
        AsyncConnections,
        AsyncDocuments,
        AsyncHealthResource,
        AsyncNamespaces,
        AsyncObjects,
        AsyncOrganizations,
        AsyncRetrievers,
        AsyncSyncs,
        AsyncTasks,
        AsyncUploads,
    )
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

T = TypeVar("T")
C = TypeVar("C", bound="BaseClient")
Transport = httpx.BaseTransport | httpx.AsyncBaseTransport

UPLOAD_CHUNK = 1 << 20  # 1 MiB per read when streaming a file


def _safe_url(url: httpx.URL | str) -> str:
    """The URL without its query string (presigned URLs carry signatures there).

    Plain string splitting: parsing a presigned URL with httpx.URL would
    validate every character of its long query again."""
    return str(url).split("#", 1)[0].split("?", 1)[0]


_ssl_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_ssl_lock = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
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


class _PutLanes:
    """Connections for a sync client's presigned PUTs: each PUT borrows one lane (an httpx
    transport holding a single keep-alive connection) and gives it back.

    A presigned PUT needs none of the client's auth, cookies or redirects, and one shared
    httpcore pool costs more CPU per request the more connections it holds (every request
    scans them all) and can close a connection already handed to a waiting thread
    (encode/httpcore#1110). Lanes are taken last-in first-out, so warm connections are reused."""

    def __init__(self, verify: ssl.SSLContext) -> None:
        self._verify = verify
        self._lock = threading.Lock()
        self._idle: list[httpx.HTTPTransport] = []
        self._every: list[httpx.HTTPTransport] = []
        self._closed = False

    def take(self) -> httpx.HTTPTransport:
        with self._lock:
            if self._closed:
                raise _closed_error()
            if self._idle:
                return self._idle.pop()
            lane = httpx.HTTPTransport(
                verify=self._verify, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
            )
            self._every.append(lane)
            return lane

    def give(self, lane: httpx.HTTPTransport) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(lane)
                return
        lane.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            lanes, self._every, self._idle = self._every, [], []
        for lane in lanes:
            lane.close()


class BaseClient:
    """Configuration and request building shared by both drivers."""

    _http: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        config: ClientConfig,
        http: httpx.Client | httpx.AsyncClient,
        owns_http: bool,
        transport: Transport | None = None,
    ) -> None:
        self._config = config
        self._http = http
        self._owns_http = owns_http
        self._transport = transport
        self._put_lanes: _PutLanes | None = None

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

    @property
    def transport(self) -> Transport | None:
        """The httpx transport this client was given (``transport=``), None for httpx's own.

        Code that runs the same requests on another client (the tracking engine's
        ``AsyncMixpeek`` on the background loop) reuses it from here."""
        return self._transport

    def with_options(self: C, **changes: Any) -> C:
        """A copy with other options (``namespace``, ``timeout``, ``max_retry_seconds``,
        ``api_key``, ``base_url``) sharing this client's connection pool.
        Closing the copy leaves the pool open; close the original."""
        clone = object.__new__(type(self))
        BaseClient.__init__(clone, self._config.replace(**changes), self._http, False, self._transport)
        clone._put_lanes = self._put_lanes
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

    # -- request building --------------------------------------------------
    def _headers(self, spec: RequestSpec[Any]) -> httpx.Headers:
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

    def _url(self, spec: RequestSpec[Any]) -> str:
        if spec.path.startswith(("http://", "https://")):
            return spec.path
        return self._config.base_url + spec.path

    def _build(self, spec: RequestSpec[Any], content: Any = None) -> httpx.Request:
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

        async def exchange() -> tuple[int, list[tuple[bytes, bytes]], bytes, dict[str, Any]]:
            response = await self._transport.handle_async_request(async_request)
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)  # what an async transport answers with
            try:
                content = b"".join([part async for part in stream])
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
    ``transport``: an httpx transport, sync or async (``httpx.ASGITransport(app)``).
    """

    _http: httpx.Client

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
        sync_transport: httpx.BaseTransport | None
        if transport is None or isinstance(transport, httpx.BaseTransport):
            sync_transport = transport
        else:
            sync_transport = _SyncOverAsyncTransport(transport)
        http = httpx.Client(
            transport=sync_transport,
            timeout=cfg.timeout,
            follow_redirects=False,
            headers={"User-Agent": cfg.user_agent},
            verify=_ssl_context() if transport is None else True,
        )
        super().__init__(cfg, http, True, transport)
        if transport is None:
            self._put_lanes = _PutLanes(_ssl_context())

    # -- resources (one instance per client, made on first use) ---------------
    @cached_property
    def organization(self) -> Organizations:
        from mixpeek_magics.client.resources.organization import Organizations

        return Organizations(self)

    @cached_property
    def health(self) -> HealthResource:
        from mixpeek_magics.client.resources.health import HealthResource

        return HealthResource(self)

    @cached_property
    def namespaces(self) -> Namespaces:
        from mixpeek_magics.client.resources.namespaces import Namespaces

        return Namespaces(self)

    @cached_property
    def buckets(self) -> Buckets:
        from mixpeek_magics.client.resources.buckets import Buckets

        return Buckets(self)

    @cached_property
    def objects(self) -> Objects:
        from mixpeek_magics.client.resources.objects import Objects

        return Objects(self)

    @cached_property
    def uploads(self) -> Uploads:
        from mixpeek_magics.client.resources.uploads import Uploads

        return Uploads(self)

    @cached_property
    def batches(self) -> Batches:
        from mixpeek_magics.client.resources.batches import Batches

        return Batches(self)

    @cached_property
    def connections(self) -> Connections:
        from mixpeek_magics.client.resources.connections import Connections

        return Connections(self)

    @cached_property
    def syncs(self) -> Syncs:
        from mixpeek_magics.client.resources.syncs import Syncs

        return Syncs(self)

    @cached_property
    def tasks(self) -> Tasks:
        from mixpeek_magics.client.resources.tasks import Tasks

        return Tasks(self)

    @cached_property
    def collections(self) -> Collections:
        from mixpeek_magics.client.resources.collections import Collections

        return Collections(self)

    @cached_property
    def documents(self) -> Documents:
        from mixpeek_magics.client.resources.documents import Documents

        return Documents(self)

    @cached_property
    def retrievers(self) -> Retrievers:
        from mixpeek_magics.client.resources.retrievers import Retrievers

        return Retrievers(self)

    # -- driver ------------------------------------------------------------
    def _send(self, spec: RequestSpec[Any]) -> Outcome:
        content = _file_chunks(spec.upload_path, spec.upload_size or 0) if spec.upload_path is not None else None
        if spec.presigned and self._put_lanes is not None:
            return self._send_on_lane(self._put_lanes, spec, content)
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

    def _send_on_lane(self, lanes: _PutLanes, spec: RequestSpec[Any], content: Any) -> Outcome:
        """A presigned PUT straight to a lane's transport (see :class:`_PutLanes`)."""
        timeout = spec.timeout if spec.timeout is not None else self._config.timeout
        headers = self._headers(spec)
        headers["User-Agent"] = self._config.user_agent
        request = httpx.Request(
            spec.method,
            self._url(spec),
            headers=headers,
            content=content,
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        lane = lanes.take()
        try:
            response = lane.handle_request(request)
            response.request = request
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            return self._outcome(request, None, exc)
        finally:
            lanes.give(lane)
        return self._outcome(request, response, None)

    def _put_files(
        self,
        uploads: Any,
        files: Sequence[tuple[str, Any, str]],
        concurrency: int,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> list[str | None | BaseException]:
        """``Uploads.put_files`` on this driver: ``put_file`` on up to ``concurrency``
        threads, each PUT on a lane of its own (kept across calls)."""

        def one(file: tuple[str, Any, str]) -> str | None | BaseException:
            if cancel is not None and cancel.is_set():
                return concurrent.futures.CancelledError()
            url, path, content_type = file
            try:
                etag: str | None = uploads.put_file(url, path, content_type, timeout=timeout)
                return etag
            except Exception as exc:  # one file's failure must not sink the others
                return exc

        if len(files) <= 1:
            return [one(f) for f in files]
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=min(concurrency, len(files)), thread_name_prefix="mixpeek-put"
        ) as pool:
            return list(pool.map(one, files))

    def _execute(self, flow: Flow[T]) -> T:
        """Run a flow to completion and return its value."""
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply = self._perform(effect)

    def _iterate(self, flow: Flow[Any]) -> Iterator[Any]:
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
            if self._put_lanes is not None:
                self._put_lanes.close()

    def __enter__(self) -> Mixpeek:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# =========================================================================== async


class AsyncMixpeek(BaseClient):
    """Asynchronous Mixpeek client: the same resources, every call awaited
    (``iter`` methods return async iterators)."""

    _http: httpx.AsyncClient

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
        super().__init__(cfg, http, True, transport)

    # -- resources (one instance per client, made on first use) ---------------
    @cached_property
    def organization(self) -> AsyncOrganizations:
        from mixpeek_magics.client.resources.organization import Organizations

        return cast("AsyncOrganizations", Organizations(self))

    @cached_property
    def health(self) -> AsyncHealthResource:
        from mixpeek_magics.client.resources.health import HealthResource

        return cast("AsyncHealthResource", HealthResource(self))

    @cached_property
    def namespaces(self) -> AsyncNamespaces:
        from mixpeek_magics.client.resources.namespaces import Namespaces

        return cast("AsyncNamespaces", Namespaces(self))

    @cached_property
    def buckets(self) -> AsyncBuckets:
        from mixpeek_magics.client.resources.buckets import Buckets

        return cast("AsyncBuckets", Buckets(self))

    @cached_property
    def objects(self) -> AsyncObjects:
        from mixpeek_magics.client.resources.objects import Objects

        return cast("AsyncObjects", Objects(self))

    @cached_property
    def uploads(self) -> AsyncUploads:
        from mixpeek_magics.client.resources.uploads import Uploads

        return cast("AsyncUploads", Uploads(self))

    @cached_property
    def batches(self) -> AsyncBatches:
        from mixpeek_magics.client.resources.batches import Batches

        return cast("AsyncBatches", Batches(self))

    @cached_property
    def connections(self) -> AsyncConnections:
        from mixpeek_magics.client.resources.connections import Connections

        return cast("AsyncConnections", Connections(self))

    @cached_property
    def syncs(self) -> AsyncSyncs:
        from mixpeek_magics.client.resources.syncs import Syncs

        return cast("AsyncSyncs", Syncs(self))

    @cached_property
    def tasks(self) -> AsyncTasks:
        from mixpeek_magics.client.resources.tasks import Tasks

        return cast("AsyncTasks", Tasks(self))

    @cached_property
    def collections(self) -> AsyncCollections:
        from mixpeek_magics.client.resources.collections import Collections

        return cast("AsyncCollections", Collections(self))

    @cached_property
    def documents(self) -> AsyncDocuments:
        from mixpeek_magics.client.resources.documents import Documents

        return cast("AsyncDocuments", Documents(self))

    @cached_property
    def retrievers(self) -> AsyncRetrievers:
        from mixpeek_magics.client.resources.retrievers import Retrievers

        return cast("AsyncRetrievers", Retrievers(self))

    # -- driver ------------------------------------------------------------
    async def _send(self, spec: RequestSpec[Any]) -> Outcome:
        content = _afile_chunks(spec.upload_path, spec.upload_size or 0) if spec.upload_path is not None else None
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
    ) -> list[str | None | BaseException]:
        """``Uploads.put_files`` on this driver: ``put_file`` ``concurrency`` at a time."""
        import asyncio

        slots = asyncio.Semaphore(concurrency)

        async def one(url: str, path: Any, content_type: str) -> str | None | BaseException:
            async with slots:
                if cancel is not None and cancel.is_set():
                    return concurrent.futures.CancelledError()
                try:
                    etag: str | None = await uploads.put_file(url, path, content_type, timeout=timeout)
                    return etag
                except Exception as exc:  # one file's failure must not sink the others
                    return exc

        return list(await asyncio.gather(*(one(*f) for f in files)))

    async def _execute(self, flow: Flow[T]) -> T:
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply = await self._perform(effect)

    def _iterate(self, flow: Flow[Any]) -> AsyncIterator[Any]:
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
