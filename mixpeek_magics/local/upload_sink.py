"""What a presigned PUT does with the bytes it receives.

One PUT: check the URL's signature and expiry, the upload's state and the
declared type and size (``UploadSink.begin``), then hash and write the body as
it arrives (``add``), then put the file in place and record its size, SHA-256
and MD5 (``finish``: the MD5 is the S3-like ETag). The upload endpoint's own
HTTP server drives it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from .db import loads
from .errors import error_body
from .services import sign_upload, upload_file

UPLOAD_PUT_PREFIX = "/_local/uploads/"
RECORD_SQL = "UPDATE uploads SET received_size=?, received_sha256=?, received_md5=? WHERE upload_id=?"


@dataclass
class Refusal:
    """A PUT answered with an error: the contract's ErrorResponse."""

    status: int
    message: str
    type: str | None = None  # None: the status's usual type

    def body(self) -> bytes:
        return json.dumps(error_body(self.status, self.message, self.type)).encode()


def _denied(message: str, type: str = "AccessDenied") -> Refusal:
    return Refusal(403, message, type)


def parse_query(text: str) -> dict[str, str]:
    """Query parameters as a route sees them (``request.query_params``: the last value wins)."""
    if "%" not in text and "+" not in text:  # what presigned_url() writes: nothing to unquote
        return dict(item.partition("=")[::2] for item in text.split("&") if item)
    from urllib.parse import parse_qsl

    return dict(parse_qsl(text, keep_blank_values=True))


def part_path(final: str, token: str, pid: int | None = None) -> str:
    """Where a PUT's body is written until it is complete: next to its upload's
    file, named after the writing process (so a later server can tell its own
    PUTs in flight from those a crashed one left behind)."""
    return f"{final}.{os.getpid() if pid is None else pid}.{token}.part"


def sweep_orphan_parts(uploads_dir: str) -> int:
    """Delete the part files of PUTs cut short by a server process that is gone
    (a crash or a kill mid-body); returns how many. Those of live processes,
    this one included, are left alone."""
    if os.name == "nt":  # no cheap way to ask whether a process lives (os.kill would signal it)
        return 0
    removed = 0
    with os.scandir(uploads_dir) as entries:
        for entry in entries:
            pieces = entry.name.split(".")  # <upload_id>.<pid>.<token>.part
            if len(pieces) < 4 or pieces[-1] != "part" or not pieces[-3].isdigit():
                continue
            pid = int(pieces[-3])
            if pid == os.getpid() or _alive(pid):
                continue
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class UploadSink:
    """The body of one accepted PUT on its way to disk."""

    def __init__(self, state: Any, upload_id: str, declared: int | None, token: str) -> None:
        self.state, self.upload_id, self.declared = state, upload_id, declared
        self.final = upload_file(state, upload_id)
        self.part = part_path(self.final, token)
        self.md5, self.sha = hashlib.md5(), hashlib.sha256()
        self.size = 0
        self.too_big = False
        self._fh: Any = None

    @classmethod
    def begin(
        cls,
        state: Any,
        upload_id: str,
        expires_s: str,
        signature: str,
        content_type: str | None,
        content_length: str | None,
        token: str,
    ) -> UploadSink | Refusal:
        """Everything checked before a byte of the body is read."""
        try:
            expires = int(expires_s)
        except ValueError:
            return _denied("presigned URL is missing a valid 'expires' parameter")
        good = sign_upload(state, upload_id, expires)
        if not signature or not hmac.compare_digest(good, signature):
            return _denied("presigned URL signature does not match", "SignatureDoesNotMatch")
        if state.now() > expires:
            return _denied("presigned URL has expired: create a new upload", "ExpiredToken")
        row = state.store.read_one("SELECT doc FROM uploads WHERE upload_id=?", (upload_id,))
        if row is None:
            return _denied("no such upload", "NoSuchUpload")
        d = loads(row["doc"])
        if d["status"] != "PENDING":
            return Refusal(409, f"upload is {d['status']}: it no longer accepts data", "ConflictError")
        sent_type = (content_type or "").strip()
        if sent_type.lower() != d["content_type"].lower():
            return _denied(
                f"Content-Type {sent_type or '(none)'!r} does not match the declared content_type "
                f"{d['content_type']!r}",
                "SignatureDoesNotMatch",
            )
        declared = d.get("file_size_bytes")
        if (
            declared is not None
            and content_length is not None
            and content_length.isdigit()
            and int(content_length) != declared
        ):
            return Refusal(
                400,
                f"Content-Length {content_length} does not match the declared file_size_bytes {declared}",
                "SizeMismatch",
            )
        return cls(state, upload_id, declared, token)

    def add(self, chunk: bytes) -> bool:
        """Hash and write one piece of the body; False once it is longer than declared
        (the rest need not be read: ``finish`` answers the refusal)."""
        if self.too_big:
            return False
        self.size += len(chunk)
        if self.declared is not None and self.size > self.declared:
            self.too_big = True
            return False
        if self._fh is None:
            self._fh = open(os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self.md5.update(chunk)
        self.sha.update(chunk)
        self._fh.write(chunk)
        return True

    def add_all(self, chunks: list[bytes]) -> bool:
        return all(self.add(chunk) for chunk in chunks)

    def finish(self) -> tuple[str, None] | tuple[None, Refusal]:
        """The whole body arrived: ``(etag, None)``, or ``(None, refusal)`` when its
        size is wrong. The file is in place and the upload's row records it."""
        declared = self.declared
        if self.too_big or (declared is not None and self.size != declared):
            self.abort()
            return None, Refusal(
                400,
                f"received {'more than ' if self.too_big else ''}{self.size} bytes but the "
                f"upload declared file_size_bytes {declared}",
                "SizeMismatch",
            )
        if self._fh is None:
            self._fh = open(self.part, "wb")  # an empty body is an empty file
        self._fh.close()
        self._fh = None
        os.replace(self.part, self.final)
        self.state.store.execute(RECORD_SQL, (self.size, self.sha.hexdigest(), self.md5.hexdigest(), self.upload_id))
        return self.md5.hexdigest(), None

    def abort(self) -> None:
        """Drop what was received (a refused or interrupted PUT)."""
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        try:
            os.unlink(self.part)
        except OSError:
            pass
