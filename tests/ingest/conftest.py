"""Fixtures of the ingest tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _requests_follow_the_contract(request):
    """Every API request of the test is checked against the vendored contract."""
    from tests.fixtures.request_recorder import check_fixture

    yield from check_fixture(request)
