"""Batch makespan: items x (2 parallel calls + 1 join) at 100 ms latency under a concurrency cap.

Both sides call the same simulator process (``latency=0.1``). Baseline:
asyncio + one shared ``httpx.AsyncClient`` under a semaphore(cap), in its
natural structure (per item, gather the two calls, then the join; all items
gathered at once). plait: `run_batch` of the same three-call pipeline with
the endpoint's ``max_concurrent`` = cap. Figures: plait's makespan against the
baseline's, and against the lower bound max(critical path = 2 x latency,
calls x latency / cap).

Run alone: ``python bench/batch.py [--quick]``.
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
    FAN_SYSTEMS,
    JOIN_SYSTEM,
    FanJoin,
    Figure,
    Result,
    alternate,
    body,
    exit_on_sigterm,
    http_resources,
    prompts,
    render_table,
    reply_text,
    simulator_process,
)
from plait import run_batch

CALLS_PER_ITEM = 3
LAYERS = 2  # the two parallel calls, then the join


async def httpx_fan_join(url: str, texts: list[str], cap: int) -> list[str]:
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    async with httpx.AsyncClient(base_url=url + "/v1", limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(cap)

        async def call(system: str, user: str) -> str:
            async with gate:
                response = await client.post("/chat/completions", json=body(user, system))
            response.raise_for_status()
            return reply_text(response.json())

        async def item(text: str) -> str:
            left, right = await asyncio.gather(*(call(system, text) for system in FAN_SYSTEMS))
            return await call(JOIN_SYSTEM, "\n".join([left, right]))

        return await asyncio.gather(*(item(text) for text in texts))


async def plait_fan_join(url: str, texts: list[str], cap: int) -> list[str | None]:
    items = await run_batch(FanJoin(), texts, resources=http_resources(url, cap), progress=False)
    return [item.output if item.ok else None for item in items]


def lower_bound(items: int, latency: float, cap: int) -> float:
    return max(LAYERS * latency, items * CALLS_PER_ITEM * latency / cap)


def run_makespan(items: int = 200, latency: float = 0.1, cap: int = 32, rounds: int = 3) -> Result:
    """Benchmark 3: batch makespan, plait vs a hand-written asyncio + httpx batch."""
    texts = prompts(items)
    with simulator_process(latency=latency) as server:

        async def measure() -> tuple[Any, dict[str, Any]]:
            warm = texts[: min(cap, items)]
            await httpx_fan_join(server.url, warm, cap)
            await plait_fan_join(server.url, warm, cap)
            server.reset()
            measured = await alternate(
                rounds,
                lambda: httpx_fan_join(server.url, texts, cap),
                lambda: plait_fan_join(server.url, texts, cap),
            )
            return measured, server.stats()

        measured, stats = asyncio.run(measure())
    bound = lower_bound(items, latency, cap)
    baseline, plait = measured.median("baseline"), measured.median("plait")
    shape = f"{items} items × (2 parallel + 1 join), {latency * 1000:.0f} ms, cap {cap}"
    figures = (
        Figure(
            "3. batch makespan",
            shape,
            "s",
            baseline,
            plait,
            target=1.05,
            baseline_name="asyncio+httpx",
            note=f"median of {rounds}",
        ),
        Figure(
            "3. batch makespan",
            "against the lower bound",
            "s",
            bound,
            plait,
            baseline_name="lower bound",
            note=f"asyncio+httpx: {baseline / bound:.3f}× the bound",
        ),
    )
    details = {
        "items": items,
        "calls": items * CALLS_PER_ITEM * rounds * 2,
        "latency": latency,
        "cap": cap,
        "lower_bound": bound,
        "rounds": measured.to_dict(),
        "answers_match": measured.outputs["baseline"] == measured.outputs["plait"],
        "server": stats,
    }
    return Result("batch_makespan", figures, details)


def run(quick: bool = False) -> list[Result]:
    return [run_makespan(items=100, rounds=1) if quick else run_makespan()]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (~3 s)")
    results = run(parser.parse_args().quick)
    print(render_table([f for r in results for f in r.figures]))


if __name__ == "__main__":
    main()
