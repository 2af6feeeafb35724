"""The local backend against the Ray backend on the same machine: I/O-bound and CPU-heavy items.

``io``: N one-call items against a zero-latency simulator in a separate
process, endpoint ``max_concurrent=C``. Figure: the Ray backend's wall time
over the local backend's: the per-call overhead Ray adds (shipping items and
events, leasing slots from the coordinator), as a ratio and in µs per call.

``io`` also runs define-by-run (the same call from an ``async def forward``:
each call's node travels back with its events), against the local backend
running the same module; and with a budget (``max_cost`` set, never
reached), against Ray without one: the coordinator's permit before each start.

``cpu``: N items, each one 20 ms call followed by pure-Python post-processing
(about `WORK` seconds of CPU, as a parser, scorer or verifier would spend).
The local backend runs all that Python on one core; the Ray backend on one
worker per core. Figure: Ray's wall time over local's, and the speed-up
against the number of cores.

Both backends run in this process run, alternating (`alternate`), against
the same simulator. The Ray cluster is local (``num_cpus`` = the machine's
cores, one worker each); its start-up and the workers' first batch are
measured apart and not in the figures.

Run alone: ``python bench/ray_backend.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plait
from bench._common import (
    REPO,
    SYSTEM,
    Figure,
    Result,
    Single,
    alternate,
    exit_on_sigterm,
    http_resources,
    median,
    prompts,
    render_table,
    simulator_process,
)
from plait import LLMInference, Module, run_batch
from plait.ray import RayBackend, require_ray

WORK = 0.1  # seconds of pure-Python CPU per item in the ``cpu`` benchmark (calibrated)
# Ray's processes import jsonschema, whose optional rfc3987_syntax compiles a grammar at import
# (seconds per process on a busy 2-core machine); tests/_ray_env stubs it out for them.
FAST_IMPORTS = REPO / "tests" / "_ray_env"


def _spin(rounds: int) -> int:
    acc = 0
    for i in range(rounds):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def _calibrate(seconds: float) -> int:
    """Rounds of `_spin` that take ``seconds`` of CPU (the fastest of three samples)."""
    samples = []
    for _ in range(3):
        start = time.process_time()
        _spin(300_000)
        samples.append((time.process_time() - start) / 300_000)
    return max(1, int(seconds / min(samples)))


@plait.op
def post_process(reply: str, rounds: int) -> dict[str, Any]:
    """What a CPU-heavy item does after its call: parse, score, verify (here: spin)."""
    return {"reply": reply, "score": _spin(rounds)}


class Scored(Module):
    """One call, then CPU-heavy Python on its reply (``rounds`` calibrated by the caller)."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.answer = LLMInference("fast", system_prompt="Answer briefly.")

    def forward(self, text: str) -> Any:
        return post_process(self.answer(text), self.rounds)


def start_cluster(cores: int) -> Any:
    """Connect to the running Ray (RAY_ADDRESS or ray.init done by the caller) or start one."""
    ray = require_ray()
    if not ray.is_initialized():
        paths = [str(REPO), str(FAST_IMPORTS), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    return ray


def cluster_cpu(backend: RayBackend) -> float:
    """CPU seconds used so far by the backend's workers and its coordinator."""
    ray = require_ray()
    workers = ray.get([w.actor.info.remote() for w in backend._pool if w.alive])
    return sum(w["cpu"] for w in workers) + ray.get(backend._coordinator.cpu.remote())


async def _both(
    backend: RayBackend,
    module: Any,
    texts: list[str],
    url: str,
    cap: int,
    rounds: int,
    *,
    budget: bool = False,
) -> tuple[Any, dict[str, list[float]]]:
    """Alternating rounds of both sides; also each Ray round's CPU in the cluster, per side.

    The sides are the local backend and Ray; with ``budget``, Ray without a
    budget and Ray with one set too high to be reached (what permits cost).
    """
    resources = http_resources(url, cap)
    cluster: dict[str, list[float]] = {"baseline": [], "plait": []}
    await backend.worker_info()  # the workers run before anything is measured

    async def on_ray(side: str, **options: Any) -> list[Any]:
        before = cluster_cpu(backend)
        items = await run_batch(
            module, texts, resources=resources, progress=False, backend=backend, **options
        )
        cluster[side].append(cluster_cpu(backend) - before)
        return [item.output for item in items]

    async def baseline() -> list[Any]:
        if budget:
            return await on_ray("baseline")
        items = await run_batch(module, texts, resources=resources, progress=False)
        return [item.output for item in items]

    async def plait_side() -> list[Any]:
        return await on_ray("plait", **({"max_cost": 1e9} if budget else {}))

    return await alternate(rounds, baseline, plait_side, timeout=600), cluster


class Recorded(Module):
    """`Single` written define-by-run: its call is recorded as the item runs (a graph per item)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = LLMInference("fast", system_prompt=SYSTEM)

    async def forward(self, text: str) -> str:
        return await self.answer(text)


def run_io(
    backend: RayBackend,
    calls: int = 2000,
    cap: int = 64,
    rounds: int = 3,
    *,
    variant: str = "traced",
) -> Result:
    """(a) Pure I/O: the per-call overhead of the Ray backend, as a ratio to the local one.

    ``variant``: "traced" (`Single`), "define-by-run" (`Recorded`: each call's
    node travels back), or "budget" (`Single` on Ray, with a budget set against
    without: the permit each start waits for).
    """
    texts = prompts(calls)
    module = Recorded() if variant == "define-by-run" else Single()
    budget = variant == "budget"
    with simulator_process(latency=0.0) as server:
        measured, cluster = asyncio.run(
            _both(backend, module, texts, server.url, cap, rounds, budget=budget)
        )
    base, ray = measured.median("baseline"), measured.median("plait")
    base_cpu = measured.median("baseline", "cpu")
    if budget:
        base_cpu += median(cluster["baseline"])
    base_cpu = base_cpu / calls * 1e6
    ray_cpu = (median([t.cpu for t in measured.plait]) + median(cluster["plait"])) / calls * 1e6
    shape = f"{calls:,} one-call items, zero latency, cap {cap}"
    group, baseline_name = "ray: I/O-bound", "local backend"
    if variant == "define-by-run":
        group, shape = "ray: define-by-run", f"{shape}, async forward"
    elif budget:
        group, baseline_name = "ray: budget", "Ray, no budget"
        shape = f"{shape}, max_cost set (not reached)"
    figures = (
        Figure(
            group,
            f"{shape}: wall time",
            "s",
            base,
            ray,
            baseline_name=baseline_name,
            note=f"median of {rounds}",
        ),
        Figure(
            group,
            f"{shape}: CPU per call, all processes",
            "µs",
            base_cpu,
            ray_cpu,
            baseline_name=baseline_name,
            note="caller + workers + coordinator",
        ),
    )
    details = {
        "variant": variant,
        "calls": calls,
        "cap": cap,
        "rounds": measured.to_dict(),
        "cluster_cpu": cluster["plait"],
        "same_outputs": measured.outputs["baseline"] == measured.outputs["plait"],
        "cpu_us_per_call": {"baseline": base_cpu, "ray": ray_cpu},
    }
    name = {"traced": "ray_io", "define-by-run": "ray_io_dynamic", "budget": "ray_io_budget"}
    return Result(name[variant], figures, details)


def run_cpu(backend: RayBackend, cores: int, items: int = 48, rounds: int = 3) -> Result:
    """(b) CPU-heavy items: the speed-up from running the Python on every core."""
    texts = prompts(items)
    rounds_per_item = _calibrate(WORK)
    start = time.process_time()
    _spin(rounds_per_item)
    spin_seconds = time.process_time() - start
    with simulator_process(latency=0.02) as server:
        module = Scored(rounds_per_item)
        measured, cluster = asyncio.run(_both(backend, module, texts, server.url, 16, rounds))
    local, ray = measured.median("baseline"), measured.median("plait")
    figure = Figure(
        "ray: CPU-heavy",
        f"{items} items × (20 ms call + {spin_seconds * 1000:.0f} ms Python)",
        "s",
        local,
        ray,
        baseline_name="local backend",
        note=f"median of {rounds}; speed-up {local / ray:.2f}× on {cores} cores",
    )
    details = {
        "items": items,
        "cores": cores,
        "work_per_item": WORK,
        "work_measured": spin_seconds,
        "rounds": measured.to_dict(),
        "same_outputs": measured.outputs["baseline"] == measured.outputs["plait"],
        "speedup": local / ray,
        "cluster_cpu": cluster["plait"],
    }
    return Result("ray_cpu", (figure,), details)


def run(quick: bool = False, backend: RayBackend | None = None) -> list[Result]:
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    start_cluster(cores)
    connected = time.perf_counter() - start
    backend = backend or RayBackend(workers=cores)
    start = time.perf_counter()
    asyncio.run(backend.worker_info())  # start the workers before anything is measured
    started = time.perf_counter() - start
    try:
        io = {"calls": 300, "rounds": 1} if quick else {}
        results = [
            *(run_io(backend, **io, variant=v) for v in ("traced", "define-by-run", "budget")),
            run_cpu(backend, cores, items=8, rounds=1) if quick else run_cpu(backend, cores),
        ]
    finally:
        backend.shutdown()
    for result in results:
        result.details.update(
            ray_connect_s=connected, workers_start_s=started, load_average=os.getloadavg()
        )
    return results


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration")
    results = run(parser.parse_args().quick)
    print(render_table([f for r in results for f in r.figures]))
    for result in results:
        shown = {k: v for k, v in result.details.items() if k != "rounds"}
        print(result.name, shown)
    require_ray().shutdown()


if __name__ == "__main__":
    main()
