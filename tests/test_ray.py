"""The Ray backend on a real local cluster (head + two worker processes) against the HTTP simulator."""

import asyncio
import math
import os
import signal

import pytest
from _exec_support import http_resources
from _ray_support import session_cluster  # noqa: F401  (the ray_cluster fixture)
from _sim_support import sim_server_thread
from test_dynamic import ROUTER_RULES, TracedOuter
from test_dynamic_features import Polished

import plait
from bench import ray_backend
from bench._common import simulator_process
from plait import LLMInference, Module, Parameter, evaluate, run_batch, stream_batch
from plait.errors import BudgetExceeded
from plait.evaluation import RunStore
from plait.optimization.demo import (
    DIGITS_ONLY,
    START_INSTRUCTIONS,
    TASK_RULES,
    VAL_SET,
    OrderNumberExtractor,
    order_number_check,
)
from plait_jupyter.live import RunState


@plait.op
def score(draft: str) -> int:
    return len(draft.split())


class Review(Module):
    """Two calls in a chain and a local op: what a typical item does."""

    def __init__(self, system: str = "Draft a reply.") -> None:
        super().__init__()
        self.instructions = Parameter(system, description="how to draft the reply")
        self.draft = LLMInference("fast", system_prompt=self.instructions)
        self.check = LLMInference("fast", system_prompt="Check the reply.")

    def forward(self, ticket):
        draft = self.draft(ticket)
        return {"draft": draft, "verdict": self.check(draft), "words": score(draft)}


def tickets(n: int) -> list[str]:
    return [f"ticket {i}: my order {1000 + i} is late" for i in range(n)]


def questions(n: int) -> list[str]:
    """For `Polished`: every third is a math question, the rest ask for poems."""
    return [
        f"the integral of x^{i}" if i % 3 == 0 else f"a poem about rain, take {i}" for i in range(n)
    ]


def node_shape(graph):
    """What a graph says about each node: kind, path, data and control edges, call key."""
    return [
        (n.id, n.kind, n.module_path, n.dependencies, n.control, n.call_key)
        for n in graph.nodes.values()
    ]


def busiest_second(arrivals: list[float]) -> int:
    arrivals = sorted(arrivals)
    return max(sum(1 for t in arrivals[i:] if t < start + 1.0) for i, start in enumerate(arrivals))


def arrival(record) -> float:
    return record["arrival"] if isinstance(record, dict) else record.arrival


def finish(record) -> float:
    return record["finish"] if isinstance(record, dict) else record.finish


def peak_overlap(requests) -> int:
    moments = sorted([(arrival(r), 1) for r in requests] + [(finish(r), -1) for r in requests])
    peak = level = 0
    for _, step in moments:  # a finish sorts before an arrival at the same instant
        level += step
        peak = max(peak, level)
    return peak


async def test_results_events_and_usage_match_the_local_backend(ray_cluster):
    fault = {"kind": "client_error", "status": 400, "match": {"user": "ticket 7:"}}
    with sim_server_thread(latency=0.02, jitter=0.03, faults=[fault]) as server:
        resources = http_resources(server.url, "fast", max_concurrent=6)
        local = await run_batch(Review(), tickets(30), resources=resources, progress=False)
        seen, progress = [], []
        remote = await run_batch(
            Review(),
            tickets(30),
            resources=resources,
            progress=False,
            backend=ray_cluster,
            on_event=seen.append,
            on_progress=progress.append,
        )
    assert [i.index for i in remote] == list(range(30))
    assert [i.input for i in remote] == tickets(30)
    assert [i.output for i in remote] == [i.output for i in local]
    assert [i.ok for i in remote] == [i != 7 for i in range(30)]
    assert "400" in str(remote[7].error) and remote[7].output is None
    assert [i.result.usage for i in remote] == [i.result.usage for i in local]
    assert [i.result.status for i in remote] == [i.result.status for i in local]
    assert remote[3].result.nodes["draft"].request.messages[0]["content"] == "Draft a reply."
    # One event stream for the whole batch, as the local backend gives it.
    assert seen[0].type == "run_started" and seen[0].run_id == "batch"
    assert seen[-1].type == "run_finished" and seen[-1].status == "done"
    completed = {(e.item, e.node_id) for e in seen if e.type == "node_completed"}
    assert {(i, "draft") for i in range(30) if i != 7} <= completed
    assert (7, "draft") in {(e.item, e.node_id) for e in seen if e.type == "node_failed"}
    assert [e.type for e in remote[3].result.events if e.node_id == "draft"][-1] == "node_completed"
    final = progress[-1]
    assert (final.total, final.done, final.failed) == (30, 29, 1)
    assert final.tokens == sum(i.result.usage.total_tokens for i in remote)
    # The %%plait batch view, fed the same events, ends where the batch did.
    view = RunState(seen[0].graphs, seen[0].records, batch=True, run_id="batch")
    for event in seen[1:]:
        view.apply(event)
    assert view.status == "done"
    assert (view.info()["items_done"], view.info()["items_failed"]) == (29, 1)


async def test_stream_batch_on_ray_yields_every_item_once(ray_cluster):
    with sim_server_thread(latency=0.01) as server:
        resources = http_resources(server.url, "fast", max_concurrent=4)
        stream = stream_batch(
            Review(), tickets(12), resources=resources, progress=False, backend="ray"
        )
        indices = [item.index async for item in stream]
    assert sorted(indices) == list(range(12))


@pytest.mark.parametrize("pipeline", [Review, Polished])
async def test_rpm_holds_at_the_server_across_workers(ray_cluster, pipeline):
    # 2.5 starts per second for the whole cluster: spaced well beyond the scheduling hiccups of
    # a busy CI machine, so a window over the bound would mean the workers' starts overlapped.
    rpm = 150
    inputs = tickets(6) if pipeline is Review else questions(4)  # 12 and 8 calls to "fast"
    with simulator_process(latency=0.05, replies=ROUTER_RULES) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=8, rpm=rpm)
        items = await run_batch(
            pipeline(), inputs, resources=resources, progress=False, backend=ray_cluster
        )
        arrivals = [r["arrival"] for r in server.requests() if r["model"] == "sim-fast"]
    n = len(arrivals)
    assert all(item.ok for item in items) and n == 2 * len(inputs)
    assert busiest_second(arrivals) <= math.ceil(rpm / 60) + 1
    # Over the whole run too: n starts at 2.5 per second cannot take less than (n - 1) / 2.5 s.
    assert max(arrivals) - min(arrivals) >= (n - 1) / (rpm / 60) - 0.5


async def test_max_concurrent_and_the_global_cap_hold_at_the_server(ray_cluster):
    with simulator_process(latency=0.08, jitter=0.04) as server:
        resources = http_resources(server.url, "fast", max_concurrent=3)
        items = await run_batch(
            Review(), tickets(24), resources=resources, progress=False, backend=ray_cluster
        )
        per_endpoint = peak_overlap(server.requests())
        server.reset()
        capped = await run_batch(
            Review(),
            tickets(24),
            resources=http_resources(server.url, "fast", max_concurrent=8),
            max_concurrent=2,
            progress=False,
            backend=ray_cluster,
        )
        global_cap = peak_overlap(server.requests())
    assert all(item.ok for item in items + capped)
    # Both workers had items: the caps held for the two of them together, and were used.
    assert per_endpoint == 3
    assert global_cap == 2


async def test_a_run_of_429s_pauses_the_cluster_and_loses_nothing(ray_cluster):
    # After the first 8 requests, the first sighting of every request is refused with
    # Retry-After: 1.5 s: a run of refusals, which is evidence of an over-rate (a lone 429
    # is not), so the endpoint pauses for every worker instead of each request retrying.
    fault = {"kind": "rate_limit", "retry_after": 1.5, "after": 8, "attempts": "first"}
    with simulator_process(latency=0.1, faults=[fault]) as server:
        resources = http_resources(server.url, "fast", max_concurrent=4, retry_base_delay=0.05)
        items = await run_batch(
            Review(), tickets(16), resources=resources, progress=False, backend=ray_cluster
        )
        log = server.requests()
    assert all(item.ok for item in items)
    refused = sorted(r["arrival"] for r in log if r["status"] == 429)
    assert refused
    # Once the pause reached the workers (a sync, 50 ms apart; 0.4 s allowed on a busy
    # machine), nothing was sent until Retry-After had passed.
    paused = [r["arrival"] for r in log if refused[0] + 0.4 < r["arrival"] < refused[0] + 1.5]
    assert paused == []
    assert sum(r["status"] == 200 for r in log) == 32


@pytest.mark.parametrize("pipeline", [Review, Polished])
async def test_a_worker_killed_mid_batch_loses_no_item(ray_cluster, pipeline):
    inputs = tickets(40) if pipeline is Review else questions(40)
    workers = await ray_cluster.worker_info()
    victim = workers[0]["pid"]
    killed = []

    def kill_once(progress):
        if progress.done >= 4 and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(progress.done)

    with sim_server_thread(latency=0.1, replies=ROUTER_RULES) as server:
        # timeout: the dead worker's slots come back after it (its calls might still be running).
        resources = http_resources(server.url, "fast", "smart", max_concurrent=6, timeout=3.0)
        expected = await run_batch(pipeline(), inputs, resources=resources, progress=False)
        server.model.clear()
        items = await run_batch(
            pipeline(),
            inputs,
            resources=resources,
            progress=False,
            backend=ray_cluster,
            on_progress=kill_once,
        )
        requests = list(server.model.requests)
    assert killed and killed[0] < 40
    assert [item.ok for item in items] == [True] * 40
    assert [item.output for item in items] == [item.output for item in expected]
    # An item run again grows its graph afresh: only the calls of the run that finished.
    for mine, theirs in zip(items, expected, strict=True):
        assert node_shape(mine.result.graph) == node_shape(theirs.result.graph)
    for model in ("sim-fast", "sim-smart"):
        assert peak_overlap([r for r in requests if r.model == model]) <= 6
    after = await ray_cluster.worker_info()
    assert len(after) == 2 and victim not in {w["pid"] for w in after}


async def test_a_resumed_batch_sends_nothing_that_completed(ray_cluster, tmp_path):
    checkpoint = tmp_path / "reviews.jsonl"
    # The first run's checks fail for a third of the tickets: their drafts still complete.
    fault = {
        "kind": "client_error",
        "status": 400,
        "match": {"system": "Check", "user": r"regex:ticket \d*[05]:"},
    }
    with sim_server_thread(latency=0.02, faults=[fault]) as flaky:
        first = await run_batch(
            Review(),
            tickets(24),
            resources=http_resources(flaky.url, "fast", max_concurrent=6),
            checkpoint=checkpoint,
            progress=False,
            backend=ray_cluster,
        )
    failed = [item.index for item in first if not item.ok]
    assert failed and len(failed) < 24
    with sim_server_thread(latency=0.02) as server:
        resources = http_resources(server.url, "fast", max_concurrent=6)
        second = await run_batch(
            Review(),
            tickets(24),
            resources=resources,
            checkpoint=checkpoint,
            progress=False,
            backend=ray_cluster,
        )
        resent = [r.messages[-1]["content"] for r in server.model.requests]
        server.model.clear()
        clean = await run_batch(Review(), tickets(24), resources=resources, progress=False)
    # Only the failed checks went out again; every draft came from the checkpoint.
    assert len(resent) == len(failed)
    assert all(item.result.nodes["draft"].restored for item in second)
    assert [item.output for item in second] == [item.output for item in clean]


async def test_parameters_changed_between_batches_reach_every_worker(ray_cluster):
    module = Review()
    with sim_server_thread(latency=0.01) as server:
        resources = http_resources(server.url, "fast", max_concurrent=8)
        await run_batch(module, tickets(10), resources=resources, progress=False, backend="ray")
        module.instructions.apply_update("Draft a short, kind reply.")  # as an optimizer step does
        server.model.clear()
        items = await run_batch(
            module, tickets(10), resources=resources, progress=False, backend=ray_cluster
        )
        systems = [r.messages[0]["content"] for r in server.model.requests]
    assert all(item.ok for item in items)
    assert systems.count("Draft a short, kind reply.") == 10
    assert "Draft a reply." not in systems


async def test_breaking_out_of_a_ray_stream_stops_the_rest(ray_cluster):
    with sim_server_thread(latency=0.2) as server:
        resources = http_resources(server.url, "fast", max_concurrent=4)
        stream = stream_batch(
            Review(), tickets(40), resources=resources, progress=False, backend=ray_cluster
        )
        async for _ in stream:
            break
        await stream.aclose()
        sent = server.model.stats.total
        await asyncio.sleep(0.6)
        assert server.model.stats.total == sent  # nothing more went out after the stop
    assert sent < 80


def test_the_ray_benchmark_runs_both_backends_on_the_same_work(ray_cluster):
    io = ray_backend.run_io(ray_cluster, calls=20, cap=8, rounds=1)
    cpu = ray_backend.run_cpu(ray_cluster, cores=2, items=4, rounds=1)
    assert io.details["same_outputs"] and cpu.details["same_outputs"]
    for variant in ("define-by-run", "budget"):
        other = ray_backend.run_io(ray_cluster, calls=20, cap=8, rounds=1, variant=variant)
        assert other.details["same_outputs"] and other.figures[1].baseline > 0
    assert [f.unit for f in io.figures] == ["s", "µs"]
    assert len(io.details["cluster_cpu"]) == 1 and io.details["cluster_cpu"][0] > 0
    assert cpu.details["items"] == 4 and cpu.figures[0].baseline_name == "local backend"


async def test_a_ray_batch_exports_the_same_opentelemetry_shape_as_a_local_one(ray_cluster):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from plait import otel

    shapes = {}
    with sim_server_thread(latency=0.01) as server:
        resources = http_resources(server.url, "fast", max_concurrent=4)
        for backend in ("local", ray_cluster):
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            otel.instrument(provider)
            try:
                items = await run_batch(
                    Review(), tickets(4), resources=resources, progress=False, backend=backend
                )
            finally:
                otel.uninstrument()
                provider.shutdown()
            assert all(item.ok for item in items)
            spans = exporter.get_finished_spans()
            shapes[backend == "local"] = sorted(
                (s.name, s.attributes.get("plait.batch.item"), s.attributes.get("plait.node_id"))
                for s in spans
            )
            chats = [s for s in spans if s.name.startswith("chat ")]
            assert len(chats) == 4 * 2  # draft and check per item
            assert all(s.attributes["gen_ai.usage.input_tokens"] > 0 for s in chats)
    assert shapes[True] == shapes[False]


async def test_a_ray_batch_is_saved_to_a_run_store(ray_cluster, tmp_path):
    path = tmp_path / "runs.db"
    with sim_server_thread(latency=0.01) as server:
        resources = http_resources(server.url, "fast", max_concurrent=4)
        items = await run_batch(
            Review(), tickets(5), resources=resources, progress=False, backend="ray", store=path
        )
    store = RunStore(path)
    assert [(r["kind"], r["completed"]) for r in store.list()] == [("batch", 5)]
    saved = store.load(1)
    assert [r.output for r in saved.rows] == [i.output for i in items]
    assert saved.tokens == sum(i.result.usage.total_tokens for i in items)


QUESTIONS = questions(9)


async def test_define_by_run_items_take_their_own_branches_on_ray(ray_cluster, tmp_path):
    module = Polished()
    with sim_server_thread(latency=0.03, replies=ROUTER_RULES) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=2)
        local = await run_batch(module, QUESTIONS, resources=resources, progress=False)
        server.model.clear()
        seen, progress = [], []
        remote = await run_batch(
            module,
            QUESTIONS,
            resources=resources,
            progress=False,
            backend=ray_cluster,
            on_event=seen.append,
            on_progress=progress.append,
            store=tmp_path / "runs.db",
        )
        requests = list(server.model.requests)
    systems = [r.messages[0]["content"] for r in requests]
    assert [i.output for i in remote] == [i.output for i in local]
    assert all(i.ok for i in remote) and [i.index for i in remote] == list(range(9))
    assert [i.result.usage for i in remote] == [i.result.usage for i in local]
    # Each item's graph is the one it grew: exactly the calls made, with their edges and keys.
    for mine, theirs in zip(remote, local, strict=True):
        assert node_shape(mine.result.graph) == node_shape(theirs.result.graph)
        assert mine.result.graph.output_ids == theirs.result.graph.output_ids
    assert list(remote[0].result.graph.nodes) == ["classify", "math", "polish"]
    assert list(remote[1].result.graph.nodes) == ["classify", "poet", "polish"]
    assert remote[1].result.graph.nodes["poet"].control == ("classify",)
    assert remote[0].result.graph.nodes["math"].module is module.math  # the caller's own module
    # The branch not taken is never requested on Ray either.
    assert systems.count("You are a mathematician.") == 3
    assert systems.count("You are a poet.") == 6 and len(systems) == 27
    # Calls recorded at run time take their slots from the coordinator like traced ones.
    for model in ("sim-fast", "sim-smart"):
        assert peak_overlap([r for r in requests if r.model == model]) <= 2
    final = progress[-1]
    assert (final.total, final.done, final.failed) == (9, 9, 0)
    assert final.tokens == sum(i.result.usage.total_tokens for i in remote)
    added = {(e.item, e.node_id) for e in seen if e.type == "node_added"}
    assert added == {(i.index, n) for i in remote for n in i.result.graph.nodes}
    view = RunState(seen[0].graphs, seen[0].records, batch=True, run_id="batch")
    for event in seen[1:]:
        view.apply(event)
    assert view.status == "done" and view.info()["items_done"] == 9
    # Saved to a run store, each item keeps its own recorded graph.
    saved = RunStore(tmp_path / "runs.db").load(1)
    assert [[n["id"] for n in r.snapshot["graph"]["nodes"]] for r in saved.rows][:2] == [
        ["classify", "math", "polish"],
        ["classify", "poet", "polish"],
    ]


async def test_a_traced_pipeline_with_an_async_child_expands_on_ray(ray_cluster):
    rules = [{"match": {"system": "Summarize"}, "reply": "the integral of x"}, *ROUTER_RULES]
    texts = [f"text {i}" for i in range(4)]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=4)
        local = await run_batch(TracedOuter(), texts, resources=resources, progress=False)
        server.model.clear()
        stream = stream_batch(
            TracedOuter(), texts, resources=resources, progress=False, backend=ray_cluster
        )
        remote = sorted([item async for item in stream], key=lambda item: item.index)
        sent = len(server.model.requests)
    assert sent == 4 * 4 and [i.index for i in remote] == list(range(4))
    assert [i.output for i in remote] == [i.output for i in local] and all(i.ok for i in remote)
    for mine, theirs in zip(remote, local, strict=True):
        assert node_shape(mine.result.graph) == node_shape(theirs.result.graph)
    # The module node's output came from its calls: they are its inputs (its last version).
    assert "inner.math" in remote[0].result.graph.nodes["inner"].dependencies


async def test_a_resumed_define_by_run_batch_sends_no_completed_call(ray_cluster, tmp_path):
    checkpoint = tmp_path / "router.jsonl"
    poet_down = {"kind": "client_error", "status": 400, "match": {"system": "You are a poet."}}
    with sim_server_thread(replies=ROUTER_RULES, faults=[poet_down]) as flaky:
        resources = http_resources(flaky.url, "fast", "smart", max_concurrent=4)
        first = await run_batch(
            Polished(),
            QUESTIONS,
            resources=resources,
            checkpoint=checkpoint,
            progress=False,
            backend=ray_cluster,
        )
    assert [i.ok for i in first] == [i % 3 == 0 for i in range(9)]
    with sim_server_thread(replies=ROUTER_RULES) as server:
        resources = http_resources(server.url, "fast", "smart", max_concurrent=4)
        second = await run_batch(
            Polished(),
            QUESTIONS,
            resources=resources,
            checkpoint=checkpoint,
            progress=False,
            backend=ray_cluster,
        )
        resent = [r.messages[0]["content"] for r in server.model.requests]
        server.model.clear()
        # The same checkpoint resumed by the local backend: everything completed, nothing sent.
        third = await run_batch(
            Polished(), QUESTIONS, resources=resources, checkpoint=checkpoint, progress=False
        )
        assert len(server.model.requests) == 0
        clean = await run_batch(Polished(), QUESTIONS, resources=resources, progress=False)
    # Only what failed (the poet's answers) and what could not run without them went out again.
    assert sorted(resent) == sorted(["You are a poet.", "Polish the answer."] * 6)
    assert [i.output for i in third] == [i.output for i in clean]
    assert [i.output for i in second] == [i.output for i in clean]
    assert all(i.result.nodes["classify"].restored for i in second)


async def test_a_budget_holds_for_the_whole_cluster(ray_cluster):
    cap = 4
    with sim_server_thread(latency=0.02) as server:
        resources = http_resources(
            server.url, "fast", max_concurrent=cap, input_cost_per_million=1e6
        )
        local = await run_batch(Review(), tickets(60), resources=resources, progress=False)
        server.model.clear()
        items = await run_batch(
            Review(),
            tickets(60),
            resources=resources,
            max_cost=200,
            progress=False,
            backend=ray_cluster,
        )
        requests = len(server.model.requests)
    ok = [i for i in items if i.ok]
    stopped = [i for i in items if not i.ok]
    assert ok and stopped
    assert all(isinstance(i.error, BudgetExceeded) for i in stopped)
    assert all(i.result.status == "budget_exceeded" for i in stopped)
    assert "max_cost=$200" in str(stopped[0].error)
    # Completed work is kept: every request sent is in some item's records, paid for.
    calls = [r for i in items for r in i.result.nodes.values() if r.kind == "llm" and r.cost > 0]
    assert len(calls) == requests
    assert [i.output for i in ok] == [local[i.index].output for i in ok]
    # Spending stops at the budget, overshooting by at most the calls already in flight (each
    # holds one of the cap's slots). Workers that went by their own last-known totals overshot
    # by more here: every start needs the coordinator's permit.
    spent = sum(i.result.cost for i in items)
    assert 200 <= spent < 200 + cap * max(r.cost for r in calls)
    cancelled = [r for i in stopped for r in i.result.nodes.values() if r.status == "cancelled"]
    assert cancelled and all(r.attempts == 0 and r.cost == 0 for r in cancelled)


async def test_a_budget_stops_define_by_run_items_on_ray_as_it_does_locally(ray_cluster):
    with sim_server_thread(latency=0.02, replies=ROUTER_RULES) as server:
        resources = http_resources(
            server.url, "fast", "smart", max_concurrent=2, input_cost_per_million=1e6
        )
        local = await run_batch(
            Polished(), questions(12), resources=resources, max_cost=300, progress=False
        )
        remote = await run_batch(
            Polished(),
            questions(12),
            resources=resources,
            max_cost=300,
            progress=False,
            backend=ray_cluster,
        )
    for items in (local, remote):
        stopped = [i for i in items if not i.ok]
        assert stopped and len(stopped) < 12
        assert all(isinstance(i.error, BudgetExceeded) for i in stopped)
        assert {i.result.status for i in stopped} == {"budget_exceeded"}
        calls = [r for i in items for r in i.result.nodes.values() if r.cost > 0]
        # Two endpoints with two slots each: at most four calls in flight when it ran out.
        assert 300 <= sum(r.cost for r in calls) < 300 + 4 * max(r.cost for r in calls)
    # What completed is the local run's (the routing and answers do not depend on the backend).
    done = {i.index: i.output for i in local if i.ok}
    assert all(i.output == done[i.index] for i in remote if i.ok and i.index in done)


async def test_evaluate_runs_its_examples_on_ray(ray_cluster):
    module = OrderNumberExtractor(f"{START_INSTRUCTIONS} {DIGITS_ONLY}")
    with sim_server_thread(replies=TASK_RULES) as server:
        resources = http_resources(server.url, "task", max_concurrent=4)
        local = await evaluate(
            module, VAL_SET, order_number_check, resources=resources, progress=False
        )
        server.model.clear()
        remote = await evaluate(
            module,
            VAL_SET,
            order_number_check,
            resources=resources,
            progress=False,
            backend=ray_cluster,
        )
        sent = len(server.model.requests)
    assert sent == len(VAL_SET)
    assert [(r.output, r.score, r.message) for r in remote.rows] == [
        (r.output, r.score, r.message) for r in local.rows
    ]
    assert remote.score == local.score
