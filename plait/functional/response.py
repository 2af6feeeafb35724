"""Response ops: the text of a model reply, and what is known about the call that made it.

An LLM node's output is a TEXT (or STRUCTURED) value whose ``meta`` carries
``usage``, ``finish_reason``, ``model``, ``tool_calls``, ``latency`` and
``ttft``; a RESPONSE value carries the same fields in its payload (a dict,
or a response object with those attributes). Both are read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.functional._core import describe, functional
from plait.functional.coercion import response_field
from plait.values import Value, ValueKind

META_KEYS = (
    "model",
    "finish_reason",
    "usage",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "tool_calls",
    "latency",
    "ttft",
)

# Provider spellings of the token counts, so a raw usage dict reads like plait's own.
_TOKEN_NAMES = {
    "input_tokens": ("input_tokens", "prompt_tokens"),
    "output_tokens": ("output_tokens", "completion_tokens"),
}


@functional(kind=ValueKind.TEXT)
def extract_text(value: Value) -> Value:
    """The reply text of a RESPONSE value; a TEXT value passes through unchanged."""
    if value.kind is ValueKind.TEXT:
        return value
    if value.kind is ValueKind.RESPONSE:
        text = response_field(value.payload, "text")
        if isinstance(text, str):
            return Value(ValueKind.TEXT, text)
        raise TypeError(f"extract_text: the RESPONSE has no text; got {describe(value)}")
    raise TypeError(
        f"extract_text: expected a RESPONSE or TEXT value, got {describe(value)}; "
        "use F.coerce(v, 'text') to turn other kinds into text"
    )


def _usage(raw: Any) -> dict[str, int] | None:
    if raw is None:
        return None
    counts = {}
    for name, spellings in _TOKEN_NAMES.items():
        found = (response_field(raw, s) for s in spellings)
        counts[name] = next((n for n in found if n is not None), 0)
    total = response_field(raw, "total_tokens")
    counts["total_tokens"] = (
        total if total is not None else counts["input_tokens"] + counts["output_tokens"]
    )
    return counts


def _tool_call(call: Any) -> dict[str, Any]:
    if isinstance(call, Mapping):
        return dict(call)
    return {name: response_field(call, name) for name in ("id", "name", "arguments")}


def call_info(value: Value) -> dict[str, Any]:
    """Every `META_KEYS` field known about ``value`` (None when unknown)."""
    sources: list[Any] = [value.meta]
    if value.kind is ValueKind.RESPONSE:
        sources.insert(0, value.payload)

    def raw(name: str) -> Any:
        return next((v for s in sources if (v := response_field(s, name)) is not None), None)

    usage = _usage(raw("usage"))
    calls = raw("tool_calls")
    info = {
        "model": raw("model"),
        "finish_reason": raw("finish_reason"),
        "usage": usage,
        "tool_calls": None if calls is None else [_tool_call(c) for c in calls],
        "latency": raw("latency"),
        "ttft": raw("ttft"),
    }
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        info[name] = usage[name] if usage else None
    return {key: info[key] for key in META_KEYS}


@functional(options=("key",))
def extract_meta(value: Value, key: str | None = None) -> Any:
    """Facts about the call that produced ``value``: all of them, or the one named ``key``.

    Without ``key`` the result is a STRUCTURED dict with every name in
    `META_KEYS` (None when unknown). A ``key`` outside `META_KEYS` is looked
    up in ``value.meta``; a key found nowhere is an ERROR listing the choices.
    """
    info = call_info(value)
    if key is None:
        return info
    if key in info:
        return info[key]
    if key in value.meta:
        return value.meta[key]
    extra = [k for k in value.meta if k not in info]
    raise LookupError(
        f"extract_meta: no {key!r} in this value's metadata; known keys are "
        f"{', '.join(META_KEYS)}"
        + (f", and this value also has {', '.join(extra)}" if extra else "")
    )
