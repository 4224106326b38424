"""The presigned-upload endpoint: an S3-like PUT target on a port of its own.

Real presigned URLs point at S3, not at the API's host, and the local server
does the same: :class:`UploadEndpoint` runs a uvicorn server of its own (plain
HTTP, or HTTPS with a self-signed test certificate, as real presigned URLs
are https) answering ``PUT /_local/uploads/{upload_id}`` through
:class:`UploadSink` (anything else: 404 or 405). It can add a round trip's
latency to each PUT, like the API's ``latency_ms``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .errors import error_body
from .upload_sink import UPLOAD_PUT_PREFIX, Refusal, UploadSink, parse_query

log = logging.getLogger("mixpeek_magics.local")

PORT_META_KEY = "upload_port"
FLUSH_BYTES = 1024 * 1024  # bytes buffered before hashing/writing them off the event loop
INLINE_FLUSH_BYTES = 256 * 1024  # up to this, a body is hashed and written on the event loop


async def _reply(send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-length", str(len(body)).encode())] + list(headers or ())
    if body:
        head.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send, refusal: Refusal) -> None:
    await _reply(send, refusal.status, refusal.body())


class UploadApp:
    """The ASGI application of the endpoint: one route, the presigned PUT."""

    def __init__(self, state: Any) -> None:
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        state = self.state
        path = scope["path"]
        upload_id = path[len(UPLOAD_PUT_PREFIX) :] if path.startswith(UPLOAD_PUT_PREFIX) else ""
        if not upload_id or "/" in upload_id:
            return await _reply(send, 404, _json(404, f"no such resource: {path}"))
        if scope["method"] != "PUT":
            return await _reply(send, 405, _json(405, "presigned upload URLs take PUT only"), [(b"allow", b"PUT")])
        state.request_log.append(("PUT", path))
        latency = state.settings.upload_latency_ms
        if latency > 0:  # an S3-like round trip
            await asyncio.sleep(state.scaled(latency / 1000.0))
        query = parse_query(scope.get("query_string", b"").decode("latin-1"))
        headers = {
            k: v.decode("latin-1") for k, v in scope.get("headers", ()) if k in (b"content-type", b"content-length")
        }
        sink = UploadSink.begin(
            state,
            upload_id,
            query.get("expires", ""),
            query.get("signature", ""),
            headers.get(b"content-type"),
            headers.get(b"content-length"),
            str(id(scope)),
        )
        if isinstance(sink, Refusal):
            return await _refuse(send, sink)
        try:
            if await _receive_body(sink, receive) is None:  # the client went away mid-body: keep nothing
                sink.abort()
                return
            etag, refusal = sink.finish()
        except Exception:
            sink.abort()
            log.exception("PUT %s failed", upload_id)
            return await _reply(send, 500, _json(500, "the upload arrived but could not be recorded; PUT it again"))
        except BaseException:
            sink.abort()
            raise
        if refusal is not None:
            return await _refuse(send, refusal)
        await _reply(send, 200, headers=[(b"etag", f'"{etag}"'.encode())])


async def _receive_body(sink: UploadSink, receive) -> bool | None:
    """Hash and write the body as it arrives; None when the client disconnected."""
    pending: list[bytes] = []
    pending_size = 0
    ok = True
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk and ok:
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= FLUSH_BYTES:  # hashing a MB holds the event loop for ms: a thread does it
                ok = await asyncio.to_thread(sink.add_all, pending)
                pending, pending_size = [], 0
        if not message.get("more_body", False):
            break
    if pending and ok:
        if pending_size <= INLINE_FLUSH_BYTES:
            sink.add_all(pending)  # a small file: the thread hop would cost more than the hashing
        else:
            await asyncio.to_thread(sink.add_all, pending)
    return True


def _json(status: int, message: str) -> bytes:
    import json

    return json.dumps(error_body(status, message, None)).encode()


def tls_files(directory: str | os.PathLike[str]) -> tuple[str, str, str]:
    """``(ca_cert, cert, key)`` PEM paths of the endpoint's test certificate,
    made on first use: a local CA and a certificate it signed for 127.0.0.1,
    ::1 and localhost. Clients trust it through ``ca_cert`` (httpx's
    ``verify=`` or ``SSL_CERT_FILE``); nothing else ever trusts it."""
    folder = Path(directory)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return str(ca_path), str(cert_path), str(key_path)
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mixpeek-magics local test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for path, data in ((key_path, key_pem), (cert_path, cert.public_bytes(pem)), (ca_path, ca.public_bytes(pem))):
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return str(ca_path), str(cert_path), str(key_path)


class UploadEndpoint:
    """The PUT target's server: ``start()`` binds and serves on a thread, ``stop()`` ends it.

    It takes the port it had last time in this data directory when that port
    is free, so presigned URLs issued before a restart keep working."""

    def __init__(
        self,
        state: Any,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state = state
        self.host = host
        self.requested_port = port
        self.tls_dir = tls_dir  # None: plain HTTP
        self.ca_file: str | None = None
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_dir is not None else "http"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        wanted = self.requested_port
        if wanted is None:
            saved = self.state.store.meta_get(PORT_META_KEY)
            wanted = int(saved) if saved and saved.isdigit() else 0
        for port in [wanted, 0] if wanted else [0]:
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY: see server.py
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

    def start(self, timeout: float = 15.0) -> UploadEndpoint:
        import uvicorn

        from .server import _QuickStopServer

        if self._thread is not None:
            return self
        ssl: dict[str, Any] = {}
        if self.tls_dir is not None:
            self.ca_file, cert, key = tls_files(self.tls_dir)
            ssl = {"ssl_certfile": cert, "ssl_keyfile": key}
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self.state.store.meta_set(PORT_META_KEY, str(self.port))
        # log_config=None, access_log=True: the API server configured uvicorn's loggers and
        # their levels; this one must not reset them (access_log=False empties a shared logger)
        config = uvicorn.Config(
            UploadApp(self.state),
            log_config=None,
            access_log=True,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
            **ssl,
        )
        server = _QuickStopServer(config)

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException:  # pragma: no cover
                log.exception("upload endpoint crashed")

        self._server, self._sock = server, sock
        self._thread = threading.Thread(target=run, name=f"mixpeek-local-uploads-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"upload endpoint did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.state.upload_port = self.port
        self.state.upload_scheme = self.scheme
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.state.upload_port == self.port:
            self.state.upload_port = None
        server, thread, sock = self._server, self._thread, self._sock
        if server is not None:
            server.request_exit()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # pragma: no cover
                server.force_exit = True
                thread.join(timeout)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._server = self._thread = self._sock = None
        self.port = None
