"""The response cache: explicit, off by default, keyed on the full request.

Enable it per run (``cache=True`` for this process's memory, or a directory
path to keep responses on disk across processes) or per endpoint
(``EndpointConfig(cache=...)``). A hit completes the node without a request
and costs nothing; it is marked ``cached`` in the node record and events.
The key covers the endpoint (provider, base URL, model) and every request
field that can change the reply; temperature included, so a cached run at
temperature > 0 returns the same sample, which is the point of asking for it.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from plait.clients.base import ChatResponse, ToolCall, Usage
from plait.execution.checkpoint import stable_hash


def cache_key(endpoint_identity: tuple[str, str | None, str], request_key: str) -> str:
    return stable_hash([list(endpoint_identity), request_key])


class ResponseCache:
    """Responses by request key, in memory (bounded, least recently used first out) and optionally on disk."""

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, max_entries: int = 100_000
    ) -> None:
        self.directory = None if directory is None else Path(directory)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.hits = self.misses = 0
        self._file = None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / "responses.jsonl"
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a crash
                    self._remember(entry["key"], entry)
            self._file = path.open("a", encoding="utf-8")

    def _remember(self, key: str, entry: dict[str, Any]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: str) -> ChatResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return ChatResponse(
            text=entry["text"],
            model=entry["model"],
            usage=Usage(*entry["usage"]),
            finish_reason=entry["finish_reason"],
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c["arguments"]) for c in entry["tool_calls"]
            ),
            structured=entry["structured"],
            latency=0.0,
        )

    def put(self, key: str, response: ChatResponse) -> None:
        entry = {
            "key": key,
            "text": response.text,
            "model": response.model,
            "usage": [response.usage.input_tokens, response.usage.output_tokens],
            "finish_reason": response.finish_reason,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                for c in response.tool_calls
            ],
            "structured": response.structured,
        }
        self._remember(key, entry)
        if self._file is not None:
            self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._file.flush()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        where = f"directory={str(self.directory)!r}, " if self.directory else ""
        return f"ResponseCache({where}entries={len(self)}, hits={self.hits}, misses={self.misses})"


_MEMORY = ResponseCache()
_ON_DISK: dict[Path, ResponseCache] = {}


def cache_for(setting: bool | str | os.PathLike[str] | None) -> ResponseCache | None:
    """The cache a ``cache=`` setting names: None/False → none, True → this process's memory, a path → that directory."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return _MEMORY
    path = Path(setting).resolve()
    cache = _ON_DISK.get(path)
    if cache is None:
        cache = _ON_DISK[path] = ResponseCache(path)
    return cache
