"""Fixtures of the frames tests: a local server with a namespace and a bucket,
a client for it, and a private journal."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest


@dataclass
class FramesEnv:
    server: Any
    client: Any
    namespace_id: str
    bucket: Any  # the Bucket model
    journal: Any

    @property
    def bucket_id(self) -> str:
        return self.bucket.bucket_id

    def text_object(self, text: str, filename: str, bucket: str | None = None) -> Any:
        blob = {
            "property": "content",
            "type": "text",
            "data": {
                "base64": base64.b64encode(text.encode()).decode(),
                "filename": filename,
                "mime_type": "text/plain",
            },
        }
        return self.client.objects.create(bucket or self.bucket_id, blobs=[blob])

    def run_batch(
        self, filenames: list[str], metadata: dict | None = None, bucket: str | None = None
    ) -> tuple[Any, Any]:
        """Objects named ``filenames`` in one batch, submitted and waited for; returns (batch, final task)."""
        bucket = bucket or self.bucket_id
        ids = [self.text_object(f"content of {name}", name, bucket).object_id for name in filenames]
        batch = self.client.batches.create(bucket, ids, metadata=metadata)
        task = self.client.batches.submit(bucket, batch.batch_id)
        final = self.client.tasks.wait(task.task_id, timeout=30, poll=0.05, poll_max=0.2)
        return self.client.batches.get(bucket, batch.batch_id), final


@pytest.fixture
def frames_env(local_server, tmp_path) -> FramesEnv:
    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.tracking import Journal

    client = Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url)
    ns = client.namespaces.create("frames-ns", feature_extractors=[])
    client = client.with_options(namespace=ns.namespace_id)
    bucket = client.buckets.create("frames-bucket", bucket_schema={"properties": {"content": {"type": "text"}}})
    yield FramesEnv(local_server, client, ns.namespace_id, bucket, Journal(tmp_path / "journal.sqlite3"))
    client.close()


def at(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)


T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
