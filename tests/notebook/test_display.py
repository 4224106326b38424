"""make_display / show: environment detection; summary_html / render_summary_text."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import pytest

from mixpeek_magics.client.statuses import FAMILY_COLORS
from mixpeek_magics.notebook import display as D
from mixpeek_magics.notebook.textprogress import TextProgress
from mixpeek_magics.tracking.snapshot import TaskSnapshot
from mixpeek_magics.tracking.summary import render_summary_text, summary_html

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def snap(task_id, status, processed=None, total=None, **kw):
    return TaskSnapshot(task_id, status, processed=processed, total=total, first_seen=T0, observed_at=T0, **kw)


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    ).stdout


# --------------------------------------------------------------------------- detection


def test_display_module_does_not_import_ipywidgets():
    out = run_python(
        """
        import sys
        from mixpeek_magics.notebook import display
        obs = display.make_display()
        obs2 = display.make_display(mode="text")
        print(type(obs).__name__, type(obs2).__name__, "ipywidgets" in sys.modules, "IPython" in sys.modules)
        """
    )
    assert out.split() == ["TextProgress", "TextProgress", "False", "False"]


def test_plain_python_gets_text():
    assert D.choose_mode("auto") == "text"  # pytest is not a kernel
    assert isinstance(D.make_display(stream=io.StringIO()), TextProgress)


def test_terminal_ipython_gets_text():
    out = run_python(
        """
        from IPython.testing.globalipapp import start_ipython
        shell = start_ipython()
        from mixpeek_magics.notebook import display
        print(type(shell).__name__, display.in_widget_kernel(), type(display.make_display()).__name__)
        """
    )
    assert out.split()[-2:] == ["False", "TextProgress"]


class ZMQInteractiveShell:  # the name is what the detection looks at (the MRO)
    pass


class SubclassedShell(ZMQInteractiveShell):
    pass


@pytest.mark.parametrize("shell_cls", [ZMQInteractiveShell, SubclassedShell])
def test_kernel_shell_gets_widgets_unless_env_says_no(monkeypatch, shell_cls):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: shell_cls())
    assert D.in_widget_kernel()
    board = D.make_display(title="t", on_cancel=print, max_rows=7)
    assert type(board).__name__ == "TaskBoard"
    assert board.max_rows == 7 and board.title == "t" and board.on_cancel is print
    for value in ("0", "false", "off", "no"):
        monkeypatch.setenv(D.ENV_VAR, value)
        assert D.choose_mode() == "text"
        assert isinstance(D.make_display(stream=io.StringIO()), TextProgress)
    monkeypatch.setenv(D.ENV_VAR, "1")
    assert D.choose_mode() == "widget"


def test_explicit_modes_and_bad_mode():
    assert type(D.make_display(mode="widget")).__name__ == "TaskBoard"
    out = io.StringIO()
    tp = D.make_display(mode="text", stream=out, title="x", interval=1.0)
    assert tp.stream is out and tp.interval == 1.0 and tp.title == "x"
    with pytest.raises(ValueError, match="auto"):
        D.make_display(mode="fancy")


def test_show_returns_observer():
    tp = TextProgress(io.StringIO())
    assert D.show(tp) is tp


# --------------------------------------------------------------------------- summaries


SNAPS = [
    snap("tsk_ok", "COMPLETED", 10, 10, task_type="api_objects_create"),
    snap("tsk_bad", "FAILED", 2, 10, error="<script>alert(1)</script> & more", label="photos"),
    snap("tsk_part", "COMPLETED_WITH_ERRORS", 10, 10, failed_items=("a.png", "b<1>.png")),
    snap("tsk_run", "PROCESSING", 4, 10),
]


def test_summary_html_counts_colours_rows_and_escaping():
    h = summary_html(SNAPS, title="Run <1>")
    assert "Run &lt;1&gt;" in h
    assert "4 tasks" in h and "26/40 65%" in h
    for chip in ("1 PROCESSING", "1 COMPLETED", "1 COMPLETED_WITH_ERRORS", "1 FAILED"):
        assert chip in h
    assert FAMILY_COLORS["failed"] in h and FAMILY_COLORS["success"] in h and FAMILY_COLORS["partial"] in h
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in h
    assert "<script>" not in h
    assert "b&lt;1&gt;.png" in h
    assert "api_objects_create" in h and "2/10" in h and "photos" in h
    # failed first
    assert h.index("tsk_bad") < h.index("tsk_part") < h.index("tsk_ok")


def test_summary_html_bounded_rows():
    many = [snap(f"tsk_{i}", "COMPLETED", 1, 1) for i in range(300)]
    h = summary_html(many, max_rows=20)
    assert h.count("<tr>") == 1 + 20 + 1  # header, rows, "more"
    assert "… and 280 more" in h
    assert "300 COMPLETED" in h


def test_summary_html_empty():
    h = summary_html([])
    assert "0 tasks" in h and "<table" not in h


def test_render_summary_text():
    assert render_summary_text(SNAPS) == "\n".join(
        [
            "4 tasks: 1 PROCESSING, 1 COMPLETED, 1 COMPLETED_WITH_ERRORS, 1 FAILED",
            "[#############-------] 26/40 65%",
            "  FAILED tsk_bad (photos): <script>alert(1)</script> & more",
            "  COMPLETED_WITH_ERRORS tsk_part (failed items: a.png, b<1>.png)",
        ]
    )
    assert render_summary_text([]) == "0 tasks: waiting for tasks"
    assert render_summary_text([snap("tsk_x", "PENDING")], "reconnecting") == (
        "1 task: 1 PENDING  (reconnecting…)\n[--------------------] 0/1 tasks done 0%"
    )
