"""response_format as a pydantic model, dataclass or TypedDict: outputs are instances of that type."""

import subprocess
import sys
from dataclasses import dataclass
from typing import TypedDict

import pydantic
import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait.functional as F
from plait import ExecutionError, LLMInference, Module, ResourceConfig, execute, run
from plait.schema import schema_of, validate


class Finding(pydantic.BaseModel):
    severity: int
    title: str
    tags: list[str] = []


class Review(pydantic.BaseModel):
    verdict: str
    findings: list[Finding]
    note: str | None = None


@dataclass
class Score:
    label: str
    score: int


class Labelled(TypedDict):
    label: str


class Reviewer(Module):
    def __init__(self, spec):
        super().__init__()
        self.llm = LLMInference("fast", system_prompt="Review.", response_format=spec)

    def forward(self, text):
        out = self.llm(text)
        return {"whole": out, "first": out["findings"], "picked": F.select(out, "verdict")}


class Plain(Module):
    def __init__(self, spec):
        super().__init__()
        self.llm = LLMInference("fast", response_format=spec)

    def forward(self, text):
        return self.llm(text)


def test_a_pydantic_schema_is_strict_and_accepts_what_the_model_accepts():
    schema = schema_of(Review)
    assert schema["required"] == ["verdict", "findings", "note"]
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Finding"]["required"] == ["severity", "title", "tags"]
    assert "default" not in str(schema)
    data = {"verdict": "ok", "findings": [{"severity": 2, "title": "t", "tags": []}], "note": None}
    assert validate(data, schema) == []
    Review.model_validate(data)


async def test_pydantic_output_is_a_model_instance_and_traced_access_works_over_http():
    with sim_server_thread() as server:
        out = await run(Reviewer(Review), "code", resources=http_resources(server.url, "fast"))
    assert isinstance(out["whole"], Review)
    assert all(isinstance(f, Finding) for f in out["first"])
    assert out["first"] == out["whole"].findings
    assert out["picked"] == out["whole"].verdict


async def test_dataclass_output_is_an_instance_and_typed_dict_a_dict():
    resources = ResourceConfig.simulated("fast")
    score = await run(Plain(Score), "x", resources=resources)
    assert isinstance(score, Score) and isinstance(score.score, int)
    labelled = await run(Plain(Labelled), "x", resources=resources)
    assert type(labelled) is dict and isinstance(labelled["label"], str)


class Strict(pydantic.BaseModel):
    score: int

    @pydantic.field_validator("score")
    @classmethod
    def huge(cls, value: int) -> int:
        if value < 10**9:
            raise ValueError("score must be at least a billion")
        return value


async def test_a_reply_that_does_not_validate_is_retried_then_fails_with_the_message():
    with sim_server_thread() as server:
        resources = http_resources(
            server.url, "fast", max_retries=2, retry_base_delay=0.0, retry_max_delay=0.0
        )
        result = await execute(Plain(Strict), "x", resources=resources)
        sent = server.model.stats.total
    record = result.nodes["llm"]
    assert record.status == "failed"
    assert record.attempts == 3 and sent == 3
    assert "does not validate as Strict" in str(record.error)
    assert "score must be at least a billion" in str(record.error)
    with pytest.raises(ExecutionError, match="score must be at least a billion"):
        await run(Plain(Strict), "x", resources=ResourceConfig.simulated("fast", max_retries=0))


async def test_typed_outputs_survive_checkpoint_and_resume(tmp_path):
    path = tmp_path / "ck.jsonl"
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        first = await run(Plain(Review), "x", resources=resources, checkpoint=path)
        sent = server.model.stats.total
        again = await execute(Plain(Review), "x", resources=resources, checkpoint=path)
        assert server.model.stats.total == sent  # nothing re-sent
    assert again.nodes["llm"].restored
    assert isinstance(again.output, Review) and again.output == first


def test_importing_plait_and_declaring_dataclass_formats_does_not_import_pydantic():
    code = (
        "import sys, dataclasses, plait\n"
        "@dataclasses.dataclass\n"
        "class A:\n    x: int\n"
        "m = plait.LLMInference('fast', response_format=A)\n"
        "print(plait.run_sync(m, 'hi', resources=plait.ResourceConfig.simulated('fast')))\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("A(x=")
