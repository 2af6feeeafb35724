"""Checkpoints: every completed node appended to a JSONL file, so a re-run skips it.

A record is keyed by the graph's structural hash, the node id and a hash of
the node's inputs (for an LLM node, the whole request). Each record is one
line, written and flushed when the node completes, so a process killed at
any moment loses only the calls in flight; a half-written last line is
ignored on load. A file whose records all come from other graphs is refused:
its results belong to a different pipeline (or different prompts).

Only successful outputs whose payload is JSON are recorded; errors are not,
so failed nodes run again. Requests, headers and keys are never written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plait.clients.base import ChatRequest, Usage
from plait.errors import CheckpointError
from plait.graph_analysis import encode
from plait.schema import to_data
from plait.values import Value, ValueKind, unwrap

FORMAT = "plait-checkpoint/1"
_META_KEYS = ("usage", "finish_reason", "model", "tool_calls", "latency", "ttft")


def stable_hash(x: Any) -> str:
    """A deterministic digest of any argument structure (see `plait.graph_analysis.encode`)."""
    text = json.dumps(encode(x), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def request_key(request: ChatRequest) -> str:
    """The digest of everything in a request that can change the reply."""
    return stable_hash(
        {
            "model": request.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "response_format": request.response_format,
            "tools": request.tools,
            "options": dict(request.options),
        }
    )


class Checkpoint:
    """An append-only record of completed nodes at ``path``, shared by the graphs of one run."""

    def __init__(self, path: str | os.PathLike[str], graph_hashes: set[str]) -> None:
        self.path = Path(path)
        self._records: dict[tuple[str, str, str], dict[str, Any]] = {}
        known = self._load()
        if known and not known & graph_hashes:
            mine = ", ".join(sorted(h[:12] for h in graph_hashes))
            theirs = ", ".join(sorted(h[:12] for h in known))
            raise CheckpointError(
                f"checkpoint {str(self.path)!r} was written by a different pipeline (graph {theirs}); "
                f"this run's graph is {mine}. A graph changes when the pipeline's structure, prompts "
                "or settings change, and its old results would be wrong for it. Use a new checkpoint "
                "path, or delete the file to start over."
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        if self._needs_newline:
            self._file.write("\n")
        self._graphs_written = set(known)
        self.restored = 0

    def _load(self) -> set[str]:
        self._needs_newline = False
        if not self.path.exists():
            return set()
        graphs: set[str] = set()
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        complete = text.endswith("\n") or not text
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                if number == len(lines) and not complete:
                    self._needs_newline = True  # cut short by a crash mid-write: ignore it
                    continue
                raise CheckpointError(
                    f"checkpoint {str(self.path)!r} line {number} is not JSON ({exc}); the file is damaged"
                ) from exc
            if record.get("format") == FORMAT:
                graphs.add(record["graph"])
            elif "node" in record:
                self._records[(record["graph"], record["node"], record["inputs"])] = record
            else:
                raise CheckpointError(
                    f"checkpoint {str(self.path)!r} line {number} is not a plait checkpoint record"
                )
        return graphs

    def __len__(self) -> int:
        return len(self._records)

    def lookup(self, graph: str, node: str, inputs: str) -> dict[str, Any] | None:
        """The saved record for this node and inputs, if any."""
        return self._records.get((graph, node, inputs))

    def save(
        self,
        graph: str,
        node: str,
        inputs: str,
        value: Value,
        attempts: int,
        usage: Usage,
        cost: float,
    ) -> None:
        payload = to_data(unwrap(value.payload))  # a typed reply is saved as its JSON data
        try:
            encoded_payload = json.dumps(payload, ensure_ascii=False)
        except (TypeError, ValueError):
            return  # not JSON: this node simply runs again on resume
        if graph not in self._graphs_written:
            self._graphs_written.add(graph)
            self._write(json.dumps({"format": FORMAT, "graph": graph}))
        meta = {k: value.meta[k] for k in _META_KEYS if k in value.meta}
        record = {
            "graph": graph,
            "node": node,
            "inputs": inputs,
            "kind": value.kind.value,
            "attempts": attempts,
            "usage": [usage.input_tokens, usage.output_tokens],
            "cost": cost,
            "meta": meta,
        }
        line = json.dumps(record, ensure_ascii=False, default=str)
        self._write(line[:-1] + f',"payload":{encoded_payload}}}')
        self._records[(graph, node, inputs)] = {**record, "payload": payload}

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def restored_value(
    record: dict[str, Any], node_id: str, rebuild: Callable[[Any], Any] | None = None
) -> Value:
    """The `Value` a checkpoint record stands for; ``rebuild`` restores a typed payload's type."""
    kind = ValueKind(record["kind"])
    payload = record["payload"]
    if rebuild is not None and kind in (ValueKind.STRUCTURED, ValueKind.RESPONSE):
        payload = rebuild(payload)
    return Value(kind, payload, node_id, dict(record.get("meta") or {}))
