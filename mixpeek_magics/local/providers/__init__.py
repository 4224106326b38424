"""Storage providers of the local server: S3 / S3-compatible / Tigris and Google Drive.

    from mixpeek_magics.local.providers import make_provider, test_connection, ProviderError
    p = make_provider("s3", provider_config, settings=server_settings)
    p.test("my-bucket/prefix")                      # raises ProviderError(kind=...)
    for f in p.iter_files("my-bucket/prefix", {"include_patterns": ["*.png"]}):
        with p.open(f) as fh: ...

boto3 and google-auth are imported only when a provider of that type is built.
"""

from __future__ import annotations

from typing import Any

from .base import (
    ERROR_KINDS,
    ProviderError,
    ProviderSettings,
    SourceFile,
    StorageProvider,
    make_provider,
    run_with_deadline,
    test_connection,
)
from .filters import FileFilters, FilterError, apply_filters, matches, parse_filters, rejection_reason

__all__ = [
    "ERROR_KINDS",
    "FileFilters",
    "FilterError",
    "GoogleDriveProvider",
    "ProviderError",
    "ProviderSettings",
    "S3Provider",
    "SourceFile",
    "StorageProvider",
    "apply_filters",
    "make_provider",
    "matches",
    "parse_filters",
    "rejection_reason",
    "run_with_deadline",
    "test_connection",
]


def __getattr__(name: str) -> Any:
    if name == "S3Provider":
        from .s3 import S3Provider

        return S3Provider
    if name == "GoogleDriveProvider":
        from .gdrive import GoogleDriveProvider

        return GoogleDriveProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
