"""Trace time and memory for 10,000-node pipelines (SPEC benchmarks: target < 1 s, < 100 MB).

Run from the repository root: ``python bench/trace_bench.py``. Three shapes,
each 2,500 x (llm -> llm -> op -> llm) = 10,000 recorded nodes (plus inputs):

- ``wide``: one shared stage module applied to each of 2,500 input documents;
- ``deep``: 2,500 distinct stage modules chained one after the other;
- ``helpers``: ``wide``, with each stage called through two nested helper functions.

Wall time is the best of ``--repeat`` runs; peak memory is measured in a
separate run under ``tracemalloc`` (which slows tracing down).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plait
from plait import LLMInference, Module, ModuleList, Parameter, trace

STAGES = 2_500


@plait.op
def keep_first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class Stage(Module):
    def __init__(self) -> None:
        super().__init__()
        self.style = Parameter("Be brief.", description="Style of the draft.")
        self.draft = LLMInference("fast", system_prompt=self.style)
        self.critique = LLMInference("smart")
        self.final = LLMInference("fast")

    def forward(self, doc: str) -> str:
        draft = self.draft(f"Draft an answer to:\n{doc}")
        critique = self.critique(f"Critique this draft:\n{draft}\n\nBe specific.")
        first = keep_first_line(critique)
        return self.final(f"{self.style}\nRevise:\n{draft}\nUsing: {first}")


class Wide(Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage = Stage()

    def forward(self, docs: list[str]) -> list[str]:
        return [self.stage(doc) for doc in docs]


class Deep(Module):
    def __init__(self) -> None:
        super().__init__()
        self.stages = ModuleList([Stage() for _ in range(STAGES)])

    def forward(self, doc: str) -> str:
        for stage in self.stages:
            doc = stage(doc)
        return doc


def review(stage: Stage, doc: str) -> str:
    return polish(stage, f"[{doc}]")


def polish(stage: Stage, doc: str) -> str:
    return stage(doc)


class Helpers(Wide):
    def forward(self, docs: list[str]) -> list[str]:
        return [review(self.stage, doc) for doc in docs]


SHAPES: dict[str, Callable[[], tuple[Module, tuple[Any, ...]]]] = {
    "wide": lambda: (Wide(), ([f"document {i}" for i in range(STAGES)],)),
    "deep": lambda: (Deep(), ("document",)),
    "helpers": lambda: (Helpers(), ([f"document {i}" for i in range(STAGES)],)),
}


def measure(shape: str, repeat: int) -> tuple[int, float, float]:
    module, args = SHAPES[shape]()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        graph = trace(module, *args)
        best = min(best, time.perf_counter() - start)
    recorded = sum(1 for n in graph.nodes.values() if n.kind != "input")
    del graph
    tracemalloc.start()
    # The peak covers everything tracing allocates, the finished graph included.
    trace(module, *args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return recorded, best, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("shapes", nargs="*", default=list(SHAPES))
    options = parser.parse_args()
    print(f"{'shape':<8} {'nodes':>7} {'time (s)':>9} {'peak (MB)':>10}")
    for shape in options.shapes:
        nodes, seconds, peak = measure(shape, options.repeat)
        print(f"{shape:<8} {nodes:>7} {seconds:>9.3f} {peak:>10.1f}")


if __name__ == "__main__":
    main()
