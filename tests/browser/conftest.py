"""Fixtures of the real-browser tests.

* ``lab_server`` (package): ``jupyter lab`` from this venv on 127.0.0.1, a free port,
  a token, root dir = the repository (so ``notebooks/`` opens), fresh workspaces,
  settings, config and data dirs, no news pop-up, no autosave (the repo's
  notebooks are never rewritten), ``MIXPEEK_MAGICS_*`` dirs in a temp dir and no
  ``MIXPEEK_API_KEY``.
* ``browser`` (package): Debian's Chromium (``/usr/bin/chromium``) launched headless by
  Playwright. If it is missing or does not start the tests FAIL (never skip).
* ``lab``: a fresh browser context and page wrapped in ``LabPage``; a screenshot is
  saved under ``test-artifacts/browser/`` when the test fails; kernels are deleted
  afterwards.
* ``scratch_notebook(name, cells)``: writes a notebook under
  ``test-artifacts/browser/notebooks/`` (inside the Lab root, gitignored, removed at
  the end) and returns its Lab path.
* ``notebook7`` / ``lab_without_widgets``: like ``lab``, on a Notebook 7 server, and on
  a JupyterLab whose widget manager is disabled (what a front end without widget
  support shows); ``paced_quickstart(pace)``: a copy of notebooks/quickstart.ipynb
  beside a link to its data, with its ``parameters`` cell set as papermill would.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.lab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, LabPage, LabServer, remove_tree

#: extra user settings: no autosave, so running the repo's notebooks never rewrites them
_USER_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _start_server(tmp_path_factory: pytest.TempPathFactory, name: str, **options) -> LabServer:
    work = tmp_path_factory.mktemp(name)
    for rel, value in _USER_SETTINGS.items():
        path = work / "user-settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    server = LabServer(root_dir=REPO_ROOT, work_dir=work, **options)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(f"could not start {name}: {exc}", pytrace=False)
    return server


@pytest.fixture(scope="package")
def lab_server(tmp_path_factory: pytest.TempPathFactory):
    server = _start_server(tmp_path_factory, "jupyterlab")
    assert "MIXPEEK_API_KEY" not in server.env
    # the settings really apply: a run of notebooks/quickstart.ipynb must never be autosaved
    try:
        docmanager = server.api("GET", "lab/api/settings/@jupyterlab/docmanager-extension:plugin")
        assert docmanager["settings"].get("autosave") is False, docmanager["settings"]
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(scope="package")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does); "
            "the browser tests cannot run without it",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        except Exception as exc:
            pytest.fail(f"Chromium ({CHROMIUM}) did not start: {exc}", pytrace=False)
        yield b
        b.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def notebook7_server(tmp_path_factory: pytest.TempPathFactory):
    server = _start_server(tmp_path_factory, "notebook7", app="notebook")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab_without_widgets_server(tmp_path_factory: pytest.TempPathFactory):
    server = _start_server(tmp_path_factory, "jupyterlab-no-widgets", widgets=False)
    yield server
    server.stop()


def _page(request, browser, server: LabServer):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    name = request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    for old in ARTIFACTS.glob(f"{name}-*.png"):  # no stale screenshots of an earlier run
        old.unlink()
    lp = LabPage(page, server, name)
    yield lp
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        try:
            lp.screenshot("FAILED")
        except Exception:
            pass
        if lp.console:
            print("browser console errors:\n" + "\n".join(lp.console[-30:]))
        print(f"jupyter {server.app} log tail:\n" + server.log_tail(40))
    context.close()
    server.shutdown_kernels()


@pytest.fixture
def lab(request, browser, lab_server):
    yield from _page(request, browser, lab_server)


@pytest.fixture
def notebook7(request, browser, notebook7_server):
    yield from _page(request, browser, notebook7_server)


@pytest.fixture
def lab_without_widgets(request, browser, lab_without_widgets_server):
    yield from _page(request, browser, lab_without_widgets_server)


@pytest.fixture
def paced_quickstart(scratch_dir: Path) -> Callable[[float], str]:
    import nbformat

    def write(pace: float) -> str:
        nb = nbformat.read(REPO_ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, "notebooks/quickstart.ipynb has no parameters cell"
        params[0].source = f"pace_seconds = {pace}"
        for cell in nb.cells:  # a fresh run: nothing of the recorded one
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        data = scratch_dir / "data"
        if not data.exists():
            data.symlink_to(REPO_ROOT / "notebooks" / "data", target_is_directory=True)
        path = scratch_dir / f"quickstart-paced-{str(pace).replace('.', '_')}.ipynb"
        nbformat.write(nb, path)
        return path.relative_to(REPO_ROOT).as_posix()

    return write


@pytest.fixture(scope="package")
def scratch_dir():
    d = ARTIFACTS / "notebooks" / uuid.uuid4().hex[:8]
    d.mkdir(parents=True, exist_ok=True)
    yield d
    remove_tree(d)
    try:
        d.parent.rmdir()  # test-artifacts/browser/notebooks, when no other run uses it
    except OSError:
        pass


@pytest.fixture
def scratch_notebook(scratch_dir: Path) -> Callable[[str, list[str]], str]:
    import nbformat

    def write(name: str, cells: list[str]) -> str:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = scratch_dir / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path.relative_to(REPO_ROOT).as_posix()

    return write
