"""Rich HTML reprs: what they show, and that model output and user data are escaped."""

from _jupyter_support import XSS, Fragile, one_endpoint_pipeline, resources, shell

from plait import Parameter, Value, ValueKind, execute, trace
from plait.execution.events import RunFinished
from plait_jupyter.live import RunState
from plait_jupyter.reprs import graph_html, module_html, result_html, value_html
from plait_jupyter.session import summary_html

ESCAPED = "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;"


def evil_resources():
    return resources(replies=[{"match": {"system": "Summarize"}, "reply": XSS}])


def test_value_html_shows_kind_ref_payload_and_meta_escaped():
    html = value_html(Value(ValueKind.TEXT, XSS, "summarize", {"model": "<b>m</b>"}))
    assert "TEXT" in html and "ref=summarize" in html
    assert ESCAPED in html and "&lt;b&gt;m&lt;/b&gt;" in html
    assert "<img" not in html and "<b>m" not in html


def test_structured_and_error_values_are_shown_as_json_and_as_the_error():
    assert "&quot;score&quot;: 3" in value_html(Value(ValueKind.STRUCTURED, {"score": 3}))
    error = value_html(Value(ValueKind.ERROR, ValueError("bad <input>")))
    assert "ValueError: bad &lt;input&gt;" in error


def test_module_html_lists_children_and_parameters_with_descriptions():
    pipeline = one_endpoint_pipeline()
    pipeline.instructions.apply_update(XSS)
    html = module_html(pipeline)
    assert "SummarizeThenAnalyze" in html and "1 parameter" in html
    assert "<b>summarize</b> <code>LLMInference</code>" in html
    assert "analysis style" in html and ESCAPED in html and "<img" not in html


def test_graph_html_is_a_node_table():
    html = graph_html(trace(one_endpoint_pipeline(), "x"))
    assert "3 nodes" in html and "outputs: analyze" in html
    assert html.count("<tr>") == 4


async def test_result_html_escapes_model_output_and_lists_failures():
    result = await execute(one_endpoint_pipeline(), "x", resources=evil_resources())
    html = result_html(result)
    assert ESCAPED in html and "<img" not in html
    failed = result_html(await execute(Fragile(), "x", resources=resources()))
    assert "explode" in failed and "ValueError: cannot parse" in failed


async def test_cell_summary_escapes_outputs_and_failures():
    result = await execute(one_endpoint_pipeline(), "x", resources=evil_resources())
    run = RunState([result.graph], [result.nodes], run_id="run-1")
    run.apply(RunFinished(result.makespan, None, result.status, result=result))
    html = summary_html([run])
    assert "1 run" in html and "3/3 done" in html
    assert "<img" not in html


def test_reprs_are_registered_on_the_shell_for_subclasses_too():
    ip = shell()
    data, _ = ip.display_formatter.format(Value(ValueKind.TEXT, XSS))
    assert ESCAPED in data["text/html"]
    data, _ = ip.display_formatter.format(one_endpoint_pipeline())
    assert "SummarizeThenAnalyze" in data["text/html"]
    data, _ = ip.display_formatter.format(Parameter("p", description="d"))
    assert "text/html" not in data
