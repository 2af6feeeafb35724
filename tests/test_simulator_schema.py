"""Structured output: replies to a response_format are JSON valid against its schema."""

import json

import jsonschema
import pytest
from _sim_support import chat_body, messages_body

from plait.simulator import SimulatedModel

SCHEMAS = {
    "flat": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 12, "maxLength": 20},
            "age": {"type": "integer", "minimum": 18, "exclusiveMaximum": 21},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "age", "score", "ok"],
        "additionalProperties": False,
    },
    "enums_and_consts": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "version": {"const": 2},
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
        },
        "required": ["label", "version"],
    },
    "arrays_and_nesting": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"x": {"type": "number"}, "y": {"type": "integer"}},
                    "required": ["x", "y"],
                },
            },
            "meta": {"type": "object", "properties": {"source": {"type": ["string", "null"]}}},
        },
        "required": ["tags", "points", "meta"],
    },
    "refs_and_unions": {
        "type": "object",
        "properties": {
            "main": {"$ref": "#/$defs/Item"},
            "either": {"anyOf": [{"type": "integer", "multipleOf": 5}, {"type": "string"}]},
            "one": {"oneOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]},
        },
        "required": ["main", "either", "one"],
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "rank": {"type": "integer"}},
                "required": ["title", "rank"],
            }
        },
    },
    "top_level_array": {
        "type": "array",
        "items": {"type": "integer", "minimum": -3, "maximum": -1},
    },
}


def _valid(schema, value, root=None) -> bool:
    """A checker for the keywords the simulator promises to honour."""
    root = schema if root is None else root
    if "$ref" in schema:
        return _valid(root["$defs"][schema["$ref"].split("/")[-1]], value, root)
    if "const" in schema:
        return value == schema["const"]
    if "enum" in schema and value not in schema["enum"]:
        return False
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return any(_valid(branch, value, root) for branch in schema[key])
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kinds and not any(checks[kind](value) for kind in kinds):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(_valid(properties[k], v, root) for k, v in value.items() if k in properties)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return False
        return all(_valid(schema.get("items", {}), item, root) for item in value)
    if isinstance(value, str):
        return schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
        return "multipleOf" not in schema or value % schema["multipleOf"] == 0
    return True


def _format(schema):
    return {"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": schema}}


async def _structured(model, user, schema):
    body = chat_body(user, response_format=_format(schema))
    response = await model.handle("/v1/chat/completions", body)
    return json.loads(response.json["choices"][0]["message"]["content"])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
async def test_structured_replies_are_valid_against_their_schema(name):
    model = SimulatedModel()
    for user in ("first", "second", "third"):
        value = await _structured(model, user, SCHEMAS[name])
        assert _valid(SCHEMAS[name], value), value


@pytest.mark.parametrize("name", sorted(SCHEMAS))
async def test_structured_replies_pass_jsonschema_too(name):
    value = await _structured(SimulatedModel(), "first", SCHEMAS[name])
    jsonschema.validate(value, SCHEMAS[name])


async def test_structured_values_are_deterministic_per_request():
    model = SimulatedModel()
    schema = SCHEMAS["flat"]
    assert await _structured(model, "a", schema) == await _structured(model, "a", schema)
    values = [await _structured(model, user, schema) for user in "abcdefgh"]
    assert len({json.dumps(v) for v in values}) > 1


async def test_checker_rejects_what_the_schemas_forbid():
    assert not _valid(SCHEMAS["flat"], {"name": "x" * 12, "age": 21, "score": 0.5, "ok": True})
    assert not _valid(SCHEMAS["enums_and_consts"], {"label": "angry", "version": 2})
    assert not _valid(SCHEMAS["top_level_array"], [0])


async def test_json_object_mode_wraps_the_echo_in_an_object():
    model = SimulatedModel()
    body = chat_body("hello", response_format={"type": "json_object"})
    response = await model.handle("/v1/chat/completions", body)
    value = json.loads(response.json["choices"][0]["message"]["content"])
    assert list(value) == ["text"] and value["text"].endswith("] hello")


async def test_anthropic_output_format_gets_schema_valid_text():
    schema = SCHEMAS["refs_and_unions"]
    body = messages_body("hello", output_format={"type": "json_schema", "schema": schema})
    response = await SimulatedModel().handle("/v1/messages", body)
    assert _valid(schema, json.loads(response.json["content"][0]["text"]))


async def test_unresolvable_ref_is_a_bad_request():
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}
    body = chat_body("hello", response_format=_format(schema))
    response = await SimulatedModel().handle("/v1/chat/completions", body)
    assert response.status == 400
    assert "cannot resolve $ref '#/$defs/Missing'" in response.json["error"]["message"]
