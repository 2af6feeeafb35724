"""Checkpoint and resume, caching, budgets and secret hygiene, over loopback HTTP."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

from plait import (
    ExecutionSettings,
    LLMInference,
    Module,
    Parameter,
    ResourceConfig,
    execute,
    run,
    run_batch,
)
from plait.errors import BudgetExceeded, CheckpointError, ExecutionError
from plait.execution import cache as cache_module

HERE = Path(__file__).parent
# Subprocesses import plait from this checkout even when it is not installed.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
}


class Chain4(Module):
    def __init__(self):
        super().__init__()
        self.prompt = Parameter("Step three.", description="third step instructions")
        self.s1 = LLMInference("fast", system_prompt="Step one.")
        self.s2 = LLMInference("fast", system_prompt="Step two.")
        self.s3 = LLMInference("fast", system_prompt=self.prompt)
        self.s4 = LLMInference("fast", system_prompt="Step four.")

    def forward(self, text):
        return self.s4(self.s3(self.s2(self.s1(text))))


def systems(server):
    return [r.messages[0]["content"] for r in server.model.requests]


async def test_a_rerun_with_the_same_checkpoint_sends_no_requests(tmp_path):
    path = tmp_path / "run.jsonl"
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        first = await execute(Chain4(), "text", resources=resources, checkpoint=path)
        assert server.model.stats.total == 4
        second = await execute(Chain4(), "text", resources=resources, checkpoint=path)
        assert server.model.stats.total == 4
    assert second.output == first.output
    assert all(r.restored for r in second.nodes.values() if r.kind == "llm")
    assert [
        e.restored for e in second.events if e.type == "node_completed" and e.node_id == "s4"
    ] == [True]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "plait-checkpoint/1"
    assert [json.loads(line)["node"] for line in lines[1:]] == ["s1", "s2", "s3", "s4"]


async def test_resume_after_a_failure_runs_only_what_did_not_complete(tmp_path):
    path = tmp_path / "run.jsonl"
    fault = {"kind": "client_error", "status": 400, "match": {"system": "Step three."}}
    with sim_server_thread(faults=[fault]) as broken, pytest.raises(ExecutionError) as err:
        await run(Chain4(), "text", resources=http_resources(broken.url, "fast"), checkpoint=path)
    assert err.value.partial.nodes["s2"].status == "done"
    with sim_server_thread() as healthy:
        out = await run(
            Chain4(), "text", resources=http_resources(healthy.url, "fast"), checkpoint=path
        )
        assert systems(healthy) == ["Step three.", "Step four."]
    with sim_server_thread() as fresh:
        assert await run(Chain4(), "text", resources=http_resources(fresh.url, "fast")) == out


async def test_a_checkpoint_from_another_pipeline_is_refused(tmp_path):
    path = tmp_path / "run.jsonl"
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        await run(Chain4(), "text", resources=resources, checkpoint=path)
        changed = Chain4()
        changed.prompt.apply_update("A different third step.")
        with pytest.raises(
            CheckpointError, match=r"written by a different pipeline.*Use a new checkpoint path"
        ):
            await run(changed, "text", resources=resources, checkpoint=path)


async def test_a_half_written_last_line_is_ignored(tmp_path):
    path = tmp_path / "run.jsonl"
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        await run(Chain4(), "text", resources=resources, checkpoint=path)
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
        await run(Chain4(), "text", resources=resources, checkpoint=path)
        assert systems(server)[4:] == ["Step four."]
    assert all(
        json.loads(line)
        for line in path.read_text().splitlines()
        if line.strip() and line.endswith("}")
    )


async def test_a_damaged_checkpoint_is_refused_with_the_line_number(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"format": "plait-checkpoint/1", "graph": "x"}\nnot json\n{"a": 1}\n')
    with pytest.raises(CheckpointError, match="line 2 is not JSON"):
        await run(Chain4(), "t", resources=ResourceConfig.simulated("fast"), checkpoint=path)


def test_a_process_killed_mid_batch_resumes_without_repeating_completed_calls(tmp_path):
    path = tmp_path / "batch.jsonl"
    worker = [sys.executable, str(HERE / "_crash_worker.py")]
    with sim_server_thread(latency=0.05) as server:
        proc = subprocess.Popen(
            [*worker, server.url, str(path), "40"], stdout=subprocess.PIPE, text=True, env=ENV
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_text().count('"node"') >= 20:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        completed = [
            json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")
        ]
        completed = [r for r in completed if "node" in r]
        assert 20 <= len(completed) < 80, "the worker should have been killed mid-run"
        done_before = {(r["node"], r["inputs"]) for r in completed}
        seen_before = server.model.stats.total

        resumed = subprocess.run(
            [*worker, server.url, str(path), "40"],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert resumed.stdout.strip() == "done 40", resumed.stderr
        requests = server.model.requests

    later = requests[seen_before:]
    assert len(later) <= 80 - len(completed) + 4  # at most the 4 calls in flight at the kill repeat
    bodies = [json.dumps(r.body, sort_keys=True) for r in requests]
    assert len(bodies) - len(set(bodies)) <= 4
    records = [json.loads(line) for line in path.read_text().splitlines() if '"node"' in line]
    keys = [(r["node"], r["inputs"]) for r in records]
    assert len(keys) == len(set(keys)) == 80
    assert done_before <= set(keys)


async def test_cache_is_off_by_default():
    resources = ResourceConfig.simulated("fast")
    async with ExecutionSettings(resources=resources) as settings:
        await run(Chain4(), "t")
        await run(Chain4(), "t")
        assert settings.manager().simulator("fast").stats.total == 8


async def test_cache_true_reuses_identical_requests_at_no_cost(monkeypatch):
    monkeypatch.setattr(cache_module, "_MEMORY", cache_module.ResponseCache())
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", input_cost_per_million=1e6)
        first = await execute(Chain4(), "t", resources=resources, cache=True)
        second = await execute(Chain4(), "t", resources=resources, cache=True)
        assert server.model.stats.total == 4
    assert second.output == first.output
    assert first.cost > 0 and second.cost == 0 and second.usage.total_tokens == 0
    assert all(r.cached for r in second.nodes.values() if r.kind == "llm")
    assert [
        e.cached for e in second.events if e.type == "node_completed" and e.node_id == "s1"
    ] == [True]


async def test_a_cache_directory_persists_responses_across_processes(tmp_path):
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", cache=str(tmp_path / "cache"))
        await run(Chain4(), "t", resources=resources)
        script = (
            "import asyncio, plait, sys; sys.path.insert(0, %r);"
            "from test_reliability import Chain4; from _exec_support import http_resources;"
            "print(asyncio.run(plait.run(Chain4(), 't', resources=http_resources(%r, 'fast', cache=%r))))"
        ) % (str(HERE), server.url, str(tmp_path / "cache"))
        other = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=ENV
        )
        assert other.returncode == 0, other.stderr
        assert server.model.stats.total == 4


async def test_a_token_budget_stops_the_run_cleanly_and_keeps_completed_work():
    resources = ResourceConfig.simulated("fast")
    with pytest.raises(BudgetExceeded) as err:
        await run(Chain4(), "some text to process", resources=resources, max_tokens=30)
    message = str(err.value)
    assert "budget exhausted" in message and "max_tokens=30" in message
    partial = err.value.partial
    statuses = {k: r.status for k, r in partial.nodes.items()}
    assert statuses["s1"] == "done" and "cancelled" in statuses.values()
    assert partial.status == "budget_exceeded"
    assert isinstance(err.value, ExecutionError)


async def test_a_cost_budget_stops_a_batch_before_all_items_run():
    resources = ResourceConfig(
        {"fast": {"provider": "simulated", "input_cost_per_million": 1e6, "max_concurrent": 1}}
    )
    items = await run_batch(
        Chain4(),
        [f"item {i}" for i in range(10)],
        resources=resources,
        max_cost=120,
        progress=False,
    )
    ok = [i for i in items if i.ok]
    stopped = [i for i in items if not i.ok]
    assert ok and stopped
    assert all(isinstance(i.error, BudgetExceeded) for i in stopped)
    spent = sum(i.result.cost for i in items)
    assert 120 <= spent < 120 + 40  # one call in flight (max_concurrent=1) may overshoot


async def test_the_api_key_appears_in_no_artefact_of_a_run(tmp_path):
    key = "sk-test-SUPERSECRET-0123456789"
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", api_key=key, cache=str(tmp_path / "cache"))
        result = await execute(Chain4(), "t", resources=resources, checkpoint=tmp_path / "ck.jsonl")
        auth = [r for r in server.model.requests]
    artefacts = [
        repr(result),
        repr(resources),
        str(resources.to_dict()),
        repr(resources["fast"]),
        result.graph.to_json(),
        repr([vars(r) if hasattr(r, "__dict__") else r for r in result.nodes.values()]),
        repr(result.events),
        result.to_dataframe().to_csv(),
        *(p.read_text() for p in tmp_path.rglob("*") if p.is_file()),
    ]
    for text in artefacts:
        assert key not in text
    assert auth  # the server did get the requests


async def test_a_failing_endpoint_error_does_not_reveal_the_key():
    key = "sk-test-ANOTHERSECRET-987654"
    fault = {"kind": "client_error", "status": 401}
    with sim_server_thread(faults=[fault]) as server, pytest.raises(ExecutionError) as err:
        await run(Chain4(), "t", resources=http_resources(server.url, "fast", api_key=key))
    assert key not in str(err.value) and key not in repr(err.value.failures)
    assert "401" in str(err.value)


async def test_keyboard_interrupt_style_cancellation_keeps_the_checkpoint_consistent(tmp_path):
    path = tmp_path / "run.jsonl"
    with sim_server_thread(latency=0.2) as server:
        resources = http_resources(server.url, "fast")
        task = asyncio.create_task(
            run_batch(
                Chain4(),
                [f"i{i}" for i in range(6)],
                resources=resources,
                checkpoint=path,
                progress=False,
            )
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        items = await run_batch(
            Chain4(),
            [f"i{i}" for i in range(6)],
            resources=resources,
            checkpoint=path,
            progress=False,
        )
    assert all(i.ok for i in items)
    records = [json.loads(line) for line in path.read_text().splitlines() if '"node"' in line]
    assert len(records) == len({(r["node"], r["inputs"]) for r in records}) == 24
