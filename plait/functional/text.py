"""Text ops: templates, joining, case and whitespace.

Every input is read as text by the TEXT rules of `plait.functional.coercion`
(numbers by ``str``, STRUCTURED as JSON), and template fields are filled the
same way unless they carry a format spec (``{score:.2f}`` formats the number).
"""

from __future__ import annotations

import _string
import builtins
import string
from collections.abc import Mapping
from typing import Any

from plait.functional._core import describe, functional
from plait.functional.coercion import as_number, as_text
from plait.values import Value, ValueKind, unwrap, valueify


class _Fields(string.Formatter):
    """``str.format`` over Values, with errors that name the field and what was available."""

    def __init__(self, op: str) -> None:
        self.op = op

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            if key < len(args):
                return args[key]
            if self.op == "render":
                raise LookupError(
                    "render: the template has a positional field ('{}' or '{0}'), but render "
                    "fills named fields from a mapping; name the field ('{text}') or use "
                    "F.format(template, *values) for positional fields"
                )
            raise LookupError(
                f"{self.op}: template field {{{key}}} has no value; {len(args)} positional "
                "value(s) were given"
            )
        if key in kwargs:
            return kwargs[key]
        names = ", ".join(map(str, kwargs))
        if self.op == "render":
            have = f"the mapping has keys: {names}" if kwargs else "the mapping is empty"
            where = "the mapping"
        else:
            have = f"the keyword values are: {names}" if kwargs else "no keyword values were given"
            where = "the call"
        raise LookupError(
            f"{self.op}: template field {key!r} has no value; {have}. Add {key!r} to {where}, "
            "or write literal braces as '{{' and '}}'"
        )

    def get_field(self, field_name: str, args: Any, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        accessors = list(rest)
        if accessors:
            # `{a.b}` / `{a[0]}` reach into the payload, not into the Value object.
            obj = unwrap(obj)
            try:
                for is_attr, key in accessors:
                    obj = getattr(obj, key) if is_attr else obj[key]
            except (LookupError, AttributeError, TypeError) as exc:
                raise LookupError(
                    f"{self.op}: template field {field_name!r} cannot be looked up: "
                    f"{type(exc).__name__} {exc}"
                ) from exc
        return obj, first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        return super().convert_field(unwrap(value) if conversion else value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        if not format_spec:
            return as_text(valueify(value), self.op)
        payload = unwrap(value)
        try:
            return builtins.format(payload, format_spec)
        except ValueError as exc:
            problem = exc
        if isinstance(payload, str):
            # Models answer numbers as text; `{score:.1f}` should still work on "4.25".
            try:
                return builtins.format(as_number(valueify(payload), self.op), format_spec)
            except (TypeError, ValueError):
                pass
        raise ValueError(
            f"{self.op}: the value {payload!r:.40} cannot be formatted with "
            f"':{format_spec}' ({problem}); fix the format spec or coerce the value first"
        )


def _fill(op: str, template: Value, args: tuple[Value, ...], fields: Mapping[str, Value]) -> str:
    if template.kind is not ValueKind.TEXT:
        raise TypeError(f"{op}: the template must be TEXT; got {describe(template)}")
    return _Fields(op).vformat(template.payload, args, fields)


@functional(kind=ValueKind.TEXT)
def render(template: Value, mapping: Value | None = None, /, **fields: Value) -> str:
    """Fill the ``{name}`` fields of ``template`` from ``mapping`` and keyword ``fields``.

    Keyword fields win over mapping keys. A field with no value is an ERROR
    naming it, so ``render("{x}", {})`` is an ERROR value.

    >>> render("Rate {item} from 1 to {top}.", {"item": "this essay", "top": 5}).payload
    'Rate this essay from 1 to 5.'
    """
    values: dict[str, Value] = {}
    if mapping is not None:
        if not isinstance(mapping.payload, Mapping):
            raise TypeError(
                f"render: the mapping must be a dict of fields; got {describe(mapping)}"
            )
        values.update(mapping.payload)
    values.update(fields)
    return _fill("render", template, (), values)


@functional(kind=ValueKind.TEXT)
def format(template: Value, /, *args: Value, **kwargs: Value) -> str:
    """``str.format`` with positional and keyword values: ``format("{} of {n}", a, n=b)``.

    The positional counterpart of `render`; fields are filled by the same rules.
    """
    return _fill("format", template, args, kwargs)


@functional(kind=ValueKind.TEXT, options=("sep",))
def concat(*parts: Value, sep: str = "") -> str:
    """Join ``parts`` as text, with ``sep`` between them."""
    return str(sep).join(as_text(part, "concat") for part in parts)


@functional(kind=ValueKind.TEXT, options=("chars",))
def strip(text: Value, chars: str | None = None) -> str:
    """``text`` without leading and trailing whitespace (or ``chars``)."""
    return as_text(text, "strip").strip(chars)


@functional(kind=ValueKind.TEXT)
def lower(text: Value) -> str:
    """``text`` in lower case."""
    return as_text(text, "lower").lower()


@functional(kind=ValueKind.TEXT)
def upper(text: Value) -> str:
    """``text`` in upper case."""
    return as_text(text, "upper").upper()
