"""`GraphView`: the live graph explorer widget.

A layered DAG (laid out by dagre, bundled in ``static/graph_view.js``) with
node states, groups by module path or helper scope, zoom/pan and an inspector
per node. Feed it a finished run, a graph, or a run's events::

    GraphView(result)                       # a RunResult, an InferenceGraph, or run_batch's items
    view = GraphView(); display(view)
    await execute(pipeline, "text", on_event=view.on_event)   # updates live

State travels in traits: ``graph_data`` (set when a run starts, and again in
a flush when a graph recorded while it runs has grown),
``node_states`` (node key -> state, sent at most once per ``interval``
seconds while the run goes on and always once at the end), ``node_details``
(set when the run ends) and ``run_info``. While the run goes on, the details of
changed nodes go to the front-end as ``{"type": "details"}`` messages in the
same flush.

"Edit & re-run" (a finished run, or run_batch's items): the front-end asks for
a node's form (``{"type": "edit"}``, answered with the full texts), sends
``{"type": "rerun"}`` with the edited fields and ``{"type": "adopt"}``; the
``whatif`` trait says whether re-runs are available and describes the re-run
shown (changed nodes with their diffs, reused nodes, adoption). The same
actions are methods: `rerun`, `adopt`, `edit_form`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from plait._checks import Checks
from plait.errors import ConfigError
from plait.evaluation.snapshot import SNAPSHOT_FORMAT
from plait.execution.events import Event, RunStarted
from plait.execution.result import BatchItem, RunResult
from plait.execution.run import result_error
from plait.graph import InferenceGraph
from plait.parameter import Parameter
from plait_jupyter.graph_data import GROUPINGS, node_key
from plait_jupyter.live import MAX_NODES, RunState
from plait_jupyter.throttle import Throttle
from plait_jupyter.whatif import edit_form, edits_from_form, rerun_info

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
    whatif = traitlets.Dict().tag(sync=True)

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
        checks = Checks("GraphView")
        checks.check(
            group_by in GROUPINGS, "group_by", group_by, f"one of {', '.join(map(repr, GROUPINGS))}"
        )
        checks.number("height", height, low=1, integer=True, optional=True)
        checks.number("max_nodes", max_nodes, low=1, integer=True)
        checks.number("interval", interval, low=0)
        checks.raise_any()
        super().__init__(group_by=group_by)
        self._fixed_height = height
        self.max_nodes = max_nodes
        self.run: RunState | None = None
        self._graph_version = 0  # the version of run.graph_data last sent
        self._items: list[BatchItem] | None = None  # a batch shown from its items (re-runnable)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._throttle = Throttle(self._flush, interval, clock)
        self.on_msg(self._on_msg)
        if source is not None:
            self.show(source)

    def show(
        self, source: InferenceGraph | RunResult | Sequence[BatchItem] | Mapping[str, Any]
    ) -> None:
        """Draw a graph (nodes pending), a finished run, a finished batch, or a stored run.

        A stored run is the plain data a `RunStore` keeps per example
        (``EvalRow.snapshot``); it is shown as recorded and cannot be re-run.
        """
        self._items = None
        if isinstance(source, Mapping) and source.get("format") == SNAPSHOT_FORMAT:
            run = RunState.from_snapshot(source, max_nodes=self.max_nodes)
        elif isinstance(source, RunResult):
            run = RunState.from_result(source, max_nodes=self.max_nodes)
        elif isinstance(source, InferenceGraph):
            run = RunState.from_graph(source, max_nodes=self.max_nodes)
        elif isinstance(source, Sequence) and all(isinstance(i, BatchItem) for i in source):
            run = RunState.from_batch(source, max_nodes=self.max_nodes)
            self._items = sorted(source, key=lambda item: item.index)
        else:
            raise TypeError(
                f"GraphView shows an InferenceGraph, a RunResult, a list of BatchItems or a "
                f"stored run (EvalRow.snapshot); "
                f"got {type(source).__name__}"
            )
        self._attach(run)

    def on_event(self, event: Event) -> None:
        """Follow a run: pass as ``on_event=view.on_event`` (a new run replaces the shown one)."""
        if isinstance(event, RunStarted):
            batch = event.run_id == "batch"
            self._items = None
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

    def _attach(self, run: RunState, whatif: dict[str, Any] | None = None) -> None:
        """Show ``run``; a re-run (``whatif`` given) keeps the grouping and selects the edited node."""
        self.run = run
        with self.hold_sync():
            growing = run.graph_data["recorded"] and run.status == "running"
            self.height = self._fixed_height or _default_height(60 if growing else len(run.states))
            self.selected = "" if whatif is None else whatif["node"]
            if whatif is None:
                self.collapsed = []
            self.graph_data = run.graph_data
            self._graph_version = run.version
            self.node_details = dict(run.details)
            self.node_states = dict(run.states)
            self.run_info = run.info()
            self.whatif = whatif or {"available": self._rerunnable()}

    def _flush(self) -> None:
        run = self.run
        if run is None:
            return
        changed = run.take_changes()
        run.refresh_graph()
        with self.hold_sync():
            if run.version != self._graph_version:
                self._graph_version = run.version
                self.graph_data = run.graph_data
            self.node_states = dict(run.states)
            self.run_info = run.info()
            if run.status != "running":
                self.node_details = dict(run.details)
                self.whatif = {"available": self._rerunnable()}
        if changed and run.status == "running":
            self.send({"type": "details", "details": changed})

    @property
    def result(self) -> RunResult | None:
        """The `RunResult` of the run shown, once it has finished (None for batches)."""
        return None if self.run is None else self.run.result

    def _rerunnable(self) -> bool:
        return self._items is not None or self.result is not None

    def _source(self, key: str) -> tuple[RunResult, str, int | None]:
        """The run that node ``key`` belongs to, its node id, and its batch item (if any)."""
        if self._items is not None:
            item, _, node_id = key.partition("/")
            if not item.isdigit() or int(item) >= len(self._items):
                raise ConfigError(
                    f"no node {key!r} in this batch view; keys look like '0/summarize'"
                )
            result = self._items[int(item)].result
            if result is None:
                raise ConfigError(f"batch item {item} carries no RunResult to re-run")
            return result, node_id, int(item)
        if self.result is None:
            raise ConfigError(
                "this view shows no finished run to re-run: show one with GraphView(result) "
                "or GraphView(await run_batch(...)), or wait until the run shown has finished"
            )
        return self.result, key, None

    def edit_form(self, key: str) -> dict[str, Any]:
        """What the editor of node ``key`` starts from (full texts; see `plait_jupyter.whatif`)."""
        result, node_id, _ = self._source(key)
        if node_id not in result.nodes:
            raise ConfigError(f"node {key!r} did not run, so it cannot be re-run")
        return edit_form(result, node_id)

    async def rerun(self, key: str, **edits: Any) -> RunResult:
        """Re-run node ``key`` with ``edits`` (`RunResult.rerun` arguments) and show the new result."""
        result, node_id, item = self._source(key)
        new = await result.rerun(node_id, **edits)
        info = rerun_info(new, node_id, partial(node_key, item))
        if item is not None and self._items is not None:
            error = result_error(new)
            self._items[item] = replace(
                self._items[item],
                ok=error is None,
                output=new.output if error is None else None,
                error=error,
                result=new,
            )
            self._attach(RunState.from_batch(self._items, max_nodes=self.max_nodes), info)
        else:
            self._attach(RunState.from_result(new, max_nodes=self.max_nodes), info)
        return new

    def adopt(self, key: str) -> Parameter:
        """Write the shown re-run's system prompt edit at ``key`` into its Parameter (`RunResult.adopt`)."""
        result, node_id, _ = self._source(key)
        parameter = result.adopt(node_id)
        self.whatif = {
            **self.whatif,
            "adopt": {"parameter": parameter.name, "done": True},
            "message": f"Adopted: parameter {parameter.name!r} now holds the edited prompt "
            f"(version {parameter.version}).",
        }
        return parameter

    def receive(self, content: dict[str, Any]) -> asyncio.Task[Any] | None:
        """Act on a message of the front-end; a re-run is started as a task (returned)."""
        kind, key = content.get("type"), str(content.get("node", ""))
        try:
            if kind == "edit":
                self.send({"type": "edit", "node": key, "form": self.edit_form(key)})
            elif kind == "rerun":
                edits = edits_from_form(key, self.edit_form(key), content)
                self.whatif = {**self.whatif, "status": "running", "node": key, "message": ""}
                task = asyncio.get_running_loop().create_task(self._rerun_task(key, edits))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return task
            elif kind == "adopt":
                self.adopt(key)
        except ConfigError as exc:
            self._report(kind, key, exc)
        return None

    async def _rerun_task(self, key: str, edits: dict[str, Any]) -> None:
        try:
            await self.rerun(key, **edits)
        except Exception as exc:  # shown in the widget: the person clicked; there is no caller
            self._report("rerun", key, exc)

    def _report(self, kind: Any, key: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if kind == "edit":
            self.send({"type": "edit", "node": key, "error": message})
        elif kind == "adopt":
            self.whatif = {**self.whatif, "message": message}
        else:
            self.whatif = {**self.whatif, "status": "error", "node": key, "message": message}

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict):
            self.receive(content)

    def __repr__(self) -> str:
        if self.run is None:
            return "GraphView(waiting for a run)"
        return f"GraphView({len(self.run.states)} nodes, {self.run.status})"
