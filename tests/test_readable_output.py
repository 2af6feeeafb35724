"""What users read: op node ids, alias typos, money amounts."""

from pathlib import Path

import pytest
from _profile_support import CHROMIUM, CHROMIUM_ARGS, require_chromium

from plait import ConfigError, LLMInference, Module, ResourceConfig, execute, run, trace
from plait._format import format_money
from plait.errors import BudgetExceeded

ROOT = Path(__file__).resolve().parent.parent


class Judge(Module):
    def __init__(self, alias="fast"):
        super().__init__()
        self.judge = LLMInference(alias, response_format={"type": "object"})

    def forward(self, text):
        verdict = self.judge(text)
        return verdict["verdict"], verdict["scores"][0], verdict.get("note", ""), verdict["verdict"]


def test_op_node_ids_name_what_they_select():
    graph = trace(Judge(), "x")
    assert list(graph.nodes) == [
        "text",
        "judge",
        "select_verdict",
        "select_scores",
        "select_0",
        "select_note",
        "select_verdict_1",
    ]


async def test_a_typo_d_alias_gets_a_did_you_mean():
    with pytest.raises(ConfigError) as info:
        await run(Judge("fsat"), "x", resources=ResourceConfig.simulated("fast", "smart"))
    assert "'fsat' (used by judge) (did you mean 'fast'?)" in str(info.value)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "$0.00"),
        (1e-6, "$0.000001"),
        (0.0123, "$0.0123"),
        (0.5, "$0.50"),
        (1234.5, "$1,234.50"),
        (0.00012345, "$0.000123"),
    ],
)
def test_money_shows_enough_digits(amount, shown):
    assert format_money(amount) == shown


class Chain(Module):
    def __init__(self):
        super().__init__()
        self.first = LLMInference("fast")
        self.second = LLMInference("fast")

    def forward(self, text):
        return self.second(self.first(text))


async def test_a_tiny_budget_reads_as_itself_in_the_error_and_the_result():
    resources = ResourceConfig.simulated("fast", input_cost_per_million=0.5)
    result = await execute(Chain(), "some words here", resources=resources, max_cost=1e-6)
    assert result.status == "budget_exceeded"
    with pytest.raises(BudgetExceeded) as info:
        await run(Chain(), "some words here", resources=resources, max_cost=1e-6)
    assert "max_cost=$0.000001" in str(info.value)
    assert "$0.0000 " not in str(info.value) and "$0.0000," not in repr(result)
    assert f"cost={format_money(result.cost)}" in repr(result)


AMOUNTS = [0, 1e-6, 0.0123, 0.5, 1234.5, 0.00012345, -0.002, 3.4e-12]


@pytest.mark.browser
def test_the_widgets_show_money_as_python_does(tmp_path):
    require_chromium()
    from playwright import sync_api  # a test extra: tools/setup_tests.sh installs it

    source = (ROOT / "plait_jupyter" / "js" / "src" / "dom.js").read_text()
    page_path = tmp_path / "money.html"
    page_path.write_text("<html><body></body></html>")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            shown = page.evaluate(
                """async ([source, amounts]) => {
                    const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
                    const dom = await import(url);
                    return amounts.map((a) => dom.dollars(a));
                }""",
                [source, AMOUNTS],
            )
        finally:
            browser.close()
    assert shown == [format_money(a) for a in AMOUNTS]
