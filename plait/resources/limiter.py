"""Requests- and tokens-per-minute limits for one endpoint, with backoff after a 429.

Both limits are token buckets kept as the time each becomes ready (the
"virtual scheduling" form of GCRA), so no background task refills them. Time
comes only from the running event loop, which lets tests drive a virtual clock.

Waiters are served strictly in arrival order from one queue, and one timer is
armed for the head of the queue; a cancelled waiter leaves the queue and the
timer is re-armed for the next one.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

from plait.clients._ratelimit import RateLimitHeaders
from plait.errors import ConfigError


@dataclass(slots=True, eq=False)
class _Quota:
    """A provider quota as of loop time ``at``, and what this client started since."""

    at: float
    remaining: float
    rate: float | None  # refill per second, when the headers give limit and reset
    full_at: float | None
    used: float = 0.0

    def ready_at(self, amount: float) -> float:
        """When ``amount`` more fits in the quota (``-inf`` when it fits now or cannot be told)."""
        needed = self.used + amount - self.remaining
        if needed <= 0:
            return -math.inf
        if self.rate is not None:
            return self.at + needed / self.rate
        return self.full_at if self.full_at is not None else -math.inf


@dataclass(slots=True, eq=False)
class _Waiter:
    tokens: int
    future: asyncio.Future[None]
    arrival: float


class RateLimiter:
    """Holds each request until both the rpm and the tpm limit allow it to start.

    The request bucket holds one request: starts are spaced ``60 / rpm`` seconds
    apart, so any one-second window sees at most ``ceil(rpm / 60) + 1`` starts.
    The token bucket holds one second of tokens (``tpm / 60``); a request is
    charged its estimated tokens when it starts, and `adjust` settles the
    difference once the real usage is known. A request larger than the whole
    token bucket starts when the bucket is full and leaves it in debt, so later
    requests wait for the debt to drain: it never deadlocks, and the long-run
    rate still honours tpm.

    A 429 alone is not taken as "too fast": providers refuse single requests
    for reasons of their own (shared capacity, per-second bursts), and the
    refused request already waits its own Retry-After (the scheduler's retry
    loop). `on_rate_limited` acts on the endpoint only on evidence that the
    rate itself is too high: ``evidence`` consecutively started attempts
    refused, or a 429 arriving while the provider's rate-limit headers say a
    quota is used up (`observe`). Then it pauses every start for the
    Retry-After (or ``backoff``) and, when rpm is set, multiplies the
    effective rpm by ``decrease`` (once per pause, never below
    ``min_fraction`` of rpm); each `on_success` adds back ``recovery`` of the
    configured rpm until it is reached again.

    `observe` also reads the provider's quota headers: while they say the
    request (or token) quota is empty, starts wait for the refill they imply
    (``limit - remaining`` used up over ``reset`` seconds gives the refill
    rate), so a client without its own rpm still follows the provider's.

    One limiter serves one event loop at a time; moving to a new loop (each
    ``run_sync`` makes one) starts its clocks afresh and keeps the effective rate.
    """

    # Loop-local clocks (monotonic seconds), set by _reset_clocks.
    _last_start: float
    _tokens_full_at: float
    _paused_until: float

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        backoff: float = 1.0,
        decrease: float = 0.5,
        recovery: float = 0.1,
        min_fraction: float = 0.125,
        evidence: int = 4,
    ):
        problems = [
            f"{name}={value!r}: must be {allowed}"
            for name, value, ok, allowed in (
                ("rpm", rpm, rpm is None or _positive(rpm), "a positive number or None"),
                ("tpm", tpm, tpm is None or _positive(tpm), "a positive number or None"),
                ("backoff", backoff, _positive(backoff) or backoff == 0, "a number >= 0"),
                ("decrease", decrease, _fraction(decrease), "a number in (0, 1]"),
                ("recovery", recovery, _fraction(recovery), "a number in (0, 1]"),
                ("min_fraction", min_fraction, _fraction(min_fraction), "a number in (0, 1]"),
                ("evidence", evidence, _count(evidence), "an integer >= 1"),
            )
            if not ok
        ]
        if problems:
            raise ConfigError("RateLimiter: " + "; ".join(problems))
        self._rpm = None if rpm is None else float(rpm)
        self._tpm = None if tpm is None else float(tpm)
        self._effective_rpm = self._rpm
        self._backoff = float(backoff)
        self._decrease = decrease
        self._recovery = recovery
        self._min_fraction = min_fraction
        self._evidence = evidence
        self._refused: set[int] = set()  # attempt numbers refused with 429 lately
        self._outcomes = 0  # numbers attempts whose callers pass none
        self._exhausted = False  # the latest rate-limit headers said a quota is used up
        self._quotas: dict[str, _Quota] = {}
        self._waiters: deque[_Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset_clocks()

    @property
    def rpm(self) -> float | None:
        """The configured requests-per-minute limit."""
        return self._rpm

    @property
    def tpm(self) -> float | None:
        """The configured tokens-per-minute limit."""
        return self._tpm

    @property
    def effective_rpm(self) -> float | None:
        """The rpm currently enforced: below `rpm` while recovering from a 429."""
        return self._effective_rpm

    @property
    def paused_until(self) -> float | None:
        """Loop time before which no request starts, if a 429 pause was ever set."""
        return None if self._paused_until == -math.inf else self._paused_until

    @property
    def waiting(self) -> int:
        """How many `acquire` calls are queued."""
        return len(self._waiters)

    def pause_remaining(self) -> float:
        """Seconds left in the current 429 pause; 0.0 when not paused."""
        return max(0.0, self._paused_until - self._now())

    async def acquire(self, tokens: int = 0) -> float:
        """Wait until a request of about ``tokens`` tokens may start; return the wait in seconds.

        Callers are served in arrival order. ``tokens`` only counts when tpm is
        set; pass the estimate (prompt plus expected output) and call `adjust`
        with the real usage afterwards.
        """
        if not (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0):
            raise ConfigError(f"acquire(tokens={tokens!r}): tokens must be an integer >= 0")
        now = self._now()
        if not self._waiters and self._ready_at(tokens) <= now:
            self._start(tokens, now)
            return 0.0
        assert self._loop is not None
        waiter = _Waiter(tokens, self._loop.create_future(), now)
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            self._serve()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Started on our behalf just before the cancel landed: return the tokens.
                self.adjust(tokens, 0)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._serve()
            raise
        return self._loop.time() - now

    def adjust(self, estimated: int, actual: int) -> None:
        """Settle a started request's token charge from ``estimated`` to ``actual``."""
        for name, value in (("estimated", estimated), ("actual", actual)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ConfigError(f"adjust({name}={value!r}): must be an integer >= 0")
        if self._tpm is None or estimated == actual:
            return
        self._tokens_full_at += (actual - estimated) / self._token_rate
        if self._waiters:
            self._serve()

    def on_rate_limited(
        self, retry_after: float | None = None, attempt: int | None = None
    ) -> float:
        """Record a 429; on evidence of an over-rate, pause every start and cut the rate.

        ``attempt`` numbers the refused attempt in start order (`Endpoint.send`
        counts them); without it, reports are numbered in arrival order.
        Returns the endpoint-wide pause from now: 0.0 for a lone 429.
        """
        now = self._now()
        if attempt is None:
            attempt = self._outcomes = self._outcomes + 1
        self._refused.add(attempt)
        if len(self._refused) > 4 * self._evidence + 64:
            self._refused = {n for n in self._refused if n > attempt - 64}
        if not (self._exhausted or self._run(attempt) >= self._evidence):
            return 0.0
        already_paused = now < self._paused_until
        pause = self._backoff if retry_after is None else max(0.0, float(retry_after))
        self._paused_until = max(self._paused_until, now + pause)
        if self._rpm is not None and self._effective_rpm is not None and not already_paused:
            floor = self._rpm * self._min_fraction
            self._effective_rpm = max(floor, self._effective_rpm * self._decrease)
        if self._waiters:
            self._serve()
        return self._paused_until - now

    def on_success(self, attempt: int | None = None) -> None:
        """Record a successful request: step the effective rpm back towards rpm."""
        if attempt is None:
            self._outcomes += 1
        if self._rpm is None or self._effective_rpm is None or self._effective_rpm >= self._rpm:
            return
        self._effective_rpm = min(self._rpm, self._effective_rpm + self._rpm * self._recovery)
        if self._waiters:
            self._serve()

    def observe(self, headers: RateLimitHeaders) -> None:
        """Take in the provider's rate-limit headers from a response that just arrived."""
        now = self._now()
        self._exhausted = headers.exhausted
        for name, quota in (("requests", headers.requests), ("tokens", headers.tokens)):
            if quota is None:
                continue
            spent = None if quota.limit is None else quota.limit - quota.remaining
            rate = spent / quota.reset if spent and spent > 0 and quota.reset else None
            full_at = None if quota.reset is None else now + quota.reset
            self._quotas[name] = _Quota(now, quota.remaining, rate, full_at)
        if self._waiters:
            self._serve()

    def _run(self, attempt: int) -> int:
        """How many consecutively started attempts around ``attempt`` were refused."""
        run, below, above = 1, attempt - 1, attempt + 1
        while below in self._refused:
            run, below = run + 1, below - 1
        while above in self._refused:
            run, above = run + 1, above + 1
        return run

    def __repr__(self) -> str:
        rate = f"rpm={self._rpm}"
        if self._effective_rpm != self._rpm:
            rate += f" (effective {self._effective_rpm:.4g})"
        paused = "" if self.paused_until is None else f" paused_until={self._paused_until:.3f}"
        return f"<RateLimiter {rate} tpm={self._tpm} waiting={len(self._waiters)}{paused}>"

    @property
    def _token_rate(self) -> float:
        """Tokens per second; also the bucket's capacity (one second of tokens)."""
        assert self._tpm is not None
        return self._tpm / 60.0

    def _reset_clocks(self) -> None:
        self._quotas = {}
        self._last_start = -math.inf
        self._tokens_full_at = -math.inf  # when the token bucket is full again
        self._paused_until = -math.inf

    def _now(self) -> float:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Times from another loop are not comparable; waiters there died with it.
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiters.clear()
            self._loop = loop
            self._reset_clocks()
        return loop.time()

    def _ready_at(self, tokens: int) -> float:
        """The earliest loop time a request of ``tokens`` tokens may start."""
        ready = self._paused_until
        if self._effective_rpm is not None:
            ready = max(ready, self._last_start + 60.0 / self._effective_rpm)
        if self._tpm is not None:
            capacity = self._token_rate
            refill_needed = capacity - min(tokens, capacity)
            ready = max(ready, self._tokens_full_at - refill_needed / self._token_rate)
        if self._quotas:
            for name, quota in self._quotas.items():
                ready = max(ready, quota.ready_at(max(tokens, 1) if name == "tokens" else 1))
        return ready

    def _half_spacing(self) -> float:
        return 30.0 / self._effective_rpm if self._effective_rpm else 0.0

    def _start(self, tokens: int, now: float) -> None:
        self._last_start = now
        if self._quotas:
            for name, quota in self._quotas.items():
                quota.used += max(tokens, 1) if name == "tokens" else 1
        if self._tpm is not None:
            self._tokens_full_at = max(self._tokens_full_at, now) + tokens / self._token_rate

    def _serve(self) -> None:
        """Start every head-of-queue waiter that may start now; arm one timer for the next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():  # cancelled; its task removes nothing more
                self._waiters.popleft()
                continue
            ready = self._ready_at(head.tokens)
            if ready > now:
                self._timer = self._loop.call_at(ready, self._serve)
                return
            self._waiters.popleft()
            # Credit the start to when it was due, not when the timer fired (otherwise each
            # late timer pushes every later start back and the rate drifts below the limit),
            # but by at most half a spacing, so two starts are never closer than that and any
            # one-second window still holds at most ceil(rpm/60) + 1 starts.
            self._start(head.tokens, max(ready, head.arrival, now - self._half_spacing()))
            head.future.set_result(None)


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _fraction(value: object) -> bool:
    return _positive(value) and value <= 1  # type: ignore[operator]
