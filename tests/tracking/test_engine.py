"""The polling engine against a real local server (over HTTP, or ASGI through a wrapper)."""
from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import warnings

import httpx
import pytest

from mixpeek_magics.client import AsyncMixpeek, Mixpeek
from mixpeek_magics.client.errors import APIConnectionError
from mixpeek_magics.tracking import (
    Journal,
    PartialFailureWarning,
    PollPolicy,
    TaskFailedError,
    WatchTimeout,
    attach_unfinished,
    awatch,
    watch,
)

from .conftest import FAST, Batches, Recorder, set_status, wait_until


def _list_calls(log):
    return [p for m, p in log if m == "POST" and p == "/v1/tasks/list"]


def _gets(log):
    return [p for m, p in log if m == "GET" and p.startswith("/v1/tasks/")]


# --------------------------------------------------------------------------- statuses

def test_terminal_and_unknown_statuses_shown_as_is_and_polled(server, client):
    frob, queued, done = server.seed_tasks(3, statuses=["FROBNICATING", "QUEUED", "COMPLETED"])
    rec = Recorder()
    h = watch(client, [frob, queued, done], block=False, observers=[rec], policy=FAST, journal=None)
    wait_until(lambda: len(h.snapshots) == 3, what="first observation")
    time.sleep(0.5)
    by = {s.task_id: s for s in h.snapshots}
    assert by[frob].status == "FROBNICATING" and not by[frob].terminal
    assert by[queued].status == "QUEUED"
    assert by[done].status == "COMPLETED" and by[done].finished_at is not None
    assert not h.done and h.status == "running"
    n = len(server.request_log)
    time.sleep(0.6)
    assert len(server.request_log) > n, "unknown / non-terminal statuses must keep being polled"
    set_status(server, frob, "COMPLETED_WITH_ERRORS", additional_data={
        "processed": 2, "total": 2, "percentage": 100.0,
        "failed_objects": [{"object_id": "obj_1", "filename": "broken.png", "error": "cannot decode"}]})
    set_status(server, queued, "CANCELED")
    with pytest.warns(PartialFailureWarning, match="broken.png"):
        final = h.wait(timeout=20)
    assert {s.task_id: s.status for s in final} == {frob: "COMPLETED_WITH_ERRORS", queued: "CANCELED",
                                                    done: "COMPLETED"}
    assert by[frob].failed_items == () and h.snapshots[0].failed_items == ("broken.png",)
    assert rec.statuses_of(frob) == ["FROBNICATING", "COMPLETED_WITH_ERRORS"]
    assert len(rec.finished) == 1
    assert h.status == "completed_with_errors" and h.progress == 1.0


def test_failed_task_raises_with_ids_and_error_texts(server, client):
    a, b = server.seed_tasks(2, statuses=["PROCESSING", "PROCESSING"])
    h = watch(client, [a, b], block=False, policy=FAST, journal=None)
    set_status(server, a, "FAILED", error="cannot decode image")
    set_status(server, b, "COMPLETED")
    with pytest.raises(TaskFailedError) as ei:
        h.wait(timeout=20)
    assert ei.value.task_ids == [a]
    assert ei.value.errors == {a: "cannot decode image"}
    assert "cannot decode image" in str(ei.value)
    assert h.status == "failed"
    assert [s.status for s in h.wait(raise_on_failure=False)] == ["FAILED", "COMPLETED"]


def test_progress_fields_and_label_from_additional_data(server, client):
    batches = Batches(server)
    server.update_settings(pace_seconds=0.15)
    tid = batches.submit(4)
    rec = Recorder()
    h = watch(client, tid, block=True, observers=[rec], policy=FAST, journal=Journal(server.data_dir / "j.sqlite3"))
    (s,) = h.snapshots
    assert s.status == "COMPLETED" and s.processed == 4 and s.total == 4 and s.percentage == 100.0
    assert s.label and batches.bucket_id in s.label
    assert s.first_seen <= s.observed_at and s.finished_at is not None
    # progress was seen moving, not only the end
    seen_processed = {u[0].get(tid) for u in rec.updates}
    assert "PROCESSING" in seen_processed or "PENDING" in seen_processed


# --------------------------------------------------------------------------- multiplexing

def test_fifty_tasks_one_list_request_per_tick(server, client):
    ids = server.seed_tasks(50, statuses=["PROCESSING"])
    server.clear_request_log()
    h = watch(client, ids, block=False, policy=FAST, journal=None)
    wait_until(lambda: h.engine.ticks >= 6, what="6 ticks")
    ticks_before = h.engine.ticks  # the tick counted here may already see the completions below
    for tid in ids:
        set_status(server, tid, "COMPLETED")
    h.wait(timeout=20)
    log = server.request_log
    eng = h.engine
    # one request per tick (a tick whose request never reached the server, e.g. a
    # dropped keep-alive connection, is not in the server's log)
    assert eng.failed_ticks <= 1, eng.last_failure
    assert len(log) == eng.ticks - (1 if eng.failed_ticks and isinstance(
        eng.last_failure, APIConnectionError) else 0), (len(log), eng.ticks, eng.last_failure)
    assert len(_list_calls(log)) == len(log)              # and it is the list call
    assert not _gets(log)
    assert h.engine.ticks >= max(ticks_before, 6) and all(s.status == "COMPLETED" for s in h.snapshots)


def test_more_than_batch_size_ids_are_chunked(server, client):
    ids = server.seed_tasks(25, statuses=["COMPLETED"])
    server.clear_request_log()
    policy = PollPolicy(initial=0.05, maximum=0.2, batch_size=10)
    h = watch(client, ids, policy=policy, journal=None)
    assert h.status == "completed" and len(h.snapshots) == 25
    assert len(_list_calls(server.request_log)) == 3 and len(server.request_log) == 3


def test_deleted_task_is_fetched_once_then_reported_gone(server, client):
    (alive,) = server.seed_tasks(1, statuses=["PROCESSING"])
    ghost = "task_0000000000000000"
    server.clear_request_log()
    rec = Recorder()
    h = watch(client, [alive, ghost], block=False, policy=FAST, journal=None, observers=[rec])
    wait_until(lambda: any(s.task_id == ghost for s in h.snapshots), what="ghost reported")
    ghost_snap = next(s for s in h.snapshots if s.task_id == ghost)
    assert ghost_snap.status == "UNKNOWN" and "not found" in (ghost_snap.error or "")
    time.sleep(0.5)
    assert _gets(server.request_log) == [f"/v1/tasks/{ghost}"]  # once, then no longer watched
    assert any("no longer watched" in n for n in h.notes)
    set_status(server, alive, "COMPLETED")
    h.wait(timeout=10)
    assert {s.task_id: s.status for s in h.snapshots} == {alive: "COMPLETED", ghost: "UNKNOWN"}


# --------------------------------------------------------------------------- fallback

class FilterRejecting:
    """A server in front of the local server's app whose tasks/list rejects (or ignores) filters."""

    def __init__(self, app, mode: str):
        self.app, self.mode = app, mode
        self.log: list[tuple[str, str, int]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status_box = {}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        if scope["method"] == "POST" and scope["path"] == "/v1/tasks/list":
            body = b""
            while True:
                msg = await receive()
                body += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            data = json.loads(body or b"{}")
            if data.get("filters") and self.mode == "reject":
                self.log.append(("POST", "/v1/tasks/list", 400))
                payload = json.dumps({"success": False, "status": 400, "error": {
                    "message": "unsupported filter field task_id", "type": "BadRequestError", "details": None}}).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": payload})
                return
            if self.mode == "ignore":
                data.pop("filters", None)
            new_body = json.dumps(data).encode()
            sent = False

            async def receive2():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": new_body, "more_body": False}
                return await receive()

            await self.app(scope, receive2, send_wrapper)
        else:
            await self.app(scope, receive, send_wrapper)
        self.log.append((scope["method"], scope["path"], status_box.get("status", 0)))


@pytest.mark.parametrize("mode", ["reject", "ignore"])
async def test_fallback_to_bounded_gets_when_the_filter_is_unusable(server, mode):
    ids = server.seed_tasks(20, statuses=["PROCESSING"])
    server.seed_tasks(5, statuses=["PROCESSING"])  # newer, unrelated: a list that ignores the filter returns them
    front = FilterRejecting(server.app, mode)
    in_flight = {"now": 0, "max": 0}
    inner = httpx.ASGITransport(app=front)

    class Counting(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            try:
                await asyncio.sleep(0.005)
                return await inner.handle_async_request(request)
            finally:
                in_flight["now"] -= 1

    policy = PollPolicy(initial=0.05, maximum=0.3, concurrency=4)
    async with AsyncMixpeek(api_key=server.api_key, base_url="http://local.test", transport=Counting()) as c:
        h = await awatch(c, ids, policy=policy, journal=None)
        while h.engine.ticks < 3:
            await asyncio.sleep(0.02)
        for tid in ids:
            set_status(server, tid, "COMPLETED")
        final = await h.wait(timeout=20)
    assert [s.status for s in final] == ["COMPLETED"] * 20
    lists = [e for e in front.log if e[1] == "/v1/tasks/list"]
    gets = [e for e in front.log if e[0] == "GET"]
    assert len(lists) == 1, lists                     # tried once, then never again
    assert len(gets) >= 40                            # each task GET at least twice
    assert in_flight["max"] <= 4                      # bounded concurrency
    assert h.engine.mode == "get"
    assert any("polling with GETs" in n for n in h.notes)


# --------------------------------------------------------------------------- resilience

async def test_retry_after_is_honoured(server):
    ids = server.seed_tasks(3, statuses=["PROCESSING"])
    times: list[tuple[float, int]] = []
    inner = httpx.ASGITransport(app=server.app)

    class Timing(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            resp = await inner.handle_async_request(request)
            times.append((time.monotonic(), resp.status_code))
            return resp

    server.update_settings(fault_rate_429=1.0, retry_after_seconds=1.0)
    policy = PollPolicy(initial=0.05, maximum=0.2)
    async with AsyncMixpeek(api_key=server.api_key, base_url="http://local.test", transport=Timing(),
                            max_retry_seconds=60) as c:
        h = await awatch(c, ids, policy=policy, journal=None)
        while not times:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert len(times) == 1 and times[0][1] == 429   # not retried by the client, nor polled early
        server.update_settings(fault_rate_429=0.0)
        for tid in ids:
            set_status(server, tid, "COMPLETED")
        await h.wait(timeout=20)
    assert times[1][0] - times[0][0] >= 0.95, times[:3]   # waited Retry-After, not policy.initial
    assert times[1][1] == 200
    assert any("rate limited" in n for n in h.notes)


def test_server_restart_mid_watch_reconnects_and_reports_resumed_and_failed(tmp_path, client, server):
    from mixpeek_magics.local import LocalServer, LocalSettings

    batches = Batches(server)
    server.update_settings(pace_seconds=0.3)
    resumable = batches.submit(6)                                      # a batch: re-queued on restart
    (orphan,) = server.seed_tasks(1, statuses=["PROCESSING"])         # no job: failed on restart
    rec = Recorder()
    h = watch(client, [resumable, orphan], block=False, observers=[rec], journal=None,
              policy=PollPolicy(initial=0.05, maximum=0.5))
    wait_until(lambda: any(s.task_id == resumable and (s.processed or 0) >= 1 for s in h.snapshots),
               what="batch in progress")
    port, data_dir = server.port, server.data_dir
    server.stop()
    wait_until(lambda: h.connection == "reconnecting", what="reconnecting")
    before = {s.task_id: s.status for s in h.snapshots}
    assert before[orphan] == "PROCESSING"          # last known state kept
    assert not h.done
    time.sleep(1.0)
    srv2 = LocalServer(data_dir=data_dir, port=port, settings=LocalSettings(pace_seconds=0.05)).start()
    try:
        final = h.wait(timeout=30, raise_on_failure=False)
    finally:
        srv2.stop()
    by = {s.task_id: s for s in final}
    assert by[resumable].status == "COMPLETED" and by[resumable].processed == 6
    assert by[orphan].status == "FAILED" and by[orphan].error
    assert "reconnecting" in rec.connections
    assert rec.connections[-1] == "ok"
    assert rec.connections.index("reconnecting") < len(rec.connections) - 1
    assert h.status == "failed"


def test_503_faults_report_reconnecting_and_recover(server, client):
    ids = server.seed_tasks(2, statuses=["PROCESSING"])
    server.update_settings(fault_rate_503=1.0, retry_after_seconds=0)
    rec = Recorder()
    h = watch(client, ids, block=False, observers=[rec], policy=FAST, journal=None)
    wait_until(lambda: h.connection == "reconnecting", what="reconnecting")
    server.update_settings(fault_rate_503=0.0)
    for tid in ids:
        set_status(server, tid, "COMPLETED")
    h.wait(timeout=20)
    assert rec.connections[0] == "reconnecting" and rec.connections[-1] == "ok"


# --------------------------------------------------------------------------- control

def test_cancel_kills_server_side_and_watches_until_canceled(server, client):
    batches = Batches(server)
    server.update_settings(pace_seconds=0.5)
    tid = batches.submit(20)
    (other,) = server.seed_tasks(1, statuses=["PROCESSING"])
    h = watch(client, [tid, other], block=False, policy=FAST, journal=None)
    wait_until(lambda: len(h.snapshots) == 2, what="observed")
    assert h.cancel(tid) == [tid]
    wait_until(lambda: any(s.task_id == tid and s.status == "CANCELED" for s in h.snapshots), what="canceled")
    assert not h.done                                # still watching the other one
    assert ("DELETE", f"/v1/tasks/{tid}") in server.request_log
    assert client.tasks.get(tid).status == "CANCELED"
    assert client.tasks.get(other).status == "PROCESSING"
    h.cancel()                                       # the rest
    final = h.wait(timeout=10)                       # CANCELED does not raise
    assert {s.status for s in final} == {"CANCELED"}
    assert h.status == "canceled"


def test_detach_stops_polling_and_leaves_tasks(server, client):
    ids = server.seed_tasks(2, statuses=["PROCESSING"])
    h = watch(client, ids, block=False, policy=FAST, journal=None)
    wait_until(lambda: len(h.snapshots) == 2, what="observed")
    h.detach()
    assert h.done and h.status == "detached"
    n = len(server.request_log)
    time.sleep(0.4)
    assert len(server.request_log) == n
    assert [client.tasks.get(t).status for t in ids] == ["PROCESSING", "PROCESSING"]


def test_watch_timeout_ends_watch_tasks_untouched(server, client):
    ids = server.seed_tasks(1, statuses=["PROCESSING"])
    with pytest.raises(WatchTimeout) as ei:
        watch(client, ids, policy=FAST, journal=None, timeout=0.5)
    assert ei.value.handle.status == "timeout"
    assert [s.status for s in ei.value.snapshots] == ["PROCESSING"]
    assert client.tasks.get(ids[0]).status == "PROCESSING"
    # a wait() timeout does not end the watch
    h = watch(client, ids, block=False, policy=FAST, journal=None)
    with pytest.raises(WatchTimeout, match="continues"):
        h.wait(timeout=0.3)
    assert not h.done
    set_status(server, ids[0], "COMPLETED")
    assert [s.status for s in h.wait(timeout=10)] == ["COMPLETED"]


def test_keyboard_interrupt_detaches_and_says_how_to_reattach(server, client, capsys):
    ids = server.seed_tasks(2, statuses=["PROCESSING"])
    main = threading.main_thread().ident
    timer = threading.Timer(0.5, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        watch(client, ids, block=True, policy=FAST, journal=None)
    err = capsys.readouterr().err
    assert "detached" in err and "attach_unfinished" in err and ids[0] in err and ".cancel()" in err
    time.sleep(0.3)
    n = len(server.request_log)
    time.sleep(0.4)
    assert len(server.request_log) == n                # polling stopped
    assert [client.tasks.get(t).status for t in ids] == ["PROCESSING"] * 2   # tasks untouched


def test_observer_errors_are_logged_not_fatal(server, client, caplog):
    ids = server.seed_tasks(1, statuses=["PROCESSING"])

    class Broken:
        def on_update(self, snapshots, connection):
            raise RuntimeError("display broke")

        def on_finish(self, snapshots):
            raise RuntimeError("display broke again")

    rec = Recorder()
    h = watch(client, ids, block=False, policy=FAST, journal=None, observers=[Broken(), rec])
    wait_until(lambda: rec.updates, what="update")
    set_status(server, ids[0], "COMPLETED")
    assert [s.status for s in h.wait(timeout=10)] == ["COMPLETED"]
    assert rec.finished and "display broke" in caplog.text
    late = Recorder()
    h.add_observer(late)                                 # late observers get the final state
    assert late.updates and late.finished


async def test_awatch_with_async_client_over_http(server):
    ids = server.seed_tasks(2, statuses=["PROCESSING"])
    rec = Recorder()
    async with AsyncMixpeek(api_key=server.api_key, base_url=server.base_url) as c:
        h = await awatch(c, [await c.tasks.get(ids[0]), ids[1]], observers=[rec], policy=FAST)
        await asyncio.sleep(0.2)
        assert h.status == "running" and 0.0 <= h.progress < 1.0
        await h.cancel(ids[1])
        set_status(server, ids[0], "COMPLETED")
        final = await h.wait(timeout=10)
    assert [s.status for s in final] == ["COMPLETED", "CANCELED"]
    assert rec.finished
    # the default journal (MIXPEEK_JOURNAL_PATH) recorded both
    rows = Journal().tasks(base_url=server.base_url)
    assert {r["task_id"]: r["last_status"] for r in rows} == {ids[0]: "COMPLETED", ids[1]: "CANCELED"}


def test_sync_watch_accepts_asgi_transport_client(server):
    ids = server.seed_tasks(2, statuses=["COMPLETED", "PROCESSING"])
    c = Mixpeek(api_key=server.api_key, base_url="http://local.test",
                transport=httpx.ASGITransport(app=server.app))
    try:
        h = watch(c, ids, block=False, policy=FAST, journal=None)
        wait_until(lambda: len(h.snapshots) == 2, what="observed")
        set_status(server, ids[1], "COMPLETED")
        assert [s.status for s in h.wait(timeout=10)] == ["COMPLETED", "COMPLETED"]
    finally:
        c.close()


def test_bad_input_is_rejected_clearly(client):
    with pytest.raises(ValueError, match="nothing to watch"):
        watch(client, [], journal=None)
    with pytest.raises(TypeError, match="task id"):
        watch(client, [42], journal=None)


async def test_engine_schedule_on_a_manual_clock_then_max_wait(server):
    """Real server, injected clock: unchanged tasks back off 1,2,4,8,16,30,30 s; the
    watch gives up at max_wait (100 s of clock time) with WatchTimeout, tasks untouched."""
    from mixpeek_magics.tracking import ManualClock

    ids = server.seed_tasks(3, statuses=["PROCESSING"])
    clock = ManualClock()
    policy = PollPolicy(initial=1.0, maximum=30.0, jitter=0.0, max_wait=100.0)
    server.clear_request_log()
    async with AsyncMixpeek(api_key=server.api_key, base_url=server.base_url) as c:
        h = await awatch(c, ids, policy=policy, journal=None, clock=clock)
        with pytest.raises(WatchTimeout, match="100s"):
            await h.wait(timeout=20)
    assert clock.sleeps == [1, 2, 4, 8, 16, 30, 30, 9]
    assert len(server.request_log) == 8 == h.engine.ticks   # polls at 0,1,3,7,15,31,61,91
    assert h.status == "timeout"
    assert [s.status for s in h.snapshots] == ["PROCESSING"] * 3
