"""Shared pieces of the benchmarks: the simulator process, pipelines, baselines' bodies, figures.

Every benchmark compares plait with a baseline measured in the same process
run (the machine is shared and absolute times drift), so each reported figure
is a `Figure` holding both numbers and their ratio. The HTTP benchmarks talk to
a simulator served by a separate process (`simulator_process`), so the client
process measured here does no server work.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from plait import LLMInference, Module, ModuleList, ResourceConfig

REPO = Path(__file__).resolve().parents[1]
MODEL = "sim-bench"
SYSTEM = "Answer briefly."
_READY = "plait simulator listening on "


@dataclass(frozen=True, slots=True)
class Figure:
    """One reported number: plait's, and the baseline's measured in the same run.

    ``target`` applies to the ratio plait / baseline when ``target_of`` is
    ``"ratio"``, or to plait's own number when it is ``"plait"`` (for targets
    stated in absolute terms, like "< 100 µs/node" or "0 lost calls");
    ``None`` means the figure is reported without a target. Lower is better.

    ``paired_ratio``, when set, is the ratio reported instead of plait / baseline:
    for a figure whose sides were measured in pairs (each process running both),
    the median of the pairs' own ratios, which cancels what shifts both sides of
    a pair alike (a slow process) where the ratio of the pooled medians does not.
    """

    benchmark: str
    metric: str
    unit: str
    baseline: float | None
    plait: float
    target: float | None = None
    target_of: str = "ratio"
    baseline_name: str = "baseline"
    note: str = ""
    paired_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.baseline is None or self.baseline == 0:
            return None
        return self.plait / self.baseline

    @property
    def met(self) -> bool | None:
        value = self.ratio if self.target_of == "ratio" else self.plait
        if self.target is None or value is None:
            return None
        return value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


@dataclass(frozen=True, slots=True)
class Result:
    """What one benchmark returns: its figures, and raw details (counts, every round's numbers)."""

    name: str
    figures: tuple[Figure, ...]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "figures": [f.to_dict() for f in self.figures],
            "details": self.details,
        }


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit in ("calls", "items", "requests", "429s", "nodes"):
        return f"{value:,.0f}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def render_table(figures: list[Figure]) -> str:
    """The figures as a markdown table."""
    lines = [
        "| benchmark | metric | baseline | plait | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        base = (
            f"{_number(f.baseline, f.unit)} {f.unit} ({f.baseline_name})"
            if f.baseline is not None
            else "–"
        )
        ratio = f"{f.ratio:.3f}×" if f.ratio is not None else "–"
        if f.target is None:
            target = "report"
        elif f.target_of == "ratio":
            target = f"≤ {f.target:g}×"
        else:
            target = f"≤ {_number(f.target, f.unit)} {f.unit}"
        met = {True: "yes", False: "**NO**", None: "–"}[f.met]
        metric = f"{f.metric} ({f.note})" if f.note else f.metric
        lines.append(
            f"| {f.benchmark} | {metric} | {base} | {_number(f.plait, f.unit)} {f.unit} "
            f"| {ratio} | {target} | {met} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock and process-CPU seconds of one measured block."""

    wall: float
    cpu: float


@contextlib.contextmanager
def timed() -> Iterator[list[Timing]]:
    """Measure the block; the list holds one `Timing` once the block exits."""
    out: list[Timing] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))


def median(values: list[float]) -> float:
    return statistics.median(values)


SIDES = ("baseline", "plait")


@dataclass(frozen=True, slots=True)
class Rounds:
    """Timings of a baseline and of plait doing the same work, alternating, round by round.

    ``outputs`` and ``observed`` map each side to what its work returned, and
    what the ``after`` hook returned, in each round.
    """

    baseline: tuple[Timing, ...]
    plait: tuple[Timing, ...]
    outputs: dict[str, list[Any]]
    observed: dict[str, list[Any]]

    def median(self, side: str, field: str = "wall") -> float:
        return median([getattr(t, field) for t in getattr(self, side)])

    def least(self, side: str, field: str = "wall") -> float:
        """The smallest round: the one other processes disturbed least (for CPU costs)."""
        return min(getattr(t, field) for t in getattr(self, side))

    def to_dict(self) -> dict[str, Any]:
        return {
            side: [{"wall": t.wall, "cpu": t.cpu} for t in getattr(self, side)] for side in SIDES
        }


async def alternate(
    rounds: int,
    baseline: Callable[[], Awaitable[Any]],
    plait: Callable[[], Awaitable[Any]],
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], Any] | None = None,
    timeout: float = 120.0,
) -> Rounds:
    """Run both ``rounds`` times, swapping which goes first each round, so drift hits both alike.

    ``before`` runs ahead of each measured run (e.g. resetting the server) and
    ``after`` right after it (e.g. reading the server's counters); neither is
    timed. Garbage from the previous run is collected before each run. A run
    still going after ``timeout`` seconds raises `Stalled`.
    """
    timings: dict[str, list[Timing]] = {side: [] for side in SIDES}
    outputs: dict[str, list[Any]] = {side: [] for side in SIDES}
    observed: dict[str, list[Any]] = {side: [] for side in SIDES}
    work = {"baseline": baseline, "plait": plait}
    for index in range(rounds):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            if before is not None:
                before()
            gc.collect()
            with timed() as timing:
                outputs[side].append(await _bounded(work[side](), timeout, side, index))
            timings[side].append(timing[0])
            observed[side].append(after() if after is not None else None)
    return Rounds(tuple(timings["baseline"]), tuple(timings["plait"]), outputs, observed)


class Stalled(RuntimeError):
    """A measured run did not finish in time; the message lists where its tasks wait."""


async def _bounded(work: Awaitable[Any], timeout: float, side: str, index: int) -> Any:
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if done:
        return task.result()
    waits = waiting_tasks()
    task.cancel()
    raise Stalled(
        f"the {side} run of round {index + 1} was still going after {timeout:g} s; "
        f"its tasks wait at:\n" + "\n".join(f"  {n} × {where}" for where, n in waits.most_common())
    )


def waiting_tasks() -> Counter[str]:
    """Where the running loop's tasks are suspended: each await chain, with how many share it."""
    chains: Counter[str] = Counter()
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        links, awaited = [], task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is None:
                links.append(type(awaited).__name__)
                break
            links.append(
                f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}:{frame.f_lineno}"
            )
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        chains[" > ".join(links)] += 1
    return chains


class SimProcess:
    """A simulator served by a child process; ``url`` is its root (append ``/v1`` for OpenAI)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=10)

    def stats(self) -> dict[str, Any]:
        """The server's counters since the last `reset` (``GET /stats``)."""
        return self._http.get("/stats").json()

    def requests(self) -> list[dict[str, Any]]:
        """The server's request log (``GET /requests``)."""
        return self._http.get("/requests").json()["data"]

    def reset(self) -> None:
        """Clear the log, counters and fault sightings, so the next run sees the same faults."""
        self._http.delete("/requests").raise_for_status()

    def close(self) -> None:
        self._http.close()


@contextlib.contextmanager
def simulator_process(**settings: Any) -> Iterator[SimProcess]:
    """Serve `SimulatorSettings(**settings)` from ``python -m plait.simulator`` in a child process.

    Stopped with SIGTERM (then killed if it lingers) when the block exits.
    """
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "simulator.json"
        config.write_text(json.dumps(settings))
        log = Path(tmp) / "stderr.txt"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-m", "plait.simulator", "--port", "0", "--config", str(config)]
        # stderr goes to a file: a pipe nobody reads would block a chatty server once full.
        with log.open("w") as stderr:
            child = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        server = None
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line.startswith(_READY):
                child.kill()
                child.wait()
                raise RuntimeError(
                    f"the simulator process did not start: first line {line!r}, "
                    f"stderr {log.read_text()[-2000:]!r}"
                )
            server = SimProcess(line[len(_READY) :].strip())
            yield server
        finally:
            if server is not None:
                server.close()
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if child.stdout is not None:
                child.stdout.close()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into `SystemExit`, so ``finally`` blocks stop the simulator processes."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def http_resources(url: str, max_concurrent: int, **fields: Any) -> ResourceConfig:
    """One OpenAI-protocol endpoint ``fast`` at the simulator ``url``."""
    endpoint = {
        "provider": "openai",
        "base_url": url + "/v1",
        "model": MODEL,
        "max_concurrent": max_concurrent,
        **fields,
    }
    return ResourceConfig({"fast": endpoint})


def simulated_resources(max_concurrent: int) -> ResourceConfig:
    """One in-process simulated endpoint ``fast`` at zero latency."""
    endpoint = {"provider": "simulated", "model": MODEL, "max_concurrent": max_concurrent}
    return ResourceConfig({"fast": endpoint})


def body(user: str, system: str = SYSTEM) -> dict[str, Any]:
    """The chat-completions body plait sends for ``LLMInference("fast", system)(user)``.

    The baselines post exactly these bodies; tests/test_bench_smoke.py checks
    the server sees the same bodies from both.
    """
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return {"model": MODEL, "messages": messages, "stream": False}


def reply_text(data: Any) -> str:
    """The answer text of a decoded chat-completions reply."""
    return data["choices"][0]["message"]["content"]


def prompts(count: int) -> list[str]:
    """Distinct prompts, so fault draws (keyed on the request) differ per call."""
    return [f"item {i}: summarise the quarterly report." for i in range(count)]


class Single(Module):
    """One LLM call: the unit of the per-call benchmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = LLMInference("fast", system_prompt=SYSTEM)

    def forward(self, text: str) -> str:
        return self.answer(text)


FAN_SYSTEMS = ("Angle 0", "Angle 1")
JOIN_SYSTEM = "Combine."


class FanJoin(Module):
    """Two independent calls on the input, then one call joining their answers."""

    def __init__(self) -> None:
        super().__init__()
        self.left = LLMInference("fast", system_prompt=FAN_SYSTEMS[0])
        self.right = LLMInference("fast", system_prompt=FAN_SYSTEMS[1])
        self.join = LLMInference("fast", system_prompt=JOIN_SYSTEM)

    def forward(self, text: str) -> str:
        return self.join("\n".join([self.left(text), self.right(text)]))


class Chain(Module):
    """``length`` calls in sequence, each on the previous answer."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.steps = ModuleList(
            LLMInference("fast", system_prompt=f"Step {i}") for i in range(length)
        )

    def forward(self, text: str) -> str:
        for step in self.steps:
            text = step(text)
        return text


class Wide(Module):
    """One call per document, all independent: a graph as wide as the input list."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = LLMInference("fast", system_prompt=SYSTEM)

    def forward(self, docs: list[str]) -> list[str]:
        return [self.answer(doc) for doc in docs]
