"""What profiling costs: a batch run with and without ``profile=True`` (target: < 5% slower).

Run from the repository root: ``python bench/profile_overhead.py``. The
workload is 200 items x 3 calls (two parallel drafts and a merge) on the
in-process simulator with 10 ms latency and 32 slots. Three variants run in
turn, ``--repeat`` times; medians of wall and CPU time are compared (CPU time
is what profiling adds; wall time also moves with the machine's load):

- ``plain``: no profiling;
- ``profile=True``: the batch keeps a `Profile` (a reference to its events);
- ``+ timeline``: the same, then the timeline is built, as the first view of
  the profile does (the real cost of looking at a profile).

Also reported: the time of the bubble report and of the Chrome trace alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plait import LLMInference, Module, ResourceConfig, run_batch
from plait.profiling import Profile, analyze, chrome_trace


class DraftTwiceAndMerge(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft_a = LLMInference("fast", system_prompt="Draft, formal.")
        self.draft_b = LLMInference("fast", system_prompt="Draft, casual.")
        self.merge = LLMInference("fast", system_prompt="Merge the drafts.")

    def forward(self, text: str) -> Any:
        return self.merge(f"{self.draft_a(text)}\n---\n{self.draft_b(text)}")


async def batch(
    args: argparse.Namespace, variant: str
) -> tuple[tuple[float, float], Profile | None]:
    """Wall and CPU seconds of the batch in ``variant`` ("plain", "profile", "timeline"), its profile."""
    resources = ResourceConfig(
        {"fast": {"provider": "simulated", "latency": args.latency, "max_concurrent": args.slots}}
    )
    profiles: list[Profile] = []
    start, cpu = time.perf_counter(), time.process_time()
    await run_batch(
        DraftTwiceAndMerge(),
        [f"document {i}" for i in range(args.items)],
        resources=resources,
        progress=False,
        profile=variant != "plain",
        on_profile=profiles.append if variant != "plain" else None,
    )
    if variant == "timeline":
        _ = profiles[0].timeline
    elapsed = (time.perf_counter() - start, time.process_time() - cpu)
    return elapsed, profiles[0] if profiles else None


def best_of(fn: Any, times: int = 5) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    variants = ("plain", "profile", "timeline")
    wall: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    asyncio.run(batch(args, "timeline"))  # warm up imports and caches
    profile = None
    for _ in range(args.repeat):
        for variant in variants:
            (elapsed, spent), kept = asyncio.run(batch(args, variant))
            wall[variant].append(elapsed)
            cpu[variant].append(spent)
            profile = kept or profile
    assert profile is not None
    timeline = profile.timeline
    build = best_of(lambda: Profile(profile.events, endpoints=profile.endpoints).timeline)
    bubbles = best_of(lambda: analyze(timeline))
    trace = best_of(lambda: chrome_trace(timeline))

    base = statistics.median(wall["plain"])
    base_cpu = statistics.median(cpu["plain"])
    print(
        f"workload: {args.items} items x 3 calls, {args.latency * 1000:.0f} ms latency, "
        f"{args.slots} slots; {len(profile.events)} events, {len(timeline.attempts)} attempts; "
        f"median of {args.repeat}"
    )
    for variant, label in zip(variants, ("plain", "profile=True", "+ timeline"), strict=True):
        median, median_cpu = statistics.median(wall[variant]), statistics.median(cpu[variant])
        print(
            f"{label:14s} wall {median * 1000:6.1f} ms (ratio {median / base:5.3f}), "
            f"CPU {median_cpu * 1000:6.1f} ms (ratio {median_cpu / base_cpu:5.3f})"
        )
    print(f"timeline build {build * 1000:8.2f} ms   ({build / base:.1%} of the plain run)")
    print(f"bubble report  {bubbles * 1000:8.2f} ms   (on demand)")
    print(f"chrome trace   {trace * 1000:8.2f} ms   (on demand)")


if __name__ == "__main__":
    main()
