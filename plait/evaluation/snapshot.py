"""A run's records as JSON-able, display-ready data: what the inspector shows and the store keeps.

`run_snapshot` is one run as plain data (its graph's JSON form and every
node's details), so a run saved in a `RunStore` opens in the graph view after
a restart exactly as a live one does. Everything is plain text (the
front-end puts it into text nodes, never HTML), cut to `TEXT_LIMIT` characters. Request options whose key looks like a
credential are replaced by ``"***"``; API keys are not part of a request in
the first place (clients add them as headers).
"""

from __future__ import annotations

import json
from typing import Any

from plait._tree import redact
from plait.clients.base import ChatRequest
from plait.execution.result import DONE, NodeRecord, RunResult
from plait.values import Value, ValueKind, unwrap, valueify

TEXT_LIMIT = 4000


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=repr)


def value_text(value: Any, limit: int = TEXT_LIMIT) -> tuple[str, str]:
    """(kind, text) of a `Value` or plain object, as the inspector shows it."""
    value = valueify(value)
    payload = value.payload
    if value.kind is ValueKind.ERROR:
        text = f"{type(payload).__name__}: {payload}"
    elif value.kind is ValueKind.TEXT and isinstance(payload, str):
        text = payload
    elif value.kind is ValueKind.STRUCTURED:
        text = _json(unwrap(value))
    elif value.kind is ValueKind.BINARY:
        text = f"<{len(payload):,} bytes>"
    else:
        text = repr(unwrap(value))
    return str(value.kind), clip(text, limit)


def request_info(request: ChatRequest) -> dict[str, Any]:
    """The prompt actually sent: model, settings and messages."""
    settings = []
    if request.temperature is not None:
        settings.append(f"temperature={request.temperature}")
    if request.max_tokens is not None:
        settings.append(f"max_tokens={request.max_tokens}")
    if request.response_format is not None:
        settings.append("response_format=JSON schema")
    if request.tools:
        names = [str(t.get("function", t).get("name", "?")) for t in request.tools]
        settings.append(f"tools={', '.join(names)}")
    if request.stream:
        settings.append("stream")
    settings.extend(f"{k}={v!r}" for k, v in redact(dict(request.options)).items())
    messages = []
    for message in request.messages:
        content = message.get("content", "")
        text = content if isinstance(content, str) else _json(content)
        if message.get("tool_calls"):
            text += "\n" + _json(message["tool_calls"])
        messages.append({"role": str(message.get("role", "")), "content": clip(text)})
    return {"model": request.model, "settings": ", ".join(settings), "messages": messages}


def error_info(error: BaseException | None, output: Value | None) -> dict[str, Any] | None:
    """Type, message and cause chain of a node's failure (or of the input failure it carried)."""
    if error is None and output is not None and output.is_error:
        error = output.payload if isinstance(output.payload, BaseException) else None
    if error is None:
        return None
    causes: list[dict[str, str]] = []
    seen = {id(error)}
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    while cause is not None and id(cause) not in seen and len(causes) < 5:
        seen.add(id(cause))
        causes.append({"type": type(cause).__name__, "message": clip(str(cause))})
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    note = ""
    meta = output.meta if output is not None else {}
    if meta.get("skipped_because"):
        note = f"not run: its input {meta['skipped_because']!r} failed"
    elif meta.get("op"):
        note = f"from op {meta['op']!r}"
    return {
        "type": type(error).__name__,
        "message": clip(str(error)),
        "causes": causes,
        "note": note,
    }


def _inputs(record: NodeRecord) -> list[dict[str, str]]:
    if not record.inputs:
        return []
    args, kwargs = record.inputs
    shown = [(f"arg {i}", v) for i, v in enumerate(args)] + list(kwargs.items())
    out = []
    for label, value in shown:
        kind, text = value_text(value)
        out.append({"label": str(label), "kind": kind, "text": text})
    return out


def view_state(record: NodeRecord) -> str:
    """The state a view shows for a node: its status, or "cached" for a reused result."""
    if record.status == DONE and (record.cached or record.restored):
        return "cached"
    return record.status


def node_details(
    record: NodeRecord,
    *,
    stream: str = "",
    retries: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """Everything the inspector shows about one node of a run."""
    output = None
    if record.output is not None and not record.output.is_error:
        kind, text = value_text(record.output)
        meta = {k: v for k, v in record.output.meta.items() if k != "tool_calls" or v}
        output = {"kind": kind, "text": text, "meta": clip(_json(meta)) if meta else ""}
    return {
        "status": view_state(record),
        "endpoint": record.endpoint,
        "attempts": record.attempts,
        "queued_at": record.queued_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": record.duration,
        "ttft": record.ttft,
        "input_tokens": record.usage.input_tokens,
        "output_tokens": record.usage.output_tokens,
        "cost": record.cost,
        "cached": record.cached,
        "restored": record.restored,
        "inputs": _inputs(record),
        "request": request_info(record.request) if record.request is not None else None,
        "output": output,
        "error": error_info(record.error, record.output)
        if record.status != DONE or (record.output is not None and record.output.is_error)
        else None,
        "stream": stream[-TEXT_LIMIT:] if stream and output is None else None,
        "retries": list(retries),
    }


SNAPSHOT_FORMAT = "plait.RunSnapshot/1"


def run_snapshot(result: RunResult, graph: Any = None) -> dict[str, Any]:
    """``result`` as plain data: the graph (`InferenceGraph.to_dict`) and each node's details.

    ``graph`` replaces the graph's data (the run store passes the graph's hash,
    and keeps each graph once).
    """
    nodes = result.graph.nodes.values()
    return {
        "format": SNAPSHOT_FORMAT,
        "status": result.status,
        "makespan": result.makespan,
        "graph": result.graph.to_dict() if graph is None else graph,
        "root": type(result.graph.root).__name__ if result.graph.root is not None else "graph",
        # What a recorded (define-by-run) graph adds to its JSON form: the view draws them.
        "recorded": result.graph.dynamic,
        "control": {n.id: list(n.control) for n in nodes if n.control},
        "call_keys": {n.id: n.call_key for n in nodes if n.call_key},
        "nodes": {node_id: node_details(record) for node_id, record in result.nodes.items()},
    }
