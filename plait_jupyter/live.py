"""`RunState`: what a display knows about one run, kept current from the run's events.

Node states follow the events (queued, running, retrying, ...); the details the
inspector shows are read from the run's `NodeRecord`s, which ``run_started``
hands over and the runtime fills in as it goes. When the run finishes, every
state and detail is reconciled with the records, so a finished view matches
the `RunResult` exactly.

A graph recorded while it runs (an ``async def forward``) starts empty and
grows: each ``node_added`` registers the new node at once (its later events
find it), and `refresh_graph` rebuilds the drawn graph data when a view
flushes.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from plait.execution.batch import BatchProgress
from plait.execution.events import (
    Event,
    NodeCompleted,
    NodeDelta,
    NodeFailed,
    NodeRetry,
    NodeUsage,
    RunFinished,
)
from plait.execution.result import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL_STATUSES,
    PENDING,
    QUEUED,
    RETRYING,
    RUNNING,
    SKIPPED,
    BatchItem,
    NodeRecord,
    RunResult,
)
from plait.graph import InferenceGraph
from plait.values import Value, ValueKind
from plait_jupyter.graph_data import graph_payload, node_key, view_title
from plait_jupyter.inspector import node_details, view_state

MAX_NODES = 5000


class _StoredNode:
    """A node of a stored graph, with what the view's payload reads from a `GraphNode`."""

    def __init__(self, data: Mapping[str, Any], control: Any, call_key: Any) -> None:
        self.id = data["id"]
        self.name = data["name"]
        self.kind = data["kind"]
        self.target = data["target"]
        self.module_path = data["module_path"]
        self.scope = tuple(data["scope"])
        self.live = data["live"]
        self.dependencies = tuple(data["dependencies"])
        self.control = tuple(control or ())
        self.call_key = call_key


class StoredGraph:
    """A stored run's graph (its ``to_dict()`` form and control edges), as much as a view draws.

    Never ``dynamic`` here: a stored run is finished, nothing is left to record.
    """

    root = None
    dynamic = False
    output = None

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        control, keys = snapshot.get("control", {}), snapshot.get("call_keys", {})
        self.nodes = {
            n["id"]: _StoredNode(n, control.get(n["id"]), keys.get(n["id"]))
            for n in snapshot["graph"]["nodes"]
        }
        self.output_ids = tuple(snapshot["graph"]["outputs"])

    def live_ids(self) -> list[str]:
        return [nid for nid, node in self.nodes.items() if node.live]


_SERIALS = itertools.count(1)
_SESSION = uuid.uuid4().hex[:12]
UNUSED = "unused"  # a dead node: it reaches no output, so the run skips it
CACHED = "cached"
_EVENT_STATES = {
    "node_queued": QUEUED,
    "node_started": RUNNING,
    "node_retry": RETRYING,
    "node_cancelled": CANCELLED,
}
_FINAL_EVENTS = frozenset({"node_completed", "node_failed", "node_cancelled"})


class RunState:
    """One run (or batch) as a view sees it: graph data, node states, details, totals.

    ``records`` has one entry per graph: the run's ``{node id: NodeRecord}``
    (None for a batch item that has not started yet).
    """

    def __init__(
        self,
        graphs: Sequence[InferenceGraph],
        records: Sequence[Mapping[str, NodeRecord] | None],
        *,
        batch: bool = False,
        run_id: str = "",
        max_nodes: int = MAX_NODES,
    ) -> None:
        self.graphs = tuple(graphs)
        self.records = records
        self.batch = batch
        self.run_id = run_id
        self.max_nodes = max_nodes
        self.serial = f"{_SESSION}-{next(_SERIALS)}"  # unique in the page, across kernels
        self.status = "running"
        self.title = view_title(self.graphs, batch=batch, run_id=run_id)
        self.states: dict[str, str] = {}
        self._where: dict[str, tuple[int | None, str]] = {}
        self.graph_data: dict[str, Any] = {}
        self.grown = False  # nodes were added since graph_data was built
        self.version = 0  # how many times graph_data was built
        self.recorded = False  # nodes were recorded while the run went on
        self._copies: set[int] = set()  # graphs this view copied to grow them
        self.refresh_graph(force=True)
        self.details: dict[str, dict[str, Any]] = {}
        self.status = "running"
        self.tokens = 0
        self.cost = 0.0
        self.elapsed = 0.0
        self.result: RunResult | None = None
        self._dirty: set[str] = set()
        self._streams: dict[str, list[str]] = {}
        self._retries: dict[str, list[dict[str, Any]]] = {}
        self._retrying: set[tuple[int | None, str]] = set()
        self._left = [len(g.live_ids()) for g in self.graphs]
        self._outputs = [set(g.output_ids) for g in self.graphs]
        self._item_failed = [False] * len(self.graphs)
        # A recorded graph's output is a placeholder until its forward returns.
        self._unset = [g.output if g.dynamic else None for g in self.graphs]
        self._unsettled: set[int] = (
            set()
        )  # items whose nodes are final but forward had not returned
        self.items_done = 0
        self.items_failed = 0

    @classmethod
    def from_graph(cls, graph: InferenceGraph, *, max_nodes: int = MAX_NODES) -> RunState:
        """A graph that has not run: live nodes pending, dead ones unused."""
        state = cls([graph], [None], max_nodes=max_nodes)
        state.status = "not run"
        return state

    @classmethod
    def from_result(cls, result: RunResult, *, max_nodes: int = MAX_NODES) -> RunState:
        state = cls([result.graph], [result.nodes], max_nodes=max_nodes)
        state.result = result
        state.finish(result.status, result.makespan)
        return state

    @classmethod
    def from_batch(cls, items: Sequence[BatchItem], *, max_nodes: int = MAX_NODES) -> RunState:
        ordered = sorted(items, key=lambda item: item.index)
        missing = [item.index for item in ordered if item.result is None]
        if missing:
            raise ValueError(
                f"batch items {missing[:5]} carry no RunResult; pass the items run_batch returned"
            )
        results = [item.result for item in ordered if item.result is not None]
        state = cls(
            [result.graph for result in results],
            [result.nodes for result in results],
            batch=True,
            run_id="batch",
            max_nodes=max_nodes,
        )
        state.finish("done", max(result.makespan for result in results) if results else 0.0)
        return state

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], *, max_nodes: int = MAX_NODES) -> RunState:
        """A run kept as plain data (`plait.evaluation.snapshot.run_snapshot`, e.g. from a store)."""
        # A StoredGraph offers what a view reads of an InferenceGraph (nodes, output ids).
        state = cls([cast(Any, StoredGraph(snapshot))], [None], max_nodes=max_nodes)
        state.title = state.graph_data["title"] = f"{snapshot.get('root', 'graph')} · stored run"
        state.graph_data["recorded"] = bool(snapshot.get("recorded"))
        for node_id, detail in snapshot["nodes"].items():
            if node_id in state.states:
                state.states[node_id] = detail["status"]
                state.details[node_id] = dict(detail)
                state.tokens += detail["input_tokens"] + detail["output_tokens"]
                state.cost += detail["cost"]
        state.status = snapshot.get("status", DONE)
        state.elapsed = snapshot.get("makespan", 0.0)
        return state

    def refresh_graph(self, *, force: bool = False) -> bool:
        """Rebuild ``graph_data`` if the graphs grew (or ``force``); True if it was rebuilt."""
        if not (force or self.grown):
            return False
        self.graph_data = graph_payload(
            self.graphs, batch=self.batch, title=self.title, max_nodes=self.max_nodes
        )
        self.version += 1
        # The front-end keeps node positions while the same run's graph grows (same serial).
        self.graph_data["serial"] = self.serial
        self.graph_data["recorded"] = any(g.dynamic for g in self.graphs)
        for node in self.graph_data["nodes"]:
            self._register(node["item"], node["id"], live=node["live"])
        self.grown = False
        return True

    def _register(self, item: int | None, key: str, *, live: bool = True) -> None:
        if key not in self.states:
            self.states[key] = PENDING if live else UNUSED
            self._where[key] = (item, key.split("/", 1)[1] if self.batch else key)

    def _added(self, item: int | None, event: Any) -> None:
        """A node recorded while the run goes on: known at once, drawn at the next refresh."""
        key = node_key(item, event.node_id)
        if key in self.states:
            return
        index = item or 0
        graph = self.graphs[index] if index < len(self.graphs) else None
        node = event.node
        if graph is not None and node is not None and node.id not in graph.nodes:
            # A traced graph is copied by the run that grows it (batch items share it):
            # the view grows its own copy from the events.
            if index not in self._copies:
                graph = graph.grown_copy()
                self.graphs = (*self.graphs[:index], graph, *self.graphs[index + 1 :])
                self._copies.add(index)
            graph.add_node(node)
        self._register(item, key)
        self.grown = self.recorded = True
        if self.batch and (item or 0) < len(self._left):
            self._left[item or 0] += 1

    def apply(self, event: Event) -> None:
        """Update states and totals from one event of this run."""
        self.elapsed = max(self.elapsed, event.time)
        kind = event.type
        if isinstance(event, RunFinished):
            self.result = event.result
            if self.result is not None and not self.batch:
                self.graphs = (self.result.graph,)  # the run's own, final graph
            self.finish(event.status, event.time)
            return
        if event.node_id is None:
            return
        item = event.item if self.batch else None
        key = node_key(item, event.node_id)
        tracked = (item, event.node_id)
        if isinstance(event, NodeUsage):
            self.tokens += event.usage.total_tokens
            self.cost += event.cost
        elif isinstance(event, NodeDelta):
            self._streams.setdefault(key, []).append(event.text)
        elif isinstance(event, NodeRetry):
            self._retrying.add(tracked)
            self._retries.setdefault(key, []).append(
                {"attempt": event.attempt, "error": event.error, "delay": event.delay}
            )
        elif kind == "node_started":
            self._retrying.discard(tracked)
        elif kind == "node_added":
            self._added(item, event)
        state = _EVENT_STATES.get(kind)
        if isinstance(event, NodeCompleted):
            state = CACHED if event.cached or event.restored else DONE
        elif isinstance(event, NodeFailed):
            state = SKIPPED if event.skipped else FAILED
        if kind in _FINAL_EVENTS:
            self._retrying.discard(tracked)
            self._item_finished(event.item or 0, event.node_id, state in (DONE, CACHED))
        if key in self.states:
            if state is not None:
                self.states[key] = state
            self._dirty.add(key)

    def _item_finished(self, index: int, node_id: str, ok: bool) -> None:
        if not self.batch or index >= len(self._left):
            return
        if not ok and node_id in self._outputs[index]:
            self._item_failed[index] = True
        self._left[index] -= 1
        if self._left[index] == 0:
            self._settle(index)

    def _settle(self, index: int) -> None:
        """Count a batch item whose nodes are all final, once its forward has returned."""
        graph = self.graphs[index]
        if self._unset[index] is not None and graph.output is self._unset[index]:
            self._unsettled.add(index)  # more calls may come; checked again at each flush
            return
        self._unsettled.discard(index)
        if self._item_failed[index] or _forward_failed(graph):
            self.items_failed += 1
        else:
            self.items_done += 1

    def _record(self, key: str) -> NodeRecord | None:
        item, node_id = self._where[key]
        table = self.records[item or 0] if (item or 0) < len(self.records) else None
        return None if table is None else table.get(node_id)

    def _detail(self, key: str) -> dict[str, Any]:
        record = self._record(key)
        stream = "".join(self._streams.get(key, ()))
        retries = tuple(self._retries.get(key, ()))
        if record is None:
            return {"status": self.states[key], "retries": list(retries)}
        detail = node_details(record, stream=stream, retries=retries)
        if record.status not in FINAL_STATUSES:
            detail["status"] = self.states[key]
        return detail

    def take_changes(self) -> dict[str, dict[str, Any]]:
        """Details of the nodes that changed since the last call."""
        for index in sorted(self._unsettled):
            if self._left[index] == 0:
                self._settle(index)
        changed = {key: self._detail(key) for key in self._dirty}
        self.details.update(changed)
        self._dirty.clear()
        return changed

    def finish(self, status: str, elapsed: float) -> None:
        """Reconcile every node with its record; unstarted nodes of a stopped run are cancelled."""
        self.status = status
        self.elapsed = elapsed
        tokens, cost = 0, 0.0
        for table in self.records:
            for record in (table or {}).values():
                tokens += record.usage.total_tokens
                cost += record.cost
        if any(table is not None for table in self.records):
            self.tokens, self.cost = tokens, cost
        # A recorded graph learns more when calls return (a module node's edges): rebuild once.
        self.refresh_graph(force=self.recorded)
        for key in self.states:
            found = self._record(key)
            if found is not None:
                self.states[key] = view_state(found)
            elif self.states[key] != UNUSED and status not in (DONE, "not run"):
                self.states[key] = CANCELLED
            if found is not None or key in self.details:
                self.details[key] = self._detail(key)
        self._dirty.clear()
        if self.batch:
            self._count_items()

    def _count_items(self) -> None:
        self._unsettled.clear()
        done = failed = 0
        for graph, table in zip(self.graphs, self.records, strict=True):
            if table is None:
                continue
            statuses = [table[nid].status for nid in graph.output_ids if nid in table]
            if all(s in FINAL_STATUSES for s in (r.status for r in table.values())):
                if all(s == DONE for s in statuses) and not _forward_failed(graph):
                    done += 1
                else:
                    failed += 1
        self.items_done, self.items_failed = done, failed

    def info(self) -> dict[str, Any]:
        """The ``run_info`` of a view: status, totals and (for batches) item counts."""
        info: dict[str, Any] = {
            "status": self.status,
            "run_id": self.run_id,
            "tokens": self.tokens,
            "cost": self.cost,
            "elapsed": self.elapsed,
        }
        if self.batch:
            info.update(
                items=len(self.graphs), items_done=self.items_done, items_failed=self.items_failed
            )
        return info

    def progress(self) -> BatchProgress:
        """Where a batch stands, as `plait.execution.batch` reports it to ``on_progress``."""
        finished = self.items_done + self.items_failed
        total = len(self.graphs)
        eta = self.elapsed / finished * (total - finished) if finished else None
        return BatchProgress(
            total,
            self.items_done,
            self.items_failed,
            len(self._retrying),
            self.tokens,
            self.cost,
            self.elapsed,
            eta,
        )

    def counts(self) -> dict[str, int]:
        """How many nodes are in each state."""
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        return counts


def _forward_failed(graph: InferenceGraph) -> bool:
    """Whether a recorded graph's forward raised (or never returned): its output is an error."""
    output = graph.output
    return graph.dynamic and isinstance(output, Value) and output.kind is ValueKind.ERROR
