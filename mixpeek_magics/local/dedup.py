"""Duplicate decisions of the local server, each taken inside the caller's write transaction so
that two clients racing for the same thing get one answer:

* a batch being submitted leaves out the objects already processed: COMPLETED with documents in
  every collection the batch runs (``CreateBatchRequest.dedup_strategy``: ``skip``, the service's
  default, which the contract scopes to objects that already have documents; an object another
  batch is still processing has none, so it is processed again), recorded in the batch's
  ``loaded_object_ids`` and ``dedup_audit``;
* a confirmed upload whose content is already an object of the bucket becomes a duplicate of it
  (``UploadResponse.is_duplicate`` / ``existing_object_id`` / ``duplicate_of_upload_id``);
* a create carrying an ``idempotency_key`` the bucket has seen returns the object it made.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .db import dumps

AUDIT_IDS = 1000  # BatchModel.dedup_audit keeps at most this many skipped ids per collection


def already_processed(
    c: sqlite3.Connection, bucket_id: str, object_ids: list[str], collection_ids: list[str]
) -> set[str]:
    """The objects of ``object_ids`` that must not be processed again: COMPLETED with documents in
    every collection this batch runs (without collections, COMPLETED)."""
    if not object_ids:
        return set()
    ids = dumps(object_ids)
    done = [
        r[0]
        for r in c.execute(
            "SELECT object_id FROM objects WHERE bucket_id=? AND status='COMPLETED' "
            "AND object_id IN (SELECT value FROM json_each(?))",
            (bucket_id, ids),
        )
    ]
    if done and collection_ids:
        have = {
            (r[0], r[1])
            for r in c.execute(
                "SELECT DISTINCT collection_id, root_object_id FROM documents "
                "WHERE collection_id IN (SELECT value FROM json_each(?)) "
                "AND root_object_id IN (SELECT value FROM json_each(?))",
                (dumps(collection_ids), dumps(done)),
            )
        }
        done = [o for o in done if all((col, o) in have for col in collection_ids)]
    return set(done)


def skip_processed(c: sqlite3.Connection, b: dict[str, Any], bucket_id: str, ids: list[str]) -> list[str]:
    """The ids a batch being submitted processes; under ``skip`` (the default) without those
    :func:`already_processed` names, which ``b["dedup_audit"]`` records per collection."""
    strategy = b.get("dedup_strategy") or "skip"
    if strategy != "skip":
        return ids
    skipped = already_processed(c, bucket_id, ids, list(b.get("collection_ids") or []))
    if not skipped:
        return ids
    kept = [o for o in ids if o not in skipped]
    audit = {
        "dedup_strategy": strategy,
        "total_input": len(ids),
        "skipped": len(ids) - len(kept),
        "processed": len(kept),
        "skipped_object_ids": [o for o in ids if o in skipped][:AUDIT_IDS],
    }
    if b.get("collection_ids"):
        b["dedup_audit"] = {cid: dict(audit) for cid in b["collection_ids"]}
    return kept


def original_upload(c: sqlite3.Connection, bucket_id: str, sha256: str, upload_id: str) -> str | None:
    """The first confirmed upload of the bucket with this content (not ``upload_id`` itself)."""
    row = c.execute(
        "SELECT upload_id FROM uploads WHERE bucket_id=? AND file_hash=? AND status='COMPLETED' "
        "AND upload_id<>? ORDER BY rowid LIMIT 1",
        (bucket_id, sha256, upload_id),
    ).fetchone()
    return row[0] if row is not None else None


def mark_duplicate(up: dict[str, Any], object_id: str, original: str | None) -> None:
    """An upload confirmed after its content became an object (another upload's, most often one
    racing it): it names that object and makes none."""
    up.update(
        is_duplicate=True,
        existing_object_id=object_id,
        duplicate_of_upload_id=original,
    )


def object_for_key(c: Any, bucket_id: str, key: str | None) -> str | None:
    """The object an earlier create with this ``idempotency_key`` made in the bucket."""
    if not key:
        return None
    row = c.execute(
        "SELECT object_id FROM objects WHERE bucket_id=? AND idempotency_key=?", (bucket_id, key)
    ).fetchone()
    return row[0] if row is not None else None


def remember_key(c: sqlite3.Connection, object_id: str, key: str | None) -> None:
    if key:
        c.execute("UPDATE objects SET idempotency_key=? WHERE object_id=?", (key, object_id))
