"""Define-by-run: async forward, calls recorded as they are made, over loopback HTTP.

Each program's control flow is checked against the simulator's request log:
the requests the server received are exactly the calls the flow should make.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait
import plait.functional as F
from plait import (
    CallError,
    ExecutionError,
    ExecutionSettings,
    LLMInference,
    Module,
    NodeKind,
    ResourceConfig,
    TraceError,
    execute,
    run,
    run_batch,
    run_sync,
    stream_batch,
)

ROUTER_RULES = [
    {"match": {"system": "Classify", "user": "integral"}, "reply": "math"},
    {"match": {"system": "Classify"}, "reply": "poetry"},
]


class Router(Module):
    def __init__(self):
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify the question: math or poetry.")
        self.math = LLMInference("smart", system_prompt="You are a mathematician.")
        self.poet = LLMInference("smart", system_prompt="You are a poet.")

    async def forward(self, question):
        label = await self.classify(question)
        expert = self.math if label.strip() == "math" else self.poet
        return expert(f"Question: {question}")


def systems(server):
    """The system prompt of every request the server received, in arrival order."""
    return [r.messages[0]["content"] for r in server.model.requests]


@pytest.fixture
def router_sim():
    with sim_server_thread(replies=ROUTER_RULES) as server:
        yield server


async def test_router_requests_only_the_branch_taken(router_sim):
    resources = http_resources(router_sim.url, "fast", "smart")
    result = await execute(Router(), "the integral of x", resources=resources)
    assert result.ok, result.failures
    assert systems(router_sim) == [
        "Classify the question: math or poetry.",
        "You are a mathematician.",
    ]
    assert list(result.nodes) == ["classify", "math"]
    assert result.output.endswith("Question: the integral of x")
    math_node = result.graph.nodes["math"]
    assert math_node.control == ("classify",)
    assert math_node.dependencies == ()
    assert "classify" in result.graph.ancestors("math", control=True)


async def test_router_items_of_a_batch_take_different_branches(router_sim):
    resources = http_resources(router_sim.url, "fast", "smart")
    items = await run_batch(
        Router(), ["the integral of x", "a rose", "an integral"], resources=resources
    )
    assert [item.ok for item in items] == [True, True, True]
    taken = [[n for n in item.result.nodes if n != "classify"] for item in items]
    assert taken == [["math"], ["poet"], ["math"]]
    assert sorted(systems(router_sim)).count("You are a poet.") == 1
    assert len(router_sim.model.requests) == 6


class Splitter(Module):
    def __init__(self):
        super().__init__()
        self.split = LLMInference(
            "fast",
            system_prompt="Split into sub-questions.",
            response_format={"type": "array", "items": {"type": "string"}},
        )
        self.answer = LLMInference("fast", system_prompt="Answer briefly.")
        self.join = LLMInference("smart", system_prompt="Combine the answers.")

    async def forward(self, question):
        subs = await self.split(question)
        answers = [self.answer(sub) for sub in subs]
        return self.join("\n".join(answers))


SPLIT_RULES = [
    {"match": {"system": "Split"}, "json": ["q1", "q2", "q3", "q4", "q5", "q6"]},
]


async def test_a_map_over_a_generated_list_overlaps_up_to_the_cap():
    with sim_server_thread(replies=SPLIT_RULES, latency=0.2) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=3)
        result = await execute(Splitter(), "big question", resources=resources)
        stats = server.model.stats
        answered = sorted(
            r.messages[-1]["content"] for r in server.model.requests if "briefly" in str(r.messages)
        )
    assert result.ok, result.failures
    assert answered == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert stats.peak_in_flight == 3  # six answers, three at a time: the cap, reached
    join_node = result.graph.nodes["join"]
    assert set(join_node.dependencies) == {f"answer{s}" for s in ["", "_1", "_2", "_3", "_4", "_5"]}
    assert join_node.control == ("split",)
    join_prompt = result.nodes["join"].request.messages[-1]["content"]
    assert join_prompt.count("\n") == 5 and "q6" in join_prompt


class Refine(Module):
    def __init__(self, rounds=4):
        super().__init__()
        self.rounds = rounds
        self.draft = LLMInference("fast", system_prompt="Draft an answer.")
        self.verify = LLMInference("smart", system_prompt="Reply PASS or FAIL.")

    async def forward(self, task):
        draft = await self.draft(task)
        for _ in range(self.rounds - 1):
            verdict = await self.verify(f"Check: {draft}")
            if verdict.startswith("PASS"):
                return draft
            draft = await self.draft(f"{task}\nImprove on: {draft}")
        return draft


async def test_a_refine_loop_stops_at_the_first_pass():
    rules = [
        {"match": {"system": "Reply PASS", "user": "Improve"}, "reply": "PASS"},
        {"match": {"system": "Reply PASS"}, "reply": "FAIL: too vague"},
    ]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart")
        result = await execute(Refine(), "write a haiku", resources=resources)
        sent = systems(server)
    assert result.ok
    assert sent == [
        "Draft an answer.",
        "Reply PASS or FAIL.",
        "Draft an answer.",
        "Reply PASS or FAIL.",
    ]
    assert list(result.nodes) == ["draft", "verify", "draft_1", "verify_1"]
    assert [result.graph.nodes[n].call_key for n in result.nodes] == [
        "/draft#0",
        "/verify#0",
        "/draft#1",
        "/verify#1",
    ]
    # The second draft exists because of the first verdict: a control edge, not data. The
    # first draft is an ancestor through the verdict (control edges are a transitive reduction).
    assert result.graph.nodes["draft_1"].control == ("verify",)
    assert result.graph.nodes["verify"].control == ("draft",)
    assert "draft" in result.graph.ancestors("draft_1", control=True)


class Fallback(Module):
    def __init__(self):
        super().__init__()
        self.primary = LLMInference("broken", system_prompt="Primary.")
        self.backup = LLMInference("fast", system_prompt="Backup.")

    async def forward(self, text):
        try:
            return await self.primary(text)
        except CallError as exc:
            self.seen = exc
            return await self.backup(text)


async def test_a_failed_call_raises_at_await_and_try_except_falls_back():
    rules = [{"match": {"model": "sim-broken"}, "kind": "client_error", "status": 400}]
    with sim_server_thread(faults=rules) as server:
        resources = http_resources(server.url, "fast", "broken")
        module = Fallback()
        result = await execute(module, "hi", resources=resources)
    assert result.ok
    assert result.nodes["primary"].status == "failed"
    assert result.nodes["backup"].status == "done"
    exc = module.seen
    assert isinstance(exc, plait.PlaitError)
    assert exc.node_id == "primary" and exc.endpoint == "broken" and exc.attempts == 1
    assert type(exc.cause).__name__ == "BadRequestError"
    assert exc.__cause__ is exc.cause


class Unawaited(Module):
    def __init__(self):
        super().__init__()
        self.primary = LLMInference("broken", system_prompt="Primary.")
        self.side = LLMInference("broken", system_prompt="Side.")
        self.ok = LLMInference("fast", system_prompt="Fine.")

    async def forward(self, text, mode):
        if mode == "output":
            return self.primary(text)
        self.side(text)  # never awaited, never used: its failure must still surface
        return await self.ok(text)


@pytest.mark.parametrize("mode", ["output", "dropped"])
async def test_a_failure_never_awaited_still_fails_the_run(mode):
    faults = [{"match": {"model": "sim-broken"}, "kind": "client_error", "status": 400}]
    with sim_server_thread(faults=faults) as server:
        resources = http_resources(server.url, "fast", "broken")
        with pytest.raises(ExecutionError) as caught:
            await run(Unawaited(), "hi", mode, resources=resources)
    failed = {f.node_id for f in caught.value.failures}
    assert failed == ({"primary"} if mode == "output" else {"side"})
    assert caught.value.partial.status == "failed"


class Crashes(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    async def forward(self, text):
        reply = await self.llm(text)
        return json.loads(reply)  # the simulator does not reply with JSON here


async def test_an_exception_in_forward_fails_the_run_keeping_completed_calls(router_sim):
    resources = http_resources(router_sim.url, "fast")
    result = await execute(Crashes(), "hi", resources=resources)
    assert result.status == "failed"
    assert result.nodes["llm"].status == "done"
    [failure] = result.failures
    assert failure.node_id == "forward" and isinstance(failure.cause, json.JSONDecodeError)
    with pytest.raises(ExecutionError, match="forward.*JSONDecodeError"):
        await run(Crashes(), "hi", resources=resources)


class Peek(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    async def forward(self, text):
        reply = self.llm(text)
        if reply:  # forgot to await
            return reply
        return None


async def test_using_a_placeholder_without_await_says_to_await(router_sim):
    resources = http_resources(router_sim.url, "fast")
    result = await execute(Peek(), "hi", resources=resources)
    assert result.status == "failed"
    message = str(result.forward_error)
    assert isinstance(result.forward_error, TraceError)
    assert "`await` the call first" in message and "test_dynamic.py" in message


class Inner(Module):
    """Async, used inside a traced pipeline."""

    def __init__(self):
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify the question: math or poetry.")
        self.math = LLMInference("smart", system_prompt="You are a mathematician.")

    async def forward(self, question):
        label = await self.classify(question)
        if label == "math":
            return self.math(question)
        return "not math"


class TracedOuter(Module):
    def __init__(self):
        super().__init__()
        self.summarize = LLMInference("fast", system_prompt="Summarize.")
        self.inner = Inner()
        self.report = LLMInference("smart", system_prompt="Report.")

    def forward(self, text):
        summary = self.summarize(text)
        decided = self.inner(summary)
        return self.report(f"Decision: {decided}")


async def test_an_async_module_inside_a_traced_pipeline_expands_while_it_runs():
    rules = [{"match": {"system": "Summarize"}, "reply": "the integral of x"}, *ROUTER_RULES]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart")
        result = await execute(TracedOuter(), "text", resources=resources)
        sent = systems(server)
    assert result.ok, result.failures
    assert sent == [
        "Summarize.",
        "Classify the question: math or poetry.",
        "You are a mathematician.",
        "Report.",
    ]
    nodes = result.graph.nodes
    assert nodes["inner"].kind is NodeKind.MODULE
    assert nodes["inner.classify"].module_path == "inner.classify"
    # The module's input was awaited for it before its forward began: the classifier's control
    # edge; the expert's comes from the classifier (a transitive reduction).
    assert nodes["inner.classify"].control == ("summarize",)
    assert nodes["inner.math"].control == ("inner.classify",)
    # The module node's output came from its calls: they are its inputs too.
    assert "inner.math" in nodes["inner"].dependencies
    report_prompt = result.nodes["report"].request.messages[-1]["content"]
    assert report_prompt.startswith("Decision: [") and "the integral of x" in report_prompt


class TracedChild(Module):
    def __init__(self):
        super().__init__()
        self.a = LLMInference("fast", system_prompt="A.")
        self.b = LLMInference("fast", system_prompt="B.")

    def forward(self, text):
        return self.b(f"after {self.a(text)}")


class AsyncParent(Module):
    def __init__(self):
        super().__init__()
        self.child = TracedChild()

    async def forward(self, text):
        first = await self.child(text)
        return self.child(first)


async def test_a_traced_child_called_from_an_async_forward(router_sim):
    resources = http_resources(router_sim.url, "fast")
    result = await execute(AsyncParent(), "x", resources=resources)
    assert result.ok
    assert list(result.nodes) == ["child.a", "child.b", "child.a_1", "child.b_1"]
    assert result.graph.nodes["child.b"].dependencies == ("child.a",)
    assert result.graph.nodes["child.a_1"].control == ("child.b",)
    assert len(router_sim.model.requests) == 4


@plait.op
async def lookup(topic: str) -> str:
    return f"facts about {topic}"


class OpCallsModule(Module):
    """A traced pipeline whose op calls a model itself."""

    def __init__(self):
        super().__init__()
        self.expand = LLMInference("fast", system_prompt="Expand.")

    def forward(self, text):
        return ask(self.expand, text)


@plait.op
async def ask(model, text):
    first = await model(text)
    return await model(f"again: {first}")


async def test_an_op_can_call_a_module_inside_a_run(router_sim):
    resources = http_resources(router_sim.url, "fast")
    result = await execute(OpCallsModule(), "x", resources=resources)
    assert result.ok, result.failures
    assert [r.messages[-1]["content"][:6] for r in router_sim.model.requests] == ["x", "again:"]
    assert result.output.endswith("again: " + result.nodes["expand"].output.payload)


class MapValues(Module):
    def __init__(self):
        super().__init__()
        self.split = LLMInference(
            "fast",
            system_prompt="Split into sub-questions.",
            response_format={"type": "array", "items": {"type": "string"}},
        )
        self.answer = LLMInference("fast", system_prompt="Answer briefly.")

    def forward(self, question):
        return F.map_values(self.answer, self.split(question))


async def test_map_values_over_a_module_makes_one_call_per_element():
    with sim_server_thread(replies=SPLIT_RULES) as server:
        resources = http_resources(server.url, "fast")
        result = await execute(MapValues(), "q", resources=resources)
    assert result.ok, result.failures
    assert len(result.output) == 6 and all(isinstance(a, str) for a in result.output)
    assert sum(1 for n in result.nodes.values() if n.kind == "llm") == 7


async def test_map_values_over_a_module_fails_loudly_when_a_call_fails():
    faults = [{"match": {"user": "q3"}, "kind": "client_error", "status": 400}]
    with sim_server_thread(replies=SPLIT_RULES, faults=faults) as server:
        resources = http_resources(server.url, "fast")
        with pytest.raises(ExecutionError, match="q3|HTTP 400"):
            await run(MapValues(), "q", resources=resources)


def test_run_sync_bind_and_settings_work_for_async_modules(router_sim):
    resources = http_resources(router_sim.url, "fast", "smart")
    assert run_sync(Router(), "an integral", resources=resources).endswith("an integral")

    async def bound():
        module = Router().bind(resources=resources)
        return await module("a rose")

    assert asyncio.run(bound()).endswith("a rose")

    async def with_settings():
        with ExecutionSettings(resources=resources):
            return await run(Router(), "an integral")

    assert asyncio.run(with_settings()).endswith("an integral")
    assert systems(router_sim).count("You are a poet.") == 1


async def test_stream_batch_yields_dynamic_items(router_sim):
    resources = http_resources(router_sim.url, "fast", "smart")
    seen = []
    async for item in stream_batch(Router(), ["integral", "rose"], resources=resources):
        seen.append((item.index, list(item.result.nodes)))
    assert sorted(seen) == [(0, ["classify", "math"]), (1, ["classify", "poet"])]


async def test_events_announce_each_node_before_it_queues(router_sim):
    resources = http_resources(router_sim.url, "fast", "smart")
    events = []
    await execute(Router(), "integral", resources=resources, on_event=events.append)
    kinds = [(e.type, e.node_id) for e in events if e.node_id]
    assert kinds.index(("node_added", "classify")) < kinds.index(("node_queued", "classify"))
    assert kinds.index(("node_completed", "classify")) < kinds.index(("node_added", "math"))
    added = next(e for e in events if e.type == "node_added" and e.node_id == "math")
    assert added.control == ("classify",) and added.kind == "llm"


async def test_a_call_to_an_alias_without_an_endpoint_is_refused_before_anything_is_sent(
    router_sim,
):
    resources = http_resources(router_sim.url, "fast")
    with pytest.raises(plait.ConfigError, match="'smart'"):
        await run(Router(), "x", resources=resources)
    assert router_sim.model.requests == ()


async def test_wrong_arguments_to_an_async_forward_are_refused_before_anything_is_sent(
    router_sim,
):
    resources = http_resources(router_sim.url, "fast", "smart")
    with pytest.raises(plait.ConfigError, match=r"Router.forward\(question\)"):
        await run(Router(), "x", "extra", resources=resources)
    assert router_sim.model.requests == ()


async def test_recorded_calls_queue_in_creation_order():
    with sim_server_thread(replies=SPLIT_RULES, latency=0.02) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=1)
        await execute(Splitter(), "q", resources=resources)
        answered = [
            r.messages[-1]["content"] for r in server.model.requests if "briefly" in str(r.messages)
        ]
    assert answered == ["q1", "q2", "q3", "q4", "q5", "q6"]


def test_a_trace_error_on_control_flow_points_to_async_forward():
    class Branches(Module):
        def __init__(self):
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, text):
            if self.llm(text) == "yes":
                return "y"
            return "n"

    with pytest.raises(TraceError, match=r"make forward `async def` and `await` the call"):
        plait.trace(Branches(), "x")


class Gathered(Module):
    def __init__(self):
        super().__init__()
        self.a = LLMInference("fast", system_prompt="A.")
        self.b = LLMInference("fast", system_prompt="B.")
        self.c = LLMInference("smart", system_prompt="C.")

    async def forward(self, text):
        first, second = await asyncio.gather(self.a(text), self.b(text))
        return self.c(f"{first} | {second}")


async def test_asyncio_gather_awaits_several_placeholders(router_sim):
    resources = http_resources(router_sim.url, "fast", "smart")
    result = await execute(Gathered(), "x", resources=resources)
    assert result.ok, result.failures
    assert result.graph.nodes["c"].control == ("a", "b")
    prompt = result.nodes["c"].request.messages[-1]["content"]
    assert prompt == f"{result.nodes['a'].output.payload} | {result.nodes['b'].output.payload}"


class Helpers(Module):
    """Calls made directly, from a helper method (twice), from a comprehension, and by a
    module created inside forward: each node names its helper scope and its source line."""

    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    def ask(self, text):
        return self.llm(text)  # LINE-ASK

    async def forward(self, text):
        first = await self.llm(text)  # LINE-DIRECT
        again = [self.ask(f"{first} {i}") for i in range(2)]
        extra = [self.llm(t) for t in ("x", "y")]  # LINE-COMPREHENSION
        late = LLMInference("fast")
        return [*again, *extra, late(text)]  # LINE-LATE


def _line(tag):
    source = Path(__file__).read_text().splitlines()
    return f"test_dynamic.py:{next(i for i, s in enumerate(source, 1) if s.endswith(tag))}"


async def test_recorded_calls_name_their_helper_scope_and_source_line():
    resources = ResourceConfig.simulated("fast")
    result = await execute(Helpers(), "q", resources=resources)
    assert result.ok
    nodes = [result.graph.nodes[nid] for nid in result.graph.nodes]
    seen = [(n.scope, n.source) for n in nodes]
    assert seen == [
        ((), _line("# LINE-DIRECT")),
        (("ask#1",), _line("# LINE-ASK")),
        (("ask#2",), _line("# LINE-ASK")),
        ((), _line("# LINE-COMPREHENSION")),
        ((), _line("# LINE-COMPREHENSION")),
        ((), _line("# LINE-LATE")),
    ]


class Repeats(Module):
    """Calls made again from the same place: a generator resumed by different helpers, and a
    helper whose comprehension calls twice, itself called twice."""

    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    def drafts(self, text):
        for i in range(3):
            yield self.llm(f"{text} {i}")  # LINE-GEN

    def take(self, drafts):
        return next(drafts)

    def take_again(self, drafts):
        return next(drafts)

    def both(self, text):
        return [self.llm(f"{text}{i}") for i in range(2)]  # LINE-BOTH

    async def forward(self, text):
        drafts = self.drafts(text)
        firsts = [self.take(drafts), self.take_again(drafts), next(drafts)]
        return [*firsts, *self.both(text), *self.both(text)]


async def test_repeated_calls_from_one_place_still_name_the_callers_they_came_through():
    result = await execute(Repeats(), "q", resources=ResourceConfig.simulated("fast"))
    assert result.ok
    seen = [(n.scope, n.source) for n in result.graph.nodes.values()]
    generator, both = _line("# LINE-GEN"), _line("# LINE-BOTH")
    assert seen == [
        (("take#1", "drafts#1"), generator),
        (("take_again#1", "drafts#1"), generator),  # the same generator frame, resumed elsewhere
        (("drafts#1",), generator),
        (("both#1",), both),
        (("both#1",), both),
        (("both#2",), both),
        (("both#2",), both),
    ]


class Alike(Module):
    """Two chained drafts, then a check of the second whose control edge and call site depend on
    the item: items that call alike share nodes, the rest must keep their own."""

    def __init__(self):
        super().__init__()
        self.draft = LLMInference("fast", system_prompt="Draft.")
        self.check = LLMInference("fast", system_prompt="Check.")

    async def forward(self, text):
        first = self.draft(text)
        second = self.draft(first)
        if text.startswith("await"):
            await first  # the check then has a control edge from the first draft
        if text.endswith("!"):
            return self.check(second)  # LINE-EXCLAIMED
        return self.check(second)  # LINE-PLAIN


async def test_batch_items_record_their_own_control_edges_and_call_sites():
    texts = ["await a", "b", "await c!", "d!", "await e", "f"]
    items = await run_batch(Alike(), texts, resources=ResourceConfig.simulated("fast"))
    assert all(item.ok for item in items)
    checks = [item.result.graph.nodes["check"] for item in items]
    assert [c.control for c in checks] == [("draft",), (), ("draft",), (), ("draft",), ()]
    exclaimed, plain = _line("# LINE-EXCLAIMED"), _line("# LINE-PLAIN")
    assert [c.source for c in checks] == [plain, plain, exclaimed, exclaimed, plain, plain]
    for item, text in zip(items, texts, strict=True):
        nodes = item.result.graph.nodes
        assert nodes["draft"].args == (text,)
        assert [n.dependencies for n in nodes.values()] == [(), ("draft",), ("draft_1",)]
        assert [n.call_key for n in nodes.values()] == ["/draft#0", "/draft#1", "/check#0"]
    # Each item's record of the run is its own: changing one item's graph leaves the others.
    first, second = items[0].result.graph, items[4].result.graph
    first.replace_node(dataclasses.replace(first.nodes["check"], source="edited"))
    assert second.nodes["check"].source == plain


class MakesItsOwn(Module):
    """Makes a module inside forward (not registered under the root) and calls it."""

    async def forward(self, text):
        helper = LLMInference("fast", system_prompt="Help.")
        return helper(text)


async def test_a_module_made_inside_forward_is_named_alike_in_every_item():
    items = await run_batch(
        MakesItsOwn(), ["a", "b", "c"], resources=ResourceConfig.simulated("fast")
    )
    assert all(item.ok for item in items)
    assert [list(item.result.graph.nodes) for item in items] == [["llm_inference"]] * 3


class Composes(Module):
    """Composes the judge's prompt from two drafts in a way that depends on the item."""

    def __init__(self):
        super().__init__()
        self.pro = LLMInference("fast", system_prompt="For.")
        self.con = LLMInference("fast", system_prompt="Against.")
        self.judge = LLMInference("fast", system_prompt="Judge.")

    async def forward(self, text):
        pro, con = self.pro(text), self.con(text)
        if text.startswith("r "):
            return self.judge(f"{con!r} vs {pro:>3}")
        if text.startswith("own "):
            return self.judge(f"{text}: {pro} vs {con}")
        if text.startswith("s "):
            return self.judge(f"{con} vs {pro}")  # the same text around, the other way round
        return self.judge(f"{pro} vs {con}")


def _sent(record):
    return record.request.messages[-1]["content"]


async def test_batch_items_composing_alike_each_send_their_own_replies():
    texts = ["a", "b", "r c", "own d", "s e", "r f", "own g", "h", "s i"]
    items = await run_batch(Composes(), texts, resources=ResourceConfig.simulated("fast"))
    assert all(item.ok for item in items)
    for item, text in zip(items, texts, strict=True):
        nodes = item.result.nodes
        pro, con = nodes["pro"].output.payload, nodes["con"].output.payload
        assert text in pro and text in con  # each item's drafts are its own
        if text.startswith("r "):
            expected, deps = f"{con!r} vs {pro:>3}", ("con", "pro")
        elif text.startswith("own "):
            expected, deps = f"{text}: {pro} vs {con}", ("pro", "con")
        elif text.startswith("s "):
            expected, deps = f"{con} vs {pro}", ("con", "pro")
        else:
            expected, deps = f"{pro} vs {con}", ("pro", "con")
        assert _sent(nodes["judge"]) == expected
        assert item.result.graph.nodes["judge"].dependencies == deps


class KeepsOne(Module):
    """The first item keeps its reply's placeholder on the class; the second composes a prompt
    from its own reply; the rest compose the same prompt with the kept placeholder instead."""

    kept = None

    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    async def forward(self, text):
        reply = self.llm(text)
        if KeepsOne.kept is None:
            KeepsOne.kept = reply
            await reply
            return reply
        if text == "own":
            return self.llm(f"{reply} and {reply}")
        await asyncio.sleep(0)  # after the item composing its own
        return self.llm(f"{reply} and {KeepsOne.kept}")


async def test_a_placeholder_kept_from_another_item_is_refused_not_resolved_in_this_one():
    # The other item's call has the same id here: resolving by id would read this item's reply.
    KeepsOne.kept = None
    texts = ["a", "own", "b", "c"]
    items = await run_batch(KeepsOne(), texts, resources=ResourceConfig.simulated("fast"))
    assert [item.ok for item in items] == [True, True, False, False]
    for item in items[2:]:
        assert isinstance(item.result.forward_error, TraceError)
        assert "another trace" in str(item.result.forward_error)


class OwnPrompt(Module):
    def __init__(self):
        super().__init__()
        self.draft = LLMInference("fast", system_prompt="Draft.")
        self.judge = LLMInference("fast", system_prompt="Judge.")

    async def forward(self, text):
        return self.judge(f"{text}: {self.draft(text)}")


async def test_prompts_each_item_composes_its_own_way_are_all_sent_and_not_all_kept():
    texts = [f"question {i}" for i in range(300)]
    items = await run_batch(OwnPrompt(), texts, resources=ResourceConfig.simulated("fast"))
    for item, text in zip(items, texts, strict=True):
        nodes = item.result.nodes
        assert _sent(nodes["judge"]) == f"{text}: {nodes['draft'].output.payload}"
    # The batch keeps a bounded number of parsed prompts (each key copies its item's text).
    assert 0 < len(items[0].result.graph.layout.fstrings) <= 256


# An awaited call runs in the forward's own task; calls not awaited still start at once, and
# cancelling a task the user made around an await never cancels the call.


class MakesThenSleeps(Module):
    def __init__(self, server):
        super().__init__()
        self.server = server
        self.llm = LLMInference("fast")
        self.received_while_asleep = None

    async def forward(self, text):
        replies = [self.llm(f"{text} {i}") for i in range(3)]  # made, not awaited
        await asyncio.sleep(0.3)  # not a placeholder: nothing of ours sees this await
        self.received_while_asleep = len(self.server.model.requests)
        return [await r for r in replies]


async def test_calls_made_and_not_awaited_are_sent_while_forward_awaits_something_else():
    with sim_server_thread(latency=0.1) as server:
        resources = http_resources(server.url, "fast")
        module = MakesThenSleeps(server)
        result = await execute(module, "q", resources=resources)
        peak = server.model.stats.peak_in_flight
    assert result.ok, result.failures
    assert module.received_while_asleep == 3
    assert peak == 3


class TimesOut(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")
        self.timed_out = False

    async def forward(self, text):
        reply = self.llm(text)
        try:
            await asyncio.wait_for(reply, timeout=0.05)
        except TimeoutError:
            self.timed_out = True
        return f"late: {await reply}"


async def test_a_timed_out_wait_does_not_cancel_the_call_and_a_later_await_gets_it():
    with sim_server_thread(latency=0.3) as server:
        resources = http_resources(server.url, "fast")
        module = TimesOut()
        result = await execute(module, "q", resources=resources)
        sent = len(server.model.requests)
    assert module.timed_out
    assert result.ok, result.failures
    assert result.nodes["llm"].status == "done" and result.nodes["llm"].attempts == 1
    assert result.output == f"late: {result.nodes['llm'].output.payload}"
    assert sent == 1


class CatchesEverything(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    async def forward(self, text):
        try:
            return await self.llm(text)
        except Exception:
            return "fallback"


async def test_a_fault_of_the_runner_inside_an_awaited_call_fails_the_run_not_the_await(
    router_sim, monkeypatch
):
    async def broken(self, node, prompt):
        raise RuntimeError("runner fault")

    monkeypatch.setattr(plait.execution.scheduler.GraphRun, "_call_endpoint", broken)
    resources = http_resources(router_sim.url, "fast")
    with pytest.raises(ExceptionGroup) as caught:  # a fault of plait's own, not the call's
        await execute(CatchesEverything(), "hi", resources=resources)
    assert caught.group_contains(RuntimeError, match="runner fault")
