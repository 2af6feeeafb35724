"""F.chat_complete: the atomic transport op, one LLM node whose output is a RESPONSE."""

from dataclasses import dataclass

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait.functional as F
from plait import (
    ConfigError,
    ExecutionError,
    LLMInference,
    Module,
    NodeKind,
    ValueKind,
    execute,
    run,
    trace,
)


@dataclass
class Label:
    label: str


class Transport(Module):
    def __init__(self):
        super().__init__()
        self.summarize = LLMInference("fast", system_prompt="Summarize.")

    def forward(self, text):
        summary = self.summarize(text)
        reply = F.chat_complete(
            "smart",
            [
                {"role": "system", "content": "Label it."},
                {"role": "user", "content": f"Text: {summary}"},
            ],
            temperature=0.0,
        )
        typed = F.chat_complete("smart", f"Label {text}", response_format=Label)
        return {
            "text": F.extract_text(reply),
            "tokens": F.extract_meta(reply, "total_tokens"),
            "model": F.extract_meta(reply, "model"),
            "label": F.select(typed, "structured.label"),
            "typed": typed,
        }


def test_chat_complete_records_one_llm_node_downstream_of_its_inputs():
    graph = trace(Transport(), "x")
    node = graph.nodes["chat_complete"]
    assert node.kind is NodeKind.LLM and node.alias == "smart"
    assert node.dependencies == ("summarize",)
    assert graph.nodes["chat_complete_1"].kind is NodeKind.LLM
    assert graph.nodes["extract_text"].dependencies == ("chat_complete",)


async def test_chat_complete_runs_over_http_and_returns_the_whole_reply():
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", "smart")
        result = await execute(Transport(), "the text", resources=resources)
        sent = [r for r in server.model.requests if r.model == "sim-smart"]
    assert result.ok
    out = result.output
    reply = result.values["typed"]
    assert reply.kind is ValueKind.RESPONSE
    assert isinstance(out["typed"]["structured"], Label)
    assert out["label"] == out["typed"]["structured"].label
    assert out["model"] == "sim-smart" and out["tokens"] > 0
    summary = result.nodes["summarize"].output.payload
    request = result.nodes["chat_complete"].request
    assert request.messages[-1]["content"] == f"Text: {summary}"
    assert request.temperature == 0.0
    assert len(sent) == 2


async def test_chat_complete_replies_like_the_same_call_through_llm_inference(tmp_path):
    messages = [{"role": "system", "content": "Label it."}, {"role": "user", "content": "abc"}]

    class One(Module):
        def forward(self, text):
            return F.extract_text(F.chat_complete("smart", messages))

    with sim_server_thread() as server:
        resources = http_resources(server.url, "smart")
        text = await run(One(), "x", resources=resources, checkpoint=tmp_path / "ck.jsonl")
        same = await run(
            LLMInference("smart", system_prompt="Label it."), "abc", resources=resources
        )
        sent = server.model.stats.total
        again = await execute(One(), "x", resources=resources, checkpoint=tmp_path / "ck.jsonl")
        assert server.model.stats.total == sent
    assert text == same
    assert again.nodes["chat_complete"].restored and again.output == text


def test_chat_complete_outside_a_run_says_how_to_run_it():
    with pytest.raises(ExecutionError, match="outside a plait run"):
        F.chat_complete("fast", "hi")


def test_bad_settings_are_config_errors_at_the_call():
    with pytest.raises(ConfigError, match="temperature must be a number from 0 to 2"):
        F.chat_complete("fast", "hi", temperature=9)
