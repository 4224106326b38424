"""Fixtures of the ingest tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _requests_follow_the_contract(request):
    """Every API request of the test is checked against the vendored contract."""
    from tests.fixtures.request_recorder import check_fixture

    yield from check_fixture(request)


@pytest.fixture
def client(local_server):
    """A client in a namespace of its own, with an empty bucket ``files`` of text files."""
    from mixpeek_magics.client import Mixpeek

    c = Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url)
    ns = c.namespaces.create("bulk", feature_extractors=[])
    c = c.with_options(namespace=ns.namespace_id)
    c.buckets.create("files", bucket_schema={"properties": {"file": {"type": "text"}}})
    yield c
    c.close()
