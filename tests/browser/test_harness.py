"""The harness can fail: a notebook whose cell raises makes ``run_all`` fail at once
(not time out) and its traceback is found by ``error_outputs``."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_run_all_reports_a_raising_cell(lab, scratch_notebook):
    path = scratch_notebook(
        "raises", ['print("first")', 'raise ValueError("boom from the browser test")', 'print("never")']
    )
    lab.open_notebook(path)
    start = time.monotonic()
    with pytest.raises(AssertionError, match="ValueError: boom from the browser test"):
        lab.run_all(timeout=60)
    assert time.monotonic() - start < 30
    errors = lab.error_outputs()
    assert any("boom from the browser test" in e for e in errors), errors
