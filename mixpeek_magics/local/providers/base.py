"""What every storage provider of the local server offers.

A provider is built from a connection's ``provider_type`` and (decrypted)
``provider_config`` by :func:`make_provider`. It can test its credentials,
list files lazily (page by page, with :mod:`.filters` applied), stream a
file's bytes, and list folders (``FolderItem`` shape).
"""

from __future__ import annotations

import io
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "ProviderError",
    "ERROR_KINDS",
    "ProviderSettings",
    "SourceFile",
    "StorageProvider",
    "make_provider",
    "test_connection",
    "run_with_deadline",
]

ERROR_KINDS = (
    "bad_credentials",
    "no_such_bucket",
    "access_denied",
    "unreachable",
    "invalid_config",
    "not_found",
    "other",
)

# kind -> (message prefix, error_code used in StorageConnectionTestResponse.details)
_KIND_INFO = {
    "bad_credentials": ("Authentication failed", "AUTH_FAILED"),
    "no_such_bucket": ("Bucket not found", "BUCKET_NOT_FOUND"),
    "access_denied": ("Permission denied", "PERMISSION_DENIED"),
    "unreachable": ("Network error", "NETWORK_ERROR"),
    "invalid_config": ("Invalid configuration", "INVALID_CONFIG"),
    "not_found": ("Not found", "NOT_FOUND"),
    "other": ("Provider error", "PROVIDER_ERROR"),
}


class ProviderError(Exception):
    """A provider operation failed; ``kind`` says what class of failure.

    ``str(err)`` is ``"<Prefix>: <message>"`` (e.g. ``"Authentication failed:
    the access key was rejected (InvalidAccessKeyId)"``), in the style of the
    contract's ``StorageConnectionTestResponse`` examples. Messages never hold
    secret values.
    """

    def __init__(
        self, message: str, kind: str = "other", *, provider_code: str | None = None, status_code: int | None = None
    ):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown ProviderError kind {kind!r}")
        self.message = message
        self.kind = kind
        self.provider_code = provider_code  # e.g. "InvalidAccessKeyId", "invalid_grant", "notFound"
        self.status_code = status_code  # HTTP status from the provider, if any
        super().__init__(self.full_message)

    @property
    def error_code(self) -> str:
        return _KIND_INFO[self.kind][1]

    @property
    def full_message(self) -> str:
        return f"{_KIND_INFO[self.kind][0]}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"error": self.message, "error_code": self.error_code, "kind": self.kind}
        if self.provider_code:
            d["provider_code"] = self.provider_code
        if self.status_code is not None:
            d["status_code"] = self.status_code
        return d

    def __repr__(self) -> str:
        return f"ProviderError({self.message!r}, kind={self.kind!r})"


@dataclass
class ProviderSettings:
    """Knobs for providers. ``from_any`` copies same-named attributes (or keys)
    from the local server's settings object, so it can just pass its own."""

    connect_timeout: float = 3.0  # seconds to open a connection
    read_timeout: float = 30.0  # seconds to wait for bytes
    max_attempts: int = 2  # total attempts for retryable calls
    overall_test_timeout: float = 10.0  # hard cap for test() (covers slow DNS)
    s3_page_size: int = 1000  # ListObjectsV2 MaxKeys
    drive_page_size: int = 1000  # files.list pageSize
    google_drive_api_root: str = "https://www.googleapis.com/drive/v3"
    google_token_uri: str | None = None  # overrides token_uri of OAuth credentials (and SA keys without one)
    # Base credentials used to call STS AssumeRole for S3 ``iam_role`` credentials.
    # None = boto3's default chain (env vars, ~/.aws, instance profile).
    sts_access_key_id: str | None = None
    sts_secret_access_key: str | None = None
    sts_session_token: str | None = None
    sts_endpoint_url: str | None = None  # default: the connection's endpoint_url
    sts_session_name: str = "mixpeek-local-sync"

    @classmethod
    def from_any(cls, settings: Any = None) -> ProviderSettings:
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        values: dict[str, Any] = {}
        for f in fields(cls):
            if isinstance(settings, Mapping):
                if f.name in settings and settings[f.name] is not None:
                    values[f.name] = settings[f.name]
            else:
                v = getattr(settings, f.name, None)
                if v is not None:
                    values[f.name] = v
        return cls(**values)


@dataclass(frozen=True)
class SourceFile:
    """One file found in a storage provider.

    ``key`` is the provider-side path: the S3 object key, or the Drive path
    (``/Folder/Sub/name.ext``). ``relative_path`` is the path below the listed
    root (what glob filters are matched against, with ``key`` and ``name``).
    """

    key: str
    name: str
    size: int | None
    etag_or_md5: str | None
    modified: datetime | None
    mime_type: str | None = None
    file_id: str | None = None  # Google Drive file id
    bucket: str | None = None  # S3 bucket
    relative_path: str = ""
    provider_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def path(self) -> str:
        return self.key

    @property
    def etag(self) -> str | None:
        return self.etag_or_md5

    @property
    def uri(self) -> str:
        """A stable identifier for provenance: ``s3://bucket/key`` or ``gdrive://<file id>``."""
        if self.bucket is not None:
            return f"s3://{self.bucket}/{self.key}"
        if self.file_id is not None:
            return f"gdrive://{self.file_id}"
        return self.key

    @property
    def version_token(self) -> str:
        """Changes when the content changes (for incremental syncs)."""
        mod = self.modified.isoformat() if self.modified else ""
        return f"{self.etag_or_md5 or ''}|{self.size if self.size is not None else ''}|{mod}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "size": self.size,
            "etag_or_md5": self.etag_or_md5,
            "modified": self.modified.isoformat() if self.modified else None,
            "mime_type": self.mime_type,
            "file_id": self.file_id,
            "bucket": self.bucket,
            "relative_path": self.relative_path,
            "provider_type": self.provider_type,
            "uri": self.uri,
        }


class _IterStream(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes], close_fn=None):
        self._chunks = chunks
        self._buf = b""
        self._close_fn = close_fn

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close:
                close()
            if self._close_fn:
                self._close_fn()
        super().close()


class StorageProvider(ABC):
    """A storage provider bound to one connection's configuration."""

    provider_type: str = ""

    @abstractmethod
    def test(self, path: str | None = None) -> None:
        """Check that the credentials work (and, with ``path``, that it can be
        listed). Raises :class:`ProviderError`; returns None on success."""

    @abstractmethod
    def iter_files(self, path: str, filters: Any = None) -> Iterator[SourceFile]:
        """Every file under ``path`` (recursively) that passes ``filters``
        (``FileFilters`` / dict / None), fetched lazily page by page."""

    @abstractmethod
    def iter_bytes(self, file: SourceFile, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The file's content, streamed in chunks."""

    @abstractmethod
    def list_folders(self, path: str = "/") -> list[dict[str, str]]:
        """Direct sub-folders of ``path`` as ``FolderItem`` dicts
        (``id``, ``name``, ``path``, ``mime_type``)."""

    def open(self, file: SourceFile, chunk_size: int = 1024 * 1024) -> io.BufferedReader:
        """A binary, read-only file object streaming the content (close it)."""
        return io.BufferedReader(_IterStream(self.iter_bytes(file, chunk_size)), buffer_size=chunk_size)

    def read_bytes(self, file: SourceFile) -> bytes:
        return b"".join(self.iter_bytes(file))

    def close(self) -> None:
        """Release connections; the provider is unusable afterwards."""
        return None  # nothing to release unless a provider holds connections

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_connection(provider: StorageProvider, path: str | None = None) -> dict[str, Any]:
    """Run ``provider.test(path)`` and answer in ``StorageConnectionTestResponse`` shape."""
    try:
        provider.test(path)
    except ProviderError as err:
        return {"success": False, "message": err.full_message, "details": err.to_dict()}
    return {"success": True, "message": "Connection test succeeded", "details": {"result": "success"}}


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def make_provider(provider_type: str, provider_config: dict[str, Any], *, settings: Any = None) -> StorageProvider:
    """Build the provider for a connection.

    ``s3`` (AWS or any S3-compatible endpoint via ``endpoint_url``), ``tigris``
    (S3 protocol, default endpoint ``https://fly.storage.tigris.dev``) and
    ``google_drive``. ``settings`` is a :class:`ProviderSettings`, a dict, or
    any object with same-named attributes (e.g. the server's settings).
    Raises ``ProviderError(kind="invalid_config")`` for unusable configs.
    """
    ptype = (getattr(provider_type, "value", provider_type) or "").lower()
    if not isinstance(provider_config, Mapping):
        raise ProviderError("provider_config must be a JSON object", "invalid_config")
    ps = ProviderSettings.from_any(settings)
    if ptype in ("s3", "tigris"):
        from .s3 import S3Provider

        return S3Provider(dict(provider_config), settings=ps, provider_type=ptype)
    if ptype == "google_drive":
        from .gdrive import GoogleDriveProvider

        return GoogleDriveProvider(dict(provider_config), settings=ps)
    raise ProviderError(
        f"provider_type {provider_type!r} is not supported by the local server (supported: s3, tigris, google_drive)",
        "invalid_config",
    )


def join_key(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])


def run_with_deadline(fn, seconds: float, what: str):
    """Run ``fn()`` in a daemon thread; if it has not finished after ``seconds``
    raise ``ProviderError(kind="unreachable")``. Guards against stalls that
    socket timeouts do not cover (e.g. a DNS resolver that never answers)."""
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="provider-deadline", daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise ProviderError(f"cannot reach {what}: no answer within {seconds:g} s; check the network", "unreachable")
    if "error" in box:
        raise box["error"]
    return box.get("value")
