"""plait.otel: runs exported as OpenTelemetry spans, read back from the SDK's in-memory exporter.

The runs are real: LLM calls go over HTTP to the loopback simulator (or to the
in-process one where the transport does not matter).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import plait
from plait import LLMInference, Module, ResourceConfig, execute, otel, run_batch
from plait.errors import ConfigError
from plait.execution.observers import add_run_observer
from tests._exec_support import http_resources
from tests._sim_support import sim_server_thread

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-0123456789abcdef-never-export"


class Inner(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = LLMInference("fast", system_prompt="Draft.")
        self.polish = LLMInference("fast", system_prompt="Polish.")

    def forward(self, text: str) -> str:
        return self.polish(self.draft(text))


class Pipeline(Module):
    def __init__(self) -> None:
        super().__init__()
        self.writer = Inner()
        self.judge = LLMInference("smart", system_prompt="Judge.", temperature=0.2, max_tokens=64)

    def forward(self, text: str) -> str:
        return self.judge(f"{self.writer(text)} / {text}")


@plait.op
def leak(text: str) -> str:
    raise ValueError(f"refusing {text!r} with key {KEY}")


class Leaky(Module):
    def __init__(self) -> None:
        super().__init__()
        self.ask = LLMInference("fast", system_prompt=f"The key is {KEY}.")

    def forward(self, text: str) -> str:
        return leak(self.ask(text))


@pytest.fixture
def exporter():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(provider)
    yield exporter
    otel.uninstrument()
    provider.shutdown()


def by_name(spans):
    out = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def everything_exported(spans) -> str:
    """Every string a backend receives: names, attributes, events, links, statuses."""
    parts = []
    for span in spans:
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes), default=str))
        parts.append(span.status.description or "")
        for event in span.events:
            parts.append(event.name + json.dumps(dict(event.attributes), default=str))
        for link in span.links:
            parts.append(json.dumps(dict(link.attributes or {}), default=str))
    return "\n".join(parts)


def test_the_public_names_of_the_hook_and_of_plait_otel_are_pinned():
    assert otel.__all__ == ["CAPTURE_ENV", "instrument", "is_instrumented", "uninstrument"]
    assert {"ObserverHandle", "RunClock", "add_run_observer"} <= set(plait.execution.__all__)
    assert plait.execution.add_run_observer is add_run_observer


def test_importing_plait_does_not_import_opentelemetry():
    code = (
        "import sys, plait, plait.execution, plait.profiling; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


async def test_a_run_is_one_trace_with_a_genai_chat_span_per_llm_call(exporter):
    with sim_server_thread(latency=0.02) as server:
        resources = http_resources(server.url, "fast", "smart")
        before = time.time_ns()
        result = await execute(Pipeline(), "the text", resources=resources)
        after = time.time_ns()
    spans = exporter.get_finished_spans()
    names = by_name(spans)

    assert sorted(names) == [
        "chat sim-fast",
        "chat sim-smart",
        "invoke_workflow Pipeline",
        "writer",
    ]
    (root,) = names["invoke_workflow Pipeline"]
    (group,) = names["writer"]
    (judge,) = names["chat sim-smart"]
    draft, polish = sorted(names["chat sim-fast"], key=lambda s: s.start_time)
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert root.parent is None
    assert group.parent.span_id == root.context.span_id
    assert judge.parent.span_id == root.context.span_id
    assert [s.parent.span_id for s in (draft, polish)] == [group.context.span_id] * 2
    assert judge.kind is SpanKind.CLIENT and root.kind is SpanKind.INTERNAL

    record = result.nodes["judge"]
    port = int(server.url.rsplit(":", 1)[1])
    assert dict(judge.attributes) | {"plait.queue_wait": 0} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.request.model": "sim-smart",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.output.type": "text",
        "gen_ai.response.model": "sim-smart",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": record.usage.input_tokens,
        "gen_ai.usage.output_tokens": record.usage.output_tokens,
        "plait.node.id": "judge",
        "plait.node.kind": "llm",
        "plait.module_path": "judge",
        "plait.status": "done",
        "plait.attempts": 1,
        "plait.cost": 0.0,
        "plait.endpoint": "smart",
        "plait.queue_wait": 0,
    }
    assert record.usage.input_tokens > 0 and record.usage.output_tokens > 0
    assert root.attributes["plait.usage.input_tokens"] == result.usage.input_tokens
    assert root.attributes["plait.usage.output_tokens"] == result.usage.output_tokens
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["plait.status"] == "done"
    assert root.attributes["plait.input.size"] == len("the text")
    assert root.attributes["plait.output.size"] == len(result.output)
    assert root.status.status_code is StatusCode.UNSET

    # Real times: each node span lasts exactly as long as its record says, inside the run.
    for span, node in ((draft, "writer.draft"), (polish, "writer.polish"), (judge, "judge")):
        duration = (span.end_time - span.start_time) / 1e9
        assert duration == pytest.approx(result.nodes[node].duration, abs=2e-6)
        assert before <= root.start_time <= span.start_time <= span.end_time <= root.end_time
    assert root.end_time <= after
    assert draft.end_time <= polish.start_time <= polish.end_time <= judge.start_time
    # Data edges are links: the judge links to the polish step that fed it.
    assert [(link.context.span_id, dict(link.attributes)) for link in judge.links] == [
        (polish.context.span_id, {"plait.edge": "data"})
    ]


async def test_nothing_is_exported_unless_instrumented():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    resources = ResourceConfig.simulated("fast", "smart")
    await execute(Pipeline(), "a", resources=resources)
    otel.instrument(provider)
    assert otel.is_instrumented()
    await execute(Pipeline(), "b", resources=resources)
    otel.uninstrument()
    await execute(Pipeline(), "c", resources=resources)

    roots = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert not otel.is_instrumented()
    assert [r.attributes["plait.input.size"] for r in roots] == [1]
    assert len(exporter.get_finished_spans()) == 5


async def test_retries_and_rate_limit_waits_are_span_events(exporter):
    faults = [{"kind": "server_error", "status": 503, "attempts": "first"}]
    with sim_server_thread(faults=faults) as server:
        resources = http_resources(server.url, "fast", "smart", max_retries=2, rpm=60)
        result = await execute(Pipeline(), "x", resources=resources)
    assert result.status == "done"
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == 3
    for span in chats:
        events = [e.name for e in span.events if e.name != "plait.rate_limit_wait"]
        assert events == ["plait.retry", "plait.backoff"]
        retry, backoff = (e for e in span.events if e.name != "plait.rate_limit_wait")
        assert (
            retry.timestamp <= backoff.timestamp + 1000
        )  # the backoff began as the retry was decided
        assert retry.attributes["plait.attempt"] == 1
        assert retry.attributes["http.response.status_code"] == 503
        assert retry.attributes["plait.error"].startswith("TransientError")
        assert span.attributes["plait.attempts"] == 2
        assert span.start_time <= retry.timestamp <= span.end_time
    # rpm=60 on "fast": the second call of an endpoint waits for the bucket to refill.
    waits = [e for s in chats for e in s.events if e.name == "plait.rate_limit_wait"]
    assert waits and all(e.attributes["plait.wait_seconds"] > 0 for e in waits)


async def test_a_failed_node_has_error_status_and_its_exception_recorded(exporter):
    rule = {"kind": "client_error", "status": 400, "match": {"system": "Polish."}}
    with sim_server_thread(faults=[rule]) as server:
        result = await execute(
            Pipeline(), "x", resources=http_resources(server.url, "fast", "smart")
        )
    assert result.status == "failed"
    spans = {s.attributes.get("plait.node.id", s.name): s for s in exporter.get_finished_spans()}

    failed = spans["writer.polish"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description.startswith("BadRequestError: ")
    assert failed.attributes["error.type"] == "BadRequestError"
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "plait.errors.BadRequestError"
    assert "400" in exception.attributes["exception.message"]
    assert "Traceback" in exception.attributes["exception.stacktrace"]
    skipped = spans["judge"]
    assert skipped.status.status_code is StatusCode.ERROR
    assert skipped.status.description == "skipped: an input failed"
    assert spans["writer.draft"].status.status_code is StatusCode.UNSET
    root = spans["invoke_workflow Pipeline"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "run failed: 1 node(s) failed"


async def test_message_content_is_recorded_only_on_opt_in(exporter, monkeypatch):
    resources = ResourceConfig.simulated("fast", "smart")
    await execute(Pipeline(), "secret plans", resources=resources)
    assert "secret plans" not in everything_exported(exporter.get_finished_spans())
    assert not any("gen_ai.input.messages" in s.attributes for s in exporter.get_finished_spans())

    monkeypatch.setenv(otel.CAPTURE_ENV, "true")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(provider)  # the switch is read when instrumenting
    exporter.clear()
    result = await execute(Pipeline(), "secret plans", resources=resources)
    spans = {s.attributes.get("plait.node.id", s.name): s for s in exporter.get_finished_spans()}
    draft = spans["writer.draft"].attributes
    assert json.loads(draft["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Draft."}
    ]
    assert json.loads(draft["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "secret plans"}]}
    ]
    assert json.loads(draft["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": result.nodes["writer.draft"].output.payload}],
            "finish_reason": "stop",
        }
    ]
    root = spans["invoke_workflow Pipeline"].attributes
    assert (root["plait.input"], root["plait.output"]) == ("secret plans", result.output)

    otel.instrument(provider, capture_content=False)  # the argument wins over the variable
    exporter.clear()
    await execute(Pipeline(), "secret plans", resources=resources)
    assert "secret plans" not in everything_exported(exporter.get_finished_spans())


def test_a_bad_capture_setting_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv(otel.CAPTURE_ENV, "yes please")
    with pytest.raises(ConfigError, match="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        otel.instrument()
    with pytest.raises(ConfigError, match="capture_content must be"):
        otel.instrument(capture_content="true")
    with pytest.raises(ConfigError, match="TracerProvider"):
        otel.instrument(object(), capture_content=False)
    assert not otel.is_instrumented()


async def test_api_keys_never_appear_in_any_exported_span(exporter, monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_KEY", KEY + "-env")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(provider, capture_content=True)  # the worst case: prompts recorded too
    rule = {"kind": "rate_limit", "retry_after": 0.01, "attempts": "first"}
    with sim_server_thread(faults=[rule]) as server:
        resources = ResourceConfig(
            {
                "fast": {
                    "provider": "openai",
                    "base_url": server.url + "/v1",
                    "model": "sim-fast",
                    "api_key": KEY,
                },
                "smart": {
                    "provider": "openai",
                    "base_url": server.url + "/v1",
                    "model": "sim-smart",
                    "api_key_env": "PLAIT_TEST_KEY",
                },
            }
        )
        leaky = await execute(Leaky(), f"use {KEY}-env please", resources=resources)
        fine = await execute(Pipeline(), "x", resources=resources)
    # The keys are the ones the endpoints send, and reached the spans' sources (prompt, error).
    assert resources["fast"].resolve_api_key() == KEY
    assert resources["smart"].resolve_api_key() == KEY + "-env"
    assert leaky.status == "failed" and KEY in str(leaky.errors["leak"])
    assert fine.status == "done"
    exported = everything_exported(exporter.get_finished_spans())
    assert "plait.rate_limit_wait" in exported or "plait.retry" in exported
    assert KEY not in exported
    assert "The key is ***." in exported


async def test_a_batch_is_a_span_and_each_item_its_own_linked_trace(exporter):
    rule = {"kind": "client_error", "status": 400, "match": {"user": "regex:^bad"}}
    with sim_server_thread(faults=[rule]) as server:
        items = await run_batch(
            Pipeline(),
            ["one", "bad two", "three"],
            resources=http_resources(server.url, "fast", "smart"),
            progress=False,
        )
    assert [i.ok for i in items] == [True, False, True]
    spans = exporter.get_finished_spans()
    (batch,) = [s for s in spans if s.name == "batch Pipeline"]
    roots = sorted(
        (s for s in spans if s.name == "invoke_workflow Pipeline"),
        key=lambda s: s.attributes["plait.batch.item"],
    )
    assert [r.attributes["plait.batch.item"] for r in roots] == [0, 1, 2]
    assert batch.parent is None and all(r.parent is None for r in roots)
    assert len({r.context.trace_id for r in [batch, *roots]}) == 4
    for root in roots:
        (link,) = root.links
        assert link.context.span_id == batch.context.span_id
        trace = [s for s in spans if s.context.trace_id == root.context.trace_id]
        assert len(trace) == 5  # the item, the writer group, three chat spans
    assert [r.status.status_code for r in roots] == [
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert dict(batch.attributes) == {
        "plait.batch.items": 3,
        "plait.module": "Pipeline",
        "plait.status": "done",
        "plait.batch.started": 3,
        "plait.batch.failed": 1,
        "plait.usage.input_tokens": sum(i.result.usage.input_tokens for i in items),
        "plait.usage.output_tokens": sum(i.result.usage.output_tokens for i in items),
        "plait.cost": 0.0,
    }


async def test_observers_see_every_run_until_removed_with_a_wall_clock():
    seen: list[tuple[int, str]] = []

    def observer(clock):
        return lambda event: seen.append((clock.wall_ns, event.type))

    resources = ResourceConfig.simulated("fast", "smart")
    before = time.time_ns()
    handle = add_run_observer(observer)
    assert handle.active
    await execute(Pipeline(), "a", resources=resources)
    handle.remove()
    handle.remove()
    await execute(Pipeline(), "b", resources=resources)
    assert not handle.active
    types = [t for _, t in seen]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("node_completed") == 4
    wall = {w for w, _ in seen}
    assert len(wall) == 1 and before <= wall.pop() <= time.time_ns()
    with pytest.raises(ConfigError, match="callable"):
        add_run_observer("not a function")


def test_a_broken_observer_warns_and_the_run_still_finishes():
    def observer(clock):
        def callback(event):
            raise RuntimeError("observer bug")

        return callback

    handle = add_run_observer(observer)
    try:
        with pytest.warns(RuntimeWarning, match="observer bug"):
            out = plait.run_sync(
                Pipeline(), "a", resources=ResourceConfig.simulated("fast", "smart")
            )
    finally:
        handle.remove()
    assert out.startswith("[")


async def test_cache_hits_and_what_if_reruns_are_marked(exporter):
    resources = ResourceConfig.simulated("fast", "smart")
    first = await execute(Pipeline(), "x", resources=resources, cache=True)
    await execute(Pipeline(), "x", resources=resources, cache=True)
    await first.rerun("judge", temperature=0.9)
    runs = {}
    for span in exporter.get_finished_spans():
        runs.setdefault(span.context.trace_id, {})[span.attributes.get("plait.node.id")] = span
    first_run, cached_run, rerun = sorted(runs.values(), key=lambda r: r[None].start_time)
    assert cached_run["judge"].attributes["plait.cached"] is True
    assert cached_run["judge"].attributes["gen_ai.usage.input_tokens"] == 0
    assert "plait.cached" not in first_run["judge"].attributes  # flags appear only when set
    assert rerun["writer.draft"].attributes["plait.reused"] is True
    assert "plait.reused" not in rerun["judge"].attributes
    assert rerun["judge"].attributes["gen_ai.request.temperature"] == 0.9


def test_the_overhead_benchmark_runs_both_sides_on_the_same_work():
    from bench import otel_overhead

    rounds, details = asyncio.run(
        otel_overhead.compare(otel_overhead.DraftTwiceAndMerge(), 4, 0.0, 8, 1, capture=True)
    )
    assert details["outputs_match"] is True
    assert details["spans_per_run"] == 4 * 4 + 1  # per item a root and 3 chat spans; the batch
    assert len(rounds.baseline) == len(rounds.plait) == 1


def test_without_opentelemetry_plait_otel_says_how_to_install_it():
    code = "import sys; sys.modules['opentelemetry'] = None; import plait.otel"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1
    assert "ImportError: plait.otel needs opentelemetry-api" in out.stderr
    assert "pip install 'plait[otel]'" in out.stderr


async def test_a_batch_stopped_early_still_exports_every_started_item(exporter):
    resources = ResourceConfig(
        {
            "fast": {"provider": "simulated", "latency": 0.05, "max_concurrent": 2},
            "smart": {"provider": "simulated", "latency": 0.05, "max_concurrent": 2},
        }
    )
    async with contextlib.aclosing(
        plait.stream_batch(
            Pipeline(), [f"doc {i}" for i in range(6)], resources=resources, progress=False
        )
    ) as stream:
        first = await anext(stream)
    spans = exporter.get_finished_spans()
    (batch,) = [s for s in spans if s.name == "batch Pipeline"]
    roots = {
        s.attributes["plait.batch.item"]: s for s in spans if s.name == "invoke_workflow Pipeline"
    }
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.status.description == "batch cancelled"
    assert roots[first.index].status.status_code is StatusCode.UNSET
    cancelled = [r for i, r in roots.items() if i != first.index]
    assert cancelled and all(r.attributes["plait.status"] == "cancelled" for r in cancelled)
    assert all(r.status.description == "run cancelled" for r in cancelled)
    assert batch.attributes["plait.batch.started"] == len(roots)


class Router(Module):
    def __init__(self) -> None:
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify: math or poetry.")
        self.math = LLMInference("smart", system_prompt="You are a mathematician.")
        self.poet = LLMInference("smart", system_prompt="You are a poet.")

    async def forward(self, question: str) -> str:
        label = await self.classify(question)
        expert = self.math if label.strip() == "math" else self.poet
        return expert(f"Question: {question}")


class Desk(Module):
    def __init__(self) -> None:
        super().__init__()
        self.router = Router()
        self.polish = LLMInference("fast", system_prompt="Polish.")

    def forward(self, question: str) -> str:
        return self.polish(self.router(question))


async def test_a_dynamic_run_nests_the_calls_it_made_and_links_control_edges(exporter):
    rules = [{"match": {"system": "Classify"}, "reply": "math"}]
    with sim_server_thread(replies=rules) as server:
        result = await execute(
            Desk(), "an integral?", resources=http_resources(server.url, "fast", "smart")
        )
    assert result.status == "done"
    spans = exporter.get_finished_spans()
    by_node = {s.attributes.get("plait.node.id", s.name): s for s in spans}
    names = {s.context.span_id: s.attributes.get("plait.node.id", s.name) for s in spans}

    assert sorted(by_node) == [
        "invoke_workflow Desk",
        "polish",
        "router",
        "router.classify",
        "router.math",
    ]  # the branch not taken (router.poet) was never called: no span
    parents = {
        node: names.get(s.parent.span_id) if s.parent else None for node, s in by_node.items()
    }
    assert parents == {
        "invoke_workflow Desk": None,
        "router": "invoke_workflow Desk",
        "router.classify": "router",
        "router.math": "router",
        "polish": "invoke_workflow Desk",
    }
    links = {
        node: [(names[link.context.span_id], link.attributes["plait.edge"]) for link in s.links]
        for node, s in by_node.items()
    }
    assert links["router.math"] == [("router.classify", "control")]
    assert links["polish"] == [("router", "data")]
    assert by_node["router.math"].name == "chat sim-smart"
    assert by_node["router"].attributes["plait.node.kind"] == "module"
    assert by_node["invoke_workflow Desk"].attributes["plait.output.size"] == len(result.output)
    router, math = by_node["router"], by_node["router.math"]
    assert router.start_time <= math.start_time <= math.end_time <= router.end_time


async def test_a_batch_of_dynamic_runs_exports_every_call_of_every_item(exporter):
    rules = [{"match": {"system": "Classify", "user": "integral"}, "reply": "math"}]
    resources = ResourceConfig.simulated("fast", "smart", replies=rules)
    items = await run_batch(
        Router(), ["an integral?", "a rose?"], resources=resources, progress=False
    )
    assert [i.ok for i in items] == [True, True]
    spans = exporter.get_finished_spans()
    for item, expert in ((0, "math"), (1, "poet")):
        (root,) = [s for s in spans if s.attributes.get("plait.batch.item") == item]
        trace = {
            s.attributes["plait.node.id"]: s
            for s in spans
            if s.context.trace_id == root.context.trace_id and s is not root
        }
        assert sorted(trace) == sorted(["classify", expert])
        (link,) = trace[expert].links
        assert link.context.span_id == trace["classify"].context.span_id
        assert root.attributes["plait.output.size"] == len(items[item].output)
