"""Everything the static path offers, on define-by-run runs: limits, retries, cache, budgets,
checkpoint/resume (also after a SIGKILL), profiling, what-if re-runs and training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread
from test_dynamic import ROUTER_RULES, Router, TracedOuter

import plait
from plait import BatchItem, LLMInference, Module, execute, run, run_batch
from plait.errors import BudgetExceeded
from plait.optimization import VerifierLoss

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}


class Polished(Router):
    """Route, then polish the expert's answer: three calls, the middle one chosen at run time."""

    def __init__(self):
        super().__init__()
        self.polish = LLMInference("fast", system_prompt="Polish the answer.")

    async def forward(self, question):
        label = await self.classify(question)
        expert = self.math if label.strip() == "math" else self.poet
        return self.polish(expert(f"Question: {question}"))


def sent(server):
    return [r.messages[0]["content"] for r in server.model.requests]


async def test_a_checkpointed_dynamic_run_resumes_without_sending_anything(tmp_path):
    path = tmp_path / "run.jsonl"
    with sim_server_thread(replies=ROUTER_RULES) as server:
        resources = http_resources(server.url, "fast", "smart")
        first = await execute(Polished(), "an integral", resources=resources, checkpoint=path)
        before = len(server.model.requests)
        again = await execute(Polished(), "an integral", resources=resources, checkpoint=path)
        after = len(server.model.requests)
    assert before == 3 and after == 3
    assert again.output == first.output
    assert [r.restored for r in again.nodes.values()] == [True, True, True]
    keys = [json.loads(line).get("node") for line in path.read_text().splitlines()]
    assert [k for k in keys if k] == ["/classify#0", "/math#0", "/polish#0"]


async def test_a_resumed_run_sends_only_what_changed(tmp_path):
    """Same call path and occurrence but other inputs: that call (and what follows) is sent."""
    path = tmp_path / "run.jsonl"
    with sim_server_thread(replies=ROUTER_RULES) as server:
        resources = http_resources(server.url, "fast", "smart")
        await execute(Polished(), "an integral", resources=resources, checkpoint=path)
        result = await execute(Polished(), "a rose", resources=resources, checkpoint=path)
    assert [r.restored for r in result.nodes.values()] == [False, False, False]
    assert list(result.nodes) == ["classify", "poet", "polish"]


def test_a_dynamic_batch_killed_mid_way_resumes_without_resending_completed_calls(tmp_path):
    path = tmp_path / "batch.jsonl"
    worker = [sys.executable, str(HERE / "_dynamic_crash_worker.py")]
    with sim_server_thread(latency=0.05) as server:
        proc = subprocess.Popen(
            [*worker, server.url, str(path), "24"], stdout=subprocess.PIPE, text=True, env=ENV
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_text().count('"node"') >= 30:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        completed = [
            json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")
        ]
        completed = [r for r in completed if "node" in r]
        assert 30 <= len(completed) < 120, "the worker should have been killed mid-run"
        seen_before = server.model.stats.total

        resumed = subprocess.run(
            [*worker, server.url, str(path), "24"],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert resumed.stdout.strip() == "done 24", resumed.stderr
        requests = server.model.requests

    later = requests[seen_before:]
    # Only calls not completed before the kill are sent again (at most the 4 in flight repeat).
    assert len(later) <= 120 - len(completed) + 4
    bodies = [json.dumps(r.body, sort_keys=True) for r in requests]
    assert len(bodies) - len(set(bodies)) <= 4
    records = [json.loads(line) for line in path.read_text().splitlines() if '"node"' in line]
    keys = [(r["node"], r["inputs"]) for r in records]
    assert len(keys) == len(set(keys)) == 120


async def test_retries_caps_and_rate_limits_hold_for_recorded_calls():
    faults = [{"kind": "server_error", "status": 503, "rate": 0.5, "attempts": "first"}]
    with sim_server_thread(replies=ROUTER_RULES, faults=faults, latency=0.05) as server:
        resources = http_resources(
            server.url, "fast", "smart", max_concurrent=2, rpm=1200, max_retries=4
        )
        questions = [f"integral {i}" if i % 2 else f"rose {i}" for i in range(10)]
        items = await run_batch(Polished(), questions, resources=resources, progress=False)
        stats = server.model.stats
        arrivals = sorted(r.arrival for r in server.model.requests)
    assert all(item.ok for item in items)
    # rpm=1200 per endpoint, two endpoints: at most 2 x (20 + 1) starts in any 1-second window.
    assert max(sum(1 for t in arrivals if s <= t < s + 1.0) for s in arrivals) <= 42
    assert stats.by_status.get(503, 0) > 0  # faults were injected and retried away
    assert stats.peak_in_flight <= 4  # two endpoints, two slots each
    retried = sum(r.attempts > 1 for item in items for r in item.result.nodes.values())
    assert retried == stats.by_status[503]


async def test_a_budget_stops_a_dynamic_run_and_keeps_what_completed():
    resources = plait.ResourceConfig.simulated("fast", "smart", replies=ROUTER_RULES)
    with pytest.raises(BudgetExceeded) as caught:
        await run(Polished(), "an integral", resources=resources, max_tokens=10)
    partial = caught.value.partial
    assert partial.status == "budget_exceeded"
    assert partial.nodes["classify"].status == "done"


async def test_the_cache_serves_repeated_dynamic_calls_for_free(tmp_path):
    with sim_server_thread(replies=ROUTER_RULES) as server:
        resources = http_resources(server.url, "fast", "smart")
        await execute(Polished(), "an integral", resources=resources, cache=tmp_path)
        again = await execute(Polished(), "an integral", resources=resources, cache=tmp_path)
        assert len(server.model.requests) == 3
    assert all(r.cached for r in again.nodes.values())


async def test_profiling_follows_the_recorded_graph_with_its_control_edges():
    resources = plait.ResourceConfig.simulated("fast", "smart", replies=ROUTER_RULES, latency=0.05)
    result = await execute(Polished(), "an integral", resources=resources, profile=True)
    report = result.bubbles()
    assert report.critical_path == ["classify", "math", "polish"]
    trace = result.chrome_trace()
    names = {e.get("args", {}).get("node") for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"classify", "math", "polish"} <= names


async def test_a_what_if_rerun_replays_the_forward_and_may_take_another_branch():
    rules = [{"match": {"system": "Always math"}, "reply": "math"}, *ROUTER_RULES]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart")
        first = await execute(Polished(), "a rose", resources=resources)
        assert list(first.nodes) == ["classify", "poet", "polish"]
        before = len(server.model.requests)
        edited = await first.rerun("classify", system_prompt="Always math")
        new_requests = sent(server)[before:]
        before = len(server.model.requests)
        polished = await first.rerun("polish", temperature=0.3)
        polish_requests = sent(server)[before:]
    assert new_requests == ["Always math", "You are a mathematician.", "Polish the answer."]
    assert list(edited.nodes) == ["classify", "math", "polish"]
    assert "poet" not in edited.graph.nodes
    assert edited.parent is first and "classify" in edited.overrides
    changed = {c.node_id for c in edited.diff()}
    assert {"classify", "math", "poet", "polish"} == changed
    # Re-running the last call reuses the two before it: one request.
    assert polish_requests == ["Polish the answer."]
    assert [n for n, r in polished.nodes.items() if r.reused] == ["classify", "poet"]


async def test_a_rerun_inside_an_async_module_of_a_traced_graph():
    rules = [{"match": {"system": "Summarize"}, "reply": "the integral of x"}, *ROUTER_RULES]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart")
        first = await execute(TracedOuter(), "text", resources=resources)
        before = len(server.model.requests)
        again = await first.rerun("inner.math", temperature=0.5)
        resent = sent(server)[before:]
    assert resent == ["You are a mathematician.", "Report."]
    assert again.nodes["summarize"].reused and again.nodes["inner.classify"].reused
    assert again.nodes["inner.math"].request.temperature == 0.5


class SharedTraced(Module):
    def __init__(self):
        super().__init__()
        self.inner = Router()

    def forward(self, text):
        return self.inner(text)


async def test_batch_items_sharing_a_traced_graph_record_their_own_calls():
    resources = plait.ResourceConfig.simulated("fast", "smart", replies=ROUTER_RULES)
    module = SharedTraced()
    items: list[BatchItem] = await run_batch(
        module, ["an integral", "a rose", "another integral"], resources=resources
    )
    assert [sorted(item.result.graph.nodes) for item in items] == [
        ["inner", "inner.classify", "inner.math", "text"],
        ["inner", "inner.classify", "inner.poet", "text"],
        ["inner", "inner.classify", "inner.math", "text"],
    ]
    assert plait.trace(module, "x").nodes.keys() == {"text", "inner"}


async def test_backward_reaches_the_classifier_through_its_control_edge_and_not_the_expert_not_taken():
    resources = plait.ResourceConfig.simulated("fast", "smart", replies=ROUTER_RULES)
    module = Polished()
    for llm in (module.classify, module.math, module.poet, module.polish):
        llm.system_prompt = plait.Parameter(llm.system_prompt, description="prompt")
    module.train()
    out = await run(module, "an integral", resources=resources)
    feedback = await VerifierLoss(lambda output, target: (False, "too long"))(out)
    await feedback.backward()
    heard = {
        name: len(param.feedback) for name, param in module.named_parameters() if param.feedback
    }
    assert heard == {
        "classify.system_prompt": 1,
        "math.system_prompt": 1,
        "polish.system_prompt": 1,
    }
    message = module.classify.system_prompt.feedback[0].content
    assert "Your reply decided that this call was made" in message


async def test_a_global_cap_holds_across_endpoints_for_recorded_calls():
    from test_dynamic import SPLIT_RULES, Splitter

    with sim_server_thread(replies=SPLIT_RULES, latency=0.1) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=4)
        capped = plait.ResourceConfig(
            {alias: resources[alias] for alias in resources.aliases}, max_concurrent=2
        )
        items = await run_batch(Splitter(), ["a", "b", "c"], resources=capped, progress=False)
        peak = server.model.stats.peak_in_flight
    assert all(item.ok for item in items)
    assert peak == 2
