"""What a run leaves behind: `RunResult`, per-node `NodeRecord`s, `NodeFailure`s, `BatchItem`s."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from plait._format import format_money
from plait._upcalls import notebook_html, upcall
from plait.clients.base import ChatRequest, Usage
from plait.execution.events import Event
from plait.graph import InferenceGraph
from plait.values import Value, valueify

if TYPE_CHECKING:
    from plait.parameter import Parameter
    from plait.resources.config import ResourceConfig

# Node statuses, in the order a node moves through them.
PENDING, QUEUED, RUNNING, RETRYING = "pending", "queued", "running", "retrying"
DONE, FAILED, SKIPPED, CANCELLED = "done", "failed", "skipped", "cancelled"
FINAL_STATUSES = frozenset({DONE, FAILED, SKIPPED, CANCELLED})
BUDGET_EXCEEDED = "budget_exceeded"  # a run status: stopped cleanly at its cost/token limit


@dataclass(slots=True)
class NodeRecord:
    """Everything known about one node of a run (filled in as the run proceeds).

    ``status`` is one of pending, queued, running, retrying, done, failed,
    skipped (not run because an input had failed) or cancelled. Times are
    seconds since the run started. ``request`` is the request actually sent
    (LLM nodes), with the rendered prompt. ``reused`` marks a node a what-if
    re-run completed from its parent run's record (same output `Value`).
    """

    id: str
    kind: str
    module_path: str
    endpoint: str | None = None
    status: str = PENDING
    attempts: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    ttft: float | None = None
    usage: Usage = Usage()
    cost: float = 0.0
    cached: bool = False
    restored: bool = False
    reused: bool = False  # taken from the parent run by a what-if re-run: nothing was sent
    inputs: tuple[Any, ...] = ()
    request: ChatRequest | None = None
    output: Value | None = None
    error: BaseException | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class NodeFailure:
    """One failed node, as listed by `ExecutionError`."""

    node_id: str
    module_path: str
    endpoint: str | None
    attempts: int
    cause: BaseException

    def __str__(self) -> str:
        where = f" on {self.endpoint!r}" if self.endpoint else ""
        tries = (
            f" after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"
            if self.attempts
            else ""
        )
        path = (
            f" ({self.module_path})"
            if self.module_path and self.module_path != self.node_id
            else ""
        )
        return f"{self.node_id}{path}{where}{tries}: {type(self.cause).__name__}: {self.cause}"


@dataclass(frozen=True, slots=True)
class NodeOverride:
    """What a what-if re-run changes at one node (None: keep what the node had).

    ``input`` replaces the node's first argument: for an LLM node the rendered
    user message, for an op or module node the value its function receives
    first, for an input node the value given to ``forward``.
    """

    system_prompt: str | None = None
    input: Any = None
    temperature: float | None = None

    def with_input(self, call: tuple[tuple[Any, ...], dict[str, Any]]) -> tuple[Any, ...]:
        """``call`` (resolved args, kwargs) with its first argument replaced by ``input``."""
        if self.input is None:
            return call
        args, kwargs = call
        value = valueify(self.input)
        if args:
            return ((value, *args[1:]), kwargs)
        first = next(iter(kwargs))  # a re-run refuses an input for a node without arguments
        return (args, {**kwargs, first: value})

    def request(self, module: Any, prompt: Any, *, model: str) -> ChatRequest:
        """The request an LLM node's ``module`` sends for ``prompt``, with this override applied."""
        request = module.build_request(prompt, model=model, system_prompt=self.system_prompt)
        if self.temperature is None:
            return request
        return replace(request, temperature=self.temperature)


NO_OVERRIDE = NodeOverride()


@dataclass(frozen=True, slots=True)
class NodeChange:
    """One node whose output differs between two runs: its output text before and after."""

    node_id: str
    module_path: str
    before: str
    after: str

    def __repr__(self) -> str:
        return f"NodeChange({self.node_id!r}: {_short(self.before)} -> {_short(self.after)})"


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class Profile(Protocol):
    """What `RunResult` asks of a `plait.profiling.Profile` (a floor above, see `plait._upcalls`)."""

    def bubbles(self) -> Any: ...
    def chrome_trace(self) -> dict[str, Any]: ...
    def save_chrome_trace(self, path: str | PathLike[str]) -> Path: ...
    def plot_timeline(self) -> Any: ...
    def plot_utilization(self) -> Any: ...
    def plot_bubbles(self) -> Any: ...


@dataclass(eq=False)
class RunResult:
    """The outcome of one run: outputs, per-node records, usage, cost and the event log.

    ``output`` has the structure ``forward`` returned, with plain payloads;
    ``values`` the same structure with `Value`s (provenance and errors kept).
    ``resources`` are the endpoints the run used (a what-if `rerun` reuses
    them); a re-run links to the run it started from in ``parent`` and keeps
    its edits in ``overrides`` (node id -> `NodeOverride`).
    """

    graph: InferenceGraph
    output: Any
    values: Any
    nodes: dict[str, NodeRecord]
    events: list[Event] = field(default_factory=list)
    status: str = DONE
    usage: Usage = Usage()
    cost: float = 0.0
    makespan: float = 0.0
    endpoints: dict[str, int] = field(default_factory=dict)  # alias -> concurrency slots
    max_concurrent: int | None = None  # the global cap, if any
    profile: Any = None
    resources: ResourceConfig | None = field(default=None, repr=False)
    parent: RunResult | None = field(default=None, repr=False)
    overrides: dict[str, NodeOverride] = field(default_factory=dict)
    forward_error: BaseException | None = None  # what an async forward() itself raised

    @property
    def failures(self) -> list[NodeFailure]:
        """Nodes that failed on their own account (not those skipped because an input failed)."""
        failures = [
            NodeFailure(r.id, r.module_path, r.endpoint, r.attempts, r.error)
            for r in self.nodes.values()
            if r.status == FAILED and r.error is not None
        ]
        if self.forward_error is not None:
            failures.append(NodeFailure("forward", "", None, 0, self.forward_error))
        return failures

    @property
    def errors(self) -> dict[str, BaseException]:
        """Node id → the exception of each failed node."""
        return {f.node_id: f.cause for f in self.failures}

    @property
    def ok(self) -> bool:
        return self.status == DONE

    def to_dataframe(self) -> Any:
        """One row per node: status, endpoint, attempts, timings, tokens, cost, error."""
        import pandas as pd  # optional extra: plait[jupyter]

        rows = [
            {
                "node": r.id,
                "kind": r.kind,
                "module_path": r.module_path,
                "endpoint": r.endpoint,
                "status": r.status,
                "attempts": r.attempts,
                "queued_at": r.queued_at,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "duration": r.duration,
                "input_tokens": r.usage.input_tokens,
                "output_tokens": r.usage.output_tokens,
                "cost": r.cost,
                "cached": r.cached,
                "reused": r.reused,
                "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}",
            }
            for r in self.nodes.values()
        ]
        return pd.DataFrame(rows).set_index("node") if rows else pd.DataFrame()

    async def rerun(
        self,
        node_id: str,
        *,
        system_prompt: str | None = None,
        input: Any = None,
        temperature: float | None = None,
        resources: Any = None,
        **options: Any,
    ) -> RunResult:
        """Run node ``node_id`` again with edits, then its descendants; reuse every other output.

        Nodes outside the re-run send nothing and keep this run's `Value`s
        (nodes that did not complete here run again). The edits apply to this
        re-run only (see `adopt`); ``resources`` default to this run's.
        ``input`` replaces the node's first argument (see `NodeOverride`).
        Other keywords are run options (``on_event``, ``max_concurrent``...).

            fixed = await result.rerun("summarize", system_prompt="Summarize in one line.")
            fixed.diff()
        """
        return await upcall("rerun")(
            self,
            node_id,
            system_prompt=system_prompt,
            input=input,
            temperature=temperature,
            resources=resources,
            **options,
        )

    def rerun_sync(self, node_id: str, **edits: Any) -> RunResult:
        """`rerun`, blocking (also inside a running event loop)."""
        return upcall("rerun_sync")(self, node_id, **edits)

    def diff(self, other: RunResult | None = None) -> list[NodeChange]:
        """The nodes whose outputs differ from this run to ``other`` (default: from ``parent`` to this)."""
        return upcall("diff")(self, other)

    def adopt(self, node_id: str) -> Parameter:
        """Keep this re-run's edited system prompt at ``node_id``: write it into the Parameter the node reads."""
        return upcall("adopt")(self, node_id)

    def build_profile(self) -> Profile:
        """A `Profile` of this run computed from its events (``profile=True`` keeps one in ``.profile``)."""
        return build_profile(
            self.events,
            endpoints=self.endpoints,
            max_concurrent=self.max_concurrent,
            graphs={None: self.graph},
        )

    def _profiled(self) -> Profile:
        return self.profile if self.profile is not None else self.build_profile()

    def bubbles(self) -> Any:
        """Busy/idle time per endpoint slot, idle time by cause, critical path, largest bubbles."""
        return self._profiled().bubbles()

    def chrome_trace(self) -> dict[str, Any]:
        """Chrome Trace Event JSON (a dict) of this run, for Perfetto and chrome://tracing."""
        return self._profiled().chrome_trace()

    def save_chrome_trace(self, path: str | PathLike[str]) -> Path:
        """Write `chrome_trace` as JSON to ``path`` (open it at ui.perfetto.dev)."""
        return self._profiled().save_chrome_trace(path)

    def plot_timeline(self) -> Any:
        """A plotly Gantt chart of the run by endpoint slot (needs plotly)."""
        return self._profiled().plot_timeline()

    def plot_utilization(self) -> Any:
        """A plotly figure of busy and queued slots over time per endpoint (needs plotly)."""
        return self._profiled().plot_utilization()

    def plot_bubbles(self) -> Any:
        """A plotly bar chart of busy time and idle time by cause per endpoint (needs plotly)."""
        return self._profiled().plot_bubbles()

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for r in self.nodes.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        edited = f", re-run at {', '.join(map(repr, self.overrides))}" if self.overrides else ""
        return (
            f"RunResult(status={self.status!r}, nodes: {summary}, "
            f"tokens={self.usage.total_tokens}, cost={format_money(self.cost)}, makespan={self.makespan:.3f}s"
            f"{edited})"
        )

    def _repr_html_(self) -> str | None:
        return notebook_html(self)


def build_profile(
    events: list[Event],
    *,
    endpoints: dict[str, int],
    max_concurrent: int | None,
    graphs: dict[int | None, InferenceGraph],
) -> Profile:
    """A `plait.profiling.Profile` of ``events`` (a run's, or a whole batch's); analysed on first use."""
    # plait.profiling sits a floor above execution: reached through the seam, on use.
    profile: Profile = upcall("profile")(
        events, endpoints=endpoints, max_concurrent=max_concurrent, graphs=graphs
    )
    return profile


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input of a batch run and what became of it; failures are data, not exceptions."""

    index: int
    input: Any
    ok: bool
    output: Any = None
    error: BaseException | None = None
    result: RunResult | None = None
