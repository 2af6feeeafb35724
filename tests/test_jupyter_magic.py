"""The ``%%plait`` / ``%plait`` magics, driven through IPython's test shell."""

import pytest
from _jupyter_support import (
    Fragile,
    JudgedReviews,
    final_texts,
    html_outputs,
    magics,
    one_endpoint_pipeline,
    resources,
    run_cell,
    shell,
    widget_ids,
)
from IPython.core.error import UsageError

from plait import ExecutionSettings
from plait_jupyter import BatchProgressView, GraphView
from plait_jupyter.magics import transform_plait_cells


def expected_states(result):
    return {
        nid: "cached" if r.status == "done" and (r.cached or r.restored) else r.status
        for nid, r in result.nodes.items()
    }


def test_load_ext_registers_the_line_and_cell_magic():
    ip = shell()
    assert "plait" in ip.magics_manager.magics["cell"]
    assert "plait" in ip.magics_manager.magics["line"]
    assert transform_plait_cells in ip.input_transformers_cleanup


def test_an_await_cell_runs_and_its_view_matches_the_run_result():
    cell = "%%plait --resources res\nresult = await execute(Pipeline(), 'hello')\nresult.output\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert outcome.success
    session = magics().last_cell
    (view,) = session.views
    result = shell().user_ns["result"]
    assert widget_ids(captured) == [view.model_id]
    assert outcome.result == result.output  # the body's last expression is the cell's value
    assert (
        view.node_states
        == expected_states(result)
        == {
            "text": "done",
            "summarize": "done",
            "analyze": "done",
        }
    )
    for nid, record in result.nodes.items():
        assert view.node_details[nid]["output"]["text"] == record.output.payload
        assert view.node_details[nid]["status"] == record.status
    assert view.run_info["status"] == "done"
    assert view.run_info["tokens"] == result.usage.total_tokens
    assert session.results == [result]


def test_a_sync_cell_with_run_sync_is_drawn_too():
    cell = "%%plait --resources res\nout = run_sync(Pipeline(), 'plain sync code')\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert outcome.success
    (view,) = magics().last_cell.views
    assert set(view.node_states.values()) == {"done"}
    assert view.node_details["analyze"]["output"]["text"] == shell().user_ns["out"]
    assert len(widget_ids(captured)) == 1


def test_run_cell_magic_called_directly_runs_await_code_without_the_transform():
    ip = shell()
    ip.user_ns.update(res=resources(), Pipeline=one_endpoint_pipeline)
    ip.run_cell_magic("plait", "--quiet --resources res", "direct = await run(Pipeline(), 'x')\n")
    assert ip.user_ns["direct"].startswith("[")
    assert magics().last_cell.views == []
    assert len(magics().last_cell.runs) == 1


def test_every_run_in_a_cell_gets_its_own_view_and_one_summary_row_each():
    cell = (
        "%%plait --resources res\n"
        "a = await execute(Pipeline(), 'one')\n"
        "b = await execute(Pipeline(), 'two')\n"
    )
    _, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    views = magics().last_cell.views
    assert [v.result for v in views] == [shell().user_ns["a"], shell().user_ns["b"]]
    (summary,) = [h for h in html_outputs(captured) if "plait" in h and "runs" in h]
    assert "2 runs" in summary


def test_concurrent_runs_in_one_cell_are_routed_to_their_own_views():
    cell = (
        "%%plait --resources res\n"
        "import asyncio\n"
        "x, y = await asyncio.gather(execute(Pipeline(), 'left'), execute(Other(), ['a', 'b']))\n"
    )
    outcome, _ = run_cell(
        cell, res=resources(latency=0.01), Pipeline=one_endpoint_pipeline, Other=JudgedReviews
    )
    assert outcome.success
    ns = shell().user_ns
    first, second = magics().last_cell.views
    assert first.node_states == expected_states(ns["x"])
    assert second.node_states == expected_states(ns["y"])
    assert len(second.node_states) == len(ns["y"].graph)


def test_failures_show_as_failed_and_skipped_nodes_with_the_error_in_the_summary():
    cell = "%%plait --resources res\nresult = await execute(Pipeline(), 'text')\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=Fragile)
    assert outcome.success  # execute() records failures instead of raising
    (view,) = magics().last_cell.views
    states = view.node_states
    assert states["explode"] == "failed" and states["after"] == "skipped"
    assert states["side"] == "done"
    error = view.node_details["explode"]["error"]
    assert error["type"] == "ValueError" and "cannot parse" in error["message"]
    assert "not run: its input 'explode' failed" in view.node_details["after"]["error"]["note"]
    summary = html_outputs(captured)[-1]
    assert "explode" in summary and "ValueError" in summary


def test_an_exception_in_the_body_fails_the_cell_after_drawing_what_ran():
    cell = "%%plait --resources res\nout = await run(Pipeline(), 'x')\nraise KeyError('boom')\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert isinstance(outcome.error_in_exec, KeyError)
    assert "boom" in captured.stdout
    assert set(magics().last_cell.views[0].node_states.values()) == {"done"}
    assert any("1 run" in h for h in html_outputs(captured))


def test_a_syntax_error_in_the_body_is_reported_as_a_failed_cell():
    outcome, captured = run_cell("%%plait\nx = (\n")
    assert isinstance(outcome.error_in_exec, SyntaxError)
    assert "SyntaxError" in captured.stdout


def test_resources_come_from_a_toml_file(tmp_path):
    path = tmp_path / "endpoints.toml"
    path.write_text('[endpoints.fast]\nprovider = "simulated"\n')
    cell = f"%%plait --resources {path}\nr = await execute(Pipeline(), 'toml')\n"
    outcome, _ = run_cell(cell, Pipeline=one_endpoint_pipeline)
    assert outcome.success and shell().user_ns["r"].ok


def test_an_unknown_resources_name_is_a_usage_error_naming_it():
    outcome, _ = run_cell("%%plait --resources nowhere\n1\n")
    assert isinstance(outcome.error_in_exec, UsageError)
    assert "no variable named 'nowhere'" in str(outcome.error_in_exec)


def test_without_resources_option_runs_use_their_own_or_the_active_settings():
    body = (
        "%%plait\n"
        "explicit = await execute(Pipeline(), 'own', resources=res)\n"
        "async with ExecutionSettings(resources=res):\n"
        "    inner = await execute(Pipeline(), 'ctx')\n"
    )
    outcome, _ = run_cell(
        body, Pipeline=one_endpoint_pipeline, ExecutionSettings=ExecutionSettings, res=resources()
    )
    assert outcome.success
    ns = shell().user_ns
    assert ns["explicit"].ok and ns["inner"].ok
    assert [v.result for v in magics().last_cell.views] == [ns["explicit"], ns["inner"]]


def test_quiet_shows_no_live_view_but_still_a_summary():
    cell = "%%plait --quiet --resources res\nq = await execute(Pipeline(), 'quiet')\n"
    _, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert widget_ids(captured) == []
    assert any("1 run" in h for h in html_outputs(captured))


def test_profile_shows_the_timeline_and_bubble_plots_and_review_is_accepted():
    cell = "%%plait --review --profile --resources res\np = await execute(Pipeline(), 'x')\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert outcome.success and magics().last_cell.review
    shown = final_texts(captured)
    assert shown[0] == "GraphView(3 nodes, done)" and "HTML" in shown[1]
    assert len(shown) == 4
    assert shown[2].startswith("Figure(") and "busy" in shown[3]


def test_a_batch_cell_shows_a_progress_bar_and_one_view_of_every_item():
    cell = "%%plait --resources res\nitems = await run_batch(Pipeline(), ['a', 'b', 'c', 'd'])\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert outcome.success
    session = magics().last_cell
    (progress,) = session.progress_views
    (view,) = session.views
    assert isinstance(progress, BatchProgressView) and isinstance(view, GraphView)
    assert widget_ids(captured) == [progress.model_id, view.model_id]
    assert progress.progress["done"] == 4 and progress.progress["total"] == 4
    items = shell().user_ns["items"]
    assert len(view.node_states) == 12
    for item in items:
        for nid, state in expected_states(item.result).items():
            assert view.node_states[f"{item.index}/{nid}"] == state
        output = item.result.nodes["analyze"].output.payload
        assert view.node_details[f"{item.index}/analyze"]["output"]["text"] == output


def test_line_magic_status_last_and_settings():
    run_cell(
        "%%plait --resources res\nz = await execute(Pipeline(), 'z')\n",
        res=resources(),
        Pipeline=one_endpoint_pipeline,
    )
    ip = shell()
    assert ip.run_line_magic("plait", "last") is ip.user_ns["z"]
    status = ip.run_line_magic("plait", "").data
    assert "%%plait ready" in status and "RunResult(status='done'" in status
    settings = ip.run_line_magic("plait", "settings").data
    assert "--resources NAME_OR_TOML_PATH" in settings


def test_line_magic_rejects_unknown_commands_and_cell_rejects_commands():
    with pytest.raises(UsageError, match="unknown command; use one of status, last, settings"):
        shell().run_line_magic("plait", "statsu")
    outcome, _ = run_cell("%%plait last\n1\n")
    assert "takes options only" in str(outcome.error_in_exec)


def test_the_transform_rewrites_only_plait_cells():
    assert transform_plait_cells(["%%plaitx\n", "1\n"]) == ["%%plaitx\n", "1\n"]
    assert transform_plait_cells(["x = 1\n"]) == ["x = 1\n"]
    (line,) = transform_plait_cells(["%%plait --quiet\n", "s = '''a\n", "b'''\n"])
    assert line.startswith("await get_ipython().magics_manager.registry['PlaitMagics']")
    assert "run_cell('--quiet', \"s = '''a\\nb'''\\n\")" in line


def test_the_saved_text_of_a_live_view_describes_the_finished_run():
    cell = "%%plait --resources res\nr = await execute(Pipeline(), 'saved')\n"
    outcome, captured = run_cell(cell, res=resources(), Pipeline=one_endpoint_pipeline)
    assert outcome.success
    first = captured.outputs[0]
    assert first.data["text/plain"] == "GraphView(3 nodes, running)"  # when it was shown
    assert final_texts(captured)[0] == "GraphView(3 nodes, done)"  # what a saved notebook keeps
