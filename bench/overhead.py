"""Per-call overhead: client CPU over loopback HTTP, and per-node time in process.

``http``: N calls at a concurrency of C against a zero-latency simulator in a
separate process. Baseline: asyncio + one shared ``httpx.AsyncClient`` posting
the same chat-completions bodies under a semaphore(C) and reading ``.json()``.
plait: `run_batch` of a one-call pipeline over the same N prompts, endpoint
``max_concurrent=C``. Figure: client-process CPU seconds per call
(``time.process_time``), median of alternating rounds.

``inprocess``: the in-process simulated provider at zero latency, where
nothing but Python runs. A wide graph of N independent LLM nodes through
`execute` (tracing included), and N/4 items x 4-call chains through
`run_batch`. Floor: a hand-written asyncio loop calling
`SimulatedModel.handle` directly with the same bodies (same nesting: one task
per node / per chain). Figure: wall µs per node.

Run alone: ``python bench/overhead.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import (
    Chain,
    Figure,
    Result,
    Single,
    Wide,
    alternate,
    body,
    exit_on_sigterm,
    http_resources,
    prompts,
    render_table,
    reply_text,
    simulated_resources,
    simulator_process,
    timed,
)
from plait import execute, run_batch, trace
from plait.simulator import SimulatedModel, SimulatorSettings

CHAT_PATH = "/v1/chat/completions"


async def httpx_calls(url: str, texts: list[str], concurrency: int) -> list[str]:
    """The hand-written baseline: one shared AsyncClient, a semaphore, one task per call."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url + "/v1", limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def call(text: str) -> str:
            async with gate:
                response = await client.post("/chat/completions", json=body(text))
            response.raise_for_status()
            return reply_text(response.json())

        return await asyncio.gather(*(call(text) for text in texts))


async def plait_calls(url: str, texts: list[str], concurrency: int) -> list[str | None]:
    items = await run_batch(
        Single(), texts, resources=http_resources(url, concurrency), progress=False
    )
    return [item.output if item.ok else None for item in items]


def run_http(calls: int = 2_000, concurrency: int = 8, rounds: int = 3) -> Result:
    """Benchmark 1: client CPU per call over loopback HTTP, plait vs httpx by hand."""
    texts = prompts(calls)
    with simulator_process() as server:

        async def measure() -> tuple[Any, dict[str, Any]]:
            warm = texts[: min(50, calls)]  # first connections, lazy imports
            await httpx_calls(server.url, warm, concurrency)
            await plait_calls(server.url, warm, concurrency)
            measured = await alternate(
                rounds,
                lambda: httpx_calls(server.url, texts, concurrency),
                lambda: plait_calls(server.url, texts, concurrency),
            )
            return measured, server.stats()

        measured, stats = asyncio.run(measure())
    baseline, plait = (measured.outputs[side][-1] for side in ("baseline", "plait"))
    per_call = 1e6 / calls
    figure = Figure(
        "1. client CPU, loopback HTTP",
        f"{calls:,} calls, concurrency {concurrency}",
        "µs/call",
        measured.median("baseline", "cpu") * per_call,
        measured.median("plait", "cpu") * per_call,
        target=1.15,
        baseline_name="asyncio+httpx",
        note=f"median of {rounds}",
    )
    details = {
        "calls": calls,
        "concurrency": concurrency,
        "rounds": measured.to_dict(),
        "answers_match": baseline == plait,
        "errors": plait.count(None),
        "server": stats,
    }
    return Result("http_overhead", (figure,), details)


async def floor_wide(docs: list[str]) -> list[str]:
    """One task per node calling the simulator directly: the most a scheduler could save."""
    model = SimulatedModel(SimulatorSettings())

    async def call(doc: str) -> str:
        response = await model.handle(CHAT_PATH, body(doc))
        return reply_text(response.json)

    return await asyncio.gather(*(call(doc) for doc in docs))


async def floor_chains(texts: list[str], length: int) -> list[str]:
    model = SimulatedModel(SimulatorSettings())

    async def chain(text: str) -> str:
        for step in range(length):
            response = await model.handle(CHAT_PATH, body(text, f"Step {step}"))
            text = reply_text(response.json)
        return text

    return await asyncio.gather(*(chain(text) for text in texts))


async def plait_wide(docs: list[str], concurrency: int) -> list[str]:
    result = await execute(Wide(), docs, resources=simulated_resources(concurrency))
    return result.output


async def plait_chains(texts: list[str], length: int, concurrency: int) -> list[str | None]:
    items = await run_batch(
        Chain(length), texts, resources=simulated_resources(concurrency), progress=False
    )
    return [item.output if item.ok else None for item in items]


def run_inprocess(
    nodes: int = 10_000, chain: int = 4, concurrency: int = 32, rounds: int = 3
) -> Result:
    """Benchmark 2: per-node time with the in-process simulator at zero latency."""
    docs = prompts(nodes)
    chains = docs[: nodes // chain]

    async def measure() -> dict[str, Any]:
        await plait_wide(docs[:50], concurrency)  # lazy imports, first-use caches
        wide = await alternate(
            rounds, lambda: floor_wide(docs), lambda: plait_wide(docs, concurrency)
        )
        chained = await alternate(
            rounds,
            lambda: floor_chains(chains, chain),
            lambda: plait_chains(chains, chain, concurrency),
        )
        return {"wide": wide, "chains": chained}

    measured = asyncio.run(measure())
    with timed() as tracing:
        trace(Wide(), docs)
    per_node = 1e6 / nodes
    wide, chained = measured["wide"], measured["chains"]
    figures = (
        Figure(
            "2. scheduler, in-process",
            f"wide graph of {nodes:,} LLM nodes, execute()",
            "µs/node",
            wide.median("baseline") * per_node,
            wide.median("plait") * per_node,
            target=50,
            target_of="plait",
            baseline_name="handle() floor",
            note=f"tracing {tracing[0].wall * per_node:.0f} µs/node of it",
        ),
        Figure(
            "2. scheduler, in-process",
            f"{len(chains):,} items × {chain}-call chains, run_batch()",
            "µs/node",
            chained.median("baseline") * per_node,
            chained.median("plait") * per_node,
            target=50,
            target_of="plait",
            baseline_name="handle() floor",
        ),
    )
    details = {
        "nodes": nodes,
        "chain": chain,
        "wide": wide.to_dict(),
        "chains": chained.to_dict(),
        "trace_seconds": tracing[0].wall,
        "wide_answers_match": wide.outputs["baseline"] == wide.outputs["plait"],
        "chain_answers_match": chained.outputs["baseline"] == chained.outputs["plait"],
    }
    return Result("inprocess_overhead", figures, details)


def run(quick: bool = False) -> list[Result]:
    if quick:
        return [run_http(calls=300, rounds=1), run_inprocess(nodes=2_000, rounds=1)]
    return [run_http(), run_inprocess()]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (~5 s)")
    results = run(parser.parse_args().quick)
    print(render_table([f for r in results for f in r.figures]))


if __name__ == "__main__":
    main()
