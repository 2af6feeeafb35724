"""The optimizer review round trip in a real JupyterLab: review, apply, and the kernel sees it.

A ``%%plait --review`` cell runs a training step on the simulator (two
`OrderNumberExtractor`s, so two proposals); the test accepts one proposal,
edits the other in place, clicks Apply, then runs a cell that prints the
parameters and reads its output. ``PLAIT_SCREENSHOTS=<dir>`` saves
``review.png`` there.
"""

from __future__ import annotations

import textwrap

import pytest
from _lab import open_and_run
from test_jupyter_browser import XSS, shoot

pytestmark = pytest.mark.browser

START = "Find the order number in the customer's message."
PROPOSED = f"{START} Reply with the digits only."
EDITED = "Reply with the order number only: digits, no leading zeros."
SETUP = textwrap.dedent(
    f"""\
    %load_ext plait_jupyter
    from plait import *
    from plait.optimization import Optimizer, VerifierLoss
    from plait.optimization.demo import TRAIN_SET, OrderNumberExtractor, demo_resources, order_number_check

    class Pair(Module):
        def __init__(self):
            super().__init__()
            self.first = OrderNumberExtractor()
            self.second = OrderNumberExtractor()

        def forward(self, message):
            return self.first(message), self.second(message)

    def check(output, target):  # the verifier, with markup in what it says
        ok, message = order_number_check(output, target)
        return ok, message + " " + {XSS!r}

    resources = demo_resources()
    pair = Pair()
    optimizer = Optimizer(pair)
    loss = VerifierLoss(check)
    texts, targets = [m for m, _ in TRAIN_SET[:2]], [t for _, t in TRAIN_SET[:2]]
    """
)
TRAIN_STEP = textwrap.dedent(
    """\
    %%plait --review --quiet --resources resources
    pair.train()
    for extractor in (pair.first, pair.second):
        items = await run_batch(extractor, texts)
        await (await loss(items, targets)).backward()
    proposals = await optimizer.propose()
    """
)
CHECK = 'print("first:", pair.first.instructions.value)\nprint("second:", pair.second.instructions.value)'
RERUN_CHECK = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = 2;
  await window.jupyterapp.commands.execute('notebook:run-cell');
}"""
CHECK_SAYS = """(text) => {
  const cell = document.querySelectorAll('.jp-Cell')[2];
  return Boolean(cell) && cell.querySelector('.jp-OutputArea').innerText.includes(text);
}"""


def test_accept_edit_apply_in_the_widget_changes_the_parameters_in_the_kernel(lab, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 1500})
    lab.write_notebook("review.ipynb", [SETUP, TRAIN_STEP, CHECK])
    open_and_run(page, lab, "review.ipynb")
    review = page.locator(".plait-review")
    first = review.locator(".pl-card[data-key='1:first.instructions']")
    second = review.locator(".pl-card[data-key='1:second.instructions']")
    second.wait_for(timeout=60_000)
    page.wait_for_function(CHECK_SAYS, arg=f"second: {START}", timeout=30_000)
    assert review.locator(".pl-card").count() == 2
    assert first.locator(".pl-diff ins").inner_text() == " Reply with the digits only."

    first.locator(".pl-accept").click()
    page.wait_for_selector(".pl-card[data-key='1:first.instructions'][data-status=accepted]")
    second.locator(".pl-edit-btn").click()
    editor = second.locator("textarea.pl-edit")
    assert editor.input_value() == PROPOSED  # prefilled with the proposed value
    editor.press("Control+a")
    page.keyboard.type(EDITED)
    second.locator(".pl-save").click()
    page.wait_for_selector(".pl-card[data-key='1:second.instructions'][data-status=edited]")
    inserted = "".join(second.locator(".pl-diff ins").all_inner_texts())
    assert inserted.startswith("Reply with") and inserted.endswith("no leading zeros")
    assert second.locator(".pl-proposed").count() == 1  # the model's proposal, folded

    feedback = first.locator(".pl-feedback")
    feedback.locator("summary").click()
    assert XSS in feedback.locator(".pl-text").first.inner_text()  # shown as text
    assert page.evaluate("() => window.__pwned") is None
    assert review.locator("img").count() == 0
    shoot(review, "review.png")

    review.locator(".pl-apply").click()
    message = review.locator(".pl-message[data-kind=applied]")
    message.wait_for()
    assert message.inner_text().startswith("Applied 2 changes: first.instructions (accepted")
    assert review.locator(".pl-card[data-status=applied]").count() == 2

    page.evaluate(RERUN_CHECK)
    page.wait_for_function(CHECK_SAYS, arg=EDITED, timeout=30_000)
    output = page.locator(".jp-Cell").nth(2).locator(".jp-OutputArea").inner_text()
    assert output.strip() == f"first: {PROPOSED}\nsecond: {EDITED}"
    review.locator(".pl-history summary").click()
    assert "2 changes applied in 1 step" in review.locator(".pl-history").inner_text()
    shoot(review, "review_applied.png")
    page.close()
