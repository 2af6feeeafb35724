"""`chat_complete`: the atomic transport op, one model call as a RESPONSE value.

`LLMInference` is the module form (a prompt in, the reply text out, a
learnable system prompt); `chat_complete` is the functional form: chat
messages in, the whole reply out as a RESPONSE, read with `extract_text` /
`extract_meta`. Both record one LLM node while tracing and run through the
same scheduler, limits, retries, cache and checkpoints. The call itself is an
`LLMInference` (``plait.inference.ChatComplete``), a floor above this one,
reached through the `plait._upcalls` seam.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plait._upcalls import upcall


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
    return upcall("chat_complete")(
        alias,
        messages,
        system_prompt=system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        response_format=response_format,
        tools=tools,
        stream=stream,
        **request_options,
    )


__all__ = ["chat_complete"]
