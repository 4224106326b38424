"""The quickstart in the front ends users have: Notebook 7 (widgets render as in Lab),
and JupyterLab with its widget manager disabled (what a front end without widget
support shows: each output's text/plain). Run All from the Run menu, as a user does,
on a copy of notebooks/quickstart.ipynb whose ``parameters`` cell slows processing
down to 1 s a file (``paced_quickstart``), while the ingest cell's rendered outputs
are sampled:

* without widgets, the running cell shows the live counts as text, at least two
  intermediate ones before the final one, then the static summary;
* in Notebook 7, the live board (a widget) while it runs, then the static summary in
  its place; the live text twin is never visible where widgets render.

Screenshots of the board in both are saved under test-artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

INGEST = "%%ingest --bucket sample-files --create-bucket"
LIVE_COUNT = re.compile(r"1 task: 1 PROCESSING\s*\n?\s*\[[#-]{20}\] (\d+)/8 \d+%")
FINAL = re.compile(r"1 task\s*·\s*8/8 100%")


def test_quickstart_without_widgets_shows_live_counts_as_text(lab_without_widgets, paced_quickstart):
    lab = lab_without_widgets
    lab.open_notebook(paced_quickstart(1.0))
    index = lab.cell_index(INGEST)
    shots: list[int] = []

    def on_sample(text: str) -> None:
        m = LIVE_COUNT.search(text)
        if m and 0 < int(m.group(1)) < 8 and not shots:
            shots.append(int(m.group(1)))
            lab.screenshot("live-text", lab.cell(index))

    samples = lab.run_all_following(index, on_sample=on_sample)
    counts = [int(m.group(1)) for t in samples for m in [LIVE_COUNT.search(t)] if m]
    intermediate = sorted({c for c in counts if 0 < c < 8})
    assert len(intermediate) >= 2, samples
    assert counts == sorted(counts), counts
    final = lab.cell(index)
    # the board's output became the static summary; the live text is gone, the warning names the file
    summary = final.locator(".mixpeek-task-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("1 COMPLETED_WITH_ERRORS")
    expect(summary).to_contain_text(FINAL)
    text = final.locator(".jp-OutputArea").inner_text()
    assert not LIVE_COUNT.search(text) and "0 tasks" not in text
    assert text.count("corrupt.png") == 1 and "1 of 8 items failed, listed below" in text
    assert lab.error_outputs() == [], lab.error_outputs()
    lab.screenshot("final", final)


def test_quickstart_in_notebook7_shows_the_live_board_then_its_summary(notebook7, paced_quickstart):
    nb = notebook7
    nb.open_notebook(paced_quickstart(1.0))
    index = nb.cell_index(INGEST)
    cell = nb.cell(index)
    seen: list[str] = []

    def on_sample(text: str) -> None:
        board = cell.locator(".widget-vbox").filter(has=nb.page.locator(".widget-hprogress"))
        if not seen and board.count() and re.search(r"\b[1-7] / 8 · ", text):  # the board, mid-way
            seen.append(text)
            nb.screenshot("board-live", board.first)

    samples = nb.run_all_following(index, on_sample=on_sample)
    assert seen, samples  # the board rendered as a widget while the task ran
    # where widgets render, the live text twin stays invisible
    assert not any(LIVE_COUNT.search(t) for t in samples), samples
    summary = cell.locator(".mixpeek-task-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("1 COMPLETED_WITH_ERRORS")
    expect(summary).to_contain_text(FINAL)
    # no second copy: the board itself became the summary
    expect(cell.locator(".widget-hprogress")).to_have_count(0)
    assert cell.locator(".jp-OutputArea").inner_text().count("corrupt.png") == 1
    assert nb.error_outputs() == [], nb.error_outputs()
    nb.screenshot("board-final", cell)
