"""Typed response models, one module per resource (written from the v0.82 contract).

Every model keeps unknown fields (``extra="allow"``) and keeps unknown
status / type values as plain strings.
"""

from mixpeek_magics.client.models._base import DeleteResponse, MixpeekModel, Status
from mixpeek_magics.client.models.batches import Batch, BatchProgress, FailedObjectRecord
from mixpeek_magics.client.models.buckets import Bucket
from mixpeek_magics.client.models.collections import Collection, FeatureExtractorInfo, TriggerResult
from mixpeek_magics.client.models.common import Pagination
from mixpeek_magics.client.models.connections import (
    ConnectionTestResult,
    DriveFile,
    DriveFileList,
    FolderItem,
    FolderList,
    GoogleDriveConfig,
    GoogleDriveOAuthCredentials,
    GoogleDriveServiceAccountCredentials,
    S3AccessKeyCredentials,
    S3Config,
    S3RoleCredentials,
    StorageConnection,
    TigrisAccessKeyCredentials,
    TigrisConfig,
)
from mixpeek_magics.client.models.documents import BlobRef, Document
from mixpeek_magics.client.models.health import Health
from mixpeek_magics.client.models.namespaces import FeatureExtractor, Namespace
from mixpeek_magics.client.models.objects import Blob, BucketObject, CreateObjectsBatchResult, FailedObject
from mixpeek_magics.client.models.organization import Organization, RateLimits
from mixpeek_magics.client.models.retrievers import Retriever, RetrieverResults, Stage, StageStatistics
from mixpeek_magics.client.models.syncs import FileFilters, SyncConfiguration, SyncJob, SyncTriggerResult
from mixpeek_magics.client.models.tasks import Task, Tier
from mixpeek_magics.client.models.uploads import (
    BatchConfirmResult,
    BatchUploadResult,
    ConfirmUploadResult,
    Upload,
)

__all__ = [
    "Batch",
    "BatchProgress",
    "FailedObjectRecord",
    "BatchConfirmResult",
    "BatchUploadResult",
    "Blob",
    "Bucket",
    "BucketObject",
    "ConfirmUploadResult",
    "CreateObjectsBatchResult",
    "DeleteResponse",
    "FailedObject",
    "FeatureExtractor",
    "Health",
    "MixpeekModel",
    "Namespace",
    "Organization",
    "Pagination",
    "RateLimits",
    "Status",
    "Task",
    "Tier",
    "Upload",
    # storage connections and bucket syncs
    "ConnectionTestResult",
    "DriveFile",
    "DriveFileList",
    "FileFilters",
    "FolderItem",
    "FolderList",
    "GoogleDriveConfig",
    "GoogleDriveOAuthCredentials",
    "GoogleDriveServiceAccountCredentials",
    "S3AccessKeyCredentials",
    "S3Config",
    "S3RoleCredentials",
    "StorageConnection",
    "SyncConfiguration",
    "SyncJob",
    "SyncTriggerResult",
    "TigrisAccessKeyCredentials",
    "TigrisConfig",
    # collections, documents and retrievers
    "BlobRef",
    "Collection",
    "Document",
    "FeatureExtractorInfo",
    "Retriever",
    "RetrieverResults",
    "Stage",
    "StageStatistics",
    "TriggerResult",
]
