"""The magics and ``mixpeek_magics.watch()`` where no widget can be shown (this shell is
a terminal-like IPython, not a widget kernel), against the local server: every fact
said once, forms that say what to do instead, ``watch()`` of an ingest result, task
labels with bucket names, warnings that point at the caller, and ``%mixpeek_tasks``
examples that use task types the ingest really produces."""

from __future__ import annotations

import re
import warnings

import pytest

import mixpeek_magics
from mixpeek_magics.notebook import fallbacks, session
from mixpeek_magics.tracking import PartialFailureWarning
from tests.fixtures.files import make_files


def test_ingest_in_text_mode_says_each_fact_once(ip, signed_in, tmp_path, capsys):
    make_files(tmp_path / "data", 3)
    make_files(tmp_path / "data", 1, prefix="bad")
    signed_in.update_settings(fail_filenames=["bad*"])
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket --no-strict -o res", "data/\n")
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.strip()]
    print("\n".join(lines))
    assert len(lines) == len(set(lines)), lines
    assert sum(ln.startswith("Uploaded 4/4 files") for ln in lines) == 1
    # the failed file: named in the warning only; the progress lines point there
    assert sum("bad0.txt" in ln for ln in lines) == 1, lines
    assert any("1 of 4 items failed, listed below" in ln for ln in lines), lines
    # the upload-confirm task is counted where the processing task is
    assert any(re.search(r"; 1 task \(\+1 upload-confirm task\)$", ln) for ln in lines), lines
    assert ip.user_ns["res"].confirm_tasks


def test_upload_confirm_tasks_are_labelled_with_their_ingest(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 2)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket -o res", "data/\n")
    res = ip.user_ns["res"]
    ip.run_line_magic("mixpeek_tasks", "-o tasks")
    frame = ip.user_ns.pop("tasks")
    assert len(res.confirm_tasks) == 1
    confirm = frame[frame["task_id"] == res.confirm_tasks[0]]
    process = frame[frame["task_id"] == res.tasks[0]]
    assert list(confirm["task_type"]) == ["api_buckets_uploads_batch_confirm"]
    # the server's confirm task points at the cell that started it, like the processing task
    assert confirm["source_cell"].iloc[0] == process["source_cell"].iloc[0]
    assert "%%ingest --bucket docs" in confirm["source_cell"].iloc[0]


def test_tasks_help_uses_task_types_the_ingest_produces(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 1)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket", "data/\n")
    produced = {t.task_type for t in session.signed_in_client().tasks.iter()}
    doc = ip.find_magic("mixpeek_tasks", "line").__doc__
    examples = re.findall(r"--type ([a-z][a-z_]+)", doc)  # not the usage line's TASK_TYPE
    assert examples and set(examples) <= produced, (examples, produced)


def test_connect_without_widgets_prints_the_python_calls(ip, signed_in, capsys):
    assert ip.run_line_magic("mixpeek_connect", "") is None  # no form repr
    assert capsys.readouterr().out.strip() == fallbacks.CONNECT_WITHOUT_WIDGETS.strip()


def test_watch_takes_an_ingest_result(ip, signed_in, tmp_path):
    make_files(tmp_path / "data", 2)
    ip.run_cell_magic("ingest", "--bucket docs --create-bucket --no-wait -o res", "data/\n")
    res = ip.user_ns["res"]
    handle = mixpeek_magics.watch(res, mode="text")
    assert handle.task_ids == res.tasks and handle.status == "completed"
    html = handle._repr_html_()
    assert "mixpeek-task-summary" in html and res.tasks[0] in html
    res_html = res._repr_html_()
    assert "mixpeek-task-summary" in res_html and "docs" in res_html
    nothing = ip.run_cell("%%ingest --bucket docs -o again\ndata/\n")
    assert nothing.error_in_exec is None
    with pytest.raises(ValueError, match="started no task"):
        mixpeek_magics.watch(ip.user_ns["again"], mode="text")


def test_watch_labels_tasks_with_the_bucket_name(signed_in, tmp_path):
    from mixpeek_magics.ingest import bulk_upload

    client = session.signed_in_client()
    client.buckets.create("named-bucket", bucket_schema={"properties": {"file": {"type": "text"}}})
    files = make_files(tmp_path / "named", 2)
    result = bulk_upload(client, "named-bucket", files)
    handle = mixpeek_magics.watch(result.task_id, client=client, mode="text")
    # the engine knows ids only; the display shows the name (looked up once)
    assert handle.snapshots[0].label.startswith("bkt_")
    assert [s.label for s in handle.display._snapshots] == ["bucket named-bucket"]


def test_partial_failure_warning_points_at_the_caller(signed_in, tmp_path):
    from mixpeek_magics.ingest import bulk_upload

    client = session.signed_in_client()
    client.buckets.create("warned", bucket_schema={"properties": {"file": {"type": "text"}}})
    signed_in.update_settings(fail_filenames=["bad*"])
    files = make_files(tmp_path / "w", 2) + make_files(tmp_path / "w", 1, prefix="bad")
    result = bulk_upload(client, "warned", files)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _line() + 1  # the next line, where watch is called
        mixpeek_magics.watch(result, client=client, mode="text")
    partial = [w for w in caught if issubclass(w.category, PartialFailureWarning)]
    assert len(partial) == 1 and "bad0.txt" in str(partial[0].message)
    assert (partial[0].filename, partial[0].lineno) == (__file__, line)


def _line() -> int:
    import sys

    return sys._getframe(1).f_lineno
