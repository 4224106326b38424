"""The presigned-upload endpoint: an S3-like PUT target on a port of its own.

Real presigned URLs point at S3, not at the API's host, and the local server
does the same: :class:`UploadEndpoint` is a small HTTP/1.1 server, on threads
and event loops of its own (two "lanes", each serving half the connections),
answering ``PUT /_local/uploads/{upload_id}``
(anything else: 404 or 405). Presigned URLs name it while it runs; the API's
port keeps serving the same PUTs (URLs issued before a restart, ASGI-only use).

Why not the API's uvicorn: a bulk upload sends one PUT per file, and through
uvicorn and ASGI each PUT cost about 0.2 ms of CPU on top of the work itself,
on the same event loop as the API's requests. Here httptools parses the
request, and the body is hashed and written as it arrives (``UploadSink``:
the same checks and answers as the route).
"""
from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote

from .upload_sink import RECORD_SQL, UPLOAD_PUT_PREFIX, Refusal, UploadSink, parse_query

log = logging.getLogger("mixpeek_magics.local")

PORT_META_KEY = "upload_port"
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 500: "Internal Server Error"}


def _answer(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
            close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    for name, value in headers or ():
        lines.append(f"{name}: {value}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# An answer before it goes out: status, body, headers (Connection: close is added on the way).
Reply = tuple[int, bytes, list[tuple[str, str]]]


def _refusal_reply(refusal: Refusal) -> Reply:
    return refusal.status, refusal.body(), []


def _error(status: int, message: str, type: str | None = None, headers: list[tuple[str, str]] | None = None) -> Reply:
    """The contract's ErrorResponse."""
    return status, Refusal(status, message, type).body(), headers or []


class _UploadProtocol(asyncio.Protocol):
    """One client connection: requests one after another (keep-alive)."""

    def __init__(self, lane: "_Lane") -> None:
        import httptools

        self.lane = lane
        self.state = lane.state
        self._httptools = httptools
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.requests = 0
        self.answers: collections.deque[list] = collections.deque()  # [self, reply or None (pending), keep]
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.sink: UploadSink | None = None
        self.answer: Reply | None = None  # decided before the body: sent once the body was read

    # -- transport -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.lane.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sink is not None:  # the client went away mid-body: keep nothing
            self.sink.abort()
            self.sink = None
        self.transport = None
        self.lane.closed(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self._httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported here")
        except self._httptools.HttpParserError:
            self._fail(400, "malformed HTTP request")
        except Exception:  # pragma: no cover - a bug: answer 500, keep the server up
            log.exception("upload endpoint failed")
            self._fail(500, "the upload endpoint failed; see the server log")

    def _fail(self, status: int, message: str) -> None:
        if self.sink is not None:
            self.sink.abort()
            self.sink = None
        self._slot(_error(status, message), keep=False)

    # -- httptools callbacks -------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        parsed = self._httptools.parse_url(self.url)
        path = parsed.path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        method = self.parser.get_method()
        upload_id = path[len(UPLOAD_PUT_PREFIX):] if path.startswith(UPLOAD_PUT_PREFIX) else ""
        self.state.request_log.append((method.decode("latin-1"), path))
        if not upload_id or "/" in upload_id:
            self.answer = _error(404, f"no upload target at {path[:200]!r}", "NotFoundError")
            return
        if method != b"PUT":
            self.answer = _error(405, "only PUT is served here", "MethodNotAllowed", [("Allow", "PUT")])
            return
        query = parse_query((parsed.query or b"").decode("latin-1"))
        ctype, length = self.headers.get(b"content-type"), self.headers.get(b"content-length")
        self.requests += 1
        sink = UploadSink.begin(self.state, upload_id, query.get("expires", ""), query.get("signature", ""),
                                ctype.decode("latin-1") if ctype is not None else None,
                                length.decode("latin-1") if length is not None else None,
                                f"{id(self)}-{self.requests}")
        if isinstance(sink, Refusal):
            if self.headers.get(b"expect", b"").lower() == b"100-continue":
                # The client waits before sending the body: answer now, and close, as S3 does.
                self._slot(_refusal_reply(sink), keep=False)
                return
            self.answer = _refusal_reply(sink)
            return
        self.sink = sink
        if self.headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.add(body)  # past the declared size it only counts: finish() refuses

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        keep = self.parser.should_keep_alive()
        if self.sink is not None:
            sink, self.sink = self.sink, None
            etag, refusal = sink.finish_file()
            if refusal is None:  # answered once recorded, with the PUTs that finished alongside it
                self.lane.record(sink.record_row(), self._slot(None, keep), etag)
                return
            answer = _refusal_reply(refusal)
        else:
            answer = self.answer or _error(400, "malformed HTTP request")
        self._slot(answer, keep)

    # -- answers go out in request order, whichever is ready first ---------------------
    def _slot(self, answer: Reply | None, keep: bool) -> list:
        slot = [self, answer, keep]
        self.answers.append(slot)
        self._flush()
        return slot

    def _flush(self) -> None:
        while self.answers and self.answers[0][1] is not None:
            _, answer, keep = self.answers.popleft()
            if self.transport is None:
                continue
            status, body, headers = answer
            self.transport.write(_answer(status, body, headers, close=not keep))
            if not keep:
                self.transport.close()
                self.answers.clear()
                return

    @staticmethod
    def fill(slot: list, answer: Reply) -> None:
        slot[1] = answer
        slot[0]._flush()


class _Lane:
    """An event loop on a thread of its own, serving the connections handed to it.

    A PUT's heavy parts (hashing, writing) release the GIL, so two lanes keep
    two cores busy where one loop kept one; each lane records the PUTs that
    completed in its loop turn in one transaction."""

    def __init__(self, endpoint: "UploadEndpoint", index: int) -> None:
        self.state = endpoint.state
        self.index = index
        self.loop: asyncio.AbstractEventLoop = _new_loop()
        self.thread: threading.Thread | None = None
        self.connections: set[_UploadProtocol] = set()  # touched on this lane's thread only
        # Connections handed over (counted by the acceptor's thread only) and ended
        # (by this lane's thread only): no count is written from two threads.
        self.handed = 0
        self.ended = 0
        self._to_record: list[tuple[tuple[Any, ...], list, str]] = []

    def start(self, name: str) -> None:
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def assigned(self) -> int:
        """Connections handed to this lane and not yet closed."""
        return self.handed - self.ended

    def adopt(self, conn: socket.socket) -> None:
        """Serve an accepted connection (called on the acceptor's thread)."""
        self.handed += 1
        try:
            self.loop.call_soon_threadsafe(self._adopt, conn)
        except RuntimeError:  # the lane is stopping
            self.handed -= 1
            conn.close()

    def _adopt(self, conn: socket.socket) -> None:
        async def serve() -> None:
            try:
                await self.loop.connect_accepted_socket(lambda: _UploadProtocol(self), sock=conn)
            except OSError:  # the client went away already
                self.ended += 1
                conn.close()

        asyncio.ensure_future(serve())

    def closed(self, protocol: "_UploadProtocol") -> None:
        if protocol in self.connections:
            self.connections.discard(protocol)
            self.ended += 1

    def record(self, row: tuple[Any, ...], slot: list, etag: str) -> None:
        """Record a received upload, then answer its PUT. Rows wait for the end
        of this turn of the event loop: the PUTs whose bodies completed in it
        are recorded in one transaction (one wait for the database lock, one
        commit), then answered."""
        if not self._to_record:
            self.loop.call_soon(self._record_now)
        self._to_record.append((row, slot, etag))

    def _record_now(self) -> None:
        batch, self._to_record = self._to_record, []
        try:
            with self.state.store.tx() as c:
                c.executemany(RECORD_SQL, [row for row, *_ in batch])
        except Exception:  # the bytes arrived but are not on record: the client must PUT again
            log.exception("upload endpoint could not record %d upload(s)", len(batch))
            failed = _error(500, "the upload arrived but could not be recorded; PUT it again")
            for _, slot, _ in batch:
                _UploadProtocol.fill(slot, failed)
            return
        for _, slot, etag in batch:
            _UploadProtocol.fill(slot, (200, b"", [("ETag", f'"{etag}"')]))

    def stop(self, timeout: float) -> None:
        def shutdown() -> None:
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.close()
            self.loop.call_later(0.05, self.loop.stop)  # let the closes go out

        try:
            self.loop.call_soon_threadsafe(shutdown)
        except RuntimeError:  # the loop is already closed
            pass
        if self.thread is not None:
            self.thread.join(timeout)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop comes with the local extra where it builds
        return asyncio.new_event_loop()


def default_lanes() -> int:
    """Two lanes where there are two cores: a third one measured slower on two cores
    (bench/upload.py), and one core gains nothing from a second."""
    return max(1, min(2, os.cpu_count() or 1))


class UploadEndpoint:
    """The PUT target's server: ``start()`` binds and serves on threads, ``stop()`` ends it.

    One thread accepts connections and hands each to the lane (an event loop
    on its own thread) with the fewest, so a client's concurrent PUTs are
    spread evenly. It takes the port it had last time in this data directory
    when that port is free, so presigned URLs issued before a restart keep
    working."""

    def __init__(self, state: Any, host: str = "127.0.0.1", port: int | None = None,
                 lanes: int | None = None) -> None:
        self.state = state
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.lane_count = lanes or default_lanes()
        self.lanes: list[_Lane] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        wanted = self.requested_port
        if wanted is None:
            saved = self.state.store.meta_get(PORT_META_KEY)
            wanted = int(saved) if saved and saved.isdigit() else 0
        for port in ([wanted, 0] if wanted else [0]):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or self.requested_port:
                    raise
                continue
            sock.listen(2048)
            return sock
        raise OSError(errno.EADDRINUSE, "no free port for the upload endpoint")  # pragma: no cover

    def start(self) -> "UploadEndpoint":
        if self._acceptor is not None:
            return self
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self.state.store.meta_set(PORT_META_KEY, str(self.port))
        self._listener = sock
        self._stopping.clear()
        self.lanes = [_Lane(self, i) for i in range(self.lane_count)]
        for lane in self.lanes:
            lane.start(f"mixpeek-local-uploads-{self.port}-{lane.index}")
        self._acceptor = threading.Thread(target=self._accept, args=(sock,),
                                          name=f"mixpeek-local-uploads-{self.port}-accept", daemon=True)
        self._acceptor.start()
        self.state.upload_port = self.port
        return self

    def _accept(self, sock: socket.socket) -> None:
        # A blocking accept on a thread of its own: stop() wakes it with
        # shutdown(); the lanes never wait on it.
        while not self._stopping.is_set():
            try:
                conn, _ = sock.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.05)  # out of descriptors: the open connections must end first
                continue  # e.g. ECONNABORTED: keep serving the others
            if self._stopping.is_set():
                conn.close()
                return
            conn.setblocking(False)
            min(self.lanes, key=lambda lane: lane.assigned).adopt(conn)

    def stop(self, timeout: float = 5.0) -> None:
        if self.state.upload_port == self.port:
            self.state.upload_port = None
        sock, acceptor = self._listener, self._acceptor
        if sock is None or acceptor is None:
            return
        self._stopping.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        acceptor.join(timeout)
        sock.close()
        for lane in self.lanes:
            lane.stop(timeout)
        self._listener = self._acceptor = None
        self.lanes = []
        self.port = None
