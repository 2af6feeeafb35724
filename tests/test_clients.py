"""What both clients share: error mapping, Retry-After, SSE parsing, secret hygiene."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from _client_support import FakeProvider, json_reply, sse_reply

import plait.clients
from plait.clients import AnthropicClient, ChatRequest, OpenAIClient
from plait.clients._http import iter_sse, parse_retry_after
from plait.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    TransientError,
)

USER = ({"role": "user", "content": "hi"},)
KEY = "sk-live-SECRET-4f9a"


def test_public_names():
    assert plait.clients.__all__ == [
        "AnthropicClient",
        "ChatClient",
        "ChatRequest",
        "ChatResponse",
        "DeltaCallback",
        "Message",
        "OpenAIClient",
        "ToolCall",
        "Usage",
    ]


@pytest.mark.parametrize(
    ("status", "body", "expected", "text"),
    [
        (
            400,
            {"error": {"message": "messages: bad role"}},
            BadRequestError,
            "request rejected: messages: bad role",
        ),
        (
            404,
            {"error": {"message": "model 'gpt-9' not found"}},
            BadRequestError,
            "model 'gpt-9' not found",
        ),
        (
            413,
            {"type": "error", "error": {"type": "request_too_large", "message": "too big"}},
            BadRequestError,
            "too big",
        ),
        (
            422,
            {"object": "error", "message": "temperature must be <= 2"},
            BadRequestError,
            "temperature must be <= 2",
        ),
        (
            400,
            {"error": {"message": "prompt is too long: 210000 tokens > 200000 maximum"}},
            ContextLengthError,
            "prompt is too long",
        ),
        (400, {"error": "context window exceeded"}, ContextLengthError, "context window exceeded"),
        (
            401,
            {"error": {"message": "Incorrect API key provided"}},
            AuthenticationError,
            "check the endpoint's api_key",
        ),
        (
            403,
            {"error": {"message": "no access to model"}},
            AuthenticationError,
            "no access to model",
        ),
        (
            408,
            {"error": {"message": "request timeout"}},
            TransientError,
            "server error: request timeout",
        ),
        (409, {"error": {"message": "conflict"}}, TransientError, "conflict"),
        (
            429,
            {"error": {"message": "Rate limit reached"}},
            RateLimitError,
            "rate limited: Rate limit reached",
        ),
        (
            429,
            {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}},
            ProviderError,
            "exceeded your current quota",
        ),
        (500, {"error": {"message": "internal"}}, TransientError, "server error: internal"),
        (502, "<html>Bad Gateway</html>", TransientError, "<html>Bad Gateway</html>"),
        (503, "", TransientError, "Service Unavailable"),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            TransientError,
            "Overloaded",
        ),
        (
            402,
            {"error": {"message": "payment required"}},
            ProviderError,
            "unexpected response: payment required",
        ),
    ],
)
async def test_status_is_mapped_to_the_error_tree(status, body, expected, text):
    reply = (
        json_reply(body, status) if isinstance(body, dict) else httpx.Response(status, text=body)
    )
    client = OpenAIClient(
        base_url="http://llm.test/v1", endpoint="fast", transport=FakeProvider(reply).transport
    )
    with pytest.raises(ProviderError) as info:
        await client.complete(ChatRequest("m", USER))
    assert type(info.value) is expected
    assert info.value.status == status
    assert info.value.endpoint == "fast"
    assert text in str(info.value)
    assert str(info.value).startswith(f"[fast] HTTP {status}: ")


def test_retryable_flags():
    assert [cls.retryable for cls in (RateLimitError, TransientError, ProviderTimeout)] == [
        True
    ] * 3
    assert [
        cls.retryable for cls in (AuthenticationError, BadRequestError, ContextLengthError)
    ] == [False] * 3


async def test_redirect_says_to_fix_base_url():
    reply = httpx.Response(301, headers={"location": "https://llm.test/v1/chat/completions"})
    client = OpenAIClient(base_url="http://llm.test/v1", transport=FakeProvider(reply).transport)
    with pytest.raises(
        ProviderError, match="redirected to https://llm.test/v1/chat/completions; set base_url"
    ):
        await client.complete(ChatRequest("m", USER))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-3"}, 0.0),
        (
            {
                "retry-after": "Wed, 21 Oct 2026 07:28:30 GMT",
                "date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            30.0,
        ),
        (
            {
                "retry-after": "Wed, 21 Oct 2026 07:27:00 GMT",
                "date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            0.0,
        ),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, seconds):
    assert parse_retry_after(httpx.Headers(headers)) == seconds


def test_retry_after_http_date_without_date_header_uses_now():
    headers = httpx.Headers({"retry-after": "Wed, 21 Oct 2026 07:28:45 GMT"})
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(headers, now=now) == 45.0


async def test_rate_limit_carries_retry_after_from_ms_header():
    reply = json_reply({"error": {"message": "slow down"}}, 429, {"retry-after-ms": "1500"})
    client = OpenAIClient(
        base_url="http://llm.test/v1", endpoint="fast", transport=FakeProvider(reply).transport
    )
    with pytest.raises(RateLimitError) as info:
        await client.complete(ChatRequest("m", USER))
    assert info.value.retry_after == 1.5
    assert str(info.value) == "[fast] HTTP 429: rate limited: slow down (retry after 1.5s)"


async def lines_of(*lines: str):
    for line in lines:
        yield line


async def test_iter_sse_follows_the_event_stream_rules():
    lines = lines_of(
        ": keep-alive comment",
        "event: message_start",
        'data: {"a": 1}',
        "",
        "data:no-space",
        "data:  two spaces",
        "id: 7",
        "retry: 100",
        "",
        "",
        "event: ignored-without-data",
        "",
        "data: [DONE]",
    )
    events = [event async for event in iter_sse(lines)]
    assert events == [
        ("message_start", '{"a": 1}'),
        ("message", "no-space\n two spaces"),
        ("message", "[DONE]"),
    ]


def erroring(kind: str):
    """Replies that each fail one way, every one echoing the API key back in its text."""
    echo = f"key {KEY} is not valid"
    return {
        "401": json_reply({"error": {"message": echo}}, 401),
        "429": json_reply({"error": {"message": echo}}, 429, {"retry-after": "1"}),
        "500": httpx.Response(500, text=echo),
        "400": json_reply(
            {"type": "error", "error": {"type": "invalid_request_error", "message": echo}}, 400
        ),
        "not-json": httpx.Response(200, text=echo),
        "stream-error": sse_reply(
            [{"type": "error", "error": {"type": "api_error", "message": echo}}]
        ),
        "timeout": httpx.ReadTimeout,
        "connect": httpx.ConnectError,
    }[kind]


@pytest.mark.parametrize("client_class", [OpenAIClient, AnthropicClient])
@pytest.mark.parametrize(
    "kind", ["401", "429", "500", "400", "not-json", "stream-error", "timeout", "connect"]
)
async def test_api_key_never_appears_in_errors_or_reprs(client_class, kind):
    fake = FakeProvider(erroring(kind))
    client = client_class(base_url="http://llm.test", api_key=KEY, transport=fake.transport)
    with pytest.raises(ProviderError) as info:
        await client.complete(ChatRequest("m", USER, stream=kind == "stream-error"))
    error = info.value
    visible = [str(error), repr(error), *map(str, error.args), repr(vars(error)), repr(client)]
    assert not [text for text in visible if KEY in text]
    assert KEY in str(fake.requests[0].headers.raw)  # it was sent, only in a header
    assert KEY.encode() not in fake.requests[0].content
