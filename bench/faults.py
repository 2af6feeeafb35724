"""Fault runs: N calls when 20% of first attempts get a 503, and through a 429 storm.

The simulator process injects the faults; its fault draws depend only on the
request and on how often it was seen, and the server is reset before every
run, so plait and the baseline meet exactly the same faults. Baseline: a
hand-written asyncio + httpx retry loop under a semaphore(cap) that uses
plait's default `RetryPolicy` numbers (retries, base delay, cap on the delay:
full-jitter exponential backoff, ``Retry-After`` as a floor) and, like plait,
holds no slot while backing off. Figures: calls lost (must be 0), extra
requests (server count minus N), and makespan against the baseline and against
the lower bound max(critical path, requests x latency / cap).

The 429 storm: every request of a run of consecutive items (the middle sixth)
is refused once with ``Retry-After: 1``. plait pauses the whole endpoint for
the Retry-After (its limiter treats a 429 as "this endpoint is over its
limit"); the baseline only delays the refused request.

Run alone: ``python bench/faults.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
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
    http_resources,
    median,
    prompts,
    render_table,
    reply_text,
    simulator_process,
)
from plait import run_batch
from plait.resources.retry import RetryPolicy

POLICY = RetryPolicy()  # plait's defaults, which both sides use
POLICY_NOTE = (
    f"both sides: max_retries={POLICY.max_retries}, base {POLICY.base_delay:g} s, "
    f"full jitter, cap {POLICY.max_delay:g} s"
)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))], Retry-After as a floor."""
    ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempt - 1))
    wait = rng.uniform(0.0, ceiling)
    return max(wait, retry_after) if retry_after is not None else wait


def retryable(status: int) -> bool:
    """The statuses plait retries (see plait.clients._http): 408, 409, 429 and 5xx."""
    return status in (408, 409, 429) or status >= 500


def retry_after(response: httpx.Response) -> float | None:
    if "retry-after-ms" in response.headers:
        return float(response.headers["retry-after-ms"]) / 1000
    if "retry-after" in response.headers:
        return float(response.headers["retry-after"])
    return None


async def httpx_retrying(url: str, texts: list[str], cap: int) -> int:
    """The hand-written retry loop; returns how many calls were lost."""
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    rng = random.Random()
    async with httpx.AsyncClient(base_url=url + "/v1", limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(cap)

        async def call(text: str) -> str | None:
            for attempt in range(1, POLICY.max_attempts + 1):
                async with gate:
                    try:
                        response = await client.post("/chat/completions", json=body(text))
                    except httpx.TransportError:
                        response = None
                if response is not None and response.status_code == 200:
                    return reply_text(response.json())
                if response is not None and not retryable(response.status_code):
                    return None
                if attempt <= POLICY.max_retries:
                    wait = None if response is None else retry_after(response)
                    await asyncio.sleep(backoff(attempt, wait, rng))
            return None

        answers = await asyncio.gather(*(call(text) for text in texts))
    return answers.count(None)


async def plait_retrying(url: str, texts: list[str], cap: int) -> int:
    items = await run_batch(Single(), texts, resources=http_resources(url, cap), progress=False)
    return sum(1 for item in items if not item.ok)


def _run(
    name: str,
    label: str,
    texts: list[str],
    settings: dict[str, Any],
    cap: int,
    rounds: int,
    critical_path: float,
    target: float | None,
) -> Result:
    with simulator_process(**settings) as server:

        async def measure() -> Any:
            return await alternate(
                rounds,
                lambda: httpx_retrying(server.url, texts, cap),
                lambda: plait_retrying(server.url, texts, cap),
                before=server.reset,
                after=server.stats,
            )

        measured = asyncio.run(measure())
    calls, latency = len(texts), settings["latency"]
    lost = {side: measured.outputs[side] for side in SIDES}
    extra = {side: [s["total"] - calls for s in measured.observed[side]] for side in SIDES}
    requests = {side: [s["total"] for s in measured.observed[side]] for side in SIDES}
    bound = max(critical_path, median(requests["plait"]) * latency / cap)
    plait = measured.median("plait")
    figures = (
        Figure(name, f"{label}: calls lost", "calls", None, max(lost["plait"]), 0, "plait"),
        Figure(
            name,
            f"{label}: extra requests",
            "requests",
            median(extra["baseline"]),
            median(extra["plait"]),
            baseline_name="retry loop",
        ),
        Figure(
            name,
            f"{label}: makespan",
            "s",
            measured.median("baseline"),
            plait,
            target=target,
            baseline_name="retry loop",
            note=f"median of {rounds}; {POLICY_NOTE}",
        ),
        Figure(
            name,
            f"{label}: makespan against the lower bound",
            "s",
            bound,
            plait,
            baseline_name="lower bound",
            note=f"retry loop: {measured.median('baseline') / bound:.3f}× the bound",
        ),
    )
    details = {
        "calls": calls,
        "settings": settings,
        "cap": cap,
        "rounds": measured.to_dict(),
        "lost": lost,
        "extra_requests": extra,
        "lower_bound": bound,
        "server": {side: measured.observed[side] for side in SIDES},
    }
    return Result(name.split(". ", 1)[-1].replace(" ", "_"), figures, details)


def run_server_errors(
    calls: int = 300, rate: float = 0.2, latency: float = 0.05, cap: int = 32, rounds: int = 3
) -> Result:
    """Benchmark 5: ``rate`` of first attempts answered 503."""
    fault = {"kind": "server_error", "status": 503, "rate": rate, "attempts": "first"}
    settings = {"latency": latency, "faults": [fault]}
    label = f"{calls} calls, {rate:.0%} first-attempt 503s, {latency * 1000:.0f} ms, cap {cap}"
    # A refused request's retry may follow at once (the jitter can draw 0).
    return _run("5. faults", label, prompts(calls), settings, cap, rounds, 2 * latency, 1.25)


def run_rate_limit_storm(
    calls: int = 300,
    latency: float = 0.05,
    cap: int = 32,
    retry_after: float = 1.0,
    rounds: int = 3,
) -> Result:
    """Benchmark 5b: the middle sixth of the items are refused once with a 429."""
    first, last = calls * 5 // 12, calls * 7 // 12
    storm = "|".join(f"item {i}:" for i in range(first, last))
    fault = {
        "kind": "rate_limit",
        "retry_after": retry_after,
        "attempts": "first",
        "match": {"user": f"regex:^({storm})"},
    }
    settings = {"latency": latency, "faults": [fault]}
    label = f"{calls} calls, 429 storm on items {first}-{last - 1} (Retry-After {retry_after:g} s)"
    critical_path = 2 * latency + retry_after
    return _run("5. 429 storm", label, prompts(calls), settings, cap, rounds, critical_path, None)


def run(quick: bool = False) -> list[Result]:
    if quick:
        return [
            run_server_errors(calls=150, rounds=1),
            run_rate_limit_storm(calls=150, rounds=1),
        ]
    return [run_server_errors(), run_rate_limit_storm()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (~6 s)")
    results = run(parser.parse_args().quick)
    print(render_table([f for r in results for f in r.figures]))


if __name__ == "__main__":
    main()
