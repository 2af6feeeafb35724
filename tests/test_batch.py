"""Batch runs: order, errors as data, streaming, early stop, progress."""

import asyncio
import contextlib
import warnings

from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait
from plait import LLMInference, Module, ResourceConfig, run, run_batch, stream_batch
from plait.execution.batch import BatchProgress


class Echo(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast", system_prompt="Echo.")

    def forward(self, text):
        return self.llm(text)


async def test_results_come_back_in_input_order_with_errors_as_data():
    fault = {"kind": "client_error", "status": 400, "match": {"user": "bad"}}
    with sim_server_thread(latency=0.01, jitter=0.05, faults=[fault]) as server:
        texts = [f"item {i}" if i % 4 else f"bad {i}" for i in range(12)]
        items = await run_batch(
            Echo(), texts, resources=http_resources(server.url, "fast"), progress=False
        )
        single = await run(Echo(), "item 5", resources=http_resources(server.url, "fast"))
    assert [item.index for item in items] == list(range(12))
    assert [item.input for item in items] == texts
    assert [item.ok for item in items] == [i % 4 != 0 for i in range(12)]
    assert items[5].output == single
    assert all(item.error is None for item in items if item.ok)
    assert all("400" in str(item.error) and item.output is None for item in items if not item.ok)


@plait.op
async def wait_then_echo(text: str) -> str:
    await asyncio.sleep(float(text.split()[1]))
    return text


class Waiter(Module):
    def forward(self, text):
        return wait_then_echo(text)


async def test_stream_batch_yields_in_completion_order():
    inputs = ["wait 0.3", "wait 0.0", "wait 0.15"]
    stream = stream_batch(Waiter(), inputs, progress=False)
    order = [(item.index, item.output) async for item in stream]
    assert order == [(1, "wait 0.0"), (2, "wait 0.15"), (0, "wait 0.3")]
    collected = await run_batch(Waiter(), inputs, progress=False)
    assert [item.index for item in collected] == [0, 1, 2]


async def test_breaking_out_of_a_stream_cancels_the_rest():
    with sim_server_thread(latency=0.3) as server:
        resources = http_resources(server.url, "fast", max_concurrent=2)
        stream = stream_batch(
            Echo(), [f"item {i}" for i in range(10)], resources=resources, progress=False
        )
        async with contextlib.aclosing(stream):
            first = await anext(stream)
        assert first.ok
        await asyncio.sleep(0.05)
        assert server.model.stats.in_flight == 0
        total = server.model.stats.total
        await asyncio.sleep(0.6)
        assert server.model.stats.total == total  # nothing new started after the break
    assert total < 10
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


async def test_progress_callback_reports_every_item_and_the_final_state():
    seen: list[BatchProgress] = []
    resources = ResourceConfig({"fast": {"provider": "simulated", "input_cost_per_million": 1.0}})
    await run_batch(
        Echo(),
        [f"i{i}" for i in range(5)],
        resources=resources,
        on_progress=seen.append,
        progress=False,
    )
    assert [p.done for p in seen] == [1, 2, 3, 4, 5]
    final = seen[-1]
    assert (final.total, final.failed, final.retrying) == (5, 0, 0)
    assert final.tokens > 0 and final.cost > 0 and final.eta == 0
    assert str(final).startswith("[########################] 5/5")


async def test_terminal_progress_bar_when_asked(capsys):
    await run_batch(Echo(), ["a", "b"], resources=ResourceConfig.simulated("fast"), progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and err.endswith("\n")


async def test_identical_input_shapes_share_one_traced_graph():
    resources = ResourceConfig.simulated("fast")
    items = await run_batch(Echo(), ["a", "b", "c"], resources=resources, progress=False)
    assert items[0].result.graph is items[2].result.graph
    mixed = await run_batch(Echo(), ["a", 3], resources=resources, progress=False)
    assert mixed[0].result.graph is not mixed[1].result.graph


async def test_a_broken_on_event_callback_warns_and_every_item_keeps_its_events():
    seen = []

    def broken(event):
        raise ValueError("display bug")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = await run_batch(
            Echo(),
            ["a", "b", "c"],
            resources=ResourceConfig.simulated("fast"),
            on_event=[broken, seen.append],
            progress=False,
        )
    assert all(item.ok for item in items)
    assert caught and all("display bug" in str(w.message) for w in caught)
    for item in items:  # each item's own events, also seen by the working callback
        mine = [e for e in seen if e.item == item.index]
        assert item.result.events == mine
        assert [e.type for e in mine][-1] == "node_completed"
