"""%mixpeek_watch, %mixpeek_tasks, %mixpeek_connections through a real IPython shell."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from mixpeek_magics.notebook import session
from tests.fixtures.files import make_files


def _ingest_no_wait(ip, tmp_path, n=3, bucket="docs"):
    make_files(tmp_path / "data", n)
    ip.run_cell_magic("ingest", f"--bucket {bucket} --create-bucket --no-wait -o res", "data/\n")
    return ip.user_ns["res"]


def test_watch_existing_tasks_and_wait(ip, signed_in, tmp_path, capsys):
    signed_in.update_settings(pace_seconds=0.3)
    res = _ingest_no_wait(ip, tmp_path)
    capsys.readouterr()
    ip.run_line_magic("mixpeek_watch", f"{res.tasks[0]} --wait -o h_watch")
    h = ip.user_ns["h_watch"]
    assert h.task_ids == res.tasks and h.status == "completed"
    assert "COMPLETED" in capsys.readouterr().out


def test_watch_unfinished_reattaches_from_the_journal(ip, signed_in, tmp_path, capsys):
    signed_in.update_settings(pace_seconds=0.5)
    res = _ingest_no_wait(ip, tmp_path)
    import time

    deadline = time.monotonic() + 10
    while not res.handle.snapshots and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not res.handle.done
    res.handle.detach()  # as if the kernel restarted: nobody watches, the journal says unfinished
    capsys.readouterr()
    ip.run_line_magic("mixpeek_watch", "--unfinished --wait -o h_un")
    h = ip.user_ns["h_un"]
    assert res.tasks[0] in h.task_ids and h.status == "completed"
    ip.run_line_magic("mixpeek_watch", "--unfinished")
    assert "No unfinished tasks" in capsys.readouterr().out


def test_watch_failed_task_raises_with_wait(ip, signed_in, tmp_path):
    signed_in.update_settings(fail_filenames=["*"])
    res = _ingest_no_wait(ip, tmp_path, n=2)
    out = ip.run_cell(f"%mixpeek_watch {res.tasks[0]} --wait")
    assert not out.success and "FAILED" in str(out.error_in_exec)


def test_watch_usage(ip, signed_in):
    with pytest.raises(UsageError):
        ip.run_line_magic("mixpeek_watch", "")
    with pytest.raises(UsageError):
        ip.run_line_magic("mixpeek_watch", "task_x --unfinished")


def test_magics_need_sign_in(ip):
    for name, line in [("mixpeek_watch", "task_x"), ("mixpeek_tasks", ""), ("mixpeek_connections", "")]:
        res = ip.run_cell(f"%{name} {line}")
        assert isinstance(res.error_in_exec, session.NotSignedInError)
        assert res.error_in_exec._render_traceback_() == [
            "NotSignedIn: not signed in to Mixpeek: run %mixpeek_auth first "
            "(or %mixpeek_auth --local for the embedded local server)"
        ]


def test_task_history_frame(ip, signed_in, tmp_path):
    res = _ingest_no_wait(ip, tmp_path)
    res.wait()
    frame = ip.run_line_magic("mixpeek_tasks", "")
    assert isinstance(frame, pd.DataFrame) and res.tasks[0] in set(frame["task_id"])
    ip.run_line_magic("mixpeek_tasks", "--status COMPLETED --since 1h -o tasks_df")
    done = ip.user_ns.pop("tasks_df")
    assert res.tasks[0] in set(done["task_id"]) and set(done["status"].astype(str)) == {"COMPLETED"}
    none = ip.run_line_magic("mixpeek_tasks", "--status FAILED")
    assert res.tasks[0] not in set(none["task_id"])
    with pytest.raises(UsageError):
        ip.run_line_magic("mixpeek_tasks", "--since yesterday-ish")


def test_connections_frame_and_panel_actions(ip, signed_in):
    from mixpeek_magics.notebook.magics import connections as M
    from tests.fixtures.moto_s3 import moto_s3_server

    with moto_s3_server() as s3:
        s3.create_bucket("media")
        c = session.signed_in_client()
        conn = c.connections.create("Media S3", "s3", s3.provider_config())
        frame = ip.run_line_magic("mixpeek_connections", "--provider s3")
        assert list(frame["name"]) == ["Media S3"]
        assert "secret" not in frame.to_csv().lower()
        panel = M.ConnectionsPanel(c, frame, refresh=lambda: ip.run_line_magic("mixpeek_connections", ""))
        assert panel.test().success
        panel.toggle()
        assert c.connections.get(conn.connection_id).status == "SUSPENDED"
        assert panel.toggle_button.description == "Resume"
        panel.toggle()
        assert c.connections.get(conn.connection_id).status == "ACTIVE"
        panel.request_delete()
        panel.dismiss_delete()
        assert c.connections.get(conn.connection_id)
        panel.request_delete()
        panel.confirm_delete()
        assert len(ip.run_line_magic("mixpeek_connections", "")) == 0
