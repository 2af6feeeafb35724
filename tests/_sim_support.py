"""Test helpers around the simulator: served instances, request bodies, SSE parsing.

async with sim_server(latency=0.01) as server:      # on the test's own loop
    httpx.AsyncClient(base_url=server.url + "/v1")
with sim_server_thread(faults=[...]) as server:       # sync tests: own loop, own thread
    httpx.Client(base_url=server.url + "/v1")
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from plait.simulator import SimulatorServer, SimulatorSettings, serve_in_thread


def _settings(settings: SimulatorSettings | None, fields: dict[str, Any]) -> SimulatorSettings:
    if settings is not None and fields:
        raise TypeError("pass either a SimulatorSettings or its fields as keywords, not both")
    return settings if settings is not None else SimulatorSettings(**fields)


@asynccontextmanager
async def sim_server(
    settings: SimulatorSettings | None = None, **fields: Any
) -> AsyncIterator[SimulatorServer]:
    """A simulator served on a free loopback port of the running loop."""
    async with SimulatorServer(_settings(settings, fields)) as server:
        yield server


@contextmanager
def sim_server_thread(
    settings: SimulatorSettings | None = None, **fields: Any
) -> Iterator[SimulatorServer]:
    """A simulator served on a free loopback port by a background thread."""
    with serve_in_thread(_settings(settings, fields)) as server:
        yield server


def chat_body(
    user: str = "hello", *, model: str = "sim-model", system: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An OpenAI chat-completions request body."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": user})
    return {"model": model, "messages": messages, **fields}


def messages_body(
    user: str = "hello",
    *,
    model: str = "sim-claude",
    system: str | None = None,
    max_tokens: int = 256,
    **fields: Any,
) -> dict[str, Any]:
    """An Anthropic Messages request body."""
    body = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": user}],
        **fields,
    }
    if system is not None:
        body["system"] = system
    return body


def sse_events(lines: Iterable[str]) -> list[tuple[str | None, Any]]:
    """``(event name, data)`` for each SSE event; data is parsed JSON, or the raw string."""
    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            raw = line[5:].strip()
            events.append((name, raw if raw == "[DONE]" else json.loads(raw)))
            name = None
    return events


def openai_stream_text(events: Iterable[tuple[str | None, Any]]) -> str:
    """The reply text carried by OpenAI chat.completion.chunk events."""
    return "".join(
        choice["delta"].get("content") or ""
        for _, data in events
        if isinstance(data, dict)
        for choice in data["choices"]
    )
