"""The round trip: runs exported over OTLP/HTTP to a real Arize Phoenix, read back through its API.

Phoenix runs from ``.venv-phoenix`` (see tests/_phoenix_support.py); the test
skips only when Phoenix is not installed, and CI (``PLAIT_REQUIRE_PHOENIX=1``)
turns that into a failure. Refresh the screenshot in docs/screenshots with::

    python tests/test_otel_phoenix.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from plait import ResourceConfig, execute, otel
from tests._exec_support import http_resources
from tests._phoenix_support import ROOT, phoenix_server, read_spans
from tests._sim_support import sim_server_thread
from tests.test_otel import Pipeline

PROJECT = "plait-otel-test"
SCREENSHOT = ROOT / "docs" / "screenshots" / "phoenix_trace.png"


def otlp_provider(url: str, project: str) -> TracerProvider:
    """A provider exporting to Phoenix's OTLP/HTTP endpoint, into ``project``."""
    resource = Resource.create({"service.name": "plait", "openinference.project.name": project})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
    return provider


def project_id(url: str, name: str) -> str:
    projects = httpx.get(url + "/v1/projects", timeout=10).json()["data"]
    return next(p["id"] for p in projects if p["name"] == name)


def timestamp_ns(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return round(moment.timestamp() * 1e6) * 1000  # Phoenix stores microseconds


@pytest.mark.phoenix
@pytest.mark.timeout(420)
def test_phoenix_shows_the_runs_names_nesting_tokens_and_errors(tmp_path: Path) -> None:
    rule = {"kind": "client_error", "status": 400, "match": {"user": "regex:^broken"}}
    with phoenix_server(tmp_path) as url, sim_server_thread(faults=[rule]) as sim:
        provider = otlp_provider(url, PROJECT)
        otel.instrument(provider)
        try:
            resources = http_resources(sim.url, "fast", "smart")
            good = asyncio.run(execute(Pipeline(), "fine text", resources=resources))
            bad = asyncio.run(execute(Pipeline(), "broken text", resources=resources))
        finally:
            otel.uninstrument()
            provider.shutdown()
        spans = read_spans(url, PROJECT, expected=10)

    assert (good.status, bad.status) == ("done", "failed")
    assert len(spans) == 10  # per run: the run, the writer group, three chat spans
    by_id = {s["context"]["span_id"]: s for s in spans}
    roots = {s["attributes"]["plait.status"]: s for s in spans if s["parent_id"] is None}
    assert sorted(roots) == ["done", "failed"]
    for status, result in (("done", good), ("failed", bad)):
        root = roots[status]
        trace = [s for s in spans if s["context"]["trace_id"] == root["context"]["trace_id"]]
        tree = sorted(
            (s["name"], by_id[s["parent_id"]]["name"] if s["parent_id"] else None) for s in trace
        )
        assert tree == [
            ("chat sim-fast", "writer"),
            ("chat sim-fast", "writer"),
            ("chat sim-smart", "invoke_workflow Pipeline"),
            ("invoke_workflow Pipeline", None),
            ("writer", "invoke_workflow Pipeline"),
        ]
        for span in trace:
            node = span["attributes"].get("plait.node.id")
            if node is None:
                continue
            record = result.nodes[node]
            # Phoenix read the GenAI attributes: its own token counts are plait's.
            assert span["span_kind"] == "LLM"
            assert span["attributes"]["gen_ai.usage.input_tokens"] == record.usage.input_tokens
            assert span["attributes"]["llm.token_count.prompt"] == record.usage.input_tokens
            assert span["attributes"]["llm.token_count.completion"] == record.usage.output_tokens
            assert span["attributes"]["gen_ai.provider.name"] == "openai"
            start = timestamp_ns(span["start_time"])
            end = timestamp_ns(span["end_time"])
            assert (end - start) / 1e9 == pytest.approx(record.duration, abs=5e-6)

    good_root = roots["done"]
    assert good_root["status_code"] == "UNSET"
    assert good_root["attributes"]["plait.usage.input_tokens"] == good.usage.input_tokens
    bad_root = roots["failed"]
    assert bad_root["status_code"] == "ERROR"
    assert bad_root["status_message"] == "run failed: 1 node(s) failed"
    failed = {s["attributes"].get("plait.node.id"): s for s in spans if s["status_code"] == "ERROR"}
    assert sorted(k for k in failed if k) == ["judge", "writer.draft", "writer.polish"]
    draft = failed["writer.draft"]
    assert draft["status_message"].startswith("BadRequestError: ")
    assert [e["name"] for e in draft["events"]] == ["exception"]
    assert failed["judge"]["status_message"] == "skipped: an input failed"


def screenshot(path: Path = SCREENSHOT) -> None:
    """A run with a rate-limit retry, shown in Phoenix's UI, saved as ``path`` (headless Chromium)."""
    from playwright.sync_api import sync_playwright

    from tests.browser._lab import CHROMIUM, CHROMIUM_ARGS

    faults = [
        {
            "kind": "rate_limit",
            "retry_after": 0.3,
            "attempts": "first",
            "match": {"system": "Judge."},
        }
    ]
    resources = ResourceConfig(
        {
            "fast": {
                "provider": "simulated",
                "model": "gpt-4o-mini",
                "latency": 0.3,
                "input_cost_per_million": 0.15,
                "output_cost_per_million": 0.6,
            },
            "smart": {
                "provider": "simulated",
                "model": "gpt-4o",
                "latency": 0.6,
                "faults": faults,
                "input_cost_per_million": 2.5,
                "output_cost_per_million": 10.0,
            },
        }
    )
    with (
        tempfile.TemporaryDirectory(prefix="plait-phoenix-") as workdir,
        phoenix_server(Path(workdir)) as url,
    ):
        provider = otlp_provider(url, "plait")
        otel.instrument(provider, capture_content=True)
        text = "Quarterly revenue rose 12% while costs fell 3%; churn was flat."
        asyncio.run(execute(Pipeline(), text, resources=resources))
        otel.uninstrument()
        provider.shutdown()
        spans = read_spans(url, "plait", expected=5)
        trace_id = spans[0]["context"]["trace_id"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(f"{url}/projects/{project_id(url, 'plait')}/traces/{trace_id}")
            page.get_by_text("chat gpt-4o", exact=True).first.click()
            page.get_by_text("Attributes", exact=True).first.wait_for()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(path))
            browser.close()


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else SCREENSHOT)
    sys.stdout.write(f"wrote {SCREENSHOT if len(sys.argv) == 1 else sys.argv[1]}\n")
