"""The evaluation table in a real JupyterLab: sort, filter, and a row click opens the example's graph.

Two evaluations of `OrderNumberExtractor` on the simulator (before and
after a prompt edit) go into a run store; the notebook shows their
comparison (live results) and the first one reloaded from the store. The
test sorts and filters the comparison, clicks a row and checks that the
graph below draws that example's run with the inspector on the LLM node
showing that example's prompt; then does the same on the reloaded table.
Outputs hold markup, drawn as text. ``PLAIT_SCREENSHOTS=<dir>`` saves
``eval_compare.png`` and ``eval_stored.png`` there.
"""

from __future__ import annotations

import textwrap

import pytest
from _lab import open_and_run
from test_jupyter_browser import XSS, shoot

pytestmark = pytest.mark.browser

SETUP = textwrap.dedent(
    f"""\
    import tempfile, pathlib
    import plait
    from plait_jupyter import EvalView
    from plait.optimization.demo import VAL_SET, DIGITS_ONLY, OrderNumberExtractor, demo_resources

    def check(output, target):  # what it says holds markup: it must be drawn as text
        ok = output == target
        return ok, ("correct" if ok else f"expected {{target}} " + {XSS!r})

    store = plait.RunStore(pathlib.Path(tempfile.mkdtemp()) / "runs.db")
    resources = demo_resources()
    module = OrderNumberExtractor()
    before = await plait.evaluate(module, VAL_SET, check, resources=resources, store=store, progress=False)
    module.instructions.apply_update(module.instructions.value + " " + DIGITS_ONLY)
    after = await plait.evaluate(module, VAL_SET, check, resources=resources, store=store, progress=False)
    """
)
COMPARE = "compare_view = EvalView(before.compare(after))\ncompare_view"
STORED = "stored_view = EvalView(plait.RunStore(store.path).load(1))\nstored_view"
ROWS = """(i) => [...document.querySelectorAll('.plait-eval')[i].querySelectorAll('tbody tr')]
  .map((tr) => tr.dataset.index)"""


def _prompt(page, graph):
    """The user message the inspector of ``graph`` shows."""
    inspector = graph.locator(".pl-inspector")
    inspector.wait_for(state="visible", timeout=30_000)
    section = inspector.locator("details", has=page.locator("summary", has_text="Prompt sent"))
    if section.get_attribute("open") is None:
        section.locator("summary").click()
    return section.inner_text()


def test_a_row_click_opens_that_examples_graph(lab, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    lab.write_notebook("evaluate.ipynb", [SETUP, COMPARE, STORED])
    open_and_run(page, lab, "evaluate.ipynb")
    tables = page.locator(".plait-eval")
    tables.nth(1).wait_for(timeout=90_000)
    compare = tables.nth(0)

    head = compare.locator(".pl-head").inner_text()
    assert "score 0.000 → 0.500" in head and "+0.50" in head
    assert compare.locator(".pl-prompts ins").inner_text() == " Reply with the digits only."
    assert compare.locator("tbody tr").count() == 6

    compare.locator("th[data-key=delta]").click()
    compare.locator("th[data-key=delta]").click()  # descending: improved examples first
    order = page.evaluate(ROWS, 0)
    assert order[:3] == ["0", "2", "4"] and sorted(order[3:]) == ["1", "3", "5"]
    compare.locator(".pl-search").fill("0150")
    assert page.evaluate(ROWS, 0) == ["1"]
    compare.locator(".pl-search").fill("")
    compare.locator("input[data-role=failures-only]").check()
    assert sorted(page.evaluate(ROWS, 0)) == ["1", "3", "5"]

    # click the row of "Order 0150 came in the wrong size." (example 1): its graph opens below
    compare.locator("tbody tr[data-index='1']").click()
    graph = page.locator(".plait-graph").nth(0)
    graph.locator(".pl-node[data-id=extract]").wait_for(timeout=30_000)
    assert compare.locator("tbody tr[data-index='1'][data-selected=true]").count() == 1
    assert graph.locator(".pl-legend").inner_text().split()[-1] == "0"  # "cancelled 0", no "null"
    assert "0150" in graph.locator(".pl-inspector").inner_text()  # the output, after the edit
    text = _prompt(page, graph)
    assert "Order 0150 came in the wrong size." in text and DIGITS_ONLY_TEXT in text
    # the before side of the same example: the prompt without the edit
    compare.locator("tbody tr[data-index='1'] button[data-side=before]").click()
    page.wait_for_function(
        """() => {
          const text = document.querySelectorAll('.plait-graph')[0].querySelector('.pl-inspector').innerText;
          return text.includes('The order number is 0150.');
        }""",
        timeout=30_000,
    )
    assert DIGITS_ONLY_TEXT not in _prompt(page, graph)
    assert XSS in compare.inner_text() or XSS in tables.nth(1).inner_text()
    shoot(page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea"), "eval_compare.png")

    stored = tables.nth(1)
    assert "#1" in stored.locator(".pl-head").inner_text()
    assert "score 0.000" in stored.locator(".pl-head").inner_text()
    stored.locator("tbody tr[data-index='3']").click()
    stored_graph = page.locator(".plait-graph").nth(1)
    stored_graph.locator(".pl-node[data-id=extract]").wait_for(timeout=30_000)
    assert "stored run" in stored_graph.inner_text()
    assert "Order 0071 is late." in _prompt(page, stored_graph)
    assert XSS in stored.inner_text()  # the metric's message, as text
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator(".plait-eval img").count() == 0
    shoot(page.locator(".jp-Cell").nth(2).locator(".jp-OutputArea"), "eval_stored.png")
    page.close()


DIGITS_ONLY_TEXT = "Reply with the digits only."
