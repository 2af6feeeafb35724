from __future__ import annotations

import httpx
import pytest
from _client_support import (
    FakeProvider,
    json_reply,
    openai_chunks,
    openai_reply,
    openai_tool_call,
    sse_reply,
)

from plait.clients import ChatRequest, OpenAIClient, ToolCall, Usage
from plait.errors import (
    BadRequestError,
    ConfigError,
    ContextLengthError,
    ProviderTimeout,
    RateLimitError,
    TransientError,
)

USER = ({"role": "user", "content": "Say hello."},)
POINT = {
    "title": "Point",
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
    "required": ["x", "y"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def client_for(fake: FakeProvider, **kwargs) -> OpenAIClient:
    return OpenAIClient(
        base_url="http://llm.test/v1", endpoint="fast", transport=fake.transport, **kwargs
    )


async def test_plain_request_body_and_headers():
    fake = FakeProvider(json_reply(openai_reply()))
    client = client_for(fake, api_key="sk-test", headers={"x-team": "blue"})
    request = ChatRequest(
        "gpt-x", USER, temperature=0.2, max_tokens=50, options={"seed": 7, "top_p": 0.9}
    )
    await client.complete(request)
    sent = fake.requests[0]
    assert str(sent.url) == "http://llm.test/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-team"] == "blue"
    assert sent.headers["content-type"] == "application/json"
    assert fake.body == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0.2,
        "max_tokens": 50,
        "seed": 7,
        "top_p": 0.9,
        "stream": False,
    }


async def test_structured_streamed_request_body():
    fake = FakeProvider(sse_reply(openai_chunks(['{"x": 1, "y": 2}'])))
    request = ChatRequest("gpt-x", USER, response_format=POINT, tools=(WEATHER_TOOL,), stream=True)
    await client_for(fake).complete(request)
    assert fake.body == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Say hello."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Point", "schema": POINT, "strict": True},
        },
        "tools": [WEATHER_TOOL],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "authorization" not in fake.requests[0].headers


async def test_plain_reply_is_parsed():
    fake = FakeProvider(json_reply(openai_reply("Hello there.", usage=(12, 3))))
    response = await client_for(fake).complete(ChatRequest("gpt-x", USER))
    assert response.text == "Hello there."
    assert response.model == "gpt-test-0001"
    assert response.usage == Usage(12, 3)
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    assert response.structured is None
    assert response.ttft is None
    assert response.latency > 0


async def test_tool_call_reply_decodes_arguments():
    calls = [openai_tool_call("call_1", "get_weather", '{"city": "Oslo"}')]
    fake = FakeProvider(
        json_reply(openai_reply(None, tool_calls=calls, finish_reason="tool_calls"))
    )
    response = await client_for(fake).complete(ChatRequest("gpt-x", USER, tools=(WEATHER_TOOL,)))
    assert response.text == ""
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (ToolCall("call_1", "get_weather", {"city": "Oslo"}),)


async def test_malformed_tool_arguments_are_transient_and_name_the_tool():
    calls = [openai_tool_call("call_1", "get_weather", '{"city": "Os')]
    fake = FakeProvider(json_reply(openai_reply(None, tool_calls=calls)))
    with pytest.raises(TransientError, match="get_weather") as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER))
    assert info.value.status == 200
    assert info.value.endpoint == "fast"


async def test_structured_reply_is_parsed_and_validated():
    fake = FakeProvider(json_reply(openai_reply('{"x": 1, "y": 2}')))
    response = await client_for(fake).complete(ChatRequest("gpt-x", USER, response_format=POINT))
    assert response.structured == {"x": 1, "y": 2}
    assert response.text == '{"x": 1, "y": 2}'


async def test_structured_reply_breaking_the_schema_is_transient_with_the_path():
    fake = FakeProvider(json_reply(openai_reply('{"x": "one", "y": 2}')))
    with pytest.raises(TransientError) as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER, response_format=POINT))
    assert "$.x: expected integer, got str" in str(info.value)
    assert info.value.retryable


async def test_structured_reply_that_is_not_json_is_transient():
    fake = FakeProvider(json_reply(openai_reply("Sure! x is 1.")))
    with pytest.raises(TransientError, match="did not answer with JSON.*Sure! x is 1"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, response_format=POINT))


async def test_structured_reply_cut_at_max_tokens_says_so():
    fake = FakeProvider(json_reply(openai_reply('{"x": 1, "y"', finish_reason="length")))
    with pytest.raises(TransientError, match="cut at max_tokens; raise max_tokens"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, response_format=POINT))


async def test_streamed_reply_calls_on_delta_in_order_and_matches_plain():
    pieces = ["Hel", "lo ", "the", "re."]
    fake = FakeProvider(sse_reply(openai_chunks(pieces)), json_reply(openai_reply("Hello there.")))
    client = client_for(fake)
    seen: list[str] = []
    streamed = await client.complete(ChatRequest("gpt-x", USER, stream=True), on_delta=seen.append)
    plain = await client.complete(ChatRequest("gpt-x", USER))
    assert seen == pieces
    assert streamed.text == plain.text == "Hello there."
    assert streamed.usage == plain.usage == Usage(12, 3)
    assert streamed.finish_reason == "stop"
    assert streamed.model == "gpt-test-0001"
    assert streamed.ttft is not None
    assert streamed.latency >= streamed.ttft


async def test_stream_split_mid_line_is_reassembled():
    pieces = ["naïve ", "café ", "☕"]
    fake = FakeProvider(sse_reply(openai_chunks(pieces), chunk_size=7))
    seen: list[str] = []
    response = await client_for(fake).complete(
        ChatRequest("gpt-x", USER, stream=True), on_delta=seen.append
    )
    assert seen == pieces
    assert response.text == "naïve café ☕"


async def test_streamed_tool_calls_are_accumulated_by_index():
    base = {"object": "chat.completion.chunk", "model": "m"}

    def tool_delta(index, **fields):
        return {
            **base,
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}],
        }

    chunks = [
        tool_delta(
            0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}
        ),
        tool_delta(
            1, id="call_b", type="function", function={"name": "get_time", "arguments": '{"tz"'}
        ),
        tool_delta(0, function={"arguments": '{"city": '}),
        tool_delta(1, function={"arguments": ': "UTC"}'}),
        tool_delta(0, function={"arguments": '"Oslo"}'}),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    ]
    fake = FakeProvider(sse_reply(chunks))
    response = await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))
    assert response.tool_calls == (
        ToolCall("call_a", "get_weather", {"city": "Oslo"}),
        ToolCall("call_b", "get_time", {"tz": "UTC"}),
    )
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage()
    assert response.ttft is not None


async def test_streamed_structured_reply_is_validated():
    fake = FakeProvider(sse_reply(openai_chunks(['{"x": 3,', ' "y": 4}'])))
    response = await client_for(fake).complete(
        ChatRequest("gpt-x", USER, response_format=POINT, stream=True)
    )
    assert response.structured == {"x": 3, "y": 4}


async def test_stream_without_finish_or_done_is_cut():
    chunks = openai_chunks(["Hel", "lo"], usage=None, done=False)[:-1]
    fake = FakeProvider(sse_reply(chunks))
    with pytest.raises(TransientError, match="stream cut") as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))
    assert info.value.status == 200
    assert info.value.endpoint == "fast"


async def test_stream_with_finish_reason_but_no_done_completes():
    fake = FakeProvider(sse_reply(openai_chunks(["Hi"], usage=None, done=False)))
    response = await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))
    assert response.text == "Hi"


async def test_stream_dropped_by_the_peer_is_cut():
    fake = FakeProvider(
        sse_reply(openai_chunks(["Hel"], done=False)[:2], then_raise=httpx.ReadError)
    )
    seen: list[str] = []
    with pytest.raises(TransientError, match="stream cut: ReadError") as info:
        await client_for(fake).complete(
            ChatRequest("gpt-x", USER, stream=True), on_delta=seen.append
        )
    assert seen == ["Hel"]
    assert isinstance(info.value.__cause__, httpx.ReadError)


async def test_stream_timing_out_mid_reply_is_a_timeout():
    fake = FakeProvider(sse_reply(openai_chunks(["Hel"])[:2], then_raise=httpx.ReadTimeout))
    with pytest.raises(ProviderTimeout, match="while streaming"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))


async def test_stream_with_a_garbled_event_is_transient():
    fake = FakeProvider(sse_reply(["{not json", "[DONE]"]))
    with pytest.raises(TransientError, match="event is not JSON"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))


async def test_error_object_inside_a_stream_is_mapped_by_type():
    error = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    fake = FakeProvider(sse_reply([openai_chunks(["a"])[1], error]))
    with pytest.raises(RateLimitError, match=r"rate limited \(mid-stream\): Rate limit reached"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))


async def test_error_status_on_a_streamed_request_is_mapped():
    reply = json_reply({"error": {"message": "slow down"}}, 429, {"retry-after": "3"})
    fake = FakeProvider(reply)
    with pytest.raises(RateLimitError) as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True))
    assert info.value.retry_after == 3.0
    assert "slow down" in str(info.value)


async def test_on_delta_exceptions_propagate_unchanged():
    fake = FakeProvider(sse_reply(openai_chunks(["a", "b"])))

    def explode(chunk: str) -> None:
        raise KeyError(chunk)

    with pytest.raises(KeyError, match="a"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, stream=True), on_delta=explode)


async def test_body_that_is_not_json_is_transient():
    fake = FakeProvider(httpx.Response(200, text="<html>gateway hiccup</html>"))
    with pytest.raises(TransientError, match="not JSON.*gateway hiccup") as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER))
    assert info.value.status == 200


async def test_json_body_without_choices_is_transient():
    fake = FakeProvider(json_reply({"object": "chat.completion", "choices": []}))
    with pytest.raises(TransientError, match=r"malformed reply: expected choices\[0\]\.message"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER))


async def test_read_timeout_is_a_provider_timeout():
    fake = FakeProvider(httpx.ReadTimeout)
    with pytest.raises(ProviderTimeout, match="timed out waiting for the endpoint") as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER))
    assert info.value.status is None
    assert info.value.endpoint == "fast"
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


async def test_connection_refused_is_transient():
    fake = FakeProvider(httpx.ConnectError)
    with pytest.raises(TransientError, match="request to http://llm.test/v1 failed: ConnectError"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER))


async def test_context_length_code_is_recognised():
    body = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    fake = FakeProvider(json_reply(body, 400))
    with pytest.raises(ContextLengthError) as info:
        await client_for(fake).complete(ChatRequest("gpt-x", USER))
    assert str(info.value) == (
        "[fast] HTTP 400: prompt does not fit the model's context (shorten it or lower "
        "max_tokens): This model's maximum context length is 8192 tokens."
    )


async def test_unencodable_request_is_a_bad_request():
    fake = FakeProvider(json_reply(openai_reply()))
    with pytest.raises(BadRequestError, match="cannot be encoded as JSON"):
        await client_for(fake).complete(ChatRequest("gpt-x", USER, temperature=float("nan")))
    assert fake.requests == []


@pytest.mark.parametrize(
    "base_url", ["localhost:8000/v1", "ftp://llm.test", "http://", "http://h:port"]
)
def test_unusable_base_url_is_a_config_error(base_url):
    with pytest.raises(ConfigError, match=f"OpenAIClient: base_url '{base_url}'"):
        OpenAIClient(base_url=base_url)


async def test_context_manager_closes_the_pool():
    fake = FakeProvider(json_reply(openai_reply()))
    async with client_for(fake) as client:
        await client.complete(ChatRequest("gpt-x", USER))
    assert client._client.is_closed


async def test_base_url_query_is_kept_and_credentials_stay_out_of_the_repr():
    fake = FakeProvider(json_reply(openai_reply()))
    client = OpenAIClient(
        base_url="https://user:pw@az.test/openai/d/?api-version=2024-06", transport=fake.transport
    )
    await client.complete(ChatRequest("gpt-x", USER))
    assert fake.requests[0].url.path == "/openai/d/chat/completions"
    assert fake.requests[0].url.params["api-version"] == "2024-06"
    assert repr(client) == (
        "OpenAIClient(endpoint='https://az.test/openai/d', base_url='https://az.test/openai/d')"
    )
