"""Tracing: turning ``forward()`` into an `InferenceGraph` (see `plait.tracing.tracer`)."""

from plait.ops import Op, op
from plait.tracing.proxy import TracedValue
from plait.tracing.tracer import Tracer, trace

__all__ = ["Op", "TracedValue", "Tracer", "op", "trace"]
