"""Running traced pipelines over real HTTP against the simulator on loopback."""

import asyncio
from dataclasses import dataclass

import pytest
from _exec_support import eager, http_resources
from _models import SummarizeThenAnalyze
from _sim_support import sim_server_thread

import plait.functional as F
from plait import (
    ConfigError,
    ExecutionError,
    ExecutionSettings,
    LLMInference,
    Module,
    ResourceConfig,
    execute,
    run,
    run_sync,
)
from plait.errors import BadRequestError


class FanOut(Module):
    def __init__(self, width=3, alias="fast"):
        super().__init__()
        self.branches = [LLMInference(alias, system_prompt=f"Angle {i}") for i in range(width)]
        for i, branch in enumerate(self.branches):
            setattr(self, f"b{i}", branch)
        self.join = LLMInference(alias, system_prompt="Combine.")

    def forward(self, text):
        parts = [branch(text) for branch in self.branches]
        return self.join("\n".join(parts))


@pytest.fixture
def sim():
    with sim_server_thread() as server:
        yield server


def user_texts(server, model):
    return [r.messages[-1]["content"] for r in server.model.requests if r.model == model]


async def test_anchor_example_runs_end_to_end_and_the_analyzer_gets_the_summary(sim):
    resources = http_resources(sim.url, "fast", "smart")
    output = await run(
        SummarizeThenAnalyze(), "Revenue rose 12% while costs fell.", resources=resources
    )
    (summary_prompt,) = user_texts(sim, "sim-fast")
    (analysis_prompt,) = user_texts(sim, "sim-smart")
    assert summary_prompt == "Revenue rose 12% while costs fell."
    summary_reply = analysis_prompt.removeprefix("Summary:\n").removesuffix("\n\nAnalysis:")
    assert summary_reply.endswith(
        "Revenue rose 12% while costs fell."
    ) and summary_reply.startswith("[")
    assert output.endswith(analysis_prompt[:200]) or analysis_prompt[:100] in output
    system = [r.messages[0]["content"] for r in sim.model.requests if r.model == "sim-smart"]
    assert system == ["Be concise and concrete."]


async def test_parameter_updates_take_effect_on_the_next_run_without_retracing(sim):
    resources = http_resources(sim.url, "fast", "smart")
    pipeline = SummarizeThenAnalyze()
    await run(pipeline, "x", resources=resources)
    pipeline.instructions.apply_update("List three risks.")
    await run(pipeline, "x", resources=resources)
    systems = [r.messages[0]["content"] for r in sim.model.requests if r.model == "sim-smart"]
    assert systems == ["Be concise and concrete.", "List three risks."]


def test_fan_out_branches_overlap_in_time():
    with sim_server_thread(latency=0.2) as server:
        run_sync(FanOut(3), "topic", resources=http_resources(server.url, "fast"))
        branches = [
            r for r in server.model.requests if r.messages[0]["content"].startswith("Angle")
        ]
        join = [r for r in server.model.requests if r.messages[0]["content"] == "Combine."]
    assert len(branches) == 3 and len(join) == 1
    assert max(r.arrival for r in branches) < min(
        r.finish for r in branches
    )  # all in flight at once
    assert join[0].arrival >= max(r.finish for r in branches)


def test_endpoint_concurrency_cap_is_never_exceeded_server_side():
    with sim_server_thread(latency=0.05) as server:
        run_sync(FanOut(10), "t", resources=http_resources(server.url, "fast", max_concurrent=2))
        stats = server.model.stats
    assert stats.total == 11
    assert stats.peak_in_flight == 2


def test_global_cap_limits_all_endpoints_together():
    class TwoEndpoints(Module):
        def __init__(self):
            super().__init__()
            self.a = FanOut(4, alias="fast")
            self.b = FanOut(4, alias="smart")

        def forward(self, x):
            return self.a(x), self.b(x)

    with sim_server_thread(latency=0.05) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=4)
        run_sync(TwoEndpoints(), "t", resources=resources, max_concurrent=3)
        stats = server.model.stats
    assert stats.total == 10 and stats.peak_in_flight == 3


@dataclass
class Verdict:
    label: str
    score: int


class Shapes(Module):
    def __init__(self, shape="single"):
        super().__init__()
        self.shape = shape  # static configuration: branching on it at trace time is fine
        self.a = LLMInference("fast", system_prompt="A")
        self.b = LLMInference("fast", system_prompt="B", temperature=0.5)
        self.judge = LLMInference("fast", system_prompt="Judge", response_format=Verdict)

    def forward(self, text):
        shape = self.shape
        a = self.a(text)
        b = self.b(f"{a} / {text}")
        if shape == "single":
            return b
        if shape == "tuple":
            return a, b
        if shape == "dict":
            return {"first": a, "second": b, "n": 3}
        if shape == "list":
            return [a, "literal", b]
        if shape == "nested":
            verdict = self.judge(b)
            return {
                "pair": (a, b),
                "verdict": verdict,
                "label": F.select(verdict, "label"),  # the same traced and eager
                "deep": [{"x": [a]}],
            }
        if shape == "literal":
            return {"constant": 42, "text": "fixed"}
        if shape == "ops":
            return F.concat(F.upper(a), b, sep=" :: "), "Report: " + b
        return text


@pytest.mark.parametrize(
    "shape", ["single", "tuple", "dict", "list", "nested", "literal", "ops", "identity"]
)
async def test_traced_execution_matches_eager_execution(sim, shape):
    resources = http_resources(sim.url, "fast")
    traced = await run(Shapes(shape), "some input text", resources=resources)
    reference = await asyncio.to_thread(
        eager, Shapes(shape), "some input text", url=sim.url, resources=resources
    )
    assert traced == reference
    assert type(traced) is type(reference)


async def test_structured_outputs_are_parsed_and_validated(sim):
    resources = http_resources(sim.url, "fast")
    out = await run(Shapes("nested"), "t", resources=resources)
    assert isinstance(out["verdict"], Verdict)
    assert isinstance(out["verdict"].score, int)
    assert out["label"] == out["verdict"].label


async def test_failed_node_raises_execution_error_naming_path_endpoint_attempts_and_cause():
    rule = {"kind": "client_error", "status": 400, "match": {"system": "regex:^Be concise"}}
    with sim_server_thread(faults=[rule]) as server:
        resources = http_resources(server.url, "fast", "smart")
        with pytest.raises(ExecutionError) as err:
            await run(SummarizeThenAnalyze(), "x", resources=resources)
    message = str(err.value)
    assert "analyze" in message and "'smart'" in message and "1 attempt" in message
    (failure,) = err.value.failures
    assert failure.node_id == "analyze" and failure.endpoint == "smart"
    assert isinstance(failure.cause, BadRequestError)
    partial = err.value.partial
    assert partial.nodes["summarize"].status == "done"
    assert partial.nodes["summarize"].output.payload.startswith("[")
    assert partial.nodes["analyze"].status == "failed"


async def test_transient_failures_are_retried_and_succeed():
    fault = {"kind": "server_error", "status": 503, "attempts": "first"}
    with sim_server_thread(faults=[fault]) as server:
        resources = http_resources(server.url, "fast", max_retries=2)
        result = await execute(FanOut(2), "x", resources=resources)
        statuses = [r.status for r in server.model.requests]
    assert result.status == "done"
    assert all(r.attempts == 2 for r in result.nodes.values() if r.kind == "llm")
    assert statuses.count(503) == 3 and statuses.count(200) == 3
    assert [e.type for e in result.events].count("node_retry") == 3


async def test_a_failed_branch_skips_only_its_dependants():
    class TwoChains(Module):
        def __init__(self):
            super().__init__()
            self.bad = LLMInference("fast", system_prompt="BAD")
            self.after_bad = LLMInference("fast", system_prompt="after")
            self.good = LLMInference("fast", system_prompt="GOOD")

        def forward(self, x):
            return {"bad": self.after_bad(self.bad(x)), "good": self.good(x)}

    rule = {"kind": "client_error", "status": 400, "match": {"system": "BAD"}}
    with sim_server_thread(faults=[rule]) as server:
        result = await execute(TwoChains(), "x", resources=http_resources(server.url, "fast"))
    assert result.status == "failed"
    assert {k: r.status for k, r in result.nodes.items()} == {
        "x": "done",
        "bad": "failed",
        "after_bad": "skipped",
        "good": "done",
    }
    assert result.output["good"].startswith("[")
    assert list(result.errors) == ["bad"]


async def test_missing_alias_fails_before_any_request(sim):
    resources = http_resources(sim.url, "fast")
    with pytest.raises(
        ConfigError, match=r"no endpoint for 'smart' \(used by analyze\); defined aliases: fast"
    ):
        await run(SummarizeThenAnalyze(), "x", resources=resources)
    assert sim.model.stats.total == 0


async def test_no_resources_is_a_clear_error():
    with pytest.raises(ConfigError, match="no resources were given"):
        await run(SummarizeThenAnalyze(), "x")


async def test_dead_nodes_are_not_executed(sim):
    class Wasteful(Module):
        def __init__(self):
            super().__init__()
            self.used = LLMInference("fast", system_prompt="used")
            self.unused = LLMInference("fast", system_prompt="unused")

        def forward(self, x):
            self.unused(x)
            return self.used(x)

    result = await execute(Wasteful(), "x", resources=http_resources(sim.url, "fast"))
    assert [r.messages[0]["content"] for r in sim.model.requests] == ["used"]
    assert "unused" not in result.nodes


async def test_events_are_complete_and_ordered(sim):
    result = await execute(FanOut(3), "x", resources=http_resources(sim.url, "fast"))
    types = [e.type for e in result.events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    times = [e.time for e in result.events]
    assert times == sorted(times)
    for node_id, record in result.nodes.items():
        mine = [e.type for e in result.events if e.node_id == node_id]
        if record.kind == "llm":
            # A node the pool made wait for its slot, however briefly, reports that wait.
            slot_waits = [
                e for e in result.events if e.node_id == node_id and e.type == "node_waiting"
            ]
            assert all(e.reason == "slot" for e in slot_waits)
            expected = ["node_queued", *["node_waiting"] * len(slot_waits), "node_started"]
            assert mine == [*expected, "usage", "node_completed"], node_id
        else:
            assert mine[-1] == "node_completed"


async def test_usage_and_cost_are_accounted_per_node_and_run(sim):
    resources = http_resources(
        sim.url, "fast", input_cost_per_million=1_000_000, output_cost_per_million=2_000_000
    )
    result = await execute(FanOut(2), "x", resources=resources)
    llm = [r for r in result.nodes.values() if r.kind == "llm"]
    assert all(r.usage.input_tokens > 0 and r.usage.output_tokens > 0 for r in llm)
    assert result.usage.input_tokens == sum(r.usage.input_tokens for r in llm)
    assert result.cost == pytest.approx(
        sum(r.usage.input_tokens + 2 * r.usage.output_tokens for r in llm)
    )
    logged = sum(r.body.get("max_tokens", 0) or 0 for r in sim.model.requests)
    assert logged == 0


async def test_streaming_node_emits_deltas_and_returns_the_same_text(sim):
    class Streamy(Module):
        def __init__(self, stream):
            super().__init__()
            self.llm = LLMInference("fast", system_prompt="S", stream=stream)

        def forward(self, x):
            return self.llm(x)

    resources = http_resources(sim.url, "fast")
    text = "a longer input so that the reply arrives in several chunks " * 3
    streamed = await execute(Streamy(True), text, resources=resources)
    plain = await run(Streamy(False), text, resources=resources)
    deltas = [e.text for e in streamed.events if e.type == "node_delta"]
    assert len(deltas) > 3
    assert "".join(deltas) == streamed.output == plain
    assert streamed.nodes["llm"].ttft is not None
    assert [r.stream for r in sim.model.requests] == [True, False]


async def test_run_sync_works_inside_a_running_loop(sim):
    resources = http_resources(sim.url, "fast", "smart")
    out = run_sync(SummarizeThenAnalyze(), "inside a loop", resources=resources)
    assert out.startswith("[")


async def test_bind_then_await_module(sim):
    pipeline = SummarizeThenAnalyze().bind(resources=http_resources(sim.url, "fast", "smart"))
    assert (await pipeline("bound call")).startswith("[")


async def test_execution_settings_share_resources_across_runs(sim):
    events = []
    async with ExecutionSettings(
        resources=http_resources(sim.url, "fast", "smart"), on_event=events.append
    ):
        first = await run(SummarizeThenAnalyze(), "one")
        second = await run(SummarizeThenAnalyze(), "two", on_event=lambda e: None)
    assert first != second
    assert [e.type for e in events].count("run_started") == 2


def test_in_process_simulator_gives_the_same_outputs_as_http():
    local = ResourceConfig(
        {
            "fast": {"provider": "simulated", "model": "sim-fast"},
            "smart": {"provider": "simulated", "model": "sim-smart"},
        }
    )
    with sim_server_thread() as server:
        over_http = run_sync(
            SummarizeThenAnalyze(),
            "same input",
            resources=http_resources(server.url, "fast", "smart"),
        )
    assert run_sync(SummarizeThenAnalyze(), "same input", resources=local) == over_http


async def test_cancelling_a_run_cancels_in_flight_requests_and_leaves_no_tasks():
    with sim_server_thread(latency=5.0) as server:
        task = asyncio.create_task(
            run(FanOut(3), "x", resources=http_resources(server.url, "fast"))
        )
        while server.model.stats.in_flight < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if server.model.stats.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert server.model.stats.in_flight == 0
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


def test_streaming_runs_keep_working_after_run_sync_patched_the_loop():
    # run_sync inside a running loop applies nest-asyncio, which patches asyncio for the
    # whole process (as in a notebook); streamed runs afterwards must still complete.
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.path.insert(0, "tests")
        from _exec_support import http_resources
        from _sim_support import sim_server_thread
        from plait import LLMInference, Module, run, run_batch, run_sync

        class Twice(Module):
            def __init__(self):
                super().__init__()
                self.a = LLMInference("fast", stream=True)
                self.b = LLMInference("fast", stream=True)
            def forward(self, x):
                return self.b(self.a(x))

        with sim_server_thread() as server:
            res = http_resources(server.url, "fast")
            async def inside():
                return run_sync(Twice(), "first", resources=res)
            print(asyncio.run(inside()) is not None)
            items = asyncio.run(asyncio.wait_for(run_batch(Twice(), ["a", "b", "c"], resources=res, progress=False), 20))
            print(all(i.ok for i in items))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["True", "True"], done.stderr[-2000:]


async def test_gc_thresholds_are_restored_after_runs_and_never_lowered():
    import gc

    before = gc.get_threshold()
    seen = []
    await run(
        FanOut(2),
        "x",
        resources=ResourceConfig.simulated("fast"),
        on_event=lambda e: seen.append(gc.get_threshold()[0]),
    )
    assert gc.get_threshold() == before
    assert min(seen) >= 20_000  # collected less often while the run was active
    try:
        gc.set_threshold(50_000, *before[1:])
        await run(
            FanOut(2),
            "x",
            resources=ResourceConfig.simulated("fast"),
            on_event=lambda e: seen.append(gc.get_threshold()[0]),
        )
        assert gc.get_threshold()[0] == 50_000 and seen[-1] == 50_000
    finally:
        gc.set_threshold(*before)
