"""Throttling and threads: however fast on_update is called, the front end gets
at most ~10 updates a second, and the final state is always exact."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from mixpeek_magics.notebook.progress import TaskBoard, TaskProgress
from mixpeek_magics.notebook.textprogress import Throttle
from mixpeek_magics.tracking.snapshot import TaskSnapshot

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def board_snaps(step: int, n: int = 200, final: bool = False) -> list[TaskSnapshot]:
    status = "COMPLETED" if final else "PROCESSING"
    return [
        TaskSnapshot(
            f"tsk_{i}",
            status,
            processed=100 if final else step % 100,
            total=100,
            first_seen=T0,
            observed_at=T0 + timedelta(milliseconds=step),
            finished_at=T0 + timedelta(milliseconds=step) if final else None,
        )
        for i in range(n)
    ]


def count_sends(widget) -> list[float]:
    """Record every message the widget model sends to the front end."""
    sent: list[float] = []
    widget.comm.send = lambda *a, **k: sent.append(time.monotonic())
    return sent


def test_board_thousand_updates_in_a_second_from_a_thread():
    board = TaskBoard(collapse_threshold=1000)  # rows expanded: the worst case
    bar_msgs = count_sends(board.bar)
    precomputed = [board_snaps(step) for step in range(1000)]

    def feed():
        start = time.monotonic()
        for step, snaps in enumerate(precomputed):
            board.on_update(snaps, "ok")
            # spread over ~1 s
            delay = start + (step + 1) / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    t = threading.Thread(target=feed)
    started = time.monotonic()
    t.start()
    t.join()
    assert 0.9 < time.monotonic() - started < 10.0  # generous: shared CI machines
    # a slow first flush (200 row widgets) can outlast the feed; the latest state then waits on the timer
    deadline = time.monotonic() + 2
    while board._throttle._timer is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    during = board.flush_count
    assert 2 <= during <= int(elapsed * 10) + 2
    final = board_snaps(1000, final=True)
    board.on_finish(final)
    assert board.flush_count <= during + 2
    # exact final state
    assert board.counts == {"COMPLETED": 200}
    assert board.bar.value == 100.0
    assert all(r.snapshot.status == "COMPLETED" and r.bar.value == 100.0 for r in board.rows.values())
    assert board.snapshots == final
    # the bar model really sent no more than one message per flush
    assert 0 < len(bar_msgs) <= board.flush_count


def test_single_task_throttled_and_final_exact():
    p = TaskProgress()
    for i in range(1000):
        p.on_update(
            [
                TaskSnapshot(
                    "tsk_1",
                    "PROCESSING",
                    processed=i,
                    total=1000,
                    first_seen=T0,
                    observed_at=T0 + timedelta(milliseconds=i),
                )
            ],
            "ok",
        )
    # a tight loop: one immediate flush, the rest coalesced into a pending timer
    assert p.flush_count <= 2
    p.on_finish(
        [
            TaskSnapshot(
                "tsk_1",
                "COMPLETED",
                processed=1000,
                total=1000,
                first_seen=T0,
                observed_at=T0 + timedelta(seconds=1),
                finished_at=T0 + timedelta(seconds=1),
            )
        ]
    )
    assert p.badge.value == "COMPLETED" and p.bar.value == 100.0
    assert p.flush_count <= 3


def test_trailing_update_flushed_by_timer():
    board = TaskBoard(min_interval=0.3, row_interval=0.5)
    board.on_update(board_snaps(1, n=3), "ok")  # immediate
    board.on_update(board_snaps(42, n=3), "ok")  # within the interval: deferred
    assert board.bar.value == 1.0
    deadline = time.monotonic() + 2
    while board.bar.value != 42.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert board.bar.value == 42.0
    # on a slow machine the deferred flush can fire after the rows are due too, and refresh both
    rows_with_bar = board.rows["tsk_0"].snapshot.processed == 42
    assert board.flush_count == 2
    # rows lag at most row_interval behind, even when no update follows
    deadline = time.monotonic() + 2
    while board.rows["tsk_0"].snapshot.processed != 42 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert board.rows["tsk_0"].snapshot.processed == 42
    assert board.flush_count == (2 if rows_with_bar else 3)


def test_rows_refresh_at_most_every_row_interval_unless_status_changes():
    board = TaskBoard(min_interval=0, row_interval=10.0)
    board.on_update(board_snaps(1, n=3), "ok")
    board.on_update(board_snaps(2, n=3), "ok")
    assert board.bar.value == 2.0  # header follows every flush
    assert board.rows["tsk_0"].snapshot.processed == 1  # rows wait
    changed = board_snaps(3, n=3)
    changed[1] = TaskSnapshot(
        "tsk_1", "FAILED", processed=3, total=100, error="x", first_seen=T0, observed_at=T0, finished_at=T0
    )
    board.on_update(changed, "ok")
    assert board.rows["tsk_0"].snapshot.processed == 3 and board.rows["tsk_1"].frozen
    board.on_finish(board_snaps(4, n=3, final=True))
    assert all(r.snapshot.status == "COMPLETED" for r in board.rows.values())


def test_many_threads_at_once_are_safe():
    board = TaskBoard(min_interval=0.02, collapse_threshold=1000, on_cancel=lambda _id: None)
    errors = []

    def feed(offset):
        try:
            for step in range(300):
                board.on_update(board_snaps(offset + step, n=60), "ok" if step % 7 else "reconnecting")
        except Exception as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    # meanwhile the user clicks in the "main thread"
    for _ in range(20):
        board.cancel_all_button.click()
        board.cancel_all_no.click()
    for t in threads:
        t.join()
    board.on_finish(board_snaps(0, n=60, final=True))
    assert not errors
    assert board.counts == {"COMPLETED": 60}
    assert len(board.rows) == 50


def test_throttle_unit_bound_with_fake_flush():
    flushed = []
    th = Throttle(flushed.append, interval=0.1)
    stop = time.monotonic() + 1.0
    i = 0
    while time.monotonic() < stop:
        th.submit(i)
        i += 1
    assert i > 1000
    assert len(flushed) <= 11
    th.finish("final")
    assert flushed[-1] == "final"
    th.submit("late")
    time.sleep(0.15)
    assert flushed[-1] == "final" and th.flush_count == len(flushed)


def test_submit_if_idle_never_replaces_a_newer_pending_state():
    flushed = []
    th = Throttle(flushed.append, interval=0.2)
    th.submit("a")  # flushed at once
    th.submit("b")  # pending, timer armed
    th.submit_if_idle("stale")  # must not overwrite "b"
    deadline = time.monotonic() + 2
    while len(flushed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flushed == ["a", "b"]
    time.sleep(0.25)
    th.submit_if_idle("again")  # nothing pending: accepted
    assert flushed == ["a", "b", "again"]
