"""The sweep: plait against hand-written asyncio + httpx over concurrency, shape and faults.

Usage, from the repository root::

    python bench/sweep.py            # everything, 10-20 minutes on 2 shared cores
    python bench/sweep.py --quick    # one round of smaller runs, about 2 minutes
    python bench/sweep.py --smoke    # tiny sizes, checks that it all runs (tests use it)

Every figure is a ratio to a baseline from bench/_loops.py measured in the
same process run, alternating which side goes first (`alternate`), medians
over rounds. Families (see bench/README.md):

- ``cpu``: client-process CPU per call at zero latency, concurrency 8/64/256,
  two shapes: ``fan-out`` (head, 8 parallel calls, join) and ``batch`` (2
  parallel calls, join). Target ≤ 1.1× the loop; and plait's own CPU per
  call at cap 256 ≤ 1.3× its CPU per call at cap 8.
- ``makespan``: the same shapes at 100 ms latency (3 ms per slot at cap 256,
  so the run is not CPU-bound); target ≤ 1.0× the loop for the batch shape,
  and ≤ 1.05× the lower bound.
- ``faults``: 3-call chains at cap 32: no fault, 20% of first attempts 503,
  sporadic 429s (5% and 15% of attempts, with and without Retry-After; both
  sides told 40 rps), and a sustained over-rate storm (server max_rps below
  what unlimited clients send), with and without rate-limit headers.
  Targets: 0 lost; makespan ≤ 1.25× the loop.
- ``overhead``: in-process scheduler µs per node at 10,000 nodes
  (bench/overhead.py, tracing included); target < 50 µs/node.

The report ends with the worst point: the figure furthest above its target
(or closest to it). Results go to ``bench/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import overhead
from bench._common import (
    SIDES,
    Chain,
    FanJoin,
    Figure,
    Result,
    alternate,
    exit_on_sigterm,
    http_resources,
    median,
    prompts,
    render_table,
    simulator_process,
)
from bench._loops import FanOut, loop_chain_retrying, loop_fan_join, loop_fan_out
from plait import run_batch

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH = 8


@dataclass(frozen=True)
class Shape:
    """A pipeline and its hand-written twin; ``calls`` per item, ``layers`` on its critical path."""

    name: str
    calls: int
    layers: int
    pipeline: Callable[[], Any]
    loop: Callable[[str, list[str], int], Any]


SHAPES = (
    Shape(
        "fan-out",
        WIDTH + 2,
        3,
        lambda: FanOut(WIDTH),
        lambda url, texts, cap: loop_fan_out(url, texts, cap, WIDTH),
    ),
    Shape("batch", 3, 2, FanJoin, loop_fan_join),
)


@dataclass(frozen=True)
class Size:
    caps: tuple[int, ...]
    cpu_calls: int  # calls per measured run of the cpu family
    makespan_calls: float  # calls per cap slot in the makespan family
    fault_items: int
    storm_items: int
    nodes: int
    rounds: int


SIZES = {
    "full": Size((8, 64, 256), 1_000, 6, 40, 30, 10_000, 3),
    "quick": Size((8, 64, 256), 800, 4, 30, 30, 10_000, 1),
    "smoke": Size((2, 4), 24, 3, 4, 6, 40, 1),
}


async def _plait(shape: Shape, url: str, texts: list[str], cap: int, **fields: Any) -> list[Any]:
    resources = http_resources(url, cap, **fields)
    items = await run_batch(shape.pipeline(), texts, resources=resources, progress=False)
    return [item.output if item.ok else None for item in items]


def run_cpu(size: Size) -> Result:
    """Client CPU per call at zero latency, for each shape and cap."""
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    per_call: dict[tuple[str, int], dict[str, float]] = {}
    with simulator_process() as server:
        for shape in SHAPES:
            texts = prompts(max(1, size.cpu_calls // shape.calls))
            calls = len(texts) * shape.calls
            for cap in size.caps:

                async def measure(
                    shape: Shape = shape, cap: int = cap, texts: list[str] = texts
                ) -> Any:
                    warm = texts[: min(len(texts), max(4, cap // shape.calls + 1))]
                    await shape.loop(server.url, warm, cap)
                    await _plait(shape, server.url, warm, cap)
                    return await alternate(
                        size.rounds,
                        lambda: shape.loop(server.url, texts, cap),
                        lambda: _plait(shape, server.url, texts, cap),
                    )

                measured = asyncio.run(measure())
                print(f"  cpu {shape.name}@{cap} done", file=sys.stderr, flush=True)
                cpu = {side: measured.median(side, "cpu") * 1e6 / calls for side in SIDES}
                per_call[shape.name, cap] = cpu
                same = measured.outputs["baseline"][-1] == measured.outputs["plait"][-1]
                details[f"{shape.name}@{cap}"] = {
                    "calls": calls,
                    "rounds": measured.to_dict(),
                    "answers_match": same,
                }
                figures.append(
                    Figure(
                        "cpu",
                        f"{shape.name}, {calls:,} calls, cap {cap}",
                        "µs/call",
                        cpu["baseline"],
                        cpu["plait"],
                        target=1.1,
                        baseline_name="loop",
                        note=f"median of {size.rounds}",
                    )
                )
    low, high = size.caps[0], size.caps[-1]
    for shape in SHAPES:
        loop_growth = per_call[shape.name, high]["baseline"] / per_call[shape.name, low]["baseline"]
        figures.append(
            Figure(
                "cpu",
                f"{shape.name}: plait's CPU per call at cap {high} vs cap {low}",
                "µs/call",
                per_call[shape.name, low]["plait"],
                per_call[shape.name, high]["plait"],
                target=1.3,
                baseline_name=f"plait at cap {low}",
                note=f"the loop's grows {loop_growth:.2f}×",
            )
        )
    return Result("cpu", tuple(figures), details)


def makespan_latency(cap: int, base: float = 0.1) -> float:
    """The reply latency of the makespan runs at ``cap``: at least 3 ms per slot.

    At a fixed 100 ms, cap 256 would need ~3,000 calls to make a 1 s lower
    bound, and their client CPU alone (both sides) would exceed it: the run
    would measure CPU, which the ``cpu`` family already does.
    """
    return max(base, 0.003 * cap)


def run_makespan(size: Size, base_latency: float = 0.1) -> Result:
    """Makespan for each shape and cap, against the loop and the lower bound."""
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for cap in size.caps:
        latency = makespan_latency(cap, base_latency)
        with simulator_process(latency=latency) as server:
            for shape in SHAPES:
                items = max(1, round(size.makespan_calls * cap / shape.calls))
                texts = prompts(items)
                bound = max(shape.layers * latency, items * shape.calls * latency / cap)

                async def measure(
                    shape: Shape = shape, cap: int = cap, texts: list[str] = texts
                ) -> Any:
                    await shape.loop(server.url, texts[:2], cap)
                    await _plait(shape, server.url, texts[:2], cap)
                    return await alternate(
                        size.rounds,
                        lambda: shape.loop(server.url, texts, cap),
                        lambda: _plait(shape, server.url, texts, cap),
                    )

                measured = asyncio.run(measure())
                print(f"  makespan {shape.name}@{cap} done", file=sys.stderr, flush=True)
                loop, plait = measured.median("baseline"), measured.median("plait")
                label = f"{shape.name}, {items} items, cap {cap}, {latency * 1000:.0f} ms"
                target = 1.0 if shape.name == "batch" else None
                figures += [
                    Figure(
                        "makespan",
                        label,
                        "s",
                        loop,
                        plait,
                        target=target,
                        baseline_name="loop",
                        note=f"median of {size.rounds}",
                    ),
                    Figure(
                        "makespan",
                        f"{label}, against the lower bound",
                        "s",
                        bound,
                        plait,
                        target=1.05 if shape.name == "batch" else None,
                        baseline_name="lower bound",
                        note=f"loop: {loop / bound:.3f}×",
                    ),
                ]
                details[f"{shape.name}@{cap}"] = {
                    "items": items,
                    "lower_bound": bound,
                    "rounds": measured.to_dict(),
                }
    return Result("makespan", tuple(figures), details)


FAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "503 once, 20%": {
        "faults": [{"kind": "server_error", "status": 503, "rate": 0.2, "attempts": "first"}]
    },
    "429 5%, Retry-After 0.5 s": {
        "faults": [{"kind": "rate_limit", "rate": 0.05, "retry_after": 0.5}],
        "rps": 40,
    },
    "429 5%, no Retry-After": {
        "faults": [{"kind": "rate_limit", "rate": 0.05, "send_retry_after": False}],
        "rps": 40,
    },
    "429 15%, Retry-After 0.5 s": {
        "faults": [{"kind": "rate_limit", "rate": 0.15, "retry_after": 0.5}],
        "rps": 40,
    },
    "429 15%, no Retry-After": {
        "faults": [{"kind": "rate_limit", "rate": 0.15, "send_retry_after": False}],
        "rps": 40,
    },
    "over-rate storm (max_rps 25)": {"max_rps": 25.0, "storm": True},
    "over-rate storm, rate-limit headers": {
        "max_rps": 25.0,
        "rate_limit_headers": True,
        "storm": True,
    },
}


def run_fault(name: str, size: Size, cap: int = 32, latency: float = 0.05) -> Result:
    """One fault pattern: 3-call chains, plait against the retrying loop."""
    spec = dict(FAULTS[name])
    rps = spec.pop("rps", None)
    storm = spec.pop("storm", False)
    items = size.storm_items if storm else size.fault_items
    texts = prompts(items)
    length = 3
    settle = 1.1 if storm else 0.0  # let the server's max_rps bucket fill again
    with simulator_process(latency=latency, **spec) as server:

        def before() -> None:
            server.reset()
            time.sleep(settle)

        async def measure() -> Any:
            fields = {} if rps is None else {"rpm": 60 * rps}
            return await alternate(
                size.rounds,
                lambda: loop_chain_retrying(server.url, texts, cap, length, rps),
                lambda: _plait(_CHAIN, server.url, texts, cap, **fields),
                before=before,
                after=server.stats,
            )

        measured = asyncio.run(measure())
    lost = {
        "baseline": measured.outputs["baseline"],
        "plait": [answers.count(None) for answers in measured.outputs["plait"]],
    }
    requests = {side: [s["total"] for s in measured.observed[side]] for side in SIDES}
    refused = {
        side: [s["by_status"].get("429", 0) for s in measured.observed[side]] for side in SIDES
    }
    calls = items * length
    bound = max(length * latency, median(requests["plait"]) * latency / cap)
    if rps is not None:
        bound = max(bound, calls / rps)
    if storm:
        bound = max(bound, (calls - spec["max_rps"]) / spec["max_rps"])
    title = f"{name}: {items} items × {length} calls, cap {cap}" + (
        f", both told {rps} rps" if rps else ""
    )
    target = None if name == "none" else 1.25
    figures = (
        Figure("faults", f"{title}, items lost", "items", None, max(lost["plait"]), 0, "plait"),
        Figure(
            "faults",
            f"{title}, makespan",
            "s",
            measured.median("baseline"),
            measured.median("plait"),
            target=target,
            baseline_name="loop",
            note=(
                f"median of {size.rounds}; requests {median(requests['plait']):.0f} vs "
                f"{median(requests['baseline']):.0f}, 429s {median(refused['plait']):.0f} vs "
                f"{median(refused['baseline']):.0f}; lower bound {bound:.2f} s"
            ),
        ),
    )
    details = {
        "items": items,
        "settings": FAULTS[name],
        "lost": lost,
        "requests": requests,
        "refused": refused,
        "lower_bound": bound,
        "rounds": measured.to_dict(),
    }
    return Result(f"faults: {name}", figures, details)


_CHAIN = Shape("chain", 3, 3, lambda: Chain(3), lambda url, texts, cap: None)


def run_overhead(size: Size) -> Result:
    result = overhead.run_inprocess(nodes=size.nodes, rounds=max(size.rounds, 1))
    return result


def _progress(result: Result) -> Result:
    """Print a finished family's figures to stderr, so a long sweep shows where it is."""
    for f in result.figures:
        ratio = f"{f.ratio:.3f}×" if f.ratio is not None else "–"
        print(
            f"  {f.benchmark} | {f.metric} | {f.plait:.4g} {f.unit} | {ratio}",
            file=sys.stderr,
            flush=True,
        )
    return result


def worst(figures: list[Figure]) -> Figure | None:
    """The figure whose value is highest relative to its target (ratio targets only)."""
    scored = [
        (f.ratio / f.target, f)
        for f in figures
        if f.target and f.target_of == "ratio" and f.ratio is not None
    ]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def run_sweep(mode: str, only: list[str]) -> tuple[list[Result], dict[str, Any]]:
    size = SIZES[mode]
    started, load_before = time.perf_counter(), os.getloadavg()
    results: list[Result] = []
    if "cpu" in only:
        results.append(_progress(run_cpu(size)))
    if "makespan" in only:
        results.append(_progress(run_makespan(size)))
    if "faults" in only:
        results += [_progress(run_fault(name, size)) for name in FAULTS]
    if "overhead" in only:
        results.append(_progress(run_overhead(size)))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "seconds": time.perf_counter() - started,
        "results": [r.to_dict() for r in results],
    }
    return results, report


FAMILIES = ("cpu", "makespan", "faults", "overhead")


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="one round of smaller runs")
    group.add_argument("--smoke", action="store_true", help="tiny sizes: does it all run?")
    parser.add_argument("--only", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--output", type=Path, default=RESULTS / "sweep.json")
    options = parser.parse_args()
    mode = "smoke" if options.smoke else "quick" if options.quick else "full"
    results, report = run_sweep(mode, options.only)
    figures = [f for r in results for f in r.figures]
    print(render_table(figures))
    point = worst(figures)
    if point is not None:
        print(
            f"\nWorst point: {point.benchmark} / {point.metric}: {point.ratio:.3f}× "
            f"against a target of {point.target:g}×"
        )
    missed = [f for f in figures if f.met is False]
    print(f"{len(missed)} of {sum(f.met is not None for f in figures)} targets missed")
    load = report["load_average"]
    print(
        f"{report['seconds']:.0f} s on {report['cpus']} CPUs, Python {report['python']}; "
        f"load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after"
    )
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
