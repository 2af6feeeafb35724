"""Stateless, graph-aware ops over `Value`s; import as ``import plait.functional as F``.

Every op accepts plain Python values as well as Values and returns a Value.
Ops never raise for bad data: they return an ERROR value whose ``meta``
names the op (``"op"``) and the refs of its inputs (``"sources"``). An ERROR
input short-circuits an op: the first error in argument order wins and the
others are listed in ``meta["causes"]`` (`is_error`, `unwrap_or` and
`map_values` look at errors instead). While a graph is traced, an op called
on a runtime value records one node; called on static values only, it runs
at once.

Families: text (`render`, `format`, `concat`, `strip`, `lower`, `upper`),
structured (`parse_structured`, `select`, `merge`), numeric (`add`, `sub`,
`mul`, `div`, `sum`, `min`, `max`, `mean`), response (`extract_text`,
`extract_meta`), control (`with_meta`, `unwrap_or`, `is_error`,
`map_values`, `zip_values`, `stack_structured`), `coerce`, and the atomic
transport op `chat_complete` (one model call; a RESPONSE value).

>>> import plait.functional as F
>>> F.add("3", 4).payload
7
"""

from plait.functional.coercion import coerce
from plait.functional.control import (
    is_error,
    map_values,
    stack_structured,
    unwrap_or,
    with_meta,
    zip_values,
)
from plait.functional.numeric import add, div, max, mean, min, mul, sub, sum
from plait.functional.response import extract_meta, extract_text
from plait.functional.structured import merge, parse_structured, select
from plait.functional.text import concat, format, lower, render, strip, upper
from plait.functional.transport import chat_complete

__all__ = [
    "add",
    "chat_complete",
    "coerce",
    "concat",
    "div",
    "extract_meta",
    "extract_text",
    "format",
    "is_error",
    "lower",
    "map_values",
    "max",
    "mean",
    "merge",
    "min",
    "mul",
    "parse_structured",
    "render",
    "select",
    "stack_structured",
    "strip",
    "sub",
    "sum",
    "unwrap_or",
    "upper",
    "with_meta",
    "zip_values",
]
