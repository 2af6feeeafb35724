"""Using a runtime value at trace time raises a TraceError naming the module, the line, the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tracing_support import line_of

from plait import LLMInference, Module, TraceError, trace
from plait._context import active_tracer

# name -> (what forward does with the model's reply `v`, words the message must contain)
CASES = {
    "conditional": (lambda v: 1 if v else 0, "`if v:` / `bool(v)`", "F.unwrap_or"),
    "bool": (lambda v: bool(v), "`if v:` / `bool(v)`", "@plait.op that contains the branch"),
    "not": (lambda v: not v, "`if v:` / `bool(v)`", "decide at run time"),
    "len": (lambda v: len(v), "`len(v)`", "Count at run time"),
    "comprehension": (lambda v: [x for x in v], "iterating it", "index it (v[0], v['key'])"),
    "star_unpack": (lambda v: [*v], "iterating it", "F.map_values"),
    "list": (lambda v: list(v), "iterating it", "@plait.op"),
    "equal": (lambda v: v == "yes", "comparing it (`v == ...`)", "compare in an @plait.op"),
    "not_equal": (lambda v: v != "yes", "comparing it (`v != ...`)", "compare in an @plait.op"),
    "less": (lambda v: v < "m", "comparing it (`v < ...`)", "compare in an @plait.op"),
    "contains": (lambda v: "x" in v, "`x in v`", "Test membership"),
    "dict_key": (lambda v: {v: 1}, "hashing it (a dict key or set member)", "static values"),
    "set": (lambda v: {v}, "hashing it", "static values"),
    "hash": (lambda v: hash(v), "hashing it", "static values"),
    "int": (lambda v: int(v), "`int(v)`", "F.coerce"),
    "float": (lambda v: float(v), "`float(v)`", "F.coerce"),
    "percent_d": (lambda v: "%d points" % (v,), "%d / %x formatting", "f'{v:d}'"),
    "upper": (lambda v: v.upper(), "`v.upper(...)`", "Use F.upper(v) instead."),
    "split": (lambda v: v.split(","), "`v.split(...)`", "inside an @plait.op function"),
    "startswith": (lambda v: v.startswith("A"), "`v.startswith(...)`", "@plait.op"),
    "slice": (lambda v: v[1:3], "slicing `v[a:b]`", "Slice in an @plait.op"),
    "modulo": (lambda v: v % 2, "`v % ...`", "@plait.op"),
    "plus_number": (lambda v: v + 1, "`+` between text and a number", "F.add(v, x)"),
    "number_plus": (lambda v: 1.5 + v, "`+` between text and a number", "F.add(v, x)"),
    "minus": (lambda v: v - 1, "`-` between text and a number", "F.add"),
    "attribute": (lambda v: v.score, "attribute access `v.score`", "v['score']"),
    "reversed": (lambda v: reversed(v), "`reversed(v)`", "@plait.op"),
    "spec": (lambda v: f"{v:>{v}}", "a format spec built from a traced value", "static"),
}


class Inner(Module):
    def __init__(self, action) -> None:
        super().__init__()
        self.llm = LLMInference("fast")
        self.action = action

    def forward(self, x):
        return self.action(self.llm(x))


class Outer(Module):
    def __init__(self, action) -> None:
        super().__init__()
        self.inner = Inner(action)

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize("name", sorted(CASES))
def test_runtime_use_of_a_placeholder_is_a_trace_error(name):
    action, what, fix = CASES[name]
    snippet = f'"{name}": (lambda v: '
    source = next(
        line.strip() for line in Path(__file__).read_text().splitlines() if snippet in line
    )

    with pytest.raises(TraceError) as info:
        trace(Outer(action), "x")

    message = str(info.value)
    assert what in message.split(" needs ")[0]
    assert "needs the runtime value of 'inner.llm' in module 'inner' (Inner.forward)" in message
    assert f"at test_tracing_errors.py:{line_of(__file__, snippet)} (`{source}`)" in message
    assert fix in message.split("Fix: ", 1)[1]
    assert "an @plait.op function, or a Module" in message


def test_if_statement_in_the_root_forward_names_the_root_module():
    class Branchy(Module):
        def __init__(self) -> None:
            super().__init__()
            self.judge = LLMInference("fast")

        def forward(self, x):
            verdict = self.judge(x)
            if verdict:  # the line the error must point at
                return "yes"
            return "no"

    with pytest.raises(TraceError) as info:
        trace(Branchy(), "x")

    line = Branchy.forward.__code__.co_firstlineno + 2
    assert str(info.value).startswith(
        "`if v:` / `bool(v)` needs the runtime value of 'judge' in the root module "
        f"(Branchy.forward) at test_tracing_errors.py:{line} (`if verdict:  # the line the "
        "error must point at`), but tracing builds the graph before anything runs"
    )


def _unpack(reply):
    first, _second = reply
    return first


def _loop(reply):
    for item in reply:
        return item
    return None


@pytest.mark.parametrize("use", [_unpack, _loop])
def test_for_loop_and_unpacking_of_a_reply_are_refused(use):
    with pytest.raises(TraceError, match="iterating it .* at test_tracing_errors.py"):
        trace(Inner(use), "x")


def test_an_input_used_in_an_if_is_refused_too():
    class Flag(Module):
        def forward(self, verbose):
            return "long" if verbose else "short"

    with pytest.raises(TraceError, match="runtime value of 'verbose' in the root module"):
        trace(Flag(), True)


def test_error_inside_a_helper_points_at_the_helper_line():
    def shout(text):
        return text.upper()  # helper line

    class UsesHelper(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return shout(self.llm(x))

    with pytest.raises(TraceError) as info:
        trace(UsesHelper(), "x")

    line = shout.__code__.co_firstlineno + 1
    assert f"test_tracing_errors.py:{line} (`return text.upper()  # helper line`)" in str(
        info.value
    )


@pytest.mark.parametrize(
    "alter",
    [
        lambda s: s.upper(),
        lambda s: s[:12],
        lambda s: s[-3:],
        lambda s: json.dumps(s),
        lambda s: "%.12s" % s,
    ],
)
def test_string_altered_at_trace_time_is_refused_at_the_node_boundary(alter):
    class Alters(Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = LLMInference("fast")
            self.second = LLMInference("fast")

        def forward(self, x):
            return self.second(alter(f"Summary: {self.first(x)}"))

    with pytest.raises(TraceError, match="whose text was changed at trace time"):
        trace(Alters(), "x")


def test_placeholder_used_after_its_trace_ended_still_refuses():
    kept = []

    class Keeps(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            kept.append(self.llm(x))
            return kept[-1]

    trace(Keeps(), "x")

    with pytest.raises(TraceError, match=r"`len\(v\)` needs the runtime value of 'llm'"):
        len(kept[0])


def test_reading_the_payload_of_a_placeholder_is_refused():
    with pytest.raises(TraceError, match=r"reading `v.payload` needs the runtime value"):
        trace(Inner(lambda v: v.payload == "yes"), "x")


def test_a_failed_trace_leaves_no_active_tracer_behind():
    with pytest.raises(TraceError):
        trace(Inner(bool), "x")

    assert active_tracer() is None
    assert trace(Inner(lambda v: v), "x").output_ids == ("llm",)
