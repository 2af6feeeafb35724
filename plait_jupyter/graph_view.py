"""`GraphView`: the live graph explorer widget.

A layered DAG (laid out by dagre, bundled in ``static/graph_view.js``) with
node states, groups by module path or helper scope, zoom/pan and an inspector
per node. Feed it a finished run, a graph, or a run's events::

    GraphView(result)                       # a RunResult, an InferenceGraph, or run_batch's items
    view = GraphView(); display(view)
    await execute(pipeline, "text", on_event=view.on_event)   # updates live

State travels in traits: ``graph_data`` (set when a run starts),
``node_states`` (node key -> state, sent at most once per ``interval``
seconds while the run goes on and always once at the end), ``node_details``
(set when the run ends) and ``run_info``. While the run goes on, the details of
changed nodes go to the front-end as ``{"type": "details"}`` messages in the
same flush.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anywidget
import traitlets

from plait.execution.events import Event
from plait.execution.result import BatchItem, RunResult
from plait.graph import InferenceGraph
from plait_jupyter.graph_data import GROUPINGS
from plait_jupyter.live import MAX_NODES, RunState
from plait_jupyter.throttle import Throttle

STATIC = Path(__file__).parent / "static"


def _default_height(nodes: int) -> int:
    return 420 if nodes <= 12 else 480 if nodes <= 60 else 600


class GraphView(anywidget.AnyWidget):
    """The graph explorer: a traced DAG with live node states, groups and a node inspector.

    ``source`` is an `InferenceGraph`, a `RunResult`, the `BatchItem` list
    `run_batch` returns, or None (the view fills in when `on_event` sees a run
    start). Batches draw one graph per item until ``max_nodes`` is reached.
    """

    _esm = STATIC / "graph_view.js"
    _css = STATIC / "graph_view.css"

    graph_data = traitlets.Dict().tag(sync=True)
    node_states = traitlets.Dict().tag(sync=True)
    node_details = traitlets.Dict().tag(sync=True)
    run_info = traitlets.Dict().tag(sync=True)
    group_by = traitlets.Enum(GROUPINGS, default_value="module").tag(sync=True)
    collapsed = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    height = traitlets.Int(400).tag(sync=True)

    def __init__(
        self,
        source: InferenceGraph | RunResult | Sequence[BatchItem] | None = None,
        *,
        group_by: str = "module",
        height: int | None = None,
        max_nodes: int = MAX_NODES,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(group_by=group_by)
        self._fixed_height = height
        self.max_nodes = max_nodes
        self.run: RunState | None = None
        self._throttle = Throttle(self._flush, interval, clock)
        if source is not None:
            self.show(source)

    def show(self, source: InferenceGraph | RunResult | Sequence[BatchItem]) -> None:
        """Draw a graph (nodes pending), a finished run, or a finished batch."""
        if isinstance(source, RunResult):
            run = RunState.from_result(source, max_nodes=self.max_nodes)
        elif isinstance(source, InferenceGraph):
            run = RunState.from_graph(source, max_nodes=self.max_nodes)
        elif isinstance(source, Sequence) and all(isinstance(i, BatchItem) for i in source):
            run = RunState.from_batch(source, max_nodes=self.max_nodes)
        else:
            raise TypeError(
                f"GraphView shows an InferenceGraph, a RunResult or a list of BatchItems; "
                f"got {type(source).__name__}"
            )
        self._attach(run)

    def on_event(self, event: Event) -> None:
        """Follow a run: pass as ``on_event=view.on_event`` (a new run replaces the shown one)."""
        if event.type == "run_started":
            batch = event.run_id == "batch"
            self._attach(
                RunState(
                    event.graphs,
                    event.records,
                    batch=batch,
                    run_id=event.run_id,
                    max_nodes=self.max_nodes,
                )
            )
            return
        if self.run is None:
            return
        self.run.apply(event)
        if event.type == "run_finished":
            self._throttle.finish()
        else:
            self._throttle.poke()

    def _attach(self, run: RunState) -> None:
        self.run = run
        with self.hold_sync():
            self.height = self._fixed_height or _default_height(len(run.states))
            self.selected = ""
            self.collapsed = []
            self.graph_data = run.graph_data
            self.node_details = dict(run.details)
            self.node_states = dict(run.states)
            self.run_info = run.info()

    def _flush(self) -> None:
        run = self.run
        if run is None:
            return
        changed = run.take_changes()
        with self.hold_sync():
            self.node_states = dict(run.states)
            self.run_info = run.info()
            if run.status != "running":
                self.node_details = dict(run.details)
        if changed and run.status == "running":
            self.send({"type": "details", "details": changed})

    @property
    def result(self) -> RunResult | None:
        """The `RunResult` of the run shown, once it has finished (None for batches)."""
        return None if self.run is None else self.run.result

    def __repr__(self) -> str:
        if self.run is None:
            return "GraphView(waiting for a run)"
        return f"GraphView({len(self.run.states)} nodes, {self.run.status})"
