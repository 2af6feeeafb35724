"""A run's event log (`EventLog`: keeps each event and hands it to the callbacks and observers)
and the collector setting runs share (`gc_tuned`)."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable

from plait.execution import events as ev
from plait.execution.observers import RunClock, open_observers

_GC_GEN0 = 20_000  # young-generation threshold while runs are active (CPython's default is 700)


class gc_tuned:
    """Collect the young generation less often while any run is active; restore it after.

    A run allocates many short-lived objects (values, records, events); with the
    default threshold the collector runs every few hundred allocations and took
    about a quarter of the scheduler's CPU. Thresholds the user set higher are kept.
    Usable with ``with`` and ``async with``; nested and concurrent uses share one
    adjustment, undone when the last one ends.
    """

    users = 0
    saved: tuple[int, ...] = ()

    def __enter__(self) -> None:
        if gc_tuned.users == 0:
            gc_tuned.saved = gc.get_threshold()
            if gc_tuned.saved[0] < _GC_GEN0:
                gc.set_threshold(_GC_GEN0, *gc_tuned.saved[1:])
        gc_tuned.users += 1

    def __exit__(self, *exc_info: object) -> None:
        gc_tuned.users -= 1
        if gc_tuned.users == 0:
            gc.set_threshold(*gc_tuned.saved)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


class EventLog:
    """Collects a run's events and forwards each to the ``on_event`` callbacks and run observers."""

    def __init__(self, callbacks: tuple[Callable[[ev.Event], None], ...], start: float) -> None:
        self.events: list[ev.Event] = []
        self.start = start
        loop = asyncio.get_running_loop()
        # asyncio's own loops tell time with time.monotonic: call it directly, a frame less for
        # every event (a run makes several per call); any other loop keeps its own clock.
        default_clock = getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time
        self._loop_time = time.monotonic if default_clock else loop.time
        clock = RunClock(time.time_ns() - round((self._loop_time() - start) * 1e9))
        self.callbacks = callbacks + open_observers(clock)

    def now(self) -> float:
        return self._loop_time() - self.start

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)
        for callback in self.callbacks:
            try:
                callback(event)
            except Exception as exc:  # a broken display must not break the run
                _callback_failed(callback, exc)

    def emitter(self, kept: list[ev.Event]) -> Callable[[ev.Event], None]:
        """`emit` that also keeps each event in ``kept`` (a batch item's own events).

        One call per event, where ``kept.append`` then ``emit`` would be two:
        a run emits several events per call it makes.
        """
        keep, everything, callbacks = kept.append, self.events.append, self.callbacks

        def emit(event: ev.Event) -> None:
            keep(event)
            everything(event)
            for callback in callbacks:
                try:
                    callback(event)
                except Exception as exc:
                    _callback_failed(callback, exc)

        return emit


def _callback_failed(callback: Callable[[ev.Event], None], exc: Exception) -> None:
    warnings.warn(
        f"on_event callback {callback!r} raised {type(exc).__name__}: {exc}",
        RuntimeWarning,
        stacklevel=3,
    )
