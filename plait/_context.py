"""The active trace, if any: the one hook lower layers consult while a graph is being built.

`Parameter` (string composition), `Module.__call__` and ops ask
`active_tracer()`; when it answers, they hand their work to the tracer instead
of running it. The tracer itself lives in `plait.tracing`, above them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol


class TraceHooks(Protocol):
    """What the layers below tracing may ask of the active tracer."""

    def call_module(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Record (leaf) or step into (composite) a module call."""
        ...

    def call_op(self, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Record a call of an op on runtime values; returns its placeholder."""
        ...

    def param_marker(self, param: Any, spec: str, conversion: str) -> str:
        """A string standing for ``param``'s value (a `Parameter`), resolved when the graph runs."""
        ...


_ACTIVE: ContextVar[TraceHooks | None] = ContextVar("plait_active_tracer", default=None)


# The tracer building a graph in this context, or None: the context variable's own
# getter (a C call, no Python frame), since every module call asks.
active_tracer: Callable[[], TraceHooks | None] = _ACTIVE.get


def set_active_tracer(tracer: TraceHooks | None) -> Any:
    """Make ``tracer`` active; returns the token for `reset_active_tracer`."""
    return _ACTIVE.set(tracer)


def reset_active_tracer(token: Any) -> None:
    _ACTIVE.reset(token)
