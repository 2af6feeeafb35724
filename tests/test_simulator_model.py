"""The in-process simulated model: default and scripted replies, tools, usage, timing, log."""

import asyncio
import hashlib
import json

import pytest
from _clock import run_virtual
from _sim_support import chat_body, messages_body

from plait.simulator import SimulatedModel, SimulatorSettings, request_digest

CHAT = "/v1/chat/completions"
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}


def _model(**fields) -> SimulatedModel:
    return SimulatedModel(SimulatorSettings(**fields))


async def _content(model: SimulatedModel, body: dict) -> str:
    response = await model.handle(CHAT, body)
    assert response.status == 200, response.json
    return response.json["choices"][0]["message"]["content"]


async def _stream(model: SimulatedModel, path: str, body: dict) -> list:
    response = await model.handle(path, {**body, "stream": True})
    return [event async for event in response.stream]


async def test_default_reply_is_digest_of_canonical_request_then_user_text():
    body = chat_body("hello world", system="be brief", temperature=0.2)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    assert request_digest(body) == digest
    assert await _content(_model(), body) == f"[{digest[:8]}] hello world"


async def test_same_request_same_reply_and_every_input_changes_the_digest():
    model = _model()
    base = chat_body("hello", system="be brief", temperature=0.2)
    first = await _content(model, base)
    assert await _content(model, dict(base)) == first
    assert await _content(model, {**base, "stream": False}) == first
    variants = [
        {**base, "temperature": 0.3},
        chat_body("hello", system="be verbose", temperature=0.2),
        {**base, "model": "other"},
        {**base, "seed": 1},
    ]
    replies = {first, *[await _content(model, body) for body in variants]}
    assert len(replies) == 5
    assert all(reply.endswith("] hello") for reply in replies)


async def test_long_user_text_is_cut_to_300_characters():
    reply = await _content(_model(), chat_body("x" * 1000))
    assert reply == reply[:11] + "x" * 300 + "…"


async def test_streamed_text_equals_unstreamed_text_for_both_apis():
    model = _model()
    body = chat_body("a fairly long prompt " * 8)
    events = await _stream(model, CHAT, body)
    streamed = "".join(
        e.data["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.data["choices"]
    )
    assert events[-1].data == "[DONE]"
    assert streamed == await _content(model, body)
    anthropic = messages_body("a fairly long prompt " * 8)
    events = await _stream(model, "/v1/messages", anthropic)
    deltas = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    whole = (await model.handle("/v1/messages", anthropic)).json["content"][0]["text"]
    assert deltas == whole


async def test_usage_counts_a_token_per_four_characters_per_message():
    response = await _model().handle(CHAT, chat_body("hello", system="abcdefgh"))
    # "abcdefgh" -> 2, "hello" -> 2; the reply "[xxxxxxxx] hello" is 16 characters -> 4
    assert response.json["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    anthropic = await _model().handle("/v1/messages", messages_body("hello", system="abcdefgh"))
    assert anthropic.json["usage"] == {"input_tokens": 4, "output_tokens": 4}


async def test_stream_usage_chunk_when_asked():
    body = chat_body("hello", stream_options={"include_usage": True})
    events = await _stream(_model(), CHAT, body)
    assert events[-2].data["choices"] == []
    assert events[-2].data["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 4,
        "total_tokens": 6,
    }
    assert all(e.data["usage"] is None for e in events[:-2])


async def test_max_tokens_truncates_and_reports_length():
    body = chat_body("hello there", max_tokens=2)
    response = await _model().handle(CHAT, body)
    choice = response.json["choices"][0]
    assert choice["message"]["content"] == f"[{request_digest(body)[:7]}"
    assert choice["finish_reason"] == "length"
    assert response.json["usage"]["completion_tokens"] == 2


async def test_rules_match_system_and_user_substrings_and_first_rule_wins():
    model = _model(
        replies=[
            {"match": {"system": "Summarize", "user": "cats"}, "reply": "cats summary"},
            {"match": {"system": "Summarize"}, "reply": "generic summary"},
            {"match": {"model": "regex:^big-"}, "reply": "big model"},
        ]
    )
    assert await _content(model, chat_body("about cats", system="Summarize this")) == "cats summary"
    assert (
        await _content(model, chat_body("about dogs", system="Summarize this")) == "generic summary"
    )
    assert await _content(model, chat_body("hi", model="big-1")) == "big model"
    assert (await _content(model, chat_body("hi", model="small-big-1"))).endswith("] hi")


async def test_rule_templates_fill_regex_groups_and_request_fields():
    model = _model(
        replies=[
            {
                "match": {"user": "regex:weather in (?P<city>\\w+) on (\\w+)"},
                "reply": "{city}/{2}/{0}|{model}|{digest}",
            }
        ]
    )
    body = chat_body("the weather in Paris on Monday?")
    digest = request_digest(body)[:8]
    expected = f"Paris/Monday/weather in Paris on Monday|sim-model|{digest}"
    assert await _content(model, body) == expected


async def test_rules_can_match_on_tools_structured_and_tool_results():
    model = _model(
        replies=[
            {"match": {"tool_result": True}, "reply": "done with tools"},
            {"match": {"structured": True}, "json": {"label": "{user}"}},
            {"match": {"tools": True}, "reply": "no call today"},
        ]
    )
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert await _content(model, chat_body("great", response_format=schema)) == '{"label": "great"}'
    assert await _content(model, chat_body("hi", tools=[SEARCH_TOOL])) == "no call today"
    after_tool = chat_body("hi", tools=[SEARCH_TOOL])
    after_tool["messages"].append({"role": "tool", "tool_call_id": "c1", "content": "42"})
    assert await _content(model, after_tool) == "done with tools"


async def test_tools_get_a_schema_valid_call_to_the_first_tool_then_text_after_the_result():
    model = _model()
    body = chat_body(
        "find cats", tools=[SEARCH_TOOL, {**SEARCH_TOOL, "function": {"name": "other"}}]
    )
    response = await model.handle(CHAT, body)
    choice = response.json["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == f"call_{request_digest(body)[:22]}00"
    assert call["type"] == "function"
    assert call["function"]["name"] == "search"
    arguments = json.loads(call["function"]["arguments"])
    assert set(arguments) == {"query", "limit"}
    assert isinstance(arguments["query"], str) and isinstance(arguments["limit"], int)
    assert (await model.handle(CHAT, body)).json["choices"] == response.json["choices"]
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": choice["message"]["tool_calls"]},
        {"role": "tool", "tool_call_id": call["id"], "content": "3 cats"},
    ]
    assert (await _content(model, body)).endswith("] find cats")


async def test_tool_choice_none_forced_and_rule_forced_calls():
    model = _model(
        replies=[
            {
                "match": {"user": "lookup"},
                "tool_call": {"name": "search", "arguments": {"query": "{user}"}},
            }
        ]
    )
    text = await _content(model, chat_body("hi", tools=[SEARCH_TOOL], tool_choice="none"))
    assert text.endswith("] hi")
    other = {**SEARCH_TOOL, "function": {**SEARCH_TOOL["function"], "name": "other"}}
    forced = chat_body(
        "hi",
        tools=[SEARCH_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "other"}},
    )
    response = await model.handle(CHAT, forced)
    assert response.json["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "other"
    scripted = await model.handle(CHAT, chat_body("lookup this"))
    (call,) = scripted.json["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "search", "arguments": '{"query": "lookup this"}'}


async def test_anthropic_messages_shape_and_tool_use():
    model = _model()
    response = await model.handle("/v1/messages", messages_body("hello", system="sys"))
    digest = request_digest(messages_body("hello", system="sys"))
    assert response.json == {
        "id": f"msg_{digest[:24]}",
        "type": "message",
        "role": "assistant",
        "model": "sim-claude",
        "content": [{"type": "text", "text": f"[{digest[:8]}] hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},  # "sys" 1 + "hello" 2
    }
    tool = {"name": "search", "input_schema": SEARCH_TOOL["function"]["parameters"]}
    response = await model.handle("/v1/messages", messages_body("hi", tools=[tool]))
    assert response.json["stop_reason"] == "tool_use"
    (block,) = response.json["content"]
    assert block["type"] == "tool_use" and block["name"] == "search"
    assert block["id"].startswith("toolu_") and "query" in block["input"]


async def test_json_rule_becomes_the_forced_tools_input_for_anthropic():
    model = _model(replies=[{"json": {"label": "positive"}}])
    tool = {"name": "answer", "input_schema": {"type": "object"}}
    body = messages_body("hi", tools=[tool], tool_choice={"type": "tool", "name": "answer"})
    (block,) = (await model.handle("/v1/messages", body)).json["content"]
    assert (block["name"], block["input"]) == ("answer", {"label": "positive"})


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (CHAT, {"messages": [{"role": "user", "content": "x"}]}, 400, "'model' must be"),
        (CHAT, {"model": "m", "messages": []}, 400, "'messages' must be a non-empty array"),
        (CHAT, {"model": "m", "messages": [{"content": "x"}]}, 400, "messages[0] must be"),
        (
            CHAT,
            {"model": "m", "messages": [{"role": "user"}], "response_format": "json"},
            400,
            "malformed",
        ),
        ("/v1/embeddings", {"model": "m"}, 404, "no route POST /v1/embeddings"),
    ],
)
async def test_bad_requests_get_openai_errors(path, body, status, message):
    response = await _model().handle(path, body)
    assert response.status == status
    assert message in response.json["error"]["message"]
    assert response.json["error"]["type"] == "invalid_request_error"


async def test_bad_anthropic_request_gets_anthropic_error():
    body = messages_body("hi")
    del body["max_tokens"]
    response = await _model().handle("/v1/messages", body)
    assert response.status == 400
    assert response.json == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "'max_tokens' is required (an integer >= 1)",
        },
    }


async def test_zero_latency_answers_without_suspending():
    coroutine = _model().handle(CHAT, chat_body("hi"))
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value.status == 200


def test_latency_ttft_and_tokens_per_second_pace_the_reply_on_loop_time():
    model = _model(latency=2.0, ttft=0.5, tokens_per_second=4.0)
    body = chat_body("hello")  # the reply has 16 characters: 4 tokens, 1 second at 4/s

    async def main():
        await model.handle(CHAT, body)
        loop = asyncio.get_running_loop()
        response = await model.handle(CHAT, {**body, "stream": True})
        started = loop.time()
        times = []
        async for _ in response.stream:
            times.append(loop.time() - started)
        return times

    times = run_virtual(main())
    first, streamed = model.requests
    assert first.finish - first.arrival == 3.5
    assert streamed.finish - streamed.arrival == 3.5
    assert times[0] == 0.5
    assert times[-1] == 1.5


def test_jitter_is_drawn_per_sighting_and_reproducible_for_a_seed():
    def finishes(seed: int) -> list[float]:
        model = _model(latency=1.0, jitter=1.0, seed=seed)

        async def main():
            for _ in range(3):
                await model.handle(CHAT, chat_body("hi"))

        run_virtual(main())
        return [r.finish - r.arrival for r in model.requests]

    once = finishes(seed=1)
    assert once == finishes(seed=1)
    assert once != finishes(seed=2)
    assert len(set(once)) == 3
    assert all(1.0 <= delay <= 2.0 for delay in once)


async def test_request_log_records_each_request_in_order():
    model = _model()
    await model.handle(CHAT, chat_body("one"))
    await _stream(model, CHAT, chat_body("two"))
    await model.handle("/v1/nowhere", {"model": "m"})
    first, second, third = model.requests
    assert (first.index, first.path, first.model, first.stream, first.status) == (
        0,
        CHAT,
        "sim-model",
        False,
        200,
    )
    assert first.messages == ({"role": "user", "content": "one"},)
    assert first.digest == request_digest(chat_body("one"))
    assert first.finish >= first.arrival and first.fault is None
    assert (second.index, second.stream, second.status) == (1, True, 200)
    assert second.body == {**chat_body("two"), "stream": True}
    assert (third.path, third.status, third.digest) == ("/v1/nowhere", 404, None)
    assert model.stats.by_status == {200: 2, 404: 1}
    model.clear()
    assert model.requests == ()
    assert model.stats.total == 0


async def test_log_limit_keeps_the_newest_requests():
    model = _model(log_limit=2)
    for text in ("a", "b", "c"):
        await model.handle(CHAT, chat_body(text))
    assert [r.index for r in model.requests] == [1, 2]
    assert model.stats.total == 3


def test_peak_in_flight_counts_overlapping_requests():
    model = _model(latency=1.0)

    async def main():
        await asyncio.gather(*(model.handle(CHAT, chat_body(str(i))) for i in range(4)))
        await model.handle(CHAT, chat_body("alone"))

    run_virtual(main())
    assert model.stats.peak_in_flight == 4
    assert model.stats.in_flight == 0


async def test_anthropic_tool_result_turn_gets_text():
    tool = {"name": "search", "input_schema": SEARCH_TOOL["function"]["parameters"]}
    body = messages_body("find cats", tools=[tool])
    body["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "3"}]},
    ]
    response = await _model().handle("/v1/messages", body)
    assert response.json["stop_reason"] == "end_turn"
    assert response.json["content"][0]["text"].endswith("] find cats")
