"""The typed event stream of a run.

Every run emits one ordered stream of read-only events; the `RunResult`, the
profiler, progress bars, widgets and ``on_event`` callbacks all read the same
stream instead of instrumenting the runtime separately. ``time`` is seconds
since the run started (monotonic); ``node_id`` is None for run-level events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from plait.clients.base import Usage


@dataclass(slots=True, unsafe_hash=True)
class Event:
    """Base of all run events; ``type`` is a stable string such as ``"node_started"``.

    Events are read-only records shared by every observer of a run: never assign
    to their fields. They are not frozen dataclasses only because a run makes
    several per call and a frozen ``__init__`` (an ``object.__setattr__`` per
    field) costs four times a plain one; they hash by value as frozen ones do.
    """

    type: ClassVar[str] = "event"
    time: float
    node_id: str | None
    item: int | None = field(default=None, kw_only=True)  # batch item index, None outside batches


# Metadata of fields that hand live objects to in-process observers (widgets):
# left out of `event_to_dict`, repr and equality.
_LIVE = {"live": True}


@dataclass(slots=True, unsafe_hash=True)
class RunStarted(Event):
    """A run began; ``graphs`` and ``records`` are its graphs and their `NodeRecord` dicts.

    One entry per batch item (a single run has one), indexed by ``item``; a
    batch item's records appear when it starts (None before). Records are
    filled in as the run proceeds, so an observer can show inputs, prompts and
    outputs live. ``resources`` is the run's `ResourceConfig` (None if it has none).
    """

    type: ClassVar[str] = "run_started"
    nodes: int = 0
    run_id: str = ""
    graphs: tuple[Any, ...] = field(default=(), repr=False, compare=False, metadata=_LIVE)
    records: Sequence[Any] = field(default=(), repr=False, compare=False, metadata=_LIVE)
    resources: Any = field(default=None, repr=False, compare=False, metadata=_LIVE)


@dataclass(slots=True, unsafe_hash=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    status: str = "done"  # "done" | "failed" | "cancelled" | "budget_exceeded"
    usage: Usage = Usage()
    cost: float = 0.0
    result: Any = field(default=None, repr=False, compare=False, metadata=_LIVE)  # the RunResult


@dataclass(slots=True, unsafe_hash=True)
class NodeAdded(Event):
    """A call made while the run executes became a node (define-by-run): the graph grew.

    ``dependencies`` are its data edges, ``control`` the nodes whose awaited
    results preceded the call; ``node`` is the `GraphNode` itself.
    """

    type: ClassVar[str] = "node_added"
    kind: str = ""
    module_path: str = ""
    dependencies: tuple[str, ...] = ()
    control: tuple[str, ...] = ()
    node: Any = field(default=None, repr=False, compare=False, metadata=_LIVE)


@dataclass(slots=True, unsafe_hash=True)
class NodeQueued(Event):
    """A node's inputs are ready; it waits for a slot on its endpoint (None for local nodes)."""

    type: ClassVar[str] = "node_queued"
    endpoint: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class NodeStarted(Event):
    """An attempt began: for an LLM node, the moment the request is handed to the client.

    That is after the node got an endpoint slot (``slot``) and the rate limiter
    let it go; each of those waits, when it took time, is reported before by
    its own `NodeWaiting`.
    """

    type: ClassVar[str] = "node_started"
    endpoint: str | None = None
    attempt: int = 1
    slot: int = 0


@dataclass(slots=True, unsafe_hash=True)
class NodeDelta(Event):
    """A chunk of streamed reply text."""

    type: ClassVar[str] = "node_delta"
    text: str = ""


@dataclass(slots=True, unsafe_hash=True)
class NodeWaiting(Event):
    """A node waited ``seconds`` (ending at ``time``) for ``reason``.

    ``"slot"``: for an endpoint concurrency slot (``slot`` is the one it got);
    ``"rate_limit"``: in the endpoint's rate limiter, holding ``slot``;
    ``"backoff"``: before a retry, holding no slot.
    """

    type: ClassVar[str] = "node_waiting"
    endpoint: str | None = None
    reason: str = "rate_limit"
    seconds: float = 0.0
    slot: int | None = None


@dataclass(slots=True, unsafe_hash=True)
class NodeRetry(Event):
    """Attempt ``attempt`` failed with a retryable error; another follows after ``delay`` s."""

    type: ClassVar[str] = "node_retry"
    endpoint: str | None = None
    attempt: int = 1
    error: str = ""
    delay: float = 0.0
    status: int | None = None


@dataclass(slots=True, unsafe_hash=True)
class NodeUsage(Event):
    """Tokens and cost of one completed request."""

    type: ClassVar[str] = "usage"
    endpoint: str | None = None
    usage: Usage = Usage()
    cost: float = 0.0


@dataclass(slots=True, unsafe_hash=True)
class NodeCompleted(Event):
    type: ClassVar[str] = "node_completed"
    endpoint: str | None = None
    attempts: int = 1
    cached: bool = False
    restored: bool = False


@dataclass(slots=True, unsafe_hash=True)
class NodeFailed(Event):
    """The node failed for good (``skipped``: it did not run because an input had failed)."""

    type: ClassVar[str] = "node_failed"
    endpoint: str | None = None
    error: str = ""
    attempts: int = 0
    skipped: bool = False


@dataclass(slots=True, unsafe_hash=True)
class NodeCancelled(Event):
    type: ClassVar[str] = "node_cancelled"
    endpoint: str | None = None
    reason: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        RunFinished,
        NodeAdded,
        NodeQueued,
        NodeStarted,
        NodeDelta,
        NodeWaiting,
        NodeRetry,
        NodeUsage,
        NodeCompleted,
        NodeFailed,
        NodeCancelled,
    )
}


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-friendly dict of ``event`` (``type`` first)."""
    out: dict[str, Any] = {"type": event.type}
    for f in fields(event):
        if f.metadata.get("live"):
            continue
        value = getattr(event, f.name)
        if isinstance(value, Usage):
            value = {"input_tokens": value.input_tokens, "output_tokens": value.output_tokens}
        out[f.name] = value
    return out
