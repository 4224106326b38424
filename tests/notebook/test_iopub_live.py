"""What every front end receives from a running ``%%ingest``, captured on the kernel's
iopub channel (jupyter_client, a real kernel, the embedded server paced so the
processing takes seconds):

* the board's live text twin is refreshed through its display id, about every 2 s,
  with the current counts: a front end without widgets shows them while it runs;
* when it ends, the board's own output becomes the static final state and the twin
  is emptied: no widget and no second copy are left;
* no line is printed twice, the failed file is named once (in the warning), and a
  headless run (papermill: ``allow_stdin=False``) gets the outcome as one plain line.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"
N_FILES = 10


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    from jupyter_client.manager import start_new_kernel

    home = tmp_path_factory.mktemp("iopub-live")
    data = home / "data"
    data.mkdir()
    for i in range(N_FILES - 1):
        (data / f"note-{i}.txt").write_text(f"note {i}\n")
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPEEK_")}
    env.update(
        MIXPEEK_MAGICS_DATA_DIR=str(home / "mm"),
        MIXPEEK_MAGICS_CONFIG_DIR=str(home / "cfg"),
        MIXPEEK_LOCAL_DATA_DIR=str(home / "server"),
        MIXPEEK_JOURNAL_PATH=str(home / "journal.sqlite3"),
        MIXPEEK_LOCAL_PACE_SECONDS="0.6",
        PYTHONPATH=str(REPO_ROOT),
    )
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(home), env=env)
    try:
        for code in ("%load_ext mixpeek_magics", "%mixpeek_auth --local --namespace live --create-namespace"):
            assert errors(execute(kc, code)) == []
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code: str, allow_stdin: bool = False, timeout: float = 120.0) -> list[dict]:
    """Every iopub message of one execution (until idle), with the time it arrived."""
    msg_id = kc.execute(code, allow_stdin=allow_stdin)
    out, deadline = [], time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msg["at"] = time.monotonic()
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out
        out.append(msg)


def displays(msgs: list[dict]) -> dict[str, list[dict]]:
    """display id -> its bundles in order (the first display, then every update)."""
    by_id: dict[str, list[dict]] = {}
    for m in msgs:
        if m["msg_type"] in ("display_data", "update_display_data"):
            did = m["content"].get("transient", {}).get("display_id")
            if did:
                by_id.setdefault(did, []).append({**m["content"]["data"], "_at": m["at"], "_type": m["msg_type"]})
    return by_id


def errors(msgs: list[dict]) -> list[str]:
    return [f"{m['content']['ename']}: {m['content']['evalue']}" for m in msgs if m["msg_type"] == "error"]


def stream_lines(msgs: list[dict]) -> list[str]:
    text = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    return [ln for ln in text.splitlines() if ln.strip()]


# --no-strict: a headless run would otherwise (rightly) stop at the broken file; here it warns
INGEST = "%%ingest --bucket {bucket} --create-bucket --no-strict -o {var}\ndata/\n"


@pytest.fixture(scope="module")
def headless(kernel):
    return execute(kernel, INGEST.format(bucket="live-a", var="res_a"), allow_stdin=False)


def test_live_text_shows_counts_while_it_runs_and_the_board_ends_static(headless):
    assert errors(headless) == []
    by_id = displays(headless)
    live_ids = [d for d, b in by_id.items() if b[0].get("text/plain", "").startswith("0 tasks")]
    assert len(live_ids) == 1, {d: b[0].get("text/plain") for d, b in by_id.items()}
    live = by_id[live_ids[0]]
    # a widget front end renders the twin's hidden widget; the others show its text
    assert WIDGET in live[0]
    running = [b["text/plain"] for b in live[1:] if "PROCESSING" in b.get("text/plain", "")]
    counts = [int(m.group(1)) for t in running for m in [re.search(rf"\b(\d+)/{N_FILES}\b", t)] if m]
    intermediate = sorted({c for c in counts if 0 < c < N_FILES})
    assert len(intermediate) >= 2, running  # at least two counts before the final one
    assert counts == sorted(counts), counts
    # throttled through the one display id: about every 2 s, never a burst (the last update, the
    # clearing one, comes when the run ends, whenever that is)
    times = [b["_at"] for b in live[1:-1]]
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(times)), times
    assert all(b["_type"] == "update_display_data" for b in live[1:])
    assert live[-1] == {"text/plain": "", "_at": live[-1]["_at"], "_type": "update_display_data"}
    # the board's own output: the widget (no text of its own) until it becomes the final state
    board_ids = [d for d, b in by_id.items() if WIDGET in b[0] and b[0].get("text/plain") == ""]
    assert len(board_ids) == 1
    board = by_id[board_ids[0]]
    assert len(board) == 2, "the board's view is published once, then replaced by its final state"
    final = board[-1]
    assert WIDGET not in final and "mixpeek-task-summary" in final["text/html"]
    assert final["text/plain"].startswith("1 task: 1 COMPLETED_WITH_ERRORS")
    assert f"[####################] {N_FILES}/{N_FILES} 100%" in final["text/plain"]


def test_no_line_is_said_twice(headless):
    lines = stream_lines(headless)
    assert len(lines) == len(set(lines)), lines
    by_id = displays(headless)
    finals = [b[-1].get("text/plain", "") for b in by_id.values()] + [
        b[-1].get("text/html", "") for b in by_id.values()
    ]
    # the failed file: named once, in the warning; the board points there
    assert sum("broken.png" in ln for ln in lines) == 1 and any(ln.startswith("  data/broken.png") for ln in lines)
    assert not any("broken.png" in f for f in finals)
    assert any("1 of 10 items failed, listed below" in f for f in finals)
    # the upload: its bar's output becomes the outcome line, which is not printed as well
    uploads = [b for b in by_id.values() if b[0].get("text/plain", "").startswith("Uploading")]
    assert len(uploads) == 1 and uploads[0][-1]["text/plain"].startswith(f"Uploaded {N_FILES}/{N_FILES} files")
    assert WIDGET not in uploads[0][-1]
    assert not any(ln.startswith(("Uploaded", "Uploading")) for ln in lines)


def test_headless_run_prints_the_outcome_once(headless):
    lines = stream_lines(headless)
    outcome = f"[####################] {N_FILES}/{N_FILES} 100% | 1 COMPLETED_WITH_ERRORS (1 of {N_FILES} items failed)"
    assert lines.count(outcome) == 1, lines


def test_interactive_run_leaves_the_outcome_to_the_board(kernel):
    msgs = execute(kernel, INGEST.format(bucket="live-b", var="res_b"), allow_stdin=True)
    assert errors(msgs) == []
    lines = stream_lines(msgs)
    assert not any("100% |" in ln for ln in lines), lines  # no final line: the board says it
    assert len(lines) == len(set(lines)), lines


def test_watch_of_the_result_in_a_later_cell(kernel, headless):
    # watch() takes the IngestResult itself; its handle's HTML repr is the static summary
    msgs = execute(
        kernel,
        "import mixpeek_magics\nh = mixpeek_magics.watch(res_a, mode='text')\n"
        "print(h.task_ids == res_a.tasks, h.status)\nh",
        allow_stdin=True,
    )
    assert errors(msgs) == []
    assert "True completed_with_errors" in "".join(stream_lines(msgs))
    result = [m for m in msgs if m["msg_type"] == "execute_result"]
    # the text display wrote the outcome in this cell: the handle's repr does not repeat it as a table
    assert len(result) == 1 and "text/html" not in result[0]["content"]["data"]
    later = execute(kernel, "h", allow_stdin=True)
    html = next(m for m in later if m["msg_type"] == "execute_result")["content"]["data"]["text/html"]
    assert "mixpeek-task-summary" in html and "COMPLETED_WITH_ERRORS" in html
