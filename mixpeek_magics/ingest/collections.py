"""``%%ingest --collection NAME``: the collection that makes a bucket's objects searchable.

:func:`ensure_collection` finds the collection or creates it on the bucket, with
the extractor the plan's files call for (:func:`infer_extractor`: texts ->
``text_extractor``, images -> ``image_extractor``, both -> ``multimodal_extractor``).
:func:`process_existing` runs a new collection over objects ingested before it
existed (a collection processes the objects of the batches submitted after it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mixpeek_magics.ingest.plan import Plan
from mixpeek_magics.ingest.runner import IngestError, IngestResult

if TYPE_CHECKING:
    from mixpeek_magics.client.models.batches import Batch
    from mixpeek_magics.client.models.buckets import Bucket
    from mixpeek_magics.client.models.collections import Collection
    from mixpeek_magics.client.models.tasks import Task

EXTRACTORS = ("text_extractor", "image_extractor", "multimodal_extractor")
RESOLVABLE_WAIT = 60.0  # seconds a finished batch's documents get to become queryable
_ENDED_WELL = ("COMPLETED", "COMPLETED_WITH_ERRORS")
_BY_TYPE = {"text": "text_extractor", "image": "image_extractor"}


def infer_extractor(plan: Plan) -> str:
    """The extractor for the plan's files: one kind of file -> its extractor, a mix -> multimodal."""
    types: set[str] = set()
    for item in plan.items:
        if item.kind in ("file", "url"):
            types.add((item.blob_type or "").lower())
        else:  # a sync may bring any kind of file
            types.update(("text", "image"))
    kinds = {_BY_TYPE.get(t, "multimodal_extractor") for t in types}
    if len(kinds) == 1:
        return kinds.pop()
    return "multimodal_extractor"


def ensure_collection(
    client: Any,
    name: str,
    bucket: Bucket,
    *,
    extractor: str | None = None,
    plan: Plan | None = None,
    namespace: str | None = None,
) -> tuple[Collection, bool]:
    """``(collection, created)``: the collection ``name`` reading ``bucket``, created when missing."""
    from mixpeek_magics.client import errors

    col: Collection | None
    try:
        col = client.collections.get(name, namespace=namespace)
    except errors.NotFoundError:
        col = None
    if col is not None:
        if bucket.bucket_id not in col.bucket_ids:
            raise IngestError(
                f"collection {name!r} reads bucket(s) {', '.join(col.bucket_ids) or '(none)'}, "
                f"not {bucket.bucket_name!r}: choose another --collection name"
            )
        have = col.feature_extractor.feature_extractor_name
        if extractor and extractor != have:
            raise IngestError(
                f"collection {name!r} already uses {have}, not {extractor}: drop --extractor or "
                f"choose another --collection name"
            )
        return col, False
    chosen = extractor or (infer_extractor(plan) if plan is not None else "multimodal_extractor")
    created: Collection = client.collections.create(name, bucket.bucket_id, chosen, namespace=namespace)
    return created, True


def process_existing(
    client: Any,
    collection: Collection,
    object_ids: Sequence[str],
    *,
    namespace: str | None = None,
    timeout: float | None = None,
) -> tuple[Task | None, list[str] | None]:
    """Run ``collection`` over objects that existed before it: the finished trigger task (None
    when there was nothing to run) and the batches the trigger made (None when it named none)."""
    ids = [o for o in object_ids if o]
    if not ids:
        return None, []
    trig = client.collections.trigger(
        collection.collection_id or collection.collection_name, object_ids=ids, namespace=namespace
    )
    task: Task = client.tasks.wait(trig.task_id, timeout=timeout)
    batches = trig.batch_ids or ([trig.batch_id] if trig.batch_id else None)
    return task, batches


def resolved_batches(
    client: Any, bucket: str, batch_ids: Sequence[str], *, namespace: str | None = None, timeout: float | None = None
) -> list[Batch]:
    """The batches once each finished one's documents are queryable (``documents_resolvable``, or
    ``documents_resolvable_error``: they may never be) or ``timeout`` (default
    :data:`RESOLVABLE_WAIT`) has passed: a COMPLETED batch may still be finalizing its documents."""
    deadline = time.monotonic() + (RESOLVABLE_WAIT if timeout is None else timeout)
    out: list[Batch] = []
    for batch_id in batch_ids:
        while True:
            batch: Batch = client.batches.get(bucket, batch_id, namespace=namespace)
            settled = str(batch.status) not in _ENDED_WELL or batch.documents_resolvable
            if settled or batch.documents_resolvable_error or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        out.append(batch)
    return out


def document_count(client: Any, collection: str, *, namespace: str | None = None) -> int | None:
    found: Collection = client.collections.get(collection, namespace=namespace)
    return found.document_count


class CollectionRun:
    """The collection step of one ``%%ingest --collection`` run: :meth:`start` before the upload
    (find or create the collection), :meth:`finish` once processing ended (process the objects
    that were already in the bucket when the collection is new, count the documents written)."""

    def __init__(self, client: Any, collection: Collection, created: bool, namespace: str | None = None) -> None:
        self.client = client
        self.collection = collection
        self.created = created
        self.namespace = namespace
        self.before = collection.document_count or 0

    @classmethod
    def start(
        cls,
        client: Any,
        name: str,
        bucket: Bucket,
        *,
        extractor: str | None = None,
        plan: Plan | None = None,
        namespace: str | None = None,
    ) -> CollectionRun:
        col, created = ensure_collection(client, name, bucket, extractor=extractor, plan=plan, namespace=namespace)
        return cls(client, col, created, namespace)

    @property
    def name(self) -> str:
        return self.collection.collection_name

    @property
    def extractor(self) -> str:
        return self.collection.feature_extractor.feature_extractor_name

    def started_line(self) -> str:
        verb = "Created" if self.created else "Using"
        return f"{verb} collection {self.name!r} ({self.extractor})"

    def finish(self, result: IngestResult, timeout: float | None = None) -> str:
        """Documents written by this run, as a line; also ``result.collections[name]``.

        Counted on the run's batches (``BatchModel.documents_written``, once their documents are
        queryable), since the collection's ``document_count`` is approximate and cached; from that
        count only when a batch has not reported its documents, ran other collections too, or a
        trigger named no batch."""
        batch_ids: list[str] | None = list(result.batches)
        if self.created:
            earlier = [
                i.object_id for i in result.items if i.status in ("already_ingested", "duplicate") and i.object_id
            ]
            _task, made = process_existing(
                self.client, self.collection, earlier, namespace=self.namespace, timeout=timeout
            )
            batch_ids = None if made is None or batch_ids is None else batch_ids + made
        counted: int | None = None
        if batch_ids is not None and result.bucket_id:
            batches = resolved_batches(self.client, result.bucket_id, batch_ids, namespace=self.namespace)
            mine = {self.collection.collection_id}
            # a batch's count covers every collection it ran: this one's only when it ran this one alone
            if all(b.documents_written is not None and set(b.collection_ids or []) <= mine for b in batches):
                counted = sum(b.documents_written or 0 for b in batches)
        ident = self.collection.collection_id or self.name
        total = document_count(self.client, ident, namespace=self.namespace) or 0
        written = counted if counted is not None else max(0, total - self.before)
        result.collections[self.name] = {
            "collection_id": self.collection.collection_id,
            "feature_extractor": self.extractor,
            "documents_written": written,
            "document_count": total,
        }
        return f"Collection {self.name!r}: {written} document{'s' if written != 1 else ''} written ({total} in total)"
