"""What the node inspector shows: see `plait.evaluation.snapshot`, which the run store shares."""

from __future__ import annotations

from plait.evaluation.snapshot import (
    TEXT_LIMIT,
    clip,
    error_info,
    node_details,
    redact,
    request_info,
    value_text,
    view_state,
)

__all__ = [
    "TEXT_LIMIT",
    "clip",
    "error_info",
    "node_details",
    "redact",
    "request_info",
    "value_text",
    "view_state",
]
