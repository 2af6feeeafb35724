"""The define-by-run half of `GraphRun`: calls recorded as nodes while the run executes.

With ``root_call`` a run executes an async ``forward`` (`_drive`); that code,
and the user code of any op or module node (`_enter_user_code`), records each
module or op call through `Recorder`, which hands the new node to `add_node`:
the graph grows, the node is scheduled like a traced one, and ``await`` on its
placeholder waits in `result_of`. A node whose code returned placeholders
finishes when they have (`_settle`). A what-if re-run replays recorded calls
(`_replayable`); failures no code awaited are reported by `unobserved_failures`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import CodeType
from typing import Any, ClassVar

from plait._tree import tree_map
from plait.errors import CallError, ConfigError, ExecutionError
from plait.execution import events as ev
from plait.execution.dynamic import Recorder
from plait.execution.result import DONE, FAILED, NodeFailure, NodeOverride, NodeRecord
from plait.execution.runbase import RunBase
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.module import Module
from plait.values import (
    Value,
    ValueKind,
    ValueRef,
    collect_refs,
    first_error,
    unwrap,
    valueify,
)


class Growth(RunBase):
    """Mixed into `GraphRun`: what it does for calls made while it runs."""

    # The runner's functions that call user code (set by GraphRun): a recorded call's
    # helper-scope walk stops there.
    STOP_CODES: ClassVar[frozenset[CodeType]] = frozenset()

    graph: InferenceGraph
    values: dict[str, Value]
    live: list[str]
    replay: Mapping[str, NodeRecord]
    fresh: Mapping[str, NodeOverride]
    root_call: tuple[Module, tuple[Any, ...], dict[str, Any]] | None
    forward_error: BaseException | None
    closed: bool
    _recorder: Recorder | None
    _waiters: dict[str, asyncio.Future[None]]
    _handled: set[int]
    _endpoints_ready: set[str | None]
    _pending: dict[str, int]
    _rerun_parents: set[str]
    _grown: bool

    @property
    def recorder(self) -> Recorder:
        """The tracer that records calls made by user code during this run (made on first use)."""
        if self._recorder is None:
            self._recorder = Recorder(self, self.STOP_CODES)
        return self._recorder

    async def _drive(self) -> None:
        """Execute the root's async forward; its return value becomes the graph's output."""
        assert self.root_call is not None
        module, args, kwargs = self.root_call
        recorder = self.recorder
        tokens = recorder.enter(recorder.root_frame())
        try:
            result = await module.forward(*args, **kwargs)
            output = recorder.convert_output(result)
        except CallError as exc:
            if exc.node_id not in self.records:
                self.forward_error = exc
                output = Value(ValueKind.ERROR, exc, None, {"node": "forward"})
            else:
                self._handled.discard(id(exc.cause))  # it escaped forward(): the run fails
                output = ValueRef(exc.node_id)
        except Exception as exc:
            self.forward_error = exc
            output = Value(ValueKind.ERROR, exc, None, {"node": "forward"})
        finally:
            recorder.leave(tokens)
            recorder.release_frames()  # forward's frames are done: let them (and locals) go
        self.graph.set_output(output)

    def add_node(self, node: GraphNode, priority: float) -> None:
        """Schedule a node recorded while the run executes (its inputs may still be running)."""
        nid = node.id
        if not self._grown:
            self.graph = self.graph.grown_copy()
            self._grown = True
            if self._recorder is not None:
                self._recorder.nodes = self.graph.nodes
                self._recorder.parameters = self.graph.parameters
        self.graph.append(node)  # the recorder made it from this graph's refs, under a new id
        if self.fresh:
            key = node.call_key
            if key is not None and key in self.fresh:
                self.overrides[nid] = self.fresh[key]
        self.live.append(nid)
        kind = _KIND_NAMES[node.kind]
        deps = node.dependencies
        self.records[nid] = NodeRecord(nid, kind, node.module_path, node.alias)
        self._rank[nid] = priority
        pending = 0
        if deps:
            values = self.values
            for dep in deps:
                if dep not in values:
                    pending += 1
        self._pending[nid] = pending
        self.emit(
            ev.NodeAdded(
                self.now(),
                nid,
                kind,
                node.module_path,
                deps,
                node.control,
                node=node,
                item=self.item,
            )
        )
        alias = node.alias
        if node.kind is NodeKind.LLM and alias not in self._endpoints_ready:
            problem = self._endpoint_problem(alias)
            if problem is not None:
                self._finish(nid, *self._failed(nid, ConfigError(problem)))
                return
            assert self.manager is not None and alias is not None  # no problem: both are set
            self.pool.add_endpoint(alias, self.manager.endpoint(alias).max_concurrent)
            self._endpoints_ready.add(alias)
        if pending == 0:
            self._drain([nid])

    def _endpoint_problem(self, alias: str | None) -> str | None:
        if self.manager is None:
            return (
                f"the call to endpoint {alias!r} has no resources to run on. Pass "
                "resources=ResourceConfig({...}) (or ResourceConfig.simulated(...)) to the run."
            )
        if alias not in self.manager.config:
            return (
                f"the resources define no endpoint {alias!r}; defined aliases: "
                f"{', '.join(self.manager.config.aliases) or '(none)'}. Add it to the ResourceConfig."
            )
        return None

    def result_of(self, ref: str) -> Value | asyncio.Future[None]:
        """The output `Value` of node ``ref`` if it has finished, else a future set when it has."""
        value = self.values.get(ref)
        if value is not None:
            return value
        return self.waiter(ref)

    def waiter(self, ref: str) -> asyncio.Future[None]:
        """A future set when node ``ref`` (not finished yet) has finished."""
        if ref not in self.records:
            raise ExecutionError(f"no node {ref!r} in this run")
        waiter = self._waiters.get(ref)
        if waiter is None:
            waiter = self._waiters[ref] = asyncio.get_running_loop().create_future()
        return waiter

    def call_error(self, ref: str, value: Value) -> CallError:
        """The `CallError` raised where the placeholder of failed node ``ref`` is awaited."""
        record = self.records[ref]
        cause = value.payload
        self._handled.add(id(cause))
        origin = value.meta.get("skipped_because")
        failure = NodeFailure(ref, record.module_path, record.endpoint, record.attempts, cause)
        return CallError(failure, skipped_because=origin)

    def unobserved_failures(self) -> list[str]:
        """Recorded calls that failed and whose error no code ever saw (nothing fails silently)."""
        nodes = self.graph.nodes
        return [
            nid
            for nid, record in self.records.items()
            if record.status == FAILED
            and nodes[nid].call_key is not None
            and id(record.error) not in self._handled
        ]

    def _enter_user_code(self, node: GraphNode) -> tuple[Any, Any]:
        """Make calls made by ``node``'s own code (an op's or a module's) record into this run."""
        recorder = self.recorder
        return recorder.enter(recorder.frame_for(node, self._rank.get(node.id, 0.0) - self._age))

    async def _settle(self, node: GraphNode, result: Any) -> tuple[Any, ...]:
        """The outcome of a node whose code returned placeholders: wait for them, then resolve."""
        if type(result) is Value and result.kind is ValueKind.STRUCTURED:
            result = result.payload  # a functional op's list of placeholders (map_values)
        output = self.recorder.convert_output(result)
        refs = [r for r in collect_refs(output) if r in self.records]
        for ref in refs:
            pending = self.result_of(ref)
            if not isinstance(pending, Value):
                await pending
        if node.kind is NodeKind.MODULE or node.kind is NodeKind.OP:
            extra = tuple(r for r in refs if r not in node.dependencies)
            if extra:  # its output came from these calls: they are its inputs too
                self.graph.replace_node(
                    GraphNode(
                        **{
                            **{f: getattr(node, f) for f in _NODE_FIELDS},
                            "dependencies": (*node.dependencies, *extra),
                        }
                    )
                )
        resolved = tree_map(self._resolve_leaf, output)
        error = first_error(resolved)
        if error is not None:
            return self._skipped(node.id, error)
        value = valueify(unwrap(resolved))
        return (Value(value.kind, value.payload, node.id, value.meta), DONE)

    async def _finish_later(self, node: GraphNode, settling: Any) -> None:
        """Finish a sync op whose result held placeholders, once they have resolved."""
        try:
            outcome = await settling
        except Exception as exc:
            outcome = self._failed(node.id, exc)
        self._drain(self._finish(node.id, *outcome))

    def _replayable(self, node: GraphNode) -> bool:
        """Whether a recorded call can complete from the replayed run's record.

        Not if it is to run again, if calls inside it are (or were) recorded (it
        runs again so they are made, each reusable in turn), or if its inputs
        now differ from what it received then.
        """
        key = node.call_key
        assert key is not None  # only recorded calls are replayed
        earlier = self.replay[key]
        if key in self.fresh or key in self._rerun_parents:
            return False
        if earlier.status != DONE or earlier.output is None:
            return False
        return unwrap(self._args(node)) == unwrap(earlier.inputs)


_KIND_NAMES = {kind: kind.value for kind in NodeKind}  # NodeRecord.kind: a plain str
_NODE_FIELDS = tuple(f for f in GraphNode.__dataclass_fields__ if f != "alias")


def prefixes(keys: list[str]) -> set[str]:
    """Every enclosing call key of ``keys`` ("/a#0/b#1" is inside "/a#0")."""
    out: set[str] = set()
    for key in keys:
        while (cut := key.rfind("/")) > 0:
            key = key[:cut]
            out.add(key)
    return out
