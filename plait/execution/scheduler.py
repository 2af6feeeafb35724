"""`GraphRun`: executes one traced graph with given inputs.

Local nodes (inputs, sync ops) run inline the moment their inputs are ready;
async ops, leaf modules and LLM calls become tasks of one ``TaskGroup`` named
after their node. LLM calls wait for a slot in the shared `SlotPool` with a
priority equal to their longest remaining path to an output, so the critical
path goes first. A retryable failure gives its slot back for the backoff wait
and queues again. A failed node's output is an ERROR value: dependants that
cannot accept errors are skipped (status "skipped") and carry the error on,
so one failure never hangs the rest and nothing is silently dropped. How an
LLM node is called (slot, rate limit, retries, checkpoint and cache reuse)
is in `plait.execution.calls`.

A what-if re-run (`plait.execution.rerun`) passes ``reuse`` (nodes completed
from an earlier run's records, sending nothing) and ``overrides`` (edits to
the nodes that run again).

Define-by-run: with ``root_call`` the run also executes an async ``forward``
(`plait.execution.dynamic`), and any user code it runs (that forward, async
modules, ``@plait.op`` functions, leaf modules) may make calls: each becomes a
node through `add_node` while the run executes, and ``await`` on its
placeholder waits in `waiting` (both in `plait.execution.growth`); a model call
the forward awaits before it has started runs in the forward's own task.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import Any

from plait._tree import tree_map
from plait.errors import ExecutionError
from plait.execution import events as ev
from plait.execution.budget import Budget
from plait.execution.cache import ResponseCache
from plait.execution.calls import EndpointCalls
from plait.execution.checkpoint import Checkpoint, restored_value, stable_hash
from plait.execution.dynamic import Recorder
from plait.execution.growth import Growth, _stepped, prefixes
from plait.execution.pool import SlotPool
from plait.execution.result import (
    CANCELLED,
    DONE,
    FAILED,
    NO_OVERRIDE,
    QUEUED,
    RUNNING,
    SKIPPED,
    NodeOverride,
    NodeRecord,
)
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.module import Module
from plait.resources.manager import ResourceManager
from plait.values import (
    Value,
    ValueKind,
    ValueRef,
    errors_in,
    first_error,
    render_fstring,
    unwrap,
    valueify,
)

EventSink = Callable[[ev.Event], None]
SETTLING = "settling"  # an outcome still to be awaited: the node's code returned placeholders
_REF_TYPES = (ValueRef, Value)


class GraphRun(EndpointCalls, Growth):
    """The state of one graph's execution; `run` drives it to completion."""

    def __init__(
        self,
        graph: InferenceGraph,
        inputs: Mapping[str, Any],
        *,
        manager: ResourceManager | None,
        pool: SlotPool,
        emit: EventSink,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        item: int | None = None,
        checkpoint: Checkpoint | None = None,
        graph_hash: str = "",
        cache: ResponseCache | None = None,
        budget: Budget | None = None,
        reuse: Mapping[str, NodeRecord] | None = None,
        overrides: Mapping[str, NodeOverride] | None = None,
        root_call: tuple[Module, tuple[Any, ...], dict[str, Any]] | None = None,
        replay: Mapping[str, NodeRecord] | None = None,
        fresh: Mapping[str, NodeOverride] | None = None,
    ) -> None:
        self.graph = graph
        self.item = item
        self.inputs = inputs
        self.manager = manager
        self.pool = pool
        self.emit = emit
        self.now = clock
        self.rng = rng or random.Random()
        self.values: dict[str, Value] = {}
        self.live = graph.live_ids()
        self.records = {
            nid: NodeRecord(
                nid,
                graph.nodes[nid].kind.value,
                graph.nodes[nid].module_path,
                graph.nodes[nid].alias,
            )
            for nid in self.live
        }
        self._pending = {nid: len(graph.nodes[nid].dependencies) for nid in self.live}
        self._rank = self._ranks()
        self._tg: asyncio.TaskGroup | None = None
        self.checkpoint = checkpoint
        self.graph_hash = graph_hash
        self.cache = cache
        self.budget = budget
        self._input_keys: dict[str, str] = {}  # node id -> inputs digest, for the checkpoint
        self.reuse = reuse or {}
        self.overrides = dict(overrides or {})
        # A replay of recorded calls (what-if re-run): earlier records by call key, and the
        # calls that must run again (with their edits); see `_replayed`.
        self.replay = replay or {}
        self.fresh = fresh or {}
        self._rerun_parents = prefixes([*self.replay, *self.fresh])
        self._grown = graph.dynamic  # a traced graph is copied before its first new node
        # Define-by-run: the async forward to execute, and what its calls left behind.
        self.root_call = root_call
        self.closed = False  # set once the run has finished: no more calls may be recorded
        self.forward_error: BaseException | None = None  # what forward() raised, if anything
        self._recorder: Recorder | None = None
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._handled: set[int] = set()  # ids of call errors raised at an await
        self._endpoints_ready: set[str | None] = set()  # aliases checked and in the pool
        self._age = 0.0
        # Model calls the forward made and nobody has started yet (see `Growth.waiting`).
        self._unstarted: dict[str, GraphNode] = {}
        self._start_scheduled = False
        self._in_forward = False

    def _ranks(self) -> dict[str, float]:
        """Longest remaining path (in LLM calls) from each node to the end of the graph."""
        rank: dict[str, float] = {}
        for nid in reversed(self.live):
            below = [rank[d] for d in self.graph.dependents(nid) if d in rank]
            weight = 1.0 if self.graph.nodes[nid].kind is NodeKind.LLM else 0.0
            rank[nid] = weight + (max(below) if below else 0.0)
        return rank

    async def run(self) -> None:
        """Run every live node; returns when all have finished (or raises if cancelled)."""
        for nid in self.live:
            alias = self.graph.nodes[nid].alias
            if alias is not None:  # an LLM node (its endpoints were checked when it was traced)
                assert self.manager is not None
                self.pool.add_endpoint(alias, self.manager.endpoint(alias).max_concurrent)
        # In a batch, later items age: an item W items later needs one more step of remaining
        # path to outrank this one (W = the pool's slots), so about one wave of items is in
        # flight and items finish in order, while the critical path still goes first.
        window = self.pool.global_cap or sum(self.pool.capacities().values()) or 1
        self._age = (self.item or 0) / window
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._drain([nid for nid in self.live if self._pending[nid] == 0])
                if self.root_call is not None:
                    await self._drive()  # in this task: the group's children run meanwhile
        except BaseException:
            self._cancel_unfinished("run cancelled")
            raise
        finally:
            self._tg = None
            self.closed = True
            self._waiters.clear()
            if self._recorder is not None:
                # Placeholders kept by user code still reach the recorder (and refuse calls
                # now that the run is closed); the run drops it, so no cycle outlives the run.
                self._recorder.release_frames(run_over=True)
                self._recorder = None

    def _drain(self, ready: list[str], made_here: bool = False) -> None:
        """Start every ready node; local ones run now and may make more nodes ready.

        ``made_here``: the nodes were just recorded by the running code, which may await
        them at once; their model calls start when it next suspends, unless it awaits
        one first (`Growth.waiting`).
        """
        tg = self._tg
        assert tg is not None  # nodes start only while the run's task group is open
        while ready:
            nid = ready.pop()
            node = self.graph.nodes[nid]
            kind = node.kind
            key = node.call_key
            if nid in self.reuse:
                ready.extend(self._reused(nid))
            elif self.replay and key is not None and key in self.replay and self._replayable(node):
                ready.extend(self._reused(nid, self.replay[key]))
            elif kind is NodeKind.INPUT:
                raw = self.inputs[nid]
                value = (
                    Value(raw.kind, raw.payload, nid, raw.meta)
                    if isinstance(raw, Value)
                    else valueify(raw, nid)
                )
                ready.extend(self._finish(nid, value, DONE))
            elif kind is NodeKind.LLM:
                self._queue(nid, node.alias)
                if made_here:
                    self._start_soon(node)
                else:
                    tg.create_task(self._run_llm(node), name=node.module_path or nid)
            elif kind is NodeKind.OP and not node.module.is_async:
                self._start_local(nid)
                call = self._args(node)
                outcome = self._restore(node, call) or self._call_local(node, call)
                if outcome[1] is SETTLING:  # it made calls: finish when they have
                    tg.create_task(self._finish_later(node, outcome[0]), name=nid)
                    continue
                ready.extend(self._finish(nid, *outcome))
            else:
                self._queue(nid, None)
                tg.create_task(self._run_async_local(node), name=node.module_path or nid)

    def _queue(self, nid: str, endpoint: str | None) -> None:
        record = self.records[nid]
        record.status = QUEUED
        record.queued_at = t = self.now()
        self.emit(ev.NodeQueued(t, nid, endpoint, item=self.item))

    def _start_local(self, nid: str) -> None:
        record = self.records[nid]
        record.status = RUNNING
        record.attempts = 1
        record.started_at = t = self.now()
        if record.queued_at is None:
            record.queued_at = t
        self.emit(ev.NodeStarted(t, nid, item=self.item))

    def _finish(
        self, nid: str, value: Value, status: str, error: BaseException | None = None
    ) -> list[str]:
        """Record a node's outcome and return the dependants that became ready."""
        record = self.records[nid]
        record.status = status
        record.output = value
        record.error = error
        record.finished_at = t = self.now()
        if record.started_at is None:
            record.started_at = t
        self.values[nid] = value
        if self._waiters:
            waiter = self._waiters.pop(nid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        endpoint = record.endpoint
        if status == DONE:
            key = self._input_keys.get(nid)
            if self.checkpoint is not None and key is not None and not record.restored:
                self.checkpoint.save(
                    self.graph_hash,
                    self._checkpoint_id(nid),
                    key,
                    value,
                    record.attempts,
                    record.usage,
                    record.cost,
                )
            self.emit(
                ev.NodeCompleted(
                    t,
                    nid,
                    endpoint,
                    record.attempts,
                    record.cached,
                    record.restored,
                    item=self.item,
                )
            )
        elif status == CANCELLED:
            self.emit(ev.NodeCancelled(t, nid, endpoint, str(error or ""), item=self.item))
        else:
            message = f"{type(value.payload).__name__}: {value.payload}" if value.is_error else ""
            self.emit(
                ev.NodeFailed(
                    t, nid, endpoint, message, record.attempts, status == SKIPPED, item=self.item
                )
            )
        ready = []
        pending = self._pending
        for child in self.graph.dependents(nid):
            if child in pending:
                pending[child] -= 1
                if pending[child] == 0:
                    ready.append(child)
        return ready

    def _checkpoint_id(self, nid: str) -> str:
        """A node's name in the checkpoint: its call key when recorded at run time."""
        return self.graph.nodes[nid].call_key or nid

    def _reused(self, nid: str, earlier: NodeRecord | None = None) -> list[str]:
        """Complete a node from an earlier run's record: the same output `Value`, nothing sent."""
        earlier = earlier or self.reuse[nid]
        record = self.records[nid]
        record.reused = True
        record.inputs, record.request = earlier.inputs, earlier.request
        assert earlier.output is not None  # only completed records are reused
        return self._finish(nid, earlier.output, DONE)

    def _cancel_unfinished(self, reason: str) -> None:
        t = self.now()
        for record in self.records.values():
            if record.status not in (DONE, FAILED, SKIPPED, CANCELLED):
                record.status = CANCELLED
                record.finished_at = t
                self.emit(ev.NodeCancelled(t, record.id, record.endpoint, reason, item=self.item))

    def lookup(self, ref: str) -> Value:
        if ref.startswith("param:"):
            return self.graph.parameters[ref].lift(ref[6:])
        return self.values[ref]

    def _resolve_leaf(self, leaf: Any) -> Any:
        if type(leaf) is ValueRef:
            return self.lookup(leaf.ref)
        if type(leaf) is Value and leaf.kind is ValueKind.FSTRING:
            fields = [self.lookup(p.ref) for p in leaf.payload if not isinstance(p, str)]
            error = first_error(fields)
            if error is not None:
                return error
            return Value(ValueKind.TEXT, render_fstring(leaf, self.lookup))
        return leaf

    def _args(self, node: GraphNode) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = node.args
        if len(args) == 1 and not node.kwargs and type(args[0]) in _REF_TYPES:
            resolved: Any = ((self._resolve_leaf(args[0]),), {})  # the usual call: one argument
        elif len(args) == 1 and not node.kwargs and type(args[0]) is str:
            resolved = (args, {})  # a recorded call on a literal string (an awaited reply)
        else:
            resolved = tree_map(self._resolve_leaf, (args, dict(node.kwargs)))
        resolved = self.overrides.get(node.id, NO_OVERRIDE).with_input(resolved)
        self.records[node.id].inputs = resolved
        return resolved

    def _call_local(
        self, node: GraphNode, call: tuple[tuple[Any, ...], dict[str, Any]]
    ) -> tuple[Any, ...]:
        args, kwargs = call
        fn = node.module.fn if node.kind is NodeKind.OP else node.module.forward
        takes_values = node.kind is NodeKind.OP and node.module.takes_values
        if not takes_values:
            error = first_error(args, kwargs)
            if error is not None:
                return self._skipped(node.id, error)
            args, kwargs = unwrap(args), unwrap(kwargs)
        if takes_values and not node.module.calls_out:  # plait's functional ops: no calls
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                return self._failed(node.id, exc)
            return self._local_result(node.id, result, (args, kwargs))
        grown = len(self.graph.nodes)
        tokens = self._enter_user_code(node)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            return self._failed(node.id, exc)
        finally:
            self.recorder.leave(tokens)
        if len(self.graph.nodes) != grown and not asyncio.iscoroutine(result):
            return (self._settle(node, result), SETTLING)  # it made calls: awaited by the caller
        return self._local_result(node.id, result, (args, kwargs))

    def _restore(self, node: GraphNode, call: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The checkpointed outcome of this op node for these inputs, if there is one."""
        if self.checkpoint is None:
            return None
        key = self._input_keys[node.id] = stable_hash([node.target, unwrap(call)])
        saved = self.checkpoint.lookup(self.graph_hash, self._checkpoint_id(node.id), key)
        if saved is None:
            return None
        self.records[node.id].restored = True
        return (restored_value(saved, node.id), DONE)

    async def _run_async_local(self, node: GraphNode) -> None:
        self._start_local(node.id)
        try:
            call = self._args(node)
            outcome = self._restore(node, call)
            if outcome is None:
                # This task's own context: calls its code makes are recorded as its calls.
                self._enter_user_code(node)
                grown = len(self.graph.nodes)
                outcome = self._call_local(node, call)
                if outcome[1] is SETTLING:
                    outcome = await outcome[0]
                elif asyncio.iscoroutine(outcome[0]):
                    try:
                        result = await outcome[0]
                        if len(self.graph.nodes) != grown:
                            outcome = await self._settle(node, result)
                        else:
                            outcome = self._local_result(node.id, result, None)
                    except Exception as exc:
                        outcome = self._failed(node.id, exc)
        except asyncio.CancelledError:
            self._cancel_unfinished("run cancelled")
            raise
        self._drain(self._finish(node.id, *outcome))

    def _local_result(self, nid: str, result: Any, inputs: Any) -> tuple[Any, ...]:
        if asyncio.iscoroutine(result):
            return (result, DONE)  # awaited by _run_async_local
        value = valueify(result)
        value = Value(value.kind, value.payload, nid, value.meta)
        if value.is_error:
            inherited = inputs is not None and any(
                e.payload is value.payload for e in errors_in(inputs)
            )
            return (value, SKIPPED if inherited else FAILED, None if inherited else value.payload)
        return (value, DONE)

    def _failed(self, nid: str, exc: BaseException) -> tuple[Any, ...]:
        return (Value(ValueKind.ERROR, exc, nid, {"node": nid}), FAILED, exc)

    def _skipped(self, nid: str, error: Value) -> tuple[Any, ...]:
        return (
            Value(
                ValueKind.ERROR, error.payload, nid, {**error.meta, "skipped_because": error.ref}
            ),
            SKIPPED,
        )

    def output_values(self) -> Any:
        """The graph's output structure with each reference replaced by its `Value`.

        A node that never finished (a cancelled run) appears as an ERROR value saying so.
        """
        values = self.values

        def leaf(x: Any) -> Any:
            refs = [x.ref] if type(x) is ValueRef else []
            if type(x) is Value and x.kind is ValueKind.FSTRING:
                refs = [p.ref for p in x.payload if not isinstance(p, str)]
            missing = [r for r in refs if not r.startswith("param:") and r not in values]
            if missing:
                return Value(
                    ValueKind.ERROR,
                    ExecutionError(f"node {missing[0]!r} did not finish"),
                    missing[0],
                )
            resolved = self._resolve_leaf(x)
            return resolved if isinstance(resolved, Value) else valueify(resolved)

        return tree_map(leaf, self.graph.output)


GraphRun.STOP_CODES = frozenset(
    {
        _stepped.__code__,  # what resumes the root's forward (for `_drive`)
        GraphRun._run_async_local.__code__,
        GraphRun._call_local.__code__,
    }
)
