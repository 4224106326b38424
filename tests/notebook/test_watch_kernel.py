"""A real kernel (nbclient) runs ``mixpeek_magics.watch(..., block=False)`` against the
local server while the next cell sleeps; the saved notebook then holds the final
widget state and, in the board's own output, the static HTML summary, and the
journal knows the cell."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


def _cells(server, folder: Path) -> list[str]:
    return [
        textwrap.dedent(f"""
            import time, warnings
            import mixpeek_magics
            from mixpeek_magics import Mixpeek
            from mixpeek_magics.ingest import bulk_upload
            client = Mixpeek(api_key={server.api_key!r}, base_url={server.base_url!r})
            ns = client.namespaces.create("watch-kernel", feature_extractors=[])
            client = client.with_options(namespace=ns.namespace_id)
            client.buckets.create("files", bucket_schema={{"properties": {{"file": {{"type": "text"}}}}}})
            result = bulk_upload(client, "files", sorted({str(folder)!r} and __import__("pathlib").Path({str(folder)!r}).glob("*")))
            handle = mixpeek_magics.watch(result, client=client, block=False)  # it names its files
            print("started", type(handle.display).__name__)
        """),
        "time.sleep(2)\nprint('the kernel kept working')",
        textwrap.dedent("""
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                final = handle.wait(timeout=60)
            print(final[0].status, final[0].processed, final[0].total, [str(w.message) for w in caught][:1])
        """),
        textwrap.dedent("""
            from mixpeek_magics.tracking import default_journal
            rows = default_journal().timeline(result.task_id)
            print(rows[0]["status"], "->", rows[-1]["status"])
        """),
    ]


def test_non_blocking_watch_in_a_kernel(local_server, tmp_path, monkeypatch):
    local_server.update_settings(pace_seconds=0.25)
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(8):
        (folder / f"note-{i}.txt").write_text(f"note {i}\n" * (i + 1))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 8)

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in _cells(local_server, folder)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(REPO_ROOT)}},
    ).execute()
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)
    nb = nbformat.read(saved, as_version=4)

    first, sleeper, waited, journal = nb.cells
    assert "started TaskBoard" in "".join(o.get("text", "") for o in first.outputs)
    views = [o for o in first.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    htmls = [o for o in first.outputs if "text/html" in o.get("data", {})]
    # the board's output became its static final state (no widget view left, no second copy)
    assert views == [] and len(htmls) == 1
    assert "1 COMPLETED_WITH_ERRORS" in htmls[0].data["text/plain"]
    assert "9/9 100%" in htmls[0].data["text/plain"]
    # a non-blocking watch warns nobody: the board names the failed file itself
    assert "COMPLETED_WITH_ERRORS" in htmls[0].data["text/html"] and "broken.png" in htmls[0].data["text/html"]
    # the sleeping cell ran while the board kept updating, and got nothing of the board's
    assert [o.text for o in sleeper.outputs] == ["the kernel kept working\n"]
    out = "".join(o.get("text", "") for o in waited.outputs)
    assert out.startswith("COMPLETED_WITH_ERRORS 9 9") and "broken.png" in out
    # the final widget state is in the notebook metadata
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["model_name"] == "FloatProgressModel" and m["state"].get("value") == 100.0 for m in state.values())
    assert "".join(o.get("text", "") for o in journal.outputs).strip().endswith("-> COMPLETED_WITH_ERRORS")
