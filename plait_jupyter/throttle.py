"""`Throttle`: coalesce many changes into at most one flush per interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Throttle:
    """Calls ``flush`` at most once per ``interval`` seconds; nothing is lost.

    `poke` says something changed: it flushes at once if the last flush is
    ``interval`` old, else schedules one for the end of the window on the running
    event loop (without a loop, the change waits for the next poke or `finish`).
    `finish` flushes now and cancels the pending one, so the final state is
    always delivered. ``clock`` is injectable so tests need no sleeps.
    """

    def __init__(
        self,
        flush: Callable[[], None],
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flush = flush
        self.interval = interval
        self.clock = clock
        self.flushes = 0
        self._last = -float("inf")
        self._timer: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        if self._timer is not None:
            return  # a flush is already scheduled; it will carry this change too
        wait = self._last + self.interval - self.clock()
        if wait <= 0:
            self._fire()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(wait, self._fire)

    def finish(self) -> None:
        self._fire()

    def _fire(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = self.clock()
        self.flushes += 1
        self.flush()

    def __repr__(self) -> str:
        pending = ", flush scheduled" if self._timer is not None else ""
        return f"Throttle(interval={self.interval}, flushes={self.flushes}{pending})"
