"""notebooks/quickstart.ipynb through papermill, as a scheduled job would run it: its
``parameters`` cell takes ``-p pace_seconds``, and ``--log-output`` (which never logs
display updates) shows the ingest's outcome as one plain line, with the failed file
in the warning below it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "notebooks" / "quickstart.ipynb"
OUTCOME = "[####################] 8/8 100% | 1 COMPLETED_WITH_ERRORS (1 of 8 items failed)"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("papermill") / "quickstart-out.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPEEK_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(QUICKSTART),
            str(out),
            "-p",
            "pace_seconds",
            "0.4",
            "--log-output",
            "--cwd",
            str(QUICKSTART.parent),
            "-k",
            "python3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )
    return proc, out


def test_quickstart_has_a_parameters_cell():
    nb = json.loads(QUICKSTART.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "pace_seconds = " in "".join(tagged[0]["source"])


def test_papermill_log_shows_the_outcome(run):
    proc, _out = run
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    lines = log.splitlines()
    assert lines.count(OUTCOME) == 1, [ln for ln in lines if "100%" in ln]
    # the ingest cell's log: the outcome, then the detail once, in the warning under it
    start = max(i for i, ln in enumerate(lines[: lines.index(OUTCOME)]) if ln.startswith("Executing Cell"))
    end = next(i for i, ln in enumerate(lines) if i > start and ln.startswith("Ending Cell"))
    cell = lines[start:end]
    detail = "  data/sample/images/corrupt.png: cannot decode image: cannot identify image file"
    assert [ln for ln in cell if "corrupt.png" in ln] == [detail]
    assert cell.index(detail) > cell.index(OUTCOME)


def test_papermill_injected_the_parameter_and_saved_the_final_state(run):
    proc, out = run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(injected) == 1 and "pace_seconds = 0.4" in "".join(injected[0]["source"])
    ingest = next(c for c in nb["cells"] if "".join(c["source"]).startswith("%%ingest --bucket sample-files --create"))
    data = [o["data"] for o in ingest["outputs"] if o["output_type"] == "display_data"]
    # the upload's and the board's outputs hold their final states; no widget is left to render
    assert not any("application/vnd.jupyter.widget-view+json" in d for d in data)
    boards = [d for d in data if "text/html" in d]
    assert len(boards) == 1 and "1 COMPLETED_WITH_ERRORS" in "".join(boards[0]["text/plain"])
    assert any("".join(d["text/plain"]).startswith("Uploaded 8/8 files") for d in data)
