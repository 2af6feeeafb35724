"""The coordinator's ledger: one place that grants every endpoint's slots and start times.

A batch on Ray has one coordinator (a Ray actor holding a `Ledger`); every
worker talks to it through `Ledger.sync`, a single call that returns slots
it no longer needs, asks for what its waiting requests need, and reports
what happened since the last call (successes, 429s, real token counts).

- Concurrency: each endpoint's ``max_concurrent`` slots (and the global cap)
  are leased to workers, which keep and reuse them; while the free slots
  cannot serve what the workers want, each worker keeps at most its fair
  ``share`` and hands the rest back as its requests finish.
- Rate: with ``rpm`` or ``tpm`` set, each request needs a start time. The
  ledger hands out start times on one schedule per endpoint (the same
  virtual-scheduling token buckets as `plait.resources.limiter.RateLimiter`),
  so starts are spaced ``60 / rpm`` apart cluster-wide however many workers
  ask. It reserves at most `HORIZON` seconds ahead, so a start time is never
  held long by a worker that might die with it.
- A 429 pause a worker reports (its endpoint's limiter judged the 429s to be
  an over-rate, not a lone refusal) pauses every worker's starts
  (``paused_until``) and lowers the effective rpm, which recovers with
  successes, as on one machine.
- A budget (``max_cost`` / ``max_tokens``) is the batch's, not a worker's:
  workers report what they were charged and ask for a permit before every
  start; the ledger permits starts only while the batch's spending is under
  the limits, so it passes them by at most the calls in flight.
- A lost worker's slots return to the pool only after the endpoint's
  ``timeout``: the requests it had in flight may still be running at the
  server, which must never see more than ``max_concurrent`` at once.

Times are wall-clock seconds (``time.time()``), comparable across the
machines of a cluster as far as their clocks agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.execution.budget import Budget

HORIZON = 1.0  # seconds ahead the ledger will schedule a start time
_BACKOFF = 1.0  # pause after a 429 without Retry-After, as RateLimiter's default
_DECREASE, _RECOVERY, _MIN_FRACTION = 0.5, 0.1, 0.125


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    """What the ledger enforces for one endpoint alias."""

    max_concurrent: int
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 60.0


@dataclass(slots=True)
class _Endpoint:
    limits: EndpointLimits
    held: dict[str, int] = field(default_factory=dict)  # worker -> slots leased
    wanted: dict[str, int] = field(default_factory=dict)  # worker -> slots still wanted
    quarantined: list[tuple[float, int]] = field(default_factory=list)  # (free at, slots)
    effective_rpm: float | None = None
    last_start: float = -math.inf
    tokens_full_at: float = -math.inf
    paused_until: float = -math.inf
    starts: int = 0

    def busy(self, now: float) -> int:
        self.quarantined = [(t, n) for t, n in self.quarantined if t > now]
        return sum(self.held.values()) + sum(n for _, n in self.quarantined)


class Ledger:
    """Slots, start times, 429 pauses and the budget of one batch, shared by its workers."""

    def __init__(
        self,
        endpoints: Mapping[str, EndpointLimits],
        global_cap: int | None = None,
        clock: Callable[[], float] = time.time,
        budget: tuple[float | None, int | None] | None = None,
    ) -> None:
        self._endpoints = {
            alias: _Endpoint(limits, effective_rpm=limits.rpm)
            for alias, limits in endpoints.items()
        }
        self.global_cap = global_cap
        self._clock = clock
        self.budget = Budget(*budget) if budget is not None else None

    def sync(
        self,
        worker: str,
        report: Mapping[str, Mapping[str, Any]],
        spend: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Settle ``worker``'s report and answer it, per endpoint alias.

        A report entry may hold ``release`` (slots handed back), ``want``
        (slots wanted beyond those held), ``starts`` (the token estimates of
        requests waiting for a start time), ``adjust`` (real minus estimated
        tokens of finished requests), ``ok`` (successes) and ``limited`` (the
        length of each endpoint pause the worker decided on, None for the
        default back-off). The answer for each alias
        has ``grant`` (new slots), ``share`` (slots this worker may keep while
        others wait, None when nobody waits), ``starts`` (start times, one per
        estimate from the front, possibly fewer), ``slack`` (how late a start
        time may still be used) and ``paused_until``.

        With a budget, ``spend`` reports the ``cost`` and ``tokens`` the worker
        was charged since its last sync and the ``starts`` it asks to make; the
        answer's ``budget`` holds the batch's ``cost`` and ``tokens`` so far and
        how many starts are ``granted``: all of them while the spending is under
        the limits, none once it is not.
        """
        now = self._clock()
        for alias, entry in report.items():
            self._settle(alias, worker, entry, now)
        answer: dict[str, Any] = {"now": now}
        if spend is not None and self.budget is not None:
            answer["budget"] = self._spend(spend)
        for alias, entry in report.items():
            endpoint = self._endpoints[alias]
            answer[alias] = {
                "grant": self._grant(alias, worker, int(entry.get("want", 0)), now),
                "share": self._share(endpoint, worker, now),
                "starts": self._schedule(endpoint, entry.get("starts", ()), now),
                "slack": self._slack(endpoint),
                "paused_until": endpoint.paused_until,
            }
        return answer

    def _spend(self, spend: Mapping[str, Any]) -> dict[str, Any]:
        budget = self.budget
        assert budget is not None
        # Charges first: a start asked for in the same sync as the charge that spent the
        # budget is refused.
        budget.cost += float(spend.get("cost", 0.0))
        budget.tokens += int(spend.get("tokens", 0))
        granted = 0 if budget.exhausted else int(spend.get("starts", 0))
        return {"cost": budget.cost, "tokens": budget.tokens, "granted": granted}

    def lost(self, worker: str) -> None:
        """Forget a dead worker: its slots return after the endpoint's timeout."""
        now = self._clock()
        for endpoint in self._endpoints.values():
            slots = endpoint.held.pop(worker, 0)
            endpoint.wanted.pop(worker, None)
            if slots:
                endpoint.quarantined.append((now + endpoint.limits.timeout, slots))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per alias: slots held by each worker, slots quarantined, starts granted, effective rpm."""
        now = self._clock()
        return {
            alias: {
                "held": dict(e.held),
                "busy": e.busy(now),
                "starts": e.starts,
                "effective_rpm": e.effective_rpm,
                "paused_until": e.paused_until,
            }
            for alias, e in self._endpoints.items()
        }

    def _settle(self, alias: str, worker: str, entry: Mapping[str, Any], now: float) -> None:
        endpoint = self._endpoints[alias]
        released = min(int(entry.get("release", 0)), endpoint.held.get(worker, 0))
        if released:
            endpoint.held[worker] -= released
        endpoint.wanted[worker] = int(entry.get("want", 0))
        limits = endpoint.limits
        adjust = int(entry.get("adjust", 0))
        if adjust and limits.tpm is not None:
            endpoint.tokens_full_at += adjust / (limits.tpm / 60.0)
        for retry_after in entry.get("limited", ()):
            already = now < endpoint.paused_until
            pause = _BACKOFF if retry_after is None else max(0.0, float(retry_after))
            endpoint.paused_until = max(endpoint.paused_until, now + pause)
            if limits.rpm is not None and endpoint.effective_rpm is not None and not already:
                endpoint.effective_rpm = max(
                    limits.rpm * _MIN_FRACTION, endpoint.effective_rpm * _DECREASE
                )
        if limits.rpm is not None and endpoint.effective_rpm is not None:
            for _ in range(min(int(entry.get("ok", 0)), 100)):
                if endpoint.effective_rpm >= limits.rpm:
                    break
                endpoint.effective_rpm = min(
                    limits.rpm, endpoint.effective_rpm + limits.rpm * _RECOVERY
                )

    def _free(self, endpoint: _Endpoint, now: float) -> int:
        free = endpoint.limits.max_concurrent - endpoint.busy(now)
        if self.global_cap is not None:
            used = sum(e.busy(now) for e in self._endpoints.values())
            free = min(free, self.global_cap - used)
        return max(0, free)

    def _grant(self, alias: str, worker: str, want: int, now: float) -> int:
        endpoint = self._endpoints[alias]
        free = self._free(endpoint, now)
        share = self._share(endpoint, worker, now)
        held = endpoint.held.get(worker, 0)
        room = want if share is None else max(0, min(want, share - held))
        granted = min(free, room)
        if granted:
            endpoint.held[worker] = held + granted
            endpoint.wanted[worker] = want - granted
        return granted

    def _share(self, endpoint: _Endpoint, worker: str, now: float) -> int | None:
        """The fair number of slots per worker while the free slots cannot serve every want.

        None while they can: then nobody needs to hand anything back.
        """
        if sum(endpoint.wanted.values()) <= self._free(endpoint, now):
            return None
        workers = {w for w, n in endpoint.wanted.items() if n}
        workers |= {w for w, n in endpoint.held.items() if n}
        workers.add(worker)
        demands = sorted(endpoint.held.get(w, 0) + endpoint.wanted.get(w, 0) for w in workers)
        capacity = endpoint.limits.max_concurrent
        if self.global_cap is not None:
            capacity = min(capacity, self.global_cap)
        # Water-filling: workers wanting less than an equal split keep what they want, and the
        # rest is split equally among the others.
        for served, demand in enumerate(demands):
            fair = capacity / (len(demands) - served)
            if demand > fair:
                return max(1, math.ceil(fair))
            capacity -= demand
        return None

    def _slack(self, endpoint: _Endpoint) -> float:
        """How late a start may still use its time: half a spacing keeps any one-second
        window at ``ceil(rpm / 60) + 1`` starts, as on one machine."""
        if endpoint.effective_rpm is None:
            return HORIZON / 2
        return 30.0 / endpoint.effective_rpm

    def _schedule(self, endpoint: _Endpoint, estimates: Any, now: float) -> list[float]:
        limits = endpoint.limits
        if limits.rpm is None and limits.tpm is None:
            return []
        times = []
        for tokens in estimates:
            ready = max(now, endpoint.paused_until)
            if endpoint.effective_rpm is not None:
                ready = max(ready, endpoint.last_start + 60.0 / endpoint.effective_rpm)
            if limits.tpm is not None:
                rate = limits.tpm / 60.0  # also the bucket's capacity: one second of tokens
                needed = rate - min(int(tokens), rate)
                ready = max(ready, endpoint.tokens_full_at - needed / rate)
            if ready > now + HORIZON:
                break
            endpoint.last_start = ready
            if limits.tpm is not None:
                rate = limits.tpm / 60.0
                endpoint.tokens_full_at = max(endpoint.tokens_full_at, ready) + int(tokens) / rate
            endpoint.starts += 1
            times.append(ready)
        return times


class Coordinator:
    """The Ray actor behind a backend's batches: one `Ledger` per batch, by batch id.

    Its methods run one at a time (a plain, not async, actor), so a ledger
    never sees two syncs at once.
    """

    def __init__(self) -> None:
        self._ledgers: dict[str, Ledger] = {}

    def open(
        self,
        batch: str,
        endpoints: Mapping[str, EndpointLimits],
        global_cap: int | None,
        budget: tuple[float | None, int | None] | None = None,
    ) -> None:
        self._ledgers[batch] = Ledger(endpoints, global_cap, budget=budget)

    def sync(
        self,
        batch: str,
        worker: str,
        report: Mapping[str, Any],
        spend: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._ledgers[batch].sync(worker, report, spend)

    def lost(self, batch: str, worker: str) -> None:
        ledger = self._ledgers.get(batch)
        if ledger is not None:
            ledger.lost(worker)

    def snapshot(self, batch: str) -> dict[str, dict[str, Any]]:
        return self._ledgers[batch].snapshot()

    def close(self, batch: str) -> None:
        self._ledgers.pop(batch, None)

    def cpu(self) -> float:
        """CPU seconds this process has used (benchmarks count it in the backend's cost)."""
        return time.process_time()
