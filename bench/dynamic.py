"""Define-by-run against tracing: the cost per call of recording calls while the run executes.

The same calls are made by a traced module (``def forward``: traced once per
input shape, then scheduled as a graph) and by its define-by-run twin
(``async def forward``: every call recorded as a node as it is made). Both run
through `run_batch` on the in-process simulated endpoint at zero latency, so
nothing but plait's Python runs: any difference is the dynamic path's own
overhead. Shapes, each over a batch of items:

- ``chain4``: four calls, each fed the previous reply (the dynamic twin passes
  placeholders on without awaiting: the same graph, recorded live);
- ``chain4-await``: the same chain, but the dynamic twin awaits every reply
  before making the next call (the define-by-run style: control flow in Python);
- ``fanout16``: sixteen calls on the input, then a join of all sixteen.

Two settings: the in-process simulated endpoint (nothing but plait's Python
and the simulated model run: the worst case for the ratio), and over HTTP to
a simulator in its own process, where the figure is this client process's
CPU per call: what plait costs a real deployment, the same definition of
per-call overhead as ``bench/overhead.py`` (httpx included, the server not).

Figure: process CPU µs per LLM call (CPU, not wall time, so other load on a
shared machine distorts it less); the ratio is dynamic / traced (target
≤ 1.1). On a shared VM the CPU time of the same work varies by ±20% between
rounds, and by up to 1.5× between processes, for both twins of a process
alike. So each point runs in several fresh processes (11 in process, 5 over
HTTP), each alternating the twins over 4 (HTTP: 3) rounds of 200 items and
giving its own ratio (median dynamic round / median traced round); the
point's ratio is the median of the processes' ratios, and the note gives
their range. Run: ``python bench/dynamic.py [--quick]`` (about 20 minutes;
quick: 3).

``--instructions`` counts instead the machine instructions each side executes
per LLM call (valgrind's cachegrind, in a child process per side: a run of
two batches less a run of none, so start-up and imports cancel). The count
does not depend on what else the machine is doing, so this ratio is the one
to trust on a loaded machine; it leaves out cache misses and memory stalls,
which the CPU-time figure includes. ``--cycles`` adds them: cachegrind also
simulates the caches (this machine's first level; as the last, a core's own
second level, read from sysfs: 512 KiB here) and each side gets cachegrind's
usual cycle estimate, an instruction a cycle plus 10 per first-level and 100
per last-level miss: as repeatable as the count, and closer to what CPU time
measures. Both need ``valgrind`` (``apt-get install valgrind``); about a minute
per point (``--cycles``: three).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    Figure,
    Result,
    alternate,
    http_resources,
    median,
    prompts,
    render_table,
    simulated_resources,
    simulator_process,
)
from plait import LLMInference, Module, ModuleList, run_batch

TARGET = 1.1


class TracedChain(Module):
    def __init__(self, length: int = 4) -> None:
        super().__init__()
        self.steps = ModuleList(
            LLMInference("fast", system_prompt=f"Step {i}.") for i in range(length)
        )

    def forward(self, text: str) -> str:
        for step in self.steps:
            text = step(text)
        return text


class DynamicChain(TracedChain):
    async def forward(self, text: str) -> str:  # type: ignore[override]
        for step in self.steps:
            text = step(text)
        return text


class AwaitingChain(TracedChain):
    async def forward(self, text: str) -> str:  # type: ignore[override]
        for step in self.steps:
            text = await step(text)
        return text


class TracedFanOut(Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.branches = ModuleList(
            LLMInference("fast", system_prompt=f"Angle {i}.") for i in range(width)
        )
        self.join = LLMInference("fast", system_prompt="Combine.")

    def forward(self, text: str) -> str:
        return self.join("\n".join(branch(text) for branch in self.branches))


class DynamicFanOut(TracedFanOut):
    async def forward(self, text: str) -> str:  # type: ignore[override]
        return self.join("\n".join([branch(text) for branch in self.branches]))


SHAPES = {
    "chain4": (TracedChain, DynamicChain, 4),
    "chain4-await": (TracedChain, AwaitingChain, 4),
    "fanout16": (TracedFanOut, DynamicFanOut, 17),
}


async def per_call_cpu(
    shape: str, items: int, concurrency: int, rounds: int, url: str | None
) -> dict[str, list[float]]:
    """CPU µs per LLM call of both twins in this process, round by round (alternating)."""
    traced_cls, dynamic_cls, calls_per_item = SHAPES[shape]
    texts = prompts(items)
    if url is None:
        resources = simulated_resources(concurrency)
    else:
        resources = http_resources(url, concurrency)
    traced, dynamic = traced_cls(), dynamic_cls()

    async def batch(module: Module) -> int:
        done = await run_batch(module, texts, resources=resources, progress=False)
        assert all(item.ok for item in done), [i.error for i in done if not i.ok][:1]
        return len(done)

    await batch(traced)  # warm-up: imports, caches, the simulator's first replies
    await batch(dynamic)
    timings = await alternate(rounds, lambda: batch(traced), lambda: batch(dynamic))
    calls = items * calls_per_item
    return {
        side: [t.cpu / calls * 1e6 for t in getattr(timings, side)]
        for side in ("baseline", "plait")
    }


def measure(
    shape: str, items: int, concurrency: int, rounds: int, processes: int, url: str | None = None
) -> Figure:
    """Both twins' CPU per call over ``rounds`` rounds in each of ``processes`` fresh processes.

    The CPU time of the same work varies by ±20% from round to round on a
    shared VM, and by up to 1.5× between processes (where objects land in
    memory, the hash seed), which shifts both twins of a process alike. So each
    process runs both, alternating, and gives its own ratio: the median of its
    dynamic rounds over the median of its traced rounds. The figure's ratio is
    the median of the processes' ratios (the note gives their range); its µs
    columns are the medians of the processes' medians.
    """
    traced: list[float] = []
    dynamic: list[float] = []
    for _ in range(processes):
        command = [sys.executable, __file__, "--cpu-child", shape, str(items)]
        command += [str(concurrency), str(rounds), url or "-"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        found = json.loads(out.strip().splitlines()[-1])
        traced.append(median(found["baseline"]))
        dynamic.append(median(found["plait"]))
    ratios = sorted(d / t for d, t in zip(dynamic, traced, strict=True))
    where = "in process" if url is None else "HTTP"
    return Figure(
        benchmark=f"dynamic vs traced, {where}: {shape}, {items} items, cap {concurrency}",
        metric="CPU per LLM call" if url is None else "client CPU per LLM call",
        unit="µs",
        baseline=median(traced),
        plait=median(dynamic),
        target=TARGET,
        baseline_name="traced",
        note=(
            f"median of {processes} processes' ratios ({rounds} round{'s' * (rounds > 1)} each); "
            f"range {ratios[0]:.2f}–{ratios[-1]:.2f}×"
        ),
        paired_ratio=median(ratios),
    )


async def child(shape: str, side: str, items: int, concurrency: int, batches: int) -> None:
    """One side's batches, for an instruction count: a warm-up, then ``batches`` batches."""
    traced_cls, dynamic_cls, _ = SHAPES[shape]
    module = traced_cls() if side == "traced" else dynamic_cls()
    texts, resources = prompts(items), simulated_resources(concurrency)
    for _ in range(1 + batches):
        await run_batch(module, texts, resources=resources, progress=False)


# What `--cycles` simulates: the first-level caches of this machine (cachegrind's defaults)
# and, as the last level, a core's own second-level cache (the third level is shared with
# whatever else runs: counting on it would flatter the side with more data).
_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")
_L2_FALLBACK = (512 * 1024, 8, 64)  # this VM's (AMD EPYC), where sysfs does not say


def second_level_cache(caches: Path = _CACHES) -> tuple[int, int, int]:
    """Size in bytes, ways and line size of a core's own second-level cache (from sysfs)."""
    units = {"K": 1024, "M": 1024 * 1024}
    for index in sorted(caches.glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            size = (index / "size").read_text().strip()
            ways = int((index / "ways_of_associativity").read_text())
            line = int((index / "coherency_line_size").read_text())
        except (OSError, ValueError):
            continue
        multiplier = units.get(size[-1:], 1)
        return int(size.rstrip("KM")) * multiplier, ways, line
    return _L2_FALLBACK


def _last_level_option() -> str:
    size, ways, line = second_level_cache()
    return f"--LL={size},{ways},{line}"


_COUNTS = {"I": r"I\s+refs", "I1m": r"I1\s+misses", "D1m": r"D1\s+misses", "LLm": r"LL misses"}


def _cachegrind(
    shape: str, side: str, items: int, concurrency: int, batches: int, cache: bool
) -> subprocess.Popen[str]:
    """A child running ``batches`` batches under cachegrind (a process, not waited for)."""
    command = [
        *("valgrind", "--tool=cachegrind", "--cachegrind-out-file=/dev/null"),
        *(("--cache-sim=yes", _last_level_option()) if cache else ("--cache-sim=no",)),
        *(sys.executable, __file__, "--child", shape, side, str(items)),
        *(str(concurrency), str(batches)),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _counted(process: subprocess.Popen[str], cache: bool) -> dict[str, int]:
    """The counts in a cachegrind child's summary (its stderr): ``I``, and the misses if
    it simulated the caches."""
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the counted child failed:\n{err[-2000:]}")
    counts = {}
    for key, label in _COUNTS.items() if cache else [("I", _COUNTS["I"])]:
        found = re.search(label + r":\s+([\d,]+)", err)
        if found is None:
            raise RuntimeError(f"no {label!r} count in valgrind's output:\n{err[-2000:]}")
        counts[key] = int(found.group(1).replace(",", ""))
    return counts


def instructions(shape: str, side: str, items: int, concurrency: int, batches: int) -> int:
    """Instructions a child process running ``batches`` batches executes (under cachegrind)."""
    return _counted(_cachegrind(shape, side, items, concurrency, batches, False), False)["I"]


def estimated_cycles(counts: dict[str, int]) -> int:
    """Cachegrind's usual cycle estimate: an instruction each, 10 per first-level miss, 100 per
    last-level miss (branch mispredictions left out)."""
    return counts["I"] + 10 * (counts["I1m"] + counts["D1m"]) + 100 * counts["LLm"]


def count(shape: str, items: int, concurrency: int, cycles: bool = False) -> list[Figure]:
    """Per LLM call, each side: two batches less none, counted under cachegrind.

    Instructions; with ``cycles`` also the cache simulation's estimated cycles,
    which add what memory costs (the side keeping more data misses more).
    The four children run two at a time.
    """
    calls = items * SHAPES[shape][2]
    counts: dict[tuple[str, int], dict[str, int]] = {}
    for batches in (0, 2):
        running = {
            side: _cachegrind(shape, side, items, concurrency, batches, cycles)
            for side in ("traced", "dynamic")
        }
        for side, process in running.items():
            counts[side, batches] = _counted(process, cycles)

    def per_call(side: str, measure: Callable[[dict[str, int]], int]) -> float:
        return (measure(counts[side, 2]) - measure(counts[side, 0])) / (2 * calls) / 1000

    measures: list[tuple[str, Callable[[dict[str, int]], int]]] = [
        ("instructions per LLM call", lambda c: c["I"])
    ]
    if cycles:
        measures.append(("estimated cycles per LLM call", estimated_cycles))
    return [
        Figure(
            benchmark=f"dynamic vs traced: {shape}, {items} items, cap {concurrency}",
            metric=metric,
            unit="k",
            baseline=per_call("traced", measure),
            plait=per_call("dynamic", measure),
            target=TARGET,
            baseline_name="traced",
        )
        for metric, measure in measures
    ]


def main(quick: bool, by_instructions: bool = False, cycles: bool = False) -> Result:
    by_instructions = by_instructions or cycles
    items = 100 if quick or by_instructions else 200
    rounds, processes = (3, 3) if quick else (4, 11)
    figures = []
    for shape in SHAPES:
        for concurrency in (8, 64, 256):
            if by_instructions:
                figures += count(shape, items, concurrency, cycles)
            else:
                figures.append(measure(shape, items, concurrency, rounds, processes))
    if not by_instructions:
        with simulator_process() as server:
            for shape in SHAPES:
                for concurrency in (8, 64, 256):
                    figures.append(
                        measure(shape, items, concurrency, 3, min(processes, 5), server.url)
                    )
    worst = max(figures, key=lambda f: f.ratio or 0.0)
    best = min(figures, key=lambda f: f.ratio or 0.0)
    return Result(
        "dynamic",
        tuple(figures),
        {"worst": worst.benchmark, "worst_ratio": worst.ratio, "best_ratio": best.ratio},
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and rounds")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (valgrind) instead of time"
    )
    parser.add_argument(
        "--cycles",
        action="store_true",
        help="also simulate the caches (valgrind) and estimate cycles, memory included",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--cpu-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_child:
        shape, items, concurrency, rounds, url = args.cpu_child
        found = asyncio.run(
            per_call_cpu(
                shape, int(items), int(concurrency), int(rounds), None if url == "-" else url
            )
        )
        print(json.dumps(found))
        sys.exit()
    if args.child:
        shape, side, items, concurrency, batches = args.child
        asyncio.run(child(shape, side, int(items), int(concurrency), int(batches)))
        sys.exit()
    if (args.instructions or args.cycles) and shutil.which("valgrind") is None:
        parser.error("--instructions and --cycles need valgrind (apt-get install valgrind)")
    result = main(args.quick, args.instructions, args.cycles)
    print(render_table(list(result.figures)))
    print(
        f"\nworst ratio {result.details['worst_ratio']:.3f}× ({result.details['worst']}); "
        f"best {result.details['best_ratio']:.3f}×"
    )
