"""A define-by-run (async forward) run drawn live in a real JupyterLab: the graph grows.

A router (only the expert the classifier names is called) and a draft/verify
loop run on the simulator with latency, so the page can be watched while
calls are added. ``PLAIT_SCREENSHOTS=<dir>`` saves the screenshots.
"""

from __future__ import annotations

import textwrap
import time

import pytest
from _lab import open_and_run, view_data
from test_jupyter_browser import XSS, shoot

pytestmark = pytest.mark.browser

SETUP = textwrap.dedent(
    f"""\
    %load_ext plait_jupyter
    from plait import *

    class RouteRefine(Module):
        def __init__(self):
            super().__init__()
            self.classify = LLMInference("fast", system_prompt="Classify: math or poetry.")
            self.math = LLMInference("fast", system_prompt="You are a mathematician.")
            self.poet = LLMInference("fast", system_prompt="You are a poet.")
            self.draft = LLMInference("fast", system_prompt="Draft an answer.")
            self.verify = LLMInference("fast", system_prompt="Reply PASS or FAIL.")

        async def forward(self, question):
            label = await self.classify(question)
            expert = self.math if label == "math" else self.poet
            draft = await self.draft(expert(f"Question: {{question}}"))
            for _ in range(4):
                verdict = await self.verify(f"Check: {{draft}}")
                if verdict.startswith("PASS"):
                    break
                draft = await self.draft(f"{{question}}\\nImprove on: {{draft}}")
            return draft

    rules = [
        {{"match": {{"system": "Classify", "user": "integral"}}, "reply": "math"}},
        {{"match": {{"system": "Classify"}}, "reply": "poetry"}},
        {{"match": {{"system": "Reply PASS", "user": "regex:(?s)Improve on:.*Improve on:"}},
          "reply": "PASS"}},
        {{"match": {{"system": "Reply PASS"}}, "reply": {("FAIL: " + XSS)!r}}},
    ]
    res = ResourceConfig.simulated("fast", latency=0.7, replies=rules)
    """
)
WARM_UP = "from plait_jupyter import BatchProgressView\nBatchProgressView()"
RUN = "%%plait --resources res\nresult = await execute(RouteRefine(), 'the integral of x')"
BATCH = (
    "%%plait --resources res\n"
    "items = await run_batch(RouteRefine(), ['the integral of x', 'a rose', 'an integral', 'a sonnet'])"
)
NODES = ["classify", "math", "draft", "verify", "draft_1", "verify_1", "draft_2", "verify_2"]

WATCH = """() => {
  const view = document.querySelector('.plait-graph');
  if (!view) return null;
  const at = {};
  for (const n of view.querySelectorAll('.pl-node[data-id]')) at[n.dataset.id] = n.getAttribute('transform');
  return {at, status: view.querySelector('.pl-status').dataset.status, fresh: view.dataset.freshLayouts};
}"""


@pytest.fixture(scope="module")
def grown(lab, browser):
    """Runs the cell and samples the drawn nodes (and where they are) while the run goes on."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.errors = []  # uncaught errors of the page: a front-end crash would stop the drawing
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    lab.write_notebook("dynamic.ipynb", [SETUP, WARM_UP, RUN, BATCH])
    open_and_run(page, lab, "dynamic.ipynb")
    page.wait_for_selector(".plait-graph .pl-node[data-id=classify]", timeout=60_000)
    samples = []
    shot = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sample = page.evaluate(WATCH)
        samples.append(sample)
        if sample["status"] == "done":
            break
        if not shot and len(sample["at"]) >= 5:
            shoot(page.locator(".jp-Cell").nth(2), "dynamic_graph_live.png")
            shot = True
        time.sleep(0.1)  # sampling the page while the kernel runs: there is no event to await
    yield page, samples
    page.close()


def test_nodes_appear_while_the_run_goes_on_and_keep_their_places(grown):
    page, samples = grown
    counts = [len(s["at"]) for s in samples]
    assert samples[-1]["status"] == "done"
    assert counts == sorted(counts)  # only ever more nodes
    assert len(set(counts)) >= 4, counts  # seen at several sizes, not drawn once at the end
    assert sorted(samples[-1]["at"]) == sorted(NODES)
    # A node, once drawn, never moves while the graph grows around it.
    for node in NODES:
        places = {s["at"][node] for s in samples if node in s["at"]}
        seen = sorted(
            {(len(s["at"]), str(s["fresh"]), s["at"].get(node)) for s in samples if node in s["at"]}
        )
        assert len(places) == 1, f"{node} moved: {seen}"
    assert view_data(page)["nodeCount"] == str(len(NODES))


def test_the_branch_not_taken_is_absent_and_control_edges_are_dashed(grown):
    page, _ = grown
    view = page.locator(".plait-graph").first
    assert view.locator(".pl-node[data-id=poet]").count() == 0
    assert view.locator(".pl-node[data-id=math][data-state=done]").count() == 1
    edge = view.locator("path.pl-control-edge[data-from=classify][data-to=math]")
    assert edge.count() == 1
    assert edge.evaluate("e => getComputedStyle(e).strokeDasharray") not in ("", "none")
    data_edge = view.locator("path[data-from=math][data-to=draft]")
    assert data_edge.evaluate("e => getComputedStyle(e).strokeDasharray") == "none"
    heads = view.locator(".pl-group-iteration .pl-group-head")
    labels = heads.evaluate_all("hs => hs.map(h => h.firstChild.textContent)")
    assert sorted(labels) == ["▾ ↻ iteration 1", "▾ ↻ iteration 2", "▾ ↻ iteration 3"]
    assert "control edge" in view.locator(".pl-legend").inner_text()


def test_the_inspector_shows_the_control_edge_and_model_html_stays_text(grown):
    page, _ = grown
    view = page.locator(".plait-graph").first
    view.locator(".pl-node[data-id=math]").click()
    facts = view.locator(".pl-inspector .pl-facts")
    facts.wait_for()
    assert "after\tclassify (control)" in facts.inner_text()
    shoot(page.locator(".jp-Cell").nth(2), "dynamic_graph.png")
    view.locator(".pl-node[data-id=verify]").click()
    output = view.locator(".pl-inspector .pl-output-text")
    output.wait_for()
    assert output.inner_text() == "FAIL: " + XSS
    assert "after\tdraft (control)" in view.locator(".pl-inspector .pl-facts").inner_text()
    assert page.evaluate("() => window.__pwned") is None
    assert page.errors == []


def test_a_batch_grows_per_item_and_each_item_takes_its_own_branch(grown):
    page, _ = grown
    cell = page.locator(".jp-Cell").nth(3)
    cell.scroll_into_view_if_needed()
    view = cell.locator(".plait-graph")
    try:
        view.locator(".pl-status[data-status=done]").wait_for(state="attached", timeout=90_000)
    except Exception as exc:  # say what the cell shows instead of only "timeout"
        shown = cell.inner_text() if cell.count() else "(no cell)"
        raise AssertionError(
            f"batch not done; cell shows:\n{shown}\nerrors: {page.errors}"
        ) from exc
    ids = set(view.locator(".pl-node[data-id]").evaluate_all("ns => ns.map(n => n.dataset.id)"))
    assert {"0/math", "1/poet", "2/math", "3/poet"} <= ids
    assert not {"0/poet", "1/math", "2/poet", "3/math"} & ids
    assert len(ids) == 4 * len(NODES)
    assert view.locator(".pl-node[data-state=done]").count() == len(ids)
    assert "4/4 items" in page.locator(".plait-progress[data-finished=true]").inner_text()
    assert page.errors == []
    shoot(page.locator(".jp-Cell").nth(3), "dynamic_batch.png")
