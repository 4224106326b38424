"""A missing optional dependency gives one error naming the extra and the quoted install command.

Each case runs the real entry point in a fresh interpreter in which the optional
modules are made unimportable: a ``sitecustomize`` on PYTHONPATH puts a meta-path
finder first that refuses them, as if ``pip install mixpeek-magics`` had run
without the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mixpeek_magics._extras import MissingDependencyError, install_command, require

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = textwrap.dedent("""
    import os, sys

    _BLOCKED = set(filter(None, os.environ.get("TEST_BLOCKED_MODULES", "").split(",")))


    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in _BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, _Blocker())
""")

LOCAL = 'pip install "mixpeek-magics[local]"'
NOTEBOOK = 'pip install "mixpeek-magics[notebook]"'
PLOT = 'pip install "mixpeek-magics[plot]"'


def run_without(tmp_path: Path, blocked: list[str], code: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env["TEST_BLOCKED_MODULES"] = ",".join(blocked)
    env["MIXPEEK_MAGICS_DATA_DIR"] = str(tmp_path / "data")
    env["MIXPEEK_MAGICS_CONFIG_DIR"] = str(tmp_path / "config")
    env["MIXPEEK_LOCAL_DATA_DIR"] = str(tmp_path / "local")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_the_blocker_really_blocks(tmp_path):
    proc = run_without(tmp_path, ["fastapi"], "import fastapi")
    assert proc.returncode != 0
    assert "ModuleNotFoundError: No module named 'fastapi'" in proc.stderr


def test_local_server_import_names_the_local_extra(tmp_path):
    proc = run_without(tmp_path, ["fastapi", "uvicorn"], "from mixpeek_magics.local import LocalServer")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "mixpeek_magics._extras.MissingDependencyError: No module named 'fastapi': it is needed "
        "for the embedded local server (%mixpeek_auth --local, LocalServer). "
        f"Install it with: {LOCAL}"
    )
    # one error, not a chain through a ModuleNotFoundError deep in the server
    assert "ModuleNotFoundError" not in proc.stderr
    assert "During handling" not in proc.stderr


@pytest.mark.parametrize("blocked", ["uvicorn", "jsonschema", "boto3"])
def test_each_local_dependency_is_checked(tmp_path, blocked):
    proc = run_without(tmp_path, [blocked], "import mixpeek_magics; mixpeek_magics.LocalServer")
    assert proc.returncode == 1
    assert f"No module named {blocked!r}" in proc.stderr
    assert LOCAL in proc.stderr


def test_mixpeek_local_cli_names_the_local_extra(tmp_path):
    proc = run_without(
        tmp_path, ["fastapi"], "import runpy; runpy.run_module('mixpeek_magics.local', run_name='__main__')"
    )
    assert proc.returncode == 1
    assert LOCAL in proc.stderr


def test_mixpeek_auth_local_in_ipython_tells_the_install_command(tmp_path):
    code = """
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "mixpeek_magics")
        # what a notebook user sees: one short block, no traceback through the library
        result = shell.run_cell("%mixpeek_auth --local")
        print("CELL-FAILED", type(result.error_in_exec).__name__)
        from mixpeek_magics.notebook import session
        print("SIGNED-IN", session.current() is not None)
        # the same magic called directly raises the error (to stderr)
        shell.run_line_magic("mixpeek_auth", "--local")
    """
    proc = run_without(tmp_path, ["fastapi"], code)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith(f"Install it with: {LOCAL}")
    assert "No module named 'fastapi'" in proc.stderr
    out = proc.stdout.splitlines()
    shown = [line for line in out if line.startswith("MissingDependencyError")]
    assert shown == [
        (
            "MissingDependencyError: No module named 'fastapi': it is needed for the embedded local "
            f"server (%mixpeek_auth --local, LocalServer). Install it with: {LOCAL}"
        )
    ]
    assert "Traceback" not in proc.stdout and "ModuleNotFoundError" not in proc.stdout
    assert "CELL-FAILED MissingDependencyError" in out
    assert "SIGNED-IN False" in out


def test_ingest_dry_run_without_pandas_names_the_notebook_extra(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    code = """
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "mixpeek_magics")
        shell.run_cell_magic("ingest", "--bucket files --dry-run", "a.txt\\n")
    """
    proc = run_without(tmp_path, ["pandas"], code)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "MissingDependencyError: No module named 'pandas': it is needed for the notebook magics, widgets "
            f"and DataFrames. Install it with: {NOTEBOOK}"
        )
    )


def test_frames_without_pandas_name_the_notebook_extra(tmp_path):
    code = """
        from mixpeek_magics.frames import build_task_frame

        build_task_frame([])
    """
    proc = run_without(tmp_path, ["pandas"], code)
    assert proc.returncode == 1
    assert "No module named 'pandas'" in proc.stderr and NOTEBOOK in proc.stderr


def test_plots_without_matplotlib_name_the_plot_extra(tmp_path):
    code = """
        from mixpeek_magics.frames import build_task_frame, plot_durations

        plot_durations(build_task_frame([]))
    """
    proc = run_without(tmp_path, ["matplotlib"], code)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(f"No module named 'matplotlib': it is needed for plots. Install it with: {PLOT}")
    )


def test_magics_without_ipython_name_the_notebook_extra(tmp_path):
    code = """
        import mixpeek_magics

        mixpeek_magics.load_ipython_extension(None)
    """
    proc = run_without(tmp_path, ["IPython"], code)
    assert proc.returncode == 1
    assert "No module named 'IPython'" in proc.stderr and NOTEBOOK in proc.stderr


def test_connection_form_without_ipywidgets_names_the_notebook_extra(tmp_path):
    proc = run_without(tmp_path, ["ipywidgets"], "import mixpeek_magics; mixpeek_magics.connect")
    assert proc.returncode == 1
    assert "No module named 'ipywidgets'" in proc.stderr and NOTEBOOK in proc.stderr


def test_client_and_text_watch_need_no_extra(tmp_path):
    # the base install: the client and the text display work without any optional module
    code = """
        import mixpeek_magics
        from mixpeek_magics import Mixpeek, watch
        from mixpeek_magics.notebook.display import make_display

        print(type(make_display()).__name__, Mixpeek.__name__)
    """
    blocked = ["fastapi", "uvicorn", "pandas", "matplotlib", "IPython", "ipywidgets", "traitlets", "ipykernel"]
    proc = run_without(tmp_path, blocked, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["TextProgress", "Mixpeek"]


def test_require_in_process():
    require("local", "json", "os.path")  # present: no error
    with pytest.raises(MissingDependencyError) as info:
        require("plot", "json", "mixpeek_magics_no_such_module")
    err = info.value
    assert isinstance(err, ImportError)
    assert (err.module, err.extra, err.name) == (
        "mixpeek_magics_no_such_module",
        "plot",
        "mixpeek_magics_no_such_module",
    )
    assert err.command == install_command("plot") == PLOT
    assert str(err) == (
        f"No module named 'mixpeek_magics_no_such_module': it is needed for plots. Install it with: {PLOT}"
    )
    assert err._render_traceback_() == [f"MissingDependencyError: {err}"]
