"""plait.functional: structured, numeric, response and control ops."""

import math
from dataclasses import dataclass
from typing import Literal, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plait.functional as F
from plait import Value, ValueKind, unwrap, valueify

ERR_A = Value(ValueKind.ERROR, ValueError("first"), ref="node_a")
ERR_B = Value(ValueKind.ERROR, ValueError("second"), ref="node_b")


@dataclass
class Verdict:
    score: int
    label: Literal["good", "bad"]


class Tags(TypedDict):
    tags: list[str]


@pytest.mark.parametrize(
    "text",
    [
        '{"score": 4, "label": "good"}',
        '  \n{"score": 4, "label": "good"}\n',
        '```json\n{"score": 4, "label": "good"}\n```',
        'Here you go:\n```\n{"score": 4, "label": "good"}\n```\nAnything else?',
        'Sure! {"score": 4, "label": "good"} Hope that helps.',
        '[thinking] done: {"score": 4, "label": "good"}',
    ],
)
def test_parse_structured_tolerates_fences_and_prose(text):
    out = F.parse_structured(text)
    assert out.kind is ValueKind.STRUCTURED
    assert unwrap(out) == {"score": 4, "label": "good"}
    assert out.payload["score"] == Value(ValueKind.INT, 4)


def test_parse_structured_scalars_and_arrays():
    assert F.parse_structured("[1, 2]") == valueify([1, 2])
    assert F.parse_structured("7") == Value(ValueKind.INT, 7)
    assert F.parse_structured(Value(ValueKind.RESPONSE, {"text": '{"a": 1}'})) == valueify({"a": 1})


def test_parse_structured_not_json_is_an_error_with_a_fix():
    out = F.parse_structured("I think it is good")
    assert out.kind is ValueKind.ERROR
    assert str(out.payload) == (
        "parse_structured: the text is not JSON (Expecting value at line 1 column 1): "
        "'I think it is good'; ask the model for JSON only, or give the LLMInference a "
        "response_format so the reply is parsed for you"
    )
    assert out.meta["op"] == "parse_structured"


def test_parse_structured_checks_a_json_schema():
    schema = {
        "title": "Verdict",
        "type": "object",
        "properties": {"score": {"type": "integer"}},
        "required": ["score", "label"],
    }
    assert unwrap(F.parse_structured('{"score": 1, "label": "x"}', schema=schema)) == {
        "score": 1,
        "label": "x",
    }
    out = F.parse_structured('{"score": "high"}', schema)
    assert out.kind is ValueKind.ERROR
    assert out.meta["violations"] == [
        "$: missing required keys ['label']",
        "$.score: expected integer, got str",
    ]
    assert out.meta["data"] == {"score": "high"}
    assert str(out.payload).startswith(
        "parse_structured: the JSON does not match the schema 'Verdict': "
    )


def test_parse_structured_checks_dataclasses_and_typeddicts():
    assert unwrap(F.parse_structured('{"score": 2, "label": "bad"}', Verdict)) == {
        "score": 2,
        "label": "bad",
    }
    out = F.parse_structured('{"score": 2, "label": "meh"}', Verdict)
    assert out.meta["violations"] == ["$.label: expected one of ['good', 'bad'], got 'meh'"]
    assert F.parse_structured('{"tags": ["a"]}', Tags).kind is ValueKind.STRUCTURED
    assert F.parse_structured('{"tags": "a"}', Tags).meta["violations"] == [
        "$.tags: expected array, got str"
    ]


def test_parse_structured_checks_python_types():
    assert F.parse_structured('["a", "b"]', list[str]) == valueify(["a", "b"])
    assert F.parse_structured("3", int) == Value(ValueKind.INT, 3)
    out = F.parse_structured('["a", 2]', list[str])
    assert out.meta["violations"] == ["$[1]: expected string, got int"]
    assert "does not match the type list[str]" in str(out.payload)
    assert F.parse_structured("{}", list).meta["violations"] == ["$: expected array, got dict"]


def test_parse_structured_unusable_schema_is_an_error():
    out = F.parse_structured("{}", schema=object)
    assert out.kind is ValueKind.ERROR
    assert "has no JSON-schema form" in str(out.payload)


def test_parse_structured_checks_structured_input_without_reparsing():
    already = valueify({"score": 1, "label": "good"})
    assert F.parse_structured(already, Verdict) is already
    assert F.parse_structured(valueify({"score": "x"}), Verdict).kind is ValueKind.ERROR


def test_select_dotted_path():
    assert F.select({"a": {"b": 1}}, "a.b").payload == 1


def test_select_index_and_list_paths():
    data = {"items": [{"name": "x"}, {"name": "y"}], "a.b": "dotted key"}
    assert F.select(data, ["items", 1, "name"]).payload == "y"
    assert F.select(data, "items.0.name").payload == "x"
    assert F.select(data, "items.-1.name").payload == "y"
    assert F.select(data, "a.b").payload == "dotted key"
    assert F.select(["p", "q"], 0).payload == "p"
    assert unwrap(F.select(data, "")) == data


def test_select_reads_plain_payloads_as_llm_nodes_produce_them():
    reply = Value(ValueKind.STRUCTURED, {"a": {"b": [1, 2]}}, ref="judge")
    assert F.select(reply, "a.b.1") == Value(ValueKind.INT, 2)
    assert F.select(reply, "a.b") == valueify([1, 2])


def test_select_returns_the_stored_value_with_its_provenance():
    leaf = Value(ValueKind.TEXT, "from llm", ref="llm_1", meta={"model": "m"})
    assert F.select({"k": [leaf]}, "k.0") is leaf


def test_select_missing_path_is_an_error_naming_the_step():
    out = F.select({"a": {"b": 1}}, "a.c")
    assert out.kind is ValueKind.ERROR
    assert isinstance(out.payload, LookupError)
    assert str(out.payload) == (
        "select: path 'a.c' not found: a has no key 'c'; its keys are: b. "
        "Pass default=... to make it optional"
    )
    assert "it is a list of 1" in str(F.select({"l": [1]}, "l.5").payload)


def test_select_default_for_missing_paths():
    assert F.select({"a": {}}, "a.b", default=0) == Value(ValueKind.INT, 0)
    assert F.select({"a": {}}, "a.b", default=None) == Value(ValueKind.OTHER, None)
    assert F.select({"a": {"b": 1}}, "a.b", default=0).payload == 1


def test_select_on_non_containers_is_an_error():
    assert "parse it first with F.parse_structured" in str(F.select('{"a": 1}', "a").payload)
    assert "is INT 3, not a dict or list" in str(F.select({"a": 3}, "a.b").payload)
    assert "the path must be a dotted string" in str(F.select({"a": 1}, 2.5).payload)
    assert F.select({"a": {}}, "a.b.c", default="d").payload == "d"


def test_merge_later_keys_win():
    out = F.merge({"a": 1, "b": 1}, {"b": 2}, valueify({"c": 3}))
    assert unwrap(out) == {"a": 1, "b": 2, "c": 3}
    assert F.merge() == Value(ValueKind.STRUCTURED, {})


def test_merge_refuses_non_dicts():
    out = F.merge({"a": 1}, '{"b": 2}')
    assert str(out.payload) == (
        "merge: argument 2 is TEXT '{\"b\": 2}', not a dict; merge takes dicts "
        "(parse JSON text first with F.parse_structured)"
    )
    assert F.merge({"a": 1}, ERR_A).payload is ERR_A.payload


@pytest.mark.parametrize(
    ("op", "a", "b", "expected"),
    [
        (F.add, 2, 3, Value(ValueKind.INT, 5)),
        (F.add, 2, 0.5, Value(ValueKind.FLOAT, 2.5)),
        (F.add, "3", 1, Value(ValueKind.INT, 4)),
        (F.add, " 2.5 ", "1", Value(ValueKind.FLOAT, 3.5)),
        (F.sub, 2, 5, Value(ValueKind.INT, -3)),
        (F.sub, 2.5, 0.5, Value(ValueKind.FLOAT, 2.0)),
        (F.mul, 4, "3", Value(ValueKind.INT, 12)),
        (F.mul, 4, 0.5, Value(ValueKind.FLOAT, 2.0)),
        (F.div, 6, 3, Value(ValueKind.FLOAT, 2.0)),
        (F.div, "1", 4, Value(ValueKind.FLOAT, 0.25)),
    ],
)
def test_arithmetic(op, a, b, expected):
    assert op(a, b) == expected


def test_arithmetic_refuses_non_numbers():
    assert str(F.add("three", 1).payload) == (
        "add: the left operand is TEXT 'three', which is not a number; pass an int, a "
        "float or numeric text such as '3' or '2.5'"
    )
    assert "the boolean True, not a number" in str(F.mul(2, True).payload)
    assert "STRUCTURED" in str(F.sub([1], 1).payload)
    assert "division by zero (1 / 0)" in str(F.div(1, 0).payload)
    assert isinstance(F.div(1.0, 0.0).payload, ZeroDivisionError)
    assert isinstance(F.mul(1e308, 10**400).payload, OverflowError)


def test_aggregates():
    assert F.sum([1, 2, "3"]) == Value(ValueKind.INT, 6)
    assert F.sum([0.1] * 10) == Value(ValueKind.FLOAT, 1.0)
    assert F.sum([]) == Value(ValueKind.INT, 0)
    assert F.min([3, 1.5, 2]) == Value(ValueKind.FLOAT, 1.5)
    assert F.min([3, 1, 2]) == Value(ValueKind.INT, 1)
    assert F.max([1, 2.0]) == Value(ValueKind.FLOAT, 2.0)
    assert F.max(("4", 2)) == Value(ValueKind.INT, 4)
    assert F.mean([1, 2]) == Value(ValueKind.FLOAT, 1.5)
    assert F.mean(valueify([2, 2])) == Value(ValueKind.FLOAT, 2.0)


def test_aggregates_match_the_builtins():
    numbers = [3, -1.25, 7, 0.5, 10**6]
    assert F.sum(numbers).payload == math.fsum(numbers)
    assert F.min(numbers).payload == min(numbers)
    assert F.max(numbers).payload == max(numbers)
    assert F.mean(numbers).payload == pytest.approx(sum(numbers) / len(numbers))


numbers_st = st.integers(-(10**12), 10**12) | st.floats(-1e12, 1e12, allow_nan=False)


@given(st.lists(numbers_st, max_size=8), numbers_st)
def test_numeric_ops_agree_with_python(xs, y):
    assert F.sum(xs).payload == (sum(xs) if all(type(x) is int for x in xs) else math.fsum(xs))
    assert F.add(y, 1).payload == y + 1
    assert F.mul(y, "2").payload == y * 2
    assert F.sub(str(y), y).payload == 0
    assert type(F.add(y, 1).payload) is type(y)
    if xs:
        assert F.max(xs).payload == max(xs)
        assert F.mean(xs).payload == pytest.approx(math.fsum(xs) / len(xs))


@given(st.integers())
def test_int_text_int_round_trip(n):
    assert F.coerce(F.coerce(n, "text"), "int") == Value(ValueKind.INT, n)


def test_aggregates_refuse_empty_lists_and_non_lists():
    assert str(F.mean([]).payload) == (
        "mean: the list is empty, and mean needs at least one number; check the list "
        "first, or replace the ERROR with F.unwrap_or"
    )
    assert F.min([]).kind is ValueKind.ERROR and F.max([]).kind is ValueKind.ERROR
    assert "takes one list of numbers, as in F.sum([a, b, c]); got INT 3" in str(F.sum(3).payload)
    assert "got STRUCTURED {'a': 1}" in str(F.sum({"a": 1}).payload)
    assert "item 1 is TEXT 'x'" in str(F.max([1, "x"]).payload)


def test_aggregates_short_circuit_on_error_elements():
    out = F.sum([1, ERR_B, ERR_A])
    assert out.payload is ERR_B.payload and out.meta["causes"] == [ERR_A]
    assert out.meta["op"] == "sum"


class Usage:
    input_tokens = 10
    output_tokens = 5

    @property
    def total_tokens(self):
        return 15


class ToolCall:
    def __init__(self, name):
        self.id, self.name, self.arguments = "c1", name, {"q": "x"}


class Reply:
    text = "the reply"
    model = "gpt-test"
    usage = Usage()
    finish_reason = "stop"
    tool_calls = (ToolCall("search"),)
    latency = 0.25
    ttft = None


def test_extract_text():
    assert F.extract_text(Value(ValueKind.RESPONSE, {"text": "hi", "model": "m"})) == Value(
        ValueKind.TEXT, "hi"
    )
    assert F.extract_text(Value(ValueKind.RESPONSE, Reply())).payload == "the reply"
    text = Value(ValueKind.TEXT, "plain", ref="n1")
    assert F.extract_text(text) is text
    assert F.extract_text("plain").payload == "plain"


def test_extract_text_refuses_other_kinds():
    assert "expected a RESPONSE or TEXT value, got INT 3" in str(F.extract_text(3).payload)
    assert "has no text" in str(F.extract_text(Value(ValueKind.RESPONSE, {"model": "m"})).payload)


def test_extract_meta_from_a_response_payload():
    info = unwrap(F.extract_meta(Value(ValueKind.RESPONSE, Reply())))
    assert info == {
        "model": "gpt-test",
        "finish_reason": "stop",
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "tool_calls": [{"id": "c1", "name": "search", "arguments": {"q": "x"}}],
        "latency": 0.25,
        "ttft": None,
    }


def test_extract_meta_from_an_llm_outputs_meta():
    out = Value(
        ValueKind.TEXT,
        "answer",
        ref="llm",
        meta={
            "usage": {"prompt_tokens": 7, "completion_tokens": 3},
            "model": "claude-x",
            "latency": 1.5,
            "ttft": 0.2,
            "cost": 0.01,
        },
    )
    assert F.extract_meta(out, "total_tokens") == Value(ValueKind.INT, 10)
    assert F.extract_meta(out, "usage").payload["input_tokens"] == Value(ValueKind.INT, 7)
    assert F.extract_meta(out, "model").payload == "claude-x"
    assert F.extract_meta(out, "ttft") == Value(ValueKind.FLOAT, 0.2)
    assert F.extract_meta(out, "finish_reason") == Value(ValueKind.OTHER, None)
    assert F.extract_meta(out, "cost").payload == 0.01


def test_extract_meta_unknown_key_lists_the_choices():
    out = F.extract_meta(Value(ValueKind.TEXT, "x", meta={"cost": 1}), "tokens")
    assert str(out.payload) == (
        "extract_meta: no 'tokens' in this value's metadata; known keys are model, "
        "finish_reason, usage, input_tokens, output_tokens, total_tokens, tool_calls, "
        "latency, ttft, and this value also has cost"
    )


def test_extract_meta_of_a_plain_value_is_all_unknown():
    assert set(unwrap(F.extract_meta("text")).values()) == {None}


def test_with_meta_adds_metadata_and_keeps_the_rest():
    v = Value(ValueKind.TEXT, "x", ref="n1", meta={"a": 1, "b": 1})
    out = F.with_meta(v, b=2, c=valueify(3))
    assert out == Value(ValueKind.TEXT, "x", ref="n1", meta={"a": 1, "b": 2, "c": 3})
    assert v.meta == {"a": 1, "b": 1}
    assert F.with_meta(ERR_A, note="x").meta["op"] == "with_meta"


def test_unwrap_or_replaces_errors_only():
    assert F.unwrap_or(ERR_A, "fallback") == Value(ValueKind.TEXT, "fallback")
    assert F.unwrap_or(ValueError("raw"), 0) == Value(ValueKind.INT, 0)
    assert F.unwrap_or({"a": [ERR_A]}, {}) == Value(ValueKind.STRUCTURED, {})
    ok = Value(ValueKind.TEXT, "fine", ref="n1")
    assert F.unwrap_or(ok, "fallback") is ok
    assert F.unwrap_or(F.div(1, 0), 0.0).payload == 0.0


def test_is_error():
    assert F.is_error(ERR_A) == Value(ValueKind.OTHER, True)
    assert F.is_error([1, ERR_A]).payload is True
    assert F.is_error("fine") == Value(ValueKind.OTHER, False)


def test_map_values_applies_a_function_to_each_payload():
    out = F.map_values(len, ["a", "bb", valueify("ccc")])
    assert out == Value(
        ValueKind.STRUCTURED,
        [Value(ValueKind.INT, 1), Value(ValueKind.INT, 2), Value(ValueKind.INT, 3)],
    )
    assert unwrap(F.map_values(lambda d: d["k"], [{"k": 1}])) == [1]


def test_map_values_turns_failures_into_error_elements():
    out = F.map_values(lambda x: 10 // x, [5, 0, ERR_A])
    first, failed, passed = out.payload
    assert first == Value(ValueKind.INT, 2)
    assert isinstance(failed.payload, ZeroDivisionError)
    assert failed.meta == {"op": "map_values", "index": 1}
    assert passed.payload is ERR_A.payload
    assert passed.meta == {"op": "map_values", "sources": ["node_a"], "causes": [], "index": 2}
    assert F.is_error(out).payload is True


def test_map_values_refusals():
    assert "fn must be a plain function" in str(F.map_values("len", [1]).payload)

    async def fetch(x):
        return x

    assert "Async work" in str(F.map_values(fetch, [1]).payload)
    assert "takes a list of values" in str(F.map_values(len, "abc").payload)
    assert F.map_values(len, ERR_A).payload is ERR_A.payload


def test_zip_values_pairs_equal_length_lists():
    a = Value(ValueKind.TEXT, "a", ref="n1")
    out = F.zip_values([a, "b"], [1, 2])
    assert out.payload[0][0] is a
    assert unwrap(out) == [["a", 1], ["b", 2]]
    assert F.zip_values() == Value(ValueKind.STRUCTURED, [])


def test_zip_values_refuses_uneven_lists():
    out = F.zip_values([1, 2], [1])
    assert str(out.payload) == (
        "zip_values: the lists have different lengths (2, 1); zip_values pairs every "
        "element, so trim or pad them first"
    )
    assert "takes a list of values" in str(F.zip_values([1], 5).payload)


def test_stack_structured():
    a = Value(ValueKind.TEXT, "x", ref="llm_1")
    out = F.stack_structured([a, 2, {"k": 1}])
    assert out.kind is ValueKind.STRUCTURED
    assert out.payload[0] is a
    assert unwrap(out) == ["x", 2, {"k": 1}]
    assert "takes a list of values" in str(F.stack_structured("x").payload)
    assert F.stack_structured([a, ERR_A]).payload is ERR_A.payload
