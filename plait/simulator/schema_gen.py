"""Deterministic JSON values that satisfy a JSON schema.

Covers what structured-output schemas use: ``type`` (one or a list, null
last resort), ``const``, ``enum``, objects (every property generated, plus
any ``required`` name without a schema), arrays (``items``, ``prefixItems``,
``minItems``/``maxItems``), strings (``minLength``/``maxLength`` and the
common ``format`` values), integers and numbers (inclusive and exclusive
bounds, ``multipleOf`` for integers), booleans, ``anyOf``/``oneOf`` (first
branch), ``allOf`` (merged) and ``$ref`` into ``$defs``/``definitions``.
``pattern`` is not honoured.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError

_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
_MAX_DEPTH = 32


def generate(schema: Mapping[str, Any] | bool, seed: str) -> Any:
    """A value valid against ``schema``, the same for the same ``seed``."""
    return _Generator(schema, random.Random(seed)).value(schema, "value", 0)


class _Generator:
    __slots__ = ("rng", "root")

    def __init__(self, root: Any, rng: random.Random):
        self.root = root
        self.rng = rng

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ConfigError(
                f"schema nests deeper than {_MAX_DEPTH} levels at {name!r} (a $ref cycle "
                "with required fields?); make the recursive field optional"
            )
        if schema is True or schema is None:
            return f"{name} {self.rng.getrandbits(16):04x}"
        if not isinstance(schema, Mapping):
            raise ConfigError(f"cannot generate a value for the schema {schema!r} at {name!r}")
        if "$ref" in schema:
            return self.value(self._resolve(schema["$ref"]), name, depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(schema[key][0], name, depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part["$ref"]) if "$ref" in part else part
                merged["properties"] = {
                    **merged.get("properties", {}),
                    **part.get("properties", {}),
                }
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                merged.update({k: v for k, v in part.items() if k not in merged})
            return self.value(merged, name, depth + 1)
        kind = _kind(schema)
        method = getattr(self, f"_{kind}", None)
        if method is None:
            raise ConfigError(f"unsupported schema type {kind!r} at {name!r} in {schema!r}")
        return method(schema, name, depth)

    def _resolve(self, ref: str) -> Any:
        node = self.root
        for part in ref.removeprefix("#/").split("/"):
            if not ref.startswith("#/") or not isinstance(node, Mapping) or part not in node:
                raise ConfigError(
                    f"cannot resolve $ref {ref!r}; only local refs like '#/$defs/Name' work"
                )
            node = node[part]
        return node

    def _object(self, schema: Mapping[str, Any], name: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        out = {key: self.value(sub, key, depth + 1) for key, sub in properties.items()}
        for key in schema.get("required") or ():
            out.setdefault(key, self.value(True, key, depth + 1))
        return out

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        low = max(schema.get("minItems", 0), len(prefix))
        size = max(low, min(2, schema.get("maxItems", 2)))
        items = schema.get("items", True)
        out = [self.value(sub, f"{name}{i}", depth + 1) for i, sub in enumerate(prefix)]
        out += [self.value(items, f"{name}{i}", depth + 1) for i in range(len(out), size)]
        return out

    def _string(self, schema: Mapping[str, Any], name: str, depth: int) -> str:
        fmt = schema.get("format", "")
        if fmt == "uuid":
            text = f"00000000-0000-4000-8000-{self.rng.getrandbits(48):012x}"
        else:
            text = _FORMATS.get(fmt) or f"{name} {self.rng.getrandbits(16):04x}"
        text = text.ljust(schema.get("minLength", 0), "x")
        high = schema.get("maxLength")
        return text if high is None else text[:high]

    def _integer(self, schema: Mapping[str, Any], name: str, depth: int) -> int:
        low, low_open, high, high_open = _bounds(schema)
        lo = None if low is None else math.floor(low) + 1 if low_open else math.ceil(low)
        hi = None if high is None else math.ceil(high) - 1 if high_open else math.floor(high)
        lo = (0 if hi is None else min(0, hi)) if lo is None else lo
        hi = lo + 100 if hi is None else hi
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first, last = math.ceil(lo / step), math.floor(hi / step)
            return self.rng.randint(first, max(first, last)) * step
        return self.rng.randint(lo, max(lo, hi))

    def _number(self, schema: Mapping[str, Any], name: str, depth: int) -> float:
        low, low_open, high, high_open = _bounds(schema)
        low = (0.0 if high is None else min(0.0, high - 1.0)) if low is None else low
        high = low + 100.0 if high is None else high
        value = round(low + (high - low) * self.rng.random(), 2)
        inside = (low < value or (low == value and not low_open)) and (
            value < high or (value == high and not high_open)
        )
        return value if inside else (low + high) / 2

    def _boolean(self, schema: Mapping[str, Any], name: str, depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: Mapping[str, Any], name: str, depth: int) -> None:
        return None


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"
    return kind


def _bounds(schema: Mapping[str, Any]) -> tuple[Any, bool, Any, bool]:
    """Lower bound, whether it is exclusive, upper bound, whether it is exclusive."""
    out: list[Any] = []
    for side in ("Minimum", "Maximum"):
        exclusive = schema.get(f"exclusive{side}")
        if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
            out += [exclusive, True]
        else:
            out += [schema.get(side.lower()), False]
    return out[0], out[1], out[2], out[3]
