"""Presigned PUTs over bare HTTP/1.1 keep-alive sockets.

A bulk upload sends one PUT per file. httpx spends about 0.3 ms of CPU per
request in its client and connection-pool machinery, and ``http.client``
still about 0.15 ms (its response headers go through the ``email`` parser),
which is what bounded bulk uploads of small files (the client is one process
under one GIL). A presigned URL carries its own signature, so nothing of the
API client's request handling (auth, namespace, redirects) applies to it: one
request head, the file's bytes (``sendfile`` on plain connections) and a
minimal response parser do the job.

Only the wire changes. The caller still runs the request through the same
flow (retries, typed errors, ETag handling) with the status, headers and body
returned here. Whatever this module does not cover returns ``None`` and the
caller sends the request through httpx as before: a proxy configured in the
environment, custom CA settings, a connection that cannot be opened or that
fails mid-request, an answer this parser does not understand.
"""
from __future__ import annotations

import collections
import os
import selectors
import socket
import ssl
import threading
import time
import urllib.request
from typing import Mapping, Sequence
from urllib.parse import urlsplit

__all__ = ["DirectPut"]

MAX_IDLE_PER_ORIGIN = 32
BLOCK_SIZE = 1 << 20  # bytes read from the file per send where sendfile cannot be used (TLS)
INLINE_BODY = 256 * 1024  # bodies up to this size go out with the request head in one send
MAX_HEAD = 64 * 1024  # a longer response head is not an answer this module understands
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a server's closing of an idle keep-alive connection looks like on the next request.
_STALE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

Origin = tuple[str, str, int]


class _Closed(Exception):
    """The server closed the connection before any byte of an answer."""


class _Unsupported(Exception):
    """An answer this module does not parse: the caller falls back to httpx."""


Answer = tuple[int, list[tuple[str, str]], bytes]


def parse_answer(buf: bytes, at_eof: bool = False) -> tuple[Answer, int, bool] | None:
    """One HTTP/1.x answer from the start of ``buf``: ``((status, headers, body),
    bytes used, whether the connection stays usable)``, or None while it is
    incomplete. Interim 1xx answers are skipped. ``at_eof``: the server closed
    the connection after ``buf`` (a body without a length ends there)."""
    at = 0
    while True:
        end = buf.find(b"\r\n\r\n", at)
        if end < 0:
            if len(buf) - at > MAX_HEAD:
                raise _Unsupported("response head too long")
            if at_eof and len(buf) > at:
                raise _Unsupported("connection closed inside a response head")
            return None
        lines = buf[at:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _Unsupported(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Unsupported("malformed response header")
            headers.append((name.strip(), value.strip()))
        at = end + 4
        if not 100 <= status < 200:
            break
    tokens = ",".join(v for k, v in headers if k.lower() == "connection").lower()
    keep = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    if status in (204, 304):
        return (status, headers, b""), at, keep
    length = None
    for name, value in headers:
        lname = name.lower()
        if lname == "transfer-encoding":
            if value.strip().lower() != "chunked":
                raise _Unsupported(f"transfer-encoding {value!r}")
            return _parse_chunked(buf, at, status, headers, keep, at_eof)
        if lname == "content-length":
            if not value.strip().isdigit():
                raise _Unsupported("malformed Content-Length")
            length = int(value)
    if length is None:  # the body ends where the server closes the connection
        return ((status, headers, buf[at:]), len(buf), False) if at_eof else None
    if len(buf) - at < length:
        if at_eof:
            raise _Unsupported("connection closed inside a response body")
        return None
    return (status, headers, buf[at:at + length]), at + length, keep


def _parse_chunked(buf: bytes, at: int, status: int, headers: list[tuple[str, str]], keep: bool,
                   at_eof: bool) -> tuple[Answer, int, bool] | None:
    parts = []
    while True:
        end = buf.find(b"\r\n", at)
        if end < 0:
            break
        try:
            size = int(buf[at:end].split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Unsupported("malformed chunk size") from None
        at = end + 2
        if size == 0:
            while True:  # trailers, up to the empty line
                end = buf.find(b"\r\n", at)
                if end < 0:
                    break
                line, at = buf[at:end], end + 2
                if not line:
                    return (status, headers, b"".join(parts)), at, keep
            break
        if len(buf) < at + size + 2:
            break
        if buf[at + size:at + size + 2] != b"\r\n":
            raise _Unsupported("malformed chunk end")
        parts.append(buf[at:at + size])
        at += size + 2
    if at_eof:
        raise _Unsupported("connection closed inside a chunked body")
    return None


class _Conn:
    """One socket and the bytes read past the end of the last answer."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def read_answer(self) -> tuple[Answer, bool]:
        """The next answer (blocking) and whether the connection stays usable."""
        buf, eof = self.buf, False
        while True:
            got = parse_answer(buf, eof)
            if got is not None:
                answer, used, keep = got
                self.buf = buf[used:]
                return answer, keep and not eof
            if eof:  # pragma: no cover - parse_answer raises or answers at EOF
                raise _Unsupported("incomplete answer")
            data = self.sock.recv(65536)
            if not data:
                if not buf:
                    raise _Closed()
                eof = True
            buf += data


class _Job:
    """One PUT of ``put_many``: its request head and where the body is."""

    __slots__ = ("index", "origin", "head", "path", "size", "retried")

    def __init__(self, index: int, origin: Origin, head: bytes, path: str, size: int) -> None:
        self.index, self.origin, self.head, self.path, self.size = index, origin, head, path, size
        self.retried = False


class _Exchange:
    """A job on a connection: the bytes still to send, the answer bytes so far."""

    __slots__ = ("job", "conn", "reused", "out", "got", "deadline")

    def __init__(self, job: _Job, conn: _Conn, reused: bool, request: bytes | bytearray,
                 timeout: float | None) -> None:
        self.job, self.conn, self.reused = job, conn, reused
        self.out = memoryview(request)
        self.got = b""
        self.deadline = time.monotonic() + timeout if timeout is not None else None


class DirectPut:
    """A small thread-safe pool of keep-alive connections, one list per origin."""

    def __init__(self) -> None:
        # Read once, as httpx reads its proxy settings once per client.
        self._proxies = urllib.request.getproxies_environment()
        self._idle: dict[Origin, list[_Conn]] = {}
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self.opened = 0  # connections opened (tests and diagnostics)
        self.sent = 0    # requests answered through this path

    # -- eligibility ------------------------------------------------------------
    def _proxied(self, scheme: str, host: str) -> bool:
        """True when httpx would route this URL through a proxy from the environment."""
        proxies = self._proxies
        if not (proxies.get(scheme) or proxies.get("all")):
            return False
        return not urllib.request.proxy_bypass_environment(host)

    def _context(self) -> ssl.SSLContext | None:
        if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
            return None  # custom trust settings: leave them to httpx
        if self._ssl is None:
            try:
                import certifi  # httpx's own CA bundle, so both paths trust the same CAs

                self._ssl = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with httpx
                self._ssl = ssl.create_default_context()
        return self._ssl

    # -- connections --------------------------------------------------------------
    def _checkout(self, origin: Origin, timeout: float | None) -> tuple[_Conn, bool]:
        with self._lock:
            idle = self._idle.get(origin)
            conn = idle.pop() if idle else None
        if conn is not None:
            conn.sock.settimeout(timeout)
            return conn, True
        scheme, host, port = origin
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                assert self._ssl is not None
                sock = self._ssl.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.opened += 1
        return _Conn(sock), False

    def _checkin(self, origin: Origin, conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(conn)
                return
        conn.close()

    # -- the request ----------------------------------------------------------------
    def _prepare(self, url: str, headers: Mapping[str, str], size: int) -> tuple[Origin, bytes] | None:
        """The origin and request head of a PUT, or None when httpx should send it."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
        if scheme not in _DEFAULT_PORTS or not host or self._proxied(scheme, host):
            return None
        if scheme == "https" and self._context() is None:
            return None
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            return None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"PUT {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
                 "Accept-Encoding: identity"]
        for name, value in headers.items():
            if name.lower() not in ("content-length", "host", "transfer-encoding", "accept-encoding"):
                lines.append(f"{name}: {value}")
        # Always exactly the declared size: the file may have grown since.
        lines.append(f"Content-Length: {size}")
        return (scheme, host, port), ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def put(self, url: str, path: str, size: int, headers: Mapping[str, str],
            timeout: float | None) -> Answer | None:
        """PUT ``size`` bytes of the file at ``path``; ``(status, headers, body)``,
        or ``None`` when the caller should send it through httpx instead."""
        prepared = self._prepare(url, headers, size)
        if prepared is None:
            return None
        origin, request_head = prepared
        for _ in range(2):  # a reused connection may have been closed by the server meanwhile
            try:
                conn, reused = self._checkout(origin, timeout)
            except (OSError, ssl.SSLError, ValueError):
                return None
            try:
                with open(path, "rb") as fh:
                    self._send(conn, fh, request_head, size)
                (status, response_headers, body), keep = conn.read_answer()
            except (_Closed, *_STALE):
                conn.close()
                if reused:
                    continue
                return None
            except (OSError, _Unsupported, ValueError):
                conn.close()
                return None
            if keep and not conn.buf:
                self._checkin(origin, conn)
            else:
                conn.close()
            self.sent += 1
            return status, response_headers, body
        return None

    @staticmethod
    def _send(conn: _Conn, fh, request_head: bytes, size: int) -> None:
        sock = conn.sock
        if size <= INLINE_BODY:
            data = fh.read(size)
            if len(data) != size:
                raise ValueError("the file is shorter than its declared size")
            sock.sendall(request_head + data)
            return
        sock.sendall(request_head)
        if not isinstance(sock, ssl.SSLSocket):
            if sock.sendfile(fh, 0, size) != size:  # kernel-side copy: no bytes through Python
                raise ValueError("the file is shorter than its declared size")
            return
        left = size
        while left > 0:
            data = fh.read(min(BLOCK_SIZE, left))
            if not data:
                raise ValueError("the file is shorter than its declared size")
            sock.sendall(data)
            left -= len(data)

    def put_many(self, jobs: Sequence[tuple[str, str, int, Mapping[str, str]]], concurrency: int,
                 timeout: float | None, cancel: threading.Event | None = None) -> list[Answer | None]:
        """PUT many small files from this one thread: ``concurrency`` requests in
        flight over keep-alive connections, multiplexed with a selector.

        With a thread per request, a bulk upload's client spent about twice the
        CPU per PUT (every response wakes a thread that then waits for the
        GIL); here one thread sends, reads and parses. Jobs are ``(url, path,
        size, headers)``; an answer per job, or None for a job this path does
        not take (over INLINE_BODY bytes, https, proxied), one that failed on
        the wire or ran out of time, and every job not started once ``cancel``
        is set: the caller sends those one by one."""
        results: list[Answer | None] = [None] * len(jobs)
        queue: collections.deque[_Job] = collections.deque()
        for i, (url, path, size, headers) in enumerate(jobs):
            if size > INLINE_BODY or not url.startswith("http://"):
                continue
            prepared = self._prepare(url, headers, size)
            if prepared is not None:
                queue.append(_Job(i, prepared[0], prepared[1], path, size))
        sel = selectors.DefaultSelector()

        def end(ex: _Exchange, keep: bool) -> None:
            sel.unregister(ex.conn.sock)
            if keep:
                try:
                    ex.conn.sock.setblocking(True)
                    self._checkin(ex.job.origin, ex.conn)
                    return
                except OSError:
                    pass
            ex.conn.close()

        def failed(ex: _Exchange) -> None:
            """The wire failed: once, on a fresh connection, if a reused one had gone stale."""
            end(ex, keep=False)
            if ex.reused and not ex.got and not ex.job.retried:
                ex.job.retried = True
                queue.appendleft(ex.job)

        def cancelled() -> bool:
            return cancel is not None and cancel.is_set()

        def load(job: _Job) -> bytearray | None:
            """The whole request: the file read straight in after the head (one copy,
            no concatenation); None when the file cannot be read or shrank (the
            caller's one-by-one path reports it)."""
            request = bytearray(len(job.head) + job.size)
            request[:len(job.head)] = job.head
            try:
                with open(job.path, "rb", buffering=0) as fh:
                    got = fh.readinto(memoryview(request)[len(job.head):])
            except OSError:
                return None
            return request if got == job.size else None

        def start() -> None:
            while queue and len(sel.get_map()) < concurrency and not cancelled():
                job = queue.popleft()
                request = load(job)
                if request is None:
                    continue
                try:
                    conn, reused = self._checkout(job.origin, timeout)
                    conn.sock.setblocking(False)
                except (OSError, ssl.SSLError, ValueError):
                    continue
                sel.register(conn.sock, selectors.EVENT_WRITE, _Exchange(job, conn, reused, request, timeout))

        def follow_on(ex: _Exchange) -> bool:
            """The next queued job to the same origin goes out on this connection,
            which stays registered and non-blocking: no pool round trip and no
            socket mode changes between a connection's requests."""
            while queue and queue[0].origin == ex.job.origin and not cancelled():
                job = queue.popleft()
                request = load(job)
                if request is not None:
                    sel.modify(ex.conn.sock, selectors.EVENT_WRITE, _Exchange(job, ex.conn, True, request, timeout))
                    return True
            return False

        start()
        try:
            while sel.get_map():
                exchanges = [key.data for key in sel.get_map().values()]
                deadline = min((ex.deadline for ex in exchanges), default=None)
                events = sel.select(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if not events:
                    now = time.monotonic()
                    for ex in exchanges:
                        if ex.deadline is not None and ex.deadline <= now:
                            end(ex, keep=False)  # out of time: the caller's path reports it
                for key, mask in events:
                    ex = key.data
                    try:
                        if mask & selectors.EVENT_WRITE:
                            ex.out = ex.out[ex.conn.sock.send(ex.out):]
                            if not ex.out:
                                sel.modify(ex.conn.sock, selectors.EVENT_READ, ex)
                            continue
                        data = ex.conn.sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        failed(ex)
                        continue
                    if not data and not ex.got:
                        failed(ex)
                        continue
                    ex.got += data
                    try:
                        got = parse_answer(ex.got, at_eof=not data)
                    except _Unsupported:
                        end(ex, keep=False)
                        continue
                    if got is not None:
                        answer, used, keep = got
                        results[ex.job.index] = answer
                        self.sent += 1
                        keep = keep and bool(data) and used == len(ex.got)
                        if not (keep and follow_on(ex)):
                            end(ex, keep)
                start()
        finally:
            for key in list(sel.get_map().values()):
                key.data.conn.close()
            sel.close()
        return results

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()
