"""Where blob bytes come from: local files, http(s) URLs, pluggable schemes.

``register_blob_reader(scheme, reader)`` lets other modules (e.g. storage
connections for ``s3://``) teach the worker new URL schemes. A reader is called
as ``reader(url, ctx)`` with a :class:`ReadContext` and returns ``bytes``, a
binary file object, an iterable of ``bytes`` chunks or a ``pathlib.Path``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import APIError

ReaderResult = bytes | BinaryIO | Iterable[bytes] | Path
BlobReader = Callable[[str, "ReadContext"], ReaderResult]

_READERS: dict[str, BlobReader] = {}
_READERS_LOCK = threading.Lock()
CHUNK = 1024 * 1024


class BlobReadError(Exception):
    """A blob's bytes could not be read (message shown as the object's error)."""


class BlobCanceled(Exception):
    """Reading stopped because the task was canceled or the server is stopping."""


@dataclass
class ReadContext:
    org_id: str
    namespace_id: str | None = None
    bucket_id: str | None = None
    object_id: str | None = None
    data_dir: Path | None = None
    state: Any = None  # the server's State (store, settings)
    cancel: threading.Event | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BlobCanceled()


def register_blob_reader(scheme: str, reader: BlobReader) -> None:
    """Register (or replace) the reader of ``scheme://`` URLs."""
    scheme = scheme.lower().rstrip(":/")
    if not re.fullmatch(r"[a-z][a-z0-9+.\-]*", scheme):
        raise ValueError(f"invalid URL scheme {scheme!r}")
    if scheme == "local":
        raise ValueError("the 'local' scheme is reserved for the server's own blobs")
    with _READERS_LOCK:
        _READERS[scheme] = reader


def unregister_blob_reader(scheme: str) -> None:
    with _READERS_LOCK:
        _READERS.pop(scheme.lower().rstrip(":/"), None)


def get_blob_reader(scheme: str) -> BlobReader | None:
    with _READERS_LOCK:
        return _READERS.get(scheme.lower())


def registered_schemes() -> list[str]:
    with _READERS_LOCK:
        return sorted(_READERS)


# -- built-in http(s) reader ---------------------------------------------------
def _http_reader(url: str, ctx: ReadContext) -> Iterable[bytes]:
    import httpx

    timeout = 30.0
    if ctx.state is not None:
        timeout = float(ctx.state.settings.fetch_timeout_seconds)

    def gen() -> Iterable[bytes]:
        try:
            with httpx.Client(timeout=timeout, follow_redirects=True) as client:
                with client.stream("GET", url) as resp:
                    if resp.status_code >= 400:
                        raise BlobReadError(f"cannot download {_safe_url(url)}: HTTP {resp.status_code}")
                    for chunk in resp.iter_bytes(CHUNK):
                        ctx.check_cancel()
                        yield chunk
        except httpx.HTTPError as exc:
            raise BlobReadError(f"cannot download {_safe_url(url)}: {type(exc).__name__}: {exc}") from None

    return gen()


register_blob_reader("http", _http_reader)
register_blob_reader("https", _http_reader)


def _safe_url(url: str) -> str:
    """URL without query string (presigned URLs carry credentials there)."""
    p = urllib.parse.urlsplit(url)
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    return urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", ""))


def materialize(url: str, ctx: ReadContext, tmp_dir: Path) -> tuple[Path, bool]:
    """A local file holding the blob's bytes: ``(path, is_temporary)``."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "local":
        path = local_path(ctx.data_dir, url)
        if not path.exists():
            raise BlobReadError("stored blob is missing from the data directory")
        return path, False
    reader = get_blob_reader(scheme)
    if reader is None:
        raise BlobReadError(f"no reader registered for '{scheme}://' URLs")
    result = reader(url, ctx)
    if isinstance(result, Path):
        return result, False
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = _mkstemp(tmp_dir)
    ok = False
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(result, (bytes, bytearray, memoryview)):
                out.write(result)
            elif hasattr(result, "read"):
                try:
                    while True:
                        ctx.check_cancel()
                        chunk = result.read(CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                finally:
                    close = getattr(result, "close", None)
                    if close:
                        close()
            else:
                for chunk in result:
                    ctx.check_cancel()
                    out.write(chunk)
        ok = True
        return Path(name), True
    except (BlobReadError, BlobCanceled):
        raise
    except Exception as exc:  # noqa: BLE001 - reader failures become object errors
        raise BlobReadError(f"cannot read {_safe_url(url)}: {type(exc).__name__}: {exc}") from None
    finally:
        if not ok:
            try:
                os.unlink(name)
            except OSError:
                pass


def _mkstemp(tmp_dir: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="fetch-", dir=str(tmp_dir))


def local_path(data_dir: Path | None, url: str) -> Path:
    """``local://blobs/<id>`` or ``local://uploads/<id>`` -> file under the data dir."""
    assert data_dir is not None
    rest = url[len("local://") :]
    kind, _, ident = rest.partition("/")
    if kind not in ("blobs", "uploads") or not re.fullmatch(r"[A-Za-z0-9_\-]+", ident):
        raise BlobReadError("invalid local blob reference")
    return Path(data_dir) / kind / ident


# -- inline data parsing ---------------------------------------------------------
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?P<params>(;[^;,]*)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL
)


def decode_data_uri(uri: str) -> tuple[bytes, str | None]:
    m = _DATA_URI.match(uri)
    if not m:
        raise APIError(400, "invalid data URI: expected 'data:<mime>;base64,<data>'", "InvalidBlobData")
    payload = m.group("data")
    if m.group("b64"):
        raw = b64decode(payload)
    else:
        raw = urllib.parse.unquote_to_bytes(payload)
    return raw, m.group("mime")


def b64decode(text: str) -> bytes:
    try:
        cleaned = re.sub(r"\s+", "", text)
        cleaned += "=" * (-len(cleaned) % 4)
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned)
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "blob data is not valid base64", "InvalidBlobData") from None


def write_blob(data_dir: Path, blob_id: str, raw: bytes) -> tuple[str, int, str]:
    """Store inline bytes; returns ``(local url, size, sha256)``."""
    path = Path(data_dir) / "blobs" / blob_id
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(raw)
    os.replace(tmp, path)
    return f"local://blobs/{blob_id}", len(raw), hashlib.sha256(raw).hexdigest()


def remove_quietly(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        pass
