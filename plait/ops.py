"""`Op` and `@plait.op`: functions that run when the graph runs, one node per call.

Called while a graph is being traced, an op records a node and returns a
placeholder; called outside a trace it simply runs. Functional ops
(``plait.functional``) are ops over `Value`s that also fold at trace time when
every input is static; user ops (``@plait.op``) receive plain payloads and
always become nodes, since they usually touch the outside world.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, overload

from plait._checks import Checks
from plait._context import active_tracer
from plait._tree import tree_leaves
from plait.errors import ConfigError
from plait.markers import has_marker
from plait.parameter import Parameter
from plait.values import ValueKind


def is_runtime(leaf: Any) -> bool:
    """Whether ``leaf`` only has a value when the graph runs.

    Placeholders, parameters and strings built from them do (a placeholder's
    own text is a marker).
    """
    if isinstance(leaf, str):
        return has_marker(leaf)
    return isinstance(leaf, Parameter)


def has_runtime_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return any(is_runtime(leaf) for leaf in tree_leaves((args, kwargs)))


_NOT_WORD = re.compile(r"\W+")


class Op:
    """A function executed at run time as one graph node.

    ``takes_values``: the function receives `Value`s (functional ops) rather
    than plain payloads (user ops). ``fold``: with only static inputs, run it
    at trace time instead of recording a node. ``kind``: the `ValueKind` of
    the result when known in advance (used by operators on placeholders).
    ``side_effects``: keep the node even when no output depends on it.
    ``label``: the parameter whose static value names the node (``select_verdict``
    rather than ``select_4``).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        takes_values: bool = False,
        fold: bool = False,
        kind: ValueKind | None = None,
        side_effects: bool = False,
        label: str | None = None,
    ) -> None:
        self.fn = fn
        self.label = label
        self.name = name or fn.__name__
        self.takes_values = takes_values
        self.fold = fold
        self.kind = kind
        self.side_effects = side_effects
        self.is_async = inspect.iscoroutinefunction(fn)
        # Whether a functional op may call modules (map_values): it then runs like user code.
        self.calls_out = False
        functools.update_wrapper(self, fn)

    def node_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The name of the node a call records: the op's name, plus its label argument if static."""
        if self.label is None:
            return self.name
        try:
            value = (
                inspect.signature(self.fn).bind_partial(*args, **kwargs).arguments.get(self.label)
            )
        except TypeError:
            return self.name
        if isinstance(value, list | tuple):
            value = ".".join(map(str, value))
        if not isinstance(value, str | int) or isinstance(value, bool):
            return self.name
        words = _NOT_WORD.sub("_", str(value)).strip("_")[:32]
        return f"{self.name}_{words}" if words else self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = active_tracer()
        if tracer is not None and not (self.fold and not has_runtime_input(args, kwargs)):
            return tracer.call_op(self, args, kwargs)
        return self.fn(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        # Used as a method: bind like a function so `self` is the first argument.
        return self if instance is None else functools.partial(self, instance)

    def __repr__(self) -> str:
        return f"<plait op {self.name}>"


@overload
def op(fn: Callable[..., Any], /) -> Op: ...
@overload
def op(
    *, name: str | None = None, side_effects: bool = False
) -> Callable[[Callable[..., Any]], Op]: ...


def op(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, side_effects: bool = False
) -> Op | Callable[[Callable[..., Any]], Op]:
    """Make a plain (sync or async) function on runtime values one graph node.

    The function receives plain payloads (text, dicts, numbers) when the graph
    runs; its return value becomes the node's output.

    >>> @op
    ... def word_count(text: str) -> int:
    ...     return len(text.split())
    >>> word_count("three little words")
    3
    """

    checks = Checks("plait.op")
    checks.text("name", name, optional=True)
    checks.flag("side_effects", side_effects)
    if fn is not None:
        checks.function("fn", fn, optional=False)
    checks.raise_any()

    def wrap(f: Callable[..., Any]) -> Op:
        if not callable(f):
            raise ConfigError(f"@plait.op decorates a function; got {f!r:.60}")
        return Op(f, name=name, side_effects=side_effects)

    return wrap(fn) if fn is not None else wrap
