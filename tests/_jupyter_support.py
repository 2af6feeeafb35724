"""Shared pieces of the Jupyter tests: pipelines, simulated resources, the IPython test shell.

The shell is IPython's global test shell (`IPython.testing.globalipapp`) with
``plait_jupyter`` loaded and HTML output enabled, so a test sees what a
notebook would be sent.
"""

from __future__ import annotations

import json
from typing import Any

from _models import SummarizeThenAnalyze
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

import plait
import plait.functional as F
from plait import LLMInference, Module, ResourceConfig, op
from plait_jupyter import GraphView, PlaitMagics

XSS = '<img src=x onerror="window.__pwned=1">'
SECRET = "sk-test-SECRET-4f1c9a"  # configured on endpoints; must never reach a widget


def one_endpoint_pipeline() -> SummarizeThenAnalyze:
    """The anchor example with both calls on "fast", the one endpoint `resources` configures."""
    return SummarizeThenAnalyze(analyze_alias="fast")


def add_review(llm: LLMInference, topic: Any) -> Any:
    return F.strip(llm(f"Review {topic}"))


class JudgedReviews(Module):
    """Three calls of one helper (three scope groups), then a join."""

    def __init__(self) -> None:
        super().__init__()
        self.writer = LLMInference("fast", system_prompt="Write a review.")
        self.judge = LLMInference("fast", system_prompt="Judge the reviews.")

    def forward(self, topics: list[str]) -> Any:
        return self.judge(F.concat(*[add_review(self.writer, t) for t in topics]))


@op
def explode(text: str) -> str:
    raise ValueError(f"cannot parse {text[:20]!r}")


class Fragile(Module):
    """A failing op and a dependant that is therefore skipped, beside a branch that works."""

    def __init__(self) -> None:
        super().__init__()
        self.first = LLMInference("fast", system_prompt="First.")
        self.after = LLMInference("fast", system_prompt="After.")
        self.side = LLMInference("fast", system_prompt="Side.")

    def forward(self, text: str) -> Any:
        return self.after(explode(self.first(text))), self.side(text)


def resources(**fields: Any) -> ResourceConfig:
    """Simulated "fast" endpoint with an API key configured (it must never be shown)."""
    return ResourceConfig(
        {"fast": {"provider": "simulated", "api_key": SECRET, "retry_base_delay": 0.0, **fields}}
    )


def shell() -> Any:
    """The IPython test shell with plait_jupyter loaded, plait's names imported, HTML output on."""
    ip = globalipapp.get_ipython()  # rebound by the first call: always look it up
    if "PlaitMagics" not in ip.magics_manager.registry:
        ip.run_line_magic("load_ext", "plait_jupyter")
        ip.user_ns.update(
            {name: getattr(plait, name) for name in plait.__all__}
        )  # from plait import *
    if "text/html" not in ip.display_formatter.active_types:
        # Assigned, not appended: the formatters are switched on by the trait's observer.
        ip.display_formatter.active_types = [*ip.display_formatter.active_types, "text/html"]
    return ip


def run_cell(code: str, **namespace: Any) -> tuple[Any, Any]:
    """Run ``code`` as a notebook cell; returns (ExecutionResult, captured output)."""
    ip = shell()
    ip.user_ns.update(namespace)
    with capture_output() as captured:
        result = ip.run_cell(code)
    return result, captured


def magics() -> PlaitMagics:
    return shell().magics_manager.registry["PlaitMagics"]


def shown(captured: Any) -> list[Any]:
    """The outputs a cell displayed, in order (not the later updates of those displays)."""
    return [out for out in captured.outputs if not out.update]


def final_texts(captured: Any) -> list[str]:
    """The text/plain each display ends with, in display order (updates applied)."""
    latest: dict[Any, str] = {}
    for n, out in enumerate(captured.outputs):
        key = (out.transient or {}).get("display_id") or n
        latest[key] = out.data.get("text/plain", "")
    return list(latest.values())


def widget_ids(captured: Any) -> list[str]:
    """Model ids of the widgets a cell displayed, in order."""
    key = "application/vnd.jupyter.widget-view+json"
    return [out.data[key]["model_id"] for out in shown(captured) if key in out.data]


def html_outputs(captured: Any) -> list[str]:
    return [out.data["text/html"] for out in shown(captured) if "text/html" in out.data]


def state_json(view: GraphView) -> str:
    """Everything the front-end receives about ``view``, as one JSON text."""
    return json.dumps(view.get_state(), default=str)
