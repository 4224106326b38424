"""The magics in a real kernel: the password widget, queued cells, and the key never leaking.

* jupyter_client drives a kernel the way JupyterLab does (``allow_stdin=True``) to
  get the password widget, then "types" the key like the front end would (a comm
  update) and presses the button.
* nbclient runs notebooks that sign in through every path (env, inline, --save,
  widget, 401, unreachable), saves them, and the saved JSON, widget state, the
  kernel's captured stdout/stderr and DEBUG logs are searched for the key.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPEEK_") and k != "CI"}
    env.update(
        MIXPEEK_MAGICS_DATA_DIR=str(tmp_path / "data"),
        MIXPEEK_MAGICS_CONFIG_DIR=str(tmp_path / "config"),
        MIXPEEK_JOURNAL_PATH=str(tmp_path / "data" / "journal.sqlite3"),
        MIXPEEK_LOCAL_DATA_DIR=str(tmp_path / "local"),
        PYTHONPATH=str(REPO_ROOT),
    )
    env.update(extra)
    return env


class Kernel:
    """A kernel driven over jupyter_client, collecting every iopub message."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.km = KernelManager(kernel_name="python3")
        self._log = open(log, "wb")
        self.km.start_kernel(env=env, cwd=str(REPO_ROOT), stdout=self._log, stderr=self._log)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.messages: list[dict] = []

    def execute(self, code: str, allow_stdin: bool = True, timeout: float = 60) -> tuple[dict, list[dict]]:
        msg_id = self.kc.execute(code, allow_stdin=allow_stdin)
        return self.collect(msg_id, timeout)

    def collect(self, msg_id: str, timeout: float = 60) -> tuple[dict, list[dict]]:
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            self.messages.append(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            out.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        return reply["content"], out

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        self._log.close()


def text_of(msgs: list[dict]) -> str:
    parts = []
    for m in msgs:
        c = m["content"]
        if m["msg_type"] == "stream":
            parts.append(c["text"])
        elif m["msg_type"] in ("display_data", "execute_result", "update_display_data"):
            parts.append(c["data"].get("text/plain", ""))
        elif m["msg_type"] == "error":
            parts.append("\n".join(c["traceback"]))
    return "".join(parts)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_password_widget_signs_in_clears_and_closes(local_server, tmp_path):
    k = Kernel(
        kernel_env(tmp_path, TYPED_KEY=local_server.api_key, TYPED_WRONG="sk_test_wrong_key_typed_0000000000"),
        tmp_path / "kernel.log",
    )
    key = local_server.api_key
    try:
        reply, msgs = k.execute("%load_ext mixpeek_magics")
        assert reply["status"] == "ok"
        reply, msgs = k.execute(f"%mixpeek_auth --base-url {local_server.base_url}")
        assert reply["status"] == "ok", reply
        views = [
            m
            for m in msgs
            if m["msg_type"] == "display_data" and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        ]
        assert views, [m["msg_type"] for m in msgs]
        # what a front end without widgets shows instead of the field: the other ways to sign in
        fallback = views[0]["content"]["data"]["text/plain"]
        assert "does not show the key field" in fallback and "MIXPEEK_API_KEY" in fallback
        assert "getpass" in fallback and "sign_in(" in fallback
        # the front end types the key (a comm update of the Password model), then clicks
        reply, msgs = k.execute(
            textwrap.dedent("""
            import os
            from mixpeek_magics.notebook import session
            p = session.pending_prompt
            p.password.set_state({"value": os.environ["TYPED_KEY"]})
            p.button.click()
            print("done", p.done, repr(p.password.value), p.password.comm is None, p.button.comm is None)
            print(session.current().status_line())
            print(p.box.children == (p.status,))
        """)
        )
        assert reply["status"] == "ok", reply
        out = text_of(msgs)
        assert "done True '' True True" in out
        assert "Signed in to Mixpeek: organization default" in out and "True" in out.splitlines()[-1]
        # a wrong key typed into a new prompt: error in the widget, key cleared, still open
        reply, msgs = k.execute(f"%mixpeek_auth --base-url {local_server.base_url}")
        reply, msgs = k.execute(
            textwrap.dedent("""
            p2 = session.pending_prompt
            p2.password.set_state({"value": os.environ["TYPED_WRONG"]})
            p2.button.click()
            print(p2.done, repr(p2.password.value), p2.password.comm is not None, "rejected" in p2.status.value)
            print(session.current() is not None)
        """)
        )
        assert "False '' True True\nTrue" in text_of(msgs)
        # nothing the kernel published (outputs, errors, widget comm traffic) holds a key in clear
        # except the front end's own typing messages, which never go through iopub
        everything = json.dumps([m["content"] for m in k.messages])
        assert key not in everything
        assert "sk_test_wrong_key_typed_0000000000" not in everything
    finally:
        k.stop()
    assert key not in (tmp_path / "kernel.log").read_text(errors="replace")


def test_headless_kernel_fails_at_once_naming_the_env_var(tmp_path):
    k = Kernel(kernel_env(tmp_path), tmp_path / "kernel.log")
    try:
        k.execute("%load_ext mixpeek_magics")
        t0 = time.monotonic()
        reply, msgs = k.execute("%mixpeek_auth", allow_stdin=False)  # what nbconvert / papermill send
        assert time.monotonic() - t0 < 10
        assert reply["status"] == "error"
        err = [m for m in msgs if m["msg_type"] == "error"][0]["content"]
        assert err["traceback"] == [err["traceback"][0]] and "MIXPEEK_API_KEY" in err["traceback"][0]
    finally:
        k.stop()


def test_several_queued_cells_all_run(tmp_path):
    """Run All: cells sent at once (no nest_asyncio trap): local sign-in, ingest, watch."""
    data = tmp_path / "files"
    data.mkdir()
    for i in range(3):
        (data / f"q{i}.txt").write_text(f"queued {i}\n")
    k = Kernel(kernel_env(tmp_path, MIXPEEK_MAGICS_WIDGETS="0"), tmp_path / "kernel.log")
    try:
        cells = [
            "%load_ext mixpeek_magics",
            "%mixpeek_auth --local --namespace queued --create-namespace",
            f"%%ingest --bucket queued --create-bucket -o res\n{data}/\n",
            "%mixpeek_watch {res.tasks[0]} --wait",
            "print(res.status, len(res.objects))",
        ]
        ids = [k.kc.execute(c) for c in cells]
        outputs = []
        for msg_id in ids:
            reply, msgs = k.collect(msg_id, timeout=120)
            assert reply["status"] == "ok", (reply, text_of(msgs))
            outputs.append(text_of(msgs))
        assert "completed 3" in outputs[-1]
    finally:
        k.stop()


# ------------------------------------------------------------------ key leaks in saved notebooks


def run_notebook(cells: list[str], env: dict[str, str], tmp_path: Path, name: str) -> tuple[str, str]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    log = tmp_path / f"{name}.kernel.log"
    km = KernelManager(kernel_name="python3")
    with open(log, "wb") as fh:
        km.start_kernel(env=env, cwd=str(REPO_ROOT), stdout=fh, stderr=fh)
        try:
            client = NotebookClient(nb, km=km, timeout=60, allow_errors=True, store_widget_state=True)
            client.execute()  # km already started: nbclient connects to it
        finally:
            km.shutdown_kernel(now=True)
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path.read_text(), log.read_text(errors="replace")


PREAMBLE = [
    "import logging, sys\nlogging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
    "logging.getLogger('httpx').setLevel(logging.DEBUG)",
    "%load_ext mixpeek_magics",
]
PROBE = [
    "%mixpeek_auth --status",
    "from mixpeek_magics.notebook import session\nc = session.signed_in_client()\nc",
    "print(repr(c.config), c.config)",
    "session.current()",
    "import traceback\ntry:\n    c.with_options(base_url='http://127.0.0.1:1', timeout=1, max_retry_seconds=0)"
    ".organization.get()\nexcept Exception:\n    traceback.print_exc()\n"
    "1/0",
]


def _assert_no_key(key: str, saved: str, log: str, allowed_sources: int = 0) -> None:
    nb = json.loads(saved)
    source_hits = sum(1 for cell in nb["cells"] if key in "".join(cell["source"]))
    assert source_hits == allowed_sources
    for cell in nb["cells"]:
        assert key not in json.dumps(cell.get("outputs", [])), cell["source"]
    assert key not in json.dumps(nb["metadata"])  # widget state
    assert saved.count(key) == source_hits
    assert key not in log


@pytest.mark.parametrize("path", ["env", "inline", "save", "rejected", "unreachable"])
def test_key_never_leaks_into_saved_notebooks(local_server, tmp_path, path):
    key = local_server.api_key
    url = local_server.base_url
    env = kernel_env(tmp_path)
    allowed = 0
    if path == "env":
        env["MIXPEEK_API_KEY"] = key
        cells = [*PREAMBLE, f"%mixpeek_auth --base-url {url}", *PROBE]
    elif path == "inline":
        cells = [*PREAMBLE, f"%mixpeek_auth {key} --base-url {url}", *PROBE, "%history -n"]
        allowed = 1
    elif path == "save":
        env["MIXPEEK_API_KEY"] = key
        # sign in from the env and save; drop the env var and sign in again from the saved key
        cells = [
            *PREAMBLE,
            f"%mixpeek_auth --base-url {url} --save",
            "import os\ndel os.environ['MIXPEEK_API_KEY']",
            "from mixpeek_magics.notebook import session as _s\n_s.sign_out()\n%mixpeek_auth",
            "print(open(_s.saved_credentials_path()).read().count('sk_'))",
            *PROBE,
        ]
    elif path == "rejected":
        key = "sk_test_" + "r" * 40
        env["MIXPEEK_API_KEY"] = key
        cells = [*PREAMBLE, f"%mixpeek_auth --base-url {url}"]
    else:
        env["MIXPEEK_API_KEY"] = key
        cells = [*PREAMBLE, f"%mixpeek_auth --base-url http://127.0.0.1:{closed_port()}"]
    saved, log = run_notebook(cells, env, tmp_path, path)
    nb = json.loads(saved)
    auth_cell = nb["cells"][2]
    if path in ("rejected", "unreachable"):
        errors = [o for o in auth_cell["outputs"] if o["output_type"] == "error"]
        assert errors and len(errors[0]["traceback"]) == 1
        assert ("rejected" if path == "rejected" else "cannot reach") in errors[0]["traceback"][0]
    else:
        text = json.dumps(auth_cell["outputs"])
        assert "Signed in to Mixpeek" in text
        assert f"sk_...{key[-4:]}" in json.dumps(nb["cells"][-5]["outputs"])  # --status shows the mask
    _assert_no_key(key, saved, log, allowed_sources=allowed)
