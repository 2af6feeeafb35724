"""String composition with traced values: every form keeps its dependencies.

Each case composes a string from forward's inputs; rendering the traced graph
with the same inputs must give exactly what running forward eagerly gives.
"""

from __future__ import annotations

import pytest
from _tracing_support import Compose, interpret, run_traced, traced

from plait import LLMInference, Module, Parameter, Value, ValueKind, ValueRef
from plait.values import FormatField

CASES = {
    "fstring": lambda a, b: f"{a} and {b}",
    "fstring_specs": lambda a, b: f"[{a:>10}|{b:<7}|{a:*^11}]",
    "fstring_repr": lambda a, b: f"{a!r} {b!r}",
    "fstring_repr_with_spec": lambda a, b: f"{a!r:>12}|",
    "fstring_str_with_spec": lambda a, b: f"{a!s:^9}|",
    "fstring_ascii": lambda a, b: f"{a!a}/{b!a}",
    "fstring_debug": lambda a, b: f"{a=}",
    "fstring_nested": lambda a, b: f"<{f'[{a}]'}{b}>",
    "fstring_containers": lambda a, b: f"{[a, b]} { ({'k': a}) } {(a,)}",
    "format_positional": lambda a, b: "{} / {}".format(a, b),
    "format_named": lambda a, b: "{x}-{y}-{x}".format(x=a, y=b),
    "format_spec_and_conversion": lambda a, b: "{0!r:>14}|{1:.2}".format(a, b),
    "percent_tuple": lambda a, b: "%s/%s" % (a, b),
    "percent_single": lambda a, b: "<%s>" % a,
    "percent_repr": lambda a, b: "%r" % (a,),
    "percent_mapping": lambda a, b: "%(k)s=%(v)r|" % {"k": a, "v": b},
    "plus_right": lambda a, b: a + "!",
    "plus_left": lambda a, b: "!" + a,
    "plus_both": lambda a, b: a + b,
    "plus_chain": lambda a, b: "x" + a + "y" + b + "z",
    "plus_augmented": lambda a, b: _augmented(a, b),
    "join_empty": lambda a, b: "".join([a, b]),
    "join_separator": lambda a, b: ", ".join([a, "literal", b]),
    "join_generator": lambda a, b: "\n".join(x for x in (a, b)),
    "join_traced_separator": lambda a, b: a.join(["1", "2", "3"]),
    "repeat": lambda a, b: a * 3 + 2 * b,
    "str_call": lambda a, b: str(a),
    "repr_call": lambda a, b: repr(a),
    "ascii_call": lambda a, b: ascii(b),
    "format_call": lambda a, b: format(a, ">8"),
    "structure": lambda a, b: {"text": f"{a}:{b}", "raw": [a, (b,)]},
}


def _augmented(a: str, b: str) -> str:
    text = "start"
    text += a
    text += f" {b}"
    return text


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize(("a", "b"), [("alpha", "beta"), ('it\'s "q"\n', "é ü 😀")])
def test_traced_string_composition_renders_like_eager(name, a, b):
    module = Compose(CASES[name])

    assert run_traced(module, a, b) == module(a, b)


@pytest.mark.parametrize(
    ("compose", "a", "b"),
    [
        (lambda a, b: f"{a:05d}|{b:.3f}|{a:x}", 42, 3.14159),
        (lambda a, b: "%s items at %r" % (a, b), 7, 2.25),
        (lambda a, b: f"{a!r}", 3, 0.5),
        (lambda a, b: f"{a}/{b}", {"k": "v"}, ["x", 1]),
        (lambda a, b: a * b + "|" + b * "-", "ab", 3),
    ],
)
def test_non_text_inputs_render_like_eager(compose, a, b):
    module = Compose(compose)

    assert run_traced(module, a, b) == module(a, b)


def test_fstring_records_fields_with_spec_and_conversion():
    graph = traced(Compose(lambda a, b: f"{a:>10} {b!r} {a!r:^20}"), "a", "b")

    assert graph.output == Value(
        ValueKind.FSTRING,
        (
            FormatField("args.0", ">10"),
            " ",
            FormatField("args.1", "", "r"),
            " ",
            FormatField("args.0", "^20", "r"),
        ),
    )


def test_plain_strings_without_placeholders_stay_plain():
    graph = traced(Compose(lambda a: ("lit" + "eral", f"{'static':>8}")), "a")

    assert graph.output == ("literal", "  static")


class Prompted(Module):
    def __init__(self) -> None:
        super().__init__()
        self.style = Parameter("Be brief.", description="Answer style.")
        self.answer = LLMInference("fast")

    def forward(self, question):
        return self.answer(f"{self.style}\n\nQ: {question}")


def test_parameter_in_an_fstring_is_a_parameter_read_not_baked_text():
    module = Prompted()
    graph = traced(module, "why?")

    node = graph["answer"]
    assert node.args == (
        Value(
            ValueKind.FSTRING,
            (FormatField("param:style"), "\n\nQ: ", FormatField("question")),
        ),
    )
    assert node.parameters == ("param:style",)
    assert node.dependencies == ("question",)
    assert graph.parameters == {"param:style": module.style}


@pytest.mark.parametrize(
    "compose",
    [
        lambda p, a: f"{p}: {a}",
        lambda p, a: "{}: {}".format(p, a),
        lambda p, a: "%s: %s" % (p, a),
        lambda p, a: p + ": " + a,
        lambda p, a: a + ": " + p,
        lambda p, a: f"{p!s:>20}{a}",
    ],
)
def test_parameter_reads_render_the_value_current_at_run_time(compose):
    class WithParam(Module):
        def __init__(self) -> None:
            super().__init__()
            self.tone = Parameter("calm", description="Tone.")

        def forward(self, a):
            return compose(self.tone, a)

    module = WithParam()
    graph = traced(module, "text")
    module.tone.apply_update("excited")

    assert interpret(graph, {"a": "text"}) == compose("excited", "text")
    assert list(graph.parameters) == ["param:tone"]


def test_parameter_returned_directly_is_a_parameter_ref():
    class ReturnsParam(Module):
        def __init__(self) -> None:
            super().__init__()
            self.tone = Parameter("calm", description="Tone.")

        def forward(self, a):
            return self.tone

    graph = traced(ReturnsParam(), "a")

    assert graph.output == ValueRef("param:tone")
    assert graph.output_ids == ()


def test_system_prompt_parameter_of_a_nested_llm_is_recorded_under_its_full_name():
    class Outer(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Prompted()

        def forward(self, q):
            return self.inner(q)

    graph = traced(Outer(), "q")

    assert graph["inner.answer"].parameters == ("param:inner.style",)
    assert list(graph.parameters) == ["param:inner.style"]
