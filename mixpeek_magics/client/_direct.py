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

import os
import socket
import ssl
import threading
import urllib.request
from typing import Mapping
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

    def _more(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed()
        return data

    def read_head(self) -> tuple[int, list[tuple[str, str]], bool]:
        """Status, headers and whether the server keeps the connection open;
        interim 1xx answers are skipped."""
        while True:
            buf = self.buf
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    break
                if len(buf) > MAX_HEAD:
                    raise _Unsupported("response head too long")
                try:
                    buf += self._more()
                except _Closed:
                    if buf:
                        raise _Unsupported("connection closed inside a response head") from None
                    raise
            head, self.buf = buf[:end].decode("latin-1"), buf[end + 4:]
            lines = head.split("\r\n")
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
            if 100 <= status < 200:
                continue
            tokens = ",".join(v for k, v in headers if k.lower() == "connection").lower()
            keep = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
            return status, headers, keep

    def read_exact(self, n: int) -> bytes:
        buf = self.buf
        while len(buf) < n:
            try:
                buf += self._more()
            except _Closed:
                raise _Unsupported("connection closed inside a response body") from None
        self.buf = buf[n:]
        return buf[:n]

    def read_line(self) -> bytes:
        buf = self.buf
        while True:
            end = buf.find(b"\r\n")
            if end >= 0:
                self.buf = buf[end + 2:]
                return buf[:end]
            if len(buf) > MAX_HEAD:
                raise _Unsupported("chunk header too long")
            try:
                buf += self._more()
            except _Closed:
                raise _Unsupported("connection closed inside a chunked body") from None

    def read_chunked(self) -> bytes:
        parts = []
        while True:
            size_text = self.read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Unsupported("malformed chunk size") from None
            if size == 0:
                while self.read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self.read_exact(size))
            if self.read_exact(2) != b"\r\n":
                raise _Unsupported("malformed chunk end")

    def read_to_close(self) -> bytes:
        parts = [self.buf]
        self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return b"".join(parts)
            parts.append(data)


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
    def put(self, url: str, path: str, size: int, headers: Mapping[str, str],
            timeout: float | None) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """PUT ``size`` bytes of the file at ``path``; ``(status, headers, body)``,
        or ``None`` when the caller should send it through httpx instead."""
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
        origin = (scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"PUT {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
                 "Accept-Encoding: identity"]
        for name, value in headers.items():
            if name.lower() not in ("content-length", "host", "transfer-encoding", "accept-encoding"):
                lines.append(f"{name}: {value}")
        # Always exactly the declared size: the file may have grown since.
        lines.append(f"Content-Length: {size}")
        request_head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for _ in range(2):  # a reused connection may have been closed by the server meanwhile
            try:
                conn, reused = self._checkout(origin, timeout)
            except (OSError, ssl.SSLError, ValueError):
                return None
            try:
                with open(path, "rb") as fh:
                    self._send(conn, fh, request_head, size)
                status, response_headers, keep = conn.read_head()
                body, keep = self._read_body(conn, status, response_headers, keep)
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

    @staticmethod
    def _read_body(conn: _Conn, status: int, headers: list[tuple[str, str]], keep: bool) -> tuple[bytes, bool]:
        """The body, and whether the connection can carry another request."""
        if status in (204, 304):
            return b"", keep
        length = None
        for name, value in headers:
            lname = name.lower()
            if lname == "transfer-encoding":
                if value.strip().lower() != "chunked":
                    raise _Unsupported(f"transfer-encoding {value!r}")
                return conn.read_chunked(), keep
            if lname == "content-length":
                if not value.strip().isdigit():
                    raise _Unsupported("malformed Content-Length")
                length = int(value)
        if length is None:  # the body ends where the server closes the connection
            return conn.read_to_close(), False
        return conn.read_exact(length), keep

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()
