"""TaskProgress and TaskBoard through the widget API (no front end needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ipywidgets.widgets import widget as _widget_module

from mixpeek_magics.client.statuses import FAMILY_COLORS
from mixpeek_magics.notebook.progress import TaskBoard, TaskProgress
from mixpeek_magics.tracking.snapshot import TaskSnapshot
from mixpeek_magics.tracking.summary import render_summary_text

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def snap(task_id="tsk_1", status="PROCESSING", processed=None, total=None, at=0.0, **kw):
    finished = (
        T0 + timedelta(seconds=at) if status in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED") else None
    )
    return TaskSnapshot(
        task_id,
        status,
        processed=processed,
        total=total,
        first_seen=T0,
        observed_at=T0 + timedelta(seconds=at),
        finished_at=finished,
        **kw,
    )


def live_widgets() -> int:
    """Widget models alive in the kernel (each one is a comm to the front end)."""
    return len(_widget_module._instances)


def visible(w) -> bool:
    return w.layout.display != "none"


# --------------------------------------------------------------------------- TaskProgress


@pytest.mark.parametrize(
    "status,family",
    [
        ("PENDING", "pending"),
        ("QUEUED", "pending"),
        ("PROCESSING", "running"),
        ("IN_PROGRESS", "running"),
        ("COMPLETED", "success"),
        ("COMPLETED_WITH_ERRORS", "partial"),
        ("FAILED", "failed"),
        ("CANCELED", "canceled"),
        ("SOMETHING_NEW", "unknown"),
    ],
)
def test_badge_text_and_colour_by_family(status, family):
    p = TaskProgress(min_interval=0)
    p.on_update([snap(status=status, processed=1, total=4)], "ok")
    assert p.badge.value == status
    assert p.badge.style.background == FAMILY_COLORS[family]
    assert p.bar.style.bar_color == FAMILY_COLORS[family]


def test_bar_counts_percentage_elapsed_and_eta_from_rate():
    p = TaskProgress(min_interval=0)
    p.on_update([snap(processed=0, total=20, at=0)], "ok")
    assert p.bar.value == 0
    assert p.eta_seconds is None  # no rate yet
    p.on_update([snap(processed=5, total=20, at=10)], "ok")  # 0.5 items/s, 15 left
    assert p.bar.value == 25.0
    assert "5 / 20" in p.detail.value and "25%" in p.detail.value
    assert p.eta_seconds == pytest.approx(30.0)
    assert "eta 0:30" in p.detail.value
    assert "elapsed 0:10" in p.detail.value
    p.on_update([snap(processed=15, total=20, at=20)], "ok")  # 15 in 20 s: 0.75/s, 5 left
    assert p.eta_seconds == pytest.approx(5 / 0.75)
    assert p.bar.value == 75.0


def test_eta_from_percentage_when_no_totals():
    p = TaskProgress(min_interval=0)
    p.on_update([snap(percentage=10.0, at=0)], "ok")
    p.on_update([snap(percentage=30.0, at=4)], "ok")  # 5 points/s, 70 left
    assert p.bar.value == 30.0
    assert p.eta_seconds == pytest.approx(14.0)


def test_failed_shows_error_and_freezes():
    p = TaskProgress(min_interval=0, on_cancel=lambda _id: None)
    p.on_update([snap(processed=2, total=10)], "ok")
    assert visible(p.cancel_button) and not visible(p.error)
    p.on_update([snap(status="FAILED", processed=2, total=10, error="disk <full>", at=3)], "ok")
    assert visible(p.error)
    assert "disk &lt;full&gt;" in p.error.value
    assert p.frozen and not visible(p.cancel_button) and p.cancel_button.disabled
    assert p.bar.style.bar_color == FAMILY_COLORS["failed"]
    assert p.bar.bar_style == "danger"
    assert "eta" not in p.detail.value


def test_completed_with_errors_lists_failed_items():
    p = TaskProgress(min_interval=0)
    items = tuple(f"file{i}.png" for i in range(15))
    p.on_update([snap(status="COMPLETED_WITH_ERRORS", processed=20, total=20, failed_items=items)], "ok")
    assert "Failed items (15)" in p.error.value
    # a tile each for the first 12 (no such files here: an icon each), the rest counted
    assert p.error.value.count('class="mixpeek-failed-item"') == 12
    assert "file0.png" in p.error.value and "file12.png" not in p.error.value and "and 3 more" in p.error.value
    assert p.bar.style.bar_color == FAMILY_COLORS["partial"]


def test_on_finish_freezes_final_state_and_ignores_later_updates():
    p = TaskProgress(min_interval=0, on_cancel=lambda _id: None)
    p.on_update([snap(processed=3, total=10)], "ok")
    p.on_finish([snap(status="COMPLETED", processed=10, total=10, at=5)])
    assert p.finished and p.frozen
    assert p.bar.value == 100.0 and p.bar.bar_style == "success"
    assert not visible(p.cancel_button)
    p.on_update([snap(processed=1, total=10, at=6)], "ok")
    assert p.badge.value == "COMPLETED" and p.bar.value == 100.0


def test_follows_its_task_id_among_many():
    p = TaskProgress(task_id="tsk_b", min_interval=0)
    p.on_update([snap("tsk_a", processed=1, total=2), snap("tsk_b", processed=3, total=4)], "ok")
    assert p.snapshot.task_id == "tsk_b" and p.bar.value == 75.0


def test_cancel_confirm_yes_calls_on_cancel_with_id():
    calls = []
    p = TaskProgress(min_interval=0, on_cancel=calls.append)
    p.on_update([snap("tsk_42", processed=1, total=10)], "ok")
    p.cancel_button.click()
    assert visible(p.confirm_box) and not visible(p.cancel_button)
    assert p.confirm_label.value == "Cancel task tsk_42?"
    assert calls == []  # nothing before confirmation
    p.confirm_yes.click()
    assert calls == ["tsk_42"]
    assert not visible(p.confirm_box)
    assert p.cancel_button.disabled and p.cancel_requested
    assert "cancel requested" in p.detail.value
    p.confirm_yes.click()  # a stray second click does nothing
    assert calls == ["tsk_42"]


def test_cancel_no_does_not_call():
    calls = []
    p = TaskProgress(min_interval=0, on_cancel=calls.append)
    p.on_update([snap("tsk_42", processed=1, total=10)], "ok")
    p.cancel_button.click()
    p.confirm_no.click()
    assert calls == []
    assert visible(p.cancel_button) and not visible(p.confirm_box) and not p.cancel_button.disabled


def test_cancel_failure_is_shown_not_raised():
    def boom(_id):
        raise RuntimeError("server said no")

    p = TaskProgress(min_interval=0, on_cancel=boom)
    p.on_update([snap(processed=1, total=10)], "ok")
    p.cancel_button.click()
    p.confirm_yes.click()
    assert "Cancel failed: server said no" in p.error.value and visible(p.error)
    assert not p.cancel_button.disabled


def test_no_on_cancel_hides_button():
    p = TaskProgress(min_interval=0)
    p.on_update([snap(processed=1, total=10)], "ok")
    assert not visible(p.cancel_button)
    p.request_cancel()
    assert not visible(p.confirm_box)


def test_text_plain_repr_is_the_text_progress():
    p = TaskProgress(min_interval=0)
    p.on_update([snap("tsk_1", processed=12, total=20, label="photos")], "ok")
    bundle = p._repr_mimebundle_()
    assert bundle["text/plain"] == "photos: [############--------] 12/20 60% PROCESSING"
    assert "application/vnd.jupyter.widget-view+json" in bundle
    p.on_update([snap("tsk_1", status="FAILED", processed=12, total=20, error="boom")], "ok")
    assert p._repr_mimebundle_()["text/plain"].splitlines()[1] == "FAILED tsk_1: boom"


def test_reconnecting_shown_on_single_task():
    p = TaskProgress(min_interval=0)
    p.on_update([snap(processed=1, total=10)], "reconnecting")
    assert "reconnecting" in p.detail.value
    p.on_update([snap(processed=1, total=10)], "ok")
    assert "reconnecting" not in p.detail.value


# --------------------------------------------------------------------------- TaskBoard


def many(n, done=0, at=0.0):
    out = []
    for i in range(n):
        if i < done:
            out.append(snap(f"tsk_{i:04d}", "COMPLETED", processed=10, total=10, at=at))
        else:
            out.append(snap(f"tsk_{i:04d}", "PROCESSING", processed=min(10, int(at)), total=10, at=at))
    return out


def test_board_counts_overall_and_rows():
    b = TaskBoard(min_interval=0, on_cancel=lambda _id: None)
    snaps = [
        snap("tsk_a", "COMPLETED", 10, 10),
        snap("tsk_b", "PROCESSING", 5, 10),
        snap("tsk_c", "FAILED", 0, 10, error="x"),
    ]
    b.on_update(snaps, "ok")
    assert b.counts == {"PROCESSING": 1, "COMPLETED": 1, "FAILED": 1}
    assert "1 PROCESSING" in b.counts_html.value and FAMILY_COLORS["failed"] in b.counts_html.value
    assert b.bar.value == 50.0  # 15 / 30
    assert "15 / 30" in b.detail.value
    assert list(b.rows) == ["tsk_a", "tsk_b", "tsk_c"]
    assert [r.task_id for r in b.rows_box.children] == ["tsk_a", "tsk_b", "tsk_c"]
    assert b.rows["tsk_c"].frozen and not b.rows["tsk_b"].frozen
    assert b.expanded
    assert visible(b.cancel_all_button)


def test_board_overall_is_share_of_finished_when_totals_unknown():
    b = TaskBoard(min_interval=0)
    b.on_update(
        [snap("tsk_a", "COMPLETED"), snap("tsk_b", "PROCESSING"), snap("tsk_c", "PENDING"), snap("tsk_d", "FAILED")],
        "ok",
    )
    assert b.bar.value == 50.0
    assert "2 / 4 tasks done" in b.detail.value


def test_board_eta_from_overall_rate():
    b = TaskBoard(min_interval=0)
    b.on_update(many(4, at=0), "ok")  # 0 of 40
    b.on_update(many(4, at=2), "ok")  # 8 of 40 in 2 s: 4/s, 32 left
    assert b.eta_seconds == pytest.approx(8.0)
    assert "eta 0:08" in b.detail.value


def test_board_reconnecting_indicator():
    b = TaskBoard(min_interval=0)
    b.on_update(many(2), "reconnecting")
    assert visible(b.connection_label) and "reconnecting" in b.connection_label.value
    assert "(reconnecting…)" in b._repr_mimebundle_()["text/plain"]
    b.on_update(many(2), "ok")
    assert not visible(b.connection_label)


def test_board_collapsed_and_bounded_with_hundreds_of_tasks():
    before = live_widgets()
    b = TaskBoard(min_interval=0, max_rows=50, collapse_threshold=20, on_cancel=lambda _id: None)
    base = live_widgets() - before
    b.on_update(many(500), "ok")
    assert not b.expanded  # collapsed by default
    assert len(b.rows) == 0  # rows are not built while collapsed
    assert b.hidden_count == 450
    assert b.accordion.titles == ("Tasks (500)",)
    b.accordion.selected_index = 0  # the user expands
    assert len(b.rows) == 50 and len(b.rows_box.children) == 51
    assert b.more_label.value == "… and 450 more" and visible(b.more_label)
    per_row = (live_widgets() - before - base) / 50
    assert per_row < 40
    count = live_widgets()
    # tasks come and go: rows are reused, the widget count does not grow
    for k in range(1, 5):
        b.on_update(many(500, done=100 * k, at=k), "ok")
    assert live_widgets() == count
    assert len(b.rows) == 50
    # unfinished first when they do not all fit
    assert all(not r.snapshot.terminal for r in b.rows.values())
    b.on_update(many(500, at=6), "ok")
    assert b.expanded  # the user's choice is kept


def test_board_shows_failed_rows_first_when_finished():
    b = TaskBoard(min_interval=0, max_rows=5, collapse_threshold=100)
    snaps = [snap(f"tsk_{i}", "COMPLETED", 1, 1) for i in range(20)]
    snaps[13] = snap("tsk_13", "FAILED", 0, 1, error="bad")
    b.on_finish(snaps)
    assert list(b.rows)[0] == "tsk_13"
    assert b.bar.style.bar_color == FAMILY_COLORS["partial"]
    assert all(r.frozen for r in b.rows.values())


def test_board_cancel_row_and_cancel_all():
    calls = []
    b = TaskBoard(min_interval=0, on_cancel=calls.append)
    b.on_update(
        [snap("tsk_a", "PROCESSING", 1, 10), snap("tsk_b", "PENDING"), snap("tsk_c", "COMPLETED", 10, 10)], "ok"
    )
    row = b.rows["tsk_a"]
    row.cancel_button.click()
    row.confirm_yes.click()
    assert calls == ["tsk_a"]
    assert not visible(b.rows["tsk_c"].cancel_button)  # finished rows cannot be canceled
    b.cancel_all_button.click()
    assert b.cancel_all_label.value == "Cancel all 2 unfinished tasks?"
    b.cancel_all_no.click()
    assert calls == ["tsk_a"]
    b.cancel_all_button.click()
    b.cancel_all_yes.click()
    assert calls == ["tsk_a", "tsk_a", "tsk_b"]
    assert b.cancel_all_button.disabled
    assert b.rows["tsk_b"].cancel_button.disabled


def test_board_without_on_cancel_has_no_cancel_buttons():
    b = TaskBoard(min_interval=0)
    b.on_update(many(3), "ok")
    assert not visible(b.cancel_all_button)
    assert not any(visible(r.cancel_button) for r in b.rows.values())


def test_board_final_state_frozen():
    b = TaskBoard(min_interval=0, on_cancel=lambda _id: None)
    b.on_update(many(3), "ok")
    b.on_finish(many(3, done=3, at=5))
    assert b.finished
    assert b.bar.value == 100.0 and b.bar.style.bar_color == FAMILY_COLORS["success"]
    assert b.bar.bar_style == "success"
    assert not visible(b.cancel_all_button)
    assert all(r.frozen and not visible(r.cancel_button) for r in b.rows.values())
    b.on_update(many(3), "ok")
    assert b.counts == {"COMPLETED": 3}


def test_board_text_plain_repr_equals_summary_text():
    b = TaskBoard(min_interval=0)
    snaps = [snap("tsk_a", "COMPLETED", 10, 10), snap("tsk_b", "FAILED", 2, 10, error="bad <thing>")]
    b.on_update(snaps, "ok")
    text = b._repr_mimebundle_()["text/plain"]
    assert text == render_summary_text(snaps)
    assert text == "2 tasks: 1 COMPLETED, 1 FAILED\n[############--------] 12/20 60%\n  FAILED tsk_b: bad <thing>"
    titled = TaskBoard(min_interval=0, title="Upload")
    titled.on_update(snaps, "ok")
    assert titled._repr_mimebundle_()["text/plain"] == "Upload\n" + text
    assert "model_id" in titled._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]


def test_board_text_has_no_times():
    b = TaskBoard(min_interval=0)
    b.on_update(many(2, at=0), "ok")
    first = b._repr_mimebundle_()["text/plain"]
    b2 = TaskBoard(min_interval=0)
    b2.on_update([s.__class__(**{**s.__dict__, "first_seen": T0 - timedelta(hours=3)}) for s in many(2)], "ok")
    assert b2._repr_mimebundle_()["text/plain"] == first
    assert "elapsed" not in first


@pytest.mark.parametrize("kind", ["board", "single"])
def test_no_live_text_tick_once_every_task_ended(kind):
    """The live text (what text front ends see) refreshes while tasks run; an update in which every
    task ended is followed by the final state, which replaces it: no tick just before it."""
    view = TaskBoard(min_interval=0) if kind == "board" else TaskProgress(min_interval=0)
    view._outputs = [("widget-id", "live-id")]  # as if displayed in a kernel's cell
    view.on_update(
        [snap("tsk_1", "PROCESSING", 1, 4), snap("tsk_2", "PROCESSING", 0, 4)][: 2 if kind == "board" else 1]
    )
    ticks = view._live.submit_count
    assert ticks == 1
    view.on_update(
        [snap("tsk_1", "COMPLETED", 4, 4, at=1.0), snap("tsk_2", "FAILED", 2, 4, at=1.0)][: 2 if kind == "board" else 1]
    )
    assert view._live.submit_count == ticks
