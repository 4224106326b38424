"""The embedded local Mixpeek-compatible server (FastAPI + uvicorn + SQLite).

A separate service that happens to live in this package: it never imports
``mixpeek_magics.client``.

    from mixpeek_magics.local import LocalServer, LocalSettings
    with LocalServer(data_dir=path, port=0, settings=LocalSettings(pace_seconds=0.2)) as srv:
        print(srv.base_url, srv.api_key)
"""

from __future__ import annotations

from .._extras import require

# Before any submodule import, so a plain `pip install mixpeek-magics` meets one clear
# error naming the extra instead of a ModuleNotFoundError from deep inside the server.
require(
    "local",
    "fastapi",
    "starlette",
    "uvicorn",
    "PIL",
    "cryptography",
    "boto3",
    "botocore",
    "google.auth",
    "requests",
    "jsonschema",
)

from .blobs import BlobReadError, ReadContext, register_blob_reader, unregister_blob_reader
from .server import LocalServer
from .settings import LocalSettings

__all__ = [
    "LocalServer",
    "LocalSettings",
    "register_blob_reader",
    "unregister_blob_reader",
    "ReadContext",
    "BlobReadError",
]
