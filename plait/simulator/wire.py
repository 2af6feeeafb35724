"""OpenAI chat-completions and Anthropic Messages wire formats, both directions.

Requests are read into a provider-neutral `ChatInput`; a `Reply` is written
back as a response body or as the provider's stream of SSE events.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.errors import BadRequestError

FINGERPRINT = "fp_plait_sim"
_PIECE = re.compile(r"\s*\S{1,8}|\s+")
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_EMPTY_OBJECT = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: ``data`` is a JSON object or a raw string like ``[DONE]``."""

    data: Mapping[str, Any] | str
    event: str | None = None

    def encode(self) -> bytes:
        data = self.data
        if not isinstance(data, str):
            data = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {data}\n\n".encode()


class SimStream:
    """The SSE events of one streamed reply, paced; iterate it, or `aclose` it to stop early.

    ``on_close`` runs once, when the events run out, the stream is closed, or
    a wait is cancelled.
    """

    __slots__ = ("_delays", "_events", "_next", "on_close")

    def __init__(self, events: list[SseEvent], delays: list[float]):
        self._events = events
        self._delays = delays
        self._next = 0
        self.on_close: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"SimStream(sent={self._next}/{len(self._events)})"

    def __aiter__(self) -> SimStream:
        return self

    async def __anext__(self) -> SseEvent:
        i = self._next
        if i >= len(self._events):
            await self.aclose()
            raise StopAsyncIteration
        if self._delays[i] > 0:
            try:
                await asyncio.sleep(self._delays[i])
            except BaseException:
                await self.aclose()
                raise
        self._next = i + 1
        return self._events[i]

    async def aclose(self) -> None:
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()


@dataclass(frozen=True, slots=True)
class ChatInput:
    """What the simulator needs from a request, whichever API it came through."""

    api: str
    model: str
    system: str
    user: str
    prompt_tokens: int
    tools: tuple[tuple[str, Mapping[str, Any]], ...]
    tool_choice: str
    forced_tool: str | None
    after_tool_result: bool
    schema: Mapping[str, Any] | None
    json_mode: bool
    max_tokens: int | None
    stream: bool
    include_usage: bool

    @property
    def structured(self) -> bool:
        return self.schema is not None or self.json_mode

    @property
    def wants_tool_call(self) -> bool:
        """Whether the default reply is a tool call (tools offered, not just answered)."""
        if not self.tools or self.tool_choice == "none":
            return False
        return self.tool_choice == "required" or not self.after_tool_result

    def tool_schema(self, name: str) -> Mapping[str, Any]:
        return next((schema for tool, schema in self.tools if tool == name), _EMPTY_OBJECT)


@dataclass(frozen=True, slots=True)
class SimToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]
    arguments_json: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's answer: text, or tool calls; ``finish_reason`` in OpenAI's vocabulary."""

    text: str | None
    tool_calls: tuple[SimToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: a token per four characters, at least one."""
    return max(1, (len(text) + 3) // 4)


def _text(content: Any, *, everything: bool) -> str:
    """The text in a message's content; with ``everything``, tool payloads too."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    parts = []
    for part in content if isinstance(content, Sequence) else ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" or (kind is None and "text" in part):
            parts.append(str(part.get("text", "")))
        elif everything and kind == "tool_result":
            parts.append(_text(part.get("content"), everything=True))
        elif everything and kind == "tool_use":
            parts.append(json.dumps(part.get("input"), default=str))
    return "\n".join(parts)


def _message_tokens(message: Mapping[str, Any]) -> int:
    text = _text(message.get("content"), everything=True)
    for call in message.get("tool_calls") or ():
        function = (call.get("function") or {}) if isinstance(call, Mapping) else {}
        text += str(function.get("name", "")) + str(function.get("arguments", ""))
    return count_tokens(text)


def _bad(message: str) -> BadRequestError:
    return BadRequestError(message, status=400)


def _messages(body: Mapping[str, Any], roles: tuple[str, ...]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise _bad("'messages' must be a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in roles:
            raise _bad(
                f"messages[{i}] must be an object whose 'role' is one of {list(roles)}, "
                f"got {message!r}"
            )
    return list(messages)


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' must be a non-empty string")
    return model


def _last_user_text(messages: list[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            text = _text(message.get("content"), everything=False)
            if text:
                return text
    return ""


def _max_tokens(body: Mapping[str, Any], *keys: str, required: bool = False) -> int | None:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if type(value) is not int or value < 1:
            raise _bad(f"'{key}' must be an integer >= 1, got {value!r}")
        return value
    if required:
        raise _bad(f"'{keys[0]}' is required (an integer >= 1)")
    return None


def parse_openai(body: Mapping[str, Any]) -> ChatInput:
    """Read an OpenAI chat-completions request body; raise `BadRequestError` if malformed."""
    model = _model(body)
    messages = _messages(body, ("system", "developer", "user", "assistant", "tool", "function"))
    tools = tuple(
        (str(tool["function"].get("name", "")), tool["function"].get("parameters") or _EMPTY_OBJECT)
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping)
    )
    choice = body.get("tool_choice") or "auto"
    forced = None
    if isinstance(choice, Mapping):
        forced = (choice.get("function") or {}).get("name")
        choice = "required"
    format_ = body.get("response_format") or {}
    schema = None
    if format_.get("type") == "json_schema":
        schema = (format_.get("json_schema") or {}).get("schema") or _EMPTY_OBJECT
    options = body.get("stream_options") or {}
    return ChatInput(
        api="openai",
        model=model,
        system="\n".join(
            _text(m.get("content"), everything=False)
            for m in messages
            if m["role"] in ("system", "developer")
        ),
        user=_last_user_text(messages),
        prompt_tokens=sum(_message_tokens(m) for m in messages),
        tools=tools,
        tool_choice=str(choice),
        forced_tool=forced,
        after_tool_result=messages[-1]["role"] in ("tool", "function"),
        schema=schema,
        json_mode=format_.get("type") == "json_object",
        max_tokens=_max_tokens(body, "max_completion_tokens", "max_tokens"),
        stream=bool(body.get("stream")),
        include_usage=bool(options.get("include_usage")),
    )


def parse_anthropic(body: Mapping[str, Any]) -> ChatInput:
    """Read an Anthropic Messages request body; raise `BadRequestError` if malformed."""
    model = _model(body)
    messages = _messages(body, ("user", "assistant"))
    max_tokens = _max_tokens(body, "max_tokens", required=True)
    system = _text(body.get("system"), everything=False)
    tools = tuple(
        (str(tool.get("name", "")), tool.get("input_schema") or _EMPTY_OBJECT)
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping)
    )
    choice = body.get("tool_choice") or {}
    kind = {"any": "required", "tool": "required", "none": "none"}.get(
        str(choice.get("type")), "auto"
    )
    last = messages[-1].get("content")
    after_tool_result = messages[-1]["role"] == "user" and any(
        isinstance(block, Mapping) and block.get("type") == "tool_result"
        for block in (last if isinstance(last, list | tuple) else ())
    )
    output = body.get("output_format") or {}
    schema = None
    if output.get("type") == "json_schema":
        schema = output.get("schema") or _EMPTY_OBJECT
    return ChatInput(
        api="anthropic",
        model=model,
        system=system,
        user=_last_user_text(messages),
        prompt_tokens=(count_tokens(system) if system else 0)
        + sum(_message_tokens(m) for m in messages),
        tools=tools,
        tool_choice=kind,
        forced_tool=choice.get("name") if choice.get("type") == "tool" else None,
        after_tool_result=after_tool_result,
        schema=schema,
        json_mode=False,
        max_tokens=max_tokens,
        stream=bool(body.get("stream")),
        include_usage=True,
    )


def pieces(text: str) -> list[str]:
    """Split text into stream chunks (a word or up to 8 characters, with leading space)."""
    return _PIECE.findall(text)


def openai_completion(reply: Reply, rid: str, model: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": _openai_usage(reply),
        "system_fingerprint": FINGERPRINT,
    }


def _openai_usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


Events = list[tuple[SseEvent, int]]
"""SSE events, each with the number of output characters it carries (for pacing)."""


def openai_events(
    reply: Reply, rid: str, model: str, created: int, include_usage: bool
) -> tuple[Events, int]:
    """The stream's events and the index of the first closing one (finish chunk)."""
    head = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, size: int = 0) -> Any:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data = {**head, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return SseEvent(data), size

    text = None if reply.tool_calls else ""
    events = [chunk({"role": "assistant", "content": text})]
    for i, call in enumerate(reply.tool_calls):
        function = {"name": call.name, "arguments": ""}
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": i, "id": call.id, "type": "function", "function": function}
                    ]
                }
            )
        )
        events += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}, size=len(p))
            for p in pieces(call.arguments_json)
        ]
    events += [chunk({"content": p}, size=len(p)) for p in pieces(reply.text or "")]
    tail = len(events)
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        events.append((SseEvent({**head, "choices": [], "usage": _openai_usage(reply)}), 0))
    events.append((SseEvent("[DONE]"), 0))
    return events, tail


def _anthropic_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text is not None:
        blocks.append({"type": "text", "text": reply.text})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
        for c in reply.tool_calls
    ]
    return blocks


def anthropic_message(reply: Reply, rid: str, model: str) -> dict[str, Any]:
    return {
        "id": rid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _anthropic_blocks(reply),
        "stop_reason": _STOP_REASONS[reply.finish_reason],
        "stop_sequence": None,
        "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens},
    }


def anthropic_events(reply: Reply, rid: str, model: str) -> tuple[Events, int]:
    """The stream's events and the index of the first closing one (message_delta)."""

    def event(data: dict[str, Any], size: int = 0) -> tuple[SseEvent, int]:
        return SseEvent(data, data["type"]), size

    start = anthropic_message(reply, rid, model)
    start.update(content=[], stop_reason=None)
    start["usage"] = {"input_tokens": reply.prompt_tokens, "output_tokens": 1}
    events = [event({"type": "message_start", "message": start})]
    blocks: list[tuple[dict[str, Any], str, str, str]] = [
        ({"type": "text", "text": ""}, "text_delta", "text", reply.text or "")
    ]
    blocks = blocks if reply.text is not None else []
    blocks += [
        (
            {"type": "tool_use", "id": c.id, "name": c.name, "input": {}},
            "input_json_delta",
            "partial_json",
            c.arguments_json,
        )
        for c in reply.tool_calls
    ]
    for index, (opening, kind, key, body) in enumerate(blocks):
        events.append(
            event({"type": "content_block_start", "index": index, "content_block": opening})
        )
        events += [
            event(
                {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: p}},
                len(p),
            )
            for p in pieces(body)
        ]
        events.append(event({"type": "content_block_stop", "index": index}))
    tail = len(events)
    stop = {"stop_reason": _STOP_REASONS[reply.finish_reason], "stop_sequence": None}
    usage = {"output_tokens": reply.completion_tokens}
    events.append(event({"type": "message_delta", "delta": stop, "usage": usage}))
    events.append(event({"type": "message_stop"}))
    return events, tail


def malformed_events(events: Events) -> Events:
    """The stream with its first event's JSON cut in half (and [DONE] kept, if any)."""
    first = events[0][0]
    text = json.dumps(first.data)
    broken = [(SseEvent(text[: len(text) // 2], first.event), 0)]
    return broken + [e for e in events[-1:] if e[0].data == "[DONE]"]


def error_body(api: str, status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """An error in the provider's JSON shape."""
    if api == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": message}}
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
