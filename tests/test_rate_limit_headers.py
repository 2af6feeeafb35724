"""Reading a provider's rate-limit headers: OpenAI's durations, Anthropic's times, over HTTP."""

import asyncio

import httpx
import pytest
from _sim_support import sim_server

from plait.clients import OpenAIClient
from plait.clients._ratelimit import (
    Quota,
    RateLimitHeaders,
    parse_duration,
    parse_rate_limit_headers,
)
from plait.clients.base import ChatRequest


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1.5s", 1.5), ("1h2m3s", 3723.0), ("7", 7.0)],
)
def test_durations_in_openais_format(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "1x", "-3", "", "1s garbage"])
def test_unreadable_durations_are_none(text):
    assert parse_duration(text) is None


def test_openai_headers_give_both_quotas_and_say_when_one_is_used_up():
    headers = httpx.Headers(
        {
            "X-RateLimit-Limit-Requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "400ms",
        }
    )
    found = parse_rate_limit_headers(headers)
    assert found == RateLimitHeaders(Quota(0, 60, 1.0), Quota(149000, 150000, 0.4))
    assert found.exhausted
    assert found.requests.refill_time() == pytest.approx(1 / 60)


def test_anthropic_headers_reset_at_a_time_measured_from_the_response_date():
    headers = httpx.Headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:02Z",
            "date": "Tue, 01 Jan 2030 00:00:00 GMT",
        }
    )
    found = parse_rate_limit_headers(headers)
    assert found == RateLimitHeaders(Quota(49, 50, 2.0), None)
    assert not found.exhausted


def test_responses_without_rate_limit_headers_give_none():
    assert parse_rate_limit_headers(httpx.Headers({"content-type": "application/json"})) is None
    assert parse_rate_limit_headers(httpx.Headers({"x-ratelimit-remaining-requests": "x"})) == (
        RateLimitHeaders(None, None)
    )


def test_the_client_reports_each_responses_headers_refusals_included():
    async def scenario():
        async with sim_server(max_rps=2, rate_limit_headers=True) as server:
            client = OpenAIClient(base_url=server.url + "/v1", api_key=None, endpoint="e")
            seen = []
            client.on_rate_limit_headers = seen.append
            request = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},))
            outcomes = []
            async with client:
                for _ in range(3):
                    try:
                        await client.complete(request)
                        outcomes.append("ok")
                    except Exception as exc:
                        outcomes.append(type(exc).__name__)
            return outcomes, [h.requests.remaining for h in seen]

    assert asyncio.run(scenario()) == (["ok", "ok", "RateLimitError"], [1, 0, 0])
