"""Collections and their documents on the local server.

A collection's ``source`` is one or more buckets and its ``feature_extractor``
one of :data:`.extractors.EXTRACTORS`. When an object of a source bucket is
processed (tier 0 of its batch), :func:`run_collections_for_object` runs every
collection of that bucket on it and writes the documents: the extractor's
fields at the root (``text``; ``width``, ``height``, ``dominant_colors``,
``thumbnail_url``), the object's ``metadata``, the lineage and source blob in
``_internal``, the source blob and thumbnail in ``document_blobs``. A document's
vector is kept in its own column (sparse), never in the ``doc``.

Thumbnails are JPEG files under ``<data dir>/thumbnails/``, served by
``GET /_local/thumbnails/{document_id}`` with an expiring signature (like a
presigned URL: no API key), which is what ``thumbnail_url`` holds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from . import extractors as X
from .blobs import BlobCanceled, BlobReadError, ReadContext, materialize, remove_quietly
from .db import dumps, loads
from .errors import APIError
from .util import new_id

log = logging.getLogger("mixpeek_magics.local.collections")

__all__ = [
    "SEARCH_SCHEMA",
    "ensure_schema",
    "install",
    "run_collections_for_object",
    "collection_ids_for_bucket",
    "collection_response",
    "document_response",
    "thumbnail_url",
]

SEARCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    rowid INTEGER PRIMARY KEY,
    collection_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_col_ns_name ON collections(namespace_id, name);
CREATE TABLE IF NOT EXISTS collection_sources (
    bucket_id TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    PRIMARY KEY (bucket_id, collection_id)
);
CREATE TABLE IF NOT EXISTS documents (
    rowid INTEGER PRIMARY KEY,
    document_id TEXT UNIQUE NOT NULL,
    collection_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    root_object_id TEXT,
    chunk_index INTEGER NOT NULL DEFAULT 0,
    modality TEXT,
    has_thumbnail INTEGER NOT NULL DEFAULT 0,
    vector BLOB,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_doc_col ON documents(collection_id, rowid);
CREATE INDEX IF NOT EXISTS ix_doc_obj ON documents(collection_id, root_object_id);
CREATE TABLE IF NOT EXISTS retrievers (
    rowid INTEGER PRIMARY KEY,
    retriever_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_ret_ns_name ON retrievers(namespace_id, name);
"""

THUMBNAIL_PREFIX = "/_local/thumbnails/"
THUMBNAIL_URL_SECONDS = 3600
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_TEXT_BYTES = 4 * X.MAX_TEXT_CHARS


def ensure_schema(state: Any) -> None:
    store = state.store
    with store.lock:
        store.conn.executescript(SEARCH_SCHEMA)
    thumbnails_dir(state).mkdir(parents=True, exist_ok=True, mode=0o700)


def thumbnails_dir(state: Any) -> Path:
    return Path(state.data_dir) / "thumbnails"


def thumbnail_path(state: Any, document_id: str) -> Path:
    return thumbnails_dir(state) / f"{document_id}.jpg"


# -- signed thumbnail URLs -------------------------------------------------------------------
def _sign(state: Any, document_id: str, expires: int) -> str:
    return hmac.new(state.secret, f"GET\nthumbnail\n{document_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def thumbnail_url(state: Any, base_url: str, document_id: str) -> str:
    expires = int(state.now()) + THUMBNAIL_URL_SECONDS
    return (
        f"{base_url.rstrip('/')}{THUMBNAIL_PREFIX}{document_id}"
        f"?expires={expires}&signature={_sign(state, document_id, expires)}"
    )


def check_thumbnail_signature(state: Any, document_id: str, expires: str | None, signature: str | None) -> bool:
    try:
        exp = int(expires or "")
    except ValueError:
        return False
    if exp < state.now() or not signature:
        return False
    return hmac.compare_digest(_sign(state, document_id, exp), signature)


# -- collections ----------------------------------------------------------------------------
def find_collection(state: Any, namespace_id: str, ident: str):
    row = state.store.one(
        "SELECT * FROM collections WHERE namespace_id=? AND (collection_id=? OR name=?) "
        "ORDER BY (collection_id=?) DESC LIMIT 1",
        (namespace_id, ident, ident, ident),
    )
    if row is None:
        raise APIError(
            404, f"collection '{ident}' not found", "NotFoundError", {"resource": "collection", "identifier": ident}
        )
    return row


def collection_ids_for_bucket(state: Any, bucket_id: str) -> list[str]:
    """The ids of the (enabled) collections whose source is ``bucket_id``, oldest first."""
    rows = state.store.query(
        "SELECT c.collection_id, c.doc FROM collection_sources s JOIN collections c "
        "ON c.collection_id = s.collection_id WHERE s.bucket_id=? ORDER BY c.rowid",
        (bucket_id,),
    )
    return [r["collection_id"] for r in rows if loads(r["doc"]).get("enabled", True) is not False]


def forget_bucket(state: Any, bucket_id: str) -> None:
    """A deleted bucket feeds no collection any more. Its collections and their documents stay:
    the contract's bucket delete removes the bucket's objects, blobs, batches and uploads, and a
    collection goes (with its documents) only by its own delete; a document keeps its lineage."""
    with state.store.tx() as c:
        c.execute("DELETE FROM collection_sources WHERE bucket_id=?", (bucket_id,))


def live_source_buckets(state: Any, bucket_ids: list[str]) -> tuple[list[str], list[str]]:
    """A collection's source buckets as (those that exist, those deleted since it was made)."""
    rows = state.store.query(
        "SELECT bucket_id FROM buckets WHERE bucket_id IN (SELECT value FROM json_each(?))", (dumps(bucket_ids),)
    )
    alive = {r["bucket_id"] for r in rows}
    return [b for b in bucket_ids if b in alive], [b for b in bucket_ids if b not in alive]


def extractor_of(doc: dict[str, Any]) -> X.Extractor:
    fe = doc["feature_extractor"]
    ext = X.find_extractor(fe["feature_extractor_name"], fe["version"])
    assert ext is not None, fe  # checked when the collection was created
    return ext


def collection_response(state: Any, row) -> dict[str, Any]:
    d = loads(row["doc"])
    cid = row["collection_id"]
    c = state.store.one("SELECT count(*) AS n, count(vector) AS v FROM documents WHERE collection_id=?", (cid,))
    d["document_count"] = c["n"]
    d["vector_count"] = c["v"]
    d["retriever_count"] = state.store.one(
        "SELECT count(*) AS n FROM retrievers WHERE namespace_id=? AND EXISTS (SELECT 1 FROM "
        "json_each(json_extract(doc, '$.collection_ids')) WHERE value=?)",
        (row["namespace_id"], cid),
    )["n"]
    d["taxonomy_count"] = 0
    return d


# -- documents ------------------------------------------------------------------------------
def document_response(
    state: Any,
    row,
    base_url: str,
    *,
    presigned: bool = False,
    vectors: bool = False,
    extractor: X.Extractor | None = None,
) -> dict[str, Any]:
    """A stored document as DocumentResponse: URLs signed for ``base_url``."""
    d = loads(row["doc"])
    if row["has_thumbnail"]:
        url = thumbnail_url(state, base_url, row["document_id"])
        d["thumbnail_url"] = url
        if presigned:
            for blob in d.get("document_blobs") or []:
                if blob.get("role") == "thumbnail":
                    blob["presigned_url"] = url
    if vectors and extractor is not None:
        d[extractor.output] = X.dense(X.unpack(row["vector"]), extractor.dims)
    return d


def _delete_document_files(state: Any, rows: Iterable[Any]) -> None:
    for r in rows:
        if r["has_thumbnail"]:
            remove_quietly(thumbnail_path(state, r["document_id"]))


def delete_collection_data(state: Any, collection_id: str) -> int:
    rows = state.store.query("SELECT document_id, has_thumbnail FROM documents WHERE collection_id=?", (collection_id,))
    _delete_document_files(state, rows)
    with state.store.tx() as c:
        c.execute("DELETE FROM documents WHERE collection_id=?", (collection_id,))
        c.execute("DELETE FROM collection_sources WHERE collection_id=?", (collection_id,))
        c.execute("DELETE FROM collections WHERE collection_id=?", (collection_id,))
    return len(rows)


# -- processing -----------------------------------------------------------------------------
class _Blobs:
    """An object's blob bytes, read once per object whatever the number of collections."""

    def __init__(self, state: Any, object_doc: dict[str, Any], cancel: threading.Event | None) -> None:
        self.state = state
        self.obj = object_doc
        self.cancel = cancel
        self._cache: dict[str, bytes] = {}

    def read(self, blob: dict[str, Any], limit: int, truncate: bool = False) -> bytes:
        """The blob's bytes; more than ``limit`` of them is an error, or cut off when ``truncate``."""
        key = f"{blob.get('blob_id') or id(blob)}:{limit}"
        if key in self._cache:
            return self._cache[key]
        url = (blob.get("properties") or {}).get("url")
        if not url:
            raise BlobReadError("blob has no data")
        obj = self.obj
        ctx = ReadContext(
            org_id=obj.get("org_id") or "",
            namespace_id=obj.get("namespace_id"),
            bucket_id=obj.get("bucket_id"),
            object_id=obj.get("object_id"),
            data_dir=self.state.data_dir,
            state=self.state,
            cancel=self.cancel,
        )
        ctx.extra["blob_properties"] = blob.get("properties") or {}
        path, is_tmp = materialize(url, ctx, Path(self.state.data_dir) / "tmp")
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        finally:
            if is_tmp:
                remove_quietly(path)
        if len(data) > limit:
            if not truncate:
                raise X.ExtractionError(
                    f"the file is larger than the local image extractor takes ({limit // (1024 * 1024)} MB)"
                )
            data = data[:limit]
        self._cache[key] = data
        return data


def _blob_modality(blob: dict[str, Any]) -> str | None:
    details = blob.get("details") or {}
    mime = details.get("sniffed_mime_type") or details.get("mime_type")
    return X.modality_of(blob.get("type"), mime, details.get("filename"))


def _pick_blob(doc: dict[str, Any], ext: X.Extractor, object_doc: dict[str, Any]) -> tuple[dict, str] | None:
    """The blob this collection's extractor takes from the object, and its modality; None: nothing to take."""
    fe = doc["feature_extractor"]
    mappings = fe.get("input_mappings")
    blobs = [b for b in object_doc.get("blobs") or [] if isinstance(b, dict)]
    if isinstance(mappings, dict) and mappings:
        for input_name, prop in mappings.items():
            if input_name not in ext.modalities or not isinstance(prop, str):
                continue
            for b in blobs:
                if b.get("property") == prop:
                    return b, input_name
        return None
    for b in blobs:
        m = _blob_modality(b)
        if m in ext.modalities:
            return b, m
    return None


def _get_path(data: dict[str, Any], path: str) -> Any:
    cur: Any = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _passthrough(fe: dict[str, Any], object_doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    metadata = object_doc.get("metadata") or {}
    for spec in fe.get("field_passthrough") or []:
        src = spec.get("source_path")
        if not src:
            continue
        value = _get_path(metadata, src)
        if value is None:
            value = _get_path(object_doc, src)
        if value is None:
            value = spec.get("default")
        if value is None and spec.get("required"):
            raise X.ExtractionError(f"field_passthrough: the object has no {src!r}")
        out[spec.get("target_path") or src.split(".")[-1]] = value
    return out


class _Source(NamedTuple):
    """The blob a collection takes from an object, and what the object's processing found of it."""

    blob: dict[str, Any]
    modality: str
    details: dict[str, Any]
    mime: str | None


def _extract(
    state: Any, row, object_doc: dict[str, Any], blobs: _Blobs, batch_id: str | None, now: str
) -> list[tuple[dict[str, Any], X.Vector, bytes | None]] | None:
    """The documents a collection makes of an object; None when the object has no input for it."""
    doc = loads(row["doc"])
    ext = extractor_of(doc)
    picked = _pick_blob(doc, ext, object_doc)
    if picked is None:
        return None
    blob, modality = picked
    details = blob.get("details") or {}
    src = _Source(blob, modality, details, details.get("sniffed_mime_type") or details.get("mime_type"))
    fe = doc["feature_extractor"]
    params = {**ext.default_parameters, **(fe.get("parameters") or {})}
    # a long text is embedded from its beginning (MAX_TEXT_CHARS); an image must be whole
    data = blobs.read(blob, MAX_IMAGE_BYTES, False) if modality == "image" else blobs.read(blob, MAX_TEXT_BYTES, True)
    root, pieces, thumb = _features(ext, modality, data, params)
    passthrough = _passthrough(fe, object_doc)
    source_ref = _source_ref(src, object_doc, now)
    out = []
    for extra, vec in pieces:
        document_id = new_id("doc")
        blobs_out = [dict(source_ref)]
        if thumb:
            blobs_out.append(_thumbnail_ref(document_id, len(thumb), src, now))
        d = {
            "document_id": document_id,
            "collection_id": row["collection_id"],
            **root,
            **extra,
            "metadata": dict(object_doc.get("metadata") or {}),
            **passthrough,
            "document_blobs": blobs_out,
            "searchable_at": now,
            "_internal": _internal(document_id, row, src, object_doc, ext, batch_id, now),
        }
        out.append((d, vec, thumb))
    return out


def _features(
    ext: X.Extractor, modality: str, data: bytes, params: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], X.Vector]], bytes | None]:
    """What the extractor finds in the bytes: ``(fields of every document, [(fields of one
    document, its vector)], thumbnail)``; an image makes one document, a text one per chunk."""
    root: dict[str, Any] = {}
    pieces: list[tuple[dict[str, Any], X.Vector]] = []
    if modality == "image":
        feats = X.image_features(data, thumbnails=bool(params.get("enable_thumbnails", True)))
        root.update(width=feats.width, height=feats.height, dominant_colors=feats.dominant_colors)
        pieces.append(({}, ext.image_part(feats.vector)))
        return root, pieces, feats.thumbnail or None
    text = X.decode_text(data)[: X.MAX_TEXT_CHARS]
    chunks = X.split_text(
        text, params.get("split_by"), params.get("chunk_size") or 1000, params.get("chunk_overlap") or 0
    )
    for i, chunk in enumerate(chunks):
        extra: dict[str, Any] = {"text": chunk}
        if len(chunks) > 1:
            extra.update(chunk_index=i, chunk_count=len(chunks))
        pieces.append((extra, X.embed_text(chunk)))
    return root, pieces, None


def _source_ref(src: _Source, object_doc: dict[str, Any], now: str) -> dict[str, Any]:
    """The document's blob entry for its source (role ``source``)."""
    blob, details = src.blob, src.details
    return {
        "field": blob.get("property") or "file",
        "url": (blob.get("properties") or {}).get("url") or f"local://objects/{object_doc['object_id']}",
        "role": "source",
        "type": src.modality,
        "filename": details.get("filename"),
        "content_type": src.mime,
        "size_bytes": details.get("size_bytes"),
        "checksum": details.get("hash"),
        "source_blob_id": blob.get("blob_id"),
        "created_at": now,
        "presigned_url": None,
    }


def _thumbnail_ref(document_id: str, size: int, src: _Source, now: str) -> dict[str, Any]:
    """The document's blob entry for its thumbnail (a JPEG under ``thumbnails/``)."""
    return {
        "field": "thumbnail",
        "url": f"local://thumbnails/{document_id}.jpg",
        "role": "thumbnail",
        "type": "image",
        "filename": "thumbnail.jpg",
        "content_type": "image/jpeg",
        "size_bytes": size,
        "checksum": None,
        "source_blob_id": src.blob.get("blob_id"),
        "created_at": now,
        "presigned_url": None,
    }


def _internal(
    document_id: str,
    row,
    src: _Source,
    object_doc: dict[str, Any],
    ext: X.Extractor,
    batch_id: str | None,
    now: str,
) -> dict[str, Any]:
    """The document's ``_internal``: its source blob, lineage and processing history."""
    blob, details = src.blob, src.details
    source_blob = {
        "blob_id": blob.get("blob_id"),
        "property": blob.get("property"),
        "type": blob.get("type"),
        "filename": details.get("filename"),
        "mime_type": src.mime,
        "size_bytes": details.get("size_bytes"),
        "hash": details.get("hash"),
    }
    return {
        "document_id": document_id,
        "collection_id": row["collection_id"],
        "namespace_id": row["namespace_id"],
        "modality": src.modality,
        "mime_type": src.mime,
        "size_bytes": details.get("size_bytes"),
        "content_hash": details.get("hash"),
        "created_at": now,
        "updated_at": now,
        "source_blobs": [source_blob],
        "lineage": {
            "root_object_id": object_doc["object_id"],
            "root_bucket_id": object_doc.get("bucket_id"),
            "source_object_id": object_doc["object_id"],
            "source_type": "bucket",
            "path": f"{object_doc.get('bucket_id')}/{object_doc['object_id']}",
        },
        "processing": {
            "detected_mime_type": src.mime,
            "history": [{"batch_id": batch_id, "feature_extractor": ext.extractor_id, "completed_at": now}],
        },
    }


def run_collections_for_object(
    state: Any,
    object_doc: dict[str, Any],
    batch_id: str | None = None,
    *,
    cancel: threading.Event | None = None,
    collection_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run every collection of the object's bucket (or only ``collection_ids``) on one processed
    object and write its documents (replacing what an earlier run wrote for it).

    One result per collection: ``{"collection_id", "collection_name", "status": "COMPLETED" |
    "SKIPPED" | "FAILED", "document_ids", "error"}``; SKIPPED: the object has no blob this
    collection's extractor takes (an image for a text collection). Raises ``BlobCanceled`` when
    ``cancel`` is set while a blob is read."""
    bucket_id = object_doc.get("bucket_id")
    ids = collection_ids if collection_ids is not None else collection_ids_for_bucket(state, str(bucket_id))
    if not ids:
        return []
    rows = state.store.query(
        "SELECT * FROM collections WHERE collection_id IN (SELECT value FROM json_each(?)) ORDER BY rowid",
        (dumps(ids),),
    )
    obj = dict(object_doc)
    if "org_id" not in obj or "namespace_id" not in obj:
        o = state.store.one("SELECT org_id, namespace_id FROM objects WHERE object_id=?", (obj["object_id"],))
        if o is not None:
            obj.setdefault("org_id", o["org_id"])
            obj.setdefault("namespace_id", o["namespace_id"])
    blobs = _Blobs(state, obj, cancel)
    now = state.iso_now()
    results: list[dict[str, Any]] = []
    writes: list[tuple[str, list[tuple[dict[str, Any], X.Vector, bytes | None]]]] = []
    for row in rows:
        res: dict[str, Any] = {
            "collection_id": row["collection_id"],
            "collection_name": row["name"],
            "status": "COMPLETED",
            "document_ids": [],
            "error": None,
        }
        try:
            made = _extract(state, row, obj, blobs, batch_id, now)
        except BlobCanceled:
            raise
        except (X.ExtractionError, BlobReadError) as exc:
            res.update(status="FAILED", error=str(exc))
            made = None
        except OSError as exc:
            res.update(status="FAILED", error=f"cannot read blob: {exc}")
            made = None
        if made is None and res["status"] == "COMPLETED":
            res["status"] = "SKIPPED"
        if made is not None:
            res["document_ids"] = [d["document_id"] for d, _, _ in made]
            writes.append((row["collection_id"], made))
        results.append(res)
    _write(state, obj, writes)
    return results


def _write(state: Any, obj: dict[str, Any], writes: list[tuple[str, list]]) -> None:
    """Replace the object's documents of each collection in ``writes`` (one transaction)."""
    if not writes:
        return
    oid = obj["object_id"]
    for _cid, made in writes:
        for d, _vec, thumb in made:
            if thumb:
                path = thumbnail_path(state, d["document_id"])
                tmp = path.with_suffix(".part")
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
                    fh.write(thumb)
                tmp.replace(path)
    old: list[Any] = []
    with state.store.tx() as c:
        for cid, made in writes:
            old += c.execute(
                "SELECT document_id, has_thumbnail FROM documents WHERE collection_id=? AND root_object_id=?",
                (cid, oid),
            ).fetchall()
            c.execute("DELETE FROM documents WHERE collection_id=? AND root_object_id=?", (cid, oid))
            c.executemany(
                "INSERT INTO documents(document_id, collection_id, namespace_id, root_object_id, chunk_index, "
                "modality, has_thumbnail, vector, doc) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        d["document_id"],
                        cid,
                        d["_internal"]["namespace_id"],
                        oid,
                        d.get("chunk_index") or 0,
                        d["_internal"]["modality"],
                        1 if thumb else 0,
                        X.pack(vec),
                        dumps(d),
                    )
                    for d, vec, thumb in made
                ],
            )
    _delete_document_files(state, old)


# -- trigger --------------------------------------------------------------------------------
def start_trigger(
    state: Any, org_id: str, namespace_id: str, collection_row, object_ids: list[str], bucket_ids: list[str]
) -> str:
    """A task (``api_collections_trigger``) that runs one collection over existing objects."""
    cid = collection_row["collection_id"]
    ad = {
        "collection_ids": [cid],
        "bucket_id": bucket_ids[0] if bucket_ids else None,
        "namespace_id": namespace_id,
        "object_count": len(object_ids),
        "sample_object_ids": object_ids[:5],
        "current_tier": 0,
        "total_tiers": 1,
    }
    task_id = state.create_task(org_id, "api_collections_trigger", inputs=[cid], additional_data=ad, outputs=[])
    t = threading.Thread(
        target=_run_trigger,
        args=(state, task_id, cid, object_ids, ad),
        name=f"mixpeek-local-trigger-{task_id}",
        daemon=True,
    )
    t.start()
    return task_id


def _run_trigger(state: Any, task_id: str, cid: str, object_ids: list[str], ad: dict[str, Any]) -> None:
    failed = 0
    outputs: list[dict[str, Any]] = []
    try:
        if not state.update_task(task_id, status="PROCESSING"):
            return
        for oid in object_ids:
            if state.closed:
                return
            row = state.store.one("SELECT doc, org_id, namespace_id FROM objects WHERE object_id=?", (oid,))
            if row is None:
                continue
            obj = {**loads(row["doc"]), "org_id": row["org_id"], "namespace_id": row["namespace_id"]}
            try:
                runs = run_collections_for_object(state, obj, None, collection_ids=[cid])
            except BlobCanceled:
                return
            if not runs:
                continue
            res = runs[0]
            if res["status"] == "FAILED":
                failed += 1
            outputs.append(
                {"object_id": oid, "status": res["status"], "document_ids": res["document_ids"], "error": res["error"]}
            )
        status = "COMPLETED"
        if failed and failed == len(outputs):
            status, ad["error"] = "FAILED", f"all {failed} object(s) failed; first: {outputs[0]['error']}"
        elif failed:
            status = "COMPLETED_WITH_ERRORS"
        state.update_task(task_id, status=status, outputs=outputs, additional_data=ad, error=ad.get("error"))
    except Exception as exc:
        if state.closed:
            return
        log.exception("collection trigger %s crashed", task_id)
        ad["error"] = f"internal error: {type(exc).__name__}: {exc}"
        try:
            state.update_task(task_id, status="FAILED", additional_data=ad, error=ad["error"])
        except Exception:  # pragma: no cover
            pass


# -- wiring ---------------------------------------------------------------------------------
def install(app: Any, state: Any) -> None:
    """Collections, documents and retrievers on a server state and its app."""
    ensure_schema(state)
    if app is not None and not getattr(app.state, "search_installed", False):
        app.state.search_installed = True
        from .routes import collections as col_routes, retrievers as ret_routes

        app.include_router(col_routes.router)
        app.include_router(ret_routes.router)
