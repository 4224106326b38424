"""notebooks/quickstart.ipynb in JupyterLab, Run All from the Run menu, as a user does:
every cell runs, the live progress board renders as ipywidgets and ends at 100 %
with a completed status, and no cell shows an error.

The notebook's content is written by others and may change (plain API calls or
magics); this test only relies on what the progress board shows (see
``mixpeek_magics/notebook/progress.py``): the ``"<n> task(s)"`` header with one
chip per status, the overall bar and its ``"done / total · pct%"`` detail line.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.lab import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

QUICKSTART = "notebooks/quickstart.ipynb"
# a task that finished processing: COMPLETED, or COMPLETED_WITH_ERRORS when some items failed
DONE_CHIP = re.compile(r"\b\d+ COMPLETED(_WITH_ERRORS)?\b")
NOT_DONE = ("PENDING", "QUEUED", "IN_PROGRESS", "PROCESSING", "FAILED ", "CANCELED", "UNKNOWN")


def test_quickstart_runs_all_cells_with_a_live_board(lab):
    assert (REPO_ROOT / QUICKSTART).is_file(), f"{QUICKSTART} is missing"
    lab.open_notebook(QUICKSTART)
    lab.screenshot("opened")
    state = lab.run_all(timeout=150)
    assert state["cells"] > 0 and state["pending"] == 0, state

    panel = lab.panel()
    # the board: a top-level widget view with an overall progress bar and the "<n> task(s)" header
    boards = (panel.locator(".jp-OutputArea-output > .widget-vbox")
              .filter(has=lab.page.locator(".jupyter-widgets.widget-hprogress"))
              .filter(has_text=re.compile(r"\b\d+ tasks?\b")))
    expect(boards.first).to_be_visible(timeout=20_000)
    board = boards.first
    bar = board.locator(".jupyter-widgets.widget-hprogress").first
    expect(bar).to_be_visible()
    # final state: a completed status chip, 100 % in the detail line, a full bar
    expect(board).to_contain_text(DONE_CHIP, timeout=30_000)
    expect(board).to_contain_text(re.compile(r"(\d+) / \1( tasks done)? · 100%"))
    expect(bar.locator(".progress-bar").first).to_have_attribute("style", re.compile(r"width:\s*100%"))
    header = board.locator(".widget-html", has_text=re.compile(r"\b\d+ tasks?\b")).first.inner_text()
    assert not any(s in header for s in NOT_DONE), header
    # Cancel exists (frozen once the task ended: hidden or disabled)
    assert board.locator("button.jupyter-button.widget-button", has_text="Cancel").count() >= 1
    # no error anywhere in the notebook's outputs
    assert lab.error_outputs() == [], lab.error_outputs()
    lab.screenshot("board", board)
    lab.screenshot("end", panel.locator(".jp-Cell").last)
