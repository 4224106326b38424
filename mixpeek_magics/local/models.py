"""Request bodies the routes parse; the contract middleware has checked each against the vendored v0.82 schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .util import check_filename

#: TaskStatusEnum and TaskType of the contract: list filters take one value, exactly spelled
TaskStatus = Literal[
    "PENDING",
    "QUEUED",
    "IN_PROGRESS",
    "PROCESSING",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCELED",
    "INTERRUPTED",
    "UNKNOWN",
    "SKIPPED",
    "DRAFT",
    "ACTIVE",
    "ARCHIVED",
    "SUSPENDED",
    "DEACTIVATED",
]
TaskType = Literal[
    "api_namespaces_create",
    "api_namespaces_delete",
    "api_namespaces_snapshot_create",
    "api_namespaces_snapshot_restore",
    "api_namespaces_migrations_run",
    "api_buckets_objects_create",
    "api_buckets_delete",
    "api_buckets_batches_process",
    "api_buckets_batches_submit",
    "api_buckets_uploads_create",
    "api_buckets_uploads_confirm",
    "api_buckets_uploads_batch_confirm",
    "api_collections_documents_create",
    "api_collections_documents_bulk_update",
    "api_collections_documents_bulk_delete",
    "api_collections_reembed",
    "api_collections_extraction_artifacts",
    "api_taxonomies_create",
    "api_taxonomies_execute",
    "api_taxonomies_materialize",
    "api_evaluations_run",
    "api_evaluations_dataset_create",
    "api_retrievers_publish",
    "api_manifest_apply",
    "api_retrievers_execute",
    "api_collections_export",
    "api_collections_trigger",
    "engine_feature_extractor_run",
    "engine_inference_run",
    "engine_object_processing",
    "engine_cluster_build",
    "thumbnail",
    "video_segment",
    "audio_segment",
    "converted_video",
    "materialize",
    "plugin_custom",
    "model_custom",
]

FIELD_TYPES = (
    "string",
    "number",
    "integer",
    "float",
    "boolean",
    "object",
    "array",
    "date",
    "datetime",
    "text",
    "image",
    "audio",
    "video",
    "pdf",
    "excel",
)
FILE_TYPES = ("text", "image", "audio", "video", "pdf", "excel")


def _lower_type(v: Any) -> Any:
    if isinstance(v, str):
        v = v.lower()
        if v == "document":
            v = "pdf"
        if v not in FIELD_TYPES:
            raise ValueError(f"unknown type {v!r}; expected one of {', '.join(FIELD_TYPES)}")
    return v


def _check_key_prefix(v: str | None) -> str | None:
    """A storage prefix such as ``/campaigns/2025``: leading/trailing slashes allowed, no traversal."""
    if v is None or v.strip("/") == "":
        return v
    check_filename(v.strip("/"), "key_prefix")
    return v


class _Allow(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Ignore(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- organization ------------------------------------------------------------
class OrganizationUpdateRequest(_Ignore):
    organization_name: str | None = None
    logo_url: str | None = None
    billing_email: str | None = None
    metadata: dict[str, Any] | None = None
    rate_limits: dict[str, int] | None = None


# -- namespaces --------------------------------------------------------------
class FeatureExtractor(_Allow):
    feature_extractor_name: str
    version: str
    params: dict[str, Any] | None = None


class CreateNamespaceRequest(_Ignore):
    namespace_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    feature_extractors: list[FeatureExtractor] = Field(default_factory=list)  # v0.82: only the name is required
    payload_indexes: list[dict[str, Any]] | None = None
    auto_create_indexes: bool | None = False
    infrastructure: dict[str, Any] | None = None


class UpdateNamespaceRequest(_Ignore):
    namespace_name: str | None = Field(default=None, min_length=1, max_length=255)
    payload_indexes: list[dict[str, Any]] | None = None


class PatchNamespaceRequest(_Ignore):
    namespace_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    payload_indexes: list[dict[str, Any]] | None = None
    auto_create_indexes: bool | None = None
    infrastructure: dict[str, Any] | None = None


class ListNamespacesRequest(_Ignore):
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    search: str | None = None
    case_sensitive: bool = False


# -- buckets -----------------------------------------------------------------
class BucketSchemaField(_Allow):
    type: str
    default: Any = None
    items: BucketSchemaField | None = None
    properties: dict[str, BucketSchemaField] | None = None
    examples: list[Any] | None = None
    description: str | None = None
    enum: list[Any] | None = None
    required: bool | None = False

    _t = field_validator("type", mode="before")(_lower_type)


class BucketSchema(_Allow):
    properties: dict[str, BucketSchemaField]


class UniqueKeyConfig(_Ignore):
    fields: list[str] = Field(min_length=1)
    default_policy: Literal["insert", "update", "upsert"] | None = None


class BucketCreateRequest(_Ignore):
    bucket_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    bucket_schema: BucketSchema
    unique_key: UniqueKeyConfig | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class BucketUpdateRequest(_Ignore):
    bucket_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    metadata: dict[str, Any] | None = None


class ListBucketsRequest(_Ignore):
    search: str | None = None
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    case_sensitive: bool = False
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


# -- objects -----------------------------------------------------------------
class CreateBlobRequest(_Ignore):
    property: str = Field(min_length=1, max_length=100)
    key_prefix: str | None = None
    type: str
    data: Any = None
    upload_id: str | None = Field(default=None, pattern=r"^upl_[a-zA-Z0-9_-]+$")
    metadata: dict[str, Any] | None = None
    canonicalize_source: bool | None = None
    force_remirror: bool | None = None

    _t = field_validator("type", mode="before")(_lower_type)

    @field_validator("key_prefix")
    @classmethod
    def _kp(cls, v: str | None) -> str | None:
        return _check_key_prefix(v)


class CreateObjectRequest(_Allow):
    key_prefix: str | None = None
    blobs: list[CreateBlobRequest] = Field(default_factory=list)
    skip_duplicates: bool = False
    canonicalize_source: bool = True
    force_remirror: bool = False

    @field_validator("key_prefix")
    @classmethod
    def _kp(cls, v: str | None) -> str | None:
        return _check_key_prefix(v)


class CreateObjectsBatchRequest(_Ignore):
    objects: list[dict[str, Any]] = Field(max_length=1000)


class UpdateObjectRequest(_Ignore):
    key_prefix: str | None = None
    blobs: list[CreateBlobRequest] | None = None
    metadata: dict[str, Any] | None = None
    skip_duplicates: bool | None = None


class ListObjectsRequest(_Ignore):
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    search: str | None = None
    select: list[str] | None = None


# -- uploads -----------------------------------------------------------------
class CreateUploadRequest(_Ignore):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=255)
    file_size_bytes: int | None = Field(default=None, ge=1)
    presigned_url_expiration: int = Field(default=3600, ge=60, le=86400)
    metadata: dict[str, Any] = Field(default_factory=dict)
    create_object_on_confirm: bool = True
    object_metadata: dict[str, Any] | None = None
    blob_property: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_]+$")
    blob_type: str | None = None
    file_hash: str | None = Field(default=None, min_length=64, max_length=64, pattern=r"^[a-f0-9]{64}$")
    skip_duplicates: bool = True

    @field_validator("filename")
    @classmethod
    def _fn(cls, v: str) -> str:
        return check_filename(v)

    @field_validator("content_type")
    @classmethod
    def _ct(cls, v: str) -> str:
        main = v.split(";", 1)[0].strip()
        if "/" not in main or " " in main or main.startswith("/") or main.endswith("/"):
            raise ValueError(f"content_type must be a MIME type like 'image/png', got {v!r}")
        return v.strip()

    @field_validator("blob_type", mode="before")
    @classmethod
    def _bt(cls, v: Any) -> Any:
        return None if v is None else _lower_type(v)


class BatchUploadRequest(_Ignore):
    uploads: list[CreateUploadRequest] = Field(min_length=1, max_length=100)
    shared_metadata: dict[str, Any] | None = None
    shared_object_metadata: dict[str, Any] | None = None


class ConfirmUploadRequest(_Ignore):
    etag: str | None = None
    file_size_bytes: int | None = Field(default=None, ge=1)
    file_hash: str | None = Field(default=None, min_length=64, max_length=64, pattern=r"^[a-f0-9]{64}$")


class BatchConfirmRequest(_Ignore):
    confirmations: list[dict[str, Any]] = Field(min_length=1, max_length=100)


class ListUploadsRequest(_Ignore):
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    search: str | None = None
    return_presigned_urls: bool = False
    limit: int | None = Field(default=None, ge=1, le=1000)
    offset: int | None = Field(default=None, ge=0)


# -- batches -----------------------------------------------------------------
class CreateBatchRequest(_Ignore):
    object_ids: list[str] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    dedup_strategy: Literal["skip", "replace", "force"] | None = None
    auto_submit: bool | None = None
    trigger_processing: bool | None = None  # the contract's deprecated alias of auto_submit


class AddObjectsToBatchRequest(_Ignore):
    object_ids: list[str] = Field(min_length=1)


class ListBatchesRequest(_Ignore):
    bucket_id: str | None = None
    collection_id: str | None = None
    namespace_id: str | None = None
    status: TaskStatus | None = None
    offset: int | None = Field(default=0, ge=0)
    limit: int | None = Field(default=100, ge=1, le=1000)
    cursor: str | None = None


class SubmitBatchRequest(_Ignore):
    include_processing_history: bool = True


class RetryBatchRequest(_Ignore):
    retry_mode: Literal["transient_only", "all"] = "transient_only"
    tier_nums: list[int] | None = None
    max_retry_count: int = Field(default=3, ge=1, le=10)


class PatchBatchRequest(_Ignore):
    metadata: dict[str, Any] | None = None


# -- tasks -------------------------------------------------------------------
class ListTasksRequest(_Ignore):
    status: TaskStatus | None = None
    task_type: TaskType | None = None
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    search: str | None = None
