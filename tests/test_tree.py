"""The one tree walker: what a container is, and that every kind round-trips."""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from typing import NamedTuple

import pytest

from plait import unwrap, valueify
from plait._tree import redact, tree_leaves, tree_map, tree_map_with_path
from plait.values import Value, ValueKind


class Point(NamedTuple):
    x: int
    y: int


class Tagged(dict):
    """A dict subclass with state of its own and a constructor that needs it."""

    def __init__(self, tag: str, *args: object) -> None:
        super().__init__(*args)
        self.tag = tag


class Row(list):
    pass


def _cases() -> list[object]:
    factory = defaultdict(list, {"a": [1, 2]})
    return [
        {"a": [1, {"b": (2, 3)}]},
        OrderedDict([("z", 1), ("a", 2)]),
        factory,
        Counter("abracadabra"),
        Point(1, 2),
        {"points": [Point(3, 4)]},
        Tagged("t", {"k": "v"}),
        Row([1, "two"]),
    ]


@pytest.mark.parametrize("tree", _cases(), ids=lambda t: type(t).__name__)
def test_valueify_then_unwrap_gives_back_an_equal_tree_of_the_same_type(tree):
    value = valueify(tree)
    assert value.kind is ValueKind.STRUCTURED
    back = unwrap(value)
    assert back == tree
    assert type(back) is type(tree)


def test_leaves_of_a_structured_value_are_values_with_the_container_type_kept():
    value = valueify(defaultdict(list, {"a": "x"}))
    assert type(value.payload) is defaultdict
    assert isinstance(value.payload["a"], Value)


def test_a_defaultdict_keeps_its_default_factory():
    back = unwrap(valueify(defaultdict(list, {"a": [1]})))
    assert back.default_factory is list
    back["new"].append(1)
    assert back["new"] == [1]


def test_a_counter_keeps_its_counts_and_order():
    counts = Counter({"b": 2, "a": 5})
    back = tree_map(lambda n: n * 10, counts)
    assert type(back) is Counter
    assert list(back.items()) == [("b", 20), ("a", 50)]


def test_a_dict_subclass_keeps_its_attributes():
    back = tree_map(str.upper, Tagged("mine", {"k": "v"}))
    assert type(back) is Tagged and back.tag == "mine" and back == {"k": "V"}


def test_an_ordered_dict_keeps_its_order():
    back = tree_map(lambda n: -n, OrderedDict([("z", 1), ("a", 2)]))
    assert list(back.items()) == [("z", -1), ("a", -2)]
    back.move_to_end("z")  # still a working OrderedDict
    assert list(back) == ["a", "z"]


def test_walkers_agree_on_what_a_container_is():
    tree = {"c": Counter({"x": 1}), "p": Point(2, 3), "d": defaultdict(int, {"k": 4})}
    assert list(tree_leaves(tree)) == [1, 2, 3, 4]
    seen = []
    tree_map_with_path(lambda path, leaf: seen.append(path), tree)
    assert seen == [("c", "x"), ("p", 0), ("p", 1), ("d", "k")]


def test_strings_and_other_objects_are_leaves():
    assert list(tree_leaves(["ab", b"cd", {1, 2}])) == ["ab", b"cd", {1, 2}]


def test_redact_hides_credentials_at_any_depth_and_keeps_the_rest():
    tree = {
        "headers": {"Authorization": "Bearer sk-1", "x-trace": "t"},
        "extra": [{"api_key": "sk-2"}, OrderedDict(access_token="tok", model="m")],
        "temperature": 0.5,
    }
    out = redact(tree)
    assert out == {
        "headers": {"Authorization": "***", "x-trace": "t"},
        "extra": [{"api_key": "***"}, OrderedDict(access_token="***", model="m")],
        "temperature": 0.5,
    }
    assert "sk-" not in repr(out)
    assert tree["headers"]["Authorization"] == "Bearer sk-1"  # the input is not changed
