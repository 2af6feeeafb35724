"""Client for Anthropic's Messages API, translating from plait's OpenAI-form requests.

``base_url`` is the API host (``https://api.anthropic.com``); requests go to
``{base_url}/v1/messages``. Translation: system messages are joined into
``system``; ``max_tokens`` defaults to 1024 (the API requires it); OpenAI
function tools become ``input_schema`` tools; an assistant message's
``tool_calls`` become ``tool_use`` blocks and ``role: "tool"`` messages become
``tool_result`` blocks (consecutive ones in one user turn); ``image_url``
content parts become image blocks. Stop reasons are reported in OpenAI's
vocabulary (``stop``, ``length``, ``tool_calls``, ``content_filter``) so
callers see one ``finish_reason`` scheme for every provider.

``response_format`` is emulated by a forced tool named after the schema whose
input is the structured value; the reply's ``text`` is that value as compact
JSON (the same whether streamed or not), while a streamed reply hands the
model's raw JSON chunks to ``on_delta``. As for OpenAI, a structured reply that
fails its schema raises `TransientError` (the model answered badly; a retry
may not).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from time import perf_counter
from typing import Any

import httpx

from plait.clients._http import HTTPClient
from plait.clients.base import ChatRequest, ChatResponse, DeltaCallback, Message, ToolCall, Usage
from plait.errors import BadRequestError, TransientError
from plait.schema import schema_name

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicClient"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicClient(HTTPClient):
    """A `ChatClient` for Anthropic's ``/v1/messages``."""

    def __init__(
        self,
        *,
        base_url: str = ANTHROPIC_BASE_URL,
        api_key: str | None = None,
        endpoint: str | None = None,
        timeout: float = 60.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        auth = {"x-api-key": api_key} if api_key else {}
        super().__init__(
            base_url=base_url,
            path="/v1/messages",
            endpoint=endpoint,
            headers={"anthropic-version": ANTHROPIC_VERSION, **auth, **(headers or {})},
            secret=api_key,
            timeout=timeout,
            max_connections=max_connections,
            transport=transport,
        )

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        """Send ``request``; when ``request.stream``, pass each text chunk to ``on_delta``."""
        body = self._body(request)
        answer_tool = schema_name(request.response_format) if request.response_format else None
        start = perf_counter()
        reply = _Reply(request.model, answer_tool)
        if request.stream:
            await self._stream_into(reply, body, start, on_delta)
        else:
            data = await self._post(body)
            try:
                reply.read_message(data)
            except (KeyError, TypeError, AttributeError) as exc:
                raise self._error(
                    TransientError,
                    f"malformed reply: expected a message with content, got {str(data)[:200]}",
                    200,
                ) from exc
        return self._response(request, reply, start)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = self._messages(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        tools = [_tool(tool) for tool in request.tools or ()]
        if request.response_format is not None:
            name = schema_name(request.response_format)
            tools.append(
                {
                    "name": name,
                    "description": "Give your answer by calling this tool with it as the input.",
                    "input_schema": request.response_format,
                }
            )
            body["tool_choice"] = {"type": "tool", "name": name}
        if tools:
            body["tools"] = tools
        if request.options:
            body.update(request.options)
        if request.stream:
            body["stream"] = True
        return body

    def _messages(self, messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
        """The ``system`` text and Messages-API turns for OpenAI-form ``messages``."""
        system: list[str] = []
        turns: list[dict[str, Any]] = []
        results: list[dict[str, Any]] | None = None  # the open user turn of tool results
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role == "system":
                system.append(content if isinstance(content, str) else _joined_text(content))
                continue
            if role == "tool":
                if results is None:
                    results = []
                    turns.append({"role": "user", "content": results})
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id"),
                        "content": _blocks(content) if isinstance(content, list) else str(content),
                    }
                )
                continue
            results = None
            if role == "assistant" and message.get("tool_calls"):
                blocks = _blocks(content) if isinstance(content, list) else []
                if isinstance(content, str) and content:
                    blocks.append({"type": "text", "text": content})
                blocks.extend(self._tool_use(call) for call in message["tool_calls"])
                turns.append({"role": "assistant", "content": blocks})
            else:
                text_or_blocks = _blocks(content) if isinstance(content, list) else content
                turns.append({"role": role, "content": text_or_blocks})
        return "\n\n".join(system), turns

    def _tool_use(self, call: Mapping[str, Any]) -> dict[str, Any]:
        function = call.get("function") or {}
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as exc:
                raise self._error(
                    BadRequestError,
                    f"message history: tool call {function.get('name')!r} has arguments that "
                    f"are not JSON ({exc}); pass them as a JSON object string or a dict",
                    None,
                ) from exc
        return {
            "type": "tool_use",
            "id": call.get("id"),
            "name": function.get("name"),
            "input": arguments,
        }

    async def _stream_into(
        self, reply: _Reply, body: dict[str, Any], start: float, on_delta: DeltaCallback | None
    ) -> None:
        async with aclosing(self._events(body)) as events:
            async for event, data in events:
                if event == "ping":
                    continue
                payload = self._decode_event(data)
                if isinstance(payload, dict) and payload.get("type", event) == "error":
                    raise self._stream_error(payload.get("error"))
                try:
                    chunk = reply.read_event(payload)
                except (KeyError, TypeError, AttributeError) as exc:
                    raise self._error(
                        TransientError, f"malformed stream event: {data[:200]!r}", 200
                    ) from exc
                if chunk:
                    if reply.ttft is None:
                        reply.ttft = perf_counter() - start
                    if on_delta is not None:
                        on_delta(chunk)
                if reply.done:
                    return
        raise self._error(
            TransientError,
            f"stream cut: the reply ended after {len(reply.texts)} text chunks without "
            "message_stop",
            200,
        )

    def _response(self, request: ChatRequest, reply: _Reply, start: float) -> ChatResponse:
        tool_calls = tuple(
            ToolCall(call_id, name, self._tool_arguments(name, raw))
            for call_id, name, raw in reply.calls
        )
        finish_reason = _FINISH_REASONS.get(reply.stop_reason or "", reply.stop_reason)
        structured = None
        text = "".join(reply.texts)
        if request.response_format is not None:
            if reply.answer is None:
                raise self._error(
                    TransientError,
                    f"the model did not call the response tool {reply.answer_tool!r} "
                    f"(stop_reason {reply.stop_reason!r}); its text: {text[:200]!r}",
                    200,
                )
            if isinstance(reply.answer, str):
                structured = self._structured_text(
                    reply.answer or "{}", request.response_format, finish_reason
                )
            else:
                structured = self._structured(reply.answer, request.response_format)
            text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
            if finish_reason == "tool_calls":
                finish_reason = "stop"
        return ChatResponse(
            text=text,
            model=reply.model,
            usage=Usage(reply.input_tokens, reply.output_tokens),
            finish_reason=finish_reason,
            tool_calls=tool_calls,
            structured=structured,
            latency=perf_counter() - start,
            ttft=reply.ttft,
        )


class _Reply:
    """A Messages-API reply being read, from one body or from stream events."""

    __slots__ = (
        "answer",
        "answer_tool",
        "blocks",
        "calls",
        "done",
        "input_tokens",
        "model",
        "output_tokens",
        "stop_reason",
        "texts",
        "ttft",
    )

    def __init__(self, model: str, answer_tool: str | None) -> None:
        self.model = model
        self.answer_tool = answer_tool
        self.answer: Any = None  # the response tool's input: a dict, or streamed JSON text
        self.texts: list[str] = []
        self.calls: list[tuple[str, str, Any]] = []  # (id, name, input dict or JSON text)
        self.blocks: dict[int, list[Any]] = {}  # streamed tool_use: index -> [id, name, chunks]
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.done = False
        self.ttft: float | None = None

    def read_message(self, data: Mapping[str, Any]) -> None:
        for block in data["content"]:
            if block["type"] == "text":
                self.texts.append(block["text"])
            elif block["type"] == "tool_use":
                self._tool_use(block["id"], block["name"], block.get("input") or {})
        self.stop_reason = data.get("stop_reason")
        self.model = data.get("model") or self.model
        self._usage(data.get("usage") or {})

    def read_event(self, event: Mapping[str, Any]) -> str:
        """Fold one stream event in; return the text chunk it carried, if any."""
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                self.texts.append(delta["text"])
                return delta["text"]
            if delta["type"] == "input_json_delta":
                self.blocks[event["index"]][2].append(delta["partial_json"])
                return delta["partial_json"] if self._is_answer(event["index"]) else ""
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "text" and block.get("text"):
                self.texts.append(block["text"])
                return block["text"]
            if block["type"] == "tool_use":
                self.blocks[event["index"]] = [block["id"], block["name"], []]
        elif kind == "content_block_stop" and event["index"] in self.blocks:
            call_id, name, chunks = self.blocks[event["index"]]
            self._tool_use(call_id, name, "".join(chunks))
        elif kind == "message_start":
            self.model = event["message"].get("model") or self.model
            self._usage(event["message"].get("usage") or {})
        elif kind == "message_delta":
            self.stop_reason = event.get("delta", {}).get("stop_reason") or self.stop_reason
            self._usage(event.get("usage") or {})
        elif kind == "message_stop":
            self.done = True
        return ""

    def _is_answer(self, index: int) -> bool:
        return self.answer_tool is not None and self.blocks[index][1] == self.answer_tool

    def _tool_use(self, call_id: str, name: str, arguments: Any) -> None:
        if name == self.answer_tool:
            self.answer = arguments
        else:
            self.calls.append((call_id, name, arguments))

    def _usage(self, counts: Mapping[str, Any]) -> None:
        # Stream counts are cumulative: message_delta repeats and supersedes message_start's.
        inputs = [counts.get(key) for key in _INPUT_COUNTS]
        if any(n is not None for n in inputs):
            self.input_tokens = sum(n or 0 for n in inputs)
        if counts.get("output_tokens") is not None:
            self.output_tokens = counts["output_tokens"]


_INPUT_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _tool(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """An Anthropic tool for an OpenAI function tool; Anthropic-form tools pass unchanged."""
    if tool.get("type") != "function":
        return tool
    function = tool["function"]
    translated = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        translated["description"] = function["description"]
    return translated


def _blocks(parts: list[Any]) -> list[Any]:
    """Anthropic content blocks for OpenAI content parts (text passes, image_url converts)."""
    blocks = []
    for part in parts:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            url = (
                part["image_url"]["url"]
                if isinstance(part["image_url"], Mapping)
                else part["image_url"]
            )
            if url.startswith("data:"):
                media_type, _, data = url[5:].partition(";base64,")
                source = {"type": "base64", "media_type": media_type, "data": data}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
        else:
            blocks.append(part)
    return blocks


def _joined_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return "" if parts is None else str(parts)
    return "\n".join(p.get("text", "") for p in parts if isinstance(p, Mapping))
