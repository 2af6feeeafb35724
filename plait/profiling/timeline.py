"""`Timeline`: a run's event stream turned into intervals, shared by every profiling view.

One pass over the events gives, per node and attempt, where the time went:

- an `Attempt` holds an endpoint slot from the moment it got it to the event
  that ends it (``node_retry``, ``node_completed``, ``node_failed``,
  ``node_cancelled``). ``node_started`` is when the request went to the client;
  a ``node_waiting`` "rate_limit" event before it marks the part of the
  attempt spent in the rate limiter, ``[time - seconds, time]``, so the
  attempt starts there and is busy from ``node_started``;
- a `Wait` is time a node spent not running: ``"upstream"`` (its inputs were
  not ready: from the run's start to its first event), ``"queue"`` (ready,
  waiting for a slot: from ``node_queued``, or from the end of a backoff, to
  the ``node_waiting`` "slot" that ends it, or to the attempt's start),
  ``"backoff"`` (from ``node_retry`` to the ``node_waiting`` "backoff" that
  ends it) and ``"rate_limit"`` (the limiter wait of an attempt, on its slot);
- a `LocalRun` is a non-LLM node from ``node_started`` to its end, placed on
  the lowest local lane free at its start so runs on one lane never overlap;
- a `RetryMark` is a failed attempt that will be retried (a 429 or a 5xx).

Batch runs share one stream; nodes are keyed ``"<item>:<node id>"`` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.execution.events import Event, RunFinished
from plait.graph import InferenceGraph

WAIT_KINDS = ("upstream", "queue", "rate_limit", "backoff")


def node_key(node: str, item: int | None) -> str:
    """How a node is named in a profile: its id, prefixed with the batch item in batches."""
    return node if item is None else f"{item}:{node}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of an LLM node on endpoint slot ``slot``, from ``start`` to ``end``.

    ``[wait_start, wait_end]`` is the rate-limit wait inside it (empty when
    ``wait_start == wait_end``); the rest of the attempt the request was busy.
    ``outcome`` is "done", "retry" (failed, retried later), "failed",
    "cancelled" or "unfinished" (the stream ended first).
    """

    key: str
    node: str
    item: int | None
    module_path: str
    endpoint: str
    slot: int
    attempt: int
    start: float
    end: float
    wait_start: float
    wait_end: float
    outcome: str
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def busy_segments(self) -> list[tuple[float, float]]:
        """The parts of the attempt outside the rate-limit wait."""
        parts = [(self.start, self.wait_start), (self.wait_end, self.end)]
        return [(a, b) for a, b in parts if b > a]


@dataclass(frozen=True, slots=True)
class Wait:
    """Time node ``key`` spent waiting; ``kind`` is one of `WAIT_KINDS` (slot set for "rate_limit")."""

    key: str
    node: str
    item: int | None
    module_path: str
    endpoint: str
    kind: str
    start: float
    end: float
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class LocalRun:
    """A non-LLM node (op or leaf module) running in-process on local lane ``lane``."""

    key: str
    node: str
    item: int | None
    module_path: str
    kind: str
    lane: int
    start: float
    end: float
    outcome: str


@dataclass(frozen=True, slots=True)
class RetryMark:
    """Attempt ``attempt`` of ``key`` failed at ``time`` and is retried after ``delay`` s."""

    key: str
    node: str
    item: int | None
    module_path: str
    endpoint: str
    slot: int
    attempt: int
    time: float
    error: str
    status: int | None
    delay: float


@dataclass(frozen=True, slots=True, eq=False)
class Timeline:
    """Every interval of one run (or one batch), times in seconds since its start.

    ``endpoints`` maps each alias to its number of concurrency slots (slots
    never used count too); ``durations`` each node's first start to its end
    (retries and limiter waits included, queueing for a slot not); ``graphs``
    maps batch item (None outside batches) to its traced graph, when known.
    """

    makespan: float
    status: str
    endpoints: dict[str, int]
    max_concurrent: int | None
    attempts: tuple[Attempt, ...]
    waits: tuple[Wait, ...]
    local: tuple[LocalRun, ...]
    retries: tuple[RetryMark, ...]
    durations: dict[str, float]
    graphs: dict[int | None, InferenceGraph] = field(default_factory=dict)

    @property
    def local_lanes(self) -> int:
        return 1 + max((r.lane for r in self.local), default=-1)


@dataclass(slots=True)
class _Open:
    """An attempt or wait still in progress while the events are read."""

    kind: str
    start: float
    endpoint: str | None
    slot: int = 0
    attempt: int = 0
    wait: tuple[float, float] | None = None
    tokens: tuple[int, int] = (0, 0)
    cost: float = 0.0


class _Builder:
    """Reads events in order and closes intervals as their ending events arrive."""

    def __init__(self, graphs: Mapping[int | None, InferenceGraph]) -> None:
        self.graphs = dict(graphs)
        self.attempts: list[Attempt] = []
        self.waits: list[Wait] = []
        self.local: list[tuple[str, float, float, str]] = []
        self.retries: list[RetryMark] = []
        self.running: dict[str, _Open] = {}  # key -> open attempt (or local run)
        self.waiting: dict[str, _Open] = {}  # key -> open queue/backoff wait
        self.limited: dict[str, tuple[float, float]] = {}  # key -> limiter wait before its start
        self.first_seen: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.endpoint: dict[str, str] = {}
        self.ident: dict[str, tuple[str, int | None, str]] = {}  # key -> node, item, module path
        self.slots_seen: dict[str, int] = {}
        self.items: dict[int | None, None] = {}  # items seen, in order
        self.makespan: float | None = None
        self.last = 0.0
        self.status = "unfinished"
        self.handlers = {
            "node_queued": self.on_queued,
            "node_started": self.on_started,
            "node_waiting": self.on_waiting,
            "node_retry": self.on_retry,
            "usage": self.on_usage,
            "node_completed": self.on_completed,
            "node_failed": self.on_failed,
            "node_cancelled": self.on_cancelled,
        }

    def graph(self, item: int | None) -> InferenceGraph | None:
        """The graph of ``item``; a batch item's own result carries its graph under None."""
        graph = self.graphs.get(item)
        return graph if graph is not None else self.graphs.get(None)

    def module_path(self, node: str, item: int | None) -> str:
        graph = self.graph(item)
        if graph is not None and node in graph.nodes:
            return graph.nodes[node].module_path or node
        return node

    def kind(self, node: str, item: int | None) -> str:
        graph = self.graph(item)
        if graph is not None and node in graph.nodes:
            return graph.nodes[node].kind.value
        return "op"

    def read(self, event: Event) -> None:
        t = event.time
        if t > self.last:
            self.last = t
        kind = event.type
        if kind == "run_started":
            self.on_run_started(event)
            return
        if isinstance(event, RunFinished):
            self.makespan = t
            self.status = event.status
            return
        node = event.node_id
        if node is None or kind == "node_delta":
            return
        item = event.item
        key = node if item is None else f"{item}:{node}"  # node_key, inlined: this runs per event
        if key not in self.first_seen:
            self.first_seen[key] = t
            self.ident[key] = (node, item, self.module_path(node, item))
            self.items[item] = None
        handler = self.handlers.get(kind)
        if handler is not None:  # event types added later are not timeline data
            handler(event, key, t, getattr(event, "endpoint", None))

    def on_run_started(self, event: Any) -> None:
        """Take the graphs the run announces (one per batch item) unless the caller gave them."""
        graphs = getattr(event, "graphs", ())
        if self.graphs or not graphs:
            return
        self.graphs = dict(enumerate(graphs))
        if len(graphs) == 1:
            self.graphs[None] = graphs[0]  # a single run's events carry no item index

    def on_queued(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        if endpoint is not None:
            self.endpoint[key] = endpoint
            self.waiting[key] = _Open("queue", t, endpoint)

    def on_started(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        if endpoint is None:
            self.started.setdefault(key, t)
            self.close_wait(key, t)
            self.running[key] = _Open("local", t, None)
            return
        # The slot was held from the start of the limiter wait that preceded, if any.
        limited = self.limited.pop(key, None)
        start = limited[0] if limited else t
        self.started.setdefault(key, start)
        self.close_wait(key, start)
        self.running[key] = _Open("attempt", start, endpoint, event.slot, event.attempt, limited)
        self.slots_seen[endpoint] = max(self.slots_seen.get(endpoint, 0), event.slot + 1)

    def on_waiting(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        if event.reason == "backoff":
            self.close_wait(key, t)
            self.waiting[key] = _Open("queue", t, endpoint)
        elif event.reason == "slot":
            self.close_wait(key, t)
        elif event.reason == "rate_limit":
            self.limited[key] = (max(t - event.seconds, self.waiting_since(key)), t)

    def waiting_since(self, key: str) -> float:
        open_ = self.waiting.get(key)
        return open_.start if open_ is not None else 0.0

    def on_retry(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        open_ = self.running.get(key)
        slot = open_.slot if open_ is not None else 0
        self.close_run(key, t, "retry", event.error)
        self.retries.append(
            RetryMark(
                key,
                *self.ident[key],
                endpoint or "",
                slot,
                event.attempt,
                t,
                event.error,
                event.status,
                event.delay,
            )
        )
        self.waiting[key] = _Open("backoff", t, endpoint)

    def on_usage(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        open_ = self.running.get(key)
        if open_ is not None:
            usage = event.usage
            open_.tokens = (usage.input_tokens, usage.output_tokens)
            open_.cost = event.cost

    def on_completed(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        self.finish(key, t, "done", "", endpoint)

    def on_failed(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        self.finish(key, t, "skipped" if event.skipped else "failed", event.error, endpoint)

    def on_cancelled(self, event: Any, key: str, t: float, endpoint: str | None) -> None:
        self.finish(key, t, "cancelled", event.reason, endpoint)

    def finish(self, key: str, t: float, outcome: str, error: str, endpoint: str | None) -> None:
        if endpoint is not None:
            self.endpoint.setdefault(key, endpoint)  # never queued: skipped or cancelled upstream
        self.finished[key] = t
        self.close_wait(key, t)
        self.close_run(key, t, outcome, error)

    def close_wait(self, key: str, t: float) -> None:
        open_ = self.waiting.pop(key, None)
        if open_ is not None and t > open_.start:
            self.add_wait(key, open_.kind, open_.endpoint or "", open_.start, t)

    def add_wait(
        self, key: str, kind: str, endpoint: str, start: float, end: float, slot: int | None = None
    ) -> None:
        """Record a wait; callers skip empty ones (this runs for most events)."""
        self.waits.append(Wait(key, *self.ident[key], endpoint, kind, start, end, slot))

    def close_run(self, key: str, t: float, outcome: str, error: str) -> None:
        open_ = self.running.pop(key, None)
        if open_ is None:
            return
        if open_.kind == "local":
            self.local.append((key, open_.start, t, outcome))
            return
        wait_start, wait_end = open_.wait or (open_.start, open_.start)
        wait_end = min(wait_end, t)
        wait_start = min(wait_start, wait_end)
        endpoint = open_.endpoint or ""
        if wait_end > wait_start:
            self.add_wait(key, "rate_limit", endpoint, wait_start, wait_end, open_.slot)
        self.attempts.append(
            Attempt(
                key,
                *self.ident[key],
                endpoint,
                open_.slot,
                open_.attempt,
                open_.start,
                t,
                wait_start,
                wait_end,
                outcome,
                error if outcome != "done" else "",
                *open_.tokens,
                open_.cost,
            )
        )

    def upstream_waits(self) -> None:
        """Each LLM node waited on its inputs from the start (batch items all start at 0) until seen."""
        for key, seen in self.first_seen.items():
            endpoint = self.endpoint.get(key)
            if endpoint is not None and seen > 0.0:
                self.add_wait(key, "upstream", endpoint, 0.0, seen)

    def local_runs(self) -> list[LocalRun]:
        lanes: list[float] = []  # lane -> end of its last run
        out = []
        for key, start, end, outcome in sorted(self.local, key=lambda r: (r[1], r[2])):
            lane = next((i for i, busy_until in enumerate(lanes) if busy_until <= start), None)
            if lane is None:
                lane = len(lanes)
                lanes.append(end)
            lanes[lane] = end
            node, item, path = self.ident[key]
            out.append(
                LocalRun(
                    key,
                    node,
                    item,
                    path,
                    self.kind(node, item),
                    lane,
                    start,
                    end,
                    outcome,
                )
            )
        return out

    def graphs_run(self) -> dict[int | None, InferenceGraph]:
        """The graph of each item that ran (a single run's graph is also announced as item 0)."""
        if not self.items:
            return dict(self.graphs)
        found = {item: self.graph(item) for item in self.items}
        return {item: graph for item, graph in found.items() if graph is not None}

    def timeline(self, endpoints: Mapping[str, int], max_concurrent: int | None) -> Timeline:
        end = self.makespan if self.makespan is not None else self.last
        for key in list(self.waiting):
            self.close_wait(key, end)
        for key in list(self.running):
            self.close_run(key, end, "unfinished", "")
        self.upstream_waits()
        capacity = dict(endpoints)
        for alias in dict.fromkeys([*self.slots_seen, *self.endpoint.values()]):
            capacity[alias] = max(capacity.get(alias, 1), self.slots_seen.get(alias, 0))
        finished = self.finished
        durations = {key: max(0.0, finished.get(key, end) - t) for key, t in self.started.items()}
        return Timeline(
            makespan=end,
            status=self.status,
            endpoints=capacity,
            max_concurrent=max_concurrent,
            attempts=tuple(sorted(self.attempts, key=lambda a: (a.start, a.endpoint, a.slot))),
            waits=tuple(sorted(self.waits, key=lambda w: (w.start, w.end))),
            local=tuple(self.local_runs()),
            retries=tuple(self.retries),
            durations=durations,
            graphs=self.graphs_run(),
        )


def build_timeline(
    events: Iterable[Event],
    *,
    endpoints: Mapping[str, int] | None = None,
    max_concurrent: int | None = None,
    graphs: Mapping[int | None, InferenceGraph] | None = None,
) -> Timeline:
    """Turn a run's (or a batch's) events, in emission order, into a `Timeline`.

    ``endpoints`` gives each alias's slot count (aliases or slots missing from
    it are inferred from the events); ``graphs`` (item -> graph, key None
    outside batches; by default the graphs announced by ``run_started``)
    supplies module paths and the dependencies of the critical path. The
    makespan is the ``run_finished`` time, else the last event's.
    """
    builder = _Builder(graphs or {})
    for event in events:
        builder.read(event)
    return builder.timeline(endpoints or {}, max_concurrent)
