"""Lossless conversions between kinds: the rules every op coerces its inputs with.

To TEXT: numbers and other scalars by ``str``, STRUCTURED as JSON, RESPONSE
by its text, BINARY decoded as UTF-8. To INT: integral FLOATs and numeric
TEXT (``"3"``, ``" 3.0 "``); ``3.5`` is refused rather than rounded. To
FLOAT: INT and numeric TEXT. To STRUCTURED: JSON text holding an object or an
array. Booleans are not numbers here (``True + 1`` is far more often a bug
than an intent). Anything else is an ERROR naming both kinds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from plait.functional._core import describe, functional
from plait.schema import to_data
from plait.values import Value, ValueKind, unwrap, valueify

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_INT_TEXT = re.compile(r"[+-]?\d+")


def response_field(payload: Any, name: str) -> Any:
    """Field ``name`` of a RESPONSE payload: a dict, or a response object with attributes."""
    if isinstance(payload, Mapping):
        return payload.get(name)
    return getattr(payload, name, None)


def as_text(value: Value, op: str) -> str:
    """``value`` as text, by the TEXT rules above."""
    kind, payload = value.kind, value.payload
    if isinstance(payload, str):
        return payload
    if kind is ValueKind.FSTRING and all(isinstance(p, str) for p in payload):
        return "".join(payload)
    if kind is ValueKind.FSTRING:
        raise TypeError(
            f"{op}: got an FSTRING whose fields were never filled in; run the graph "
            "with plait.run so traced strings are rendered before the op sees them"
        )
    if kind is ValueKind.RESPONSE:
        text = response_field(payload, "text")
        if isinstance(text, str):
            return text
        raise TypeError(f"{op}: the RESPONSE has no 'text' field; got {describe(value)}")
    if kind is ValueKind.STRUCTURED or isinstance(payload, dict | list | tuple):
        return json.dumps(to_data(unwrap(payload)), ensure_ascii=False)
    if isinstance(payload, bytes | bytearray):
        return payload.decode("utf-8")
    if kind is ValueKind.ERROR:
        raise TypeError(f"{op}: cannot read text from an ERROR value: {payload}")
    return str(payload)


def as_number(value: Value, op: str, what: str = "operand") -> int | float:
    """``value`` as an int or float: INT, FLOAT or numeric TEXT; booleans are refused."""
    payload = value.payload
    if isinstance(payload, bool):
        raise TypeError(
            f"{op}: {what} is the boolean {payload}, not a number; convert it "
            "explicitly (1 if flag else 0) in an @plait.op if that is what you mean"
        )
    if isinstance(payload, int | float):
        return payload
    if isinstance(payload, str) and value.kind in (ValueKind.TEXT, ValueKind.OTHER):
        text = payload.strip()
        try:
            return int(text) if _INT_TEXT.fullmatch(text) else float(text)
        except ValueError:
            pass
    raise TypeError(
        f"{op}: {what} is {describe(value)}, which is not a number; pass an int, a float "
        "or numeric text such as '3' or '2.5'"
    )


def parse_json(text: str, op: str) -> Any:
    """Decode JSON from model output: bare, inside a ```json fence, or after a line of prose."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        problem = exc
    fenced = _FENCE.search(stripped)
    if fenced:
        try:
            return json.loads(fenced.group(1))
        except json.JSONDecodeError as exc:
            problem = exc
    if not fenced:
        # Prose around one JSON value: decode from the first opening bracket that works.
        for start in sorted(i for i in (stripped.find("{"), stripped.find("[")) if i >= 0):
            try:
                return json.JSONDecoder().raw_decode(stripped, start)[0]
            except json.JSONDecodeError:
                continue
    snippet = stripped if len(stripped) <= 80 else stripped[:77] + "..."
    raise ValueError(
        f"{op}: the text is not JSON ({problem.msg} at line {problem.lineno} "
        f"column {problem.colno}): {snippet!r}; ask the model for JSON only, or give "
        "the LLMInference a response_format so the reply is parsed for you"
    )


def convert(value: Value, target: ValueKind, op: str = "coerce") -> Value:
    """``value`` as a ``target`` Value by the lossless rules; raises when no rule applies."""
    if value.kind is target:
        return value
    if target is ValueKind.TEXT:
        return Value(ValueKind.TEXT, as_text(value, op))
    if target is ValueKind.INT and value.kind in (ValueKind.FLOAT, ValueKind.TEXT):
        number = as_number(value, op, "the value")
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(
                f"{op}: {number!r} is not a whole number, so turning it into INT would lose "
                "its fraction; round it first or coerce to FLOAT"
            )
        return Value(ValueKind.INT, int(number))
    if target is ValueKind.FLOAT and value.kind in (ValueKind.INT, ValueKind.TEXT):
        return Value(ValueKind.FLOAT, float(as_number(value, op, "the value")))
    if target is ValueKind.STRUCTURED and value.kind in (ValueKind.TEXT, ValueKind.RESPONSE):
        if value.kind is ValueKind.RESPONSE and response_field(value.payload, "structured"):
            return valueify(response_field(value.payload, "structured"))
        data = parse_json(as_text(value, op), op)
        if isinstance(data, dict | list):
            return valueify(data)
        raise ValueError(
            f"{op}: the JSON holds {type(data).__name__} {data!r:.40}, not an object or an "
            "array, so it cannot be STRUCTURED; coerce to INT, FLOAT or TEXT instead"
        )
    if target is ValueKind.BINARY and value.kind is ValueKind.TEXT:
        return Value(ValueKind.BINARY, value.payload.encode("utf-8"))
    if target is ValueKind.OTHER:
        return Value(ValueKind.OTHER, unwrap(value))
    raise TypeError(
        f"{op}: no lossless conversion from {value.kind.name} to {target.name} "
        f"(got {describe(value)}); coerce to TEXT first, or convert it in an @plait.op"
    )


def _target_kind(kind: Any) -> ValueKind:
    if isinstance(kind, ValueKind):
        return kind
    if isinstance(kind, str):
        try:
            return ValueKind(kind.lower())
        except ValueError:
            pass
    names = ", ".join(k.name for k in ValueKind)
    raise ValueError(f"coerce: {kind!r} is not a ValueKind; use one of {names}")


@functional(options=("kind",))
def coerce(value: Value, kind: ValueKind | str) -> Value:
    """``value`` converted to ``kind`` (a `ValueKind` or its name) without losing information.

    >>> coerce("3", "int").payload
    3
    """
    return convert(value, _target_kind(kind))
