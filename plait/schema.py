"""JSON-schema helpers: build a schema from a Python type, validate a value against it.

`schema_of` turns a pydantic model, a dataclass or a TypedDict (nested ones, ``list[X]``,
``dict[str, X]``, ``X | None``, ``Literal[...]``, enums, ``Annotated[X, "doc"]``)
into the strict-mode schema OpenAI and Anthropic accept: every object lists its
``required`` keys and sets ``additionalProperties: false``; nested named types
go to ``$defs``. `validate` checks a decoded JSON value against the subset of
JSON Schema plait emits and providers use, and reports every problem with its
JSON path. `instantiate` turns validated data into an instance of the declared
type (a pydantic model, nested dataclasses) and `to_data` goes back to JSON data.

pydantic is never imported here: a pydantic model is recognised by its
``model_json_schema`` / ``model_validate`` methods, so it stays an optional
dependency that only the user's own model class brings in.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError

__all__ = ["instantiate", "is_model_type", "schema_name", "schema_of", "to_data", "validate"]

_ACCEPTED = "a JSON-schema dict, a pydantic model class, a dataclass type, or a TypedDict type"
_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_WIRE_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def _is_named_type(tp: Any) -> bool:
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or typing.is_typeddict(tp))


def is_model_type(tp: Any) -> bool:
    """Whether ``tp`` is a pydantic (v2) model class, judged without importing pydantic."""
    return (
        isinstance(tp, type)
        and callable(getattr(tp, "model_json_schema", None))
        and callable(getattr(tp, "model_validate", None))
    )


def schema_of(spec: Any) -> dict[str, Any]:
    """The JSON schema for ``spec``: a schema dict (returned as is), a pydantic model, a dataclass or a TypedDict.

    Every dataclass field is required (OpenAI strict mode demands it; use
    ``X | None`` for a value the model may leave empty); a TypedDict's
    ``NotRequired`` keys are left out of ``required``. A pydantic model's own
    schema is made strict the same way: every property required (defaults are
    dropped from the schema; the model still applies them), no extra keys.
    """
    if isinstance(spec, dict):
        return spec
    if is_model_type(spec):
        return _strict(spec.model_json_schema())
    if not _is_named_type(spec):
        if dataclasses.is_dataclass(spec):
            got = f"an instance of {type(spec).__name__}; pass the class {type(spec).__name__}"
        elif isinstance(spec, type):
            got = (
                f"the class {spec.__name__}, which is neither a pydantic model, "
                "a dataclass nor a TypedDict"
            )
        else:
            got = f"{type(spec).__name__} {spec!r:.80}"
        raise ConfigError(f"schema_of() expected {_ACCEPTED}; got {got}")
    defs: dict[str, Any] = {}
    schema = _object_schema(spec, root=spec, defs=defs, path=spec.__name__)
    if defs:
        schema["$defs"] = defs
    return schema


def schema_name(spec: Any) -> str:
    """The wire name for ``spec`` (``json_schema.name``, the emulated tool's name).

    A class's name, a schema's ``title``, else ``"response"``; characters the
    providers refuse become ``_`` and the name is cut to 64 characters.
    """
    name = spec.get("title") if isinstance(spec, Mapping) else getattr(spec, "__name__", None)
    if not isinstance(name, str) or not name:
        return "response"
    return _WIRE_NAME.sub("_", name)[:64]


def _object_schema(tp: type, *, root: type, defs: dict[str, Any], path: str) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(tp, include_extras=True)
    except NameError as exc:
        raise ConfigError(
            f"schema_of({tp.__name__}): cannot resolve the annotation {exc.name!r}; "
            f"define the types {tp.__name__} refers to at module level"
        ) from exc
    if dataclasses.is_dataclass(tp):
        names = [f.name for f in dataclasses.fields(tp)]
        required = names
    else:
        names = list(hints)
        required = [n for n in names if _is_required_key(tp, n, hints[n])]
    properties = {
        name: _type_schema(hints[name], root=root, defs=defs, path=f"{path}.{name}")
        for name in names
    }
    return {
        "title": tp.__name__,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _is_required_key(tp: Any, name: str, hint: Any) -> bool:
    # Under `from __future__ import annotations` Python 3.11 cannot see a string
    # `NotRequired[...]` when it builds `__required_keys__`; the resolved hint can.
    origin = typing.get_origin(hint)
    if origin is typing.NotRequired:
        return False
    return origin is typing.Required or name in tp.__required_keys__


def _type_schema(tp: Any, *, root: type, defs: dict[str, Any], path: str) -> dict[str, Any]:
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if tp is Any:
        return {}
    if _is_named_type(tp):
        if tp is root:
            return {"$ref": "#"}
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placeholder first, so a recursive type refers to itself
            defs[tp.__name__] = _object_schema(tp, root=root, defs=defs, path=tp.__name__)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([member.value for member in tp])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Required, typing.NotRequired):
        return _type_schema(args[0], root=root, defs=defs, path=path)
    if origin is typing.Annotated:
        schema = _type_schema(args[0], root=root, defs=defs, path=path)
        docs = [a for a in args[1:] if isinstance(a, str)]
        return {**schema, "description": docs[0]} if docs else schema
    if origin is typing.Literal:
        return _enum_schema(list(args))
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type_schema(a, root=root, defs=defs, path=path) for a in args]}
    if tp is list or origin is list or (origin is tuple and len(args) == 2 and args[1] is ...):
        if not args:
            return {"type": "array"}
        return {"type": "array", "items": _type_schema(args[0], root=root, defs=defs, path=path)}
    if tp is dict or origin is dict:
        if not args:
            return {"type": "object"}
        if args[0] is not str:
            raise ConfigError(
                f"schema_of: {path} is {tp!r}; JSON object keys are strings, use dict[str, ...]"
            )
        values = _type_schema(args[1], root=root, defs=defs, path=path)
        return {"type": "object", "additionalProperties": values}
    raise ConfigError(
        f"schema_of: {path} has type {tp!r}, which has no JSON-schema form; use str, int, "
        "float, bool, None, Literal[...], an Enum, list[X], dict[str, X], X | Y, "
        "or a nested dataclass / TypedDict"
    )


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    kinds = {_SCALARS.get(type(v)) for v in values}
    if len(kinds) == 1 and None not in kinds:
        return {"type": kinds.pop(), "enum": values}
    return {"enum": values}


def _strict(schema: Any) -> Any:
    """``schema`` (a pydantic model's) in strict form: objects require every property, no extras."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if k != "default"}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        out["required"] = list(schema["properties"])
        out["additionalProperties"] = False
    if "$defs" in schema:
        out["$defs"] = {k: _strict(v) for k, v in schema["$defs"].items()}
    return out


def instantiate(data: Any, spec: Any) -> Any:
    """``data`` as an instance of ``spec``: a pydantic model (validated), nested dataclasses.

    A schema dict or a TypedDict returns ``data`` itself (a TypedDict's
    instances are dicts). A pydantic model that refuses ``data`` raises its
    ``ValidationError`` (a ``ValueError``).
    """
    if is_model_type(spec):
        return spec.model_validate(data)
    if isinstance(spec, type) and dataclasses.is_dataclass(spec):
        if not isinstance(data, Mapping):
            raise ValueError(f"{spec.__name__} needs a JSON object; got {_got(data)}")
        try:
            return _build(data, spec)
        except TypeError as exc:
            raise ValueError(f"cannot build {spec.__name__}: {exc}") from exc
    return data


def to_data(x: Any) -> Any:
    """``x`` as JSON data: model instances and dataclasses become dicts, enums their values."""
    if isinstance(x, enum.Enum):
        return x.value
    if not isinstance(x, type) and callable(getattr(x, "model_dump", None)):
        return x.model_dump(mode="json")
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_data(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, Mapping):
        return {k: to_data(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_data(v) for v in x]
    return x


def _build(data: Any, tp: Any) -> Any:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(data, Mapping):
        hints = typing.get_type_hints(tp, include_extras=True)
        return tp(**{k: _build(v, hints[k]) for k, v in data.items()})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _build(data, args[0])
    if origin in (typing.Union, types.UnionType):
        for alternative in args:
            if _same_shape(data, alternative):
                return _build(data, alternative)
        return data
    if origin in (list, tuple) and args and isinstance(data, list):
        built = [_build(item, args[0]) for item in data]
        return built if origin is list else tuple(built)
    if origin is dict and len(args) == 2 and isinstance(data, Mapping):
        return {k: _build(v, args[1]) for k, v in data.items()}
    return data


def _same_shape(data: Any, tp: Any) -> bool:
    """Whether ``data`` could be a ``tp``: enough to pick a union alternative for valid data."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp) or tp
    if isinstance(data, Mapping):
        return origin is dict or _is_named_type(tp)
    if isinstance(data, list):
        return origin in (list, tuple)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return any(data == member.value for member in tp)
    return False


def validate(instance: Any, schema: Mapping[str, Any] | bool) -> list[str]:
    """Every way ``instance`` breaks ``schema``, as ``"$.path: problem"`` strings; [] when valid."""
    errors: list[str] = []
    _check(instance, schema, schema, "$", errors)
    return errors


_JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, Mapping),
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _any(_value: Any) -> bool:
    """The check for a type name outside JSON Schema's seven: it constrains nothing."""
    return True


def _got(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{key!r}]"


def _resolve(ref: str, root: Any, path: str, errors: list[str]) -> Any:
    node = root
    if ref.startswith("#"):
        for part in filter(None, ref[1:].split("/")):
            if not isinstance(node, Mapping):
                break
            node = node.get(part.replace("~1", "/").replace("~0", "~"))
        if isinstance(node, Mapping | bool):
            return node
    errors.append(f"{path}: schema $ref {ref!r} does not resolve; only '#/...' refs are supported")
    return None


def _type_fits(value: Any, schema: Any, root: Any) -> bool:
    if isinstance(schema, Mapping) and "$ref" in schema:
        schema = _resolve(schema["$ref"], root, "$", [])
    if not isinstance(schema, Mapping) or "type" not in schema:
        return True
    expected = schema["type"]
    names = [expected] if isinstance(expected, str) else expected
    return any(_JSON_TYPES.get(name, _any)(value) for name in names)


def _check(value: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    if schema is True:
        return
    if schema is False:
        errors.append(f"{path}: no value is allowed here")
        return
    if "$ref" in schema:
        target = _resolve(schema["$ref"], root, path, errors)
        if target is not None:
            _check(value, target, root, path, errors)
        return
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else expected
        if not any(_JSON_TYPES.get(name, _any)(value) for name in names):
            errors.append(f"{path}: expected {' or '.join(names)}, got {_got(value)}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: expected one of {schema['enum']!r}, got {value!r}")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            _check_alternatives(value, schema[key], key, root, path, errors)
    for sub in schema.get("allOf", ()):
        _check(value, sub, root, path, errors)
    if isinstance(value, str):
        _check_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, errors)
    elif isinstance(value, list | tuple):
        _check_array(value, schema, root, path, errors)
    elif isinstance(value, Mapping):
        _check_object(value, schema, root, path, errors)


def _check_alternatives(
    value: Any, options: list[Any], key: str, root: Any, path: str, errors: list[str]
) -> None:
    results = []
    for option in options:
        found: list[str] = []
        _check(value, option, root, path, found)
        results.append(found)
    matches = sum(1 for found in results if not found)
    if key == "oneOf" and matches > 1:
        errors.append(f"{path}: matches {matches} oneOf alternatives, expected exactly one")
    if matches:
        return
    # When only one alternative admits the value's type (`Point | None` given a dict),
    # its own errors say more than a summary of every alternative.
    fitting = [
        found
        for option, found in zip(options, results, strict=True)
        if _type_fits(value, option, root)
    ]
    if len(fitting) == 1:
        errors.extend(fitting[0])
        return
    firsts = "; ".join(f"({i + 1}) {found[0]}" for i, found in enumerate(results))
    errors.append(f"{path}: matches none of the {key} alternatives: {firsts}")


def _check_string(value: str, schema: Mapping[str, Any], path: str, errors: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            f"{path}: expected at least {schema['minLength']} characters, got {len(value)}"
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(
            f"{path}: expected at most {schema['maxLength']} characters, got {len(value)}"
        )
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match the pattern {schema['pattern']!r}")


def _check_number(value: float, schema: Mapping[str, Any], path: str, errors: list[str]) -> None:
    bounds = (
        ("minimum", lambda b: value >= b, ">="),
        ("maximum", lambda b: value <= b, "<="),
        ("exclusiveMinimum", lambda b: value > b, ">"),
        ("exclusiveMaximum", lambda b: value < b, "<"),
    )
    for key, holds, op in bounds:
        if key in schema and not holds(schema[key]):
            errors.append(f"{path}: expected a number {op} {schema[key]}, got {value!r}")


def _check_array(
    value: list[Any] | tuple[Any, ...],
    schema: Mapping[str, Any],
    root: Any,
    path: str,
    errors: list[str],
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: expected at least {schema['minItems']} items, got {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: expected at most {schema['maxItems']} items, got {len(value)}")
    items = schema.get("items")
    if items is not None:
        for i, item in enumerate(value):
            _check(item, items, root, f"{path}[{i}]", errors)


def _check_object(
    value: Mapping[str, Any], schema: Mapping[str, Any], root: Any, path: str, errors: list[str]
) -> None:
    properties = schema.get("properties", {})
    missing = [key for key in schema.get("required", ()) if key not in value]
    if missing:
        errors.append(f"{path}: missing required keys {missing}")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            _check(item, properties[key], root, _key_path(path, key), errors)
        elif extra is False:
            errors.append(f"{path}: unexpected key {key!r}; allowed keys are {sorted(properties)}")
        elif extra is not True:
            _check(item, extra, root, _key_path(path, key), errors)
