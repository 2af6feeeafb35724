"""Provider clients: one `ChatClient` protocol, spoken over httpx to each wire format.

`OpenAIClient` serves any OpenAI-compatible chat-completions server,
`AnthropicClient` the Messages API. Both map every failure into
`plait.errors.ProviderError` subclasses at this boundary.
"""

from __future__ import annotations

from plait.clients.anthropic import AnthropicClient
from plait.clients.base import (
    ChatClient,
    ChatRequest,
    ChatResponse,
    DeltaCallback,
    Message,
    ToolCall,
    Usage,
)
from plait.clients.openai import OpenAIClient

__all__ = [
    "AnthropicClient",
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "DeltaCallback",
    "Message",
    "OpenAIClient",
    "ToolCall",
    "Usage",
]
