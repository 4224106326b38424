"""Documents (``DocumentResponse``) of a collection, from the v0.82 contract.

The contract declares ``document_id``, ``collection_id``, ``document_blobs``,
``searchable_at`` and ``_internal`` (lineage, source blobs, MIME type); every
other field is the document's own (``additional_properties``): what the
collection's extractor wrote (``text``, ``thumbnail_url``, ``width``, ...) and
passed-through fields. Those are in :attr:`Document.fields`; the helpers below
read the common ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mixpeek_magics.client.models._base import MixpeekModel


class BlobRef(MixpeekModel):
    """``BlobURLRef``: a blob of a document (its source, a thumbnail, ...)."""

    field: str
    url: str
    presigned_url: str | None = None
    role: str | None = None
    type: str | None = None
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    checksum: str | None = None
    source_blob_id: str | None = None


class Document(MixpeekModel):
    """``DocumentResponse`` (a retriever's hits are documents with a ``score``)."""

    document_id: str
    collection_id: str
    document_blobs: list[BlobRef] | None = None
    searchable_at: str | None = None
    internal: dict[str, Any] | None = Field(None, alias="_internal")
    vector_hydration_incomplete: bool | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """The document's own fields (everything the contract does not declare)."""
        return dict(self.model_extra or {})

    def get(self, name: str, default: Any = None) -> Any:
        """A field by dotted path (``metadata.kind``, ``_internal.lineage.root_object_id``)."""
        cur: Any = {
            **self.fields,
            "_internal": self.internal or {},
            "document_id": self.document_id,
            "collection_id": self.collection_id,
        }
        for part in name.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
        return cur

    @property
    def lineage(self) -> dict[str, Any]:
        return dict((self.internal or {}).get("lineage") or {})

    @property
    def root_object_id(self) -> str | None:
        return self.lineage.get("root_object_id") or self.fields.get("root_object_id")

    @property
    def source_blob(self) -> BlobRef | None:
        for b in self.document_blobs or []:
            if (b.role or "source") == "source":
                return b
        return None

    @property
    def filename(self) -> str | None:
        src = self.source_blob
        if src is not None and src.filename:
            return src.filename
        for b in (self.internal or {}).get("source_blobs") or []:
            if isinstance(b, dict) and b.get("filename"):
                return str(b["filename"])
        return None

    @property
    def mime_type(self) -> str | None:
        mime = (self.internal or {}).get("mime_type")
        if mime:
            return str(mime)
        src = self.source_blob
        return src.content_type if src is not None else None

    @property
    def modality(self) -> str | None:
        return (self.internal or {}).get("modality") or (self.source_blob.type if self.source_blob else None)

    @property
    def text(self) -> str | None:
        value = self.fields.get("text")
        return value if isinstance(value, str) else None

    @property
    def thumbnail_url(self) -> str | None:
        value = self.fields.get("thumbnail_url")
        if isinstance(value, str) and value:
            return value
        for b in self.document_blobs or []:
            if b.role == "thumbnail":
                return b.presigned_url or (b.url if b.url.startswith(("http://", "https://", "data:")) else None)
        return None

    @property
    def metadata(self) -> dict[str, Any]:
        value = self.fields.get("metadata")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def score(self) -> float | None:
        value = self.fields.get("score")
        return float(value) if isinstance(value, (int, float)) else None
