"""Backoff schedule, jitter bounds and resets, on a manual clock (no sleeping)."""

from __future__ import annotations

import random

import pytest

from mixpeek_magics.tracking.policy import Backoff, ManualClock, PollPolicy, Scheduler


def test_documented_schedule_1s_to_30s():
    p = PollPolicy(jitter=0.0)
    assert p.schedule(8) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert p.max_wait == 24 * 3600


def test_backoff_grows_caps_and_resets():
    bo = Backoff(PollPolicy(jitter=0.0))
    assert [bo.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    bo.reset()
    assert [bo.next() for _ in range(3)] == [1, 2, 4]


def test_jitter_stays_within_bounds_and_below_maximum():
    p = PollPolicy(jitter=0.1)
    bo = Backoff(p, random.Random(7))
    delays = [bo.next() for _ in range(200)]
    bases = p.schedule(200)
    for d, b in zip(delays, bases):
        assert b * 0.9 - 1e-9 <= d <= min(30.0, b * 1.1) + 1e-9
    assert max(delays) <= 30.0
    # jitter really varies the delays
    assert len({round(d, 6) for d in delays[10:]}) > 10


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(initial=0),
        dict(initial=2, maximum=1),
        dict(factor=0.5),
        dict(jitter=1.5),
        dict(max_wait=0),
        dict(concurrency=0),
        dict(batch_size=1001),
    ],
)
def test_bad_policies_are_rejected(kwargs):
    with pytest.raises(ValueError):
        PollPolicy(**kwargs)


def _run_ticks(sched: Scheduler, clock: ManualClock, changed_at: set[int], n: int) -> list[float]:
    """Drive ``n`` ticks; on tick numbers in ``changed_at`` task "a" reports a change."""
    times = []
    for i in range(n):
        at = sched.next_tick_at()
        clock.advance(at - clock.now())
        times.append(clock.now())
        ids = sched.due_ids(clock.now())
        sched.observed({t: (i in changed_at and t == "a") for t in ids}, clock.now())
    return times


def test_tick_times_follow_backoff_and_reset_on_progress():
    clock = ManualClock(100.0)
    sched = Scheduler(PollPolicy(jitter=0.0), shared=True)
    sched.add("a", clock.now())
    # first observation is a change (we knew nothing), then unchanged polls back off;
    # progress at tick 5 resets the interval to 1 s.
    times = _run_ticks(sched, clock, changed_at={0, 5}, n=9)
    gaps = [round(b - a, 6) for a, b in zip(times, times[1:])]
    assert times[0] == 100.0
    assert gaps == [1, 2, 4, 8, 16, 1, 2, 4]


def test_shared_ticks_are_bounded_by_initial_whatever_the_number_of_tasks():
    clock = ManualClock()
    sched = Scheduler(PollPolicy(jitter=0.1), shared=True, rng=random.Random(1))
    for i in range(500):
        sched.add(f"t{i}", clock.now())
    times = []
    for i in range(40):
        at = sched.next_tick_at()
        clock.advance(at - clock.now())
        times.append(clock.now())
        ids = sched.due_ids(clock.now())
        assert len(ids) == 500  # one request observes every task
        # every tick, some task makes progress: the interval stays at initial, never below
        sched.observed({t: t == f"t{i}" for t in ids}, clock.now())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 1.0 - 1e-9
    assert max(gaps) <= 1.0 + 1e-9


def test_shared_change_of_one_task_resets_the_watch():
    sched = Scheduler(PollPolicy(jitter=0.0), shared=True)
    sched.add("a", 0.0)
    sched.add("b", 0.0)
    sched.observed({"a": True, "b": True}, 0.0)
    for t in (1.0, 3.0, 7.0):
        assert sched.next_tick_at() == t
        sched.observed({"a": False, "b": False}, t)
    assert sched.next_tick_at() == 15.0
    sched.observed({"a": False, "b": True}, 15.0)  # b moved
    assert sched.next_tick_at() == 16.0
    assert sched.backoff("a").attempt == 1 and sched.backoff("b").attempt == 1


def test_per_task_mode_polls_only_due_tasks_on_their_own_schedule():
    clock = ManualClock()
    sched = Scheduler(PollPolicy(jitter=0.0), shared=False)
    sched.add("a", 0.0)
    sched.observed({"a": True}, 0.0)  # a: next at 1
    clock.advance(0.5)
    sched.add("b", 0.5)  # b: due now, but ticks are >= 1 s apart
    assert sched.next_tick_at() == 1.0
    assert sched.due_ids(1.0) == ["b", "a"]  # both due by the tick (window = initial)
    sched.observed({"a": False, "b": True}, 1.0)  # a -> 2 s, b reset -> 1 s
    assert sched.due_at("a") == 3.0 and sched.due_at("b") == 2.0
    assert sched.next_tick_at() == 2.0
    assert sched.due_ids(2.0) == ["b", "a"]  # a is due within the next second: same tick
    sched.observed({"b": False, "a": False}, 2.0)
    assert sched.due_at("a") == 6.0 and sched.due_at("b") == 4.0
    assert sched.due_ids(4.0) == ["b"]


def test_defer_and_poke():
    sched = Scheduler(PollPolicy(jitter=0.0), shared=True)
    sched.add("a", 0.0)
    sched.observed({"a": True}, 0.0)
    sched.observed({"a": False}, 1.0)
    sched.observed({"a": False}, 3.0)  # next: 3 + 4
    sched.defer(20.0)  # Retry-After / reconnect backoff
    assert sched.next_tick_at() == 20.0
    sched.poke(["a"], 21.0)  # after a cancel: due at once, short interval
    assert sched.next_tick_at() == 21.0
    assert sched.backoff("a").attempt == 0
    sched.remove("a")
    assert sched.next_tick_at() is None


async def test_manual_clock_sleep_advances_time():
    clock = ManualClock(5.0)
    await clock.sleep(2.5)
    assert clock.now() == 7.5 and clock.sleeps == [2.5]
