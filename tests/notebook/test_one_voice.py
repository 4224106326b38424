"""Each fact once per output: the text display's final line, failed items listed in one
place (the board points at the warning), the forms' text where widgets cannot show,
and the live text twin of a displayed board (no kernel: the parts that need none)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from mixpeek_magics.notebook import fallbacks
from mixpeek_magics.notebook.connect_form import ConnectionForm, SyncForm
from mixpeek_magics.notebook.progress import TaskBoard
from mixpeek_magics.notebook.textprogress import TextProgress
from mixpeek_magics.tracking import summary
from mixpeek_magics.tracking.snapshot import TaskSnapshot

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def snap(task_id="tsk_1", status="PROCESSING", processed=None, total=None, at=0.0, **kw):
    terminal = status in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")
    return TaskSnapshot(
        task_id,
        status,
        processed=processed,
        total=total,
        first_seen=T0,
        observed_at=T0 + timedelta(seconds=at),
        finished_at=T0 + timedelta(seconds=at) if terminal else None,
        **kw,
    )


PARTIAL = snap(
    status="COMPLETED_WITH_ERRORS",
    processed=8,
    total=8,
    at=3,
    failed=1,
    failed_items=("images/corrupt.png",),
    label="%%ingest photos",
)


def test_non_tty_final_line_is_written_once():
    out = io.StringIO()
    tp = TextProgress(out, interval=5.0)
    tp.on_update([snap(processed=2, total=8, at=1)], "ok")
    done = snap(status="COMPLETED", processed=8, total=8, at=3)
    tp.on_update([done], "ok")  # the status change writes the final state's line...
    tp.on_finish([done])  # ...so the end does not write it again
    lines = out.getvalue().splitlines()
    assert lines == [
        "[#####---------------] 2/8 25% PROCESSING  elapsed 0:01",
        "[####################] 8/8 100% COMPLETED  elapsed 0:03",
    ]


def test_failed_items_are_named_once_where_the_warning_names_them():
    # a blocking watch warns with the names: the text display points there
    out = io.StringIO()
    tp = TextProgress(out, failure_hint="listed in the warning below")
    tp.on_finish([PARTIAL])
    text = out.getvalue()
    assert "corrupt.png" not in text
    assert "(1 of 8 items failed, listed in the warning below)" in text
    # nobody warns (a non-blocking watch): the display names them itself
    out = io.StringIO()
    TextProgress(out).on_finish([PARTIAL])
    assert "failed items: images/corrupt.png" in out.getvalue()


def test_a_failed_task_keeps_its_items_whatever_the_hint():
    failed = snap(status="FAILED", processed=0, total=2, at=1, error="boom", failed=2, failed_items=("a", "b"))
    # only COMPLETED_WITH_ERRORS is warned about with names; a FAILED task's items stay on the board
    assert summary.failed_items_text(failed, "listed below") == "failed items: a, b"
    assert summary.failed_items_text(PARTIAL, "listed below") == "1 of 8 items failed, listed below"
    assert summary.failed_items_text(snap(status="COMPLETED_WITH_ERRORS", failed=3), None) == "3 items failed"
    assert summary.failed_items_text(snap(status="COMPLETED")) == ""


def test_final_line_is_plain_and_stable():
    assert summary.final_line([PARTIAL], "%%ingest photos") == (
        "%%ingest photos: [####################] 8/8 100% | 1 COMPLETED_WITH_ERRORS (1 of 8 items failed)"
    )
    assert summary.final_line([snap(status="COMPLETED", processed=2, total=2, at=9)]) == (
        "[####################] 2/2 100% | 1 COMPLETED"
    )


def test_board_final_state_points_at_the_warning():
    board = TaskBoard(min_interval=0, failure_hint="listed below")
    board.on_update([snap(processed=3, total=8, failed=1, failed_items=("images/corrupt.png",))], "ok")
    # while it runs, the live text names what failed so far
    assert "failed items: images/corrupt.png" in board.text()
    board.on_finish([PARTIAL])
    assert "corrupt.png" not in board.text() and "corrupt.png" not in board.summary_html()
    assert "1 of 8 items failed, listed below" in board.text()
    assert "1 of 8 items failed, listed below" in board.summary_html()


def test_board_outside_a_kernel_shows_its_text_once():
    board = TaskBoard(min_interval=0, title="Demo")
    board.on_update([snap(processed=3, total=8)], "ok")
    bundle = board._repr_mimebundle_()
    assert bundle["text/plain"] == "Demo\n1 task: 1 PROCESSING\n[#######-------------] 3/8 37%"
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert board.shown_in_current_cell() is False  # never displayed in a kernel
    assert board.live_updates == 0


def test_forms_say_what_to_do_without_widgets():
    form = ConnectionForm(submit=lambda body: None)
    text = form._repr_mimebundle_()["text/plain"]
    assert text == fallbacks.CONNECT_WITHOUT_WIDGETS
    assert "client.connections.create(**credentials.s3_access_key(" in text
    assert 'os.environ["AWS_SECRET_ACCESS_KEY"]' in text  # the secret never typed into the notebook
    sync = SyncForm(connection_id="conn_x", provider_type="s3", create_sync=lambda b, body: None)
    assert "client.syncs.create(" in sync._repr_mimebundle_()["text/plain"]
    key = fallbacks.key_prompt_without_widgets("MIXPEEK_API_KEY")
    assert "MIXPEEK_API_KEY" in key and "widgets = False" in key and "getpass.getpass(" in key


def test_the_python_calls_of_the_connect_fallback_exist():
    import inspect

    import mixpeek_magics
    from mixpeek_magics.client import credentials
    from mixpeek_magics.client.resources.connections import Connections

    body = credentials.s3_access_key("my-s3", "AKIAABCDEFGHIJKLMNOP", "s" * 40, "us-east-1")
    # the body the fallback builds goes to connections.create as keyword arguments
    assert set(body) <= set(inspect.signature(Connections.create).parameters)
    for name in ("s3_iam_role", "s3_compatible", "tigris", "gdrive_service_account", "gdrive_oauth"):
        assert callable(getattr(credentials, name)) and name in fallbacks.CONNECT_WITHOUT_WIDGETS
    assert callable(mixpeek_magics.signed_in_client)
