"""plait.functional inside a traced forward: one node per op on runtime values, folding otherwise."""

from plait import LLMInference, Module, NodeKind, Parameter, Value, ValueKind, ValueRef, trace
from plait import functional as F
from plait._tree import tree_map
from plait.tracing.proxy import TracedValue
from plait.values import render_fstring, unwrap, valueify


def run_ops(graph, **inputs):
    """Execute a graph of INPUT and OP nodes the way the runtime does: refs resolved to Values."""
    results = {}

    def resolve(x):
        if isinstance(x, ValueRef):
            return results[x.ref]
        if isinstance(x, Value) and x.kind is ValueKind.FSTRING:
            return Value(ValueKind.TEXT, render_fstring(x, results.__getitem__))
        return x

    for node_id in graph.topological_order():
        node = graph.nodes[node_id]
        if node.kind is NodeKind.INPUT:
            name, path = graph.input_paths[node_id]
            value = inputs[name]
            for step in path:
                value = value[step]
            results[node_id] = valueify(value)
        else:
            assert node.kind is NodeKind.OP
            results[node_id] = node.module(
                *tree_map(resolve, node.args), **tree_map(resolve, dict(node.kwargs))
            )
    return tree_map(resolve, graph.output)


class ParseReply(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast", system_prompt="Answer in JSON.")

    def forward(self, question):
        return F.parse_structured(self.llm(question))


class WrapsParseReply(Module):
    def __init__(self):
        super().__init__()
        self.inner = ParseReply()

    def forward(self, question):
        return self.inner(question)


def test_parse_structured_of_an_llm_call_is_its_own_node():
    graph = trace(ParseReply(), "What is 2+2?")
    assert list(graph.nodes) == ["question", "llm", "parse_structured"]
    node = graph.nodes["parse_structured"]
    assert node.kind is NodeKind.OP
    assert node.module is F.parse_structured
    assert node.args == (ValueRef("llm"),)
    assert node.dependencies == ("llm",)
    assert graph.output == ValueRef("parse_structured")


def test_op_nodes_keep_the_module_path_when_nested():
    graph = trace(WrapsParseReply(), "q")
    assert list(graph.nodes) == ["question", "inner.llm", "inner.parse_structured"]
    assert graph.nodes["inner.parse_structured"].module_path == "inner"
    assert graph.nodes["inner.parse_structured"].dependencies == ("inner.llm",)


class Folding(Module):
    def forward(self, x):
        return F.upper("static"), F.add(2, 3), F.render("{x}", {})


def test_ops_on_static_inputs_fold_into_literals():
    graph = trace(Folding(), "ignored")
    assert list(graph.nodes) == ["x"]
    upper, total, failed = graph.output
    assert upper == Value(ValueKind.TEXT, "STATIC")
    assert total == Value(ValueKind.INT, 5)
    assert failed.kind is ValueKind.ERROR


class Judge(Module):
    def __init__(self):
        super().__init__()
        self.judge = LLMInference("fast", response_format={"type": "object"})

    def forward(self, text):
        verdict = self.judge(text)
        return verdict["a"]["b"], verdict.get("note", "none"), verdict[0]


def test_item_access_on_a_structured_placeholder_records_select_nodes():
    graph = trace(Judge(), "essay")
    assert list(graph.nodes) == ["text", "judge", "select_a", "select_b", "select_note", "select_0"]
    assert graph.nodes["select_a"].args == (ValueRef("judge"), "a")
    assert graph.nodes["select_b"].args == (ValueRef("select_a"), "b")
    assert graph.nodes["select_b"].dependencies == ("select_a",)
    assert graph.nodes["select_note"].kwargs == {"default": "none"}
    assert graph.nodes["select_0"].args == (ValueRef("judge"), 0)
    assert all(graph.nodes[n].module is F.select for n in ("select_a", "select_b", "select_note"))


class Arithmetic(Module):
    def forward(self, n):
        return n + 1, 2 * n, n / 4, 10 - n, (n + 1) + 1


def test_arithmetic_on_a_numeric_placeholder_records_op_nodes():
    graph = trace(Arithmetic(), 3)
    assert list(graph.nodes) == ["n", "add", "mul", "div", "sub", "add_1", "add_2"]
    ops = [node.module for node in graph.nodes.values() if node.kind is NodeKind.OP]
    assert ops == [F.add, F.mul, F.div, F.sub, F.add, F.add]
    assert graph.nodes["add"].args == (ValueRef("n"), 1)
    assert graph.nodes["mul"].args == (2, ValueRef("n"))
    assert graph.nodes["sub"].args == (10, ValueRef("n"))
    assert graph.nodes["add_2"].dependencies == ("add_1",)
    assert unwrap(run_ops(graph, n=3)) == (4, 6, 0.75, 7, 5)


class Kinds(Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, n):
        outs = [F.upper(x), F.add(n, 1), F.parse_structured(x), F.is_error(x), F.select(x, "a")]
        self.seen = [(type(o), o.kind) for o in outs]
        return outs


def test_placeholders_carry_the_ops_declared_kind():
    module = Kinds()
    trace(module, "t", 1)
    assert module.seen == [
        (TracedValue, ValueKind.TEXT),
        (TracedValue, ValueKind.FLOAT),
        (TracedValue, ValueKind.STRUCTURED),
        (TracedValue, ValueKind.OTHER),
        (TracedValue, ValueKind.OTHER),
    ]


class Prompted(Module):
    def __init__(self):
        super().__init__()
        self.prefix = Parameter("Q:", description="what precedes the question")

    def forward(self, question):
        return F.concat(self.prefix, question, sep=" "), F.upper(f"<{question}>")


def test_parameters_and_fstrings_as_op_inputs_are_dependencies():
    graph = trace(Prompted(), "why?")
    concat, upper = graph.nodes["concat"], graph.nodes["upper"]
    assert concat.args == (ValueRef("param:prefix"), ValueRef("question"))
    assert concat.kwargs == {"sep": " "}
    assert concat.parameters == ("param:prefix",)
    assert upper.dependencies == ("question",)
    assert upper.args[0].kind is ValueKind.FSTRING


class Report(Module):
    def forward(self, scores, weights, title):
        total = F.sum([F.mul(s, w) for s, w in zip(scores, weights, strict=True)])
        top = F.max(scores)
        return {
            "title": F.strip(title),
            "summary": F.render(
                "{t}: {total:.1f} (top {top})", {"t": title, "total": total, "top": top}
            ),
            "mean": F.mean(scores),
            "safe": F.unwrap_or(F.div(total, F.sub(top, top)), -1),
        }


def test_traced_op_graph_gives_what_eager_calls_give():
    scores, weights, title = ["3", 4.5, 2], [1, 2, "0.5"], "  Essay "
    graph = trace(Report(), scores, weights, title)
    assert sum(node.kind is NodeKind.OP for node in graph.nodes.values()) == 11
    traced = run_ops(graph, scores=scores, weights=weights, title=title)
    eager = Report().forward(scores, weights, title)
    assert (
        unwrap(traced)
        == unwrap(eager)
        == {
            "title": "Essay",
            "summary": "  Essay : 13.0 (top 4.5)",
            "mean": 3.1666666666666665,
            "safe": -1,
        }
    )


class ParseThenAdd(Module):
    def forward(self, reply):
        return F.add(F.select(F.parse_structured(reply), "score"), 1)


def test_a_failing_node_short_circuits_the_nodes_after_it():
    graph = trace(ParseThenAdd(), "reply")
    out = run_ops(graph, reply="not json")
    assert out.kind is ValueKind.ERROR
    assert "the text is not JSON" in str(out.payload)
    assert out.meta["op"] == "add"
    assert run_ops(graph, reply='{"score": 4}') == Value(ValueKind.INT, 5)
