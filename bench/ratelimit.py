"""Rate-limited throughput: N calls with a client limit of R rps against a server enforcing more.

The simulator process answers requests beyond ``max_rps`` (R x 1.1) with
429. plait: `run_batch` of a one-call pipeline with ``rpm = 60 R``. The
target is the configured limit itself: a makespan within 1.05x of N / R with
zero 429s (counted by the server, ``GET /stats``). For scale, a hand-written
asyncio + httpx loop that starts call i at i / R seconds is measured too.

Run alone: ``python bench/ratelimit.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import (
    SIDES,
    Figure,
    Result,
    Single,
    alternate,
    body,
    exit_on_sigterm,
    http_resources,
    prompts,
    render_table,
    simulator_process,
)
from plait import run_batch

HEADROOM = 1.1  # the server's limit, as a multiple of the client's


async def httpx_paced(url: str, texts: list[str], rps: float, cap: int) -> int:
    """Start call i at i / rps seconds (no retries); returns how many calls failed."""
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    async with httpx.AsyncClient(base_url=url + "/v1", limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(cap)
        start = time.perf_counter()

        async def call(index: int, text: str) -> bool:
            await asyncio.sleep(max(0.0, start + index / rps - time.perf_counter()))
            async with gate:
                response = await client.post("/chat/completions", json=body(text))
            return response.status_code == 200

        done = await asyncio.gather(*(call(i, text) for i, text in enumerate(texts)))
    return done.count(False)


async def plait_limited(url: str, texts: list[str], rps: float, cap: int) -> int:
    """plait with ``rpm = 60 rps``; returns how many items failed."""
    resources = http_resources(url, cap, rpm=60 * rps)
    items = await run_batch(Single(), texts, resources=resources, progress=False)
    return sum(1 for item in items if not item.ok)


def run_ratelimit(
    calls: int = 300, rps: float = 100.0, cap: int = 32, latency: float = 0.0, rounds: int = 2
) -> Result:
    """Benchmark 4: makespan at the client rate limit, and 429s the server sent."""
    texts = prompts(calls)
    with simulator_process(latency=latency, max_rps=rps * HEADROOM) as server:

        async def measure() -> Any:
            return await alternate(
                rounds,
                lambda: httpx_paced(server.url, texts, rps, cap),
                lambda: plait_limited(server.url, texts, rps, cap),
                before=server.reset,
                after=server.stats,
            )

        measured = asyncio.run(measure())
    ideal = calls / rps
    plait = measured.median("plait")
    rate_limited = {
        side: [stats["by_status"].get("429", 0) for stats in measured.observed[side]]
        for side in SIDES
    }
    limit = f"{calls} calls at {rps:g} rps (server limit {rps * HEADROOM:g} rps)"
    figures = (
        Figure(
            "4. rate-limited throughput",
            limit,
            "s",
            ideal,
            plait,
            target=1.05,
            baseline_name="calls / limit",
            note=f"median of {rounds}",
        ),
        Figure(
            "4. rate-limited throughput",
            "makespan against a paced loop",
            "s",
            measured.median("baseline"),
            plait,
            baseline_name="asyncio+httpx paced",
        ),
        Figure(
            "4. rate-limited throughput",
            "429s sent by the server",
            "429s",
            None,
            max(rate_limited["plait"]),
            target=0,
            target_of="plait",
            note="worst round",
        ),
    )
    details = {
        "calls": calls,
        "rps": rps,
        "server_max_rps": rps * HEADROOM,
        "ideal": ideal,
        "rounds": measured.to_dict(),
        "failed": {side: measured.outputs[side] for side in SIDES},
        "rate_limited": rate_limited,
        "server": {side: measured.observed[side] for side in SIDES},
    }
    return Result("rate_limit", figures, details)


def run(quick: bool = False) -> list[Result]:
    return [run_ratelimit(calls=100, rounds=1) if quick else run_ratelimit()]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (~3 s)")
    results = run(parser.parse_args().quick)
    print(render_table([f for r in results for f in r.figures]))


if __name__ == "__main__":
    main()
