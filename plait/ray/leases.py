"""A worker's side of the coordinator: leased slots and start times behind each `Endpoint`.

`Leases` keeps, per endpoint alias, the slots the coordinator leased to this
worker and the requests waiting for a slot or a start time, and runs one
background loop that calls the coordinator's `Ledger.sync` (one call at a
time, batching everything that waits) whenever something is wanted, and
every `INTERVAL` while slots are held. Requests reuse held slots without a
call; a call is needed only to get more, to hand back slots another worker
waits for, and (with rpm or tpm set) to get start times.

`ClusterManager` is a `ResourceManager` whose endpoints consult the leases:
their limiter (`ClusterLimiter`) waits for a leased slot and a start time
before each attempt, and their client (`LeasedClient`) gives the slot back
when the attempt ends, however it ends. With a budget, each attempt also
waits for the coordinator's permit (`ClusterBudget`), after its slot and
before its start time; a refusal raises `BudgetExceeded`, which the
scheduler records as a cancelled call, as a local budget does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from plait.clients.base import ChatClient, ChatRequest, ChatResponse, DeltaCallback, Usage
from plait.execution.budget import Budget
from plait.resources.config import ResourceConfig
from plait.resources.manager import Endpoint, ResourceManager

INTERVAL = 0.05  # seconds between syncs while this worker holds slots or waits
Sync = Callable[[dict[str, dict[str, Any]], dict[str, Any] | None], Awaitable[dict[str, Any]]]


class ClusterBudget(Budget):
    """A batch's budget on one worker: the cluster's spending at the last sync, plus its own since.

    The scheduler charges it (as it charges a local `Budget`); `Leases` reports
    the charges at the next sync and, before every start, asks the coordinator,
    which permits starts only while the cluster's spending is under the limits.
    """

    def __init__(self, max_cost: float | None = None, max_tokens: int | None = None) -> None:
        super().__init__(max_cost, max_tokens)
        self.unreported_cost = 0.0
        self.unreported_tokens = 0
        self.asks: list[asyncio.Future[bool]] = []  # starts waiting for the coordinator's word
        self.on_charge: Callable[[], None] | None = None

    def charge(self, usage: Usage, cost: float) -> None:
        super().charge(usage, cost)
        self.unreported_cost += cost
        self.unreported_tokens += usage.total_tokens
        if self.on_charge is not None:
            self.on_charge()

    def busy(self) -> bool:
        return bool(self.unreported_cost or self.unreported_tokens or self.asks)

    def report(self) -> tuple[dict[str, Any], list[asyncio.Future[bool]]]:
        """What to tell the coordinator (charges, starts asked for), and the asks it answers."""
        asked = [future for future in self.asks if not future.done()]
        entry = {
            "cost": self.unreported_cost,
            "tokens": self.unreported_tokens,
            "starts": len(asked),
        }
        self.unreported_cost, self.unreported_tokens = 0.0, 0
        self.asks = []
        return entry, asked

    def apply(self, answer: Mapping[str, Any], asked: list[asyncio.Future[bool]]) -> None:
        self.cost = answer["cost"] + self.unreported_cost
        self.tokens = answer["tokens"] + self.unreported_tokens
        for n, future in enumerate(asked):
            if not future.done():
                future.set_result(n < answer["granted"])


class _Lease:
    """One alias: slots held and in use, waiters, and what to report at the next sync."""

    def __init__(self, rate_limited: bool) -> None:
        self.rate_limited = rate_limited
        self.held = self.in_use = 0
        self.share: int | None = None
        self.slot_waiters: deque[asyncio.Future[None]] = deque()
        self.start_waiters: deque[tuple[int, asyncio.Future[tuple[float, float]]]] = deque()
        self.paused_until = -float("inf")
        self.release = self.adjust = self.ok = 0
        self.limited: list[float | None] = []

    def busy(self) -> bool:
        return bool(
            self.held
            or self.slot_waiters
            or self.start_waiters
            or self.release
            or self.limited
            or self.adjust
        )

    def report(self) -> dict[str, Any]:
        waiting = [tokens for tokens, future in self.start_waiters if not future.done()]
        entry = {
            "release": self.release,
            "want": sum(1 for f in self.slot_waiters if not f.done()),
            "starts": waiting,
            "adjust": self.adjust,
            "ok": self.ok,
            "limited": self.limited,
        }
        self.release = self.adjust = self.ok = 0
        self.limited = []
        return entry

    def apply(self, answer: Mapping[str, Any]) -> None:
        self.held += answer["grant"]
        self.share = answer["share"]
        self.paused_until = max(self.paused_until, answer["paused_until"])
        while self.in_use < self.held and self.slot_waiters:
            future = self.slot_waiters.popleft()
            if not future.done():
                self.in_use += 1
                future.set_result(None)
        self._shed()
        slack = answer["slack"]
        for start in answer["starts"]:
            while self.start_waiters and self.start_waiters[0][1].done():
                self.start_waiters.popleft()  # cancelled while asking
            if not self.start_waiters:
                break  # its waiter left: the time goes unused, which only slows things down
            self.start_waiters.popleft()[1].set_result((start, slack))

    def release_slot(self) -> None:
        self.in_use -= 1
        if self._shed():
            return
        while self.slot_waiters:
            future = self.slot_waiters.popleft()
            if not future.done():
                self.in_use += 1
                future.set_result(None)
                return

    def _shed(self) -> bool:
        """Hand back idle slots above this worker's share while another worker waits."""
        if self.share is None:
            return False
        extra = min(self.held - self.share, self.held - self.in_use)
        if extra <= 0:
            return False
        self.held -= extra
        self.release += extra
        return True


class Leases:
    """This worker's leases for every alias, kept in step with the coordinator by one loop."""

    def __init__(
        self, sync: Sync, resources: ResourceConfig, budget: ClusterBudget | None = None
    ) -> None:
        self._sync = sync
        self.budget = budget
        if budget is not None:
            budget.on_charge = self._poke  # the coordinator hears of spending at once
        self._leases = {
            alias: _Lease(config.rpm is not None or config.tpm is not None)
            for alias, config in resources.items()
        }
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.calls = 0  # coordinator round trips so far
        self.error: Exception | None = None

    def _poke(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="plait leases")

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as exc:  # the coordinator is gone: every waiter fails with the reason
            self.error = exc
            for lease in self._leases.values():
                waiting: list[asyncio.Future[Any]] = [
                    *lease.slot_waiters,
                    *(f for _, f in lease.start_waiters),
                ]
                for future in waiting:
                    if not future.done():
                        future.set_exception(exc)
            for ask in self.budget.asks if self.budget is not None else ():
                if not ask.done():
                    ask.set_exception(exc)

    async def _loop(self) -> None:
        while True:
            leases = {alias: lease for alias, lease in self._leases.items() if lease.busy()}
            budget = self.budget
            if not leases and (budget is None or not budget.busy()):
                return  # nothing held or wanted; the next request starts the loop again
            self._wake.clear()
            spend, asked = budget.report() if budget is not None else (None, [])
            report = {alias: lease.report() for alias, lease in leases.items()}
            answer = await self._sync(report, spend)
            self.calls += 1
            for alias, lease in leases.items():
                lease.apply(answer[alias])
            if budget is not None:
                budget.apply(answer["budget"], asked)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), INTERVAL)

    async def acquire(self, alias: str, tokens: int) -> float:
        """Wait for a leased slot and a start time (and any 429 pause); returns seconds waited."""
        if self.error is not None:
            raise self.error
        lease = self._leases[alias]
        began = time.monotonic()
        if lease.in_use < lease.held and not lease.slot_waiters:
            lease.in_use += 1
        else:
            future = asyncio.get_running_loop().create_future()
            lease.slot_waiters.append(future)
            self._poke()
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self.release(alias)
                raise
        try:
            if self.budget is not None:
                await self._permit(self.budget)
            await self._start(lease, tokens)
        except BaseException:
            self.release(alias)
            raise
        return time.monotonic() - began

    async def _permit(self, budget: ClusterBudget) -> None:
        """Wait for the coordinator to permit a start under the batch's budget (else raise)."""
        if not budget.exhausted:
            future = asyncio.get_running_loop().create_future()
            budget.asks.append(future)
            self._poke()
            if await future:
                return
        raise budget.error()  # the scheduler records the call as cancelled, as for a local budget

    async def _start(self, lease: _Lease, tokens: int) -> None:
        while True:
            granted = -float("inf")
            if lease.rate_limited:
                future = asyncio.get_running_loop().create_future()
                lease.start_waiters.append((tokens, future))
                self._poke()
                try:
                    granted, slack = await future
                except asyncio.CancelledError:
                    if future.done() and not future.cancelled():
                        lease.adjust -= tokens  # a start time taken but not used: refund its tokens
                    raise
                delay = granted - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.time() > granted + slack:
                    lease.adjust -= tokens  # too late to use: starting now could bunch with others
                    continue
            pause = lease.paused_until - time.time()
            if pause <= 0:
                return
            if granted > -float("inf"):
                lease.adjust -= tokens  # a pause came after the start time: ask for a new one
            await asyncio.sleep(pause)

    def release(self, alias: str) -> None:
        lease = self._leases[alias]
        lease.release_slot()
        if lease.release:
            self._poke()

    def settle(self, alias: str, estimated: int, actual: int) -> None:
        self._leases[alias].adjust += actual - estimated

    def succeeded(self, alias: str) -> None:
        self._leases[alias].ok += 1

    def rate_limited(self, alias: str, retry_after: float | None) -> float:
        """Report an endpoint pause after 429s (every worker pauses); pause this worker at once."""
        lease = self._leases[alias]
        lease.limited.append(retry_after)
        pause = 1.0 if retry_after is None else max(0.0, retry_after)
        lease.paused_until = max(lease.paused_until, time.time() + pause)
        self._poke()
        return pause

    async def aclose(self) -> None:
        """Hand every slot back and stop the loop."""
        for lease in self._leases.values():
            lease.release += lease.held
            lease.held = 0
        budget = self.budget
        if any(lease.release for lease in self._leases.values()) or (budget and budget.busy()):
            report = {a: lease.report() for a, lease in self._leases.items() if lease.release}
            spend, asked = budget.report() if budget is not None else (None, [])
            answer = await self._sync(report, spend)
            if budget is not None:
                budget.apply(answer["budget"], asked)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ClusterLimiter:
    """An endpoint limiter (the `RateLimiter` methods `Endpoint` calls) backed by `Leases`.

    ``judge`` is the endpoint's own `RateLimiter`: it still decides whether a 429
    is evidence of an over-rate (a run of refusals, or an exhausted quota in the
    provider's headers, which it keeps reading) or a lone refusal; only evidence
    becomes a pause, and then one for the whole cluster.
    """

    def __init__(self, leases: Leases, alias: str, judge: Any) -> None:
        self._leases = leases
        self._alias = alias
        self.judge = judge

    async def acquire(self, tokens: int = 0) -> float:
        return await self._leases.acquire(self._alias, tokens)

    def adjust(self, estimated: int, actual: int) -> None:
        self._leases.settle(self._alias, estimated, actual)

    def on_rate_limited(
        self, retry_after: float | None = None, attempt: int | None = None
    ) -> float:
        pause = self.judge.on_rate_limited(retry_after, attempt)
        if pause > 0:
            self._leases.rate_limited(self._alias, pause)
        return pause

    def on_success(self, attempt: int | None = None) -> None:
        self.judge.on_success(attempt)
        self._leases.succeeded(self._alias)

    def observe(self, headers: Any) -> None:
        self.judge.observe(headers)

    def pause_remaining(self) -> float:
        return max(0.0, self._leases._leases[self._alias].paused_until - time.time())


class LeasedClient:
    """Wraps an endpoint's client: the slot `ClusterLimiter.acquire` took goes back after each attempt."""

    def __init__(self, client: ChatClient, leases: Leases, alias: str) -> None:
        self.inner = client
        self._leases = leases
        self._alias = alias

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        try:
            return await self.inner.complete(request, on_delta=on_delta)
        finally:
            self._leases.release(self._alias)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ClusterManager(ResourceManager):
    """A `ResourceManager` whose endpoints take their slots and start times from `Leases`."""

    def __init__(self, config: ResourceConfig, leases: Leases) -> None:
        super().__init__(config)
        self.leases = leases

    def endpoint(self, alias: str) -> Endpoint:
        endpoint = super().endpoint(alias)
        if not isinstance(endpoint.client, LeasedClient):
            limiter = ClusterLimiter(self.leases, alias, endpoint.limiter)
            endpoint.limiter = limiter  # type: ignore[assignment]
            endpoint.client = LeasedClient(endpoint.client, self.leases, alias)
        return endpoint
