"""OpenTelemetry export: every run becomes a trace that Phoenix, Langfuse, Jaeger... can show.

    from plait import otel

    otel.instrument()  # spans go to the global TracerProvider, or pass tracer_provider=
    ...                # every run, batch and what-if re-run in the process is exported
    otel.uninstrument()

A run is one trace: a run span (``invoke_workflow {Module}``) with a child per
node; LLM nodes are GenAI ``chat {model}`` spans with the conventions'
``gen_ai.*`` attributes, and everything plait adds is under ``plait.``.
Retries and rate-limit waits are span events, failed nodes have ERROR status
and the exception. Spans are built when a run (a batch item) finishes, with
the nodes' real times. Prompts and replies are recorded only with
``capture_content=True`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``;
API keys never appear. The span layout is described in design_docs/observability.md.
Needs the ``otel`` extra: ``pip install 'plait[otel]'``.
"""

from __future__ import annotations

import os
from typing import Any

try:
    from opentelemetry import trace
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError(
        "plait.otel needs opentelemetry-api; install it with: pip install 'plait[otel]'"
    ) from exc

from plait.errors import ConfigError
from plait.execution.observers import ObserverHandle, RunClock, add_run_observer
from plait.otel.spans import RunSpans

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_ON = {"true", "span_only", "span_and_event"}  # the latter two: newer values of the same switch
_OFF = {"", "false", "no_content", "event_only"}

_handle: ObserverHandle | None = None


def capture_from_env() -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for message content."""
    value = os.environ.get(CAPTURE_ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ConfigError(
        f"{CAPTURE_ENV}={value!r} is not understood; use 'true' to record prompts and "
        "replies on spans, or 'false' (the default) not to"
    )


def instrument(tracer_provider: Any = None, *, capture_content: bool | None = None) -> None:
    """Export every run of this process as OpenTelemetry spans, until `uninstrument`.

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace``).
    ``capture_content`` records prompts, replies and node inputs/outputs on the
    spans; None reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
    Calling it again replaces the earlier provider and settings; runs already
    under way keep theirs.
    """
    global _handle
    if capture_content is None:
        capture_content = capture_from_env()
    elif not isinstance(capture_content, bool):
        raise ConfigError(f"capture_content must be True, False or None; got {capture_content!r}")
    if tracer_provider is not None and not hasattr(tracer_provider, "get_tracer"):
        raise ConfigError(
            f"tracer_provider must be an OpenTelemetry TracerProvider; got {type(tracer_provider).__name__}"
        )
    tracer = trace.get_tracer("plait", tracer_provider=tracer_provider)
    capture = capture_content

    def observe(clock: RunClock) -> RunSpans:
        return RunSpans(tracer, clock, capture=capture)

    uninstrument()
    _handle = add_run_observer(observe)


def uninstrument() -> None:
    """Stop exporting runs (runs already under way still finish their traces)."""
    global _handle
    if _handle is not None:
        _handle.remove()
        _handle = None


def is_instrumented() -> bool:
    """Whether runs are being exported (`instrument` called, `uninstrument` not since)."""
    return _handle is not None


__all__ = ["CAPTURE_ENV", "instrument", "is_instrumented", "uninstrument"]
