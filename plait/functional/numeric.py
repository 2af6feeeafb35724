"""Numeric ops: arithmetic on two operands, aggregates over one list.

Operands are INT, FLOAT or numeric TEXT (``"3"`` is 3, ``"2.5"`` is 2.5, as
models often answer numbers as text); booleans and anything else are ERRORs.
A result is INT when every operand is INT (after reading text), else FLOAT;
`div` and `mean` always give FLOAT. Placeholders of these ops are FLOAT while
tracing, which is all ``+``/``*`` on them need.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Sequence

from plait.functional._core import describe, functional
from plait.functional.coercion import as_number
from plait.ops import Op
from plait.values import Value, ValueKind, valueify

Number = int | float


def _typed(result: Number, operands: Sequence[Number]) -> Number:
    """``result`` as FLOAT unless every operand is an int (int arithmetic stays exact)."""
    return result if all(isinstance(x, int) for x in operands) else float(result)


def _divide(left: Number, right: Number) -> float:
    if right == 0:
        raise ZeroDivisionError(
            f"div: division by zero ({left!r} / {right!r}); check the divisor first, or "
            "replace the ERROR with F.unwrap_or(F.div(a, b), default)"
        )
    return left / right


def _binary(name: str, apply: Callable[[Number, Number], Number], summary: str) -> Op:
    def body(left: Value, right: Value) -> Number:
        operands = (
            as_number(left, name, "the left operand"),
            as_number(right, name, "the right operand"),
        )
        return _typed(apply(*operands), operands)

    body.__name__ = body.__qualname__ = name
    body.__doc__ = summary
    return functional(kind=ValueKind.FLOAT)(body)


add = _binary("add", operator.add, "``left + right``.")
sub = _binary("sub", operator.sub, "``left - right``.")
mul = _binary("mul", operator.mul, "``left * right``.")
div = _binary("div", _divide, "``left / right`` as FLOAT; dividing by zero is an ERROR.")


def _numbers(values: Value, op: str) -> list[Number]:
    items = values.payload
    if not isinstance(items, list | tuple):
        raise TypeError(
            f"{op}: takes one list of numbers, as in F.{op}([a, b, c]); got {describe(values)}"
        )
    return [as_number(valueify(v), op, f"item {i}") for i, v in enumerate(items)]


def _aggregate(
    name: str, apply: Callable[[list[Number]], Number], summary: str, *, allow_empty: bool = False
) -> Op:
    def body(values: Value) -> Number:
        numbers = _numbers(values, name)
        if not numbers and not allow_empty:
            raise ValueError(
                f"{name}: the list is empty, and {name} needs at least one number; "
                "check the list first, or replace the ERROR with F.unwrap_or"
            )
        return _typed(apply(numbers), numbers)

    body.__name__ = body.__qualname__ = name
    body.__doc__ = summary
    return functional(kind=ValueKind.FLOAT)(body)


def _total(numbers: list[Number]) -> Number:
    # fsum keeps float totals exact to the last bit; ints are summed exactly as ints.
    if all(isinstance(x, int) for x in numbers):
        return builtins.sum(numbers)
    return math.fsum(numbers)


def _mean(numbers: list[Number]) -> float:
    return math.fsum(numbers) / len(numbers)


sum = _aggregate(
    "sum", _total, "The total of one list of numbers; ``sum([])`` is INT 0.", allow_empty=True
)
min = _aggregate("min", builtins.min, "The smallest of one non-empty list of numbers.")
max = _aggregate("max", builtins.max, "The largest of one non-empty list of numbers.")
mean = _aggregate("mean", _mean, "The average of one non-empty list of numbers, as FLOAT.")
