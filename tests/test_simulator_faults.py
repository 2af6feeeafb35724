"""Injected faults and the max_rps limit, observed in process."""

import asyncio
import json

import pytest
from _clock import run_virtual
from _sim_support import chat_body, messages_body

from plait.simulator import SimulatedModel, SimulatorSettings

CHAT = "/v1/chat/completions"


def _model(*faults, **fields) -> SimulatedModel:
    return SimulatedModel(SimulatorSettings(faults=list(faults), **fields))


async def _statuses(model: SimulatedModel, bodies) -> list:
    return [(await model.handle(CHAT, body)).status for body in bodies]


async def test_first_attempt_faults_only_on_the_first_sighting_of_each_request():
    model = _model({"kind": "server_error", "status": 503, "attempts": "first"})
    bodies = [chat_body("a"), chat_body("a"), chat_body("b"), chat_body("a"), chat_body("b")]
    assert await _statuses(model, bodies) == [503, 200, 503, 200, 200]
    response = await _model({"kind": "server_error", "status": 502}).handle(CHAT, chat_body())
    assert response.json["error"] == {
        "message": "simulated server error 502",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_attempts_n_and_after_n():
    model = _model({"kind": "server_error", "attempts": 2})
    assert await _statuses(model, [chat_body()] * 3) == [500, 500, 200]
    model = _model({"kind": "server_error", "after": 2})
    assert await _statuses(model, [chat_body(str(i)) for i in range(4)]) == [200, 200, 500, 500]


async def test_fault_rate_is_a_seeded_deterministic_draw_per_request():
    bodies = [chat_body(f"item {i}") for i in range(200)]

    async def failed(seed: int) -> list[int]:
        model = _model({"kind": "server_error", "rate": 0.25}, seed=seed)
        statuses = await _statuses(model, bodies)
        return [i for i, status in enumerate(statuses) if status == 500]

    once = await failed(seed=0)
    assert 25 <= len(once) <= 75
    assert await failed(seed=0) == once
    assert await failed(seed=1) != once
    assert await _statuses(_model({"kind": "server_error", "rate": 0}), bodies[:20]) == [200] * 20


async def test_match_narrows_a_fault_to_some_requests():
    model = _model({"kind": "server_error", "match": {"user": "regex:^flaky"}})
    assert await _statuses(model, [chat_body("flaky one"), chat_body("solid")]) == [500, 200]


async def test_rate_limit_fault_sends_retry_after_headers_in_both_shapes():
    model = _model({"kind": "rate_limit", "retry_after": 1.5})
    response = await model.handle(CHAT, chat_body())
    assert response.status == 429
    assert response.headers == {"retry-after": "2", "retry-after-ms": "1500"}
    assert response.json["error"]["code"] == "rate_limit_exceeded"
    response = await model.handle("/v1/messages", messages_body())
    assert response.json["error"]["type"] == "rate_limit_error"
    assert model.stats.by_fault == {"rate_limit": 2}


def test_max_rps_refuses_requests_beyond_the_rate_until_tokens_refill():
    model = _model(max_rps=0.5)

    async def main():
        first = await model.handle(CHAT, chat_body("1"))
        second = await model.handle(CHAT, chat_body("2"))
        await asyncio.sleep(2.0)
        third = await model.handle(CHAT, chat_body("3"))
        return first, second, third

    first, second, third = run_virtual(main())
    assert (first.status, second.status, third.status) == (200, 429, 200)
    assert second.headers == {"retry-after": "2", "retry-after-ms": "2000"}
    assert [r.fault for r in model.requests] == [None, "max_rps", None]


def test_timeout_hangs_for_hang_seconds_or_until_the_caller_gives_up():
    model = _model({"kind": "timeout", "hang": 30})

    async def main():
        response = await model.handle(CHAT, chat_body("a"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(model.handle(CHAT, chat_body("b")), 5)
        return response

    response = run_virtual(main())
    assert (response.status, response.fault, response.json) == (None, "timeout", None)
    waited, abandoned = model.requests
    assert waited.finish - waited.arrival == 30
    assert abandoned.finish - abandoned.arrival == 5
    assert (abandoned.status, abandoned.fault) == (None, "timeout")
    assert model.stats.in_flight == 0


async def test_connection_reset_is_a_transport_marker():
    response = await _model({"kind": "connection_reset"}).handle(CHAT, chat_body())
    assert (response.status, response.fault, response.json) == (None, "connection_reset", None)


async def test_malformed_body_and_stream_are_not_json():
    model = _model({"kind": "malformed"})
    response = await model.handle(CHAT, chat_body())
    assert (response.status, response.fault, response.json) == (200, "malformed", None)
    assert response.raw.startswith(b'{"id": "chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.raw)
    response = await model.handle(CHAT, chat_body(stream=True))
    first, done = [event async for event in response.stream]
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.data)
    assert done.data == "[DONE]"


async def test_cut_stream_stops_before_the_finish_and_spares_unstreamed_requests():
    model = _model({"kind": "cut_stream", "chunks": 2})
    assert (await model.handle(CHAT, chat_body())).status == 200
    response = await model.handle(CHAT, chat_body(stream=True))
    assert response.fault == "cut_stream"
    events = [event async for event in response.stream]
    assert len(events) == 2
    assert all(e.data["choices"][0]["finish_reason"] is None for e in events)
    response = await model.handle("/v1/messages", messages_body(stream=True))
    assert [e.event async for e in response.stream] == ["message_start", "content_block_start"]
    assert model.stats.by_fault == {"cut_stream": 2}


async def test_first_fault_that_fires_wins():
    model = _model({"kind": "rate_limit", "match": {"user": "x"}}, {"kind": "server_error"})
    assert await _statuses(model, [chat_body("x"), chat_body("y")]) == [429, 500]


async def test_a_rate_limit_fault_can_omit_retry_after():
    model = _model({"kind": "rate_limit", "send_retry_after": False})
    response = await model.handle(CHAT, chat_body())
    assert response.status == 429
    assert response.headers == {}
    assert "retry after" not in response.json["error"]["message"]


def test_rate_limit_headers_describe_the_max_rps_bucket():
    model = _model(max_rps=2, rate_limit_headers=True)

    async def main():
        return [await model.handle(CHAT, chat_body(str(i))) for i in range(3)]

    first, second, third = run_virtual(main())
    assert first.headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "500ms",
    }
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"] == "1.000s"
    assert third.status == 429
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.headers["retry-after-ms"] == "500"
