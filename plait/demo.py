"""The quickstart as a script: ``python -m plait.demo`` (``--help`` for what it does).

Builds the design's anchor pipeline (summarize, then analyze with a learnable
instruction), shows the graph plait traces from it, runs it once and as a
batch on the built-in simulator, and says what to open next.
"""

from __future__ import annotations

import argparse
import asyncio

import plait
from plait import LLMInference, Module, Parameter, ResourceConfig

DESCRIPTION = """\
Run plait's quickstart pipeline (summarize, then analyze) on the built-in
simulator: no API key, no network. It prints the traced graph, one run with
its tokens, cost and time, and a batch of 40 inputs, then what to open next.
"""


class SummarizeThenAnalyze(Module):
    """Summarize a text with a fast model, then analyze the summary with a stronger one."""

    def __init__(self) -> None:
        super().__init__()
        self.instructions = Parameter(
            "Be concise and concrete.",
            description="Controls the style and structure of analysis output.",
        )
        self.summarize = LLMInference("fast", system_prompt="Summarize the input.")
        self.analyze = LLMInference("smart", system_prompt=self.instructions)

    def forward(self, text: str) -> str:
        summary = self.summarize(text)
        return self.analyze(f"Summary:\n{summary}\n\nAnalysis:")


def demo_resources(latency: float = 0.05) -> ResourceConfig:
    """Both aliases on the simulator, with scripted replies so the outputs read like a model's."""
    summarize = {
        "match": {"system": "Summarize", "user": r"regex:^(?P<first>[^.;]+)"},
        "reply": "{first}.",
    }
    analyze = {
        "match": {"user": r"regex:Summary:\n(?P<summary>.+)"},
        "reply": "Key point: {summary} Worth checking whether it holds next quarter.",
    }
    # For a real endpoint change only this, e.g.
    # ResourceConfig({"fast": {"model": "gpt-4o-mini"}, "smart": {"model": "gpt-4o"}}).
    return ResourceConfig(
        {
            "fast": {"provider": "simulated", "latency": latency, "replies": [summarize]},
            "smart": {"provider": "simulated", "latency": latency, "replies": [analyze]},
        },
        max_concurrent=8,
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m plait.demo", description=DESCRIPTION).parse_args(argv)
    pipeline = SummarizeThenAnalyze()
    text = "Quarterly revenue rose 12% while costs fell 3%; churn was flat."
    graph = plait.trace(pipeline, text)
    lines = [repr(pipeline), "", f"traced graph: {len(graph)} nodes"]
    for node_id in graph.topological_order():
        node = graph[node_id]
        after = ", ".join(node.dependencies) or "-"
        reads = f"  reads {', '.join(node.parameters)}" if node.parameters else ""
        lines.append(f"  {node_id:<10} {node.kind:<6} after: {after}{reads}")

    resources = demo_resources()
    result = plait.execute_sync(pipeline, text, resources=resources)
    lines += ["", f"one run on the simulator: {result!r}", "output:", f"  {result.output!r}"]
    lines.append(
        "  (the simulator answers from scripted rules; a request no rule matches gets "
        "'[<8-hex request digest>] <the prompt>')"
    )

    reports = [f"Report {i}: revenue up {i}% on last quarter." for i in range(40)]
    items = asyncio.run(plait.run_batch(pipeline, reports, resources=resources, progress=False))
    seconds = max(i.result.makespan for i in items if i.result is not None)
    lines.append(f"a batch of {len(items)} reports: {sum(i.ok for i in items)} ok")
    lines.append(f"  (80 calls of 50 ms at 8 concurrent: {seconds:.2f} s, lower bound 0.50 s)")
    lines += [
        "",
        f"Done: traced a {len(graph)}-node pipeline and ran it {1 + len(items)} times on the "
        "simulator, with no key and no network.",
        "Next:",
        "  jupyter lab notebooks/01_quickstart.ipynb   the same pipeline, drawn live with %%plait",
        "  notebooks/02 ... 08                          helpers, scale, profiling, optimization, "
        "control flow, evaluation, Ray",
        "  python -m plait                              every entry point",
        "  design_docs/README.md                        how plait works",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
