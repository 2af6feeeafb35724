"""Helpers for execution tests: resources pointing at a loopback simulator, and an eager reference.

`eager` is an independent reference interpreter: it runs ``forward`` as plain
Python, and each `LLMInference` call is a blocking HTTP request written here
with httpx (not through plait's client or scheduler). Traced execution must
return exactly what it returns.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from plait import LLMInference, ResourceConfig, unwrap


def http_resources(url: str, *aliases: str, **fields: Any) -> ResourceConfig:
    """Endpoints that speak OpenAI's wire format to the simulator at ``url`` (no key needed)."""
    return ResourceConfig(
        {
            alias: {
                "provider": "openai",
                "base_url": url + "/v1",
                "model": f"sim-{alias}",
                **fields,
            }
            for alias in aliases
        }
    )


@contextmanager
def eager_mode(url: str, resources: ResourceConfig) -> Iterator[None]:
    """Within the block, calling a module runs its forward eagerly against the simulator."""
    client = httpx.Client(base_url=url + "/v1", timeout=30)

    def forward(self: LLMInference, prompt: Any) -> Any:
        system = self.system_text()
        messages = [{"role": "system", "content": system}] if system else []
        messages.append(
            {"role": "user", "content": prompt if isinstance(prompt, str) else str(prompt)}
        )
        body: dict[str, Any] = {
            "model": resources[self.alias].model,
            "messages": messages,
            "stream": False,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": self.response_schema.get("title", "response"),
                    "schema": self.response_schema,
                    "strict": True,
                },
            }
        body.update(self.request_options)
        reply = client.post("/chat/completions", json=body).json()
        text = reply["choices"][0]["message"]["content"]
        if self.response_schema is None:
            return text
        data = json.loads(text)
        spec = self.response_format  # the declared type, built as a user would by hand
        if hasattr(spec, "model_validate"):
            return spec.model_validate(data)
        if dataclasses.is_dataclass(spec):
            return spec(**data)
        return data

    original = LLMInference.forward
    LLMInference.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        LLMInference.forward = original  # type: ignore[method-assign]
        client.close()


def eager(module: Any, *args: Any, url: str, resources: ResourceConfig, **kwargs: Any) -> Any:
    with eager_mode(url, resources):
        return unwrap(module(*args, **kwargs))
