"""`RunSpans`: turns one run's events and node records into OpenTelemetry spans.

Spans are built when the run (in a batch: each item) has finished, from the
node records, so every span has the node's real start and end (event times
mapped to the wall clock by the run's `RunClock`) and nodes created while the
run executes are covered like traced ones. Each run is one trace: a run span,
and under it one span per node (inputs excepted), nested under the span of
its enclosing module path when two or more nodes share it. Data and control
edges become span links. A batch is a span of its own trace; each item is a
trace whose root span links to it.
"""

from __future__ import annotations

import asyncio
import traceback
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from plait.execution import events as ev
from plait.execution.observers import RunClock
from plait.execution.result import CANCELLED, DONE, FAILED, SKIPPED, NodeRecord
from plait.graph import InferenceGraph
from plait.otel import attributes as attrs

_FINAL_EVENTS = frozenset({"node_completed", "node_failed", "node_cancelled"})
_NOTES = frozenset({"node_retry", "node_waiting"})
_WAITS = {"rate_limit": "plait.rate_limit_wait", "backoff": "plait.backoff"}  # wait reason -> event


class RunSpans:
    """The event callback `plait.otel` gives one run (or batch); see the module docstring."""

    def __init__(self, tracer: trace.Tracer, clock: RunClock, *, capture: bool) -> None:
        self.tracer = tracer
        self.clock = clock
        self.capture = capture
        self.graphs: Sequence[InferenceGraph] = ()
        self.records: Sequence[Mapping[str, NodeRecord] | None] = ()
        self.redact = attrs.Redactor(None)
        self.configs: dict[str, Any] = {}  # endpoint alias -> EndpointConfig
        self.run_id = ""
        self.notes: dict[tuple[int | None, str], list[ev.Event]] = {}
        self.added: dict[tuple[int | None, str], Any] = {}  # nodes recorded while running
        self.batch: Span | None = None
        self.finished: dict[int, set[str]] = {}  # batch item -> ids of its finished nodes
        self.emitted: set[int] = set()
        self.items_failed = 0

    def __call__(self, event: ev.Event) -> None:
        kind = event.type
        if kind in _NOTES:
            if isinstance(event, ev.NodeWaiting) and event.reason not in _WAITS:
                return  # a wait for a concurrency slot: queue time, the plait.queue_wait attribute
            self.notes.setdefault((event.item, event.node_id), []).append(event)
        elif isinstance(event, ev.NodeAdded):  # define-by-run: the run's graph grew by this node
            self.added[(event.item, event.node_id)] = event.node
        elif kind in _FINAL_EVENTS and self.batch is not None and event.item is not None:
            if self.graphs[event.item].dynamic:
                return  # its forward may still add nodes, and nothing says when it returned
            done = self.finished.setdefault(event.item, set())
            done.add(event.node_id)
            records = self.records[event.item]
            if records is not None and len(done) >= len(records):
                # After the current step: the finishing node still holds its endpoint slot.
                asyncio.get_running_loop().call_soon(self._item_later, event.item)
        elif isinstance(event, ev.RunStarted):
            self._started(event)
        elif isinstance(event, ev.RunFinished):
            self._finished(event)

    def _started(self, event: ev.RunStarted) -> None:
        self.graphs, self.records, self.run_id = event.graphs, event.records, event.run_id
        if event.resources is not None:
            self.configs = dict(event.resources.items())
        self.redact = attrs.Redactor(event.resources)
        if event.run_id == "batch":
            name = _module_name(self.graphs[0]) if self.graphs else "batch"
            self.batch = self.tracer.start_span(
                f"batch {name}",
                context=trace.set_span_in_context(trace.INVALID_SPAN),  # a root, always
                kind=SpanKind.INTERNAL,
                start_time=self.clock.to_wall_ns(event.time),
                attributes={"plait.batch.items": len(self.graphs), "plait.module": name},
            )

    def _finished(self, event: ev.RunFinished) -> None:
        if not self.graphs:  # the run stopped before it started: there is nothing to show
            return
        if self.batch is None:
            result = event.result
            records = result.nodes if result is not None else (self.records or [{}])[0]
            status = result.status if result is not None else event.status
            graph = result.graph if result is not None else self.graphs[0]  # grown, if dynamic
            self._run(graph, records, None, status, 0.0, event.time)
            return
        for item in range(len(self.records)):
            if item not in self.emitted and self.records[item] is not None:
                self._item(item)
        batch = self.batch
        totals = [r for item in self.records if item is not None for r in item.values()]
        batch.set_attributes(
            {
                "plait.status": event.status,
                "plait.batch.started": len(self.emitted),
                "plait.batch.failed": self.items_failed,
                **_totals(totals),
            }
        )
        if event.status != DONE:
            batch.set_status(Status(StatusCode.ERROR, f"batch {event.status}"))
        batch.end(end_time=self.clock.to_wall_ns(event.time))

    def _item_later(self, item: int) -> None:
        try:
            self._item(item)
        except Exception as exc:  # as for on_event callbacks: a broken export must not break runs
            warnings.warn(
                f"plait.otel could not export batch item {item}: {exc!r}",
                RuntimeWarning,
                stacklevel=1,
            )

    def _item(self, item: int) -> None:
        if item in self.emitted:
            return
        self.emitted.add(item)
        records = self.records[item]
        starts = [
            r.queued_at if r.queued_at is not None else r.started_at for r in records.values()
        ]
        start = min((t for t in starts if t is not None), default=0.0)
        ends = [r.finished_at for r in records.values() if r.finished_at is not None]
        end = max(ends, default=start)
        status = _item_status(records)
        self.items_failed += status != DONE
        self._run(self.graphs[item], records, item, status, start, end)

    def _run(
        self,
        graph: InferenceGraph,
        records: Mapping[str, NodeRecord],
        item: int | None,
        status: str,
        start: float,
        end: float,
    ) -> None:
        """Emit one run's trace: its root span, the module-path groups, one span per node."""
        name = _module_name(graph)
        attributes: dict[str, Any] = {
            attrs.OPERATION: "invoke_workflow",
            attrs.AGENT_NAME: name,
            "plait.module": name,
            "plait.run.id": self.run_id,
            "plait.status": status,
            "plait.nodes": len(records),
            **_totals(records.values()),
        }
        inputs = [r.output for r in records.values() if r.kind == "input" and r.output is not None]
        outputs = [records[o].output for o in graph.output_ids if o in records]
        outputs = [v for v in outputs if v is not None]
        attributes["plait.input.size"] = len(attrs.value_text(inputs)) if inputs else 0
        attributes["plait.output.size"] = len(attrs.value_text(outputs)) if outputs else 0
        if self.capture:
            attributes["plait.input"] = attrs.value_text(inputs)
            attributes["plait.output"] = attrs.value_text(outputs)
        links = []
        if item is not None:
            attributes["plait.batch.item"] = item
            links.append(Link(self.batch.get_span_context(), {"plait.link": "batch"}))
        root = self.tracer.start_span(
            f"invoke_workflow {name}",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            kind=SpanKind.INTERNAL,
            attributes=self.redact.attributes(attributes),
            links=links,
            start_time=self.clock.to_wall_ns(start),
        )
        if status != DONE:
            failed = sum(r.status == FAILED for r in records.values())
            counted = f": {failed} node(s) failed" if failed else ""
            root.set_status(Status(StatusCode.ERROR, f"run {status}{counted}"))
        shown = [r for r in records.values() if r.kind != "input" and r.finished_at is not None]
        spans: dict[str, Span] = {}
        modules: dict[str, Span] = {}  # module path -> span of the module node called there
        # One context per parent span (by id), not one per child.
        contexts: dict[int, Any] = {}
        groups = self._groups(shown, root)
        for record in shown:
            node = graph.nodes.get(record.id) or self.added.pop((item, record.id), None)
            parent = _parent(record, modules, groups) or root
            context = contexts.get(id(parent))
            if context is None:
                context = contexts[id(parent)] = trace.set_span_in_context(parent)
            spans[record.id] = span = self._node(record, node, item, context, spans)
            if record.kind == "module":
                modules.setdefault(record.module_path, span)
        for group in groups.values():
            group.span.end(end_time=self.clock.to_wall_ns(group.end))
        root.end(end_time=self.clock.to_wall_ns(end))

    def _groups(self, shown: list[NodeRecord], root: Span) -> dict[str, _Group]:
        """A span per module path that two or more node spans share and no node span covers."""
        members: dict[str, list[NodeRecord]] = {}
        for record in shown:
            for path in _enclosing(record):
                members.setdefault(path, []).append(record)
        own = {r.module_path for r in shown if r.kind == "module"}
        groups: dict[str, _Group] = {}
        for path in sorted(members, key=lambda p: p.count(".")):  # parents before children
            inside = members[path]
            if len(inside) < 2 or path in own:
                continue
            start = min(r.started_at if r.started_at is not None else r.finished_at for r in inside)
            end = max(r.finished_at for r in inside)
            outer = next((groups[p] for p in reversed(_prefixes(path)) if p in groups), None)
            span = self.tracer.start_span(
                path,
                context=trace.set_span_in_context(outer.span if outer else root),
                kind=SpanKind.INTERNAL,
                attributes={"plait.module_path": path, "plait.nodes": len(inside)},
                start_time=self.clock.to_wall_ns(start),
            )
            groups[path] = _Group(span, end)
        return groups

    def _node(
        self,
        record: NodeRecord,
        node: Any,
        item: int | None,
        context: Any,
        spans: Mapping[str, Span],
    ) -> Span:
        target = node.target if node is not None else ""
        attributes = attrs.node_attributes(record, target, node.scope if node is not None else ())
        is_llm = record.kind == "llm"
        if is_llm:
            attributes.update(attrs.llm_attributes(record, self.configs.get(record.endpoint)))
            if self.capture:
                attributes.update(attrs.llm_content(record))
        elif self.capture:
            attributes["plait.input"] = attrs.value_text(record.inputs[0] if record.inputs else ())
            if record.output is not None and not record.output.is_error:
                attributes["plait.output"] = attrs.value_text([record.output])
        links = [
            Link(spans[dep].get_span_context(), {"plait.edge": edge})
            for edge, deps in _edges(node)
            for dep in deps
            if dep in spans
        ]
        start = record.started_at if record.started_at is not None else record.finished_at
        span = self.tracer.start_span(
            attrs.node_span_name(record, target, attributes.get(attrs.REQUEST_MODEL, "")),
            context=context,
            kind=SpanKind.CLIENT if is_llm else SpanKind.INTERNAL,
            attributes=self.redact.attributes(attributes),
            links=links,
            start_time=self.clock.to_wall_ns(start),
        )
        for note in self.notes.pop((item, record.id), ()):
            self._note(span, note)
        if record.status in (FAILED, SKIPPED, CANCELLED):
            self._failure(span, record)
        span.end(end_time=self.clock.to_wall_ns(record.finished_at))
        return span

    def _note(self, span: Span, note: ev.Event) -> None:
        """A retry or a wait as a span event (a wait stamped when it began)."""
        if isinstance(note, ev.NodeRetry):
            attributes: dict[str, Any] = {
                "plait.attempt": note.attempt,
                "plait.error": note.error,
                "plait.delay": note.delay,
            }
            if note.status is not None:
                attributes["http.response.status_code"] = note.status
            span.add_event(
                "plait.retry",
                self.redact.attributes(attributes),
                timestamp=self.clock.to_wall_ns(note.time),
            )
        elif isinstance(note, ev.NodeWaiting):
            span.add_event(
                _WAITS[note.reason],
                {"plait.wait_seconds": note.seconds},
                timestamp=self.clock.to_wall_ns(note.time - note.seconds),
            )

    def _failure(self, span: Span, record: NodeRecord) -> None:
        """ERROR status; for a node that failed on its own, the exception as the SDK records it."""
        error = record.error
        if record.status == SKIPPED:
            description = "skipped: an input failed"
        elif record.status == CANCELLED:
            description = f"cancelled: {error}" if error is not None else "cancelled"
        else:
            description = f"{type(error).__name__}: {error}"
        span.set_status(Status(StatusCode.ERROR, self.redact(description)))
        if record.status != FAILED or error is None:
            return
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        span.add_event(
            "exception",
            {
                "exception.type": f"{type(error).__module__}.{type(error).__qualname__}",
                "exception.message": self.redact(str(error)),
                "exception.stacktrace": self.redact(stack),
                "exception.escaped": False,
            },
            timestamp=self.clock.to_wall_ns(record.finished_at),
        )


class _Group:
    __slots__ = ("end", "span")

    def __init__(self, span: Span, end: float) -> None:
        self.span, self.end = span, end


def _module_name(graph: InferenceGraph) -> str:
    return type(graph.root).__name__ if graph.root is not None else "run"


def _prefixes(path: str) -> list[str]:
    """``"a.b.c"`` -> ``["a", "a.b"]`` (the proper prefixes, outermost first)."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _enclosing(record: NodeRecord) -> list[str]:
    """Module paths that contain the node: an op runs inside the module at its own path."""
    path = record.module_path
    if not path:
        return []
    return [*_prefixes(path), path] if record.kind == "op" else _prefixes(path)


def _parent(
    record: NodeRecord, modules: Mapping[str, Span], groups: Mapping[str, _Group]
) -> Span | None:
    """The innermost enclosing span: a group, or the module node whose forward made this call."""
    for path in reversed(_enclosing(record)):
        if path in groups:
            return groups[path].span
        if path in modules:
            return modules[path]
    return None


def _edges(node: Any) -> list[tuple[str, tuple[str, ...]]]:
    if node is None:
        return []
    return [("data", node.dependencies), ("control", node.control)]


def _totals(records: Any) -> dict[str, Any]:
    records = list(records)
    return {
        "plait.usage.input_tokens": sum(r.usage.input_tokens for r in records),
        "plait.usage.output_tokens": sum(r.usage.output_tokens for r in records),
        "plait.cost": sum(r.cost for r in records),
    }


def _item_status(records: Mapping[str, NodeRecord]) -> str:
    statuses = {r.status for r in records.values()}
    if CANCELLED in statuses:
        return CANCELLED
    return FAILED if statuses & {FAILED, SKIPPED} else DONE
