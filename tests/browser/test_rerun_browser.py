"""'Edit & re-run' in a real JupyterLab: edit a node's prompt, re-run, see downstream change.

Set ``PLAIT_SCREENSHOTS=<dir>`` to also save ``rerun_editor.png`` and ``rerun.png``
there (the ones in ``docs/screenshots/`` come from this).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from _lab import open_and_run

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__pwned=1">'
SETUP = textwrap.dedent(
    """\
    from plait import *
    from plait_jupyter import GraphView

    class Report(Module):
        def __init__(self):
            super().__init__()
            self.style = Parameter("Summarize in one line.", description="summary style")
            self.summarize = LLMInference("fast", system_prompt=self.style)
            self.analyze = LLMInference("fast", system_prompt="Analyze the summary.")

        def forward(self, text):
            summary = self.summarize(text)
            return self.analyze(f"Summary: {summary}")

    replies = [
        {"match": {"system": "Summarize"}, "reply": "({system}) {user}"},
        {"match": {"system": "Analyze"}, "reply": "Analysis of <<{user}>>: fine."},
    ]
    resources = ResourceConfig({"fast": {"provider": "simulated", "latency": 0.05, "replies": replies}})
    report = Report()
    result = await execute(report, "Revenue rose 12% in Q3.", resources=resources)
    view = GraphView(result, height=520)
    view
    """
)
EDITED = f"Summarize for a CFO. {XSS}"
ALL_DONE = "() => document.querySelectorAll('.plait-graph .pl-node[data-state=done]').length === 3"


def shoot(target, name: str) -> None:
    """Save a screenshot of ``target`` when PLAIT_SCREENSHOTS names a directory."""
    folder = os.environ.get("PLAIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        target.screenshot(path=str(Path(folder) / name))


def test_edit_a_prompt_rerun_and_see_the_downstream_text_change(lab, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    lab.write_notebook("rerun.ipynb", [SETUP])
    open_and_run(page, lab, "rerun.ipynb")
    page.wait_for_function(ALL_DONE, timeout=60_000)
    view = page.locator(".plait-graph")
    inspector = view.locator(".pl-inspector")

    view.locator(".pl-node[data-id=analyze]").click()
    before = inspector.locator(".pl-output-text").inner_text()
    assert before.startswith("Analysis of <<Summary: (Summarize in one line.) Revenue rose")

    view.locator(".pl-node[data-id=summarize]").click()
    inspector.locator(".pl-edit-rerun").click()
    system = inspector.locator("textarea.pl-edit-system")
    system.wait_for()
    assert system.input_value() == "Summarize in one line."
    assert inspector.locator("textarea.pl-edit-input").input_value() == "Revenue rose 12% in Q3."
    system.fill(EDITED)
    shoot(view, "rerun_editor.png")
    inspector.locator(".pl-run-edit").click()

    banner = view.locator(".pl-whatif")
    banner.locator(".pl-adopt").wait_for(timeout=30_000)
    assert "2 changed:" in banner.inner_text()
    assert "1 reused" in banner.inner_text()
    assert view.locator(".pl-node.pl-changed").count() == 2
    assert view.locator(".pl-node.pl-reused[data-id=text]").count() == 1

    view.locator(".pl-node[data-id=analyze]").click()
    after = inspector.locator(".pl-diff-after")
    after.wait_for()
    assert f"(Summarize for a CFO. {XSS})" in after.inner_text()
    assert inspector.locator(".pl-diff-before").inner_text() == before
    assert inspector.locator(".pl-output-text").inner_text() == after.inner_text()
    assert inspector.locator(".pl-diff-after ins").count() >= 1
    shoot(view, "rerun.png")

    banner.locator(".pl-adopt").click()
    page.wait_for_function(
        "() => document.querySelector('.plait-graph .pl-adopt').disabled", timeout=30_000
    )
    assert "parameter 'style' now holds the edited prompt (version 1)" in banner.inner_text()
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator(".jp-OutputArea-output img").count() == 0
    page.close()
