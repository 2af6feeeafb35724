"""`Value`: a payload plus the id of the node that produced it.

Values are how data moves through a pipeline. ``ref`` records provenance
(the producing node's id, or ``param:<name>`` for a parameter), so tracing and
backward propagation find dependencies even inside nested structures.
Failures travel as data: a ``Value`` of kind ``ERROR`` whose payload is the
exception, with ``meta`` saying which op made it and from which inputs.

>>> v = valueify({"score": 3, "tags": ["a"]})
>>> v.kind, unwrap(v)
(<ValueKind.STRUCTURED: 'structured'>, {'score': 3, 'tags': ['a']})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from plait._tree import tree_leaves, tree_map
from plait._upcalls import notebook_html


class ValueKind(StrEnum):
    """What a `Value`'s payload is."""

    TEXT = "text"
    FSTRING = "fstring"
    RESPONSE = "response"
    STRUCTURED = "structured"
    INT = "int"
    FLOAT = "float"
    ERROR = "error"
    TOOL_RESULT = "tool_result"
    BINARY = "binary"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ValueRef:
    """Placeholder for "the output of node ``ref``" inside a graph node's arguments."""

    ref: str


@dataclass(frozen=True, slots=True)
class FormatField:
    """One ``{...}`` of an FSTRING template: the value ``ref``, with its format spec and conversion."""

    ref: str
    spec: str = ""
    conversion: str = ""  # "", "r", "s" or "a", as in f"{x!r}"


@dataclass(frozen=True)
class Value:
    """A payload with its kind, provenance (``ref``) and metadata.

    ``kind`` is a `ValueKind`; ``ref`` the id of the producing node (None for
    literals); ``meta`` free-form details (token usage, the op that failed...).
    An FSTRING's payload is a tuple of literal strings and `FormatField`s.
    Values are immutable; derive new ones with `dataclasses.replace`.
    """

    kind: ValueKind
    payload: Any = None
    ref: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.kind is ValueKind.ERROR

    def __repr__(self) -> str:
        text = repr(self.payload)
        if len(text) > 80:
            text = text[:77] + "..."
        ref = f", ref={self.ref!r}" if self.ref is not None else ""
        return f"Value({self.kind.name}, {text}{ref})"

    def _repr_html_(self) -> str | None:
        return notebook_html(self)


_KINDS: dict[type, ValueKind] = {
    str: ValueKind.TEXT,
    bool: ValueKind.OTHER,
    int: ValueKind.INT,
    float: ValueKind.FLOAT,
    bytes: ValueKind.BINARY,
    bytearray: ValueKind.BINARY,
    dict: ValueKind.STRUCTURED,
    list: ValueKind.STRUCTURED,
    tuple: ValueKind.STRUCTURED,
}


def kind_of(x: Any) -> ValueKind:
    """The `ValueKind` that `valueify` gives a plain Python object."""
    kind = _KINDS.get(type(x))
    if kind is not None:
        return kind
    if isinstance(x, BaseException):
        return ValueKind.ERROR
    for base, k in _KINDS.items():
        if isinstance(x, base) and base is not bool:
            return k
    return ValueKind.OTHER


def _leaf_value(x: Any) -> Any:
    return x if isinstance(x, Value) else valueify(x)


def valueify(x: Any, ref: str | None = None) -> Value:
    """Wrap ``x`` in a `Value`, inferring its kind; Values pass through unchanged.

    Containers become STRUCTURED values whose leaves are Values, so each leaf
    keeps its own provenance. Objects with a ``__value__()`` method (such as
    `Parameter`) decide their own lifting.
    """
    if isinstance(x, Value):
        return x
    lift = getattr(type(x), "__value__", None)
    if lift is not None:
        return lift(x)
    kind = kind_of(x)
    if kind is ValueKind.STRUCTURED:
        return Value(kind, tree_map(_leaf_value, x), ref)
    return Value(kind, x, ref)


def _unwrap_leaf(x: Any) -> Any:
    if isinstance(x, Value):
        return unwrap(x.payload)
    return x


def unwrap(x: Any) -> Any:
    """Strip every `Value` in ``x`` (however deeply nested) down to its payload."""
    return tree_map(_unwrap_leaf, x)


def iter_values(x: Any) -> Iterator[Value]:
    """Yield every `Value` in ``x``, including those nested in STRUCTURED payloads."""
    for leaf in tree_leaves(x):
        if isinstance(leaf, Value):
            yield leaf
            if leaf.kind is ValueKind.STRUCTURED or leaf.kind is ValueKind.FSTRING:
                yield from iter_values(leaf.payload)


def collect_refs(*trees: Any) -> list[str]:
    """Every distinct ref in ``trees`` (Values, `ValueRef`s, `FormatField`s), in first-seen order."""
    seen: dict[str, None] = {}
    for leaf in tree_leaves(trees):
        _refs_of(leaf, seen)
    return list(seen)


def _refs_of(leaf: Any, seen: dict[str, None]) -> None:
    if isinstance(leaf, Value):
        if leaf.ref is not None:
            seen.setdefault(leaf.ref)
        if leaf.kind is ValueKind.STRUCTURED or leaf.kind is ValueKind.FSTRING:
            for inner in tree_leaves(leaf.payload):
                _refs_of(inner, seen)
    elif isinstance(leaf, (ValueRef, FormatField)):  # a tuple: no union built per call
        seen.setdefault(leaf.ref)


def errors_in(*trees: Any) -> list[Value]:
    """Every ERROR value in ``trees``, in argument order."""
    return [v for v in iter_values(trees) if v.kind is ValueKind.ERROR]


def first_error(*trees: Any) -> Value | None:
    """The first ERROR value in argument order, or None."""
    return next((v for v in iter_values(trees) if v.kind is ValueKind.ERROR), None)


def error_value(
    error: BaseException | str, *, op: str | None = None, inputs: Any = (), **meta: Any
) -> Value:
    """An ERROR `Value` for ``error``, naming the op and the refs of the inputs it came from."""
    exc = error if isinstance(error, BaseException) else ValueError(error)
    info: dict[str, Any] = {"op": op} if op else {}
    refs = collect_refs(inputs)
    if refs:
        info["sources"] = refs
    info.update(meta)
    return Value(ValueKind.ERROR, exc, None, info)


def render_fstring(value: Value, resolve: Callable[[str], Any]) -> str:
    """Render an FSTRING value, looking up each field's payload with ``resolve(ref)``."""
    out: list[str] = []
    for part in value.payload:
        if isinstance(part, str):
            out.append(part)
            continue
        payload = unwrap(resolve(part.ref))
        if part.conversion == "r":
            payload = repr(payload)
        elif part.conversion == "a":
            payload = ascii(payload)
        elif part.conversion == "s":
            payload = str(payload)
        out.append(format(payload, part.spec))
    return "".join(out)
