from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import pytest

from plait.errors import ConfigError
from plait.schema import instantiate, schema_name, schema_of, validate


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclasses.dataclass
class Tag:
    name: str
    weight: float = 1.0


@dataclasses.dataclass
class Review:
    summary: Annotated[str, "One sentence."]
    score: int
    tags: list[Tag]
    mood: Mood | None
    verdict: Literal["keep", "drop"]
    extra: dict[str, int]
    flagged: bool
    anything: Any


@dataclasses.dataclass
class Tree:
    label: str
    children: list[Tree]


class Movie(TypedDict):
    title: str
    year: int
    rating: NotRequired[float]
    review: Review


@dataclasses.dataclass
class WithDate:
    when: complex


TAG_SCHEMA = {
    "title": "Tag",
    "type": "object",
    "properties": {"name": {"type": "string"}, "weight": {"type": "number"}},
    "required": ["name", "weight"],
    "additionalProperties": False,
}


def test_dataclass_schema():
    assert schema_of(Review) == {
        "title": "Review",
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "One sentence."},
            "score": {"type": "integer"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "mood": {"anyOf": [{"type": "string", "enum": ["happy", "sad"]}, {"type": "null"}]},
            "verdict": {"type": "string", "enum": ["keep", "drop"]},
            "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
            "flagged": {"type": "boolean"},
            "anything": {},
        },
        "required": ["summary", "score", "tags", "mood", "verdict", "extra", "flagged", "anything"],
        "additionalProperties": False,
        "$defs": {"Tag": TAG_SCHEMA},
    }


def test_typeddict_schema_keeps_not_required_keys_optional():
    schema = schema_of(Movie)
    assert schema["required"] == ["title", "year", "review"]
    assert schema["properties"]["rating"] == {"type": "number"}
    assert schema["properties"]["review"] == {"$ref": "#/$defs/Review"}
    assert sorted(schema["$defs"]) == ["Review", "Tag"]


def test_recursive_dataclass_refers_to_the_root():
    assert schema_of(Tree)["properties"]["children"] == {"type": "array", "items": {"$ref": "#"}}
    assert (
        validate({"label": "a", "children": [{"label": "b", "children": []}]}, schema_of(Tree))
        == []
    )
    assert validate(
        {"label": "a", "children": [{"label": 2, "children": []}]}, schema_of(Tree)
    ) == ["$.children[0].label: expected string, got int"]


def test_schema_dict_is_returned_as_is():
    schema = {"type": "object"}
    assert schema_of(schema) is schema


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            3,
            "expected a JSON-schema dict, a pydantic model class, a dataclass type, or a "
            "TypedDict type; got int 3",
        ),
        (str, "got the class str, which is neither a pydantic model, a dataclass nor a TypedDict"),
        (Tag("x"), "got an instance of Tag; pass the class Tag"),
        ([Tag], "got list [<class"),
        (list[Tag], "got GenericAlias list["),
    ],
)
def test_bad_spec_is_a_config_error(spec, message):
    with pytest.raises(ConfigError, match="schema_of") as info:
        schema_of(spec)
    assert message in str(info.value)


def test_unsupported_field_type_names_the_field():
    with pytest.raises(ConfigError, match=r"WithDate\.when has type <class 'complex'>.*list\[X\]"):
        schema_of(WithDate)


def test_schema_name():
    assert schema_name(Review) == "Review"
    assert schema_name({"title": "My answer (v2)"}) == "My_answer__v2_"
    assert schema_name({"type": "object"}) == "response"
    assert schema_name({"title": "x" * 80}) == "x" * 64


REVIEW = {
    "summary": "Good.",
    "score": 4,
    "tags": [{"name": "fun", "weight": 0.5}],
    "mood": "happy",
    "verdict": "keep",
    "extra": {"pages": 3},
    "flagged": False,
    "anything": [1, "two"],
}


def test_valid_instance_has_no_errors():
    assert validate(REVIEW, schema_of(Review)) == []


def test_validation_errors_carry_json_paths():
    bad = {
        **REVIEW,
        "score": "four",
        "tags": [{"name": "fun", "weight": 0.5}, {"name": 3, "weight": True}, {"name": "x"}],
        "mood": "angry",
        "extra": {"pages": 1.5, "odd key": None},
        "flagged": 0,
        "surprise": 1,
    }
    del bad["verdict"]
    assert validate(bad, schema_of(Review)) == [
        "$: missing required keys ['verdict']",
        "$.score: expected integer, got str",
        "$.tags[1].name: expected string, got int",
        "$.tags[1].weight: expected number, got bool",
        "$.tags[2]: missing required keys ['weight']",
        "$.mood: expected one of ['happy', 'sad'], got 'angry'",
        "$.extra.pages: expected integer, got float",
        "$.extra['odd key']: expected integer, got null",
        "$.flagged: expected boolean, got int",
        "$: unexpected key 'surprise'; allowed keys are "
        "['anything', 'extra', 'flagged', 'mood', 'score', 'summary', 'tags', 'verdict']",
    ]


@pytest.mark.parametrize(
    ("instance", "schema", "errors"),
    [
        ("x", {"type": ["integer", "null"]}, ["$: expected integer or null, got str"]),
        (None, {"type": ["integer", "null"]}, []),
        (2.0, {"type": "integer"}, []),
        ([1], {"type": "array", "minItems": 2}, ["$: expected at least 2 items, got 1"]),
        ([1, 2, 3], {"type": "array", "maxItems": 2}, ["$: expected at most 2 items, got 3"]),
        ("ab", {"type": "string", "minLength": 3}, ["$: expected at least 3 characters, got 2"]),
        ("abcd", {"type": "string", "maxLength": 3}, ["$: expected at most 3 characters, got 4"]),
        ("abc", {"pattern": "^[0-9]+$"}, ["$: 'abc' does not match the pattern '^[0-9]+$'"]),
        (0, {"type": "number", "minimum": 1}, ["$: expected a number >= 1, got 0"]),
        (11, {"type": "number", "maximum": 10}, ["$: expected a number <= 10, got 11"]),
        (1, {"exclusiveMinimum": 1}, ["$: expected a number > 1, got 1"]),
        ("b", {"const": "a"}, ["$: expected 'a', got 'b'"]),
        (3, {"enum": [1, 2]}, ["$: expected one of [1, 2], got 3"]),
        (
            [1.5],
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]},
            ["$[0]: expected integer, got float"],
        ),
        (
            True,
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            [
                "$: matches none of the anyOf alternatives: (1) $: expected string, got bool; "
                "(2) $: expected integer, got bool"
            ],
        ),
        (
            5,
            {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
            ["$: matches 2 oneOf alternatives, expected exactly one"],
        ),
        (5, {"oneOf": [{"type": "integer"}, {"type": "string"}]}, []),
        (
            {"a": "x"},
            {"additionalProperties": {"type": "integer"}},
            ["$.a: expected integer, got str"],
        ),
        (
            {"p": {"n": "x"}},
            {
                "properties": {"p": {"$ref": "#/$defs/P"}},
                "$defs": {"P": {"properties": {"n": {"type": "integer"}}}},
            },
            ["$.p.n: expected integer, got str"],
        ),
        (
            1,
            {"$ref": "#/$defs/Missing"},
            ["$: schema $ref '#/$defs/Missing' does not resolve; only '#/...' refs are supported"],
        ),
        (1, {"allOf": [{"type": "integer"}, {"minimum": 2}]}, ["$: expected a number >= 2, got 1"]),
        ("anything", {"title": "no constraints", "format": "email"}, []),
    ],
)
def test_validator_keywords(instance, schema, errors):
    assert validate(instance, schema) == errors


def test_instantiate_builds_nested_dataclasses_and_enums():
    review = instantiate(REVIEW, Review)
    assert review == Review(
        summary="Good.",
        score=4,
        tags=[Tag("fun", 0.5)],
        mood=Mood.HAPPY,
        verdict="keep",
        extra={"pages": 3},
        flagged=False,
        anything=[1, "two"],
    )
    assert instantiate({**REVIEW, "mood": None}, Review).mood is None


def test_instantiate_leaves_other_specs_as_data():
    movie = {"title": "Alien", "year": 1979, "review": REVIEW}
    assert instantiate(movie, Movie) is movie
    assert instantiate({"a": 1}, {"type": "object"}) == {"a": 1}
