"""The upload phase of ``%%ingest``: files, bytes and rate, before the task board.

``UploadDisplay(mode)`` is fed :class:`~mixpeek_magics.ingest.runner.UploadStats`
from the upload's background thread (``update``) and closed with ``finish``.
In a widget front end it is a progress bar with a line of text, displayed with a
display id: its ``text/plain`` (what a front end without widgets shows) is
refreshed every ``text_refresh`` seconds, and when the upload ends the output
becomes the final line (the bar's static final state: the line is said once).
Elsewhere it prints a start line, a line every few seconds and the final line.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from typing import Any, TextIO

__all__ = ["UploadDisplay", "human_bytes", "upload_text"]


def human_bytes(n: float) -> str:
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def upload_text(stats: Any, final: bool = False) -> str:
    skipped = f" · {stats.skipped} already ingested (skipped)" if stats.skipped else ""
    if final:
        if not stats.files_total:
            return f"Upload: nothing new to upload{skipped}"
        dup = f" · {stats.duplicates} already on the server" if stats.duplicates else ""
        failed = f" · {stats.failed} failed" if stats.failed else ""
        return (
            f"Uploaded {stats.files_done}/{stats.files_total} files "
            f"({human_bytes(stats.bytes_done)}) in {stats.elapsed:.1f}s · "
            f"{human_bytes(stats.rate_bytes)}/s{dup}{failed}{skipped}"
        )
    others = stats.left_to_others
    waiting = f" · waiting for another run to submit {others} it made" if others else ""
    return (
        f"Uploading {stats.files_done}/{stats.files_total} files · "
        f"{human_bytes(stats.bytes_done)} of {human_bytes(stats.bytes_total)} · "
        f"{human_bytes(stats.rate_bytes)}/s{skipped}{waiting}"
    )


class UploadDisplay:
    """Progress of the upload phase (thread-safe; at most ~10 updates a second)."""

    def __init__(
        self, mode: str = "auto", stream: TextIO | None = None, text_interval: float = 5.0, text_refresh: float = 2.0
    ) -> None:
        from mixpeek_magics.notebook.display import choose_mode

        self.mode = choose_mode(mode)
        self.stream = stream
        self.text_interval = text_interval
        self.text_refresh = text_refresh
        self._lock = threading.Lock()
        self._last = 0.0
        self._last_text = 0.0
        self._display_id: str | None = None
        self.finished = False
        self.text = ""
        self.bar: Any = None
        self.label: Any = None
        self.box: Any = None
        self.text_updates = 0  # text/plain refreshes of the displayed output

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _bundle(self) -> dict:
        bundle = self.box._repr_mimebundle_() or {}
        bundle["text/plain"] = self.text
        return bundle

    def start(self, stats: Any) -> None:
        self.text = upload_text(stats)
        if self.mode == "widget" and stats.files_total:
            import ipywidgets as W
            from IPython.display import display

            self.bar = W.FloatProgress(
                value=0.0, min=0.0, max=max(1.0, float(stats.bytes_total or 1)), layout=W.Layout(width="320px")
            )
            self.label = W.Label(value=self.text)
            self.box = W.HBox([self.bar, self.label])
            self._display_id = uuid.uuid4().hex
            display(self._bundle(), raw=True, display_id=self._display_id)
            self._last_text = time.monotonic()
        elif stats.files_total:
            print(
                f"Uploading {stats.files_total} files ({human_bytes(stats.bytes_total)})…", file=self._out(), flush=True
            )
            self._last_text = time.monotonic()

    def update(self, stats: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if self.finished or now - self._last < 0.1:
                return
            self._last = now
        self.text = upload_text(stats)
        if self.mode == "widget" and self.bar is not None:
            self.bar.max = max(1.0, float(stats.bytes_total or 1))
            self.bar.value = float(stats.bytes_done)
            self.label.value = self.text
            if now - self._last_text >= self.text_refresh:
                self._last_text = now
                self._update_output(self._bundle())
        elif self.mode != "widget" and now - self._last_text >= self.text_interval:
            self._last_text = now
            print(self.text, file=self._out(), flush=True)

    def _update_output(self, bundle: dict, final: bool = False) -> None:
        from IPython.display import update_display

        with self._lock:
            if self._display_id is None or (self.finished and not final):
                return
            update_display(bundle, raw=True, display_id=self._display_id)
            self.text_updates += 1

    def finish(self, stats: Any, interrupted: bool = False) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
        self.text = upload_text(stats, final=True)
        if interrupted:
            self.text = "Interrupted: " + upload_text(stats) + " — re-run the cell to resume"
        if self.mode == "widget" and self.bar is not None:
            self.bar.max = max(1.0, float(stats.bytes_total or 1))
            self.bar.value = float(stats.bytes_done if not interrupted else self.bar.value)
            self.bar.bar_style = "danger" if (interrupted or stats.failed) else "success"
            self.label.value = self.text
            # the bar's output becomes the outcome line: it stays in saved notebooks without widget state
            self._update_output({"text/plain": self.text}, final=True)
            return
        print(self.text, file=self._out(), flush=True)
