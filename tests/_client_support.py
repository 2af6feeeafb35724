"""A scripted fake provider for `httpx.MockTransport`, and builders for its replies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx

Reply = httpx.Response | type[httpx.RequestError] | Callable[[httpx.Request], httpx.Response]


class FakeProvider:
    """Answers each request with the next scripted reply (the last one repeats) and records it.

    A reply is an `httpx.Response`, a function of the request, or an httpx
    exception class to raise (with the request attached).
    """

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, type) and issubclass(reply, httpx.RequestError):
            raise reply("scripted failure", request=request)
        return reply(request) if callable(reply) else reply

    @property
    def body(self) -> Any:
        """The JSON body of the last request."""
        return json.loads(self.requests[-1].content)


def json_reply(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=data, headers=headers)


def sse_reply(
    events: Iterable[Any],
    *,
    chunk_size: int | None = None,
    then_raise: type[httpx.RequestError] | None = None,
) -> httpx.Response:
    """A 200 event stream: each event is a dict (``data: <json>``), a str (``data: <str>``)
    or an ``(event, dict)`` pair; bytes are cut into ``chunk_size`` pieces, and the body
    ends by raising ``then_raise`` when given."""
    lines = []
    for event in events:
        if isinstance(event, tuple):
            name, data = event
            lines.append(f"event: {name}\ndata: {json.dumps(data)}\n\n")
        else:
            data = event if isinstance(event, str) else json.dumps(event)
            lines.append(f"data: {data}\n\n")
    raw = "".join(lines).encode()
    size = chunk_size or len(raw) or 1

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), size):
            yield raw[i : i + size]
        if then_raise is not None:
            raise then_raise("connection reset mid-stream")

    return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})


def openai_reply(
    text: str | None = "Hello there.",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    usage: tuple[int, int] = (12, 3),
    model: str = "gpt-test-0001",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


def openai_tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def openai_chunks(
    pieces: Iterable[str],
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (12, 3),
    model: str = "gpt-test-0001",
    done: bool = True,
) -> list[Any]:
    """The chunk sequence an OpenAI server streams for a reply made of ``pieces``."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
    chunks: list[Any] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    if usage is not None:
        counts = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
        chunks.append({**base, "choices": [], "usage": counts})
    if done:
        chunks.append("[DONE]")
    return chunks


def anthropic_message(
    blocks: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, int] | None = None,
    model: str = "claude-test",
) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "usage": usage or {"input_tokens": 20, "output_tokens": 5},
    }


def anthropic_events(
    blocks: list[tuple[str, Any]],
    *,
    stop_reason: str = "end_turn",
    usage: tuple[int, int] = (20, 5),
    model: str = "claude-test",
    stop: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """Stream events for content ``blocks``: ``("text", [pieces])`` or
    ``("tool_use", (id, name, [json pieces]))``."""
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": model,
                    "content": [],
                    "usage": {"input_tokens": usage[0], "output_tokens": 1},
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, (kind, spec) in enumerate(blocks):
        if kind == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in spec]
        else:
            call_id, name, pieces = spec
            start = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            },
        )
    )
    if stop:
        events.append(("message_stop", {"type": "message_stop"}))
    return events
