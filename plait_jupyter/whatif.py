"""What the graph explorer's "Edit & re-run" shows: a node's editable prompt and a re-run's changes.

`edit_form` gives the full (unclipped) text of what a node received, so an
edit starts from exactly what was sent; `edits_from_form` turns the submitted
form into `RunResult.rerun` arguments, keeping only what changed. `rerun_info`
describes a finished re-run for the view: the changed nodes with a word-level
side-by-side diff, the reused ones, and whether the edit can be adopted.
Everything is plain text; the front-end puts it into text nodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from difflib import SequenceMatcher
from typing import Any

from plait.clients.base import ChatRequest
from plait.errors import ConfigError
from plait.execution.rerun import adoptable
from plait.execution.result import RunResult
from plait.graph import NodeKind
from plait.parameter import Parameter
from plait.values import Value, ValueKind, unwrap
from plait_jupyter.inspector import clip

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_INPUT_LABELS = {
    NodeKind.LLM: "Input (the user message)",
    NodeKind.OP: "Input (the first argument)",
    NodeKind.MODULE: "Input (the first argument)",
    NodeKind.INPUT: "Input value",
}


def _first_argument(inputs: Any) -> Any:
    if not inputs:
        return None
    args, kwargs = inputs
    return args[0] if args else next(iter(kwargs.values()), None)


def _editable(value: Any) -> tuple[str | None, str]:
    """(text, "text" | "json") to edit ``value`` as; (None, "text") when it cannot be."""
    if value is None or (isinstance(value, Value) and value.is_error):
        return "", "text"
    if isinstance(value, Value) and value.kind is ValueKind.TEXT:
        return str(value.payload), "text"
    plain = unwrap(value)
    if isinstance(plain, str):
        return plain, "text"
    try:
        return json.dumps(plain, indent=2, ensure_ascii=False), "json"
    except (TypeError, ValueError):
        return None, "text"


def _system_text(request: ChatRequest) -> str:
    return next((str(m["content"]) for m in request.messages if m.get("role") == "system"), "")


def edit_form(result: RunResult, node_id: str) -> dict[str, Any]:
    """What the editor starts from: the node's system prompt (LLM nodes), temperature and input."""
    node = result.graph.nodes[node_id]
    record = result.nodes.get(node_id)
    form: dict[str, Any] = {
        "kind": str(node.kind),
        "system_prompt": None,
        "temperature": None,
        "parameter": None,
        "input_label": _INPUT_LABELS.get(node.kind, "Input"),
    }
    if node.kind is NodeKind.LLM:
        request = record.request if record is not None else None
        form["system_prompt"] = (
            _system_text(request) if request is not None else node.module.system_text()
        )
        form["temperature"] = (
            request.temperature if request is not None else node.module.temperature
        )
        prompt = node.module.system_prompt
        form["parameter"] = prompt.name if isinstance(prompt, Parameter) else None
    if record is None:
        value = None
    elif node.kind is NodeKind.INPUT:
        value = record.output
    else:
        value = _first_argument(record.inputs)
    form["input"], form["input_kind"] = _editable(value)
    return form


def edits_from_form(
    node_id: str, form: dict[str, Any], submitted: dict[str, Any]
) -> dict[str, Any]:
    """`RunResult.rerun` keyword arguments for what ``submitted`` changed relative to ``form``."""
    edits: dict[str, Any] = {}
    system = submitted.get("system_prompt")
    if form["system_prompt"] is not None and system is not None and system != form["system_prompt"]:
        edits["system_prompt"] = str(system)
    text = submitted.get("input")
    if form["input"] is not None and text is not None and text != form["input"]:
        if form["input_kind"] == "json":
            try:
                edits["input"] = json.loads(text)
            except ValueError as exc:
                raise ConfigError(
                    f"the input of node {node_id!r} is structured, so it is edited as JSON, "
                    f"and the edit is not valid JSON ({exc}). Fix the JSON and re-run."
                ) from None
        else:
            edits["input"] = str(text)
    temperature = submitted.get("temperature")
    changed = temperature not in (None, "", form["temperature"])
    if form["kind"] == NodeKind.LLM and changed:
        edits["temperature"] = temperature
    return edits


def word_diff(before: str, after: str) -> tuple[list[list[str]], list[list[str]]]:
    """Both texts as runs of ``["=" | "-" | "+", text]``: kept, removed (before) and added (after)."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    left: list[list[str]] = []
    right: list[list[str]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            left.append(["=", "".join(a[i1:i2])])
            right.append(["=", "".join(b[j1:j2])])
            continue
        if i2 > i1:
            left.append(["-", "".join(a[i1:i2])])
        if j2 > j1:
            right.append(["+", "".join(b[j1:j2])])
    return left, right


def _edited(result: RunResult, node_id: str) -> list[str]:
    override = result.overrides.get(node_id)
    if override is None:
        return []
    fields = [("system prompt", override.system_prompt), ("input", override.input)]
    fields.append(("temperature", override.temperature))
    return [name for name, value in fields if value is not None]


def rerun_info(result: RunResult, node_id: str, key_of: Callable[[str], str]) -> dict[str, Any]:
    """The view's ``whatif`` state for ``result``, a re-run at ``node_id`` (keys via ``key_of``)."""
    changes = {}
    for change in result.diff():
        left, right = word_diff(clip(change.before), clip(change.after))
        changes[key_of(change.node_id)] = {"before": left, "after": right}
    parameter = adoptable(result, node_id)
    return {
        "available": True,
        "status": "done",
        "node": key_of(node_id),
        "edited": _edited(result, node_id),
        "changed": list(changes),
        "changes": changes,
        "rerun": [key_of(nid) for nid, r in result.nodes.items() if not r.reused],
        "reused": [key_of(nid) for nid, r in result.nodes.items() if r.reused],
        "adopt": {"parameter": parameter, "done": False} if parameter else None,
        "message": "",
    }
