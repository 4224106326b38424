"""The progress board (``TaskBoard``) in JupyterLab: a real batch on the embedded local
server, watched from a notebook run with Run All; the board renders as ipywidgets,
reaches 100 % / COMPLETED, and its Cancel button round-trips to the kernel."""
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
    srv.update_settings(pace_seconds=0.15)
    task = submit(8, "done")
    board = TaskBoard(title="Browser ingest", on_cancel=cancel)
    display(board)
    handle = watch(client, [task.task_id], observers=[board], journal=None, timeout=60)
    print("final:", handle.status, board.counts)
    """
)


def test_task_board_runs_to_completion_in_jupyterlab(lab, scratch_notebook):
    path = scratch_notebook("board_complete", [SETUP, WATCH_DONE])
    lab.open_notebook(path)
    lab.run_all(timeout=90)
    panel = lab.panel()

    board = panel.locator(".jp-OutputArea-output .widget-vbox", has_text="Browser ingest").first
    expect(board).to_be_visible()
    bar = board.locator(".jupyter-widgets.widget-hprogress").first
    expect(bar).to_be_visible()
    # the overall bar is full and the counts read COMPLETED
    expect(board).to_contain_text("1 COMPLETED", timeout=20_000)
    expect(board).to_contain_text(re.compile(r"8 / 8 · 100%"))
    fill = bar.locator(".progress-bar").first
    expect(fill).to_have_attribute("style", re.compile(r"width:\s*100%"))
    # the per-task row: badge COMPLETED, Cancel button present (frozen: hidden/disabled)
    expect(board.locator(".widget-html", has_text=re.compile(r"^\s*COMPLETED\s*$")).first).to_be_attached()
    cancel = board.locator("button.jupyter-button.widget-button", has_text="Cancel")
    assert cancel.count() >= 1
    # the kernel agrees
    out = panel.locator(".jp-Cell").nth(1).locator(".jp-OutputArea").inner_text()
    assert re.search(r"final: completed \{.COMPLETED.: 1\}", out, re.IGNORECASE), out
    assert lab.error_outputs() == []
    lab.screenshot("completed", board)


# a watch that returns at once: the board keeps updating from the background loop
WATCH_SLOW = textwrap.dedent(
    """
    srv.update_settings(pace_seconds=1.0)
    slow = submit(40, "slow")
    board = TaskBoard(title="Slow ingest", on_cancel=cancel)
    display(board)
    handle = watch(client, [slow.task_id], observers=[board], journal=None, block=False)
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
    expect(board).to_contain_text("1 CANCELED", timeout=30_000)
    lab.screenshot("canceled", board)
    out = lab.run_cell(2)
    assert re.search(r"cancelled: \['tsk?_?\w+'\]", out) or "cancelled: ['" in out, out
    assert "status: canceled" in out.lower(), out
    # frozen: the row's Cancel is no longer offered
    expect(row_cancel).to_have_count(0)
    assert lab.error_outputs() == []
