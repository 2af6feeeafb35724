"""Span names and attributes of run and node spans, and the secrets they must never carry.

LLM nodes follow the OpenTelemetry GenAI semantic conventions (the ``chat``
inference span); everything plait adds sits under ``plait.``. Message content
is added only when capture is on (see `plait.otel.instrument`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from plait.execution.result import CANCELLED, FAILED, SKIPPED, NodeRecord
from plait.resources.config import EndpointConfig, ResourceConfig, Secret

# The GenAI conventions moved from the core semantic conventions to their own repository
# (open-telemetry/semantic-conventions-genai); these are the names of its v0.1.0.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"  # replaces the deprecated gen_ai.system
AGENT_NAME = "gen_ai.agent.name"  # replaces gen_ai.workflow.name on invoke_workflow spans
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"

# Request fields that map one to one onto gen_ai.request.* attributes.
_REQUEST_OPTIONS = {
    "seed": "gen_ai.request.seed",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}


class Redactor:
    """Replaces every API key the run's endpoints could send with ``***`` in span text.

    Keys come from the endpoint configs (``api_key``) and the environment
    variables they name (``api_key_env``), read when the run's spans are built.
    """

    def __init__(self, resources: ResourceConfig | None) -> None:
        found = set()
        for _, config in resources.items() if resources is not None else ():
            if isinstance(config.api_key, Secret):
                found.add(config.api_key.reveal())
            elif isinstance(config.api_key, str):
                found.add(config.api_key)
            if config.api_key_env:
                found.add(os.environ.get(config.api_key_env, ""))
        # Longest first, so a key that contains another is replaced whole.
        self.secrets = sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """``attributes`` with every string (also inside sequences) redacted."""
        if not self.secrets:
            return attributes
        return {key: self._value(value) for key, value in attributes.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list | tuple):
            return [self(v) if isinstance(v, str) else v for v in value]
        return value


def node_span_name(record: NodeRecord, target: str, model: str = "") -> str:
    """``chat {model}`` for LLM nodes, the op name for ops, the module path for modules."""
    if record.kind == "llm":
        return f"chat {model}".rstrip()
    if record.kind == "op":
        return target or record.id
    return record.module_path or record.id


def node_attributes(record: NodeRecord, target: str, scope: tuple[str, ...]) -> dict[str, Any]:
    """The ``plait.*`` attributes every node span carries."""
    attributes: dict[str, Any] = {
        "plait.node.id": record.id,
        "plait.node.kind": record.kind,
        "plait.module_path": record.module_path,
        "plait.status": record.status,
        "plait.attempts": record.attempts,
        "plait.cost": record.cost,
    }
    # Flags only when set: most nodes have none, and every attribute costs the SDK some work.
    for flag in ("cached", "restored", "reused"):
        if getattr(record, flag):
            attributes[f"plait.{flag}"] = True
    if record.kind == "op" and target:
        attributes["plait.op"] = target
    if scope:
        attributes["plait.scope"] = list(scope)
    if record.endpoint is not None:
        attributes["plait.endpoint"] = record.endpoint
    if record.queued_at is not None and record.started_at is not None:
        attributes["plait.queue_wait"] = max(0.0, record.started_at - record.queued_at)
    if record.status in (FAILED, SKIPPED, CANCELLED) and record.error is not None:
        attributes[ERROR_TYPE] = type(record.error).__qualname__
    return attributes


def llm_attributes(record: NodeRecord, config: EndpointConfig | None) -> dict[str, Any]:
    """The GenAI convention attributes of an LLM node's ``chat`` span."""
    attributes: dict[str, Any] = {OPERATION: "chat"}
    if config is not None:
        attributes[PROVIDER] = config.provider
        if config.base_url:
            url = urlsplit(config.base_url)  # host and port only: never userinfo or query
            if url.hostname:
                attributes["server.address"] = url.hostname
            if url.port:
                attributes["server.port"] = url.port
    request = record.request
    if config is not None and config.model:
        attributes[REQUEST_MODEL] = (
            config.model
        )  # what a node skipped before its request would send
    if request is not None:
        attributes[REQUEST_MODEL] = request.model
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = float(request.temperature)
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        for option, name in _REQUEST_OPTIONS.items():
            value = request.options.get(option)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        stop = request.options.get("stop")
        if stop:
            attributes["gen_ai.request.stop_sequences"] = (
                [stop] if isinstance(stop, str) else list(stop)
            )
        attributes["gen_ai.output.type"] = "json" if request.response_format else "text"
    meta = record.output.meta if record.output is not None and record.status != FAILED else {}
    if meta.get("model"):
        attributes[RESPONSE_MODEL] = meta["model"]
    if meta.get("finish_reason"):
        attributes[FINISH_REASONS] = [meta["finish_reason"]]
    if record.ttft is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = record.ttft
    attributes[INPUT_TOKENS] = record.usage.input_tokens
    attributes[OUTPUT_TOKENS] = record.usage.output_tokens
    return attributes


def _parts(content: Any) -> list[dict[str, Any]]:
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return [{"type": "text", "content": text}]


def llm_content(record: NodeRecord) -> dict[str, Any]:
    """Prompt and completion of an LLM node as the conventions' JSON message attributes."""
    attributes: dict[str, Any] = {}
    request = record.request
    if request is not None:
        system = [m for m in request.messages if m.get("role") == "system"]
        if system:
            parts = [part for m in system for part in _parts(m.get("content"))]
            attributes[SYSTEM_INSTRUCTIONS] = json.dumps(parts)
        attributes[INPUT_MESSAGES] = json.dumps(
            [
                {"role": m.get("role"), "parts": _parts(m.get("content"))}
                for m in request.messages
                if m.get("role") != "system"
            ]
        )
    output = record.output
    if output is not None and not output.is_error:
        parts = _parts(output.payload)
        for call in output.meta.get("tool_calls") or ():
            parts.append({"type": "tool_call", **call})
        message: dict[str, Any] = {"role": "assistant", "parts": parts}
        if output.meta.get("finish_reason"):
            message["finish_reason"] = output.meta["finish_reason"]
        attributes[OUTPUT_MESSAGES] = json.dumps([message], default=str)
    return attributes


def value_text(values: Iterable[Any]) -> str:
    """Payloads as one readable string: a single text as is, anything else as JSON."""
    payloads = [getattr(v, "payload", v) for v in values]
    if len(payloads) == 1 and isinstance(payloads[0], str):
        return payloads[0]
    return json.dumps(payloads[0] if len(payloads) == 1 else payloads, default=str)
