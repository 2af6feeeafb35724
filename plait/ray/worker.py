"""`BatchWorker`: the body of one Ray worker actor, running shares of a batch with `GraphRun`.

A worker gets the module once (pickled per batch, so it carries the
parameters of that moment) and then any number of shares: lists of
``(index, (args, kwargs))``. It runs every item of a share concurrently on its own
event loop, exactly as the local backend does (one `SlotPool` for all its
items, priorities by remaining path), with endpoints whose slots and start
times (and, with a budget, permits) come from the coordinator
(`ClusterManager`). A define-by-run module runs its ``async forward`` per
item, as locally; the nodes it records travel back without their modules
(`plait.ray.graphs`). `run` is a Ray
streaming generator: it yields an `Update` every `FLUSH` seconds with the
events since the last one and the items that finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from plait.clients.base import Usage
from plait.errors import ExecutionError
from plait.execution import events as ev
from plait.execution.batch import _shape
from plait.execution.cache import cache_for
from plait.execution.checkpoint import Checkpoint
from plait.execution.dynamic import is_dynamic
from plait.execution.pool import SlotPool
from plait.execution.result import DONE, NodeRecord
from plait.execution.run import build_result, dynamic_graph, graph_inputs
from plait.execution.scheduler import GraphRun
from plait.graph import InferenceGraph
from plait.ray.graphs import Grown, Shipper
from plait.ray.leases import ClusterBudget, ClusterManager, Leases
from plait.resources.config import ResourceConfig
from plait.tracing import trace

FLUSH = 0.05  # seconds between updates sent to the caller while items run
Call = tuple[tuple[Any, ...], dict[str, Any]]  # an item's arguments for forward


def call_shape(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The structure of a call's arguments: calls of one shape share a traced graph."""
    return repr((_shape(args), sorted(kwargs), _shape(tuple(kwargs.values()))))


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker of one batch shares: the settings it runs items with."""

    resources: ResourceConfig
    global_cap: int | None
    checkpoint: str | None
    graph_hashes: frozenset[str]
    cache: Any
    started: float  # the caller's wall-clock start: event times count from it
    fingerprint: str = ""  # a define-by-run module's checkpoint key (`module_fingerprint`)
    budget: tuple[float | None, int | None] | None = None  # (max_cost, max_tokens), cluster-wide


@dataclass(frozen=True)
class ItemOutcome:
    """One finished item as the caller needs it to build the item's `RunResult`."""

    index: int
    status: str
    values: Any
    nodes: dict[str, NodeRecord]
    usage: Usage
    cost: float
    makespan: float
    grown: Grown | None = None  # the nodes its run recorded (define-by-run, or module nodes' calls)
    forward_error: BaseException | None = None  # what an async forward raised, if anything


@dataclass(frozen=True)
class Update:
    """Events since the last update, and the items that finished meanwhile."""

    events: list[ev.Event] = field(default_factory=list)
    items: list[ItemOutcome] = field(default_factory=list)


class _Batch:
    """One batch as a worker runs it: the module, its settings, leases and the shared slot pool."""

    def __init__(self, name: str, coordinator: Any, batch: str, module: Any, plan: WorkerPlan):
        async def sync(
            report: dict[str, dict[str, Any]], spend: dict[str, Any] | None
        ) -> dict[str, Any]:
            return await coordinator.sync.remote(batch, name, report, spend)

        self.module = module
        self.plan = plan
        self.dynamic = is_dynamic(module)
        self.budget = ClusterBudget(*plan.budget) if plan.budget is not None else None
        self.leases = Leases(sync, plan.resources, self.budget)
        self.manager = ClusterManager(plan.resources, self.leases)
        self.pool = SlotPool(plan.global_cap)
        self.cache = cache_for(plan.cache)
        self.rng = random.Random()
        self.shipper = Shipper(module)
        self._graphs: dict[str, InferenceGraph] = {}
        self._like: InferenceGraph | None = (
            None  # the first define-by-run graph: items share its layout
        )
        self._runners: set[asyncio.Task[None]] = set()

    def _now(self) -> float:
        return time.time() - self.plan.started

    def _graph(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InferenceGraph:
        if self.dynamic:
            grown = dynamic_graph(self.module, args, kwargs, like=self._like)
            self._like = self._like or grown
            return grown
        key = call_shape(args, kwargs)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = trace(self.module, *args, **kwargs)
        return graph

    async def run(self, share: Sequence[tuple[int, Call]]) -> AsyncIterator[Update]:
        # Opened per share, so a share re-run after a worker died sees what that worker saved.
        checkpoint = (
            Checkpoint(self.plan.checkpoint, set(self.plan.graph_hashes))
            if self.plan.checkpoint
            else None
        )
        pending = Update()
        events = pending.events
        ship = self.shipper.event

        def emit(event: ev.Event) -> None:
            events.append(ship(event))  # a recorded node travels without its module

        async def one(index: int, call: Call) -> None:
            args, kwargs = call
            graph = self._graph(args, kwargs)
            graph_hash = ""
            if checkpoint is not None:
                graph_hash = self.plan.fingerprint if self.dynamic else graph.structural_hash()
            graph_run = GraphRun(
                graph,
                {} if self.dynamic else graph_inputs(graph, args, kwargs),
                manager=self.manager,
                pool=self.pool,
                emit=emit,
                clock=self._now,
                rng=self.rng,
                item=index,
                checkpoint=checkpoint,
                graph_hash=graph_hash,
                cache=self.cache,
                budget=self.budget,
                root_call=(self.module, args, kwargs) if self.dynamic else None,
            )
            start = self._now()
            await graph_run.run()
            no_log = SimpleNamespace(events=[])  # the caller keeps the events
            result = build_result(graph_run, no_log, DONE, self._now() - start, self.budget)  # type: ignore[arg-type]
            pending.items.append(
                ItemOutcome(
                    index,
                    result.status,
                    result.values,
                    result.nodes,
                    result.usage,
                    result.cost,
                    result.makespan,
                    self.shipper.grown(graph, graph_run.graph),
                    _picklable(result.forward_error),
                )
            )

        async def run_all() -> None:
            async with asyncio.TaskGroup() as tg:
                for index, call in share:
                    tg.create_task(one(index, call), name=f"batch item {index}")

        runner = asyncio.create_task(run_all(), name="plait share")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        try:
            while True:
                await asyncio.wait({runner}, timeout=FLUSH)
                finished = runner.done()
                if pending.events or pending.items:
                    update = Update(pending.events[:], pending.items[:])
                    pending.events.clear()
                    pending.items.clear()
                    yield update
                if finished:
                    runner.result()  # re-raises if the share itself broke
                    return
        finally:
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            if checkpoint is not None:
                checkpoint.close()

    async def close(self) -> None:
        for runner in list(self._runners):  # the caller stopped early: stop its shares too
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        await self.leases.aclose()
        await self.manager.aclose()


def _picklable(error: BaseException | None) -> BaseException | None:
    """``error``, or an `ExecutionError` with its text if it cannot travel to the caller."""
    if error is None:
        return None
    from ray import cloudpickle  # what Ray sends the update with; only workers import this

    try:
        cloudpickle.dumps(error)
    except Exception:
        return ExecutionError(f"{type(error).__name__}: {error}")
    return error


class BatchWorker:
    """A Ray actor that runs shares of batches; it lives across batches, each begun and ended."""

    def __init__(self, name: str, coordinator: Any) -> None:
        self.name = name
        self.coordinator = coordinator
        self._batches: dict[str, _Batch] = {}

    def info(self) -> dict[str, Any]:
        """Where this worker runs (process id, host) and the CPU seconds its process has used."""
        return {
            "name": self.name,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "cpu": time.process_time(),
        }

    def begin(self, batch: str, module: Any, plan: WorkerPlan) -> None:
        """Take the module (as pickled for this batch) and the batch's settings."""
        self._batches[batch] = _Batch(self.name, self.coordinator, batch, module, plan)

    async def run(self, batch: str, share: Sequence[tuple[int, Call]]) -> AsyncIterator[Update]:
        """Run every ``(index, (args, kwargs))`` of ``share``; yield `Update`s until all finish."""
        async for update in self._batches[batch].run(share):
            yield update

    async def end(self, batch: str) -> None:
        """Hand the batch's leased slots back and close its endpoints' connections."""
        state = self._batches.pop(batch, None)
        if state is not None:
            await state.close()
