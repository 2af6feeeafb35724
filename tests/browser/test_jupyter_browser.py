"""The graph explorer in a real JupyterLab, driven through headless Chromium.

One JupyterLab server serves the whole session; each notebook gets its own
kernel. Set ``PLAIT_SCREENSHOTS=<dir>`` to also save screenshots there (the
ones in ``docs/screenshots/`` come from this).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from _lab import open_and_run, view_data

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__pwned=1">'
SETUP = textwrap.dedent(
    f"""\
    %load_ext plait_jupyter
    from plait import *
    import plait.functional as F

    class SummarizeThenAnalyze(Module):
        def __init__(self):
            super().__init__()
            self.summarize = LLMInference("fast", system_prompt="Summarize the input.")
            self.analyze = LLMInference("fast", system_prompt="Evil analyst: answer in HTML.")

        def forward(self, text):
            summary = self.summarize(text)
            return self.analyze(f"Summary:\\n{{summary}}\\n\\nAnalysis:")

    def add_review(llm, topic):
        return F.strip(llm(f"Review the {{topic}} of the design."))

    class Reviews(Module):
        def __init__(self):
            super().__init__()
            self.writer = LLMInference("fast", system_prompt="Write a short review.")
            self.judge = LLMInference("fast", system_prompt="Judge the reviews.")

        def forward(self, topics):
            return self.judge(F.concat(*[add_review(self.writer, t) for t in topics]))

    evil = [{{"match": {{"system": "Evil"}}, "reply": {XSS!r}}}]
    slow = ResourceConfig({{"fast": {{"provider": "simulated", "latency": 1.5, "replies": evil}}}})
    quick = ResourceConfig({{"fast": {{"provider": "simulated", "latency": 0.05, "max_concurrent": 64}}}})
    """
)
# Loads the widget machinery before the slow run starts, so the run is drawn from its start.
WARM_UP = "from plait_jupyter import BatchProgressView\nBatchProgressView()"
SMALL_RUN = (
    '%%plait --resources slow\nresult = await execute(SummarizeThenAnalyze(), "Revenue rose 12%.")'
)
GROUPED_RUN = (
    '%%plait --resources quick\nreviews = await execute(Reviews(), ["speed", "cost", "safety"])'
)
BATCH_RUN = (
    "%%plait --resources quick\n"
    'items = await run_batch(Reviews(), [["speed", f"paper {i}"] for i in range(125)])'
)
WIDE_GRAPH = (
    "from plait_jupyter import GraphView\n"
    'GraphView(trace(Reviews(), [f"topic {i}" for i in range(333)]))'
)

ALL_DONE = """([index, count]) => {
  const view = document.querySelectorAll('.plait-graph')[index];
  return Boolean(view) && view.querySelectorAll('.pl-node[data-state=done]').length === count;
}"""


def shoot(target, name: str) -> None:
    """Save a screenshot of ``target`` when PLAIT_SCREENSHOTS names a directory."""
    folder = os.environ.get("PLAIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        target.screenshot(path=str(Path(folder) / name))


@pytest.fixture(scope="module")
def small(lab, browser):
    """A notebook with a slow 3-node run and a 11-node grouped run; records what it saw live."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    lab.write_notebook("small.ipynb", [SETUP, WARM_UP, SMALL_RUN, GROUPED_RUN])
    open_and_run(page, lab, "small.ipynb")
    page.wait_for_selector(".plait-graph .pl-node[data-state=running]", timeout=60_000)
    live = page.evaluate(
        "() => [...document.querySelectorAll('.plait-graph .pl-node')].map(n => n.dataset.state)"
    )
    shoot(page.locator(".jp-Cell").nth(2), "graph_live.png")
    page.wait_for_function(ALL_DONE, arg=[0, 3], timeout=60_000)
    page.wait_for_function(ALL_DONE, arg=[1, 11], timeout=60_000)
    yield page, live
    page.close()


def test_a_plait_cell_draws_the_dag_live_and_every_node_reaches_done(small):
    page, live = small
    assert "running" in live and "pending" in live  # drawn while the run was going on
    view = page.locator(".plait-graph").first
    assert view.locator(".pl-node[data-id]").count() == 3
    assert view.locator(".pl-node[data-state=done]").count() == 3
    assert view_data(page)["nodeCount"] == "3"
    assert "3/3 done" in view.locator(".pl-status").inner_text()
    shoot(page.locator(".jp-Cell").nth(2), "graph_small.png")


def test_clicking_a_node_shows_its_output_and_model_html_is_never_run(small):
    page, _ = small
    view = page.locator(".plait-graph").first
    view.locator(".pl-node[data-id=analyze]").click()
    inspector = view.locator(".pl-inspector")
    output = inspector.locator(".pl-output-text")
    output.wait_for()
    assert output.inner_text() == XSS
    inspector.locator("summary", has_text="Prompt sent").click()
    assert "Evil analyst: answer in HTML." in inspector.inner_text()  # the prompt sent
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator(".jp-OutputArea-output img").count() == 0  # the summary table too
    shoot(page.locator(".jp-Cell").nth(2), "inspector.png")


def test_groups_by_helper_scope_collapse_into_one_node(small):
    page, _ = small
    view = page.locator(".plait-graph").nth(1)
    view.locator(".pl-group-select").select_option("scope")
    assert view.locator(".pl-group").count() == 3
    view.locator(".pl-group-head").first.click()
    collapsed = view.locator(".pl-node.pl-collapsed")
    collapsed.wait_for()
    assert collapsed.count() == 1
    assert collapsed.get_attribute("data-state") == "done"
    assert view.locator(".pl-node[data-id]").count() == 9
    shoot(page.locator(".jp-Cell").nth(3), "graph_groups.png")


def test_a_1000_node_batch_and_a_1000_node_graph_render(lab, browser, record_property):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    lab.write_notebook("batch.ipynb", [SETUP, BATCH_RUN, WIDE_GRAPH])
    open_and_run(page, lab, "batch.ipynb")
    page.wait_for_function(ALL_DONE, arg=[0, 1000], timeout=90_000)
    page.wait_for_selector(".plait-progress[data-finished=true]", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelectorAll('.plait-graph')[1]?.dataset.rendered", timeout=60_000
    )
    batch, wide = view_data(page, 0), view_data(page, 1)
    assert batch["nodeCount"] == "1000" and wide["nodeCount"] == "1001"
    assert "125/125 items" in page.locator(".plait-progress").inner_text()
    for name, data in (("batch", batch), ("wide", wide)):
        record_property(f"{name}_render_ms", data["renderMs"])
        record_property(f"{name}_paint_ms", data["paintMs"])
    print(f"1,000-node batch: {batch}\n1,001-node graph: {wide}")
    shoot(page.locator(".jp-Cell").nth(1), "batch_1000.png")
    canvas = page.locator(".plait-graph .pl-canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 120, box["y"] + 90)
    for _ in range(4):
        page.mouse.wheel(0, -250)
    shoot(page.locator(".plait-graph").first, "batch_1000_zoomed.png")
    shoot(page.locator(".plait-graph").nth(1), "graph_1001_fan_out.png")
    page.close()
