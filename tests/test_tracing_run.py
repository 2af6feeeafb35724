"""Traced graphs run by the real runtime return what eager forward returns (no endpoints needed).

The other tracing tests run graphs with the plain-Python reference in
``_tracing_support``; these check the same shapes through `plait.run`.
"""

from __future__ import annotations

import pytest
import test_tracing_ops as ops
from _tracing_support import Compose
from test_tracing_strings import CASES

from plait import run, unwrap


@pytest.mark.parametrize("name", sorted(CASES))
async def test_string_composition_through_run_matches_eager(name):
    module = Compose(CASES[name])
    args = ('it\'s "q"\n', "é ü")

    assert await run(module, *args) == module(*args)


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        (ops.Structured(), ("x",), {"chain": 1, "index": 10, "get": "fallback", "present": "n"}),
        (ops.Arithmetic(), ("a b c d",), [5, 5, 2, 6, 12, 8, 1.0, 2.0, 8]),
        (ops.Counts(), ("one two",), (2, "<ONE TWO>!", 6)),
    ],
    ids=["structured", "arithmetic", "sync_and_async_ops"],
)
async def test_ops_and_structured_access_through_run_give_the_reference_result(
    module, args, expected
):
    assert await run(module, *args) == expected


async def test_mixed_literal_and_traced_output_through_run_matches_eager():
    module = Compose(lambda a, b: {"n": 1, "pair": (a, f"<{b}>"), "list": [a + b, "lit"]})

    assert await run(module, "x", "y") == unwrap(module("x", "y"))
