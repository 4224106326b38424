"""A real kernel (nbclient): a TaskBoard displayed in one cell, updated from a
background thread while the next cell runs, leaves in the saved notebook its
static final state (the HTML summary and the final text) in the widget's own
output, an emptied live-text output, and no second copy of the board."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]

CELL_SETUP = textwrap.dedent(
    """
    import threading, time
    from datetime import datetime, timedelta, timezone
    from mixpeek_magics.notebook.display import make_display, show
    from mixpeek_magics.tracking.snapshot import TaskSnapshot

    board = show(make_display(title="Demo ingest"))
    print(type(board).__name__)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def snaps(step, final=False):
        a = TaskSnapshot("tsk_alpha", "COMPLETED" if final else "PROCESSING",
                         task_type="ingest", processed=10 if final else step, total=10,
                         first_seen=t0, observed_at=t0 + timedelta(seconds=step),
                         finished_at=t0 + timedelta(seconds=step) if final else None)
        b = TaskSnapshot("tsk_beta", "FAILED" if final else "PROCESSING",
                         task_type="ingest", processed=3, total=10,
                         error="cannot decode <image>" if final else None,
                         first_seen=t0, observed_at=t0 + timedelta(seconds=step),
                         finished_at=t0 + timedelta(seconds=step) if final else None)
        return [a, b]

    def feed():
        global fed_seconds
        time.sleep(0.3)  # let the cell finish first: updates come while the next cell runs
        start = time.monotonic()
        for step in range(200):
            board.on_update(snaps(step % 10), "reconnecting" if step == 50 else "ok")
            time.sleep(0.005)
        fed_seconds = time.monotonic() - start
        board.on_finish(snaps(10, final=True))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    """
)

CELL_WAIT = "time.sleep(2)\nprint('waited')"
CELL_CHECK = "feeder.join(10)\nprint(board.finished, board.flush_count <= fed_seconds * 10 + 3, board.counts)"

# a watch that runs to the end inside the cell that displays it (a blocking watch)
CELL_SAME = textwrap.dedent(
    """
    board2 = show(make_display(mode="widget"))
    for step in range(10):
        board2.on_update(snaps(step), "ok")
    board2.on_finish(snaps(10, final=True))
    """
)

# MIXPEEK_MAGICS_WIDGETS=0: plain text lines in the cell, no widget
CELL_ENV_TEXT = textwrap.dedent(
    """
    import os
    os.environ["MIXPEEK_MAGICS_WIDGETS"] = "0"
    text = show(make_display())
    text.on_update(snaps(5), "ok")
    text.on_finish(snaps(10, final=True))
    del os.environ["MIXPEEK_MAGICS_WIDGETS"]
    """
)


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (CELL_SETUP, CELL_WAIT, CELL_CHECK, CELL_SAME, CELL_ENV_TEXT)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        store_widget_state=True,
        # the kernel runs in the repo root so it imports this checkout
        resources={"metadata": {"path": str(REPO_ROOT)}},
    )
    client.execute()
    # what a saved notebook holds: write and read back
    path = tmp_path_factory.mktemp("saved") / "board.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def _outputs(cell, output_type=None):
    return [o for o in cell.outputs if output_type is None or o.output_type == output_type]


def test_auto_mode_picks_the_widget_in_a_kernel(executed_notebook):
    stream = "".join(o.text for o in _outputs(executed_notebook.cells[0], "stream"))
    assert "TaskBoard" in stream


def _data_outputs(cell):
    return [o for o in cell.outputs if o.output_type == "display_data"]


def test_widget_output_became_its_static_final_state(executed_notebook):
    board, live = _data_outputs(executed_notebook.cells[0])
    # no widget view is left: the board's output is the final summary, said once
    assert sorted(board.data) == ["text/html", "text/plain"]
    text = board.data["text/plain"]
    assert text.startswith("Demo ingest\n2 tasks: 1 COMPLETED, 1 FAILED")
    assert "[#############-------] 13/20 65%" in text
    assert "FAILED tsk_beta: cannot decode <image>" in text
    # the live text (what a front end without widgets showed meanwhile) is emptied
    assert live.data == {"text/plain": ""}


def test_saved_notebook_has_final_html_summary_in_the_creating_cell(executed_notebook):
    first = executed_notebook.cells[0]
    htmls = [o for o in _outputs(first, "display_data") if "text/html" in o.data]
    assert len(htmls) == 1
    html = htmls[0].data["text/html"]
    assert "mixpeek-task-summary" in html
    assert "1 COMPLETED" in html and "1 FAILED" in html
    assert "cannot decode &lt;image&gt;" in html and "<image>" not in html
    # nothing leaked into the cell that happened to be running (not even the headless final line:
    # the watch ended after its cell did)
    wait = executed_notebook.cells[1]
    assert [o.output_type for o in wait.outputs] == ["stream"]
    assert wait.outputs[0].text == "waited\n"


def test_background_updates_were_throttled(executed_notebook):
    check = "".join(o.text for o in _outputs(executed_notebook.cells[2], "stream"))
    assert check.startswith("True True {'COMPLETED': 1, 'FAILED': 1}")


def test_final_widget_state_saved(executed_notebook):
    state = executed_notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m["state"] for m in state.values() if m["model_name"] == "FloatProgressModel"]
    assert any(b.get("value") == 65.0 for b in bars), json.dumps(bars)[:500]


def test_watch_finishing_inside_its_own_cell(executed_notebook):
    cell = executed_notebook.cells[3]
    kinds = [(o.output_type, sorted(o.get("data", {}))) for o in cell.outputs]
    # the board's output (now its final state), the emptied live text, and, nbclient being
    # headless, the outcome as one plain line for a log
    assert kinds == [("display_data", ["text/html", "text/plain"]), ("display_data", ["text/plain"]), ("stream", [])]
    assert cell.outputs[0].data["text/plain"].startswith("2 tasks: 1 COMPLETED, 1 FAILED")
    assert "tsk_beta" in cell.outputs[0].data["text/html"]
    assert cell.outputs[1].data["text/plain"] == ""
    assert cell.outputs[2].text == "[#############-------] 13/20 65% | 1 COMPLETED, 1 FAILED\n"


def test_env_var_turns_widgets_off_in_a_kernel(executed_notebook):
    cell = executed_notebook.cells[4]
    assert {o.output_type for o in cell.outputs} == {"stream"}
    text = "".join(o.text for o in cell.outputs)
    lines = text.splitlines()
    assert lines[0].startswith("[########------------] 8/20 40% | 2 PROCESSING  elapsed 0:05")
    assert lines[1].startswith("[#############-------] 13/20 65% | 1 COMPLETED, 1 FAILED  elapsed 0:10")
    assert lines[2] == "  FAILED tsk_beta: cannot decode <image>"
    assert len(lines) == 3 and "\r" not in text
