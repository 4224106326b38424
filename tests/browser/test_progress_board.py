"""The progress board (``TaskBoard``) in JupyterLab: a real batch on the embedded local
server, watched from a notebook run with Run All; the board renders as ipywidgets while
the batch runs, its output becomes the static summary (100 % / COMPLETED) when it ends,
and its Cancel button round-trips to the kernel."""

from __future__ import annotations

import re
import textwrap

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SETUP = textwrap.dedent(
    """
    import base64, tempfile
    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.local import LocalServer
    from mixpeek_magics.notebook.progress import TaskBoard
    from mixpeek_magics.tracking import watch

    srv = LocalServer(data_dir=tempfile.mkdtemp(), port=0).start()
    client = Mixpeek(api_key=srv.api_key, base_url=srv.base_url)
    ns = client.namespaces.create("browser-ns", feature_extractors=[])
    client = client.with_options(namespace=ns.namespace_id)
    bucket = client.buckets.create("browser-bucket", bucket_schema={"properties": {"content": {"type": "text"}}})

    def submit(n, prefix):
        ids = []
        for i in range(n):
            blob = {"property": "content", "type": "text",
                    "data": {"base64": base64.b64encode(f"text {i}".encode()).decode(),
                             "filename": f"{prefix}-{i}.txt", "mime_type": "text/plain"}}
            ids.append(client.objects.create(bucket.bucket_id, blobs=[blob]).object_id)
        batch = client.batches.create(bucket.bucket_id, ids)
        return client.batches.submit(bucket.bucket_id, batch.batch_id)

    cancelled = []
    def cancel(task_id):
        cancelled.append(task_id)
        client.tasks.kill(task_id)
    print("server ready")
    """
)

# a watch that blocks the cell until the batch is done, showing the board meanwhile
WATCH_DONE = textwrap.dedent(
    """
    srv.update_settings(pace_seconds=0.4)
    task = submit(8, "done")
    board = TaskBoard(title="Browser ingest", on_cancel=cancel)
    display(board)
    handle = watch([task.task_id], client=client, observers=[board], journal=None, timeout=60)
    print("final:", handle.status, board.counts)
    """
)


def test_task_board_runs_to_completion_in_jupyterlab(lab, scratch_notebook):
    path = scratch_notebook("board_complete", [SETUP, WATCH_DONE])
    lab.open_notebook(path)
    cell = lab.cell(1)
    live: list[str] = []

    def on_sample(text: str) -> None:
        board = cell.locator(".jp-OutputArea-output .widget-vbox", has_text="Browser ingest")
        if not live and board.count() and board.first.locator(".jupyter-widgets.widget-hprogress").count():
            live.append(text)
            lab.screenshot("running", board.first)

    lab.run_all_following(1, timeout=90, on_sample=on_sample)
    assert live, "the board never rendered as a widget while the batch ran"
    # the board's output is now its static final state: the summary, not a second copy of the board
    summary = cell.locator(".mixpeek-task-summary")
    expect(summary).to_have_count(1)
    expect(summary).to_contain_text("Browser ingest")
    expect(summary).to_contain_text("1 COMPLETED")
    expect(summary).to_contain_text(re.compile(r"8/8 100%"))
    expect(cell.locator(".jupyter-widgets.widget-hprogress")).to_have_count(0)
    # the kernel agrees
    out = cell.locator(".jp-OutputArea").inner_text()
    assert re.search(r"final: completed \{.COMPLETED.: 1\}", out, re.IGNORECASE), out
    assert lab.error_outputs() == []
    lab.screenshot("completed", summary)


# a watch that returns at once: the board keeps updating from the background loop
WATCH_SLOW = textwrap.dedent(
    """
    srv.update_settings(pace_seconds=1.0)
    slow = submit(40, "slow")
    board = TaskBoard(title="Slow ingest", on_cancel=cancel)
    display(board)
    handle = watch([slow.task_id], client=client, observers=[board], journal=None, block=False)
    """
)
CHECK = 'handle.wait(timeout=30, raise_on_failure=False)\nprint("cancelled:", cancelled, "status:", handle.status)'


def test_task_board_cancel_button_round_trip(lab, scratch_notebook):
    path = scratch_notebook("board_cancel", [SETUP, WATCH_SLOW, CHECK])
    lab.open_notebook(path)
    # run the first two cells only; the third waits for the outcome later
    lab.run_cell(0)
    lab.run_cell(1)
    board = lab.panel().locator(".jp-OutputArea-output .widget-vbox", has_text="Slow ingest").first
    expect(board).to_be_visible()
    expect(board).to_contain_text("1 PROCESSING", timeout=20_000)
    row_cancel = board.locator("button.jupyter-button.widget-button:visible", has_text=re.compile(r"^\s*Cancel\s*$"))
    expect(row_cancel.first).to_be_visible()
    expect(row_cancel.first).to_be_enabled()
    lab.screenshot("running", board)
    row_cancel.first.click()
    # inline confirmation, answered in the kernel
    expect(board).to_contain_text("Cancel task", timeout=10_000)
    yes = board.locator("button.jupyter-button.widget-button:visible", has_text="Yes").first
    yes.click()
    # canceled: the board's output becomes its static final state
    summary = lab.cell(1).locator(".mixpeek-task-summary")
    expect(summary).to_contain_text("1 CANCELED", timeout=30_000)
    expect(lab.cell(1).locator(".jupyter-widgets.widget-hprogress")).to_have_count(0)
    lab.screenshot("canceled", summary)
    out = lab.run_cell(2)
    assert re.search(r"cancelled: \['tsk?_?\w+'\]", out) or "cancelled: ['" in out, out
    assert "status: canceled" in out.lower(), out
    # over: no Cancel is offered any more
    expect(lab.cell(1).locator("button.jupyter-button.widget-button")).to_have_count(0)
    assert lab.error_outputs() == []
