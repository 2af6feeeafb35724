from dataclasses import FrozenInstanceError
from typing import NamedTuple

import pytest

from plait import Parameter, Value, ValueKind, ValueRef, collect_refs, first_error, unwrap, valueify
from plait._tree import tree_leaves, tree_map, tree_map_with_path
from plait.values import FormatField, error_value, errors_in, iter_values, render_fstring


class Point(NamedTuple):
    x: int
    y: int


def test_valueify_infers_kinds():
    assert valueify("hi").kind is ValueKind.TEXT
    assert valueify(True).kind is ValueKind.OTHER
    assert valueify(3).kind is ValueKind.INT
    assert valueify(2.5).kind is ValueKind.FLOAT
    assert valueify(b"\x00").kind is ValueKind.BINARY
    assert valueify({"a": 1}).kind is ValueKind.STRUCTURED
    assert valueify([1]).kind is ValueKind.STRUCTURED
    assert valueify((1,)).kind is ValueKind.STRUCTURED
    assert valueify(ValueError("x")).kind is ValueKind.ERROR
    assert valueify(None).kind is ValueKind.OTHER
    assert valueify(object).kind is ValueKind.OTHER


def test_valueify_structured_has_value_leaves_and_keeps_existing_values():
    inner = Value(ValueKind.TEXT, "from node", ref="n1")
    v = valueify({"a": {"b": 1}, "c": [inner, "x"]})
    assert v.payload["a"]["b"] == Value(ValueKind.INT, 1)
    assert v.payload["c"][0] is inner
    assert v.payload["c"][1] == Value(ValueKind.TEXT, "x")


def test_valueify_passes_values_through_and_sets_ref():
    v = Value(ValueKind.TEXT, "x", ref="a")
    assert valueify(v) is v
    assert valueify("y", ref="n2").ref == "n2"


def test_valueify_lifts_parameters_with_param_ref():
    p = Parameter("Be brief.", description="style")
    v = valueify(p)
    assert (v.kind, v.payload, v.ref) == (ValueKind.TEXT, "Be brief.", "param:None")
    p.name = "style"
    assert valueify(p).ref == "param:style"


def test_unwrap_strips_values_at_any_depth():
    tree = {
        "a": Value(ValueKind.STRUCTURED, {"b": Value(ValueKind.INT, 2)}),
        "c": (Value(ValueKind.TEXT, "t"),),
    }
    assert unwrap(tree) == {"a": {"b": 2}, "c": ("t",)}
    assert unwrap(valueify({"x": [1, "y"]})) == {"x": [1, "y"]}
    assert unwrap("plain") == "plain"


def test_unwrap_keeps_named_tuples():
    out = unwrap(Point(Value(ValueKind.INT, 1), 2))
    assert out == Point(1, 2) and type(out) is Point


def test_collect_refs_finds_values_refs_and_fields_in_order_once():
    tree = [
        Value(ValueKind.TEXT, "a", ref="n1"),
        {"k": ValueRef("n2")},
        Value(ValueKind.FSTRING, ("x", FormatField("n3"), FormatField("n1"))),
        Value(ValueKind.STRUCTURED, {"deep": Value(ValueKind.INT, 1, ref="n4")}),
    ]
    assert collect_refs(tree) == ["n1", "n2", "n3", "n4"]
    assert collect_refs("no refs", 1) == []


def test_first_error_is_first_in_argument_order():
    e1 = Value(ValueKind.ERROR, ValueError("one"), ref="a")
    e2 = Value(ValueKind.ERROR, ValueError("two"), ref="b")
    assert first_error("x", [1, e1], e2) is e1
    assert first_error(e2, e1) is e2
    assert first_error(Value(ValueKind.STRUCTURED, {"z": e2})) is e2
    assert first_error("fine", 1) is None
    assert errors_in(e1, [e2]) == [e1, e2]


def test_iter_values_descends_into_structured_payloads():
    leaf = Value(ValueKind.INT, 1)
    outer = Value(ValueKind.STRUCTURED, [leaf])
    assert list(iter_values({"o": outer})) == [outer, leaf]


def test_error_value_names_op_and_sources():
    v = error_value("bad input", op="render", inputs=[Value(ValueKind.TEXT, "t", ref="n7")])
    assert v.is_error and isinstance(v.payload, ValueError)
    assert v.meta == {"op": "render", "sources": ["n7"]}


def test_values_are_immutable_and_compare_by_content():
    v = Value(ValueKind.TEXT, "a")
    with pytest.raises(FrozenInstanceError):
        v.payload = "b"  # type: ignore[misc]
    assert v == Value(ValueKind.TEXT, "a")
    assert v != Value(ValueKind.TEXT, "a", ref="n")


def test_value_repr_is_short():
    r = repr(Value(ValueKind.TEXT, "x" * 500, ref="n1"))
    assert r.startswith("Value(TEXT, 'xxx") and r.endswith("..., ref='n1')")
    assert len(r) < 120


def test_render_fstring_applies_spec_and_conversion():
    v = Value(ValueKind.FSTRING, ("[", FormatField("a", ">5"), "|", FormatField("b", "", "r"), "]"))
    resolved = {"a": Value(ValueKind.TEXT, "hi"), "b": Value(ValueKind.TEXT, "q")}
    assert render_fstring(v, resolved.__getitem__) == "[   hi|'q']"


def test_tree_map_and_leaves_agree_on_order_and_types():
    tree = {"a": [1, (2, 3)], "b": Point(4, 5)}
    assert list(tree_leaves(tree)) == [1, 2, 3, 4, 5]
    doubled = tree_map(lambda x: x * 2, tree)
    assert doubled == {"a": [2, (4, 6)], "b": Point(8, 10)}
    assert type(doubled["b"]) is Point


def test_tree_map_is_leaf_hands_containers_whole():
    out = tree_map(
        lambda x: len(x) if isinstance(x, list) else x,
        {"a": [1, 2], "b": 3},
        is_leaf=lambda x: isinstance(x, list),
    )
    assert out == {"a": 2, "b": 3}


def test_tree_map_with_path_gives_key_paths():
    seen = []
    tree_map_with_path(lambda p, v: seen.append((p, v)), {"a": [10, {"b": 20}]})
    assert seen == [(("a", 0), 10), (("a", 1, "b"), 20)]
