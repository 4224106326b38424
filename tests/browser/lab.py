"""Drive JupyterLab (4.x) in a Playwright page: start a server, open a notebook,
wait until it is really ready, run cells, wait for execution, read outputs.

Waiting for the "Idle" indicator alone is flaky, so readiness means the
notebook's ``context.ready`` and ``sessionContext.ready`` resolved and its
kernel is connected and idle (read through ``window.jupyterapp``, exposed by
``--LabApp.expose_app_in_browser=True``). Selectors are scoped to the visible
notebook panel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("MIXPEEK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: "ValueError: ...", "MixpeekError: ..." at the start of a line: an exception's last line
_EXCEPTION_LINE = re.compile(r"^\s*[A-Za-z_.]*(Error|Exception): ", re.MULTILINE)

#: the notification plugin's settings: no news pop-up, no update check (no network)
QUIET_NOTIFICATIONS = {"fetchNews": "false", "checkForUpdates": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------


@dataclass
class LabServer:
    """A ``jupyter lab`` (or, ``app="notebook"``, a Notebook 7) process on 127.0.0.1
    (started with ``subprocess.Popen``). ``widgets=False`` starts it with the widget
    manager disabled: what a front end without widget support shows."""

    root_dir: Path
    work_dir: Path
    app: str = "lab"
    widgets: bool = True
    port: int = 0
    token: str = "mixpeek-browser-test"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, **query: str) -> str:
        q = "&".join(["token=" + self.token] + [f"{k}={v}" if v else k for k, v in query.items()])
        return f"{self.base_url}/{path.lstrip('/')}?{q}"

    def start(self, timeout: float = 60.0) -> LabServer:
        jupyter = Path(sys.executable).parent / "jupyter"
        if not jupyter.exists():
            raise RuntimeError(f"{jupyter} not found: run the tests with the project's venv (scripts/test.sh)")
        self._ensure_kernelspec()
        w = self.work_dir
        settings_dir = w / "user-settings"
        notif = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notif.parent.mkdir(parents=True, exist_ok=True)
        notif.write_text(json.dumps(QUIET_NOTIFICATIONS))
        for d in ("workspaces", "config", "data", "runtime", "mixpeek-data", "mixpeek-config", "mixpeek-local"):
            (w / d).mkdir(parents=True, exist_ok=True)
        if not self.widgets:
            page_config = w / "config" / "labconfig" / "page_config.json"
            page_config.parent.mkdir(parents=True, exist_ok=True)
            page_config.write_text(json.dumps({"disabledExtensions": {"@jupyter-widgets/jupyterlab-manager": True}}))

        env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPEEK_")}
        env.update(
            JUPYTERLAB_WORKSPACES_DIR=str(w / "workspaces"),
            JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
            JUPYTER_CONFIG_DIR=str(w / "config"),  # no user config
            JUPYTER_DATA_DIR=str(w / "data"),  # no user kernelspecs: the venv's python3 is used
            JUPYTER_RUNTIME_DIR=str(w / "runtime"),
            MIXPEEK_MAGICS_DATA_DIR=str(w / "mixpeek-data"),
            MIXPEEK_MAGICS_CONFIG_DIR=str(w / "mixpeek-config"),
            MIXPEEK_JOURNAL_PATH=str(w / "mixpeek-data" / "journal.sqlite3"),
            MIXPEEK_LOCAL_DATA_DIR=str(w / "mixpeek-local"),
            PYTHONUNBUFFERED="1",
        )
        env.pop("JUPYTER_PATH", None)
        self.env = env
        self.port = self.port or free_port()
        self.log_path = w / "jupyter-lab.log"
        app = "LabApp" if self.app == "lab" else "JupyterNotebookApp"
        cmd = [
            str(jupyter),
            self.app,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--{app}.expose_app_in_browser=True",
            f"--{app}.user_settings_dir={settings_dir}",
            f"--{app}.workspaces_dir={w / 'workspaces'}",
            "--ServerApp.allow_remote_access=False",
        ]
        if self.app == "lab":
            cmd.append("--LabApp.extension_manager=readonly")  # never asks PyPI
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyter lab did not answer /api/status in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def _ensure_kernelspec(self) -> None:
        spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
        if spec.exists() and sys.executable in spec.read_text():
            return
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
            check=True,
            capture_output=True,
        )

    def log_tail(self, n: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Kernels survive page reloads: delete them between tests."""
        try:
            for k in self.api("GET", "api/kernels") or []:
                try:
                    self.api("DELETE", f"api/kernels/{k['id']}")
                except Exception:
                    pass
        except Exception:
            pass

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.shutdown_kernels()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: lab and its kernels
        except ProcessLookupError:
            return
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


# ---------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------

_READY_JS = """
async (path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.context || !w.sessionContext || w.context.path !== path) return false;
  await w.context.ready;
  await w.sessionContext.ready;
  return true;
}
"""

_KERNEL_IDLE_JS = """
(path) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path || !w.sessionContext) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'
         && w.content.widgets.length > 0;
}
"""

# The state of the current notebook's execution: code cells whose execution count
# is still unset, prompts showing [*], error outputs, and the kernel status.
_EXEC_STATE_JS = """
() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const pending = cells.filter(c => c.model.executionCount === null).length;
  const running = Array.from(document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputArea-prompt')).filter(p => p.textContent.includes('*')).length;
  const errors = [];
  cells.forEach((c, i) => {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  });
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return {cells: cells.length, pending, running, errors, kernel: k ? k.status : 'none'};
}
"""


class LabPage:
    """One Playwright page on a ``LabServer``."""

    def __init__(self, page: Any, server: LabServer, name: str) -> None:
        self.page = page
        self.server = server
        self.name = name
        self.path: str | None = None
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error",) else None)
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    # -- artifacts --------------------------------------------------------------------

    def screenshot(self, label: str, show: Any = None) -> Path:
        """Save ``test-artifacts/browser/<test>-<label>.png``, first scrolling ``show``
        (a locator) into view: the notebook scrolls inside Lab, not the page."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        if show is not None:
            try:
                show.scroll_into_view_if_needed(timeout=5_000)
            except Exception:
                pass
        self.page.screenshot(path=str(path))
        return path

    def panel(self) -> Any:
        return self.page.locator(PANEL)

    # -- open / ready -----------------------------------------------------------------

    def open_notebook(self, rel_path: str, timeout: float = 60.0) -> None:
        """Open ``rel_path`` (relative to the Lab root) and wait until its kernel is usable."""
        self.path = rel_path
        if self.server.app == "lab":
            url = self.server.url(f"lab/tree/{rel_path}", reset="")
        else:  # Notebook 7: one notebook per page
            url = self.server.url(f"notebooks/{rel_path}")
        self.page.goto(url, wait_until="domcontentloaded")
        ms = timeout * 1000
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=ms)
        # currentWidget becomes our notebook once Lab restored the layout and opened the file
        self.page.wait_for_function(_READY_JS, arg=rel_path, timeout=ms, polling=200)
        self.page.wait_for_function(_KERNEL_IDLE_JS, arg=rel_path, timeout=ms, polling=200)
        self.panel().locator(".jp-Cell").first.wait_for(state="visible", timeout=ms)
        # a kernel that just started reports idle before the widget manager's comm
        # target is known; one round trip through the kernel settles it
        self.page.evaluate(
            """async () => {
                 const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                 await k.requestKernelInfo();
               }"""
        )

    # -- running ----------------------------------------------------------------------

    def menu_command(self, menu: str, command: str) -> None:
        """Click the menu bar's ``menu`` and then the item running ``command``, as a user does."""
        self.page.locator(".lm-MenuBar-item", has_text=menu).first.click()
        item = self.page.locator(f"li.lm-Menu-item[data-command='{command}']")
        item.wait_for(state="visible", timeout=10_000)
        item.click()
        self.page.locator(".lm-Menu").first.wait_for(state="hidden", timeout=10_000)

    def clear_outputs(self) -> None:
        """Clear all outputs (also unsets the execution counts, so completion can be awaited)."""
        self.menu_command("Edit", "editmenu:clear-all")
        self.page.wait_for_function(
            """() => window.jupyterapp.shell.currentWidget.content.widgets
                    .filter(c => c.model.type === 'code').every(c => c.model.executionCount === null)""",
            timeout=10_000,
        )

    def run_all(self, timeout: float = 120.0) -> dict:
        """Run all cells from the Run menu; wait until every code cell ran and the kernel is idle.

        Fails (AssertionError) on an error output or when cells stay unexecuted."""
        self.clear_outputs()
        self.menu_command("Run", "runmenu:run-all")
        return self.wait_executed(timeout)

    def wait_executed(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        settled_since = None
        while True:
            state = self.page.evaluate(_EXEC_STATE_JS)
            if state["errors"]:
                self.screenshot("error")
                raise AssertionError(f"a cell raised: {state['errors']}")
            done = state["pending"] == 0 and state["running"] == 0 and state["kernel"] == "idle"
            if done:
                # idle must hold for a moment: the kernel blinks idle between queued cells
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since >= 0.5:
                    return state
            else:
                settled_since = None
            if time.monotonic() > deadline:
                self.screenshot("timeout")
                raise AssertionError(f"execution did not finish in {timeout:.0f} s: {state}")
            time.sleep(0.1)

    def cell_index(self, source_prefix: str) -> int:
        """Index (among all cells) of the first cell whose source starts with ``source_prefix``."""
        index = self.page.evaluate(
            """(prefix) => window.jupyterapp.shell.currentWidget.content.widgets
                 .findIndex(c => c.model.sharedModel.getSource().startsWith(prefix))""",
            source_prefix,
        )
        assert index >= 0, f"no cell starts with {source_prefix!r}"
        return index

    def cell(self, index: int) -> Any:
        return self.panel().locator(".jp-Notebook .jp-Cell").nth(index)

    def run_all_following(
        self, index: int, timeout: float = 150.0, every: float = 0.2, on_sample: Any = None
    ) -> list[str]:
        """Run all cells from the Run menu and, while cell ``index`` runs, sample the text its
        outputs show (what the user sees) until it finished; then wait for the rest.
        ``on_sample(text)`` is called with each new text (e.g. to take a screenshot)."""
        self.clear_outputs()
        cell = self.cell(index)
        self.menu_command("Run", "runmenu:run-all")
        samples: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            done = self.page.evaluate(
                "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount !== null", index
            )
            try:
                cell.scroll_into_view_if_needed(timeout=2_000)
                text = cell.locator(".jp-OutputArea").inner_text(timeout=2_000)
            except Exception:
                text = ""
            if not samples or text != samples[-1]:
                samples.append(text)
                if on_sample is not None:
                    on_sample(text)
            if done:
                break
            state = self.page.evaluate(_EXEC_STATE_JS)
            if state["errors"]:
                self.screenshot("error")
                raise AssertionError(f"a cell raised: {state['errors']}")
            if time.monotonic() > deadline:
                self.screenshot("timeout")
                raise AssertionError(f"cell {index} did not finish in {timeout:.0f} s")
            time.sleep(every)
        self.wait_executed(timeout)
        return samples

    def run_cell(self, index: int, timeout: float = 60.0) -> str:
        """Select code cell ``index`` (0-based among all cells) by clicking its prompt, run it
        with Ctrl+Enter and return its output text."""
        cell = self.panel().locator(".jp-Notebook .jp-Cell").nth(index)
        cell.locator(".jp-InputPrompt").click()
        before = self.page.evaluate(
            "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount", index
        )
        self.page.keyboard.press("Escape")  # command mode: Ctrl+Enter runs the selected cell
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function(
            """([i, before]) => {
                 const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                 const n = c.model.executionCount;
                 const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                 return n !== null && n !== before && k.status === 'idle';
               }""",
            arg=[index, before],
            timeout=timeout * 1000,
            polling=100,
        )
        state = self.page.evaluate(_EXEC_STATE_JS)
        if state["errors"]:
            raise AssertionError(f"a cell raised: {state['errors']}")
        return cell.locator(".jp-OutputArea").inner_text()

    # -- reading ----------------------------------------------------------------------

    def error_outputs(self) -> list[str]:
        """Texts of outputs that look like errors: stderr with a traceback, rendered errors."""
        found = []
        for loc in self.panel().locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all():
            text = loc.inner_text()
            if "Traceback" in text or "Error" in text:
                found.append(text)
        for loc in self.panel().locator(".jp-OutputArea-output.jp-RenderedText").all():
            text = loc.inner_text()
            if "Traceback" in text or _EXCEPTION_LINE.search(text):
                found.append(text)
        return found


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
