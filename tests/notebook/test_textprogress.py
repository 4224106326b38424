"""TextProgress: periodic plain lines off a TTY, one rewritten line on a TTY."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from mixpeek_magics.notebook.progress import TaskBoard
from mixpeek_magics.notebook.textprogress import RateEstimator, TextProgress
from mixpeek_magics.tracking.snapshot import TaskSnapshot
from mixpeek_magics.tracking.summary import render_summary_text

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


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TTYStringIO(io.StringIO):
    def isatty(self):
        return True


def test_non_tty_periodic_lines_status_changes_and_final():
    out, clock = io.StringIO(), FakeClock()
    tp = TextProgress(out, interval=5.0, clock=clock)
    assert not tp.tty
    for sec in range(12):  # one update per second, same status
        clock.now = 1000.0 + sec
        tp.on_update([snap(processed=sec, total=20, at=sec)], "ok")
    lines = out.getvalue().splitlines()
    # t=0 (first), t=5, t=10: at most one line every 5 s
    assert len(lines) == 3
    assert lines[0] == "[--------------------] 0/20 0% PROCESSING  elapsed 0:00"
    assert lines[1] == "[#####---------------] 5/20 25% PROCESSING  elapsed 0:05  eta 0:15"
    assert lines[2].startswith("[##########----------] 10/20 50% PROCESSING  elapsed 0:10  eta 0:10")
    clock.now += 0.5
    tp.on_update([snap(status="FAILED", processed=11, total=20, at=11.2, error="boom")], "ok")  # status change
    assert len(out.getvalue().splitlines()) == 4
    tp.on_finish([snap(status="FAILED", processed=11, total=20, at=11.2, error="boom")])
    text = out.getvalue()
    final = text.splitlines()[-2:]
    assert final == ["[###########---------] 11/20 55% FAILED  elapsed 0:11", "  FAILED tsk_1: boom"]
    assert "\r" not in text and "\x1b" not in text
    tp.on_update([snap(processed=1, total=20)], "ok")  # after the end: nothing
    assert out.getvalue() == text


def test_non_tty_board_lines_and_reconnecting():
    out, clock = io.StringIO(), FakeClock()
    tp = TextProgress(out, interval=5.0, clock=clock, title="ingest")
    snaps = [snap("tsk_a", processed=2, total=10), snap("tsk_b", "PENDING", processed=0, total=10)]
    tp.on_update(snaps, "ok")
    tp.on_update(snaps, "reconnecting")  # a connection change is a change
    tp.on_update(snaps, "reconnecting")  # nothing new
    lines = out.getvalue().splitlines()
    assert lines == [
        "ingest: [##------------------] 2/20 10% | 1 PENDING, 1 PROCESSING  elapsed 0:00",
        "ingest: [##------------------] 2/20 10% | 1 PENDING, 1 PROCESSING  elapsed 0:00  (reconnecting…)",
    ]


def test_tty_uses_carriage_return_one_line():
    out = TTYStringIO()
    tp = TextProgress(out, min_interval=0)
    assert tp.tty
    tp.on_update([snap(processed=12, total=20, at=0)], "ok")
    tp.on_update([snap(processed=16, total=20, at=8)], "ok")
    value = out.getvalue()
    assert value.startswith("\r[############--------] 12/20 60% PROCESSING  elapsed 0:00")
    assert "\r[################----] 16/20 80% PROCESSING  elapsed 0:08  eta 0:08" in value
    assert "\n" not in value  # one updating line
    tp.on_finish([snap(status="COMPLETED", processed=20, total=20, at=10)])
    value = out.getvalue()
    assert value.endswith("\r[####################] 20/20 100% COMPLETED  elapsed 0:10" + " " * 10 + "\n")
    assert "\x1b" not in value


def test_tty_is_throttled():
    out = TTYStringIO()
    tp = TextProgress(out)  # default: at most ~10 rewrites a second
    for i in range(500):
        tp.on_update([snap(processed=i, total=500)], "ok")
    tp.on_finish([snap(status="COMPLETED", processed=500, total=500)])
    assert out.getvalue().count("\r") <= 3
    assert out.getvalue().rstrip().endswith("500/500 100% COMPLETED  elapsed 0:00")


def test_tty_override_and_default_stream(capsys):
    tp = TextProgress(tty=False)
    tp.on_update([snap(processed=1, total=2)], "ok")
    tp.on_finish([snap(status="COMPLETED", processed=2, total=2)])
    captured = capsys.readouterr().out
    assert captured.splitlines()[-1] == "[####################] 2/2 100% COMPLETED  elapsed 0:00"


def test_text_equals_widget_text_plain():
    snaps = [snap("tsk_a", "COMPLETED", 10, 10), snap("tsk_b", "FAILED", 2, 10, error="x")]
    tp = TextProgress(io.StringIO())
    tp.on_update(snaps, "ok")
    board = TaskBoard(min_interval=0)
    board.on_update(snaps, "ok")
    assert tp.text() == board._repr_mimebundle_()["text/plain"] == render_summary_text(snaps)


def test_rate_estimator():
    r = RateEstimator(window=10.0)
    assert r.eta(10) is None
    r.add(0.0, 0)
    r.add(2.0, 4)
    assert r.rate() == 2.0 and r.eta(10) == 5.0
    r.add(30.0, 4)  # stalled beyond the window
    assert r.rate() == 0.0 and r.eta(10) is None
    r.add(31.0, 1)  # went backwards (a retry): start again
    assert r.rate() is None
    assert r.eta(0) == 0.0
