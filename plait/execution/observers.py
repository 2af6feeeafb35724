"""Run observers: the one explicit hook through which a process watches every run.

``on_event`` callbacks belong to one run or one `ExecutionSettings` block; an
observer sees every run (and batch) in the process, for as long as it stays
registered. It is a factory: when a run begins it is called with the run's
`RunClock` and returns the callback that receives that run's events (or None
to sit the run out). Nothing registers at import time: a user or an extra
(`plait.otel.instrument`) calls `add_run_observer` and keeps the handle.

    handle = add_run_observer(lambda clock: print)
    ...
    handle.remove()
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from plait.errors import ConfigError
from plait.execution.events import Event

EventCallback = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class RunClock:
    """Maps a run's event times (seconds since it started) to the wall clock.

    ``wall_ns`` is `time.time_ns` at event time 0.0; event times themselves come
    from the monotonic loop clock, so durations stay exact if the wall clock jumps.
    """

    wall_ns: int

    def to_wall_ns(self, t: float) -> int:
        """Event time ``t`` as nanoseconds since the Unix epoch."""
        return self.wall_ns + round(t * 1e9)


RunObserver = Callable[[RunClock], EventCallback | None]

_observers: dict[int, RunObserver] = {}
_handles = itertools.count()


class ObserverHandle:
    """What `add_run_observer` returns; `remove` unregisters the observer (idempotent)."""

    __slots__ = ("_key",)

    def __init__(self, key: int) -> None:
        self._key = key

    def remove(self) -> None:
        _observers.pop(self._key, None)

    @property
    def active(self) -> bool:
        return self._key in _observers

    def __repr__(self) -> str:
        return f"ObserverHandle({'active' if self.active else 'removed'})"


def add_run_observer(observer: RunObserver) -> ObserverHandle:
    """Call ``observer(clock)`` at the start of every run from now on; see the module docstring.

    Runs already under way are not affected. An exception raised by the
    returned callback is turned into a warning, as for ``on_event``.
    """
    if not callable(observer):
        raise ConfigError(
            f"add_run_observer expects a callable taking a RunClock; got {observer!r:.80}"
        )
    key = next(_handles)
    _observers[key] = observer
    return ObserverHandle(key)


def open_observers(clock: RunClock) -> tuple[EventCallback, ...]:
    """The event callbacks the registered observers return for a run starting at ``clock``."""
    if not _observers:
        return ()
    callbacks = (observer(clock) for observer in tuple(_observers.values()))
    return tuple(callback for callback in callbacks if callback is not None)


__all__ = ["ObserverHandle", "RunClock", "add_run_observer"]
