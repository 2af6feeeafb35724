"""The simulator over real HTTP on loopback, driven by httpx like any OpenAI-style client."""

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _sim_support import (
    chat_body,
    messages_body,
    openai_stream_text,
    sim_server,
    sim_server_thread,
    sse_events,
)

ROOT = Path(__file__).resolve().parents[1]
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}},
    },
}


async def _stream_lines(client: httpx.AsyncClient, path: str, body: dict) -> list[str]:
    async with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        return [line async for line in response.aiter_lines()]


async def test_chat_completion_follows_the_openai_wire_format():
    async with sim_server() as server, httpx.AsyncClient(base_url=server.url + "/v1") as client:
        response = await client.post("/chat/completions", json=chat_body("hello"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", data["id"])
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "sim-model"
    (choice,) = data["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert re.fullmatch(r"\[[0-9a-f]{8}\] hello", choice["message"]["content"])
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


async def test_stream_sends_chunks_then_done_with_the_same_text():
    body = chat_body("stream me a longer reply please", stream_options={"include_usage": True})
    async with sim_server() as server, httpx.AsyncClient(base_url=server.url) as client:
        whole = (await client.post("/v1/chat/completions", json=body)).json()
        events = sse_events(await _stream_lines(client, "/v1/chat/completions", body))
    assert events[-1] == (None, "[DONE]")
    chunks = [data for _, data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {whole["id"]}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == whole["usage"]
    assert openai_stream_text(events) == whole["choices"][0]["message"]["content"]


async def test_streamed_tool_call_deltas_add_up_to_the_unstreamed_call():
    body = chat_body("find it", tools=[TOOL])
    async with sim_server() as server, httpx.AsyncClient(base_url=server.url) as client:
        whole = (await client.post("/v1/chat/completions", json=body)).json()
        events = sse_events(await _stream_lines(client, "/v1/chat/completions", body))
    (expected,) = whole["choices"][0]["message"]["tool_calls"]
    deltas = [
        call
        for _, data in events[:-1]
        for call in data["choices"][0]["delta"].get("tool_calls") or ()
    ]
    assert deltas[0] == {
        **expected,
        "index": 0,
        "function": {**expected["function"], "arguments": ""},
    }
    assert "".join(d["function"]["arguments"] for d in deltas) == expected["function"]["arguments"]
    assert events[-2][1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_anthropic_messages_stream_has_the_event_sequence():
    body = messages_body("hi there")
    async with sim_server() as server, httpx.AsyncClient(base_url=server.url) as client:
        whole = (await client.post("/v1/messages", json=body)).json()
        events = sse_events(await _stream_lines(client, "/v1/messages", body))
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == whole["content"][0]["text"]
    assert events[-2][1]["usage"] == {"output_tokens": whole["usage"]["output_tokens"]}


async def test_faults_look_like_real_failures_to_an_http_client():
    faults = [
        {"kind": kind, "match": {"user": kind}}
        for kind in ("rate_limit", "server_error", "malformed", "connection_reset", "cut_stream")
    ]
    faults[0]["retry_after"] = 0.5
    faults[1]["status"] = 503
    faults.append({"kind": "timeout", "hang": 30, "match": {"user": "timeout"}})
    async with (
        sim_server(faults=faults) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        limited = await client.post("/v1/chat/completions", json=chat_body("rate_limit"))
        assert limited.status_code == 429
        assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("1", "500")
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        failed = await client.post("/v1/messages", json=messages_body("server_error"))
        assert failed.status_code == 503
        assert failed.json()["error"]["type"] == "api_error"
        malformed = await client.post("/v1/chat/completions", json=chat_body("malformed"))
        assert malformed.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            malformed.json()
        with pytest.raises(httpx.TransportError):
            await client.post("/v1/chat/completions", json=chat_body("connection_reset"))
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json=chat_body("timeout"), timeout=0.2)
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            await _collect(client, chat_body("cut_stream", stream=True), lines)
        assert len(sse_events(lines)) == 2
        assert "data: [DONE]" not in lines
        ok = await client.post("/v1/chat/completions", json=chat_body("fine"))
        assert ok.status_code == 200


async def _collect(client: httpx.AsyncClient, body: dict, lines: list[str]) -> None:
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            lines.append(line)


async def test_keep_alive_serves_many_requests_on_one_connection():
    async with sim_server() as server, httpx.AsyncClient(base_url=server.url) as client:
        for i in range(5):
            response = await client.post("/v1/chat/completions", json=chat_body(str(i)))
            assert response.status_code == 200
        await _stream_lines(client, "/v1/chat/completions", chat_body("s"))
        assert (await client.get("/health")).json() == {"status": "ok"}
    assert server.connections_opened == 1


async def test_request_log_and_stats_over_http():
    async with sim_server(latency=0.3) as server, httpx.AsyncClient(base_url=server.url) as client:
        bodies = [chat_body(f"q{i}") for i in range(5)]
        await asyncio.gather(*(client.post("/v1/chat/completions", json=b) for b in bodies))
        await client.post("/v1/chat/completions", content=b"{not json")
        stats = (await client.get("/stats")).json()
        log = (await client.get("/requests")).json()
        cleared = (await client.delete("/requests")).json()
        after = (await client.get("/requests")).json()
    assert stats == {
        "total": 6,
        "in_flight": 0,
        "peak_in_flight": 5,
        "by_status": {"200": 5, "400": 1},
        "by_fault": {},
    }
    assert log["object"] == "list"
    *answered, refused = log["data"]
    assert sorted(r["messages"][0]["content"] for r in answered) == [f"q{i}" for i in range(5)]
    assert [r["index"] for r in log["data"]] == [0, 1, 2, 3, 4, 5]
    assert [r["status"] for r in log["data"]] == [200] * 5 + [400]
    assert all(r["finish"] is not None for r in log["data"])
    assert (refused["body"], refused["messages"], refused["digest"]) == ("{not json", [], None)
    assert cleared == {"cleared": 6}
    assert after["data"] == []


async def test_utility_routes_and_error_shapes():
    async with sim_server() as server, httpx.AsyncClient(base_url=server.url) as client:
        await client.post("/chat/completions", json=chat_body(model="gpt-sim"))
        models = (await client.get("/v1/models")).json()
        missing = await client.get("/v1/nothing")
        wrong_method = await client.get("/v1/chat/completions")
        bad_json = await client.post("/v1/messages", content=b"[")
        not_object = await client.post("/v1/messages", json=[1])
    assert models == {
        "object": "list",
        "data": [
            {"id": "plait-sim", "object": "model", "created": 0, "owned_by": "plait"},
            {"id": "gpt-sim", "object": "model", "created": 0, "owned_by": "plait"},
        ],
    }
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no route: GET /v1/nothing"
    assert wrong_method.status_code == 405
    assert bad_json.status_code == 400
    assert bad_json.json()["type"] == "error"
    assert bad_json.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "the request body must be a JSON object, got '['",
        },
    }
    assert not_object.status_code == 400


def test_background_thread_server_for_sync_code():
    with sim_server_thread(replies=[{"match": {"user": "ping"}, "reply": "pong"}]) as server:
        with httpx.Client(base_url=server.url + "/v1") as client:
            response = client.post("/chat/completions", json=chat_body("ping"))
        assert response.json()["choices"][0]["message"]["content"] == "pong"
        assert [r.status for r in server.model.requests] == [200]


def test_cli_serves_until_sigterm(tmp_path):
    config = tmp_path / "sim.toml"
    config.write_text('[[replies]]\nmatch = { user = "ping" }\nreply = "pong"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "plait.simulator", "--port", "0", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        found = re.fullmatch(r"plait simulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert found, line + process.stderr.read()
        with httpx.Client(base_url=found.group(1)) as client:
            reply = client.post("/v1/chat/completions", json=chat_body("ping")).json()
        assert reply["choices"][0]["message"]["content"] == "pong"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_cli_rejects_bad_settings():
    result = subprocess.run(
        [sys.executable, "-m", "plait.simulator", "--latency", "-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SimulatorSettings.latency must be a number >= 0, got -1" in result.stderr
