"""`TracedValue`: the placeholder a traced call returns in place of its future output.

It is a `Value` (``ref`` names the producing node, ``payload`` is unknown) and
also a ``str`` whose text is a marker, so f-strings, ``format``, ``%``, ``+``
and ``"".join`` compose it into strings that keep the dependency. Structured
access (``v["key"]``, ``v[0]``, ``v.get(...)``) and arithmetic record nodes.
Anything that needs the runtime content now (``bool``, ``len``, iteration,
comparisons, hashing, ``int()``, str methods) raises a `TraceError` saying
where, and how to move that work to run time.
"""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Callable
from typing import Any

from plait.errors import TraceError
from plait.tracing.strings import marker
from plait.values import Value, ValueKind

_PLAIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Binary operators on placeholders, filled by plait.functional: name -> op recording a node.
OPERATORS: dict[str, Callable[..., Any]] = {}

_NUMERIC = (ValueKind.INT, ValueKind.FLOAT)


def user_frame() -> tuple[str, int, str] | None:
    """(file, line, source text) of the innermost caller outside plait's own package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PLAIT_DIR) and not filename.startswith("<frozen"):
            line = linecache.getline(filename, frame.f_lineno).strip()
            return filename, frame.f_lineno, line
        frame = frame.f_back
    return None


def _describe(value: TracedValue) -> str:
    path = value._tracer.current_path() if value._tracer is not None else ""
    where = user_frame()
    location = ""
    if where:
        location = f" at {os.path.basename(where[0])}:{where[1]}"
        if where[2]:
            location += f" (`{where[2]}`)"
    module = f" in {path!r}" if path else ""
    return f"{module}{location}"


def trace_error(value: TracedValue, action: str, fix: str) -> TraceError:
    """A `TraceError` for ``action`` on ``value``, naming the module, the line and the fix."""
    return TraceError(
        f"{action} needs the runtime value of {value.ref!r}{_describe(value)}, but tracing "
        "builds the graph before anything runs, so that value does not exist yet. "
        f"{fix} Work on runtime values belongs in a functional op (plait.functional), "
        "an @plait.op function, or a Module."
    )


_BRANCH_FIX = (
    "Python control flow cannot depend on a model's output inside forward(); "
    "decide at run time instead (e.g. F.unwrap_or, F.is_error, or an @plait.op that "
    "contains the branch)."
)


class TracedValue(str, Value):
    """Placeholder for the output of node ``ref`` while a graph is traced."""

    def __new__(cls, tracer: Any, ref: str, kind: ValueKind = ValueKind.OTHER) -> TracedValue:
        obj = str.__new__(cls, marker(ref))
        object.__setattr__(obj, "kind", kind)
        object.__setattr__(obj, "payload", None)
        object.__setattr__(obj, "ref", ref)
        object.__setattr__(obj, "meta", {})
        object.__setattr__(obj, "_tracer", tracer)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Fields are set in ``__new__``."""

    # -- composition into strings: markers ----------------------------------------

    def __str__(self) -> str:
        return marker(self.ref)

    def __repr__(self) -> str:
        return marker(self.ref, conversion="r")

    def __format__(self, spec: str) -> str:
        return marker(self.ref, spec)

    def __add__(self, other: Any) -> Any:
        if isinstance(other, str) or self.kind not in _NUMERIC:
            if not isinstance(other, str):
                raise trace_error(self, f"`+ {type(other).__name__}`", "Use F.add for numbers.")
            return marker(self.ref) + other
        return OPERATORS["add"](self, other)

    def __radd__(self, other: Any) -> Any:
        if isinstance(other, str):
            return other + marker(self.ref)
        return OPERATORS["add"](other, self)

    def __rmod__(self, template: Any) -> Any:
        return str.__mod__(template, marker(self.ref))

    # -- structured access: nodes -------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            raise trace_error(self, "slicing `v[a:b]`", "Slice in an @plait.op function.")
        return OPERATORS["select"](self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        """Structured access with a default, recorded as a node."""
        return OPERATORS["select"](self, key, default=default)

    # -- arithmetic: nodes ---------------------------------------------------------------

    def _arith(self, name: str, left: Any, right: Any) -> Any:
        return OPERATORS[name](left, right)

    def __sub__(self, other: Any) -> Any:
        return self._arith("sub", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._arith("sub", other, self)

    def __mul__(self, other: Any) -> Any:
        return self._arith("mul", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._arith("mul", other, self)

    def __truediv__(self, other: Any) -> Any:
        return self._arith("div", self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._arith("div", other, self)

    # -- everything that needs the content now: TraceError -----------------------------

    def __bool__(self) -> bool:
        raise trace_error(self, "`if v:` / `bool(v)`", _BRANCH_FIX)

    def __len__(self) -> int:
        raise trace_error(self, "`len(v)`", "Count at run time with an @plait.op function.")

    def __iter__(self) -> Any:
        raise trace_error(
            self,
            "iterating it (a for loop, unpacking, list(v))",
            "Its length is unknown until it runs; index it (v[0], v['key']) for fixed "
            "positions, or process the whole collection in an @plait.op / F.map_values.",
        )

    def __contains__(self, item: Any) -> bool:
        raise trace_error(self, "`x in v`", "Test membership in an @plait.op function.")

    def __hash__(self) -> int:
        raise trace_error(self, "hashing it (a dict key or set member)", "Key on static values.")


def _refuse(name: str, action: str, fix: str) -> Callable[..., Any]:
    def refuse(self: TracedValue, *args: Any, **kwargs: Any) -> Any:
        raise trace_error(self, action, fix)

    refuse.__name__ = name
    return refuse


_COMPARE_FIX = (
    "A comparison would pick a branch from a value that does not exist yet; compare in "
    "an @plait.op function."
)
for _name, _sym in (("__eq__", "=="), ("__ne__", "!="), ("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"), ("__ge__", ">=")):
    setattr(TracedValue, _name, _refuse(_name, f"comparing it (`v {_sym} ...`)", _COMPARE_FIX))

for _name, _what in (("__int__", "int(v)"), ("__float__", "float(v)"), ("__complex__", "complex(v)"), ("__index__", "using it as an index"), ("__round__", "round(v)")):
    setattr(TracedValue, _name, _refuse(_name, f"`{_what}`", "Convert at run time with F.coerce."))

for _name, _what in (("__mod__", "`v % ...`"), ("__reversed__", "reversed(v)")):
    setattr(TracedValue, _name, _refuse(_name, _what, "Do it in an @plait.op function."))

_F_EQUIVALENT = {"upper": "F.upper(v)", "lower": "F.lower(v)", "strip": "F.strip(v)", "format": "F.render(template, {...})"}
for _name in dir(str):
    if _name.startswith("_") or _name in TracedValue.__dict__:
        continue
    _hint = _F_EQUIVALENT.get(_name)
    _fix = f"Use {_hint} instead." if _hint else "Call it inside an @plait.op function."
    setattr(TracedValue, _name, _refuse(_name, f"`v.{_name}(...)`", _fix))
