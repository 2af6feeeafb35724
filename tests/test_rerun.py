"""What-if re-runs (over loopback HTTP) and the Python side of the explorer's "Edit & re-run"."""

import pytest
from _exec_support import http_resources
from _jupyter_support import one_endpoint_pipeline, resources
from _sim_support import sim_server_thread

import plait.functional as F
from plait import LLMInference, Module, Parameter, execute, execute_sync, op, run_batch, trace
from plait.errors import ConfigError
from plait.execution import NodeChange, NodeOverride
from plait_jupyter import GraphView

SECRET = "sk-rerun-SECRET-7d2e"


class Chain4(Module):
    def __init__(self):
        super().__init__()
        self.prompt = Parameter("Step three.", description="third step instructions")
        self.s1 = LLMInference("fast", system_prompt="Step one.")
        self.s2 = LLMInference("fast", system_prompt="Step two.")
        self.s3 = LLMInference("fast", system_prompt=self.prompt)
        self.s4 = LLMInference("fast", system_prompt="Step four.")

    def forward(self, text):
        return self.s4(self.s3(self.s2(self.s1(text))))


@op
def body(reply):
    """The simulator's echo reply without its "[digest] " prefix."""
    return reply.split("] ", 1)[1]


class Diamond(Module):
    """text -> a -> (b, body -> strip -> c) -> d."""

    def __init__(self):
        super().__init__()
        self.a = LLMInference("fast", system_prompt="A.")
        self.b = LLMInference("fast", system_prompt="B.")
        self.c = LLMInference("fast", system_prompt="C.")
        self.d = LLMInference("fast", system_prompt="D.")

    def forward(self, text):
        a = self.a(text)
        return self.d(f"{self.b(a)}|{self.c(F.strip(body(a)))}")


def systems(server):
    """The system prompt of each request, in arrival order (parallel branches: sort them)."""
    return [r.messages[0]["content"] for r in server.model.requests]


def users(server):
    return [r.messages[-1]["content"] for r in server.model.requests]


async def test_a_chain_rerun_at_node_2_sends_three_requests_and_reuses_node_1():
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        parent = await execute(Chain4(), "hello", resources=resources)
        server.model.clear()
        child = await parent.rerun("s2", system_prompt="Step two, edited.")
        assert systems(server) == ["Step two, edited.", "Step three.", "Step four."]
        assert users(server)[0] == parent.nodes["s1"].output.payload
    for nid in ("text", "s1"):
        assert child.nodes[nid].output is parent.nodes[nid].output
        assert child.nodes[nid].reused
        assert child.nodes[nid].attempts == 0
    assert child.nodes["s1"].request is parent.nodes["s1"].request
    assert child.nodes["s1"].usage.total_tokens == 0
    assert child.to_dataframe()["reused"].tolist() == [True, True, False, False, False]
    assert child.parent is parent
    assert child.overrides == {"s2": NodeOverride(system_prompt="Step two, edited.")}
    assert child.output != parent.output
    assert child.nodes["s2"].request.messages[0]["content"] == "Step two, edited."
    assert child.usage.total_tokens == sum(
        child.nodes[n].usage.total_tokens for n in ("s2", "s3", "s4")
    )


async def test_only_the_rerun_nodes_start():
    events = []
    with sim_server_thread() as server:
        parent = await execute(Chain4(), "hello", resources=http_resources(server.url, "fast"))
        await parent.rerun("s3", temperature=0.7, on_event=events.append)
        assert [r.body.get("temperature") for r in server.model.requests[4:]] == [0.7, None]
    assert [e.node_id for e in events if e.type == "node_started"] == ["s3", "s4"]
    assert [e.node_id for e in events if e.type == "node_completed"] == [
        "text",
        "s1",
        "s2",
        "s3",
        "s4",
    ]


async def test_a_diamond_rerun_at_one_branch_reruns_that_branch_and_the_join_only():
    with sim_server_thread() as server:
        parent = await execute(Diamond(), "hello", resources=http_resources(server.url, "fast"))
        assert sorted(systems(server)) == ["A.", "B.", "C.", "D."]
        server.model.clear()
        child = await parent.rerun("b", system_prompt="B, edited.")
        assert systems(server) == ["B, edited.", "D."]
    reused = [nid for nid, r in child.nodes.items() if r.reused]
    assert reused == ["text", "a", "body", "strip", "c"]
    assert child.nodes["c"].output is parent.nodes["c"].output
    assert [c.node_id for c in child.diff()] == ["b", "d"]


async def test_diff_names_exactly_the_nodes_whose_output_changed():
    with sim_server_thread() as server:
        parent = await execute(Diamond(), "hello", resources=http_resources(server.url, "fast"))
        server.model.clear()
        # a's reply changes (new digest) but body() strips the digest, so c's input does not.
        child = await parent.rerun("a", system_prompt="A, edited.")
        assert sorted(systems(server)) == ["A, edited.", "B.", "C.", "D."]
    changes = child.diff()
    assert [c.node_id for c in changes] == ["a", "b", "d"]
    assert changes[0] == NodeChange(
        "a", "a", parent.nodes["a"].output.payload, child.nodes["a"].output.payload
    )
    assert child.nodes["c"].output.payload == parent.nodes["c"].output.payload
    assert parent.diff(child) == changes
    assert [c.node_id for c in child.diff(parent)] == ["a", "b", "d"]
    assert child.diff(parent)[0].before == child.nodes["a"].output.payload
    assert parent.diff(parent) == []


def test_a_node_change_reads_well():
    change = NodeChange("s2", "pipeline.s2", "old text", "x" * 100)
    assert repr(change) == f"NodeChange('s2': 'old text' -> '{'x' * 57}...')"


async def test_the_edit_applies_to_the_rerun_only():
    module = Chain4()
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        parent = await execute(module, "hello", resources=resources)
        await parent.rerun("s3", system_prompt="Step three, edited.")
        again = await execute(module, "hello", resources=resources)
    assert module.prompt.value == "Step three."
    assert module.prompt.version == 0
    assert again.output == parent.output


async def test_adopt_writes_the_edit_into_the_parameter_and_nothing_else():
    module = Chain4()
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        parent = await execute(module, "hello", resources=resources)
        child = await parent.rerun("s3", system_prompt="Step three, edited.")
        before = module.state_dict()
        outputs = (parent.output, child.output)
        assert child.adopt("s3") is module.prompt
        after = module.state_dict()
        adopted = await execute(module, "hello", resources=resources)
    assert {k for k in before if before[k] != after[k]} == {"prompt"}
    assert after["prompt"] == "Step three, edited."
    assert module.prompt.version == 1
    assert [m.system_text() for m in (module.s1, module.s2, module.s4)] == [
        "Step one.",
        "Step two.",
        "Step four.",
    ]
    assert (parent.output, child.output) == outputs
    assert adopted.output == child.output


async def test_adopt_refuses_a_fixed_prompt_and_an_unedited_node():
    with sim_server_thread() as server:
        parent = await execute(Chain4(), "hello", resources=http_resources(server.url, "fast"))
        child = await parent.rerun("s2", system_prompt="Step two, edited.")
    with pytest.raises(ConfigError, match=r"'s2'.*fixed str, not a Parameter"):
        child.adopt("s2")
    with pytest.raises(ConfigError, match=r"'s3'.*did not edit.*edited system prompts: 's2'"):
        child.adopt("s3")
    with pytest.raises(ConfigError, match=r"edited system prompts: none.*rerun\('s1'"):
        parent.adopt("s1")


async def test_an_op_node_takes_an_input_override():
    with sim_server_thread() as server:
        parent = await execute(Diamond(), "hello", resources=http_resources(server.url, "fast"))
        server.model.clear()
        child = await parent.rerun("body", input="[0] replaced text  ")
        assert systems(server) == ["C.", "D."]
        assert users(server)[0] == "replaced text"
    assert child.nodes["body"].output.payload == "replaced text  "
    assert child.nodes["body"].inputs[0][0].payload == "[0] replaced text  "
    assert child.nodes["strip"].output.payload == "replaced text"


async def test_a_functional_op_and_an_llm_node_take_an_input_override():
    with sim_server_thread() as server:
        parent = await execute(Diamond(), "hello", resources=http_resources(server.url, "fast"))
        server.model.clear()
        stripped = await parent.rerun("strip", input="  padded  ")
        assert users(server)[0] == "padded"
        server.model.clear()
        await parent.rerun("c", input="what if c saw this?")
        assert users(server) == ["what if c saw this?", users(server)[1]]
        assert systems(server) == ["C.", "D."]
    assert stripped.nodes["strip"].output.payload == "padded"


async def test_an_input_node_rerun_runs_everything_downstream_with_the_new_value():
    with sim_server_thread() as server:
        parent = await execute(Chain4(), "hello", resources=http_resources(server.url, "fast"))
        server.model.clear()
        child = await parent.rerun("text", input="goodbye")
        assert systems(server) == ["Step one.", "Step two.", "Step three.", "Step four."]
        assert users(server)[0] == "goodbye"
    assert child.nodes["text"].output.payload == "goodbye"
    assert [c.node_id for c in child.diff()] == ["text", "s1", "s2", "s3", "s4"]


async def test_nodes_that_did_not_complete_run_again():
    fault = {"kind": "client_error", "status": 400, "match": {"system": "Step three."}}
    with sim_server_thread(faults=[fault]) as broken:
        parent = await execute(Chain4(), "hello", resources=http_resources(broken.url, "fast"))
    assert [parent.nodes[n].status for n in ("s3", "s4")] == ["failed", "skipped"]
    with sim_server_thread() as healthy:
        child = await parent.rerun("s4", resources=http_resources(healthy.url, "fast"))
        assert systems(healthy) == ["Step three.", "Step four."]
    assert child.ok
    assert child.nodes["s2"].output is parent.nodes["s2"].output


async def test_batch_items_rerun_on_their_own_result():
    with sim_server_thread() as server:
        items = await run_batch(
            Chain4(), ["first", "second"], resources=http_resources(server.url, "fast")
        )
        server.model.clear()
        child = await items[1].result.rerun("s2", system_prompt="Step two, edited.")
        assert systems(server) == ["Step two, edited.", "Step three.", "Step four."]
    assert child.parent is items[1].result
    assert child.nodes["s1"].output is items[1].result.nodes["s1"].output
    assert child.nodes["text"].output.payload == "second"


def test_rerun_sync_blocks_until_done():
    with sim_server_thread() as server:
        parent = execute_sync(Chain4(), "hello", resources=http_resources(server.url, "fast"))
        child = parent.rerun_sync("s4", system_prompt="Step four, edited.")
        assert systems(server)[4:] == ["Step four, edited."]
    assert child.parent is parent
    assert [c.node_id for c in child.diff()] == ["s4"]


async def test_the_key_stays_out_of_reprs():
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", api_key=SECRET)
        parent = await execute(Chain4(), "hello", resources=resources)
        child = await parent.rerun("s2", system_prompt="Step two, edited.")
    assert child.resources is parent.resources
    assert repr(child).endswith("re-run at 's2')")
    for shown in (repr(child), repr(child.overrides), repr(child.diff()), repr(child.resources)):
        assert SECRET not in shown


async def test_bad_reruns_are_refused_with_the_fix():
    with sim_server_thread() as server:
        parent = await execute(Diamond(), "hello", resources=http_resources(server.url, "fast"))
    with pytest.raises(ConfigError, match=r"no such node; its nodes are text, a, b, body"):
        await parent.rerun("nope")
    with pytest.raises(ConfigError, match=r"system_prompt only apply to LLM nodes.*node \(body\)"):
        await parent.rerun("body", system_prompt="x")
    with pytest.raises(ConfigError, match=r"temperature must be a number from 0 to 2; got 3"):
        await parent.rerun("b", temperature=3)
    with pytest.raises(ConfigError, match=r"unknown re-run option\(s\) tempurature"):
        await parent.rerun("b", tempurature=0.5)


@op
def pack(text):
    return {"text": text, "n": 1}


@op
def describe(data):
    return f"{data['text']} x{data['n']}"


class Packed(Module):
    """An op whose input is structured (edited as JSON), then an LLM call."""

    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast", system_prompt="Echo.")

    def forward(self, text):
        return self.llm(describe(pack(text)))


def joined(runs):
    return "".join(text for _, text in runs)


async def test_the_view_reruns_an_edited_node_and_marks_what_changed():
    result = await execute(one_endpoint_pipeline(), "Revenue rose.", resources=resources())
    view = GraphView(result)
    assert view.whatif == {"available": True}
    form = view.edit_form("summarize")
    assert form == {
        "kind": "llm",
        "system_prompt": "Summarize the input.",
        "temperature": None,
        "parameter": None,
        "input_label": "Input (the user message)",
        "input": "Revenue rose.",
        "input_kind": "text",
    }
    task = view.receive(
        {"type": "rerun", "node": "summarize", "system_prompt": "Summarize in French."}
        | {"input": "Revenue rose.", "temperature": None}
    )
    assert view.whatif["status"] == "running"
    await task
    new = view.result
    assert new.parent is result
    assert new.overrides == {"summarize": NodeOverride(system_prompt="Summarize in French.")}
    info = view.whatif
    assert info["status"] == "done"
    assert (info["node"], info["edited"]) == ("summarize", ["system prompt"])
    assert info["changed"] == ["summarize", "analyze"]
    assert (info["rerun"], info["reused"]) == (["summarize", "analyze"], ["text"])
    assert info["adopt"] is None
    analyze = info["changes"]["analyze"]
    assert joined(analyze["before"]) == result.output
    assert joined(analyze["after"]) == new.output
    assert {op for op, _ in analyze["after"]} == {"=", "+"}
    assert view.selected == "summarize"
    assert view.node_states == {"text": "done", "summarize": "done", "analyze": "done"}


async def test_adopt_from_the_view_writes_the_parameter():
    module = one_endpoint_pipeline()
    view = GraphView(await execute(module, "Revenue rose.", resources=resources()))
    await view.rerun("analyze", system_prompt="Be blunt.")
    assert view.whatif["adopt"] == {"parameter": "instructions", "done": False}
    assert module.instructions.value == "Be concise and concrete."
    view.receive({"type": "adopt", "node": "analyze"})
    assert module.instructions.value == "Be blunt."
    assert view.whatif["adopt"] == {"parameter": "instructions", "done": True}
    message = view.whatif["message"]
    assert "parameter 'instructions' now holds the edited prompt (version 1)" in message
    view.receive({"type": "adopt", "node": "summarize"})
    assert "did not edit its system prompt" in view.whatif["message"]


async def test_an_op_input_is_edited_as_json_and_bad_json_is_reported():
    view = GraphView(await execute(Packed(), "hello", resources=resources()))
    form = view.edit_form("describe")
    assert (form["kind"], form["system_prompt"], form["input_kind"]) == ("op", None, "json")
    assert form["input"] == '{\n  "text": "hello",\n  "n": 1\n}'
    task = view.receive({"type": "rerun", "node": "describe", "input": '{"text": "bye", "n": 2}'})
    await task
    assert view.result.nodes["describe"].output.payload == "bye x2"
    assert view.whatif["changed"] == ["describe", "llm"]
    assert view.receive({"type": "rerun", "node": "describe", "input": "{oops"}) is None
    assert view.whatif["status"] == "error"
    assert "edited as JSON, and the edit is not valid JSON" in view.whatif["message"]


async def test_a_batch_view_reruns_one_item():
    items = await run_batch(one_endpoint_pipeline(), ["one", "two"], resources=resources())
    view = GraphView(items)
    assert view.whatif == {"available": True}
    new = await view.rerun("1/summarize", input="three")
    assert new.parent is items[1].result
    assert view.whatif["changed"] == ["1/summarize", "1/analyze"]
    assert view.whatif["reused"] == ["1/text"]
    assert len(view.node_states) == 6
    assert view.edit_form("1/summarize")["input"] == "three"
    assert view.edit_form("0/summarize")["input"] == "one"


async def test_a_view_without_a_finished_run_explains_why_it_cannot_rerun():
    view = GraphView(trace(one_endpoint_pipeline(), "x"))
    assert view.whatif == {"available": False}
    sent = []
    view.send = sent.append
    view.receive({"type": "edit", "node": "summarize"})
    assert sent[0]["error"].startswith("ConfigError: this view shows no finished run to re-run")
    live = GraphView()
    await execute(one_endpoint_pipeline(), "x", resources=resources(), on_event=live.on_event)
    assert live.whatif == {"available": True}
