"""Run every benchmark, print one markdown table, and write ``bench/results/latest.json``.

Usage, from the repository root::

    python bench/run.py            # the full suite, under 3 minutes on 2 cores
    python bench/run.py --quick    # a small configuration of each, about 20 s
    python bench/run.py --only batch faults

Each figure compares plait with a baseline measured in the same run (see
bench/README.md). A benchmark that fails or stalls is reported as an error
row; the others still run. The exit status is 1 if any benchmark errored,
else 0: missed targets are results, not failures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import batch, faults, overhead, ratelimit, trace_bench
from bench._common import Figure, Result, exit_on_sigterm, render_table

RESULTS = Path(__file__).resolve().parent / "results"


def run_trace(
    quick: bool = False, *, stages: int | None = None, repeat: int | None = None
) -> list[Result]:
    """Benchmark 6: bench/trace_bench.py's shapes (trace time and peak memory).

    Each shape has 4 recorded nodes per stage (2,500 stages by default).
    """
    stages = stages or (500 if quick else trace_bench.STAGES)
    repeat = repeat or (1 if quick else 3)
    # trace_bench's shape builders read STAGES when called: fewer stages make a quick run.
    saved, trace_bench.STAGES = trace_bench.STAGES, stages
    figures, details = [], {}
    try:
        for shape in trace_bench.SHAPES:
            nodes, seconds, peak = trace_bench.measure(shape, repeat)
            details[shape] = {"nodes": nodes, "seconds": seconds, "peak_mb": peak}
            label = f"{shape}: {nodes:,} nodes"
            note = f"best of {repeat}" if repeat > 1 else ""
            figures += [
                Figure("6. trace", f"{label}, time", "s", None, seconds, 1.0, "plait", note=note),
                Figure("6. trace", f"{label}, peak memory", "MB", None, peak, 100.0, "plait"),
            ]
    finally:
        trace_bench.STAGES = saved
    return [Result("trace", tuple(figures), details)]


SUITE: dict[str, Callable[[bool], list[Result]]] = {
    "overhead": overhead.run,
    "batch": batch.run,
    "ratelimit": ratelimit.run,
    "faults": faults.run,
    "trace": run_trace,
}


def run_suite(names: list[str], quick: bool) -> tuple[list[Result], dict[str, Any]]:
    """Run the named benchmarks; returns their results and the report for latest.json."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    results: list[Result] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in names:
        begin = time.perf_counter()
        try:
            results += SUITE[name](quick)
        except Exception as exc:
            errors[name] = "".join(traceback.format_exception(exc))
        timings[name] = time.perf_counter() - begin
    return results, {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "seconds": time.perf_counter() - started,
        "benchmark_seconds": timings,
        "results": [r.to_dict() for r in results],
        "errors": errors,
    }


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small configurations (~20 s)")
    parser.add_argument("--only", nargs="+", choices=list(SUITE), default=list(SUITE))
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    options = parser.parse_args()
    results, report = run_suite(options.only, options.quick)
    print(render_table([f for r in results for f in r.figures]))
    for name, error in report["errors"].items():
        print(f"\n**{name} failed**:\n```\n{error.rstrip()}\n```")
    load = report["load_average"]
    print(
        f"\n{report['seconds']:.0f} s on {report['cpus']} CPUs, Python {report['python']}; "
        f"load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after"
    )
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {options.output}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
