"""What ``%load_ext mixpeek_magics`` costs a kernel: the magics and their options, not the
machinery they delegate to (imported when a magic first runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent("""
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    before = set(sys.modules)
    shell.run_line_magic("load_ext", "mixpeek_magics")
    print(json.dumps(sorted(set(sys.modules) - before)))
""")

HEAVY = (
    "asyncio",  # the upload pipeline and the background loop
    "httpx",
    "pandas",
    "ipywidgets",
    "pydantic",
    "sqlite3",
    "mixpeek_magics.ingest.bulk",
    "mixpeek_magics.ingest.plan",
    "mixpeek_magics.client",
    "mixpeek_magics.tracking",
)


def test_load_ext_imports_none_of_the_machinery():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "mixpeek_magics.notebook.magics.options" in loaded  # the probe saw the extension load
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not heavy, heavy
