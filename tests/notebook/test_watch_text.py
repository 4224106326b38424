"""Outside a kernel (a script, CI logs) ``mixpeek_magics.watch`` drives the text
display: periodic plain lines on a pipe, no carriage returns, a final summary."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_watch_in_a_plain_script_prints_plain_lines(local_server, tmp_path):
    local_server.update_settings(pace_seconds=0.2)
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(6):
        (folder / f"n{i}.txt").write_text("x" * (i + 1))
    script = textwrap.dedent(f"""
        import mixpeek_magics
        from pathlib import Path
        from mixpeek_magics import Mixpeek
        from mixpeek_magics.ingest import bulk_upload
        c = Mixpeek(api_key={local_server.api_key!r}, base_url={local_server.base_url!r})
        c = c.with_options(namespace=c.namespaces.create("script", feature_extractors=[]).namespace_id)
        c.buckets.create("b", bucket_schema={{"properties": {{"f": {{"type": "text"}}}}}})
        r = bulk_upload(c, "b", sorted(Path({str(folder)!r}).glob("*.txt")))
        handle = mixpeek_magics.watch(r.task_id, client=c, title="script ingest")
        print("status:", handle.status)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "\r" not in text and "\x1b" not in text  # no TTY tricks on a pipe
    lines = text.splitlines()
    progress = [ln for ln in lines if "%" in ln]
    assert len(progress) >= 2  # a first line and the final one at least
    assert any("6/6 100%" in ln and "COMPLETED" in ln for ln in progress)
    assert lines[-1] == "status: completed"
