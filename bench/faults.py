"""Fault runs: N calls when 20% of first attempts get a 503, and through a 429 storm.

The simulator process injects the faults; its fault draws depend only on the
request and on how often it was seen, and the server is reset before every
run, so plait and the baseline meet exactly the same faults. Baseline: a
hand-written asyncio + httpx retry loop under a semaphore(cap) that uses
plait's default `RetryPolicy` (retries, base delay, cap on the delay;
full-jitter exponential backoff, added to the ``Retry-After`` of a 429; the
smoke test checks the two agree) and, like plait, holds no slot while backing
off. Figures: calls lost (must be 0), extra
requests (server count minus N), and makespan against the baseline and against
the lower bound max(critical path, requests x latency / cap).

Two 429 variants. The storm: the server enforces ``max_rps`` well below what
the clients (no rate limit configured) would send, so whole waves of requests
are refused with a short Retry-After until the clients back off; the
server's token bucket starts full (it is left to refill before each run). The
burst: every request of a band of consecutive items (the middle sixth) is
refused once with ``Retry-After: 1``. Both sides delay each refused request by
its Retry-After; a band of consecutively started requests refused is also
what an over-rate looks like, so plait's limiter pauses the endpoint once.

Run alone: ``python bench/faults.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
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
    f"both use plait's RetryPolicy: {POLICY.max_retries} retries, full jitter "
    f"from {POLICY.base_delay:g} s"
)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))], added to any Retry-After."""
    ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempt - 1))
    wait = rng.uniform(0.0, ceiling)
    return wait + retry_after if retry_after is not None else wait


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
    settle: float = 0.0,
) -> Result:
    with simulator_process(**settings) as server:

        def before() -> None:
            server.reset()
            time.sleep(settle)  # let the server's max_rps bucket fill up again

        async def measure() -> Any:
            return await alternate(
                rounds,
                lambda: httpx_retrying(server.url, texts, cap),
                lambda: plait_retrying(server.url, texts, cap),
                before=before,
                after=server.stats,
            )

        measured = asyncio.run(measure())
    calls, latency = len(texts), settings["latency"]
    lost = {side: measured.outputs[side] for side in SIDES}
    extra = {side: [s["total"] - calls for s in measured.observed[side]] for side in SIDES}
    requests = {side: [s["total"] for s in measured.observed[side]] for side in SIDES}
    bound = max(critical_path, median(requests["plait"]) * latency / cap)
    plait = measured.median("plait")
    title = f"{name}: {label}"
    figures = (
        Figure(
            title, "calls lost", "calls", None, max(lost["plait"]), 0, "plait", note="worst round"
        ),
        Figure(
            title,
            "extra requests",
            "requests",
            median(extra["baseline"]),
            median(extra["plait"]),
            baseline_name="retry loop",
        ),
        Figure(
            title,
            "makespan",
            "s",
            measured.median("baseline"),
            plait,
            target=target,
            baseline_name="retry loop",
            note=f"median of {rounds}; {POLICY_NOTE}",
        ),
        Figure(
            title,
            "makespan against the lower bound",
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
    calls: int = 300, rate: float = 0.2, latency: float = 0.05, cap: int = 32, rounds: int = 5
) -> Result:
    """Benchmark 5: ``rate`` of first attempts answered 503."""
    fault = {"kind": "server_error", "status": 503, "rate": rate, "attempts": "first"}
    settings = {"latency": latency, "faults": [fault]}
    label = f"{calls} calls, {rate:.0%} of first attempts 503, {latency * 1000:.0f} ms, cap {cap}"
    # A refused request's retry may follow at once (the jitter can draw 0).
    return _run("5. faults", label, prompts(calls), settings, cap, rounds, 2 * latency, 1.25)


def run_rate_limit_storm(
    calls: int = 300, max_rps: float = 100.0, latency: float = 0.05, cap: int = 32, rounds: int = 3
) -> Result:
    """Benchmark 5b: a server over its rate limit refuses waves of requests with 429."""
    settings = {"latency": latency, "max_rps": max_rps}
    label = f"{calls} calls, server max_rps {max_rps:g}, client unlimited, cap {cap}"
    # The bucket starts full (max_rps requests at once), then admits max_rps a second.
    critical_path = max(0.0, calls - max_rps) / max_rps + latency
    return _run(
        "5. 429 storm", label, prompts(calls), settings, cap, rounds, critical_path, None, 1.1
    )


def run_rate_limit_burst(
    calls: int = 300,
    latency: float = 0.05,
    cap: int = 32,
    retry_after: float = 1.0,
    rounds: int = 2,
) -> Result:
    """Benchmark 5c: the middle sixth of the items are refused once with a 429."""
    first, last = calls * 5 // 12, calls * 7 // 12
    storm = "|".join(f"item {i}:" for i in range(first, last))
    fault = {
        "kind": "rate_limit",
        "retry_after": retry_after,
        "attempts": "first",
        "match": {"user": f"regex:^({storm})"},
    }
    settings = {"latency": latency, "faults": [fault]}
    label = f"{calls} calls, items {first}-{last - 1} refused once, Retry-After {retry_after:g} s"
    critical_path = 2 * latency + retry_after
    return _run("5. 429 burst", label, prompts(calls), settings, cap, rounds, critical_path, None)


def run(quick: bool = False) -> list[Result]:
    if quick:
        return [
            run_server_errors(calls=150, rounds=1),
            run_rate_limit_storm(calls=150, max_rps=100, rounds=1),
            run_rate_limit_burst(calls=150, retry_after=0.5, rounds=1),
        ]
    return [run_server_errors(), run_rate_limit_storm(), run_rate_limit_burst()]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (~6 s)")
    results = run(parser.parse_args().quick)
    print(render_table([f for r in results for f in r.figures]))


if __name__ == "__main__":
    main()
