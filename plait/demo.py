"""The quickstart as a script: ``python -m plait.demo``.

Builds the design's anchor pipeline (summarize, then analyze with a learnable
instruction) and shows the graph plait traces from it.
"""

from __future__ import annotations

import asyncio

import plait
from plait import LLMInference, Module, Parameter, ResourceConfig


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


def main() -> None:
    pipeline = SummarizeThenAnalyze()
    text = "Quarterly revenue rose 12% while costs fell 3%; churn was flat."
    graph = plait.trace(pipeline, text)
    lines = [repr(pipeline), "", f"traced graph: {len(graph)} nodes"]
    for node_id in graph.topological_order():
        node = graph[node_id]
        after = ", ".join(node.dependencies) or "-"
        reads = f"  reads {', '.join(node.parameters)}" if node.parameters else ""
        lines.append(f"  {node_id:<10} {node.kind:<6} after: {after}{reads}")

    # The built-in simulator: no key, no network. For a real endpoint change this one line,
    # e.g. ResourceConfig({"fast": {"model": "gpt-4o-mini"}, "smart": {"model": "gpt-4o"}}).
    resources = ResourceConfig.simulated("fast", "smart", latency=0.05, max_concurrent=8)
    result = plait.execute_sync(pipeline, text, resources=resources)
    lines += ["", f"one run on the simulator: {result!r}", "output:", f"  {result.output!r}"]

    reports = [f"Report {i}: revenue up {i}% on last quarter." for i in range(40)]
    items = asyncio.run(plait.run_batch(pipeline, reports, resources=resources, progress=False))
    seconds = max(i.result.makespan for i in items if i.result is not None)
    lines.append(f"a batch of {len(items)} reports: {sum(i.ok for i in items)} ok")
    lines.append(f"  (80 calls of 50 ms at 8 concurrent: {seconds:.2f} s, lower bound 0.50 s)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
