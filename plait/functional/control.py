"""Control ops: metadata, error handling as data, and working over lists of values."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from plait._context import active_tracer
from plait.functional._core import describe, functional, propagate
from plait.module import Module
from plait.ops import Op
from plait.values import Value, ValueKind, error_value, errors_in, unwrap, valueify


@functional(options=("meta",))
def with_meta(value: Value, **meta: Any) -> Value:
    """``value`` with ``meta`` added to its metadata (new keys win)."""
    return replace(value, meta={**value.meta, **meta})


@functional(short_circuit=False)
def unwrap_or(value: Value, default: Any) -> Value:
    """``value``, or ``default`` when ``value`` is or contains an ERROR.

    >>> unwrap_or(ValueError("no reply"), "n/a").payload
    'n/a'
    """
    return default if errors_in(value) else value


@functional(kind=ValueKind.OTHER, short_circuit=False)
def is_error(value: Value) -> bool:
    """Whether ``value`` is or contains an ERROR, as an OTHER value holding a bool."""
    return bool(errors_in(value))


def _items(values: Value, op: str) -> list[Any]:
    if not isinstance(values.payload, list | tuple):
        raise TypeError(
            f"{op}: takes a list of values, as in F.{op}([a, b]); got {describe(values)}"
        )
    return [valueify(item) for item in values.payload]


@functional(kind=ValueKind.STRUCTURED, options=("fn",), short_circuit=False)
def map_values(fn: Callable[[Any], Any], values: Value) -> Value:
    """A list with ``fn(payload)`` for each element of ``values``.

    ``fn`` is a plain (sync) function of one payload. An element that is an
    ERROR, or for which ``fn`` raises, becomes an ERROR element (with
    ``meta["index"]``) instead of failing the whole list; check them with
    `is_error` or replace them with `unwrap_or`.
    """
    if values.is_error:
        return propagate([values], op="map_values", inputs=[values])
    if isinstance(fn, Module | Op):
        # A model call per element: inside a run each call is scheduled at once and the
        # node finishes when all have (a failed call fails the node; nothing is hidden).
        if active_tracer() is None:
            raise TypeError(
                f"map_values: {fn!r:.60} is a module or op, which only runs inside a plait run"
            )
        return Value(
            ValueKind.STRUCTURED, [fn(unwrap(item)) for item in _items(values, "map_values")]
        )
    if not callable(fn) or inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"map_values: fn must be a plain function of one payload; got {fn!r:.60}. "
            "Async work on each element belongs in an @plait.op or a Module"
        )
    out = []
    for i, item in enumerate(_items(values, "map_values")):
        errors = errors_in(item)
        if errors:
            out.append(propagate(errors, op="map_values", inputs=[item], index=i))
            continue
        try:
            out.append(valueify(fn(unwrap(item))))
        except Exception as exc:
            out.append(error_value(exc, op="map_values", inputs=[item], index=i))
    return Value(ValueKind.STRUCTURED, out)


map_values.calls_out = True  # its fn may be a module: it runs with the run's recorder active


@functional(kind=ValueKind.STRUCTURED)
def zip_values(*lists: Value) -> Value:
    """Pair up equal-length lists: ``zip_values([a, b], [c, d])`` holds ``[[a, c], [b, d]]``."""
    columns = [_items(values, "zip_values") for values in lists]
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        shown = ", ".join(str(len(column)) for column in columns)
        raise ValueError(
            f"zip_values: the lists have different lengths ({shown}); zip_values pairs "
            "every element, so trim or pad them first"
        )
    return Value(ValueKind.STRUCTURED, [list(row) for row in zip(*columns, strict=True)])


@functional(kind=ValueKind.STRUCTURED)
def stack_structured(values: Value) -> Value:
    """One STRUCTURED list of ``values`` (a list of values): one node waiting on all of them."""
    return Value(ValueKind.STRUCTURED, _items(values, "stack_structured"))
