"""The polling engine against a real local server (over HTTP, or ASGI through a wrapper)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import pytest

from mixpeek_magics.client import AsyncMixpeek, Mixpeek
from mixpeek_magics.client.errors import APIConnectionError, NotFoundError
from mixpeek_magics.tracking import (
    Journal,
    PartialFailureWarning,
    PollPolicy,
    TaskFailedError,
    WatchTimeout,
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
    # INTERRUPTED: a status of the contract the engine has no rule for (values beyond the contract
    # are the models' business: tests/client/test_errors_config_models.py)
    frob, queued, done = server.seed_tasks(3, statuses=["INTERRUPTED", "QUEUED", "COMPLETED"])
    rec = Recorder()
    h = watch([frob, queued, done], client=client, block=False, observers=[rec], policy=FAST, journal=None)
    wait_until(lambda: len(h.snapshots) == 3, what="first observation")
    time.sleep(0.5)
    by = {s.task_id: s for s in h.snapshots}
    assert by[frob].status == "INTERRUPTED" and not by[frob].terminal
    assert by[queued].status == "QUEUED"
    assert by[done].status == "COMPLETED" and by[done].finished_at is not None
    assert not h.done and h.status == "running"
    n = len(server.request_log)
    time.sleep(0.6)
    assert len(server.request_log) > n, "unknown / non-terminal statuses must keep being polled"
    set_status(server, frob, "COMPLETED_WITH_ERRORS")
    set_status(server, queued, "CANCELED")
    with pytest.warns(PartialFailureWarning, match="COMPLETED_WITH_ERRORS"):
        final = h.wait(timeout=20)
    assert {s.task_id: s.status for s in final} == {
        frob: "COMPLETED_WITH_ERRORS",
        queued: "CANCELED",
        done: "COMPLETED",
    }
    # no batch behind these tasks: no progress, no failed items, and no batch request
    assert by[frob].failed_items == () and h.snapshots[0].failed_items == ()
    assert by[frob].indeterminate and by[frob].processed is None
    assert not [p for m, p in server.request_log if "/batches" in p]
    assert rec.statuses_of(frob) == ["INTERRUPTED", "COMPLETED_WITH_ERRORS"]
    assert len(rec.finished) == 1
    assert h.status == "completed_with_errors" and h.progress == 1.0


def test_failed_task_raises_with_ids_and_error_texts(server, client):
    a, b = server.seed_tasks(2, statuses=["PROCESSING", "PROCESSING"])
    h = watch([a, b], client=client, block=False, policy=FAST, journal=None)
    set_status(server, a, "FAILED", error="cannot decode image")
    set_status(server, b, "COMPLETED")
    with pytest.raises(TaskFailedError) as ei:
        h.wait(timeout=20)
    assert ei.value.task_ids == [a]
    assert ei.value.errors == {a: "cannot decode image"}
    assert "cannot decode image" in str(ei.value)
    assert h.status == "failed"
    assert [s.status for s in h.wait(raise_on_failure=False)] == ["FAILED", "COMPLETED"]


class Snaps:
    """Observer keeping every snapshot seen."""

    def __init__(self):
        self.seen = []

    def on_update(self, snapshots, connection):
        self.seen.extend(snapshots)

    def on_finish(self, snapshots):
        self.seen.extend(snapshots)


def _kinds(log):
    out: dict[str, int] = {}
    for m, p in log:
        key = f"{m} " + (
            "/v1/buckets/{b}/batches/{id}"
            if "/batches/btch" in p
            else "/v1/tasks/{id}"
            if p.startswith("/v1/tasks/task")
            else p
        )
        out[key] = out.get(key, 0) + 1
    return out


def test_progress_comes_from_the_running_batch_and_ends_exact(server, client):
    batches = Batches(server)
    server.update_settings(pace_seconds=0.15, progress_refresh_seconds=0.1)
    tid = batches.submit(8)
    snaps = Snaps()
    server.clear_request_log()
    h = watch(
        tid, client=client, block=True, observers=[snaps], policy=FAST, journal=Journal(server.data_dir / "j.sqlite3")
    )
    (s,) = h.snapshots
    assert s.status == "COMPLETED" and s.processed == 8 and s.total == 8 and s.percentage == 100.0
    assert s.batch_id == batches.batches[tid] and s.bucket_id == batches.bucket_id
    assert s.label and batches.bucket_id in s.label
    assert s.first_seen <= s.observed_at and s.finished_at is not None
    # progress was seen moving (BatchModel.progress of the running batch), not only the end
    running = [x.processed for x in snaps.seen if not x.terminal and x.processed is not None]
    assert any(0 < p < 8 for p in running), [(x.status, x.processed, x.total) for x in snaps.seen]
    assert all(x.total == 8 for x in snaps.seen if x.processed is not None)
    assert all(x.indeterminate == (x.fraction is None) for x in snaps.seen if not x.terminal)
    # read through one batches/list per progress round; a clean end needs no GET of the batch
    kinds = _kinds(server.request_log)
    assert kinds.get("POST /v1/batches/list", 0) >= 1, kinds
    assert "GET /v1/buckets/{b}/batches/{id}" not in kinds, kinds
    assert kinds["POST /v1/tasks/list"] == h.engine.ticks


def test_failed_items_come_from_the_batch_named_by_the_caller(server, client):
    batches = Batches(server)
    server.update_settings(fail_filenames=["bad_*"])
    tid = batches.submit(4, names=["ok_0.txt", "bad_1.txt", "ok_2.txt", "bad_3.txt"])
    bad = sorted(oid for oid, name in batches.objects.items() if name.startswith("bad_"))
    server.clear_request_log()
    with pytest.warns(PartialFailureWarning, match="bad_1.txt"):
        h = watch(tid, client=client, policy=FAST, journal=None, item_names=batches.objects)
        (s,) = h.wait(timeout=20)
    assert s.status == "COMPLETED_WITH_ERRORS"
    assert sorted(s.failed_items) == ["bad_1.txt", "bad_3.txt"] and s.failed == 2
    assert s.processed == s.total == 4  # every object was processed; two failed
    # one GET of the batch once its task ended: the failed objects are the batch's
    assert _kinds(server.request_log).get("GET /v1/buckets/{b}/batches/{id}") == 1
    # without names, the API's object ids
    h2 = watch(tid, client=client, policy=FAST, journal=None)
    with pytest.warns(PartialFailureWarning):
        (s2,) = h2.wait(timeout=20)
    assert sorted(s2.failed_items) == bad


def test_all_items_failed_batch_is_failed_with_every_item_listed(server, client):
    batches = Batches(server)
    server.update_settings(fail_filenames=["*.txt"])
    tid = batches.submit(2)
    h = watch(tid, client=client, policy=FAST, journal=None, item_names=batches.objects)
    (s,) = h.wait(timeout=20, raise_on_failure=False)
    assert s.status == "FAILED" and s.error
    assert sorted(s.failed_items) == ["doc_0.txt", "doc_1.txt"] and s.processed == s.total == 2


def test_snapshot_fraction_is_progress_else_tiers_else_indeterminate():
    from mixpeek_magics.tracking import TaskSnapshot

    bare = TaskSnapshot("t", "PROCESSING")
    assert bare.indeterminate and bare.fraction is None and bare.tier_text is None
    one_tier = TaskSnapshot("t", "PROCESSING", current_tier=0, total_tiers=1)
    assert one_tier.indeterminate and one_tier.tier_text is None
    tiers = TaskSnapshot("t", "PROCESSING", current_tier=1, total_tiers=3)
    assert not tiers.indeterminate and tiers.fraction == pytest.approx(1 / 3) and tiers.tier_text == "tier 2/3"
    finer = TaskSnapshot("t", "PROCESSING", processed=2, total=4, current_tier=1, total_tiers=3)
    assert finer.fraction == 0.5  # item counts win over tiers
    assert not TaskSnapshot("t", "COMPLETED").indeterminate and TaskSnapshot("t", "COMPLETED").fraction == 1.0
    assert not TaskSnapshot("t", "FAILED").indeterminate  # ended: no bar to animate


@pytest.mark.parametrize("tiers", [3, 1])
async def test_without_batch_progress_the_bar_shows_tiers_or_nothing(server, tiers):
    """A batch's progress is null until the service first refreshes it: the bar is
    indeterminate, or follows the task's current_tier / total_tiers when there are several."""
    from mixpeek_magics.client.statuses import is_terminal
    from tests.fixtures.newer_server import NewerServer

    batches = Batches(server)
    server.update_settings(pace_seconds=0.1)
    tid = batches.submit(6)

    def not_refreshed_yet(method, path, data):
        if path == "/v1/tasks/list":
            for t in data.get("results") or []:
                if t["additional_data"].get("batch_id") and not is_terminal(t["status"]):
                    t["additional_data"].update(current_tier=1, total_tiers=tiers)
        elif path == "/v1/batches/list":
            for b in data.get("results") or []:
                b["progress"] = None
        return data

    snaps = Snaps()
    front = NewerServer(server.app, transform=not_refreshed_yet)
    async with AsyncMixpeek(
        api_key=server.api_key, base_url="http://local.test", transport=httpx.ASGITransport(app=front)
    ) as c:
        h = await awatch(tid, client=c, observers=[snaps], policy=FAST, journal=None)
        (final,) = await h.wait(timeout=30)
    running = [x for x in snaps.seen if x.status == "PROCESSING"]
    assert running and all(x.processed is None and x.total is None for x in running)
    if tiers > 1:
        assert all(x.tier_text == "tier 2/3" and x.fraction == pytest.approx(1 / 3) for x in running)
        assert not any(x.indeterminate for x in running)
    else:
        assert all(x.indeterminate and x.fraction is None for x in running)
    assert final.status == "COMPLETED" and final.processed == final.total == 6  # the task's object_count


def test_requests_per_tick_stay_bounded_however_many_batches(server, client):
    batches = Batches(server)
    server.update_settings(pace_seconds=0.05, progress_refresh_seconds=0.05, workers=2)
    tids = [batches.submit(3, prefix=f"b{i}") for i in range(8)]
    server.clear_request_log()
    h = watch(tids, client=client, policy=FAST, journal=None)
    final = h.wait(timeout=60)
    assert [s.status for s in final] == ["COMPLETED"] * 8
    assert all(s.processed == s.total == 3 for s in final)
    kinds = _kinds(server.request_log)
    ticks = h.engine.ticks
    # per tick: one tasks/list, at most one batches/list per running status, no per-task or per-batch GET
    assert kinds["POST /v1/tasks/list"] == ticks
    assert kinds.get("POST /v1/batches/list", 0) <= 2 * ticks
    assert set(kinds) <= {"POST /v1/tasks/list", "POST /v1/batches/list"}, kinds
    assert sum(kinds.values()) == h.engine.requests


def test_expired_task_falls_back_to_its_batch(server, client, journal_path):
    """A task record expires (about 24 h on the real service); its batch says how it went."""
    batches = Batches(server)
    server.update_settings(pace_seconds=0.2, progress_refresh_seconds=0.1)
    tid = batches.submit(6)
    h = watch(tid, client=client, block=False, policy=FAST, journal=Journal(journal_path))
    wait_until(lambda: h.snapshots and h.snapshots[0].batch_id, what="the task seen with its batch")
    server.update_settings(task_ttl_seconds=0.0)  # from now on the task answers 404
    with pytest.raises(NotFoundError):
        client.tasks.get(tid)
    (s,) = h.wait(timeout=30)
    assert s.status == "COMPLETED" and s.processed == s.total == 6
    assert any("following its batch" in n for n in h.notes), h.notes
    # a new watch of the expired task: the journal remembers its batch (and namespace)
    again = watch(tid, client=client, policy=FAST, journal=Journal(journal_path))
    (s2,) = again.snapshots
    assert s2.status == "COMPLETED" and s2.processed == s2.total == 6 and again.status == "completed"
    # with nothing remembered, an expired task is gone
    gone = watch(tid, client=client, policy=FAST, journal=None)
    assert gone.snapshots[0].status == "UNKNOWN" and gone.status == "unknown"


# --------------------------------------------------------------------------- multiplexing


def test_fifty_tasks_one_list_request_per_tick(server, client):
    ids = server.seed_tasks(50, statuses=["PROCESSING"])
    server.clear_request_log()
    h = watch(ids, client=client, block=False, policy=FAST, journal=None)
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
    assert len(log) == eng.ticks - (
        1 if eng.failed_ticks and isinstance(eng.last_failure, APIConnectionError) else 0
    ), (len(log), eng.ticks, eng.last_failure)
    assert len(_list_calls(log)) == len(log)  # and it is the list call
    assert not _gets(log)
    assert h.engine.ticks >= max(ticks_before, 6) and all(s.status == "COMPLETED" for s in h.snapshots)


def test_more_than_batch_size_ids_are_chunked(server, client):
    ids = server.seed_tasks(25, statuses=["COMPLETED"])
    server.clear_request_log()
    policy = PollPolicy(initial=0.05, maximum=0.2, batch_size=10)
    h = watch(ids, client=client, policy=policy, journal=None)
    assert h.status == "completed" and len(h.snapshots) == 25
    assert len(_list_calls(server.request_log)) == 3 and len(server.request_log) == 3


def test_deleted_task_is_fetched_once_then_reported_gone(server, client):
    (alive,) = server.seed_tasks(1, statuses=["PROCESSING"])
    ghost = "task_0000000000000000"
    server.clear_request_log()
    rec = Recorder()
    h = watch([alive, ghost], client=client, block=False, policy=FAST, journal=None, observers=[rec])
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
                payload = json.dumps(
                    {
                        "success": False,
                        "status": 400,
                        "error": {
                            "message": "unsupported filter field task_id",
                            "type": "BadRequestError",
                            "details": None,
                        },
                    }
                ).encode()
                await send(
                    {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]}
                )
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
        h = await awatch(ids, client=c, policy=policy, journal=None)
        while h.engine.ticks < 3:
            await asyncio.sleep(0.02)
        for tid in ids:
            set_status(server, tid, "COMPLETED")
        final = await h.wait(timeout=20)
    assert [s.status for s in final] == ["COMPLETED"] * 20
    lists = [e for e in front.log if e[1] == "/v1/tasks/list"]
    gets = [e for e in front.log if e[0] == "GET"]
    assert len(lists) == 1, lists  # tried once, then never again
    assert len(gets) >= 40  # each task GET at least twice
    assert in_flight["max"] <= 4  # bounded concurrency
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
    async with AsyncMixpeek(
        api_key=server.api_key, base_url="http://local.test", transport=Timing(), max_retry_seconds=60
    ) as c:
        h = await awatch(ids, client=c, policy=policy, journal=None)
        while not times:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert len(times) == 1 and times[0][1] == 429  # neither retried nor polled before Retry-After
        server.update_settings(fault_rate_429=0.0)
        for tid in ids:
            set_status(server, tid, "COMPLETED")
        await h.wait(timeout=20)
    assert times[1][0] - times[0][0] >= 0.95, times[:3]  # waited Retry-After, not policy.initial
    assert times[1][1] == 200  # the client's own retry (the engine's budget absorbs short storms) or the next tick


def test_server_restart_mid_watch_reconnects_and_reports_resumed_and_failed(tmp_path, client, server):
    from mixpeek_magics.local import LocalServer, LocalSettings

    batches = Batches(server)
    server.update_settings(pace_seconds=0.3, progress_refresh_seconds=0.1)
    resumable = batches.submit(6)  # a batch: re-queued on restart
    (orphan,) = server.seed_tasks(1, statuses=["PROCESSING"])  # no job: failed on restart
    rec = Recorder()
    h = watch(
        [resumable, orphan],
        client=client,
        block=False,
        observers=[rec],
        journal=None,
        policy=PollPolicy(initial=0.05, maximum=0.5, progress_interval=0.05),
    )
    wait_until(
        lambda: any(s.task_id == resumable and (s.processed or 0) >= 1 for s in h.snapshots), what="batch in progress"
    )
    port, data_dir = server.port, server.data_dir
    server.stop()
    wait_until(lambda: h.connection == "reconnecting", what="reconnecting")
    before = {s.task_id: s.status for s in h.snapshots}
    assert before[orphan] == "PROCESSING"  # last known state kept
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
    h = watch(ids, client=client, block=False, observers=[rec], policy=FAST, journal=None)
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
    h = watch([tid, other], client=client, block=False, policy=FAST, journal=None)
    wait_until(lambda: len(h.snapshots) == 2, what="observed")
    assert h.cancel(tid) == [tid]
    wait_until(lambda: any(s.task_id == tid and s.status == "CANCELED" for s in h.snapshots), what="canceled")
    assert not h.done  # still watching the other one
    assert ("DELETE", f"/v1/tasks/{tid}") in server.request_log
    assert client.tasks.get(tid).status == "CANCELED"
    assert client.tasks.get(other).status == "PROCESSING"
    h.cancel()  # the rest
    final = h.wait(timeout=10)  # CANCELED does not raise
    assert {s.status for s in final} == {"CANCELED"}
    assert h.status == "canceled"


def test_detach_stops_polling_and_leaves_tasks(server, client):
    ids = server.seed_tasks(2, statuses=["PROCESSING"])
    h = watch(ids, client=client, block=False, policy=FAST, journal=None)
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
        watch(ids, client=client, policy=FAST, journal=None, timeout=0.5)
    assert ei.value.handle.status == "timeout"
    assert [s.status for s in ei.value.snapshots] == ["PROCESSING"]
    assert client.tasks.get(ids[0]).status == "PROCESSING"
    # a wait() timeout does not end the watch
    h = watch(ids, client=client, block=False, policy=FAST, journal=None)
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
        watch(ids, client=client, block=True, policy=FAST, journal=None)
    err = capsys.readouterr().err
    assert "detached" in err and "attach_unfinished" in err and ids[0] in err and ".cancel()" in err
    time.sleep(0.3)
    n = len(server.request_log)
    time.sleep(0.4)
    assert len(server.request_log) == n  # polling stopped
    assert [client.tasks.get(t).status for t in ids] == ["PROCESSING"] * 2  # tasks untouched


def test_observer_errors_are_logged_not_fatal(server, client, caplog):
    ids = server.seed_tasks(1, statuses=["PROCESSING"])

    class Broken:
        def on_update(self, snapshots, connection):
            raise RuntimeError("display broke")

        def on_finish(self, snapshots):
            raise RuntimeError("display broke again")

    rec = Recorder()
    h = watch(ids, client=client, block=False, policy=FAST, journal=None, observers=[Broken(), rec])
    wait_until(lambda: rec.updates, what="update")
    set_status(server, ids[0], "COMPLETED")
    assert [s.status for s in h.wait(timeout=10)] == ["COMPLETED"]
    assert rec.finished and "display broke" in caplog.text
    late = Recorder()
    h.add_observer(late)  # late observers get the final state
    assert late.updates and late.finished


async def test_awatch_with_async_client_over_http(server):
    ids = server.seed_tasks(2, statuses=["PROCESSING"])
    rec = Recorder()
    async with AsyncMixpeek(api_key=server.api_key, base_url=server.base_url) as c:
        h = await awatch([await c.tasks.get(ids[0]), ids[1]], client=c, observers=[rec], policy=FAST)
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
    c = Mixpeek(api_key=server.api_key, base_url="http://local.test", transport=httpx.ASGITransport(app=server.app))
    try:
        h = watch(ids, client=c, block=False, policy=FAST, journal=None)
        wait_until(lambda: len(h.snapshots) == 2, what="observed")
        set_status(server, ids[1], "COMPLETED")
        assert [s.status for s in h.wait(timeout=10)] == ["COMPLETED", "COMPLETED"]
    finally:
        c.close()


def test_bad_input_is_rejected_clearly(client):
    with pytest.raises(ValueError, match="nothing to watch"):
        watch([], client=client, journal=None)
    with pytest.raises(TypeError, match="task id"):
        watch([42], client=client, journal=None)
    with pytest.raises(TypeError):
        watch(client, ["t"], journal=None)  # the client is a keyword: tasks come first


def test_watch_without_a_client_uses_the_signed_in_one(server, client, monkeypatch):
    from mixpeek_magics import _defaults

    (tid,) = server.seed_tasks(1, statuses=["COMPLETED"])
    monkeypatch.setattr(_defaults, "_provider", None)
    with pytest.raises(LookupError, match="no signed-in session"):
        watch([tid], policy=FAST, journal=None)
    _defaults.set_client_provider(lambda: client)
    h = watch([tid], policy=FAST, journal=None)
    assert [(s.task_id, s.status) for s in h.snapshots] == [(tid, "COMPLETED")]


async def test_engine_schedule_on_a_manual_clock_then_max_wait(server):
    """Real server, injected clock: unchanged tasks back off 1,2,4,8,16,30,30 s; the
    watch gives up at max_wait (100 s of clock time) with WatchTimeout, tasks untouched."""
    from mixpeek_magics.tracking import ManualClock

    ids = server.seed_tasks(3, statuses=["PROCESSING"])
    clock = ManualClock()
    policy = PollPolicy(initial=1.0, maximum=30.0, jitter=0.0, max_wait=100.0)
    server.clear_request_log()
    async with AsyncMixpeek(api_key=server.api_key, base_url=server.base_url) as c:
        h = await awatch(ids, client=c, policy=policy, journal=None, clock=clock)
        with pytest.raises(WatchTimeout, match="100s"):
            await h.wait(timeout=20)
    assert clock.sleeps == [1, 2, 4, 8, 16, 30, 30, 9]
    assert len(server.request_log) == 8 == h.engine.ticks  # polls at 0,1,3,7,15,31,61,91
    assert h.status == "timeout"
    assert [s.status for s in h.snapshots] == ["PROCESSING"] * 3
