"""Live views of define-by-run (async forward) runs: the drawn graph grows as calls are made."""

from __future__ import annotations

import asyncio

from _jupyter_support import magics, run_cell, shell

from plait import LLMInference, Module, ResourceConfig, execute, run_batch
from plait.execution.events import NodeAdded
from plait_jupyter import GraphView
from plait_jupyter.reprs import graph_html

RULES = [
    {"match": {"system": "Classify", "user": "integral"}, "reply": "math"},
    {"match": {"system": "Classify"}, "reply": "poetry"},
    # The third draft (the second improvement) passes.
    {
        "match": {"system": "Reply PASS", "user": "regex:(?s)Improve on:.*Improve on:"},
        "reply": "PASS",
    },
    {"match": {"system": "Reply PASS"}, "reply": "FAIL: <b>too vague</b>"},
]


class RouteRefine(Module):
    """A router (only the expert the label names is called), then a draft/verify loop."""

    def __init__(self) -> None:
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify the question: math or poetry.")
        self.math = LLMInference("fast", system_prompt="You are a mathematician.")
        self.poet = LLMInference("fast", system_prompt="You are a poet.")
        self.draft = LLMInference("fast", system_prompt="Draft an answer.")
        self.verify = LLMInference("fast", system_prompt="Reply PASS or FAIL.")

    async def forward(self, question: str) -> str:
        label = await self.classify(question)
        expert = self.math if label.strip() == "math" else self.poet
        draft = await self.draft(expert(f"Question: {question}"))
        for _ in range(4):
            verdict = await self.verify(f"Check: {draft}")
            if verdict.startswith("PASS"):
                break
            draft = await self.draft(f"{question}\nImprove on: {draft}")
        return draft


class Crashes(Module):
    def __init__(self) -> None:
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify the question: math or poetry.")

    async def forward(self, question: str) -> str:
        label = await self.classify(question)
        raise ValueError(f"no expert for {label!r}")


MATH_NODES = ["classify", "math", "draft", "verify", "draft_1", "verify_1", "draft_2", "verify_2"]


def sim(latency: float = 0.0) -> ResourceConfig:
    return ResourceConfig.simulated("fast", latency=latency, replies=RULES, max_concurrent=8)


def expected_states(result):
    return {
        nid: "cached" if r.status == "done" and (r.cached or r.restored) else r.status
        for nid, r in result.nodes.items()
    }


def groups_of(view, key):
    """The labels of the groups of node ``key``, outermost first (current grouping)."""
    groups = {g["id"]: g for g in view.graph_data["groups"][view.group_by]}
    node = next(n for n in view.graph_data["nodes"] if n["id"] == key)
    labels = []
    gid = node["groups"][view.group_by]
    while gid:
        labels.insert(0, groups[gid]["label"])
        gid = groups[gid]["parent"]
    return labels


def test_a_plait_cell_draws_exactly_the_calls_made_with_control_edges_and_iterations():
    cell = "%%plait --resources res\nresult = await execute(RouteRefine(), 'the integral of x')\n"
    outcome, _ = run_cell(cell, res=sim(), RouteRefine=RouteRefine)
    assert outcome.success
    (view,) = magics().last_cell.views
    result = shell().user_ns["result"]
    assert list(result.nodes) == MATH_NODES
    # The finished view is the RunResult: the same nodes, states and outputs; no "poet" node.
    assert [n["id"] for n in view.graph_data["nodes"]] == MATH_NODES
    assert view.node_states == expected_states(result)
    assert set(view.node_states.values()) == {"done"}
    for nid, record in result.nodes.items():
        assert view.node_details[nid]["output"]["text"] == record.output.payload
    assert view.run_info["tokens"] == result.usage.total_tokens
    # Control edges: the replies awaited since the previous awaited call (a transitive
    # reduction: each round of the loop follows the one before it).
    math = next(n for n in view.graph_data["nodes"] if n["id"] == "math")
    assert math["after"] == ["classify"] and math["call_key"] == "/math#0"
    last = next(n for n in view.graph_data["nodes"] if n["id"] == "verify_2")
    assert last["after"] == ["draft_2"]
    assert view.graph_data["control_edges"] == [
        ["classify", "math"],
        ["draft", "verify"],
        ["verify", "draft_1"],
        ["draft_1", "verify_1"],
        ["verify_1", "draft_2"],
        ["draft_2", "verify_2"],
    ]
    assert view.graph_data["edges"] == [["math", "draft"]]  # the unawaited expert reply: data
    # The loop's rounds are groups: "iteration n" holds the n-th draft and its verdict.
    assert [groups_of(view, k) for k in MATH_NODES] == [
        [],
        [],
        ["iteration 1"],
        ["iteration 1"],
        ["iteration 2"],
        ["iteration 2"],
        ["iteration 3"],
        ["iteration 3"],
    ]


def test_nodes_are_added_to_the_view_while_the_run_goes_on():
    view = GraphView()
    drawn: list[list[str]] = []
    serials: set[str] = set()

    def seen(change):
        drawn.append([n["id"] for n in change["new"].get("nodes", [])])
        serials.add(change["new"].get("serial"))

    view.observe(seen, names="graph_data")
    added: list[str] = []

    def on_event(event):
        if isinstance(event, NodeAdded):
            added.append(event.node_id)
        view.on_event(event)

    result = asyncio.run(
        execute(RouteRefine(), "the integral of x", resources=sim(0.15), on_event=on_event)
    )
    assert added == list(result.nodes) == MATH_NODES
    # The graph was sent several times as it grew, each time the calls made so far, in order.
    assert drawn[0] == [] and drawn[-1] == MATH_NODES
    assert len({len(ids) for ids in drawn}) >= 4
    assert all(ids == MATH_NODES[: len(ids)] for ids in drawn)
    assert len(serials) == 1  # one run: the front-end keeps the nodes it placed
    assert view.node_states == expected_states(result)


def test_a_finished_dynamic_result_and_its_graph_are_drawn():
    result = asyncio.run(execute(RouteRefine(), "a rose", resources=sim()))
    assert result.ok
    view = GraphView(result)
    ids = [n["id"] for n in view.graph_data["nodes"]]
    assert ids == list(result.nodes) and "poet" in ids and "math" not in ids
    assert view.node_states == expected_states(result)
    assert repr(view) == f"GraphView({len(ids)} nodes, done)"
    html = graph_html(result.graph)
    assert "after (control)" in html and "classify" in html
    # The text fallbacks say what came before each call too.
    poet_row = next(line for line in repr(result.graph).splitlines() if "poet" in line)
    assert "after (control)" in repr(result.graph) and poet_row.endswith("classify")
    page = result._repr_html_()
    assert "after (control)" in page
    assert "<b>too vague" not in page and "&lt;b&gt;too vague" in page  # model text escaped


def test_a_batch_of_dynamic_items_takes_different_branches_and_counts_items():
    cell = (
        "%%plait --resources res\n"
        "items = await run_batch(RouteRefine(), ['the integral of x', 'a rose'])\n"
        "bad = await run_batch(Crashes(), ['x'])\n"
    )
    outcome, _ = run_cell(cell, res=sim(), RouteRefine=RouteRefine, Crashes=Crashes)
    assert outcome.success
    view, crashed = magics().last_cell.views
    items = shell().user_ns["items"]
    keys = set(view.node_states)
    assert {"0/math", "1/poet"} <= keys and not {"0/poet", "1/math"} & keys
    expected = {
        f"{item.index}/{nid}": state
        for item in items
        for nid, state in expected_states(item.result).items()
    }
    assert view.node_states == expected
    assert view.run_info["items_done"] == 2 and view.run_info["items_failed"] == 0
    # The forward raised after its one call succeeded: the item failed.
    assert crashed.node_states == {"0/classify": "done"}
    assert crashed.run_info["items_done"] == 0 and crashed.run_info["items_failed"] == 1


class Inner(Module):
    def __init__(self) -> None:
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify the question: math or poetry.")
        self.math = LLMInference("fast", system_prompt="You are a mathematician.")

    async def forward(self, question: str) -> object:
        label = await self.classify(question)
        return self.math(question) if label == "math" else "not math"


class TracedOuter(Module):
    """A traced pipeline with an async module inside: one node that expands while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.summarize = LLMInference("fast", system_prompt="Summarize.")
        self.inner = Inner()
        self.report = LLMInference("fast", system_prompt="Report.")

    def forward(self, text: str) -> object:
        return self.report(f"Decision: {self.inner(self.summarize(text))}")


def test_an_async_module_inside_a_traced_graph_expands_in_the_view():
    resources = ResourceConfig.simulated(
        "fast",
        latency=0.15,
        replies=[{"match": {"system": "Summarize"}, "reply": "the integral of x"}, *RULES],
    )
    view = GraphView()
    drawn: list[list[str]] = []
    view.observe(lambda c: drawn.append([n["id"] for n in c["new"]["nodes"]]), names="graph_data")
    result = asyncio.run(
        execute(TracedOuter(), "text", resources=resources, on_event=view.on_event)
    )
    assert result.ok, result.failures
    assert drawn[0] == ["text", "summarize", "inner", "report"]  # traced: known at the start
    assert drawn[-1] == [*drawn[0], "inner.classify", "inner.math"]
    assert view.node_states == expected_states(result)
    groups = {g["id"]: g["label"] for g in view.graph_data["groups"]["module"]}
    inner_calls = [n for n in view.graph_data["nodes"] if n["id"].startswith("inner.")]
    assert {groups[n["groups"]["module"]] for n in inner_calls} == {"inner"}
    assert ["inner.math", "inner"] in view.graph_data["edges"]  # its output came from that call


def test_batch_items_of_a_traced_graph_each_grow_their_own_calls():
    resources = ResourceConfig.simulated("fast", replies=RULES)
    view = GraphView()
    items = asyncio.run(
        run_batch(TracedOuter(), ["x", "y"], resources=resources, on_event=view.on_event)
    )
    assert all(item.ok for item in items)
    # The items share one traced graph; each run (and the view) grows its own copy.
    assert [list(item.result.nodes) for item in items] == [
        ["text", "summarize", "inner", "report", "inner.classify"]
    ] * 2
    assert view.node_states == {
        f"{item.index}/{nid}": state
        for item in items
        for nid, state in expected_states(item.result).items()
    }
    assert view.run_info["items_done"] == 2


class Splitter(Module):
    """A map over a generated list: sibling calls of one path are not a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.split = LLMInference(
            "fast",
            system_prompt="Split into sub-questions.",
            response_format={"type": "array", "items": {"type": "string"}},
        )
        self.answer = LLMInference("fast", system_prompt="Answer briefly.")
        self.join = LLMInference("fast", system_prompt="Combine the answers.")

    async def forward(self, question: str) -> object:
        subs = await self.split(question)
        return self.join("\n".join([self.answer(sub) for sub in subs]))


def test_a_map_is_a_fan_out_not_iterations():
    resources = ResourceConfig.simulated(
        "fast", replies=[{"match": {"system": "Split"}, "json": ["q1", "q2", "q3"]}]
    )
    result = asyncio.run(execute(Splitter(), "big question", resources=resources))
    view = GraphView(result)
    answers = ["answer", "answer_1", "answer_2"]
    assert [n["id"] for n in view.graph_data["nodes"]] == ["split", *answers, "join"]
    assert view.graph_data["groups"]["module"] == []  # no "iteration" groups
    assert view.graph_data["control_edges"] == [["split", a] for a in answers]
    assert sorted(view.graph_data["edges"]) == [[a, "join"] for a in answers]
