"""The quickstart as a script: ``python -m plait.demo``.

Builds the design's anchor pipeline (summarize, then analyze with a learnable
instruction) and shows the graph plait traces from it.
"""

from __future__ import annotations

import plait
from plait import LLMInference, Module, Parameter


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
    graph = plait.trace(pipeline, "Quarterly revenue rose 12% while costs fell.")
    lines = [repr(pipeline), "", f"traced graph: {len(graph)} nodes"]
    for node_id in graph.topological_order():
        node = graph[node_id]
        after = ", ".join(node.dependencies) or "-"
        reads = f"  reads {', '.join(node.parameters)}" if node.parameters else ""
        lines.append(f"  {node_id:<10} {node.kind:<6} after: {after}{reads}")
    lines.append(f"output: {', '.join(graph.output_ids)}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
