"""The sans-IO core (retry rules, pagination, wait) driven step by step.

These drive the real flow generators with hand-made outcomes; no client is
mocked (the drivers are exercised against the local server elsewhere).
"""

from __future__ import annotations

import json

import httpx
import pytest

from mixpeek_magics.client import errors
from mixpeek_magics.client._core import (
    IDEMPOTENT,
    UNSAFE,
    Context,
    Emit,
    Outcome,
    RequestSpec,
    Send,
    Sleep,
    call,
)
from mixpeek_magics.client.models import Task
from mixpeek_magics.client.pagination import page_parser, paginate
from mixpeek_magics.client.resources.tasks import poll_delays, wait_flow

KEY = "sk_test_SECRETSECRET9876"


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def ctx(budget: float = 60.0, clock: FakeClock | None = None, rand=None) -> Context:
    return Context(
        base_url="http://127.0.0.1:1",
        api_key=KEY,
        max_retry_seconds=budget,
        clock=clock or FakeClock(),
        rand=rand or (lambda a, b: b),
    )


def resp(status: int, body=None, headers=None) -> Outcome:
    content = json.dumps(body).encode() if body is not None else b""
    return Outcome(
        status_code=status,
        headers=httpx.Headers(headers or {}),
        content=content,
        method="POST",
        url="http://127.0.0.1:1/v1/x",
    )


def transport_error(exc_type) -> Outcome:
    return Outcome(error=exc_type("boom"), method="POST", url="http://127.0.0.1:1/v1/x")


def spec(retry: str) -> RequestSpec:
    return RequestSpec("POST", "/v1/x", retry=retry, parse=lambda d: d)


def drive(flow, outcomes, clock: FakeClock | None = None):
    """Feed outcomes to Send effects, advance the fake clock on Sleep; return (result, effects)."""
    effects = []
    outcomes = list(outcomes)
    reply = None
    while True:
        try:
            eff = flow.send(reply)
        except StopIteration as stop:
            return stop.value, effects
        effects.append(eff)
        if isinstance(eff, Send):
            reply = outcomes.pop(0)
        elif isinstance(eff, Sleep):
            if clock is not None:
                clock.t += eff.seconds
            reply = None
        else:
            reply = None


def sends(effects) -> int:
    return sum(isinstance(e, Send) for e in effects)


def test_create_is_not_retried_on_503():
    with pytest.raises(errors.ServerError) as info:
        drive(call(spec(UNSAFE), ctx()), [resp(503, {"detail": "down"}, {"Retry-After": "1"}), resp(200, {})])
    assert info.value.status_code == 503


def test_create_is_retried_on_429_honouring_retry_after():
    clock = FakeClock()
    result, effects = drive(
        call(spec(UNSAFE), ctx(clock=clock)), [resp(429, None, {"Retry-After": "7"}), resp(200, {"ok": 1})], clock
    )
    assert result == {"ok": 1}
    sleeps = [e.seconds for e in effects if isinstance(e, Sleep)]
    assert sleeps and sleeps[0] >= 7


@pytest.mark.parametrize("status", [502, 503, 504])
def test_idempotent_is_retried_on_gateway_errors(status):
    result, effects = drive(call(spec(IDEMPOTENT), ctx()), [resp(status), resp(status), resp(200, [1])])
    assert result == [1] and sends(effects) == 3


def test_connect_error_is_retried_even_for_creates():
    result, effects = drive(call(spec(UNSAFE), ctx()), [transport_error(httpx.ConnectError), resp(200, {})])
    assert result == {} and sends(effects) == 2


def test_read_timeout_on_create_is_not_retried():
    with pytest.raises(errors.APITimeoutError):
        drive(call(spec(UNSAFE), ctx()), [transport_error(httpx.ReadTimeout), resp(200, {})])


def test_read_timeout_on_get_is_retried():
    result, effects = drive(call(spec(IDEMPOTENT), ctx()), [transport_error(httpx.ReadTimeout), resp(200, 5)])
    assert result == 5 and sends(effects) == 2


def test_budget_bounds_retries():
    clock = FakeClock()
    with pytest.raises(errors.ServerError):
        drive(call(spec(IDEMPOTENT), ctx(budget=5.0, clock=clock)), [resp(503)] * 100, clock)
    assert clock.t <= 5.0


def test_retry_after_beyond_budget_raises_rate_limit_at_once():
    clock = FakeClock()
    with pytest.raises(errors.RateLimitError) as info:
        drive(call(spec(IDEMPOTENT), ctx(budget=5.0, clock=clock)), [resp(429, None, {"Retry-After": "30"})], clock)
    assert info.value.retry_after == 30 and clock.t == 0


def test_zero_budget_disables_retries():
    with pytest.raises(errors.APIConnectionError):
        drive(call(spec(IDEMPOTENT), ctx(budget=0)), [transport_error(httpx.ConnectError), resp(200, {})])


def test_backoff_is_exponential_with_full_jitter_bounds():
    _, effects = drive(call(spec(IDEMPOTENT), ctx(budget=1000)), [resp(503)] * 8 + [resp(200, {})])
    sleeps = [e.seconds for e in effects if isinstance(e, Sleep)]
    # rand returns the upper bound: 0.5, 1, 2, 4, 8, 10 (cap), 10, 10
    assert sleeps == [0.5, 1, 2, 4, 8, 10, 10, 10]
    _, effects = drive(call(spec(IDEMPOTENT), ctx(budget=1000, rand=lambda a, b: a)), [resp(503)] * 3 + [resp(200, {})])
    assert [e.seconds for e in effects if isinstance(e, Sleep)] == [0, 0, 0]


def _pages(total: int, limit: int, cursor_mode: bool):
    pages = []
    for start in range(0, total, limit):
        ids = list(range(start, min(total, start + limit)))
        more = start + limit < total
        body = {
            "results": [{"task_id": str(i), "task_type": "t", "status": "PENDING"} for i in ids],
            "pagination": {"next_cursor": f"c{start + limit}" if (more and cursor_mode) else None},
        }
        if not cursor_mode:
            body["total_count"] = total
        pages.append(resp(200, body))
    return pages


@pytest.mark.parametrize("mode", ["cursor", "offset"])
def test_paginate_emits_everything_once(mode):
    requests = []

    def make(cursor, offset):
        requests.append((cursor, offset))
        return RequestSpec("POST", "/v1/tasks/list", parse=page_parser(Task.model_validate))

    total, limit = 2500, 300
    flow = paginate(make, ctx(), limit=limit, mode=mode)
    _, effects = drive(flow, _pages(total, limit, mode == "cursor"))
    ids = [e.value.task_id for e in effects if isinstance(e, Emit)]
    assert ids == [str(i) for i in range(total)]
    assert len(requests) == -(-total // limit)
    if mode == "cursor":
        assert requests[1] == ("c300", 300)
    else:
        assert [o for _, o in requests] == list(range(0, total, limit))


def test_wait_polls_with_backoff_until_terminal():
    clock = FakeClock()
    statuses = ["PENDING", "QUEUED", "IN_PROGRESS", "SOMETHING_NEW", "PROCESSING", "COMPLETED"]
    outs = [resp(200, {"task_id": "t", "task_type": "x", "status": s}) for s in statuses]
    get = RequestSpec("GET", "/v1/tasks/t", parse=Task.model_validate)
    seen = []
    task, effects = drive(
        wait_flow(
            get, ctx(clock=clock, rand=lambda a, b: 1.0), timeout=None, poll=1.0, poll_max=30.0, on_update=seen.append
        ),
        outs,
        clock,
    )
    assert task.status == "COMPLETED" and len(seen) == 6
    assert [e.seconds for e in effects if isinstance(e, Sleep)] == [1, 2, 4, 8, 16]
    d = poll_delays(1.0, 30.0)
    assert [next(d) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_wait_jitter_stays_within_twenty_percent():
    clock = FakeClock()
    outs = [resp(200, {"task_id": "t", "task_type": "x", "status": "PENDING"})] * 3 + [
        resp(200, {"task_id": "t", "task_type": "x", "status": "FAILED"})
    ]
    get = RequestSpec("GET", "/v1/tasks/t", parse=Task.model_validate)
    _, effects = drive(
        wait_flow(get, ctx(clock=clock, rand=lambda a, b: a), timeout=None, poll=1.0, poll_max=30.0), outs, clock
    )
    assert [round(e.seconds, 6) for e in effects if isinstance(e, Sleep)] == [0.8, 1.6, 3.2]


def test_wait_timeout_carries_last_task():
    clock = FakeClock()
    outs = [resp(200, {"task_id": "t", "task_type": "x", "status": "IN_PROGRESS"})] * 50
    get = RequestSpec("GET", "/v1/tasks/t", parse=Task.model_validate)
    with pytest.raises(errors.WaitTimeout) as info:
        drive(wait_flow(get, ctx(clock=clock, rand=lambda a, b: 1.0), timeout=10, poll=1.0, poll_max=30.0), outs, clock)
    assert isinstance(info.value, TimeoutError)
    assert info.value.task.status == "IN_PROGRESS"
    assert clock.t == pytest.approx(10)
