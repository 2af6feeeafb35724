"""The provider-neutral request/response records and the one-method client seam.

Everything above the clients (resources, execution, the simulator's
in-process client) speaks these types; each provider module translates them
to and from its wire format and maps its failures into `plait.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = Mapping[str, Any]
"""One chat message in OpenAI form: ``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``."""

DeltaCallback = Callable[[str], None]
"""Called with each text chunk of a streamed reply, in order."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request, independent of provider.

    ``response_format`` is a bare JSON schema (``{"type": "object", ...}``) or
    None; each client wraps it in its provider's wire form. ``tools`` are
    OpenAI-style function tools. ``options`` carries any further request fields
    (``seed``, ``top_p``, ``stop``...), passed through unchanged.
    """

    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: Mapping[str, Any] | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    stream: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is already parsed from JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A completed reply.

    ``text`` is the full reply text (streamed or not); ``structured`` the parsed
    JSON when the request had a ``response_format``; ``ttft`` the time to the
    first streamed token in seconds (None when not streamed); ``latency`` the
    wall time of the whole request in seconds.
    """

    text: str
    model: str
    usage: Usage = Usage()
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    structured: Any = None
    latency: float = 0.0
    ttft: float | None = None


class ChatClient(Protocol):
    """What the runtime needs from a provider: one request in, one reply out."""

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        """Send ``request``; stream text chunks to ``on_delta`` when ``request.stream``.

        Raises a `plait.errors.ProviderError` subclass on any failure.
        """
        ...

    async def aclose(self) -> None:
        """Release the connection pool."""
        ...
