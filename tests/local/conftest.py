"""Fixtures of the local server tests (helpers live in localhelpers.py)."""

from __future__ import annotations

import pytest

from tests.local.localhelpers import Env


@pytest.fixture
def env(local_server):
    e = Env(local_server)
    yield e
    e.close()
