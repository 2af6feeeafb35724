"""`SlotPool`: concurrency slots per endpoint and overall, granted by priority.

A node asks for a slot on its endpoint with a priority (its longest remaining
path); a free slot is granted at once, otherwise the request waits in that
endpoint's heap and the best waiter is served when a slot frees (ties go to the
earlier batch item, then to the earlier request). Freed slots are handed out on
the next turn of the event loop, so that nodes made ready by the call that
just finished can queue first and compete for them. Slots are
numbered per endpoint, lowest free first, so a timeline can draw one row per
slot. One pool may be shared by many graph runs (a batch), so priorities
compete across items.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Slots:
    capacity: int
    free: list[int]
    waiters: list[tuple[float, int, int, asyncio.Future[int]]] = field(default_factory=list)


class SlotPool:
    """Per-endpoint slots (``capacity`` each) under an optional global cap."""

    def __init__(self, global_cap: int | None = None) -> None:
        self._endpoints: dict[str, _Slots] = {}
        self._global_free = global_cap
        self._global_cap = global_cap
        self._seq = itertools.count()
        self._dispatch_pending = False

    def add_endpoint(self, alias: str, capacity: int) -> None:
        if alias not in self._endpoints:
            self._endpoints[alias] = _Slots(capacity, list(range(capacity)))

    def capacities(self) -> dict[str, int]:
        """Slots per endpoint."""
        return {alias: slots.capacity for alias, slots in self._endpoints.items()}

    @property
    def global_cap(self) -> int | None:
        return self._global_cap

    def busy(self, alias: str) -> int:
        slots = self._endpoints[alias]
        return slots.capacity - len(slots.free)

    def queued(self, alias: str) -> int:
        return len(self._endpoints[alias].waiters)

    async def acquire(self, alias: str, priority: float, item: int = 0) -> int:
        """Wait for a slot on ``alias``; higher ``priority`` first, then lower ``item``, then arrival."""
        slots = self._endpoints[alias]
        if slots.free and not slots.waiters and self._global_ok() and not self._dispatch_pending:
            return self._take(slots)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        heapq.heappush(slots.waiters, (-priority, item, next(self._seq), future))
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(alias, future.result())  # granted just as we were cancelled
            raise

    def release(self, alias: str, slot: int) -> None:
        """Return ``slot`` and hand it (or another freed capacity) to the best waiter."""
        slots = self._endpoints[alias]
        heapq.heappush(slots.free, slot)
        if self._global_free is not None:
            self._global_free += 1
        if not self._dispatch_pending:
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch_all)

    def _dispatch_all(self) -> None:
        self._dispatch_pending = False
        if self._global_free is not None:
            self._dispatch_global()
        else:
            for slots in self._endpoints.values():
                self._dispatch(slots)

    def _global_ok(self) -> bool:
        return self._global_free is None or self._global_free > 0

    def _take(self, slots: _Slots) -> int:
        if self._global_free is not None:
            self._global_free -= 1
        return heapq.heappop(slots.free)

    def _dispatch(self, slots: _Slots) -> None:
        while slots.free and slots.waiters and self._global_ok():
            future = heapq.heappop(slots.waiters)[-1]
            if not future.cancelled():
                future.set_result(self._take(slots))

    def _dispatch_global(self) -> None:
        # With a global cap, a freed slot goes to the best waiter on any endpoint that has room.
        while self._global_ok():
            best: _Slots | None = None
            for slots in self._endpoints.values():
                while slots.waiters and slots.waiters[0][-1].cancelled():
                    heapq.heappop(slots.waiters)
                if (
                    slots.free
                    and slots.waiters
                    and (best is None or slots.waiters[0] < best.waiters[0])
                ):
                    best = slots
            if best is None:
                return
            future = heapq.heappop(best.waiters)[-1]
            future.set_result(self._take(best))

    def __repr__(self) -> str:
        parts = [
            f"{a}: {s.capacity - len(s.free)}/{s.capacity} busy, {len(s.waiters)} waiting"
            for a, s in self._endpoints.items()
        ]
        cap = "" if self._global_free is None else f", global free {self._global_free}"
        return f"SlotPool({'; '.join(parts)}{cap})"
