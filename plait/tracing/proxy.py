"""`TracedValue`: the placeholder a traced call returns in place of its future output.

It is a `Value` (``ref`` names the producing node, ``payload`` is unknown) and
also a ``str`` whose text is a marker, so f-strings, ``format``, ``%``, ``+``,
``*`` and ``join`` compose it into strings that keep the dependency; ``str()``,
``repr()`` and ``ascii()`` give placeholders that render that conversion at run
time. Structured access (``v["key"]``, ``v[0]``, ``v.get(...)``) and arithmetic
on numbers record nodes (the `plait.functional` ops in `OPERATORS`).
Anything that needs the runtime content now (``bool``, ``len``, iteration,
comparisons, hashing, ``int()``, str methods, attributes) raises a `TraceError`
saying where, and how to move that work to run time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from plait.errors import TraceError
from plait.functional.numeric import add, div, mul, sub
from plait.functional.structured import select
from plait.markers import OPEN, has_marker, marker
from plait.ops import Op
from plait.values import Value, ValueKind

# Operators on placeholders: name -> the op recording a node.
OPERATORS: dict[str, Callable[..., Any]] = {
    "select": select,
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
}

_TEXT = (ValueKind.TEXT, ValueKind.FSTRING)
_NUMERIC = (ValueKind.INT, ValueKind.FLOAT)
_NUMBER_FIX = (
    "Add numbers with F.add(v, x) (it also reads numeric text such as a model's '3'), "
    "or build text with an f-string."
)


def trace_error(value: TracedValue, action: str, fix: str) -> TraceError:
    """A `TraceError` for ``action`` on ``value``, naming the module, the line and the fix."""
    if getattr(value._tracer, "dynamic", False):
        return TraceError(
            f"{action} needs the value of {value.ref!r}{value._tracer.where()}, which is still "
            "a placeholder: inside an async forward a call returns at once and its reply "
            "arrives later. Fix: `await` the call first (`label = await self.classify(q)` "
            "gives the plain reply), then use ordinary Python on the result."
        )
    return TraceError(
        f"{action} needs the runtime value of {value.ref!r}{value._tracer.where()}, but "
        "tracing builds the graph before anything runs, so that value does not exist yet. "
        f"Fix: {fix} Work on runtime values belongs in a functional op (plait.functional), "
        "an @plait.op function, or a Module. If the control flow itself depends on a model's "
        "reply (a router, a loop, an agent), make forward `async def` and `await` the call: "
        "plait then records the graph while it runs (define-by-run)."
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class TracedValue(str, Value):
    """Placeholder for the output of node ``ref`` while a graph is traced.

    ``conversion`` ("s", "r" or "a") marks the result of ``str()``/``repr()``
    of a placeholder: the node's output, converted when the graph runs.
    """

    ref: str  # always set: the node this placeholder stands for
    conversion: str = ""  # set on an instance only by str()/repr()/ascii() of a placeholder
    # A placeholder has no metadata (its reply's comes with the `Value` at run time): one
    # read-only empty mapping for all, since a run makes a placeholder per call.
    meta: Mapping[str, Any] = MappingProxyType({})  # type: ignore[assignment]

    def __new__(
        cls, tracer: Any, ref: str, kind: ValueKind = ValueKind.OTHER, conversion: str = ""
    ) -> TracedValue:
        obj = str.__new__(cls, marker(ref, tracer.id, conversion=conversion))
        # Value is frozen: fill the instance dict directly.
        fields = obj.__dict__
        fields["kind"], fields["ref"], fields["_tracer"] = kind, ref, tracer
        if conversion:
            fields["conversion"] = conversion
        return obj

    @classmethod
    def of_node(cls, tracer: Any, ref: str, kind: ValueKind) -> TracedValue:
        """``TracedValue(tracer, ref, kind)`` without conversion, made faster (one per call made).

        ``tracer.marker_tail`` is ``marker_tail(tracer.id)``, worked out once per tracer.
        """
        obj = str.__new__(cls, OPEN + ref + tracer.marker_tail)  # = marker(ref, tracer.id)
        fields = obj.__dict__
        fields["kind"], fields["ref"], fields["_tracer"] = kind, ref, tracer
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Fields are set in ``__new__``."""

    @property
    def payload(self) -> Any:
        """Refused: reading it at trace time would silently see nothing."""
        raise trace_error(self, "reading `v.payload`", "Use the payload in an @plait.op function.")

    def __await__(self) -> Any:
        """Inside an async ``forward`` of a run: wait for the node and give its payload."""
        return self._tracer.awaiting(self)

    def _textual(self) -> bool:
        return bool(self.conversion) or self.kind in _TEXT

    def _numeric(self) -> bool:
        return not self.conversion and self.kind in _NUMERIC

    def _converted(self, conversion: str) -> TracedValue:
        return TracedValue(self._tracer, self.ref, ValueKind.TEXT, conversion)

    def __str__(self) -> str:
        if self.conversion or self.kind is ValueKind.TEXT:
            return self
        return self._converted("s")

    def __repr__(self) -> str:
        return self._converted("r")

    def __format__(self, spec: str) -> str:
        if not spec:
            return self.__str__()
        if has_marker(spec):
            raise trace_error(
                self, "a format spec built from a traced value", "Use a static format spec."
            )
        return marker(self.ref, self._tracer.id, spec, self.conversion)

    def __rmod__(self, template: Any) -> Any:
        if not isinstance(template, str):
            raise trace_error(self, "`x % v`", "Compute remainders in an @plait.op function.")
        return str.__mod__(template, self)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            raise trace_error(self, "slicing `v[a:b]`", "Slice in an @plait.op function.")
        return select(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        """Structured access with a default, recorded as a node."""
        return select(self, key, default=default)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise trace_error(
            self,
            f"attribute access `v.{name}`",
            f"Read fields with v[{name!r}] or F.select(v, {name!r}), which record a node.",
        )

    def __bool__(self) -> bool:
        raise trace_error(
            self,
            "`if v:` / `bool(v)`",
            "Python control flow cannot depend on a model's output inside forward(); decide "
            "at run time instead (F.unwrap_or, F.is_error, or an @plait.op that contains the "
            "branch).",
        )

    def __len__(self) -> int:
        raise trace_error(self, "`len(v)`", "Count at run time in an @plait.op function.")

    def __iter__(self) -> Any:
        raise trace_error(
            self,
            "iterating it (a for loop, unpacking, list(v))",
            "Its length is unknown until it runs: index it (v[0], v['key']) for fixed "
            "positions, or process the whole collection in an @plait.op or F.map_values.",
        )

    def __contains__(self, item: Any) -> bool:
        raise trace_error(self, "`x in v`", "Test membership in an @plait.op function.")

    def __hash__(self) -> int:
        if getattr(self._tracer, "dynamic", False):
            # A recorded call's placeholder stands for one call: hashable by that identity,
            # so asyncio.gather (which keys its arguments) can await several at once.
            return str.__hash__(self)
        raise trace_error(
            self, "hashing it (a dict key or set member)", "Key dicts and sets on static values."
        )


def _operand(x: Any) -> str:
    if isinstance(x, TracedValue):
        return "text" if x._textual() else "number" if x._numeric() else "unknown"
    if isinstance(x, str):
        return "text"
    return "number" if _is_number(x) else "other"


def _binary(name: str, traced: TracedValue, left: Any, right: Any) -> Any:
    """``left <name> right`` with a placeholder on one side: text, a node, or a TraceError.

    Text composes into markers (``+`` of strings, ``*`` by a literal int).
    Numbers use the functional op (F.add...). An operand whose kind is only
    known at run time (an @plait.op's or a select's output), or text repeated
    a traced number of times, gets a node applying Python's own operator, so
    it behaves exactly as eager code would.
    """
    kinds = {_operand(left), _operand(right)}
    if "other" in kinds:
        return NotImplemented
    if "unknown" in kinds:
        return _PYTHON_OPS[name](left, right)
    if kinds == {"number"}:
        return OPERATORS[name](left, right)
    if name == "add" and kinds == {"text"}:
        return str.__add__(left, right)
    if name == "mul" and kinds == {"text", "number"}:
        text, count = (left, right) if _operand(left) == "text" else (right, left)
        if isinstance(count, TracedValue):
            return _PYTHON_OPS[name](left, right)
        if isinstance(count, int):
            return str.__mul__(text, count)
    raise trace_error(traced, f"`{_SYMBOLS[name]}` between text and a number", _NUMBER_FIX)


_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_PYTHON_OPS = {
    name: Op(fn, name=name)
    for name, fn in (
        ("add", operator.add),
        ("sub", operator.sub),
        ("mul", operator.mul),
        ("div", operator.truediv),
    )
}
for _op_name, _dunder in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("div", "truediv")):
    setattr(
        TracedValue,
        f"__{_dunder}__",
        lambda self, other, _n=_op_name: _binary(_n, self, self, other),
    )
    setattr(
        TracedValue,
        f"__r{_dunder}__",
        lambda self, other, _n=_op_name: _binary(_n, self, other, self),
    )


def _refuse(name: str, action: str, fix: str) -> Callable[..., Any]:
    def refuse(self: TracedValue, *args: Any, **kwargs: Any) -> Any:
        raise trace_error(self, action, fix)

    refuse.__name__ = name
    return refuse


_COMPARE_FIX = (
    "A comparison would pick a branch from a value that does not exist yet; compare in an "
    "@plait.op function."
)
for _name, _sym in (
    ("__eq__", "=="),
    ("__ne__", "!="),
    ("__lt__", "<"),
    ("__le__", "<="),
    ("__gt__", ">"),
    ("__ge__", ">="),
):
    setattr(TracedValue, _name, _refuse(_name, f"comparing it (`v {_sym} ...`)", _COMPARE_FIX))

_CONVERT_FIX = (
    "Convert at run time with F.coerce; to format a number into text use an f-string "
    "(f'{v:d}', f'{v:.2f}'), not %-formatting."
)
for _name, _what in (
    ("__int__", "`int(v)` (or %d / %x formatting)"),
    ("__float__", "`float(v)` (or %f formatting)"),
    ("__complex__", "`complex(v)`"),
    ("__index__", "using it as an index"),
    ("__round__", "`round(v)`"),
):
    setattr(TracedValue, _name, _refuse(_name, _what, _CONVERT_FIX))

for _name, _what in (
    ("__mod__", "`v % ...`"),
    ("__reversed__", "`reversed(v)`"),
    ("__neg__", "`-v`"),
    ("__abs__", "`abs(v)`"),
):
    setattr(TracedValue, _name, _refuse(_name, _what, "Do it in an @plait.op function."))

_F_EQUIVALENT = {
    "upper": "F.upper(v)",
    "lower": "F.lower(v)",
    "strip": "F.strip(v)",
    "format": "F.render(v, {...})",
}
# join only reads the separator's text, which is the marker: it composes like `+`.
for _name in dir(str):
    if _name.startswith("_") or _name == "join" or _name in TracedValue.__dict__:
        continue
    _hint = _F_EQUIVALENT.get(_name)
    _fix = f"Use {_hint} instead." if _hint else "Call it inside an @plait.op function."
    setattr(TracedValue, _name, _refuse(_name, f"`v.{_name}(...)`", _fix))
