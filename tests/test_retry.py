from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plait.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthError,
    ProviderTimeout,
    RateLimitError,
    TransientError,
)
from plait.resources import RetryPolicy


def _attempts_made(policy: RetryPolicy, error: Exception) -> int:
    """Drive the documented retry loop against an endpoint that always fails."""
    attempt = 0
    while True:
        attempt += 1
        if not policy.should_retry(error, attempt):
            return attempt


@pytest.mark.parametrize("max_retries", [0, 1, 3, 7])
def test_at_most_one_plus_max_retries_attempts(max_retries):
    policy = RetryPolicy(max_retries=max_retries)
    assert _attempts_made(policy, TransientError("502 bad gateway")) == 1 + max_retries
    assert policy.max_attempts == 1 + max_retries


@pytest.mark.parametrize(
    "error",
    [RateLimitError("slow down"), TransientError("503"), ProviderTimeout("no answer in 60 s")],
)
def test_retryable_provider_errors_are_retried(error):
    assert RetryPolicy(max_retries=2).should_retry(error, 1) is True


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("bad key", status=401),
        BadRequestError("unknown model", status=404),
        ContextLengthError("prompt too long", status=400),
        ValueError("a bug in user code"),
        KeyError("missing"),
    ],
)
def test_non_retryable_errors_fail_on_the_first_attempt(error):
    assert RetryPolicy(max_retries=5).should_retry(error, 1) is False
    assert _attempts_made(RetryPolicy(max_retries=5), error) == 1


def test_delay_is_deterministic_with_an_injected_rng():
    policy = RetryPolicy()
    first = [policy.delay(attempt, rng=random.Random(42)) for attempt in range(1, 6)]
    second = [policy.delay(attempt, rng=random.Random(42)) for attempt in range(1, 6)]
    assert first == second


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=120),
    seed=st.integers(),
)
def test_full_jitter_stays_within_the_exponential_ceiling(attempt, base, cap, seed):
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    wait = policy.delay(attempt, rng=random.Random(seed))
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    assert 0.0 <= wait <= ceiling


def test_full_jitter_covers_the_whole_range():
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    rng = random.Random(0)
    waits = [policy.delay(3, rng=rng) for _ in range(2000)]  # ceiling 0.5 * 2**2 = 2.0
    assert min(waits) < 0.05
    assert max(waits) > 1.95
    assert max(waits) <= 2.0
    assert max(policy.delay(20, rng=rng) for _ in range(200)) <= 30.0


def test_retry_after_is_a_floor_with_jitter_on_top():
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    rng = random.Random(1)
    limited = RateLimitError("429", retry_after=7.5)
    waits = [policy.delay(1, limited, rng) for _ in range(200)]
    assert all(7.5 <= w <= 8.0 for w in waits)
    assert max(waits) - min(waits) > 0.4  # spread out, so refused requests do not return together
    far = RateLimitError("429", retry_after=90.0)
    assert 90.0 <= policy.delay(1, far, rng) <= 90.5
    no_hint = RateLimitError("429")
    assert policy.delay(1, no_hint, rng) <= 0.5


def test_retry_after_adds_to_the_usual_backoff_draw():
    policy = RetryPolicy(base_delay=10.0, max_delay=10.0)
    error = RateLimitError("429", retry_after=0.001)
    waits = [policy.delay(1, error, random.Random(seed)) for seed in range(20)]
    assert waits == [0.001 + policy.delay(1, rng=random.Random(seed)) for seed in range(20)]
    assert max(waits) > 1.0


def test_invalid_policy_and_attempt():
    with pytest.raises(ConfigError, match=r"max_retries=-1: must be an integer >= 0"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigError, match=r"base_delay='1'.*max_delay=nan"):
        RetryPolicy(base_delay="1", max_delay=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"attempt=0: must be the number of attempts made"):
        RetryPolicy().should_retry(TransientError("x"), 0)
    with pytest.raises(ConfigError, match=r"attempt=0"):
        RetryPolicy().delay(0)


def test_rate_limit_patience_is_separate_from_max_retries():
    policy = RetryPolicy(max_retries=1, rate_limit_patience=10.0)
    assert policy.should_wait_again(9.99)
    assert not policy.should_wait_again(10.0)
    assert not policy.should_retry(TransientError("503"), 2)
    with pytest.raises(
        ConfigError, match=r"rate_limit_patience=-1: must be a number of seconds >= 0"
    ):
        RetryPolicy(rate_limit_patience=-1)
