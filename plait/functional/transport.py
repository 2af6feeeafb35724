"""`chat_complete`: the atomic transport op, one model call as a RESPONSE value.

`LLMInference` is the module form (a prompt in, the reply text out, a
learnable system prompt); `chat_complete` is the functional form: chat
messages in, the whole reply out as a RESPONSE, read with `extract_text` /
`extract_meta`. Both record one LLM node while tracing and run through the
same scheduler, limits, retries, cache and checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plait.clients.base import ChatResponse
from plait.inference import LLMInference
from plait.values import ValueKind


class ChatComplete(LLMInference):
    """The node `chat_complete` records: an `LLMInference` whose output is the whole reply."""

    output_kind = ValueKind.RESPONSE

    def reply_payload(self, response: ChatResponse) -> dict[str, Any]:
        """The reply as a RESPONSE payload: text, structured data, model, usage, tool calls, timing."""
        structured = super().reply_payload(response) if self.response_schema is not None else None
        usage = response.usage
        return {
            "text": response.text,
            "structured": structured,
            "model": response.model,
            "finish_reason": response.finish_reason,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                for c in response.tool_calls
            ],
            "latency": response.latency,
            "ttft": response.ttft,
        }

    def restored(self, payload: Any) -> Any:
        # A checkpointed RESPONSE payload is plain data; rebuild its typed part.
        if isinstance(payload, Mapping) and payload.get("structured") is not None:
            return {**payload, "structured": self.typed(payload["structured"])}
        return payload


def chat_complete(
    alias: str,
    messages: str | Sequence[Mapping[str, Any]] | Any,
    *,
    system_prompt: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
    response_format: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    stream: bool = False,
    **request_options: Any,
) -> Any:
    """Send ``messages`` (chat messages, or one user text) to the endpoint ``alias``: a RESPONSE.

    Inside a traced ``forward`` it records one LLM node (its messages may hold
    traced values and f-strings) whose output is a RESPONSE value: ``text``,
    ``structured`` (typed as ``response_format``), ``model``,
    ``finish_reason``, ``usage``, ``tool_calls``, ``latency``, ``ttft``.
    Outside a run it raises, like `LLMInference`.

        reply = F.chat_complete("fast", [{"role": "user", "content": f"Summarize {text}"}])
        F.extract_text(reply), F.extract_meta(reply, "usage")
    """
    call = ChatComplete(
        alias,
        system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        response_format=response_format,
        tools=tools,
        stream=stream,
        **request_options,
    )
    return call(messages)


__all__ = ["ChatComplete", "chat_complete"]
