"""What execute() raises (before anything runs) and what it records (everything after)."""

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

from plait import ConfigError, LLMInference, Module, ResourceConfig, execute, run_batch
from plait.errors import CheckpointError, TraceError


class TwoEndpoints(Module):
    def __init__(self):
        super().__init__()
        self.local = LLMInference("local")
        self.cloud = LLMInference("cloud")

    def forward(self, text):
        return self.cloud(self.local(text)), self.local(text + "!")


def resources_with_a_keyless_cloud(url):
    local = http_resources(url, "local")["local"]
    return ResourceConfig({"local": local, "cloud": {"provider": "openai", "model": "gpt-4o"}})


async def test_a_missing_api_key_is_raised_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with sim_server_thread(latency=0.05) as server:
        resources = resources_with_a_keyless_cloud(server.url)
        with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
            await execute(TwoEndpoints(), "x", resources=resources)
        with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
            await run_batch(TwoEndpoints(), ["a", "b"], resources=resources, progress=False)
        assert server.model.stats.total == 0


async def test_trace_and_checkpoint_problems_are_raised_before_anything_runs(tmp_path):
    class Branchy(Module):
        def __init__(self):
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, text):
            return "yes" if self.llm(text) else "no"

    with pytest.raises(TraceError):
        await execute(Branchy(), "x", resources=ResourceConfig.simulated("fast"))
    path = tmp_path / "ck.jsonl"
    await execute(
        LLMInference("fast"), "x", resources=ResourceConfig.simulated("fast"), checkpoint=path
    )
    with pytest.raises(CheckpointError):
        await execute(
            TwoEndpoints(),
            "x",
            resources=ResourceConfig.simulated("local", "cloud"),
            checkpoint=path,
        )


async def test_node_failures_after_the_start_are_recorded_not_raised():
    fault = {"kind": "server_error", "status": 503}
    with sim_server_thread(faults=[fault]) as server:
        resources = http_resources(server.url, "local", "cloud", max_retries=0)
        result = await execute(TwoEndpoints(), "x", resources=resources)
    assert result.status == "failed" and not result.ok
    assert {f.node_id for f in result.failures} >= {"local"}
