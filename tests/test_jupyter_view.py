"""GraphView and BatchProgressView: graph data, live states, coalescing, security."""

import asyncio

import pytest
from _jupyter_support import SECRET, JudgedReviews, one_endpoint_pipeline, resources, state_json

from plait import LLMInference, Module, execute, run_batch, trace
from plait.clients.base import ChatRequest, Usage
from plait.execution import events as ev
from plait.execution.batch import BatchProgress
from plait.execution.result import NodeRecord
from plait_jupyter import BatchProgressView, GraphView
from plait_jupyter.inspector import request_info, view_state
from plait_jupyter.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class WithDeadBranch(Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = LLMInference("fast")
        self.used = LLMInference("fast")

    def forward(self, text):
        self.unused(text)
        return self.used(text)


class Outer(Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = one_endpoint_pipeline()
        self.final = LLMInference("fast")

    def forward(self, text):
        return self.final(self.inner(text))


def groups_of(view, grouping):
    data = view.graph_data
    labels = {g["id"]: g["label"] for g in data["groups"][grouping]}
    return {n["id"]: labels.get(n["groups"][grouping]) for n in data["nodes"]}


def test_a_graph_is_drawn_pending_with_dead_nodes_unused():
    view = GraphView(trace(WithDeadBranch(), "x"))
    assert view.node_states == {"text": "pending", "unused": "unused", "used": "pending"}
    assert [n["id"] for n in view.graph_data["nodes"]] == ["text", "unused", "used"]
    assert view.graph_data["edges"] == [["text", "unused"], ["text", "used"]]
    assert view.run_info["status"] == "not run"


async def test_a_finished_result_is_drawn_with_its_records():
    result = await execute(one_endpoint_pipeline(), "hi", resources=resources())
    view = GraphView(result)
    assert view.node_states == {"text": "done", "summarize": "done", "analyze": "done"}
    details = view.node_details["analyze"]
    assert details["output"]["text"] == result.output
    assert details["request"]["messages"][0] == {
        "role": "system",
        "content": "Be concise and concrete.",
    }
    assert details["inputs"][0]["text"] == result.nodes["analyze"].request.messages[1]["content"]
    assert view.result is result
    assert [n["output"] for n in view.graph_data["nodes"]] == [False, False, True]


def test_nodes_are_grouped_by_module_path_and_by_helper_scope():
    view = GraphView(trace(Outer(), "x"))
    assert groups_of(view, "module") == {
        "text": None,
        "inner.summarize": "inner",
        "inner.analyze": "inner",
        "final": None,
    }
    reviews = GraphView(trace(JudgedReviews(), ["a", "b", "c"]))
    scopes = groups_of(reviews, "scope")
    assert scopes["writer"] == scopes["strip"] == "add_review#1"
    assert scopes["writer_2"] == scopes["strip_2"] == "add_review#3"
    assert scopes["judge"] is None
    assert len(reviews.graph_data["groups"]["scope"]) == 3


async def test_a_batch_is_drawn_item_by_item_up_to_max_nodes():
    items = await run_batch(one_endpoint_pipeline(), ["a", "b", "c"], resources=resources())
    view = GraphView(items)
    assert sorted(view.node_states) == sorted(
        f"{i}/{nid}" for i in range(3) for nid in ("text", "summarize", "analyze")
    )
    assert groups_of(view, "module")["2/analyze"] == "item 2"
    assert view.run_info["items_done"] == 3
    small = GraphView(items, max_nodes=7)
    assert len(small.node_states) == 6 and small.graph_data["hidden"] == 3


def _started(graph, records):
    return ev.RunStarted(0.0, None, len(graph), "run-x", graphs=(graph,), records=(records,))


def test_states_follow_the_events_of_a_run():
    graph = trace(one_endpoint_pipeline(), "x")
    records = {nid: NodeRecord(nid, "llm", nid) for nid in graph.nodes}
    view = GraphView(interval=0.0)
    view.on_event(_started(graph, records))
    seen = []
    for event in (
        ev.NodeCompleted(0.0, "text"),
        ev.NodeQueued(0.1, "summarize", "fast"),
        ev.NodeStarted(0.2, "summarize", "fast"),
        ev.NodeRetry(0.3, "summarize", "fast", 1, "TransientError: 503", 0.5, 503),
        ev.NodeStarted(0.8, "summarize", "fast", attempt=2),
        ev.NodeCompleted(0.9, "summarize", "fast", attempts=2, cached=True),
        ev.NodeFailed(1.0, "analyze", "fast", "ValueError: x", skipped=True),
    ):
        view.on_event(event)
        seen.append((view.node_states["summarize"], view.node_states["analyze"]))
    assert seen == [
        ("pending", "pending"),
        ("queued", "pending"),
        ("running", "pending"),
        ("retrying", "pending"),
        ("running", "pending"),
        ("cached", "pending"),
        ("cached", "skipped"),
    ]
    assert view.run.details["summarize"]["retries"] == [
        {"attempt": 1, "error": "TransientError: 503", "delay": 0.5}
    ]


def test_state_messages_are_coalesced_and_the_final_state_is_always_sent():
    graph = trace(JudgedReviews(), [f"t{i}" for i in range(50)])
    clock = FakeClock()
    view = GraphView(clock=clock, interval=0.1)
    view.on_event(_started(graph, {}))
    sent = []
    view.observe(lambda change: sent.append(dict(change["new"])), names="node_states")
    ids = [nid for nid in graph.nodes if not nid.startswith("topics")]
    events = [ev.NodeQueued(0.0, nid) for nid in ids] + [ev.NodeStarted(0.0, nid) for nid in ids]
    events += [ev.NodeCompleted(0.0, nid) for nid in ids]
    assert len(events) == 306
    for event in events:  # spread over one second
        clock.now += 1.0 / len(events)
        view.on_event(event)
    assert 9 <= len(sent) <= 11  # live, but at most one message per 0.1 s
    view.on_event(ev.RunFinished(1.0, None, "done"))
    assert len(sent) <= 12
    assert {sent[-1][nid] for nid in ids} == {"done"}


def test_details_of_changed_nodes_travel_in_the_flush_while_the_run_goes_on():
    graph = trace(one_endpoint_pipeline(), "x")
    records = {nid: NodeRecord(nid, "llm", nid) for nid in graph.nodes}
    view = GraphView(interval=0.0)
    messages = []
    view.send = messages.append
    view.on_event(_started(graph, records))
    records["summarize"].request = ChatRequest("m", ({"role": "user", "content": "<b>hi</b>"},))
    view.on_event(ev.NodeStarted(0.1, "summarize", "fast"))
    (message,) = messages
    assert message["type"] == "details"
    assert message["details"]["summarize"]["request"]["messages"] == [
        {"role": "user", "content": "<b>hi</b>"}
    ]
    assert view.node_details == {}  # the full set is synced once, when the run ends


async def test_streamed_text_shows_in_the_details_until_the_output_arrives():
    graph = trace(one_endpoint_pipeline(), "x")
    records = {nid: NodeRecord(nid, "llm", nid) for nid in graph.nodes}
    view = GraphView(interval=0.0)
    view.on_event(_started(graph, records))
    view.on_event(ev.NodeDelta(0.1, "summarize", text="Hel"))
    view.on_event(ev.NodeDelta(0.2, "summarize", text="lo"))
    assert view.run.details["summarize"]["stream"] == "Hello"


async def test_a_live_view_ends_equal_to_the_run_result_with_retries_counted():
    view = GraphView()
    faults = [{"kind": "server_error", "attempts": "first", "match": {"system": "Summarize"}}]
    result = await execute(
        one_endpoint_pipeline(), "x", resources=resources(faults=faults), on_event=view.on_event
    )
    assert result.nodes["summarize"].attempts == 2
    assert view.node_states == {nid: r.status for nid, r in result.nodes.items()}
    assert view.node_details["summarize"]["attempts"] == 2
    assert len(view.node_details["summarize"]["retries"]) == 1
    assert view.run_info["tokens"] == result.usage.total_tokens
    assert view.result is result


async def test_no_api_key_reaches_the_widget_state():
    view = GraphView()
    await execute(one_endpoint_pipeline(), "x", resources=resources(), on_event=view.on_event)
    assert view.node_states["analyze"] == "done"
    assert SECRET not in state_json(view)


def test_credential_like_request_options_are_redacted():
    request = ChatRequest(
        "m",
        ({"role": "user", "content": "q"},),
        temperature=0.2,
        options={"api_key": SECRET, "metadata": {"Authorization": SECRET}, "seed": 7},
    )
    info = request_info(request)
    assert SECRET not in str(info)
    assert info["settings"] == (
        "temperature=0.2, api_key='***', metadata={'Authorization': '***'}, seed=7"
    )


def test_reused_results_show_as_cached():
    record = NodeRecord("n", "llm", "n", status="done", cached=True, usage=Usage())
    assert view_state(record) == "cached"
    record.cached, record.restored = False, True
    assert view_state(record) == "cached"
    record.restored = False
    assert view_state(record) == "done"


def test_a_graph_view_refuses_what_it_cannot_draw():
    with pytest.raises(TypeError, match="got int"):
        GraphView(3)


def test_progress_updates_are_coalesced_and_the_last_one_is_shown():
    clock = FakeClock()
    view = BatchProgressView(clock=clock)
    shown = []
    view.observe(lambda change: shown.append(change["new"]["done"]), names="progress")
    for done in range(1, 101):
        clock.now += 0.005
        view.update(BatchProgress(100, done, 0, 0, done * 10, 0.0, clock.now, None))
    assert len(shown) <= 7
    assert shown[-1] == 100


def test_throttle_without_a_loop_defers_to_the_next_window_or_finish():
    clock = FakeClock()
    flushed = []
    throttle = Throttle(lambda: flushed.append(clock.now), 0.1, clock)
    throttle.poke()
    clock.now = 0.05
    throttle.poke()
    assert flushed == [0.0]
    throttle.finish()
    assert flushed == [0.0, 0.05]


async def test_throttle_on_a_loop_flushes_a_deferred_change_when_its_window_ends():
    done = asyncio.Event()
    flushes = []

    def flush():
        flushes.append(1)
        if len(flushes) == 2:
            done.set()

    throttle = Throttle(flush, 0.01)
    throttle.poke()
    throttle.poke()
    throttle.poke()
    assert len(flushes) == 1
    await asyncio.wait_for(done.wait(), 5)
    assert len(flushes) == 2


def test_run_started_hands_observers_the_graph_and_records_but_exports_neither():
    graph = trace(one_endpoint_pipeline(), "x")
    event = _started(graph, {})
    assert event.graphs == (graph,)
    assert ev.event_to_dict(event) == {
        "type": "run_started",
        "time": 0.0,
        "node_id": None,
        "item": None,
        "nodes": 3,
        "run_id": "run-x",
    }
    assert "result" not in ev.event_to_dict(ev.RunFinished(1.0, None, result=object()))
