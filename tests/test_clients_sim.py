"""Both clients against the simulator over real loopback HTTP (httpx → h11 server)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
from _sim_support import sim_server

from plait.clients import AnthropicClient, ChatRequest, OpenAIClient
from plait.errors import ProviderTimeout, RateLimitError, TransientError
from plait.schema import schema_of

USER = ({"role": "system", "content": "You grade."}, {"role": "user", "content": "Rate this."})
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
            "additionalProperties": False,
        },
    },
}


@dataclasses.dataclass
class Grade:
    label: Literal["good", "bad"]
    score: float
    reasons: list[str]


def openai(server, **kwargs) -> OpenAIClient:
    return OpenAIClient(base_url=server.url + "/v1", endpoint="sim", api_key="sk-sim", **kwargs)


def anthropic(server, **kwargs) -> AnthropicClient:
    return AnthropicClient(base_url=server.url, endpoint="sim-claude", api_key="sk-sim", **kwargs)


@pytest.mark.parametrize("make", [openai, anthropic])
async def test_streamed_text_equals_plain_text(make):
    chunks: list[str] = []
    fox = "The quick brown fox jumps over the lazy dog."
    async with sim_server(replies=[fox]) as server, make(server) as client:
        plain = await client.complete(ChatRequest("sim-model", USER))
        streamed = await client.complete(
            ChatRequest("sim-model", USER, stream=True), on_delta=chunks.append
        )
    assert plain.text == "The quick brown fox jumps over the lazy dog."
    assert streamed.text == plain.text
    assert "".join(chunks) == plain.text
    assert len(chunks) > 1
    assert streamed.usage == plain.usage
    assert plain.usage.input_tokens > 0 and plain.usage.output_tokens > 0
    assert streamed.finish_reason == plain.finish_reason == "stop"
    assert streamed.ttft is not None


@pytest.mark.parametrize("make", [openai, anthropic])
@pytest.mark.parametrize("stream", [False, True])
async def test_structured_reply_is_schema_valid(make, stream):
    async with sim_server() as server, make(server) as client:
        response = await client.complete(
            ChatRequest("sim-model", USER, response_format=schema_of(Grade), stream=stream)
        )
    assert set(response.structured) == {"label", "score", "reasons"}
    assert response.structured["label"] in ("good", "bad")


@pytest.mark.parametrize("make", [openai, anthropic])
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_round_trip(make, stream):
    rule = {"match": {"tools": True}, "tool_call": {"name": "search", "arguments": {"q": "fox"}}}
    async with sim_server(replies=[rule]) as server, make(server) as client:
        response = await client.complete(
            ChatRequest("sim-model", USER, tools=(SEARCH_TOOL,), stream=stream)
        )
    assert [(call.name, call.arguments) for call in response.tool_calls] == [
        ("search", {"q": "fox"})
    ]
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("make", [openai, anthropic])
async def test_rate_limit_fault_carries_retry_after(make):
    fault = {"kind": "rate_limit", "retry_after": 2.5}
    async with sim_server(faults=[fault]) as server, make(server) as client:
        with pytest.raises(RateLimitError) as info:
            await client.complete(ChatRequest("sim-model", USER))
    assert info.value.status == 429
    assert info.value.retry_after == 2.5


@pytest.mark.parametrize("make", [openai, anthropic])
@pytest.mark.parametrize(
    ("fault", "stream", "match"),
    [
        ({"kind": "server_error", "status": 503}, False, "server error"),
        ({"kind": "malformed"}, False, "not JSON"),
        ({"kind": "connection_reset"}, False, "failed"),
        ({"kind": "cut_stream", "chunks": 2}, True, "stream cut"),
    ],
)
async def test_faults_are_transient(make, fault, stream, match):
    async with sim_server(faults=[fault]) as server, make(server) as client:
        with pytest.raises(TransientError, match=match):
            await client.complete(ChatRequest("sim-model", USER, stream=stream))


async def test_hanging_server_is_a_provider_timeout():
    hang = {"kind": "timeout", "hang": 30}
    async with sim_server(faults=[hang]) as server, openai(server, timeout=0.2) as client:
        with pytest.raises(ProviderTimeout, match="timeout=0.2s"):
            await client.complete(ChatRequest("sim-model", USER))
