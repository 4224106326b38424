"""Resource logic shared by the routes and the worker."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import mimetypes
import os
import posixpath
import time
import urllib.parse
from pathlib import Path
from typing import Any

from . import dedup
from .blobs import b64decode, decode_data_uri, get_blob_reader, remove_quietly, write_blob
from .collections import collection_ids_for_bucket
from .db import dumps, loads
from .errors import APIError, not_found
from .models import FILE_TYPES, CreateBlobRequest, CreateObjectRequest
from .state import State
from .util import check_filename, new_id

ACTIVE_SQL = "('PENDING','QUEUED','IN_PROGRESS','PROCESSING')"


# -- namespaces / buckets --------------------------------------------------------
def namespace_response(state: State, row) -> dict[str, Any]:
    d = loads(row["doc"])
    c = state.store.expect_one(
        "SELECT (SELECT count(*) FROM buckets WHERE namespace_id=?) AS b, "
        "(SELECT count(*) FROM objects WHERE namespace_id=?) AS o",
        (row["namespace_id"], row["namespace_id"]),
    )
    d["bucket_count"] = c["b"]
    d["object_count"] = c["o"]
    return d


def bucket_response(state: State, row) -> dict[str, Any]:
    d = loads(row["doc"])
    d.pop("namespace_id", None)  # not a BucketResponse field (buckets of older data directories have it)
    bid = row["bucket_id"]
    c = state.store.expect_one(
        "SELECT count(*) AS n, coalesce(sum(size_bytes),0) AS s, "
        "coalesce(max(size_bytes),0) AS mx, coalesce(min(size_bytes),0) AS mn "
        "FROM objects WHERE bucket_id=?",
        (bid,),
    )
    d["object_count"] = c["n"]
    d["total_size_bytes"] = c["s"]
    d["storage_stats"] = {
        "total_size_bytes": c["s"],
        "avg_size_bytes": (c["s"] // c["n"]) if c["n"] else 0,
        "max_size_bytes": c["mx"],
        "min_size_bytes": c["mn"],
    }
    b = state.store.query("SELECT status, count(*) AS n FROM batches WHERE bucket_id=? GROUP BY status", (bid,))
    counts = {r["status"]: r["n"] for r in b}
    d["batch_stats"] = {
        "total": sum(counts.values()),
        "active": sum(n for s, n in counts.items() if s in ("DRAFT", "PENDING", "IN_PROGRESS", "PROCESSING")),
        "completed": counts.get("COMPLETED", 0) + counts.get("COMPLETED_WITH_ERRORS", 0),
        "failed": counts.get("FAILED", 0),
    }
    return d


def touch_bucket(state: State, bucket_id: str) -> None:
    row = state.store.one("SELECT doc FROM buckets WHERE bucket_id=?", (bucket_id,))
    if row is None:
        return
    d = loads(row["doc"])
    d["last_upload_at"] = state.iso_now()
    state.store.execute("UPDATE buckets SET doc=? WHERE bucket_id=?", (dumps(d), bucket_id))


# -- objects ---------------------------------------------------------------------
def _name_from_url(url: str) -> str | None:
    path = urllib.parse.urlsplit(url).path
    name = posixpath.basename(urllib.parse.unquote(path))
    try:
        return check_filename(name) if name else None
    except ValueError:
        return None


def _ext_for(mime: str | None) -> str:
    if not mime:
        return ""
    return mimetypes.guess_extension(mime.split(";")[0].strip()) or ""


def build_blob(state: State, org_id: str, bucket_id: str, blob: CreateBlobRequest, index: int) -> dict[str, Any]:
    """Validate one CreateBlobRequest and turn it into a stored BlobModel."""
    blob_id = new_id("blob")
    loc = f"blobs[{index}]"
    if blob.upload_id and blob.data is not None:
        raise APIError(400, f"{loc}: give either 'data' or 'upload_id', not both", "InvalidBlobData")
    if blob.upload_id:
        return _blob_of_upload(state, org_id, bucket_id, blob, blob.upload_id, loc, blob_id)
    if blob.data is None:
        raise APIError(400, f"{loc}: 'data' or 'upload_id' is required", "InvalidBlobData")
    raw, mime, filename, url = _blob_data(blob, blob.data, loc)
    props: dict[str, Any] = dict(blob.metadata or {})
    details: dict[str, Any] = {"filename": None, "size_bytes": None, "mime_type": None, "hash": None}
    if url is not None:
        _check_blob_url(url, loc)
        props.update({"url": url, "source": "url"})
        details["filename"] = _name_from_url(url) or f"{blob.property}"
    else:
        assert raw is not None  # _blob_data gives either a URL or the bytes
        local, size, sha = _write_inline(state, blob_id, raw, loc)
        props.update({"url": local, "source": "inline"})
        details.update(
            filename=filename or f"{blob.property}{_ext_for(mime)}", size_bytes=size, mime_type=mime, hash=sha
        )
    return {
        "blob_id": blob_id,
        "property": blob.property,
        "key_prefix": blob.key_prefix,
        "type": blob.type,
        "properties": props,
        "details": details,
    }


def _blob_of_upload(
    state: State, org_id: str, bucket_id: str, blob: CreateBlobRequest, upload_id: str, loc: str, blob_id: str
) -> dict[str, Any]:
    """The blob of a confirmed upload of this bucket (``upload_id``)."""
    row = state.store.one(
        "SELECT * FROM uploads WHERE upload_id=? AND org_id=? AND bucket_id=?", (upload_id, org_id, bucket_id)
    )
    if row is None:
        raise APIError(404, f"{loc}: upload '{upload_id}' not found in this bucket", "NotFoundError")
    up = loads(row["doc"])
    if up["status"] != "COMPLETED":
        raise APIError(
            400,
            f"{loc}: upload '{upload_id}' is {up['status']}: confirm it first (POST .../uploads/{{upload_id}}/confirm)",
            "UploadNotConfirmed",
        )
    return upload_blob(row, up, blob.property, blob.type, blob.metadata, blob.key_prefix, blob_id)


def _blob_data(blob: CreateBlobRequest, data: Any, loc: str) -> tuple[bytes | None, str | None, str | None, str | None]:
    """A blob's ``data`` as ``(raw bytes, MIME type, filename, URL)``: either a URL or the bytes."""
    raw: bytes | None = None
    mime: str | None = None
    filename: str | None = None
    url: str | None = None
    if isinstance(data, dict):
        if "base64" in data:
            raw = b64decode(str(data["base64"]))
            mime = data.get("mime_type")
            filename = data.get("filename")
        elif "url" in data:
            url = str(data["url"])
        else:
            raise APIError(400, f"{loc}: data object needs a 'base64' or a 'url' key", "InvalidBlobData")
    elif isinstance(data, str) and data.startswith("data:"):
        raw, mime = decode_data_uri(data)
    elif isinstance(data, str) and "://" in data[:32]:
        url = data
    elif isinstance(data, str) and blob.type in ("text", "string"):
        raw, mime = data.encode("utf-8"), "text/plain"
    elif isinstance(data, str):
        raise APIError(
            400,
            f"{loc}: data must be an http(s) or s3:// URL, a data: URI, {{'base64': ...}} or {{'url': ...}}",
            "InvalidBlobData",
        )
    elif blob.type not in FILE_TYPES:
        raw, mime = json.dumps(data).encode(), "application/json"
    else:
        raise APIError(400, f"{loc}: a '{blob.type}' blob needs a URL, a data: URI or base64 data", "InvalidBlobData")
    if filename is not None:
        try:
            check_filename(str(filename))
        except ValueError as exc:
            raise APIError(400, f"{loc}: {exc}", "InvalidFilename") from None
    return raw, mime, filename, url


def _check_blob_url(url: str, loc: str) -> None:
    """Refuse a URL no blob reader takes, or an http(s) URL without a host."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https", "s3") and get_blob_reader(scheme) is None:
        raise APIError(
            400,
            f"{loc}: unsupported URL scheme '{scheme}://' (http, https, s3"
            + "".join(f", {s}" for s in sorted(_extra_schemes()))
            + ")",
            "InvalidBlobData",
        )
    if scheme in ("http", "https") and not urllib.parse.urlsplit(url).hostname:
        raise APIError(400, f"{loc}: invalid URL {url[:200]!r}", "InvalidBlobData")


def _write_inline(state: State, blob_id: str, raw: bytes, loc: str) -> tuple[str, int, str]:
    """Store inline bytes as a blob file: ``(local URL, size, sha256)``; refuse more than ``max_inline_bytes``."""
    if len(raw) > state.settings.max_inline_bytes:
        raise APIError(
            413,
            f"{loc}: inline data is {len(raw)} bytes, more than the "
            f"{state.settings.max_inline_bytes} allowed; use the presigned "
            "upload flow (POST .../uploads)",
            "PayloadTooLargeError",
        )
    return write_blob(state.data_dir, blob_id, raw)


def upload_blob(
    row,
    up: dict[str, Any],
    property: str,
    type: str,
    metadata: dict[str, Any] | None = None,
    key_prefix: str | None = None,
    blob_id: str | None = None,
) -> dict[str, Any]:
    """The stored BlobModel of a received upload (``row``: its uploads row, ``up``: its doc)."""
    props: dict[str, Any] = dict(metadata or {})
    props.update({"url": f"local://uploads/{row['upload_id']}", "source": "upload", "upload_id": row["upload_id"]})
    return {
        "blob_id": blob_id or new_id("blob"),
        "property": property,
        "key_prefix": key_prefix,
        "type": type,
        "properties": props,
        "details": {
            "filename": up["filename"],
            "size_bytes": row["received_size"],
            "mime_type": up["content_type"],
            "hash": row["received_sha256"],
        },
    }


def _extra_schemes() -> list[str]:
    from .blobs import registered_schemes

    return [s for s in registered_schemes() if s not in ("http", "https", "s3")]


def object_sha(blobs: list[dict[str, Any]]) -> str | None:
    hashes = [b["details"].get("hash") for b in blobs]
    if not hashes or any(h is None for h in hashes):
        return None
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("".join(hashes).encode()).hexdigest()


def create_object(
    state: State, org_id: str, namespace_id: str, bucket_id: str, req: CreateObjectRequest
) -> tuple[dict[str, Any], bool]:
    """Create an object; returns ``(ObjectResponse, is_duplicate)`` (a repeated
    ``idempotency_key`` is a duplicate: the object its first create made)."""
    if not req.blobs:
        raise APIError(400, "an object needs at least one blob", "InvalidObject")
    extra = {k: v for k, v in (req.model_extra or {}).items()}
    key = extra.pop("idempotency_key", None)
    replayed = _object_of_key(state.store, bucket_id, key)
    if replayed is not None:
        return replayed, True
    blobs = [build_blob(state, org_id, bucket_id, b, i) for i, b in enumerate(req.blobs)]
    sha = object_sha(blobs)
    if req.skip_duplicates and sha:
        row = state.store.one(
            "SELECT doc FROM objects WHERE bucket_id=? AND sha256=? ORDER BY rowid LIMIT 1", (bucket_id, sha)
        )
        if row is not None:
            for b in blobs:
                if b["properties"].get("source") == "inline":
                    remove_quietly(state.data_dir / "blobs" / b["blob_id"])
            d = loads(row["doc"])
            d["is_duplicate"] = True
            return d, True
    metadata = extra.pop("metadata", {}) or {}
    with state.store.tx() as c:
        replayed = _object_of_key(c, bucket_id, key)  # its first attempt, still running a moment ago
        if replayed is not None:
            delete_object_files(state, {"blobs": blobs})
            return replayed, True
        d = insert_object(
            state,
            c,
            org_id,
            namespace_id,
            bucket_id,
            blobs,
            sha,
            key_prefix=req.key_prefix,
            metadata=metadata,
            skip_duplicates=req.skip_duplicates,
            extra=extra,
        )
        dedup.remember_key(c, d["object_id"], key)
        touch_bucket(state, bucket_id)
    return d, False


def _object_of_key(c: Any, bucket_id: str, key: Any) -> dict[str, Any] | None:
    """The object a create with this ``idempotency_key`` already made in the bucket (a retry's answer)."""
    object_id = dedup.object_for_key(c, bucket_id, key if isinstance(key, str) else None)
    if object_id is None:
        return None
    row = c.execute("SELECT doc FROM objects WHERE object_id=?", (object_id,)).fetchone()
    return {**loads(row["doc"]), "is_duplicate": True} if row is not None else None


def insert_object(
    state: State,
    c,
    org_id: str,
    namespace_id: str,
    bucket_id: str,
    blobs: list[dict[str, Any]],
    sha: str | None,
    *,
    key_prefix: str | None,
    metadata: dict[str, Any],
    skip_duplicates: bool,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store a new object, PENDING (not processed yet: the contract's word for a new object), inside
    the caller's transaction ``c``; returns its ObjectResponse."""
    now = state.iso_now()
    object_id = new_id("obj")
    d = {
        "object_id": object_id,
        "bucket_id": bucket_id,
        "key_prefix": key_prefix,
        "blobs": blobs,
        "source_details": [{"type": "bucket", "source_id": bucket_id}],
        "status": "PENDING",
        "error": None,
        "created_at": now,
        "updated_at": now,
        "metadata": metadata,
        "skip_duplicates": skip_duplicates,
        **(extra or {}),
    }
    size = sum(int(b["details"].get("size_bytes") or 0) for b in blobs)
    c.execute(
        "INSERT INTO objects(object_id, org_id, namespace_id, bucket_id, status, sha256, "
        "size_bytes, doc) VALUES (?,?,?,?,?,?,?,?)",
        (object_id, org_id, namespace_id, bucket_id, "PENDING", sha, size, dumps(d)),
    )
    return d


_BLOB_DETAILS = ("filename", "size_bytes", "mime_type", "hash")


def object_out(d: dict[str, Any]) -> dict[str, Any]:
    """An object as the API answers it: blob details are BlobDetails (what the worker
    keeps beside them, the sniffed MIME type, stays in the database)."""
    blobs = d.get("blobs")
    if not blobs or all(set(b.get("details") or {}) <= set(_BLOB_DETAILS) for b in blobs):
        return d
    return {
        **d,
        "blobs": [
            {**b, "details": {k: v for k, v in (b.get("details") or {}).items() if k in _BLOB_DETAILS}} for b in blobs
        ],
    }


def save_object(state: State, d: dict[str, Any]) -> None:
    size = sum(int(b["details"].get("size_bytes") or 0) for b in d.get("blobs", []))
    state.store.execute(
        "UPDATE objects SET doc=?, status=?, sha256=?, size_bytes=? WHERE object_id=?",
        (dumps(d), d["status"], object_sha(d.get("blobs", [])), size, d["object_id"]),
    )


def delete_object_files(state: State, d: dict[str, Any]) -> None:
    for b in d.get("blobs", []):
        if b.get("properties", {}).get("source") == "inline":
            remove_quietly(state.data_dir / "blobs" / b["blob_id"])


# -- uploads ---------------------------------------------------------------------
def sign_upload(state: State, upload_id: str, expires: int) -> str:
    msg = f"PUT\n{upload_id}\n{expires}".encode()
    return hmac.new(state.secret, msg, hashlib.sha256).hexdigest()


def presigned_url(state: State, base_url: str, upload_id: str, expires: int) -> str:
    """The PUT URL of an upload: the upload endpoint's port on the host the
    client reached the API by (the API's own base URL when no endpoint runs)."""
    if state.upload_port is not None:
        base_url = upload_base_url(base_url, state.upload_port, state.upload_scheme)
    # An int and a hex digest need no quoting (urlencode cost more than the signing).
    return (
        f"{base_url.rstrip('/')}/_local/uploads/{upload_id}"
        f"?expires={int(expires)}&signature={sign_upload(state, upload_id, expires)}"
    )


@functools.lru_cache(maxsize=64)  # once per host and port, not once per upload of a batch
def upload_base_url(api_base_url: str, port: int, scheme: str = "http") -> str:
    host = urllib.parse.urlsplit(api_base_url).hostname or "127.0.0.1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def upload_path(state: State, upload_id: str) -> Path:
    return Path(upload_file(state, upload_id))


def upload_file(state: State, upload_id: str) -> str:
    """Where an upload's received bytes are (``upload_path`` as a plain string)."""
    return os.path.join(state.uploads_dir, upload_id)


def _derive_property(filename: str) -> str:
    import re

    stem = posixpath.basename(filename).rsplit(".", 1)[0]
    prop = re.sub(r"[^A-Za-z0-9_]", "_", stem)[:100].strip("_")
    return prop or "file"


def blob_type_for_content_type(content_type: str) -> str:
    """The bucket-schema blob type (image, video, audio, pdf, excel, text) of a MIME type."""
    main = content_type.split(";")[0].strip().lower()
    if main.startswith("image/"):
        return "image"
    if main.startswith("video/"):
        return "video"
    if main.startswith("audio/"):
        return "audio"
    if main == "application/pdf":
        return "pdf"
    if "spreadsheet" in main or "excel" in main:
        return "excel"
    return "text"


def confirm_upload(
    state: State,
    org_id: str,
    namespace_id: str,
    bucket_id: str,
    upload_id: str,
    etag: str | None = None,
    file_size_bytes: int | None = None,
    file_hash: str | None = None,
) -> dict[str, Any]:
    """Verify an uploaded file and (optionally) create its object: ConfirmUploadResponse."""
    [(result, _)] = confirm_uploads(
        state,
        org_id,
        namespace_id,
        bucket_id,
        [{"upload_id": upload_id, "etag": etag, "file_size_bytes": file_size_bytes, "file_hash": file_hash}],
    )
    if isinstance(result, APIError):
        raise result
    return result


def confirm_uploads(
    state: State,
    org_id: str,
    namespace_id: str,
    bucket_id: str,
    confirmations: list[dict[str, Any]],
    task_id: str | None = None,
) -> list[tuple[dict[str, Any] | APIError, dict | None]]:
    """Confirm several uploads in one transaction (a batch confirm does a few
    hundred per task: one commit each cost more than the work itself).

    Per confirmation, in order: ``(ConfirmUploadResponse or the APIError that
    refused it, the upload's doc or None when there is no such upload)``. With
    ``task_id`` (a batch confirm's task), the outcome is written on each upload:
    its ``task_id``, and a refused confirmation makes it FAILED with the reason
    in ``message`` (the caller has no other answer to read it from)."""
    results: list[tuple[dict[str, Any] | APIError, dict | None]] = []
    created = False
    with state.store.tx() as c:
        for conf in confirmations:
            upload_id = str(conf.get("upload_id") or "")
            row = c.execute(
                "SELECT * FROM uploads WHERE upload_id=? AND org_id=? AND bucket_id=?", (upload_id, org_id, bucket_id)
            ).fetchone()
            up = loads(row["doc"]) if row is not None else None
            try:
                r = _confirm_row(
                    state,
                    c,
                    org_id,
                    namespace_id,
                    bucket_id,
                    upload_id,
                    row,
                    up,
                    conf.get("etag"),
                    conf.get("file_size_bytes"),
                    conf.get("file_hash"),
                    task_id=task_id,
                )
            except APIError as exc:
                if (
                    task_id is not None
                    and up is not None
                    and up.get("status") not in ("COMPLETED", "FAILED", "CANCELED")
                ):
                    up.update(status="FAILED", message=exc.message, task_id=task_id, presigned_url=None)
                    c.execute("UPDATE uploads SET doc=?, status='FAILED' WHERE upload_id=?", (dumps(up), upload_id))
                results.append((exc, up))
                continue
            created = created or r.pop("_created")
            results.append((r, up))
        if created:
            touch_bucket(state, bucket_id)
    return results


def _confirm_row(
    state: State,
    c,
    org_id: str,
    namespace_id: str,
    bucket_id: str,
    upload_id: str,
    row,
    up: dict[str, Any] | None,
    etag: str | None,
    file_size_bytes: int | None,
    file_hash: str | None,
    task_id: str | None = None,
) -> dict[str, Any]:
    if row is None or up is None:
        raise not_found("upload", upload_id)
    if up["status"] == "COMPLETED":
        return _confirm_response(
            upload_id,
            up.get("etag"),
            row["received_size"],
            up.get("file_hash"),
            up.get("verified_at"),
            up.get("completed_at"),
            up.get("object_id"),
            "upload was already confirmed",
            created=False,
        )
    _check_received(state, upload_id, row, up)
    size, sha, md5 = row["received_size"], row["received_sha256"], row["received_md5"]
    _verify_received(upload_id, up, size, sha, md5, etag, file_size_bytes, file_hash)
    now = state.iso_now()
    object_id, created, message = _object_on_confirm(state, c, org_id, namespace_id, bucket_id, row, up, sha)
    up.update(
        status="COMPLETED",
        etag=f'"{md5}"',
        file_hash=sha,
        verified_at=now,
        completed_at=now,
        object_id=object_id,
        presigned_url=None,
        message=message,
    )
    if task_id is not None:
        up["task_id"] = task_id
    c.execute(
        "UPDATE uploads SET doc=?, status='COMPLETED', file_hash=? WHERE upload_id=?", (dumps(up), sha, upload_id)
    )
    return _confirm_response(upload_id, f'"{md5}"', size, sha, now, now, object_id, message, created=created)


def _confirm_response(
    upload_id: str,
    etag: str | None,
    size: int | None,
    sha: str | None,
    verified_at: str | None,
    completed_at: str | None,
    object_id: str | None,
    message: str,
    *,
    created: bool,
) -> dict[str, Any]:
    """A ConfirmUploadResponse (``_created``: whether the confirmation made an object; the caller pops it)."""
    return {
        "upload_id": upload_id,
        "status": "COMPLETED",
        "etag": etag,
        "file_size_bytes": size,
        "file_hash": sha,
        "verified_at": verified_at,
        "completed_at": completed_at,
        "object_id": object_id,
        "task_id": None,
        "message": message,
        "_created": created,
    }


def _check_received(state: State, upload_id: str, row, up: dict[str, Any]) -> None:
    """Refuse an upload that cannot be confirmed: canceled, or no bytes received yet."""
    # FAILED (a batch confirmation refused it) can be confirmed again: the bytes are verified anew
    if up["status"] == "CANCELED":
        raise APIError(409, f"upload '{upload_id}' is {up['status']} and cannot be confirmed", "ConflictError")
    if row["received_size"] is None or not os.path.exists(upload_file(state, upload_id)):
        raise APIError(
            400,
            f"no file has been uploaded for upload '{upload_id}' yet: PUT the bytes to its presigned_url first",
            "UploadNotFound",
            {"upload_id": upload_id},
        )


def _verify_received(
    upload_id: str,
    up: dict[str, Any],
    size: int,
    sha: str,
    md5: str,
    etag: str | None,
    file_size_bytes: int | None,
    file_hash: str | None,
) -> None:
    """The received bytes against what the confirmation and the upload declare (size, sha256, ETag)."""
    problems = []
    if file_size_bytes is not None and file_size_bytes != size:
        problems.append(f"file_size_bytes {file_size_bytes} does not match the {size} bytes received")
    if up.get("file_size_bytes") is not None and up["file_size_bytes"] != size:
        problems.append(f"declared file_size_bytes {up['file_size_bytes']} does not match the {size} bytes received")
    for label, want in (("file_hash", file_hash), ("declared file_hash", up.get("file_hash"))):
        if want is not None and want.lower() != sha:
            problems.append(f"{label} {want} does not match the sha256 of the received bytes ({sha})")
    if etag is not None and etag.strip().strip('"').lower() != md5:
        problems.append(f'etag {etag} does not match the ETag of the received bytes ("{md5}")')
    if problems:
        raise APIError(
            400,
            f"upload '{upload_id}' failed verification: " + "; ".join(problems),
            "UploadVerificationError",
            {"upload_id": upload_id, "received_size": size, "received_sha256": sha, "received_etag": f'"{md5}"'},
        )


def _object_on_confirm(
    state: State, c, org_id: str, namespace_id: str, bucket_id: str, row, up: dict[str, Any], sha: str
) -> tuple[str | None, bool, str]:
    """The object a confirmation gives: ``(object_id, created, message)``; an identical
    object of the bucket when ``skip_duplicates``; none unless ``create_object_on_confirm``."""
    if not up.get("create_object_on_confirm", True):
        return None, False, "upload confirmed"
    dup = None
    if up.get("skip_duplicates", True):
        dup = c.execute(
            "SELECT object_id FROM objects WHERE bucket_id=? AND sha256=? ORDER BY rowid LIMIT 1", (bucket_id, sha)
        ).fetchone()
    if dup is not None:
        object_id = dup["object_id"]
        dedup.mark_duplicate(up, object_id, dedup.original_upload(c, bucket_id, sha, row["upload_id"]))
        return object_id, False, f"upload confirmed; identical content already stored as object {object_id}"
    # The same object a CreateObjectRequest with one blob by upload_id would give.
    prop = up.get("blob_property") or _derive_property(up["filename"])
    blob = upload_blob(row, up, prop, up.get("blob_type") or blob_type_for_content_type(up["content_type"]))
    d = insert_object(
        state,
        c,
        org_id,
        namespace_id,
        bucket_id,
        [blob],
        object_sha([blob]),
        key_prefix=None,
        metadata=up.get("object_metadata") or {},
        skip_duplicates=False,
    )
    object_id = d["object_id"]
    return object_id, True, f"upload confirmed; created object {object_id}"


# -- batches ---------------------------------------------------------------------
# What the local server answers for BatchModel fields it has no engine behind
# (required by the contract, or defaults the official SDK reads).
MAX_RESUBMITS = 3
TERMINAL_BATCH = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")
_LIFECYCLE = {
    "DRAFT": "accepted",
    "PENDING": "queued",
    "QUEUED": "queued",
    "IN_PROGRESS": "extracting",
    "PROCESSING": "extracting",
    "COMPLETED": "indexed",
    "COMPLETED_WITH_ERRORS": "indexed",
    "FAILED": "failed",
    "CANCELED": "canceled",
}


def new_batch_doc(
    batch_id: str, bucket_id: str, namespace_id: str, object_ids: list[str], metadata: dict | None, now: str
) -> dict[str, Any]:
    """A DRAFT BatchModel (every field it keeps is declared by the contract)."""
    return {
        "batch_id": batch_id,
        "bucket_id": bucket_id,
        "namespace_id": namespace_id,
        "status": "DRAFT",
        "object_ids": object_ids,
        "collection_ids": [],
        "error": None,
        "error_summary": None,
        "failure_reason": None,
        "failure_category": None,
        "type": "BUCKET",
        "manifest_key": None,
        "task_id": None,
        "loaded_object_ids": None,
        "internal_metadata": None,
        "metadata": metadata or {},
        "tier_tasks": [],
        "current_tier": None,
        "total_tiers": 1,
        "dag_tiers": [[]],
        "progress": None,
        "failed_objects": None,
        "failed_object_count": 0,
        "documents_written": None,
        "documents_resolvable": False,
        "last_activity_at": None,
        "retry_count": 0,
        "max_retries": 3,
        "node_death_resubmit_count": 0,
        "deploy_resubmit_count": 0,
        "max_node_death_resubmits": MAX_RESUBMITS,
        "max_deploy_resubmits": MAX_RESUBMITS,
        "lifecycle": "accepted",
        "lifecycle_reason": None,
        "created_at": now,
        "updated_at": now,
    }


def batch_out(d: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A stored batch as the API answers it: the computed fields (``status_message``,
    ``estimated_completion``, ``health``, ``documents_resolvable``) added, nothing undeclared."""
    out = {k: v for k, v in d.items() if not k.startswith("_")}
    if d.get("_resolvable_at") is not None:
        out["documents_resolvable"] = (time.time() if now is None else now) >= float(d["_resolvable_at"])
    out.setdefault("max_node_death_resubmits", MAX_RESUBMITS)
    out.setdefault("max_deploy_resubmits", MAX_RESUBMITS)
    status = out.get("status") or "DRAFT"
    out.setdefault("lifecycle", _LIFECYCLE.get(status))
    out.setdefault("lifecycle_reason", None)
    progress = out.get("progress")
    loaded = out.get("loaded_object_ids")
    n = len(loaded if loaded is not None else out.get("object_ids") or [])
    # objects the submit left out as already processed (dedup_strategy skip); a retry loads only the failed ones
    elsewhere = 0 if loaded is None or out.get("retry_count") else len(out.get("object_ids") or []) - n
    failed = int(out.get("failed_object_count") or 0)
    out["estimated_completion"] = None
    out["health"] = None
    if status == "DRAFT":
        msg = f"Draft: {n} object(s), not submitted yet"
    elif status in ("PENDING", "QUEUED"):
        msg = "Queued for processing"
    elif status in ("PROCESSING", "IN_PROGRESS"):
        out["health"] = "healthy" if progress else "unknown"
        if progress:
            msg = (
                f"Processing {progress.get('processed') or 0:,}/{progress.get('total') or 0:,} objects "
                f"({float(progress.get('percent') or 0.0):.1f}%)"
            )
            eta = progress.get("eta_seconds")
            if eta is not None and out.get("last_activity_at"):
                from .util import iso, parse_iso

                out["estimated_completion"] = iso(parse_iso(out["last_activity_at"]) + float(eta))
        else:
            msg = "Starting"
    elif status == "COMPLETED":
        msg = f"Completed: {n:,} object(s) processed"
        if elsewhere:
            msg += f"; {elsewhere:,} already processed"
    elif status == "COMPLETED_WITH_ERRORS":
        msg = f"Completed with errors: {failed:,} of {n:,} object(s) failed"
    elif status == "FAILED":
        msg = f"Failed: {out.get('error') or out.get('failure_reason') or 'processing failed'}"
    elif status == "CANCELED":
        msg = "Canceled"
    else:
        msg = status
    out["status_message"] = msg
    return out


def _tier0(task_id: str, collection_ids: list[str]) -> dict[str, Any]:
    """The TierTaskInfo of a batch's tier 0 (collection_ids: null when the bucket has no collection)."""
    return {
        "tier_num": 0,
        "task_id": task_id,
        "status": "PENDING",
        "collection_ids": collection_ids or None,
        "extractor_jobs": [],
        "source_type": "bucket",
        "source_collection_ids": None,
        "parent_task_id": None,
        "started_at": None,
        "completed_at": None,
        "last_activity_at": None,
        "duration_ms": None,
        "errors": [],
        "error_summary": None,
    }


def batch_task_data(b: dict[str, Any], namespace_id: str, ids: list[str], current_tier: int | None) -> dict[str, Any]:
    """A batch task's ``additional_data``: the documented keys only."""
    return {
        "batch_id": b["batch_id"],
        "bucket_id": b["bucket_id"],
        "namespace_id": namespace_id,
        "current_tier": current_tier,
        "total_tiers": int(b.get("total_tiers") or 1),
        "collection_ids": list(b.get("collection_ids") or []),
        "object_count": len(ids),
        "sample_object_ids": ids[:5],
    }


def submit_batch(
    state: State, org_id: str, namespace_id: str, bucket_id: str, batch_id: str, object_ids: list[str] | None = None
) -> str:
    """Create the processing task of a batch and queue it; returns the task id."""
    with state.store.tx() as c:
        row = state.store.expect_one("SELECT doc FROM batches WHERE batch_id=?", (batch_id,))
        b = loads(row["doc"])
        ids = list(object_ids if object_ids is not None else b["object_ids"])
        retry = object_ids is not None
        b["collection_ids"] = collection_ids_for_bucket(state, bucket_id)
        if not retry:  # decided in this transaction, beside the batch's own update
            ids = dedup.skip_processed(c, b, bucket_id, ids)
        task_id = state.create_task(
            org_id,
            "api_buckets_batches_process",
            inputs=[batch_id],
            additional_data=batch_task_data(b, namespace_id, ids, None),
            outputs=[],
            job={"kind": "batch", "batch_id": batch_id, "object_ids": ids},
        )
        now = state.iso_now()
        b.update(
            status="PENDING",
            task_id=task_id,
            updated_at=now,
            error=None,
            error_summary=None,
            failure_reason=None,
            failure_category=None,
            loaded_object_ids=ids,
            current_tier=None,
            progress=None,
            documents_written=None,
            documents_resolvable=False,
            _resolvable_at=None,
            lifecycle="queued",
            lifecycle_reason="waiting for a worker of the local server",
        )
        if retry:
            b["retry_count"] = int(b.get("retry_count") or 0) + 1
            b["last_retry_at"] = now
            b["retry_reason"] = "retry requested"
            # the retried objects get a new outcome; the others keep theirs
            kept = [f for f in b.get("failed_objects") or [] if f.get("object_id") not in set(ids)]
            b["failed_objects"] = kept or None
            b["failed_object_count"] = len(kept)
        else:
            b["failed_objects"] = None
            b["failed_object_count"] = 0
        b["tier_tasks"] = [_tier0(task_id, b["collection_ids"])]
        c.execute("UPDATE batches SET doc=?, status='PENDING' WHERE batch_id=?", (dumps(b), batch_id))
        c.executemany(
            "UPDATE objects SET status='PENDING' WHERE object_id=? AND bucket_id=?", [(oid, bucket_id) for oid in ids]
        )
    state.submit_task(task_id)
    return task_id


def requeue_batch(state: State, batch_id: str, task_id: str) -> None:
    """A batch whose task is run again from the start (after a restart)."""

    def fn(b: dict[str, Any], now: str) -> None:
        # the contract's word for a job lost with its node and resubmitted by the service
        b["node_death_resubmit_count"] = int(b.get("node_death_resubmit_count") or 0) + 1
        b.update(
            status="PENDING",
            progress=None,
            current_tier=None,
            documents_written=None,
            documents_resolvable=False,
            _resolvable_at=None,
            lifecycle="queued",
            lifecycle_reason="interrupted by a server restart; queued again",
        )
        for t in b.get("tier_tasks") or []:
            t.update(status="PENDING", started_at=None, completed_at=None, duration_ms=None)

    _change_batch(state, batch_id, task_id, fn)


def _change_batch(state: State, batch_id: str, task_id: str | None, fn, *, only_active: bool = False) -> bool:
    """Reload a batch, apply ``fn(doc, now)`` and save it, in one transaction; False
    when the batch is gone or a newer task owns it (or, ``only_active``, it ended)."""
    with state.store.tx():
        row = state.store.one("SELECT doc FROM batches WHERE batch_id=?", (batch_id,))
        if row is None:
            return False
        b = loads(row["doc"])
        if task_id is not None and b.get("task_id") != task_id:
            return False  # a newer task owns this batch now
        if only_active and b.get("status") in TERMINAL_BATCH:
            return False
        now = state.iso_now()
        fn(b, now)
        b["updated_at"] = now
        state.store.execute("UPDATE batches SET doc=?, status=? WHERE batch_id=?", (dumps(b), b["status"], batch_id))
        return True


def batch_started(state: State, batch_id: str, task_id: str, total: int) -> None:
    def fn(b: dict[str, Any], now: str) -> None:
        b.update(
            status="PROCESSING",
            current_tier=0,
            lifecycle="extracting",
            lifecycle_reason=None,
            last_activity_at=now,
            progress=progress_dict(0, total, 0, None, 0.0),
        )
        for t in b.get("tier_tasks") or []:
            if t.get("task_id") == task_id:
                t.update(status="PROCESSING", started_at=t.get("started_at") or now, last_activity_at=now)

    _change_batch(state, batch_id, task_id, fn, only_active=True)


def progress_dict(processed: int, total: int, failed: int, first_error: str | None, elapsed: float) -> dict[str, Any]:
    """A BatchProgress."""
    rate = processed / elapsed if elapsed > 0 and processed else None
    return {
        "processed": processed,
        "total": total,
        "percent": round(processed * 100.0 / total, 2) if total else 100.0,
        "items_per_second": round(rate, 3) if rate else None,
        "eta_seconds": round((total - processed) / rate, 1) if rate else None,
        "errors": failed,
        "first_error": first_error,
        "objects_failed": failed,
        "objects_extracted": processed - failed,
        "objects_skipped": 0,
        "batch_count": processed,
        "documents_skipped": 0,
    }


def batch_progress(
    state: State, batch_id: str, task_id: str, progress: dict[str, Any], failures: list[dict[str, Any]]
) -> bool:
    """A refresh of a running batch: its ``progress`` and the failures so far."""

    def fn(b: dict[str, Any], now: str) -> None:
        all_failed = _all_failures(b, failures)
        b.update(
            progress=progress,
            last_activity_at=now,
            failed_objects=all_failed,
            failed_object_count=len(all_failed or []),
        )
        for t in b.get("tier_tasks") or []:
            if t.get("task_id") == task_id:
                t["last_activity_at"] = now

    return _change_batch(state, batch_id, task_id, fn, only_active=True)


def _all_failures(b: dict[str, Any], failures: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The failures of this run after those a retry left in place (objects not retried)."""
    ids = set(b.get("loaded_object_ids") or [])
    kept = [f for f in b.get("failed_objects") or [] if f.get("object_id") not in ids]
    out = kept + failures
    return out or None


def finish_batch(
    state: State,
    batch_id: str,
    task_id: str,
    status: str,
    failures: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    error: str | None = None,
    documents_written: int = 0,
) -> None:
    """A batch whose task ended (COMPLETED, COMPLETED_WITH_ERRORS or FAILED). Its documents were
    committed with their objects, so they are queryable now (``documents_resolvable``)."""

    def fn(b: dict[str, Any], now: str) -> None:
        all_failed = _all_failures(b, failures)
        b.update(
            status=status,
            progress=None,
            documents_written=documents_written,
            documents_resolvable=True,
            _resolvable_at=state.now() + state.scaled(state.settings.resolvable_delay_seconds),
            current_tier=0,
            last_activity_at=now,
            failed_objects=all_failed,
            failed_object_count=len(all_failed or []),
            lifecycle=_LIFECYCLE[status],
        )
        b["error_summary"] = {"runtime": len(all_failed)} if all_failed else None
        if status == "FAILED":
            b.update(error=error, failure_reason=error, failure_category="pipeline", lifecycle_reason=error)
        else:
            b["lifecycle_reason"] = None
        for t in b.get("tier_tasks") or []:
            if t.get("task_id") == task_id:
                _end_tier(t, status, now)
                t["errors"] = errors
                t["error_summary"] = {"runtime": len(errors)} if errors else None

    _change_batch(state, batch_id, task_id, fn)


def _end_tier(t: dict[str, Any], status: str, now: str) -> None:
    from .util import parse_iso

    t.update(status=status, completed_at=now, last_activity_at=now)
    if t.get("started_at"):
        t["duration_ms"] = round((parse_iso(now) - parse_iso(t["started_at"])) * 1000.0, 1)


def update_batch_status(
    state: State, batch_id: str, status: str, *, error: str | None = None, task_id: str | None = None
) -> None:
    """A batch that failed or was canceled outside of its task's normal end."""

    def fn(b: dict[str, Any], now: str) -> None:
        b.update(status=status, progress=None, lifecycle=_LIFECYCLE.get(status), updated_at=now)
        if status == "FAILED":
            b.update(error=error, failure_reason=error, failure_category="infrastructure", lifecycle_reason=error)
        elif status == "CANCELED":
            b["lifecycle_reason"] = error or "canceled"
        for t in b.get("tier_tasks") or []:
            if task_id is None or t.get("task_id") == task_id:
                _end_tier(t, status, now)

    _change_batch(state, batch_id, task_id, fn)


def after_batch_task(state: State, task_id: str) -> None:
    """A batch task ended: fold its results into the sync that submitted it, in the
    caller's transaction (a client that sees the task end sees the sync's totals)."""
    if state.sync_runner is not None:
        state.sync_runner.fold_task(task_id)


def remove_bucket_data(state: State, bucket_id: str) -> int:
    """Delete a bucket's objects, uploads and batches (rows and files); cancel its tasks."""
    objs = state.store.query("SELECT doc FROM objects WHERE bucket_id=?", (bucket_id,))
    for r in objs:
        delete_object_files(state, loads(r["doc"]))
    ups = state.store.query("SELECT upload_id FROM uploads WHERE bucket_id=?", (bucket_id,))
    for r in ups:
        remove_quietly(upload_path(state, r["upload_id"]))
    batches = state.store.query("SELECT doc FROM batches WHERE bucket_id=?", (bucket_id,))
    for r in batches:
        tid = loads(r["doc"]).get("task_id")
        if tid:
            cancel_task(state, tid, reason="bucket deleted")
    with state.store.tx() as c:
        c.execute("DELETE FROM objects WHERE bucket_id=?", (bucket_id,))
        c.execute("DELETE FROM uploads WHERE bucket_id=?", (bucket_id,))
        c.execute("DELETE FROM batches WHERE bucket_id=?", (bucket_id,))
        c.execute("DELETE FROM buckets WHERE bucket_id=?", (bucket_id,))
    return len(objs)


def cancel_task(state: State, task_id: str, reason: str = "canceled") -> bool:
    """Mark a task CANCELED (if still active) and stop its work promptly."""
    row = state.get_task_row(task_id)
    if row is None:
        return False
    job = loads(row["job"]) or {}
    with state.store.tx():
        changed = False
        if row["status"] not in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"):
            changed = state.update_task(task_id, status="CANCELED")
        if changed and job.get("kind") == "batch":
            update_batch_status(state, job["batch_id"], "CANCELED", task_id=task_id, error=reason)
            state.store.execute(
                "UPDATE objects SET status='CANCELED', doc=json_set(doc, '$.status', 'CANCELED') "
                "WHERE object_id IN (SELECT value FROM json_each(?)) AND status IN "
                "('PENDING','PROCESSING')",
                (dumps(job.get("object_ids", [])),),
            )
            after_batch_task(state, task_id)
    if state.worker is not None:
        state.worker.cancel(task_id)
    return changed
