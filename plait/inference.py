"""`LLMInference`: the atomic model call, bound to an endpoint by alias at run time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plait.clients.base import ChatRequest, ChatResponse
from plait.errors import ConfigError, ExecutionError, TransientError
from plait.module import Module
from plait.parameter import Parameter
from plait.schema import instantiate, schema_of
from plait.values import ValueKind

# Request fields LLMInference sets itself; passing them as extra options would be ambiguous.
_RESERVED = frozenset(
    {"model", "messages", "stream", "response_format", "tools", "temperature", "max_tokens"}
)


def _normalize_tool(tool: Any, i: int) -> dict[str, Any]:
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
        spec = tool["function"]
    elif isinstance(tool, Mapping) and "name" in tool:
        spec = tool
    else:
        raise ConfigError(
            f"tools[{i}] must be an OpenAI-style function tool "
            '({"type": "function", "function": {"name": ..., "parameters": {...}}}) '
            f'or its short form ({{"name": ..., "parameters": {{...}}}}); got {tool!r:.80}'
        )
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ConfigError(f"tools[{i}] needs a non-empty string 'name'; got {spec.get('name')!r}")
    function = {"name": spec["name"], "parameters": spec.get("parameters", {"type": "object"})}
    if spec.get("description"):
        function["description"] = spec["description"]
    return {"type": "function", "function": function}


class LLMInference(Module):
    """One call to the model behind ``alias``; becomes one node of the traced graph.

    ``system_prompt`` is a string or a `Parameter` (learnable, read at run
    time). ``response_format`` is a pydantic model, a dataclass, a TypedDict
    or a JSON schema: the reply is then parsed and validated into a STRUCTURED
    value whose payload is an instance of that type (a dict for a TypedDict or
    a schema); a reply that does not validate is retried like a bad body.
    ``stream=True`` streams the reply token by token (the output is the same
    full text). Other keyword arguments (``seed``, ``top_p``, ``stop``...) are
    sent with the request unchanged.

    >>> summarize = LLMInference("fast", system_prompt="Summarize the input.")
    """

    _is_leaf = True

    @property
    def output_kind(self) -> ValueKind:
        """The kind of this call's output: STRUCTURED with a ``response_format``, else TEXT."""
        return ValueKind.TEXT if self.response_schema is None else ValueKind.STRUCTURED

    def __init__(
        self,
        alias: str,
        system_prompt: str | Parameter = "",
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: Mapping[str, Any] | type | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = False,
        **request_options: Any,
    ) -> None:
        super().__init__()
        problems = []
        if not isinstance(alias, str) or not alias.strip():
            problems.append(f"alias must be a non-empty string naming an endpoint; got {alias!r}")
        if not isinstance(system_prompt, str | Parameter):
            problems.append(
                f"system_prompt must be a str or a Parameter; got {type(system_prompt).__name__}"
            )
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not 0 <= temperature <= 2
        ):
            problems.append(f"temperature must be a number from 0 to 2; got {temperature!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            problems.append(f"max_tokens must be a positive int; got {max_tokens!r}")
        if not isinstance(stream, bool):
            problems.append(f"stream must be True or False; got {stream!r}")
        if tools is not None and (
            isinstance(tools, str | Mapping) or not isinstance(tools, Sequence)
        ):
            problems.append(f"tools must be a list of tool specs, or None; got {tools!r:.60}")
        clash = sorted(_RESERVED & request_options.keys())
        if clash:
            problems.append(f"{', '.join(clash)} cannot be passed as extra request options")
        if problems:
            raise ConfigError(f"LLMInference({alias!r}): " + "; ".join(problems))
        self.alias = alias
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.response_format = response_format
        self.response_schema = None if response_format is None else schema_of(response_format)
        self.tools = (
            None if tools is None else tuple(_normalize_tool(t, i) for i, t in enumerate(tools))
        )
        self.stream = stream
        self.request_options = dict(request_options)

    def system_text(self) -> str:
        """The system prompt as it reads now (a parameter's current value)."""
        prompt = self.system_prompt
        return str(prompt.value) if isinstance(prompt, Parameter) else prompt

    def build_request(
        self, prompt: Any, *, model: str, system_prompt: str | None = None
    ) -> ChatRequest:
        """The request this call sends for input ``prompt`` (text, or a list of chat messages)."""
        system = self.system_text() if system_prompt is None else system_prompt
        if isinstance(prompt, list | tuple) and all(
            isinstance(m, Mapping) and "role" in m for m in prompt
        ):
            messages = tuple(prompt)
        else:
            messages = (
                {"role": "user", "content": prompt if isinstance(prompt, str) else str(prompt)},
            )
        if system:
            messages = ({"role": "system", "content": system}, *messages)
        return ChatRequest(
            model=model,
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            response_format=self.response_schema,
            tools=self.tools,
            stream=self.stream,
            options=self.request_options,
        )

    def typed(self, data: Any) -> Any:
        """A structured reply's JSON ``data`` as the ``response_format`` type (ValueError if it does not fit)."""
        return data if data is None else instantiate(data, self.response_format)

    def restored(self, payload: Any) -> Any:
        """A checkpointed output payload (plain JSON data) as this call returns it."""
        return self.typed(payload)

    def reply_payload(self, response: ChatResponse) -> Any:
        """What this call's output holds for ``response``: its text, or the typed structured reply.

        A reply that does not validate raises `TransientError` (so it is retried),
        with the validation message.
        """
        if self.response_schema is None:
            return response.text
        try:
            return self.typed(response.structured)
        except ValueError as exc:
            name = getattr(self.response_format, "__name__", "the response_format")
            raise TransientError(
                f"the reply does not validate as {name}: {exc}", status=200, endpoint=self.alias
            ) from exc

    def forward(self, prompt: Any) -> Any:
        raise ExecutionError(
            f"LLMInference({self.alias!r}) was called outside a plait run, so there is no "
            "reply to return yet. Run the module that contains it: "
            "`await plait.run(module, input, resources=...)`, `plait.run_sync(...)`, or "
            "`module.bind(resources=...)` and then `await module(input)`."
        )

    def extra_repr(self) -> str:
        prompt = self.system_prompt
        if isinstance(prompt, Parameter):
            shown = f"Parameter({prompt.name!r})"
        else:
            shown = repr(prompt if len(prompt) <= 40 else prompt[:40] + "...")
        parts = [repr(self.alias), f"system_prompt={shown}"]
        for name in ("temperature", "max_tokens"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.response_format is not None:
            parts.append(f"response_format={getattr(self.response_format, '__name__', 'schema')}")
        if self.tools:
            parts.append(f"tools=[{', '.join(t['function']['name'] for t in self.tools)}]")
        if self.stream:
            parts.append("stream=True")
        return ", ".join(parts)


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
    """The implementation of `plait.functional.chat_complete`: one `ChatComplete` call."""
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
