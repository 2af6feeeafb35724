"""When to retry a failed request, and how long to wait first."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from plait.errors import ConfigError, ProviderError, RateLimitError

# 2**64 times any sane base delay is far past any max_delay; capping the exponent
# keeps the arithmetic finite for absurd attempt numbers.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter for retryable provider errors.

    Failures (5xx, timeouts, dropped connections, malformed replies) and rate
    limits (429) are counted apart. For failures, ``attempt`` is the number of
    failed attempts so far (1 after the first), so at most ``1 + max_retries``
    of them happen. A 429 is the server asking for patience, not a failure: a
    request keeps honouring Retry-After until it has waited
    ``rate_limit_patience`` seconds on 429s in all (`should_wait_again`), so a
    rate-limit storm slows a run down without losing calls. The loop:

        failures, limited, waited = 0, 0, 0.0
        while True:
            try:
                return await send()
            except RateLimitError as error:
                limited += 1
                if not policy.should_wait_again(waited):
                    raise
                delay = policy.delay(limited, error, rng)
                waited += delay
            except Exception as error:
                failures += 1
                if not policy.should_retry(error, failures):
                    raise
                delay = policy.delay(failures, error, rng)
            await asyncio.sleep(delay)
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    rate_limit_patience: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        if not (_is_int(self.max_retries) and self.max_retries >= 0):
            problems.append(f"max_retries={self.max_retries!r}: must be an integer >= 0")
        if not (_is_number(self.base_delay) and self.base_delay >= 0):
            problems.append(f"base_delay={self.base_delay!r}: must be a number of seconds >= 0")
        if not (_is_number(self.max_delay) and self.max_delay >= 0):
            problems.append(f"max_delay={self.max_delay!r}: must be a number of seconds >= 0")
        if not (_is_number(self.rate_limit_patience) and self.rate_limit_patience >= 0):
            problems.append(
                f"rate_limit_patience={self.rate_limit_patience!r}: must be a number of seconds >= 0"
            )
        if problems:
            raise ConfigError("RetryPolicy: " + "; ".join(problems))

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries

    def should_wait_again(self, waited: float) -> bool:
        """Whether a request refused with 429 may wait once more, having waited ``waited`` s on 429s."""
        return waited < self.rate_limit_patience

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether to try again after attempt number ``attempt`` failed with ``error``.

        Only `ProviderError`s marked ``retryable`` (rate limits, transient
        failures, timeouts) are retried; anything else is a bug or a bad request
        that would fail the same way again.
        """
        _check_attempt(attempt)
        return isinstance(error, ProviderError) and error.retryable and attempt <= self.max_retries

    def delay(
        self,
        attempt: int,
        error: BaseException | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait before the next attempt, after attempt number ``attempt`` failed.

        Drawn uniformly from ``[0, min(max_delay, base_delay * 2**(attempt - 1))]``.
        After a `RateLimitError` with a ``retry_after``, that draw is added to
        it: retrying sooner only earns another 429, and without the added
        jitter every request refused together would retry together and be
        refused together again.
        """
        _check_attempt(attempt)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
        wait = (rng if rng is not None else _RNG).uniform(0.0, ceiling)
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            wait += error.retry_after
        return wait


_RNG = random.Random()


def _check_attempt(attempt: int) -> None:
    if not (_is_int(attempt) and attempt >= 1):
        raise ConfigError(
            f"attempt={attempt!r}: must be the number of attempts made so far, an integer >= 1"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
