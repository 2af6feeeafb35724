"""What OpenTelemetry export costs: the same batch with `plait.otel` off and on.

Run from the repository root: ``python bench/otel_overhead.py`` (``--quick``
for a small configuration). Two workloads on the in-process simulator:

- ``pipeline``: 200 items x 3 calls (two parallel drafts, then a merge), 100 ms
  latency, 32 slots (bench/batch.py's workload): what a real run sees;
- ``zero latency``: 2,000 one-call items with no latency: nothing but
  scheduling, so this is the worst case (CPU per span).

"on" is ``otel.instrument`` with the SDK's `TracerProvider` and the
`BatchSpanProcessor` a deployment would use, exporting to a counting exporter
(no network: the exporter's wire cost belongs to the SDK, not to plait); the
measured block ends with ``force_flush``, so every span is built and handed
over inside it. "on + content" also records prompts and replies. Off and on
alternate, round by round (`bench._common.alternate`); medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench._common import Figure, Result, alternate, exit_on_sigterm, render_table
from plait import LLMInference, Module, ResourceConfig, otel, run_batch


class DraftTwiceAndMerge(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft_a = LLMInference("fast", system_prompt="Draft, formal.")
        self.draft_b = LLMInference("fast", system_prompt="Draft, casual.")
        self.merge = LLMInference("fast", system_prompt="Merge the drafts.")

    def forward(self, text: str) -> Any:
        return self.merge(f"{self.draft_a(text)}\n---\n{self.draft_b(text)}")


class OneCall(Module):
    def __init__(self) -> None:
        super().__init__()
        self.answer = LLMInference("fast", system_prompt="Answer briefly.")

    def forward(self, text: str) -> Any:
        return self.answer(text)


class CountingExporter(SpanExporter):
    """Receives spans from the batch processor and only counts them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def compare(
    module: Module, items: int, latency: float, slots: int, rounds: int, *, capture: bool
) -> tuple[Any, dict[str, Any]]:
    """Alternate the batch with export off ("baseline") and on ("plait"); timings and counts."""
    resources = ResourceConfig(
        {"fast": {"provider": "simulated", "latency": latency, "max_concurrent": slots}}
    )
    inputs = [f"document {i}" for i in range(items)]
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))

    async def off() -> list[Any]:
        return [
            i.output for i in await run_batch(module, inputs, resources=resources, progress=False)
        ]

    async def on() -> list[Any]:
        otel.instrument(provider, capture_content=capture)
        try:
            batch = await run_batch(module, inputs, resources=resources, progress=False)
            provider.force_flush()
        finally:
            otel.uninstrument()
        return [i.output for i in batch]

    await off()  # warm-up: imports, first traces
    await on()
    warm = exporter.spans
    rounds_ = await alternate(rounds, off, on)
    provider.shutdown()
    spans_per_run = (exporter.spans - warm) / rounds
    same = all(
        a == b for a, b in zip(rounds_.outputs["baseline"], rounds_.outputs["plait"], strict=True)
    )
    details = {"rounds": rounds_.to_dict(), "spans_per_run": spans_per_run, "outputs_match": same}
    return rounds_, details


def run(quick: bool = False) -> list[Result]:
    rounds = 3 if quick else 7
    workloads = (
        ("pipeline", DraftTwiceAndMerge(), 60 if quick else 200, 0.1, 32, False),
        ("pipeline + content", DraftTwiceAndMerge(), 60 if quick else 200, 0.1, 32, True),
        ("zero latency", OneCall(), 400 if quick else 2000, 0.0, 64, False),
    )
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for name, module, items, latency, slots, capture in workloads:
        timings, info = asyncio.run(compare(module, items, latency, slots, rounds, capture=capture))
        details[name] = {"items": items, **info}
        spans = info["spans_per_run"]
        label = f"{name}: {items} items, {spans:,.0f} spans"
        for field, unit, target in (
            ("wall", "s", 1.05 if latency else None),
            ("cpu", "s CPU", None),
        ):
            figures.append(
                Figure(
                    "7. otel",
                    f"{label}, {'wall' if field == 'wall' else 'CPU'}",
                    unit,
                    timings.median("baseline", field),
                    timings.median("plait", field),
                    target,
                    baseline_name="export off",
                    note=f"median of {rounds}",
                )
            )
        cpu_per_span = (timings.median("plait", "cpu") - timings.median("baseline", "cpu")) / spans
        details[name]["cpu_us_per_span"] = cpu_per_span * 1e6
    return [Result("otel", tuple(figures), details)]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small configuration (~10 s)")
    (result,) = run(parser.parse_args().quick)
    print(render_table(list(result.figures)))
    for name, info in result.details.items():
        print(
            f"{name}: {info['cpu_us_per_span']:.0f} µs CPU per span; outputs match: {info['outputs_match']}"
        )


if __name__ == "__main__":
    main()
