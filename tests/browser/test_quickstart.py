"""notebooks/quickstart.ipynb in JupyterLab, Run All from the Run menu, as a user does:
every cell runs, the live progress board renders as ipywidgets while the ingest runs
(its live text twin stays invisible where widgets render), and when it ends the board's
output becomes the static summary, with a completed status, and no cell shows an error.

It runs a copy whose ``parameters`` cell slows processing down to 1 s a file (so the
running board can be seen), as papermill's ``-p pace_seconds 1`` would. The notebook's
content is written by others and may change; this test relies on what the displays
show (see ``mixpeek_magics/notebook/progress.py``): the ``"<n> task(s)"`` header with
one chip per status, the overall bar and its ``"done / total · pct%"`` detail line, and
the summary's ``mixpeek-task-summary`` block.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.lab import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

QUICKSTART = "notebooks/quickstart.ipynb"
INGEST = "%%ingest --bucket sample-files --create-bucket"
# a task that finished processing: COMPLETED, or COMPLETED_WITH_ERRORS when some items failed
DONE_CHIP = re.compile(r"^\s*\d+ COMPLETED(_WITH_ERRORS)?\s*$")
LIVE_TEXT = re.compile(r"\d+ tasks?: \d+ (PROCESSING|PENDING|QUEUED)")


def test_quickstart_runs_all_cells_with_a_live_board(lab, paced_quickstart):
    assert (REPO_ROOT / QUICKSTART).is_file(), f"{QUICKSTART} is missing"
    lab.open_notebook(paced_quickstart(1.0))
    lab.screenshot("opened")
    index = lab.cell_index(INGEST)
    cell = lab.cell(index)
    live: list[str] = []

    def on_sample(text: str) -> None:
        # the board: a top-level widget view with an overall progress bar and the "<n> task(s)" header
        boards = (
            cell.locator(".jp-OutputArea-output > .widget-vbox")
            .filter(has=lab.page.locator(".jupyter-widgets.widget-hprogress"))
            .filter(has_text=re.compile(r"\b\d+ tasks?\b"))
        )
        if not live and boards.count() and re.search(r"\b[1-7] / 8 · \d+%", text):
            live.append(text)
            lab.screenshot("board", boards.first)

    samples = lab.run_all_following(index, on_sample=on_sample)
    assert live, samples  # the board rendered as widgets, mid-way
    assert not any(LIVE_TEXT.search(t) for t in samples), samples  # the text twin never shows here

    # final state in the board's own output: a completed status chip, 100 %, no widget left
    summary = cell.locator(".mixpeek-task-summary")
    expect(summary).to_have_count(1)
    expect(summary.locator("span", has_text=DONE_CHIP)).to_have_count(1)
    expect(summary).to_contain_text(re.compile(r"\b(\d+)/\1 100%"))
    expect(cell.locator(".jupyter-widgets.widget-hprogress")).to_have_count(0)
    # the failed file is named once, in the warning under the summary
    assert cell.locator(".jp-OutputArea").inner_text().count("corrupt.png") == 1
    # no error anywhere in the notebook's outputs
    assert lab.error_outputs() == [], lab.error_outputs()
    lab.screenshot("board-final", summary)
    lab.screenshot("end", lab.panel().locator(".jp-Cell").last)
