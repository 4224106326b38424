"""Presigned uploads: ``/v1/buckets/{bucket}/uploads`` (namespace-scoped).

The flow is ``create`` (get a presigned URL) -> ``put_file`` (stream the bytes
to it) -> ``confirm`` (the server verifies and creates the object).
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from mixpeek_magics.client._core import RequestSpec
from mixpeek_magics.client.models.uploads import (
    BatchConfirmResult,
    BatchUploadResult,
    ConfirmUploadResult,
    Upload,
)
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    UNSAFE,
    Page,
    Resource,
    check_limit,
    decoded,
    model,
    page_parser,
    seg,
)

MAX_UPLOADS_PER_BATCH = 100
MAX_LIST_LIMIT = 100  # ListUploadsRequest.limit maximum


def upload_body(
    filename: str,
    content_type: str,
    file_size_bytes: int | None = None,
    file_hash: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    skip_duplicates: bool | None = None,
    create_object_on_confirm: bool = True,
    object_metadata: Mapping[str, Any] | None = None,
    blob_property: str | None = None,
    blob_type: str | None = None,
    presigned_url_expiration: int | None = None,
) -> dict[str, Any]:
    """A ``CreateUploadRequest`` body (also the items of ``create_batch``).

    ``skip_duplicates`` is sent only when given: the API's default is true."""
    body: dict[str, Any] = {
        "filename": filename,
        "content_type": content_type,
        "create_object_on_confirm": bool(create_object_on_confirm),
        "metadata": dict(metadata or {}),
    }
    optional = {
        "skip_duplicates": None if skip_duplicates is None else bool(skip_duplicates),
        "file_size_bytes": file_size_bytes,
        "file_hash": file_hash,
        "object_metadata": dict(object_metadata) if object_metadata is not None else None,
        "blob_property": blob_property,
        "blob_type": blob_type,
        "presigned_url_expiration": presigned_url_expiration,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _create_retry(bodies: Iterable[Mapping[str, Any]]) -> str:
    """Creating uploads with ``file_hash`` and duplicate skipping on is safe to repeat (an upload
    that is never PUT never becomes an object; one already stored is reported a duplicate)."""
    safe = all(b.get("file_hash") and b.get("skip_duplicates", True) is not False for b in bodies)
    return IDEMPOTENT if safe else UNSAFE


class Uploads(Resource):
    def create(
        self,
        bucket: str,
        filename: str,
        content_type: str,
        file_size_bytes: int | None = None,
        file_hash: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        skip_duplicates: bool | None = None,
        create_object_on_confirm: bool = True,
        object_metadata: Mapping[str, Any] | None = None,
        blob_property: str | None = None,
        *,
        blob_type: str | None = None,
        presigned_url_expiration: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Upload:
        """``POST /v1/buckets/{bucket}/uploads``: returns the ``presigned_url`` to PUT to."""
        body = upload_body(
            filename,
            content_type,
            file_size_bytes,
            file_hash,
            metadata,
            skip_duplicates,
            create_object_on_confirm,
            object_metadata,
            blob_property,
            blob_type,
            presigned_url_expiration,
        )
        return self._request(
            self._spec(
                "POST",
                f"/v1/buckets/{seg(bucket)}/uploads",
                json=body,
                parse=model(Upload),
                retry=_create_retry([body]),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def confirm(
        self,
        bucket: str,
        upload_id: str,
        etag: str | None = None,
        file_size_bytes: int | None = None,
        *,
        async_processing: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> ConfirmUploadResult:
        """``POST .../uploads/{upload_id}/confirm``. Idempotent by upload id, so it is retried."""
        body = {"etag": etag, "file_size_bytes": file_size_bytes}
        return self._request(
            self._spec(
                "POST",
                f"/v1/buckets/{seg(bucket)}/uploads/{seg(upload_id)}/confirm",
                params={"async": async_processing},
                json={k: v for k, v in body.items() if v is not None},
                parse=model(ConfirmUploadResult),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def create_batch(
        self,
        bucket: str,
        uploads: Iterable[Mapping[str, Any]],
        *,
        shared_metadata: Mapping[str, Any] | None = None,
        shared_object_metadata: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> BatchUploadResult:
        """``POST .../uploads/batch`` with 1-100 ``CreateUploadRequest`` dicts
        (``upload_body(...)`` builds one)."""
        items = [dict(u) for u in uploads]
        if not 1 <= len(items) <= MAX_UPLOADS_PER_BATCH:
            raise ValueError(f"create_batch takes 1 to {MAX_UPLOADS_PER_BATCH} uploads per call (got {len(items)})")
        body: dict[str, Any] = {"uploads": items}
        if shared_metadata is not None:
            body["shared_metadata"] = dict(shared_metadata)
        if shared_object_metadata is not None:
            body["shared_object_metadata"] = dict(shared_object_metadata)
        return self._request(
            self._spec(
                "POST",
                f"/v1/buckets/{seg(bucket)}/uploads/batch",
                json=body,
                parse=model(BatchUploadResult),
                retry=_create_retry(items),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def confirm_batch(
        self,
        bucket: str,
        confirmations: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> BatchConfirmResult:
        """``POST .../uploads/confirm/batch`` with 1-100 ``{"upload_id", "etag", "file_size_bytes"}``.
        Confirming is keyed by upload id (each upload then says what became of it), so it is retried."""
        items = [{k: v for k, v in dict(c).items() if v is not None} for c in confirmations]
        if not 1 <= len(items) <= MAX_UPLOADS_PER_BATCH:
            raise ValueError(f"confirm_batch takes 1 to {MAX_UPLOADS_PER_BATCH} confirmations (got {len(items)})")
        return self._request(
            self._spec(
                "POST",
                f"/v1/buckets/{seg(bucket)}/uploads/confirm/batch",
                json={"confirmations": items},
                parse=model(BatchConfirmResult),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def get(
        self,
        bucket: str,
        upload_id: str,
        *,
        return_presigned_urls: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Upload:
        return self._request(
            self._spec(
                "GET",
                f"/v1/buckets/{seg(bucket)}/uploads/{seg(upload_id)}",
                params={"return_presigned_urls": return_presigned_urls},
                parse=model(Upload),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(self, bucket: str, upload_id: str, *, namespace: str | None = None, timeout: float | None = None) -> Any:
        return self._request(
            self._spec(
                "DELETE",
                f"/v1/buckets/{seg(bucket)}/uploads/{seg(upload_id)}",
                parse=decoded,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _list_spec(
        self,
        bucket: str,
        *,
        filters: Any,
        sort: Any,
        search: str | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[Upload]]:
        check_limit(limit, MAX_LIST_LIMIT)
        # ListUploadsRequest has limit/offset in the body too (limit <= 100): send both, consistently.
        body = {
            "filters": filters,
            "sort": sort,
            "search": search,
            "limit": limit,
            "offset": None if cursor else (offset or 0),
        }
        return self._spec(
            "POST",
            f"/v1/buckets/{seg(bucket)}/uploads/list",
            params={"limit": limit, "cursor": cursor, "offset": None if cursor else (offset or None)},
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(Upload.model_validate),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def list(
        self,
        bucket: str,
        filters: Any = None,
        *,
        sort: Any = None,
        search: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[Upload]:
        return self._request(
            self._list_spec(
                bucket,
                filters=filters,
                sort=sort,
                search=search,
                limit=limit,
                cursor=cursor,
                offset=offset,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def iter(
        self,
        bucket: str,
        filters: Any = None,
        *,
        sort: Any = None,
        search: str | None = None,
        limit: int = 100,
        max_items: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Upload]:
        check_limit(limit, MAX_LIST_LIMIT)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                bucket,
                filters=filters,
                sort=sort,
                search=search,
                limit=limit,
                cursor=cursor,
                offset=offset,
                namespace=namespace,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )

    def put_file(
        self, presigned_url: str, path: str | os.PathLike[str], content_type: str, *, timeout: float | None = None
    ) -> str | None:
        """PUT the file at ``path`` to ``presigned_url``, streamed from disk in chunks.

        Sends no API key (the URL carries its own signature). Retried like any
        idempotent request (the same bytes land at the same key). Returns the
        ETag with its quotes stripped, for ``confirm(..., etag=...)``.
        """
        if not str(presigned_url).startswith(("http://", "https://")):
            raise ValueError("presigned_url must be an http(s) URL")
        file_path = os.fspath(path)
        size = os.path.getsize(file_path)  # raises FileNotFoundError before anything is sent
        spec: RequestSpec[str | None] = RequestSpec(
            method="PUT",
            path=str(presigned_url),
            retry=IDEMPOTENT,
            timeout=timeout,
            authenticated=False,
            upload_path=file_path,
            upload_size=size,
            headers={"Content-Type": content_type},
        )
        return self._request(spec)

    def put_files(
        self,
        files: Sequence[tuple[str, str | os.PathLike[str], str]],
        *,
        concurrency: int = 16,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> builtins.list[str | None | BaseException]:
        """PUT many files, ``(presigned_url, path, content_type)`` each, ``concurrency`` at a time.

        Per file, in order: its ETag (as ``put_file`` returns it) or the
        exception that stopped it; one failure does not stop the others. Each
        file gets ``put_file``'s retries and errors, over the client's
        keep-alive connections. Files not started once ``cancel`` is set get
        a ``CancelledError``.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        return self._driver._put_files(self, list(files), concurrency, timeout, cancel)
