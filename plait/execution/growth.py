"""The define-by-run half of `GraphRun`: calls recorded as nodes while the run executes.

With ``root_call`` a run executes an async ``forward`` (`_drive`); that code,
and the user code of any op or module node (`_enter_user_code`), records each
module or op call through `Recorder`, which hands the new node to `add_node`:
the graph grows, the node is scheduled like a traced one, and ``await`` on its
placeholder waits in `waiting` (a model call awaited before it has started runs
right in the awaiting forward's task). A node whose code returned placeholders
finishes when they have (`_settle`). A what-if re-run replays recorded calls
(`_replayable`); failures no code awaited are reported by `unobserved_failures`.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator, Iterable, Mapping
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
    _unstarted: dict[str, GraphNode]
    _start_scheduled: bool
    _in_forward: bool  # the forward's own code is executing (not suspended)
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
            result = await _stepped(self, module.forward(*args, **kwargs))
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
            if self._unstarted:  # calls it made and returned without awaiting: start them now
                self._start_unstarted()
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
            self._drain([nid], made_here=True)

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

    def waiting(self, ref: str) -> Iterable[Any]:
        """What ``await`` on the placeholder of node ``ref`` (not finished) steps through.

        A model call awaited by the code that made it, the usual ``await self.llm(p)``,
        would otherwise take a task for the call and then a wake-up of the forward by
        a future when that task is done (a traced call has the task, but no forward to
        wake). So a model call the forward makes starts when the forward next suspends
        (`_stepped`), unless the forward awaits it first while it is the oldest call
        not started: then it runs right here, in the forward's task, and the await
        returns when it has finished.
        Only the forward's own task runs a call: a task user code made (``gather``,
        ``wait_for``, a ``TaskGroup``) may be cancelled on its own, and that must not
        cancel the call. Anything else waits on a future (`waiter`).
        """
        unstarted = self._unstarted
        if unstarted and self._in_forward and next(iter(unstarted)) == ref:
            return self._run_here(unstarted.pop(ref))
        return self.waiter(ref)

    def _start_soon(self, node: GraphNode) -> None:
        """Start model call ``node`` when the code that made it next suspends, unless it awaits
        that call first. The forward's suspensions are seen by `_stepped`; any other task's
        calls start in one loop callback."""
        self._unstarted[node.id] = node
        if not self._in_forward and not self._start_scheduled:
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_unstarted)

    def _start_unstarted(self) -> None:
        """Start, each in its own task, the model calls made and not awaited (`_start_soon`)."""
        self._start_scheduled = False
        unstarted, self._unstarted = self._unstarted, {}
        tg = self._tg
        for nid, node in unstarted.items():
            if tg is None:
                break  # the run is over (cancelled): it marked these cancelled
            call = self._run_llm(node)
            try:
                tg.create_task(call, name=node.module_path or nid)
            except RuntimeError:  # its task group is shutting down: the run is being cancelled
                call.close()
                break

    def _run_here(self, node: GraphNode) -> Generator[Any, None, None]:
        """Run model call ``node`` in the awaiting forward's task (see `waiting`).

        Once the call has finished, the forward lets every other ready task take its
        turn before it goes on (one bare ``yield``), as it did when a future woke it:
        the items of a batch then take each step together, each piece of code running
        for all of them in turn, rather than each item running the whole path (finish
        one call, record and start the next) on its own, which cycles through more
        code and data than a core's cache holds (simulating this machine's 512 KiB
        second level: 40% more misses per call).
        """
        try:
            yield from self._run_llm(node).__await__()
            yield  # the other tasks' turn (see above)
        except Exception as exc:
            # The runner's own failure (a call's failure is its value, not an exception): it
            # fails the run as it would in the call's own task, and the forward's try/except
            # must not see it. The forward waits to be cancelled with the run.
            assert self._tg is not None  # the forward runs inside the run's task group
            self._tg.create_task(_raise(exc), name=node.module_path or node.id)
            yield from asyncio.get_running_loop().create_future()

    def waiter(self, ref: str) -> asyncio.Future[None]:
        """A future set when node ``ref`` (not finished yet) has finished."""
        if ref not in self.records:
            raise ExecutionError(f"no node {ref!r} in this run")
        waiter = self._waiters.get(ref)
        if waiter is None or waiter.cancelled():  # cancelled: its awaiter's task was (wait_for)
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


async def _raise(exc: Exception) -> None:
    raise exc


@types.coroutine
def _stepped(run: Growth, forward: Coroutine[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """``await forward``, step by step: each time it suspends, the model calls it made and did
    not await start (`Growth._start_soon`); while it runs, ``run._in_forward`` is set."""
    send, throw = forward.send, forward.throw
    value: Any = None
    error: BaseException | None = None
    while True:
        run._in_forward = True
        try:
            step = send(value) if error is None else throw(error)
        except StopIteration as done:
            return done.value
        finally:
            run._in_forward = False
        if run._unstarted:
            run._start_unstarted()
        try:
            value, error = (yield step), None
        except GeneratorExit:
            forward.close()
            raise
        except BaseException as exc:  # thrown in by the task (cancellation): on to forward
            value, error = None, exc


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
