from __future__ import annotations

import httpx
import pytest
from _client_support import (
    FakeProvider,
    anthropic_events,
    anthropic_message,
    json_reply,
    sse_reply,
)

from plait.clients import AnthropicClient, ChatRequest, ToolCall, Usage
from plait.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
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
HELLO = anthropic_message([{"type": "text", "text": "Hello there."}])


def client_for(fake: FakeProvider, **kwargs) -> AnthropicClient:
    return AnthropicClient(
        base_url="http://claude.test", endpoint="smart", transport=fake.transport, **kwargs
    )


async def test_request_body_moves_system_and_defaults_max_tokens():
    fake = FakeProvider(json_reply(HELLO))
    messages = (
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Say hello."},
    )
    await client_for(fake, api_key="sk-ant-test").complete(
        ChatRequest("claude-x", messages, temperature=0.5, options={"top_k": 5})
    )
    sent = fake.requests[0]
    assert str(sent.url) == "http://claude.test/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert fake.body == {
        "model": "claude-x",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Say hello."}],
        "system": "Be brief.\n\nBe kind.",
        "temperature": 0.5,
        "top_k": 5,
    }


async def test_tools_and_tool_history_are_translated():
    fake = FakeProvider(json_reply(HELLO))
    messages = (
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
                {
                    "id": "t2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "rain"},
        {"role": "tool", "tool_call_id": "t2", "content": "sun"},
        {"role": "user", "content": "Thanks."},
    )
    await client_for(fake).complete(
        ChatRequest("claude-x", messages, max_tokens=200, tools=(WEATHER_TOOL,))
    )
    assert fake.body["max_tokens"] == 200
    assert fake.body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "description": "Weather for a city.",
        }
    ]
    assert fake.body["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "rain"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "sun"},
            ],
        },
        {"role": "user", "content": "Thanks."},
    ]


async def test_image_parts_become_image_blocks():
    fake = FakeProvider(json_reply(HELLO))
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
        {"type": "image_url", "image_url": {"url": "https://img.test/cat.jpg"}},
    ]
    await client_for(fake).complete(
        ChatRequest("claude-x", ({"role": "user", "content": content},))
    )
    assert fake.body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://img.test/cat.jpg"}},
    ]


async def test_malformed_tool_arguments_in_history_are_a_bad_request():
    fake = FakeProvider(json_reply(HELLO))
    call = {
        "id": "t1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{oops"},
    }
    messages = (*USER, {"role": "assistant", "content": None, "tool_calls": [call]})
    with pytest.raises(
        BadRequestError, match="tool call 'get_weather' has arguments that are not JSON"
    ):
        await client_for(fake).complete(ChatRequest("claude-x", messages))
    assert fake.requests == []


async def test_plain_reply_is_parsed_with_openai_finish_reasons():
    usage = {"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 5}
    reply = anthropic_message(
        [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there."}],
        stop_reason="max_tokens",
        usage=usage,
    )
    response = await client_for(FakeProvider(json_reply(reply))).complete(
        ChatRequest("claude-x", USER)
    )
    assert response.text == "Hello there."
    assert response.model == "claude-test"
    assert response.usage == Usage(120, 5)
    assert response.finish_reason == "length"
    assert response.ttft is None


async def test_tool_use_reply_becomes_tool_calls():
    reply = anthropic_message(
        [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        stop_reason="tool_use",
    )
    response = await client_for(FakeProvider(json_reply(reply))).complete(
        ChatRequest("claude-x", USER, tools=(WEATHER_TOOL,))
    )
    assert response.text == "Let me check."
    assert response.tool_calls == (ToolCall("toolu_1", "get_weather", {"city": "Oslo"}),)
    assert response.finish_reason == "tool_calls"


async def test_response_format_is_a_forced_tool_and_its_input_is_structured():
    reply = anthropic_message(
        [{"type": "tool_use", "id": "toolu_1", "name": "Point", "input": {"x": 1, "y": 2}}],
        stop_reason="tool_use",
    )
    fake = FakeProvider(json_reply(reply))
    response = await client_for(fake).complete(ChatRequest("claude-x", USER, response_format=POINT))
    assert fake.body["tool_choice"] == {"type": "tool", "name": "Point"}
    assert fake.body["tools"] == [
        {
            "name": "Point",
            "description": "Give your answer by calling this tool with it as the input.",
            "input_schema": POINT,
        }
    ]
    assert response.structured == {"x": 1, "y": 2}
    assert response.text == '{"x":1,"y":2}'
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"


async def test_structured_input_breaking_the_schema_is_transient():
    reply = anthropic_message([{"type": "tool_use", "id": "t", "name": "Point", "input": {"x": 1}}])
    with pytest.raises(TransientError, match=r"\$: missing required keys \['y'\]"):
        await client_for(FakeProvider(json_reply(reply))).complete(
            ChatRequest("claude-x", USER, response_format=POINT)
        )


async def test_missing_response_tool_call_is_transient():
    with pytest.raises(TransientError, match="did not call the response tool 'Point'.*Hello there"):
        await client_for(FakeProvider(json_reply(HELLO))).complete(
            ChatRequest("claude-x", USER, response_format=POINT)
        )


async def test_streamed_reply_matches_plain_and_calls_on_delta_in_order():
    pieces = ["Hello", " the", "re."]
    fake = FakeProvider(sse_reply(anthropic_events([("text", pieces)])), json_reply(HELLO))
    client = client_for(fake)
    seen: list[str] = []
    streamed = await client.complete(
        ChatRequest("claude-x", USER, stream=True), on_delta=seen.append
    )
    plain = await client.complete(ChatRequest("claude-x", USER))
    assert seen == pieces
    assert streamed.text == plain.text == "Hello there."
    assert streamed.usage == plain.usage == Usage(20, 5)
    assert streamed.finish_reason == plain.finish_reason == "stop"
    assert streamed.ttft is not None


async def test_streamed_tool_use_is_assembled_from_json_deltas():
    events = anthropic_events(
        [
            ("text", ["Checking."]),
            ("tool_use", ("toolu_1", "get_weather", ['{"ci', 'ty": "Oslo"}'])),
        ],
        stop_reason="tool_use",
    )
    seen: list[str] = []
    response = await client_for(FakeProvider(sse_reply(events, chunk_size=16))).complete(
        ChatRequest("claude-x", USER, tools=(WEATHER_TOOL,), stream=True), on_delta=seen.append
    )
    assert seen == ["Checking."]
    assert response.tool_calls == (ToolCall("toolu_1", "get_weather", {"city": "Oslo"}),)
    assert response.finish_reason == "tool_calls"


async def test_streamed_structured_reply_streams_raw_json_and_text_is_canonical():
    events = anthropic_events([("tool_use", ("toolu_1", "Point", ['{"x": 1', ', "y": 2}']))])
    fake = FakeProvider(sse_reply(events))
    seen: list[str] = []
    response = await client_for(fake).complete(
        ChatRequest("claude-x", USER, response_format=POINT, stream=True), on_delta=seen.append
    )
    assert fake.body["stream"] is True
    assert seen == ['{"x": 1', ', "y": 2}']
    assert response.structured == {"x": 1, "y": 2}
    assert response.text == '{"x":1,"y":2}'


async def test_stream_without_message_stop_is_cut():
    events = anthropic_events([("text", ["Hel"])], stop=False)
    with pytest.raises(TransientError, match="stream cut.*without message_stop") as info:
        await client_for(FakeProvider(sse_reply(events))).complete(
            ChatRequest("claude-x", USER, stream=True)
        )
    assert info.value.status == 200
    assert info.value.endpoint == "smart"


async def test_stream_dropped_mid_reply_is_cut():
    events = anthropic_events([("text", ["Hel", "lo"])])[:4]
    with pytest.raises(TransientError, match="stream cut: RemoteProtocolError"):
        await client_for(
            FakeProvider(sse_reply(events, then_raise=httpx.RemoteProtocolError))
        ).complete(ChatRequest("claude-x", USER, stream=True))


async def test_overloaded_error_event_mid_stream_is_transient():
    events = [
        *anthropic_events([("text", ["Hel"])])[:3],
        (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    ]
    with pytest.raises(TransientError, match=r"server error \(mid-stream\): Overloaded"):
        await client_for(FakeProvider(sse_reply(events))).complete(
            ChatRequest("claude-x", USER, stream=True)
        )


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (529, "overloaded_error", "Overloaded", TransientError),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 200001 tokens > 199999 maximum",
            ContextLengthError,
        ),
        (400, "invalid_request_error", "max_tokens: must be positive", BadRequestError),
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            RateLimitError,
        ),
    ],
)
async def test_anthropic_error_bodies_are_mapped(status, kind, message, expected):
    body = {"type": "error", "error": {"type": kind, "message": message}}
    fake = FakeProvider(json_reply(body, status, {"retry-after": "12"}))
    with pytest.raises(expected) as info:
        await client_for(fake).complete(ChatRequest("claude-x", USER))
    assert type(info.value) is expected
    assert info.value.status == status
    assert message in str(info.value)
    if expected is RateLimitError:
        assert info.value.retry_after == 12.0


def test_repr_shows_endpoint_and_url_only():
    client = AnthropicClient(api_key="sk-ant-secret", endpoint="smart")
    assert repr(client) == "AnthropicClient(endpoint='smart', base_url='https://api.anthropic.com')"
