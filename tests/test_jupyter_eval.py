"""`EvalView` in the kernel: table state, opening rows (live and stored), errors, no secrets."""

import json

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait
from plait.errors import ConfigError
from plait.evaluation import EvalResult, EvalRow
from plait.optimization.demo import (
    DIGITS_ONLY,
    START_INSTRUCTIONS,
    TASK_RULES,
    VAL_SET,
    OrderNumberExtractor,
    order_number_check,
)
from plait_jupyter import EvalView, GraphView

KEY = "sk-test-WIDGETSECRET-0123456789"


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """Two evaluations over HTTP (before and after a prompt edit), both in a store."""
    path = tmp_path_factory.mktemp("eval") / "runs.db"
    with sim_server_thread(replies=TASK_RULES) as server:
        resources = http_resources(server.url, "task", api_key=KEY)
        module = OrderNumberExtractor()
        before = plait.evaluate_sync(
            module, VAL_SET, order_number_check, resources=resources, store=path, progress=False
        )
        module.instructions.apply_update(f"{START_INSTRUCTIONS} {DIGITS_ONLY}")
        after = plait.evaluate_sync(
            module, VAL_SET, order_number_check, resources=resources, store=path, progress=False
        )
    return before, after, path


def state_text(view):
    return json.dumps(
        [view.table.rows, view.table.info, view.table.opened, view.graph.get_state()],
        default=str,
    )


def test_a_result_table_holds_every_row_as_text_and_numbers(evaluations):
    before, _, _ = evaluations
    view = EvalView(before)
    assert view.table.info["mode"] == "result"
    assert view.table.info["score"] == before.score == 0.0
    assert view.table.info["failures"] == 6
    rows = view.table.rows
    assert [r["input"] for r in rows] == [x for x, _ in VAL_SET]
    assert rows[1]["output"] == "The order number is 0150."
    assert rows[1]["message"] == order_number_check("The order number is 0150.", "150")[1]
    assert all(r["has_run"] for r in rows)
    assert view.graph.layout.display == "none"  # nothing opened yet


def test_a_comparison_table_has_deltas_diffs_and_the_prompt_diff(evaluations):
    before, after, _ = evaluations
    view = EvalView(before.compare(after))
    info = view.table.info
    assert (info["mode"], info["improved"], info["regressed"]) == ("comparison", 3, 0)
    (prompt,) = info["prompts"]
    assert prompt["name"] == "instructions"
    assert ["insert", f" {DIGITS_ONLY}"] in prompt["diff"]
    row = view.table.rows[0]
    assert (row["score_before"], row["score_after"], row["delta"]) == (0.0, 1.0, 1.0)
    assert row["diff"] == [["delete", "The order number is "], ["equal", "2231"], ["delete", "."]]


def test_opening_a_row_shows_that_examples_run_with_the_inspector_on_it(evaluations):
    before, after, _ = evaluations
    view = EvalView(before.compare(after))
    view.handle_message({"type": "open", "row": 3, "side": "before"})
    assert view.table.opened == {"row": 3, "side": "before", "error": ""}
    assert view.graph.layout.display is None and view.graph.selected == "extract"
    request = view.graph.node_details["extract"]["request"]
    assert request["messages"][-1]["content"] == "Order 0071 is late."
    assert request["messages"][0]["content"] == START_INSTRUCTIONS
    view.handle_message({"type": "open", "row": 3, "side": "after"})
    assert view.graph.node_details["extract"]["output"]["text"] == "0071"


def test_a_reloaded_row_opens_the_same_graph_and_details_as_the_live_one(evaluations):
    before, _, path = evaluations
    stored = plait.RunStore(path).load(before.record_id)
    live_view, stored_view = GraphView(before.rows[2].result), GraphView(stored.rows[2].snapshot)
    assert stored_view.node_details == live_view.node_details
    assert stored_view.node_states == live_view.node_states
    assert stored_view.graph_data["nodes"] == live_view.graph_data["nodes"]
    assert stored_view.graph_data["edges"] == live_view.graph_data["edges"]
    assert stored_view.graph_data["title"].endswith("stored run")
    assert stored_view.whatif == {"available": False}  # a stored run cannot be re-run
    view = EvalView(stored)
    view.open_row(2)
    assert view.graph.node_details == live_view.node_details


def test_bad_clicks_are_shown_in_the_widget_and_bad_sources_refused(evaluations):
    before = evaluations[0]
    view = EvalView(before)
    view.handle_message({"type": "open", "row": 42})
    assert "no example 42" in view.table.opened["error"]
    view.handle_message({"type": "open", "row": "1; drop table"})
    assert "row must be an int" in view.table.opened["error"]
    with pytest.raises(ConfigError, match="EvalView shows an EvalResult"):
        EvalView(before.rows)


def test_no_key_reaches_the_widget_state(evaluations):
    before, after, path = evaluations
    for source in (before, before.compare(after), plait.RunStore(path).load()):
        view = EvalView(source)
        view.open_row(0)
        assert KEY not in state_text(view)


def test_the_html_reprs_escape_inputs_outputs_messages_and_prompts():
    xss = '<img src=x onerror="alert(1)">'

    def result(prompt, output, score):
        row = EvalRow(0, "k", f"in {xss}", "t", output, score, f"msg {xss}")
        return EvalResult([row], name=f"run {xss}", params={"p": prompt})

    before, after = result(f"old {xss}", f"out {xss}", 0.0), result("new", "fixed", 1.0)
    for text in (before._repr_html_(), before.compare(after)._repr_html_()):
        assert "<img" not in text and "&lt;img" in text
    assert "score <b>0.000</b>" in before._repr_html_()
    assert "(+1.000)" in before.compare(after)._repr_html_()


class Router(plait.Module):
    def __init__(self):
        super().__init__()
        self.classify = plait.LLMInference("task", system_prompt="Classify: math or poetry.")
        self.math = plait.LLMInference("task", system_prompt="You are a mathematician.")
        self.poet = plait.LLMInference("task", system_prompt="You are a poet.")

    async def forward(self, question):
        label = await self.classify(question)
        expert = self.math if label.strip() == "math" else self.poet
        return expert(question)


def test_a_stored_define_by_run_row_draws_like_the_live_one(tmp_path):
    rules = [
        {"match": {"system": "Classify", "user": "integral"}, "reply": "math"},
        {"match": {"system": "Classify"}, "reply": "poetry"},
    ]
    with sim_server_thread(replies=rules) as server:
        result = plait.evaluate_sync(
            Router(),
            [("the integral of x", "x"), ("rain", "rain")],
            lambda out, want: out == want,
            resources=http_resources(server.url, "task"),
            store=tmp_path / "runs.db",
            progress=False,
        )
    stored = plait.RunStore(tmp_path / "runs.db").load()
    for live_row, kept_row in zip(result.rows, stored.rows, strict=True):
        live, kept = GraphView(live_row.result), GraphView(kept_row.snapshot)
        assert kept.graph_data["nodes"] == live.graph_data["nodes"]
        assert kept.graph_data["edges"] == live.graph_data["edges"]
        assert kept.graph_data["recorded"] is True
        assert kept.node_details == live.node_details
    assert any(node["after"] for node in kept.graph_data["nodes"])  # the control edge is kept
