"""Client for OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio...).

``base_url`` is the API root including its version (``https://api.openai.com/v1``,
``http://localhost:11434/v1``); requests go to ``{base_url}/chat/completions``.
``max_tokens`` is sent as ``max_tokens``, which every compatible server reads;
pass ``options={"max_completion_tokens": n}`` for OpenAI models that want that.

A reply that breaks its ``response_format`` (not JSON, or JSON that fails the
schema) raises `TransientError`, not `BadRequestError`: the request was valid
and the endpoint healthy, the model answered badly, and sampling again may
well produce a valid answer, so it is retried like any other bad body (within
the endpoint's ``max_retries``). Malformed tool-call arguments are treated the
same way.
"""

from __future__ import annotations

from contextlib import aclosing
from time import perf_counter
from typing import Any

import httpx

from plait.clients._http import HTTPClient
from plait.clients.base import ChatRequest, ChatResponse, DeltaCallback, ToolCall, Usage
from plait.errors import TransientError
from plait.schema import schema_name

__all__ = ["OPENAI_BASE_URL", "OpenAIClient"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIClient(HTTPClient):
    """A `ChatClient` for any server speaking OpenAI's ``/chat/completions``."""

    def __init__(
        self,
        *,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | None = None,
        endpoint: str | None = None,
        timeout: float = 60.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(
            base_url=base_url,
            path="/chat/completions",
            endpoint=endpoint,
            headers={**auth, **(headers or {})},
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
        start = perf_counter()
        if request.stream:
            return await self._complete_streamed(request, body, start, on_delta)
        data = await self._post(body)
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            finish_reason = choice.get("finish_reason")
            tool_calls = tuple(
                ToolCall(
                    call["id"],
                    call["function"]["name"],
                    self._tool_arguments(call["function"]["name"], call["function"]["arguments"]),
                )
                for call in message.get("tool_calls") or ()
            )
            usage = _usage(data.get("usage") or {})
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._error(
                TransientError,
                f"malformed reply: expected choices[0].message, got {str(data)[:200]}",
                200,
            ) from exc
        structured = None
        if request.response_format is not None and not tool_calls:
            # A refusal comes instead of content; parsing it reports it in the error.
            answer = text or message.get("refusal") or ""
            structured = self._structured_text(answer, request.response_format, finish_reason)
        return ChatResponse(
            text=text,
            model=data.get("model") or request.model,
            usage=usage,
            finish_reason=finish_reason,
            tool_calls=tool_calls,
            structured=structured,
            latency=perf_counter() - start,
        )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.response_format is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name(request.response_format),
                    "schema": request.response_format,
                    "strict": True,
                },
            }
        if request.tools:
            body["tools"] = request.tools
        if request.options:
            body.update(request.options)
        body["stream"] = request.stream
        if request.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _complete_streamed(
        self,
        request: ChatRequest,
        body: dict[str, Any],
        start: float,
        on_delta: DeltaCallback | None,
    ) -> ChatResponse:
        parts: list[str] = []
        calls: dict[int, list[Any]] = {}  # index -> [id, name, argument chunks]
        model, usage, finish_reason, ttft, done = request.model, Usage(), None, None, False
        async with aclosing(self._events(body)) as events:
            async for _, data in events:
                if data == "[DONE]" or done:
                    # Read to the end rather than break: abandoning httpx's nested stream
                    # generators leaves them to the garbage collector, which under
                    # nest-asyncio (run_sync in a notebook) finalizes them in the wrong task.
                    done = True
                    continue
                chunk = self._decode_event(data)
                text, finish, chunk_usage, chunk_model, has_tools = self._read_chunk(chunk, calls)
                if ttft is None and (text or has_tools):
                    ttft = perf_counter() - start
                if text:
                    parts.append(text)
                    if on_delta is not None:
                        on_delta(text)
                finish_reason = finish or finish_reason
                usage = chunk_usage or usage
                model = chunk_model or model
        if not done and finish_reason is None:
            raise self._error(
                TransientError,
                f"stream cut: the reply ended after {len(parts)} text chunks without a "
                "finish_reason or [DONE]",
                200,
            )
        text = "".join(parts)
        tool_calls = tuple(
            ToolCall(call_id, name, self._tool_arguments(name, "".join(chunks)))
            for call_id, name, chunks in (calls[i] for i in sorted(calls))
        )
        structured = None
        if request.response_format is not None and not tool_calls:
            structured = self._structured_text(text, request.response_format, finish_reason)
        return ChatResponse(
            text=text,
            model=model,
            usage=usage,
            finish_reason=finish_reason,
            tool_calls=tool_calls,
            structured=structured,
            latency=perf_counter() - start,
            ttft=ttft,
        )

    def _read_chunk(
        self, chunk: Any, calls: dict[int, list[Any]]
    ) -> tuple[str, str | None, Usage | None, str | None, bool]:
        """Text, finish_reason, usage, model and whether it carried tool deltas, of one chunk.

        Tool-call deltas are folded into ``calls`` (by index) as a side effect.
        """
        try:
            if "error" in chunk:
                raise self._stream_error(chunk["error"])
            counts = chunk.get("usage")
            usage = _usage(counts) if counts else None
            choice = next((c for c in chunk.get("choices") or () if c.get("index", 0) == 0), None)
            if choice is None:
                return "", None, usage, chunk.get("model"), False
            delta = choice.get("delta") or {}
            tool_deltas = delta.get("tool_calls") or ()
            for call in tool_deltas:
                slot = calls.setdefault(call.get("index", 0), ["", "", []])
                function = call.get("function") or {}
                slot[0] = call.get("id") or slot[0]
                slot[1] = function.get("name") or slot[1]
                if function.get("arguments"):
                    slot[2].append(function["arguments"])
            text = delta.get("content") or ""
            return text, choice.get("finish_reason"), usage, chunk.get("model"), bool(tool_deltas)
        except (AttributeError, TypeError) as exc:
            raise self._error(
                TransientError, f"malformed stream chunk: {str(chunk)[:200]}", 200
            ) from exc


def _usage(counts: dict[str, Any]) -> Usage:
    return Usage(counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0)
