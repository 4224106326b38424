"""The board's failed items: grouped by error, with small thumbnails of the local image files
(made in the kernel, bounded in size and number, once each), in the widget, the static HTML
and, without images, the text."""

from __future__ import annotations

import base64
import io
import re
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from mixpeek_magics.notebook.gallery import FAILED_THUMB_PX, MAX_FAILED_THUMBNAILS
from mixpeek_magics.notebook.progress import TaskBoard
from mixpeek_magics.tracking.snapshot import TaskSnapshot

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
_THUMB = re.compile(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"')


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


def _picture(path: Path, size=(120, 90), colour=(200, 40, 40), fmt="PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)


def _thumbnails(markup: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b64))) for b64 in _THUMB.findall(markup)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _picture(tmp_path / "pics" / "red.png")
    _picture(tmp_path / "pics" / "blue.jpg", size=(400, 300), colour=(20, 40, 220), fmt="JPEG")
    (tmp_path / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    return tmp_path


ITEMS = ("pics/red.png", "pics/broken.png", "notes/a.txt", "pics/blue.jpg", "obj_5f3a")
ERRORS = ("injected failure", "cannot decode image: truncated", "injected failure", "injected failure", "")
PARTIAL = dict(status="COMPLETED_WITH_ERRORS", processed=9, total=9, at=4, failed=5)


def test_failed_items_grouped_by_error_with_thumbnails(folder):
    board = TaskBoard(min_interval=0, base_dir=str(folder))
    board.on_update([snap(processed=3, total=9, failed=5, failed_items=ITEMS, failed_errors=ERRORS)], "ok")
    row = board.rows["tsk_1"]
    value = row.error.value
    assert "Failed items (5)" in value
    # one block per error, the most frequent first, each with its items
    heads = re.findall(r'<div class="mixpeek-failed-error"><b>([^<]*)</b> \((\d+) items?\)</div>', value)
    assert heads == [("injected failure", "3"), ("cannot decode image: truncated", "1"), ("no error given", "1")]
    tiles = re.findall(r'<div class="mixpeek-failed-item" title="([^"]*)"', value)
    assert tiles == ["pics/red.png", "notes/a.txt", "pics/blue.jpg", "pics/broken.png", "obj_5f3a"]
    # the two decodable pictures as small JPEGs; the broken one, the text and the object id as icons
    thumbs = _thumbnails(value)
    assert [t.format for t in thumbs] == ["JPEG", "JPEG"]
    assert [t.size for t in thumbs] == [(FAILED_THUMB_PX, 36), (FAILED_THUMB_PX, 36)]
    assert thumbs[0].getpixel((24, 18))[0] > 150 and thumbs[1].getpixel((24, 18))[2] > 150  # red, then blue
    assert all(len(b64) < 4000 for b64 in _THUMB.findall(value))
    assert value.count("🖼") == 1 and value.count("📄") == 1 and value.count("📦") == 1

    board.on_finish([snap(failed_items=ITEMS, failed_errors=ERRORS, **PARTIAL)])
    # the static final state (a saved notebook, an HTML export) shows the same, with its pictures
    final = board.summary_html()
    assert len(_thumbnails(final)) == 2 and "injected failure</b> (3 items)" in final
    assert "pics/broken.png" in final and "obj_5f3a" in final
    # the text: grouped by error, no images
    text = board.text()
    assert (
        "failed items: injected failure (3): pics/red.png, notes/a.txt, pics/blue.jpg; "
        "cannot decode image: truncated (1): pics/broken.png; no error given (1): obj_5f3a"
    ) in text
    assert "data:" not in text and "<" not in text


def test_thumbnails_are_made_once_and_bounded(tmp_path):
    # three tasks, 14 failed pictures each: a row shows 12 tiles; the board makes 24 thumbnails at most
    snaps = []
    for t in range(3):
        names = []
        for i in range(14):
            name = f"t{t}/p{i}.png"
            _picture(tmp_path / name, size=(64, 64))
            names.append(name)
        snaps.append(
            snap(f"tsk_{t}", processed=5, total=20, failed=14, failed_items=tuple(names), failed_errors=("bad",) * 14)
        )
    board = TaskBoard(min_interval=0, row_interval=0, base_dir=str(tmp_path))
    board.on_update(snaps, "ok")
    made, attempts = board.thumbnails.made, board.thumbnails.attempts
    assert made == MAX_FAILED_THUMBNAILS == 24 and attempts == 24
    shown = [board.rows[s.task_id].error.value for s in snaps]
    assert [len(_thumbnails(v)) for v in shown] == [12, 12, 0]
    assert all("… and 2 more" in v for v in shown)
    html_before = [board.rows[s.task_id]._items_html for s in snaps]
    # the board re-renders as progress moves: nothing is decoded or rebuilt again
    for step in range(6, 12):
        board.on_update([s.__class__(**{**s.__dict__, "processed": step}) for s in snaps], "ok")
    assert (board.thumbnails.made, board.thumbnails.attempts) == (made, attempts)
    assert [board.rows[s.task_id]._items_html for s in snaps] == html_before
    assert all(board.rows[s.task_id]._items_html is h for s, h in zip(snaps, html_before))


def test_one_voice_still_holds_with_pictures(folder):
    # the warning names the items (a blocking watch): the final state only counts them, without pictures
    board = TaskBoard(min_interval=0, base_dir=str(folder), failure_hint="listed below")
    board.on_update([snap(processed=3, total=9, failed=5, failed_items=ITEMS, failed_errors=ERRORS)], "ok")
    assert len(_thumbnails(board.rows["tsk_1"].error.value)) == 2  # while it runs the board shows them
    board.on_finish([snap(failed_items=ITEMS, failed_errors=ERRORS, **PARTIAL)])
    final = board.summary_html()
    assert "<img" not in final and "red.png" not in final and "5 of 9 items failed, listed below" in final


def test_the_servers_errors_reach_the_board(local_server, tmp_path):
    """Over HTTP: a batch with two kinds of failure; the watch's snapshots carry each item's error."""
    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.ingest import bulk_upload
    from mixpeek_magics.tracking import PollPolicy, watch

    client = Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url)
    client.namespaces.create("board")
    client = client.with_options(namespace="board")
    client.buckets.create("pics", {"image": {"type": "image"}})
    for i, name in enumerate(("ok-1.png", "ok-2.png", "skip-1.png", "skip-2.png")):
        _picture(tmp_path / name, colour=(30, 160, 60 * i))  # distinct files: duplicates would be skipped
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    local_server.update_settings(fail_filenames=["skip-*"])
    result = bulk_upload(client, "pics", sorted(tmp_path.glob("*.png")))
    board = TaskBoard(min_interval=0, base_dir=str(tmp_path))
    policy = PollPolicy(initial=0.05, maximum=0.4, factor=2.0, jitter=0.1, max_wait=60, progress_interval=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the partial failure's warning is not this test's subject
        watch(
            result.task_id,
            client=client,
            block=True,
            observers=[board],
            policy=policy,
            journal=None,
            item_names=result.item_names(),
        )
    client.close()
    (final,) = board.snapshots
    assert final.status == "COMPLETED_WITH_ERRORS" and sorted(final.failed_items) == [
        "broken.png",
        "skip-1.png",
        "skip-2.png",
    ]
    by_error = dict(zip(final.failed_items, final.failed_errors))
    assert by_error["skip-1.png"] == by_error["skip-2.png"] != by_error["broken.png"]
    assert by_error["skip-1.png"].startswith("injected failure") and by_error["broken.png"]
    markup = board.summary_html()
    heads = re.findall(r'<div class="mixpeek-failed-error"><b>([^<]*)</b> \((\d+) items?\)</div>', markup)
    assert [(h.split(":")[0], n) for h, n in heads] == [
        ("injected failure", "2"),
        (by_error["broken.png"].split(":")[0], "1"),
    ]
    assert len(_thumbnails(markup)) == 2  # the two pictures that failed by name; the broken one is an icon
    assert f"{by_error['broken.png'].split(':')[0]}" in board.text()
