"""The built-in simulated LLM: deterministic, offline, with scripted replies and faults.

In process, `SimulatedModel.handle` answers OpenAI chat-completions and
Anthropic Messages request bodies; `SimulatorServer` serves the same model
over HTTP on loopback (also ``python -m plait.simulator --port N``), so real
HTTP clients run end to end with no network and no key::

    settings = SimulatorSettings(latency=0.05, faults=[{"kind": "rate_limit", "rate": 0.1}])
    async with SimulatorServer(settings) as server:
        ...  # point any OpenAI-compatible client at server.url + "/v1"

See `plait.simulator.settings` for the rule and fault formats and
`plait.simulator.model` for the default replies.
"""

from __future__ import annotations

from plait.simulator.model import (
    RequestRecord,
    SimResponse,
    SimStats,
    SimulatedModel,
    request_digest,
)
from plait.simulator.server import SimulatorServer, serve_in_thread
from plait.simulator.settings import (
    FAULT_KINDS,
    FaultSpec,
    ReplyRule,
    RequestMatch,
    SimulatorSettings,
)
from plait.simulator.wire import SimStream, SseEvent, count_tokens

__all__ = [
    "FAULT_KINDS",
    "FaultSpec",
    "ReplyRule",
    "RequestMatch",
    "RequestRecord",
    "SimResponse",
    "SimStats",
    "SimStream",
    "SimulatedModel",
    "SimulatorServer",
    "SimulatorSettings",
    "SseEvent",
    "count_tokens",
    "request_digest",
    "serve_in_thread",
]
