"""A virtual-time event loop for tests: timers fire at once and `loop.time()` jumps ahead.

    start_times = run_virtual(main())   # main() may sleep for hours; it returns instantly

The loop never sleeps for real. When nothing is ready it advances its clock
straight to the next timer; when nothing is ready and no timer is armed the
program could only hang, so it raises instead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose clock starts at 0 and moves only when the loop would wait."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_SkipAheadSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def _skip(self, seconds: float) -> None:
        self._virtual_now += seconds


class _SkipAheadSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: every task is waiting and no timer is armed")
        self._loop._skip(timeout)
        return []


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh `VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
