"""`SlotPool`: concurrency slots per endpoint and overall, granted by priority.

A node asks for a slot on its endpoint with a priority (its longest remaining
path); a free slot is granted at once, otherwise the request waits in that
endpoint's heap and the best waiter is served when a slot frees. Slots are
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
    waiters: list[tuple[float, int, asyncio.Future[int]]] = field(default_factory=list)


class SlotPool:
    """Per-endpoint slots (``capacity`` each) under an optional global cap."""

    def __init__(self, global_cap: int | None = None) -> None:
        self._endpoints: dict[str, _Slots] = {}
        self._global_free = global_cap
        self._global_cap = global_cap
        self._seq = itertools.count()

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

    async def acquire(self, alias: str, priority: float) -> int:
        """Wait for a slot on ``alias``; higher ``priority`` is served first, then arrival order."""
        slots = self._endpoints[alias]
        if slots.free and not slots.waiters and self._global_ok():
            return self._take(slots)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        heapq.heappush(slots.waiters, (-priority, next(self._seq), future))
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
            self._dispatch_global()
        else:
            self._dispatch(slots)

    def _global_ok(self) -> bool:
        return self._global_free is None or self._global_free > 0

    def _take(self, slots: _Slots) -> int:
        if self._global_free is not None:
            self._global_free -= 1
        return heapq.heappop(slots.free)

    def _dispatch(self, slots: _Slots) -> None:
        while slots.free and slots.waiters and self._global_ok():
            _, _, future = heapq.heappop(slots.waiters)
            if not future.cancelled():
                future.set_result(self._take(slots))

    def _dispatch_global(self) -> None:
        # With a global cap, a freed slot goes to the best waiter on any endpoint that has room.
        while self._global_ok():
            best: _Slots | None = None
            for slots in self._endpoints.values():
                while slots.waiters and slots.waiters[0][2].cancelled():
                    heapq.heappop(slots.waiters)
                if (
                    slots.free
                    and slots.waiters
                    and (best is None or slots.waiters[0] < best.waiters[0])
                ):
                    best = slots
            if best is None:
                return
            _, _, future = heapq.heappop(best.waiters)
            future.set_result(self._take(best))

    def __repr__(self) -> str:
        parts = [
            f"{a}: {s.capacity - len(s.free)}/{s.capacity} busy, {len(s.waiters)} waiting"
            for a, s in self._endpoints.items()
        ]
        cap = "" if self._global_free is None else f", global free {self._global_free}"
        return f"SlotPool({'; '.join(parts)}{cap})"
