from __future__ import annotations

import asyncio
import itertools
import math

import pytest
from _clock import run_virtual
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.clients._ratelimit import Quota, RateLimitHeaders
from plait.errors import ConfigError
from plait.resources import RateLimiter


async def _start_concurrently(limiter: RateLimiter, count: int, tokens: int = 0):
    """Queue ``count`` acquires at once; return (start time, reported wait) in arrival order."""
    loop = asyncio.get_running_loop()
    results: list[tuple[float, float]] = [(math.nan, math.nan)] * count

    async def one(index: int) -> None:
        wait = await limiter.acquire(tokens)
        results[index] = (loop.time(), wait)

    async with asyncio.TaskGroup() as group:
        for index in range(count):
            group.create_task(one(index))
    return results


async def _acquire_at(limiter: RateLimiter, tokens: int = 0) -> tuple[float, float]:
    wait = await limiter.acquire(tokens)
    return asyncio.get_running_loop().time(), wait


def test_rpm_60_starts_one_second_apart_and_reports_waits():
    results = run_virtual(_start_concurrently(RateLimiter(rpm=60), 5))
    assert results == [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]


def test_rpm_1_starts_a_minute_apart():
    results = run_virtual(_start_concurrently(RateLimiter(rpm=1), 3))
    assert [start for start, _ in results] == [0.0, 60.0, 120.0]


def test_fractional_rpm():
    results = run_virtual(_start_concurrently(RateLimiter(rpm=0.5), 3))
    assert [start for start, _ in results] == [0.0, 120.0, 240.0]


def test_no_limits_never_waits():
    results = run_virtual(_start_concurrently(RateLimiter(), 50, tokens=10**6))
    assert {wait for _, wait in results} == {0.0}


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(min_value=0.5, max_value=12_000))
def test_any_rpm_is_smooth_and_keeps_its_long_run_rate(rpm):
    per_second = rpm / 60
    count = max(4, min(400, math.ceil(3 * per_second) + 2))
    starts = [start for start, _ in run_virtual(_start_concurrently(RateLimiter(rpm=rpm), count))]
    assert starts == sorted(starts)
    bound = math.ceil(per_second) + 1
    for index, first in enumerate(starts):
        in_window = sum(1 for start in starts[index:] if start <= first + 1.0)
        assert in_window <= bound
    assert starts[-1] - starts[0] == pytest.approx((count - 1) * 60 / rpm, rel=1e-9)


def test_waiters_are_served_in_arrival_order():
    async def scenario():
        limiter = RateLimiter(rpm=600)
        order: list[int] = []

        async def one(index: int) -> None:
            await limiter.acquire()
            order.append(index)

        async with asyncio.TaskGroup() as group:
            for index in range(20):
                group.create_task(one(index))
        return order

    assert run_virtual(scenario()) == list(range(20))


def test_tpm_charges_estimates_and_settles_with_adjust():
    async def scenario():
        limiter = RateLimiter(tpm=600)  # 10 tokens/s, bucket of 10
        starts = [await _acquire_at(limiter, 10), await _acquire_at(limiter, 4)]
        starts.append(await _acquire_at(limiter, 10))
        limiter.adjust(10, 2)  # the last request used 2 tokens, not 10
        starts.append(await _acquire_at(limiter, 5))
        starts.append(await _acquire_at(limiter, 10))
        return starts

    starts = run_virtual(scenario())
    assert [start for start, _ in starts] == pytest.approx([0.0, 0.4, 1.4, 1.4, 2.1])
    assert [wait for _, wait in starts] == pytest.approx([0.0, 0.4, 1.0, 0.0, 0.7])


def test_adjust_upwards_delays_the_next_request():
    async def scenario():
        limiter = RateLimiter(tpm=600)
        await limiter.acquire(5)
        limiter.adjust(5, 25)
        return await _acquire_at(limiter, 10)

    assert run_virtual(scenario()) == pytest.approx((2.5, 2.5))


def test_request_larger_than_the_token_bucket_starts_when_full_and_leaves_debt():
    async def scenario():
        limiter = RateLimiter(tpm=600)  # bucket holds 10 tokens
        return [
            await _acquire_at(limiter, 50),
            await _acquire_at(limiter, 50),
            await _acquire_at(limiter, 1),
        ]

    starts = run_virtual(scenario())
    assert [start for start, _ in starts] == pytest.approx([0.0, 5.0, 9.1])


def test_big_request_at_the_head_holds_back_later_small_ones():
    async def scenario():
        limiter = RateLimiter(tpm=600)
        await limiter.acquire(10)
        loop = asyncio.get_running_loop()
        log: list[tuple[str, float]] = []

        async def one(name: str, tokens: int) -> None:
            await limiter.acquire(tokens)
            log.append((name, loop.time()))

        async with asyncio.TaskGroup() as group:
            group.create_task(one("big", 10))
            group.create_task(one("small", 1))
        return log

    log = run_virtual(scenario())
    assert [name for name, _ in log] == ["big", "small"]
    assert [time for _, time in log] == pytest.approx([1.0, 1.1])


def test_cancelled_waiter_leaves_the_queue():
    async def scenario():
        limiter = RateLimiter(rpm=60)
        await limiter.acquire()
        tasks = [asyncio.create_task(_acquire_at(limiter)) for _ in range(3)]
        await asyncio.sleep(0.5)
        assert limiter.waiting == 3
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return done, limiter.waiting

    (first, middle, last), waiting = run_virtual(scenario())
    assert first == (1.0, 1.0)
    assert isinstance(middle, asyncio.CancelledError)
    assert last == (2.0, 2.0)
    assert waiting == 0


def test_cancelling_the_head_waiter_does_not_stall_the_next():
    async def scenario():
        limiter = RateLimiter(tpm=600)
        await limiter.acquire(10)
        head = asyncio.create_task(_acquire_at(limiter, 10))  # ready at 1.0
        small = asyncio.create_task(_acquire_at(limiter, 1))  # alone it would be ready at 0.1
        await asyncio.sleep(0.5)
        head.cancel()
        return await asyncio.gather(head, small, return_exceptions=True)

    head, small = run_virtual(scenario())
    assert isinstance(head, asyncio.CancelledError)
    assert small == (0.5, 0.5)


def test_waiter_cancelled_right_after_its_start_returns_its_tokens():
    async def scenario():
        limiter = RateLimiter(tpm=600)
        await limiter.acquire(10)
        waiter = asyncio.create_task(limiter.acquire(10))
        await asyncio.sleep(0)
        limiter.adjust(10, 0)  # frees the bucket: the waiter is started synchronously...
        waiter.cancel()  # ...and cancelled before it could run
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return await _acquire_at(limiter, 10)

    assert run_virtual(scenario()) == (0.0, 0.0)


def test_evidence_of_over_rate_pauses_starts_and_halves_the_rate_then_recovers():
    async def scenario():
        limiter = RateLimiter(rpm=60, evidence=1)  # every 429 counts as evidence
        await limiter.acquire()
        pause = limiter.on_rate_limited(retry_after=5.0)
        state = (pause, limiter.effective_rpm, limiter.paused_until, limiter.pause_remaining())
        starts = [await _acquire_at(limiter), await _acquire_at(limiter)]
        for _ in range(5):
            limiter.on_success()
        starts.append(await _acquire_at(limiter))
        return state, starts, limiter.effective_rpm, limiter.pause_remaining()

    state, starts, recovered, remaining = run_virtual(scenario())
    assert state == (5.0, 30.0, 5.0, 5.0)
    assert starts == [(5.0, 5.0), (7.0, 2.0), (8.0, 1.0)]
    assert recovered == 60.0
    assert remaining == 0.0


def test_an_over_rate_pause_holds_back_queued_waiters():
    async def scenario():
        limiter = RateLimiter(rpm=60, evidence=1)
        await limiter.acquire()
        waiter = asyncio.create_task(_acquire_at(limiter))
        await asyncio.sleep(0.5)
        limiter.on_rate_limited(retry_after=3.0)
        return await waiter

    assert run_virtual(scenario()) == (3.5, 3.5)


def test_an_over_rate_429_without_retry_after_uses_the_default_backoff():
    async def scenario():
        limiter = RateLimiter(backoff=2.5, evidence=1)
        pause = limiter.on_rate_limited()
        return pause, limiter.effective_rpm, await _acquire_at(limiter)

    assert run_virtual(scenario()) == (2.5, None, (2.5, 2.5))


def test_several_429s_in_one_pause_lower_the_rate_once_and_never_below_the_floor():
    async def scenario():
        limiter = RateLimiter(rpm=80, min_fraction=0.25, evidence=1)
        rates = []
        for _ in range(3):
            limiter.on_rate_limited(retry_after=1.0)
            rates.append(limiter.effective_rpm)
        for _ in range(3):
            await asyncio.sleep(2.0)
            limiter.on_rate_limited(retry_after=1.0)
            rates.append(limiter.effective_rpm)
        return rates

    assert run_virtual(scenario()) == [40.0, 40.0, 40.0, 20.0, 20.0, 20.0]


def test_repr_shows_live_state():
    async def scenario():
        limiter = RateLimiter(rpm=60, tpm=1000, evidence=1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        limiter.on_rate_limited(retry_after=4.0)
        text = repr(limiter)
        await waiter
        return text

    assert run_virtual(scenario()) == (
        "<RateLimiter rpm=60.0 (effective 30) tpm=1000.0 waiting=1 paused_until=4.000>"
    )
    assert repr(RateLimiter()) == "<RateLimiter rpm=None tpm=None waiting=0>"


def test_a_new_event_loop_starts_the_clocks_afresh():
    limiter = RateLimiter(rpm=1)
    run_virtual(_start_concurrently(limiter, 2))
    assert run_virtual(_acquire_at(limiter)) == (0.0, 0.0)


def test_invalid_arguments_raise_config_error():
    with pytest.raises(ConfigError, match=r"rpm=0: must be a positive number or None"):
        RateLimiter(rpm=0)
    with pytest.raises(ConfigError, match=r"tpm=-1: .*decrease=2: must be a number in \(0, 1\]"):
        RateLimiter(tpm=-1, decrease=2)
    with pytest.raises(ConfigError, match=r"evidence=0: must be an integer >= 1"):
        RateLimiter(evidence=0)

    async def bad_tokens():
        await RateLimiter().acquire(-1)

    with pytest.raises(ConfigError, match=r"acquire\(tokens=-1\): tokens must be an integer"):
        run_virtual(bad_tokens())
    with pytest.raises(ConfigError, match=r"adjust\(actual=1.5\)"):
        RateLimiter(tpm=10).adjust(1, 1.5)  # type: ignore[arg-type]


def test_late_timers_are_credited_up_to_half_a_spacing():
    # A loop that runs timers late must not make the rate drift down, nor bunch starts up.
    async def scenario():
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rpm=600)  # one start per 0.1 s
        starts = []
        for _ in range(6):
            await limiter.acquire()
            starts.append(loop.time())
            await asyncio.sleep(0.13)  # this caller is always 30 ms late for its next turn
        return starts

    starts = run_virtual(scenario())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g == pytest.approx(0.13) for g in gaps)  # never forced to wait beyond its lateness


def test_a_late_timer_does_not_let_two_starts_bunch_up():
    async def scenario():
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rpm=600)  # one start per 0.1 s
        await limiter.acquire()
        starts = []

        async def one():
            await limiter.acquire()
            starts.append(loop.time())

        waiters = [asyncio.create_task(one()) for _ in range(3)]
        await asyncio.sleep(0)
        loop._skip(0.18)  # the process stalls: the timer due at 0.1 fires at 0.18
        await asyncio.gather(*waiters)
        return starts

    starts = run_virtual(scenario())
    assert starts[0] == pytest.approx(0.18)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.05 - 1e-9  # caught up by at most half a spacing
    assert starts[-1] == pytest.approx(0.33)  # and the lost time is partly made up


def test_a_lone_429_neither_pauses_the_endpoint_nor_cuts_its_rate():
    async def scenario():
        limiter = RateLimiter(rpm=600)  # one start per 0.1 s
        await limiter.acquire()
        queued = asyncio.create_task(_acquire_at(limiter))
        await asyncio.sleep(0)
        pause = limiter.on_rate_limited(retry_after=5.0, attempt=1)
        return pause, limiter.effective_rpm, limiter.paused_until, await queued

    assert run_virtual(scenario()) == (0.0, 600.0, None, (0.1, 0.1))


def test_a_run_of_refused_attempts_in_start_order_is_evidence():
    async def scenario():
        limiter = RateLimiter(rpm=600, evidence=3)
        results = []
        # Attempts 1..6 started in order; their outcomes arrive in another order.
        results.append(limiter.on_rate_limited(0.5, attempt=2))
        results.append(limiter.on_rate_limited(0.5, attempt=4))
        limiter.on_success(attempt=3)  # between two refusals: no run
        results.append(limiter.on_rate_limited(0.5, attempt=6))
        results.append(limiter.effective_rpm)
        results.append(limiter.on_rate_limited(0.5, attempt=5))  # 4, 5, 6: a run of three
        results.append(limiter.effective_rpm)
        return results

    assert run_virtual(scenario()) == [0.0, 0.0, 0.0, 600.0, 0.5, 300.0]


def test_a_429_while_the_providers_quota_is_used_up_is_evidence():
    async def scenario():
        limiter = RateLimiter(rpm=600)
        limiter.observe(RateLimitHeaders(requests=Quota(remaining=0, limit=10, reset=1.0)))
        return limiter.on_rate_limited(0.25, attempt=1), limiter.effective_rpm

    assert run_virtual(scenario()) == (0.25, 300.0)


def test_an_empty_provider_quota_holds_starts_until_it_refills():
    async def scenario():
        limiter = RateLimiter()  # no rpm of its own: follows the provider's
        # 2 of 10 left, full again in 0.8 s: one comes back every 0.1 s.
        limiter.observe(RateLimitHeaders(requests=Quota(remaining=2, limit=10, reset=0.8)))
        return await _start_concurrently(limiter, 4)

    starts = [round(t, 6) for t, _ in run_virtual(scenario())]
    assert starts == [0.0, 0.0, 0.1, 0.2]


def test_a_token_quota_without_a_limit_holds_starts_until_its_reset():
    async def scenario():
        limiter = RateLimiter()
        limiter.observe(RateLimitHeaders(tokens=Quota(remaining=0, reset=2.0)))
        return await _acquire_at(limiter)

    assert run_virtual(scenario()) == (2.0, 2.0)
