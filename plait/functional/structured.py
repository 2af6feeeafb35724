"""Structured ops: parse JSON (optionally against a schema), reach into it, merge dicts."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import is_dataclass
from typing import Any, TypedDict, is_typeddict

from plait.functional._core import describe, fail, functional
from plait.functional.coercion import as_text, parse_json
from plait.schema import is_model_type, schema_of, validate
from plait.values import Value, ValueKind, unwrap, valueify

_MISSING: Any = object()
_WRAPPED = "$.value"


@functools.lru_cache(maxsize=128)
def _type_schema(tp: Any) -> dict[str, Any]:
    # schema_of takes dataclasses and TypedDicts; any other type is checked as the one
    # field of a TypedDict, so `list[str]`, `int | None`, `Literal[...]` all work.
    return schema_of(TypedDict("Checked", {"value": tp}))  # type: ignore[operator]


def _check(data: Any, schema: Any) -> list[str]:
    if (
        isinstance(schema, Mapping)
        or is_dataclass(schema)
        or is_typeddict(schema)
        or is_model_type(schema)
    ):
        return validate(data, schema_of(schema))
    problems = validate({"value": data}, _type_schema(schema))
    return ["$" + p[len(_WRAPPED) :] if p.startswith(_WRAPPED) else p for p in problems]


def _label(schema: Any) -> str:
    if isinstance(schema, Mapping):
        title = schema.get("title")
        return f"the schema {title!r}" if title else "the schema"
    name = schema.__name__ if isinstance(schema, type) else repr(schema)
    return f"the type {name}"


@functional(kind=ValueKind.STRUCTURED, options=("schema",))
def parse_structured(text: Value, schema: Any = None) -> Value:
    """Decode the JSON in ``text`` (a model reply) into a STRUCTURED value.

    Surrounding prose and a ```json fence are tolerated. ``schema`` is a JSON
    schema dict, a dataclass or TypedDict, or a type such as ``list[str]``;
    data that does not match is an ERROR listing every violation in
    ``meta["violations"]``. Valid data comes back as dicts and lists, not
    dataclass instances (`plait.schema.instantiate` builds those). A
    STRUCTURED input is not parsed again, only checked.
    """
    if text.kind is ValueKind.STRUCTURED:
        data = unwrap(text)
    else:
        data = parse_json(as_text(text, "parse_structured"), "parse_structured")
    if schema is not None:
        problems = _check(data, schema)
        if problems:
            return fail(
                f"parse_structured: the JSON does not match {_label(schema)}: "
                + "; ".join(problems)
                + ". Tighten the prompt or the response_format, or relax the schema",
                violations=problems,
                data=data,
            )
    return text if text.kind is ValueKind.STRUCTURED else valueify(data)


def _steps(path: Any) -> list[Any]:
    if isinstance(path, int) and not isinstance(path, bool):
        return [path]
    if isinstance(path, str):
        return path.split(".") if path else []
    if isinstance(path, Sequence) and all(isinstance(p, str | int) for p in path):
        return list(path)
    raise TypeError(
        f"select: the path must be a dotted string ('a.b.0'), an int, or a list of keys "
        f"and indexes (['a', 0]); got {type(path).__name__} {path!r:.40}"
    )


def _step(node: Any, step: Any, shown: str) -> Any:
    """The child ``step`` of ``node`` (a Value or a plain container); LookupError when absent."""
    container = node.payload if isinstance(node, Value) else node
    if isinstance(node, Value) and node.kind is ValueKind.TEXT:
        raise TypeError(
            f"select: {shown or 'the value'} is TEXT, not a dict or list; parse it first with "
            "F.parse_structured"
        )
    if isinstance(container, Mapping):
        if step in container:
            return container[step]
        keys = ", ".join(map(str, container)) or "none"
        raise LookupError(f"{shown or 'the value'} has no key {step!r}; its keys are: {keys}")
    fields = _field_names(container)
    if fields is not None:  # a typed reply (pydantic model, dataclass): fields by name
        if step in fields:
            return getattr(container, step)
        raise LookupError(
            f"{shown or 'the value'} ({type(container).__name__}) has no field {step!r}; "
            f"its fields are: {', '.join(fields) or 'none'}"
        )
    if isinstance(container, Sequence) and not isinstance(container, str | bytes):
        index = int(step) if isinstance(step, str) and step.lstrip("-").isdigit() else step
        if isinstance(index, int) and -len(container) <= index < len(container):
            return container[index]
        raise LookupError(
            f"{shown or 'the value'} has no index {step!r}; it is a list of {len(container)}"
        )
    what = describe(node) if isinstance(node, Value) else type(node).__name__
    raise TypeError(f"select: {shown or 'the value'} is {what}, not a dict or list")


def _field_names(obj: Any) -> list[str] | None:
    """The field names of a dataclass or pydantic model instance; None for anything else."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return list(obj.__dataclass_fields__)
    if is_model_type(type(obj)):
        return list(type(obj).model_fields)
    return None


@functional(options=("path",), label="path")
def select(value: Value, path: str | int | Sequence[str | int], default: Any = _MISSING) -> Value:
    """The part of ``value`` at ``path``: ``"a.b"``, ``0``, or ``["a", 0, "b"]``.

    A dotted string is first tried as one key (``{"a.b": 1}``), then split at
    the dots; digit segments index lists. A missing path is an ERROR naming
    the missing step unless ``default`` is given. The result is the stored
    Value itself, so it keeps its kind and provenance.

    >>> select({"a": {"b": 1}}, "a.b").payload
    1
    """
    whole_key = (
        isinstance(path, str) and isinstance(value.payload, Mapping) and path in value.payload
    )
    steps = [path] if whole_key else _steps(path)
    node: Any = value
    shown = ""
    for step in steps:
        try:
            node = _step(node, step, shown)
        except LookupError as exc:
            if default is not _MISSING:
                return default
            return fail(
                f"select: path {path!r} not found: {exc}. Pass default=... to make it optional",
                LookupError,
            )
        shown = f"{shown}.{step}" if shown else str(step)
    return valueify(node)


@functional(kind=ValueKind.STRUCTURED)
def merge(*dicts: Value) -> Value:
    """One dict with the keys of all ``dicts``; later dicts win on shared keys (shallow)."""
    merged: dict[Any, Any] = {}
    for i, item in enumerate(dicts):
        if not isinstance(item.payload, Mapping):
            raise TypeError(
                f"merge: argument {i + 1} is {describe(item)}, not a dict; merge takes dicts "
                "(parse JSON text first with F.parse_structured)"
            )
        merged.update(item.payload)
    return valueify(merged)
