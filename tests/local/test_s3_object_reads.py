"""Object reads of the S3 provider (get_object): contents and botocore's error mapping.

A moto server without IAM auth, in its own module: moto's auth switch is
process-wide, and test_providers.py runs one with auth on.
"""

from __future__ import annotations

import dataclasses

import pytest

from mixpeek_magics.local.providers import ProviderError, SourceFile, make_provider
from tests.fixtures.moto_s3 import moto_s3_server


@pytest.fixture(scope="module")
def s3():
    with moto_s3_server(auth=False) as server:
        server.create_bucket("media")
        server.bodies = server.put_objects(
            "media", {f"data/f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(5)}
        )
        server.put_object("media", "data/big.bin", bytes(range(256)) * 8_000)
        yield server


def counted(provider):
    calls = []
    real = provider.client.get_object
    provider.client.get_object = lambda **kw: calls.append(kw["Key"]) or real(**kw)
    return calls


def ghost(key="data/ghost.bin"):
    return SourceFile(key=key, name=key.rsplit("/", 1)[-1], size=1, etag_or_md5=None, modified=None, bucket="media")


def test_a_missing_object_is_reported_by_get_object(s3):
    p = make_provider("s3", s3.provider_config())
    calls = counted(p)
    with pytest.raises(ProviderError) as ei:
        p.read_bytes(ghost())
    assert ei.value.kind == "not_found" and "data/ghost.bin" in str(ei.value)
    assert calls == ["data/ghost.bin"]
    f = next(f for f in p.iter_files("media/data") if f.key in s3.bodies)
    assert p.read_bytes(f) == s3.bodies[f.key] and calls == ["data/ghost.bin", f.key]


def test_a_missing_bucket_is_reported_by_get_object(s3):
    p = make_provider("s3", s3.provider_config())
    calls = counted(p)
    f = dataclasses.replace(ghost(), bucket="no-such-bucket")
    with pytest.raises(ProviderError) as ei:
        p.read_bytes(f)
    assert ei.value.kind in ("no_such_bucket", "not_found") and calls == ["data/ghost.bin"]


def test_an_unreachable_store_reports_unreachable(s3):
    p = make_provider("s3", s3.provider_config(endpoint_url="http://127.0.0.1:9"))
    calls = counted(p)
    with pytest.raises(ProviderError) as ei:
        p.read_bytes(ghost("data/f0.txt"))
    assert ei.value.kind == "unreachable" and calls == ["data/f0.txt"]
