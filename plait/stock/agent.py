"""`ToolAgent`: call the model, run the tools it asks for, call it again, until it answers.

Written on the public define-by-run API only: an ``async def forward`` in
which every model call and every tool call is a node of the run, so the whole
trajectory (model → tools → model ...) is in ``RunResult.graph``. Messages use
the OpenAI tool-call wire format, which the Anthropic client converts.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from plait.errors import CallError, ConfigError, LoopLimitError
from plait.execution.dynamic import reply
from plait.inference import LLMInference
from plait.module import Module
from plait.parameter import Parameter
from plait.schema import schema_of
from plait.tracing import Op

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARG_LINE = re.compile(r"^\s*(?::param\s+)?(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def tool_schema(tool: Op) -> dict[str, Any]:
    """The OpenAI function tool for an ``@plait.op`` function, read from its signature.

    Type hints give each argument's JSON schema (as for ``response_format``),
    a default makes it optional; the docstring's first paragraph is the
    description, and its ``Args:`` lines (or ``:param x:``) describe arguments.
    """
    if not isinstance(tool, Op):
        raise ConfigError(
            f"a tool must be an @plait.op function; got {type(tool).__name__} {tool!r:.60}. "
            "Decorate it: @plait.op above `def my_tool(...)`"
        )
    name = tool.name
    if not _TOOL_NAME.match(name):
        raise ConfigError(
            f"tool name {name!r} is not accepted by the providers: use 1-64 letters, digits, "
            "'_' or '-' (rename the function, or @plait.op(name=...))"
        )
    try:
        hints = typing.get_type_hints(tool.fn, include_extras=True)
    except NameError as exc:
        raise ConfigError(
            f"tool {name!r}: cannot resolve the annotation {exc.name!r}; "
            "define the types it refers to at module level"
        ) from exc
    summary, described = _read_docstring(inspect.getdoc(tool.fn) or "")
    fields: dict[str, Any] = {}
    for param in inspect.signature(tool.fn).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise ConfigError(
                f"tool {name!r}: argument {param.name!r} is {param.kind.description}; the model "
                "passes arguments by name, so use named arguments only"
            )
        hint = hints.get(param.name, Any)
        if param.name in described and typing.get_origin(hint) is not typing.Annotated:
            hint = typing.Annotated[hint, described[param.name]]
        fields[param.name] = hint if param.default is param.empty else NotRequired[hint]
    parameters = schema_of(TypedDict(name, fields))  # type: ignore[operator]
    parameters.pop("title", None)
    function = {"name": name, "parameters": parameters}
    if summary:
        function["description"] = summary
    return {"type": "function", "function": function}


def _read_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, and argument descriptions from ``Args:`` / ``:param x:`` lines."""
    summary = doc.split("\n\n", 1)[0].strip() if doc else ""
    if summary.lower().startswith(("args:", ":param")):
        summary = ""
    described: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args and stripped.endswith(":") and not line.startswith(" "):
            in_args = False  # the next section (Returns:, Raises:)
        found = _ARG_LINE.match(line) if (in_args or stripped.startswith(":param")) else None
        if found and found.group(2):
            described[found.group(1)] = found.group(2).strip()
    return " ".join(summary.split()), described


class ToolAgent(Module):
    """A tool-calling loop over the model behind ``alias``; tools are ``@plait.op`` functions.

    Each step calls the model with the conversation so far; the tools it asks
    for run as op calls, all at once when it asks for several, and their
    results (or their errors, as text) go back to it. The answer is the first
    reply without tool calls. ``max_steps`` bounds the model calls: if the
    last one still asks for tools, `LoopLimitError` is raised (those tools are
    not run), so a run never ends on a half-done answer that looks finished.
    Other keyword arguments go to the `LLMInference`.

    >>> agent = ToolAgent("smart", tools=[], system_prompt="Answer briefly.", max_steps=4)
    """

    def __init__(
        self,
        alias: str,
        tools: Sequence[Op],
        *,
        system_prompt: str | Parameter = "",
        max_steps: int = 8,
        **llm_options: Any,
    ) -> None:
        super().__init__()
        if isinstance(tools, Op) or not isinstance(tools, Sequence):
            raise ConfigError(
                f"ToolAgent(tools=...) takes a list of @plait.op functions; got {tools!r:.60}"
            )
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigError(f"ToolAgent(max_steps=...) must be an int >= 1; got {max_steps!r}")
        specs = [tool_schema(tool) for tool in tools]
        names = [spec["function"]["name"] for spec in specs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"ToolAgent: two tools are named {', '.join(map(repr, twice))}; the model calls "
                "tools by name, so give each a distinct one (@plait.op(name=...))"
            )
        self.tools: dict[str, Op] = dict(zip(names, tools, strict=True))
        self.max_steps = max_steps
        self.llm = LLMInference(alias, system_prompt, tools=specs or None, **llm_options)

    async def forward(self, task: Any) -> Any:
        messages = _start_messages(task)
        step = 0
        while True:
            step += 1
            answer = self.llm(messages)
            whole = await reply(answer)
            calls = whole.meta.get("tool_calls") or []
            if not calls:
                return answer
            if step == self.max_steps:
                asked = ", ".join(dict.fromkeys(call["name"] for call in calls))
                raise LoopLimitError(
                    f"ToolAgent made {step} model call{'s' if step > 1 else ''} (max_steps="
                    f"{self.max_steps}) and the model still asks for tools ({asked}); raise "
                    "max_steps, or tell it in the system prompt to answer with what it has",
                    steps=step,
                    last=whole,
                )
            messages.append(_assistant_turn(answer, calls))
            started = [self._start(call) for call in calls]  # every tool asked for, at once
            for call, result in zip(calls, started, strict=True):
                content = await self._tool_result(result)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})

    def _start(self, call: Mapping[str, Any]) -> Any:
        """The placeholder of the tool call the model asked for, or the error that stops it."""
        tool = self.tools.get(call["name"])
        if tool is None:
            return LookupError(
                f"there is no tool {call['name']!r}; the tools are {', '.join(self.tools)}"
            )
        arguments = call.get("arguments") or {}
        try:
            inspect.signature(tool.fn).bind(**arguments)
        except TypeError as exc:
            return TypeError(f"bad arguments for {call['name']}: {exc}")
        return tool(**arguments)

    async def _tool_result(self, started: Any) -> Any:
        """What goes back to the model: the tool's text (its placeholder), JSON, or the error."""
        if isinstance(started, Exception):
            return f"Error: {started}"
        try:
            value = await started
        except CallError as exc:
            return f"Error: {type(exc.cause).__name__}: {exc.cause}"
        # A text result is passed on as its placeholder: the next model call depends on it.
        return started if isinstance(value, str) else json.dumps(value, default=str)


def _start_messages(task: Any) -> list[Any]:
    """The conversation: ``task`` as a user message, or a list of chat messages as given."""
    if isinstance(task, list | tuple) and all(isinstance(m, Mapping) and "role" in m for m in task):
        return list(task)
    return [{"role": "user", "content": task}]


def _assistant_turn(answer: Any, calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The model's tool-calling turn, in the OpenAI wire format."""
    return {
        "role": "assistant",
        "content": answer,
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in calls
        ],
    }
