"""`BatchRun`: the caller's side of one Ray batch: shares out, events and items back, faults.

Items wait in one queue in input order. Each live worker serves two shares
at a time (while one ends, the next runs); a share is a Ray streaming call
whose `Update`s are replayed here as they arrive (a recorded node grows its
item's graph before its ``node_added`` event is replayed). A worker that dies
takes nothing with it: the unfinished items of its shares go back to the
front of the queue (each to grow a fresh graph), the coordinator is told, and
a replacement starts (up to as many replacements as the batch had workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import deque
from typing import Any

from plait.errors import ConfigError, ExecutionError
from plait.execution import events as ev
from plait.execution.batch import ItemStream, _Progress
from plait.execution.eventlog import EventLog
from plait.execution.result import RunResult
from plait.graph import InferenceGraph
from plait.ray.graphs import Rebuilder
from plait.ray.worker import Call, Update, WorkerPlan
from plait.resources.config import ResourceConfig
from plait.values import unwrap

SHARES_PER_WORKER = 2


class BatchRun(ItemStream):
    """The state of one batch on the caller's side; `run_all` drives it to the end."""

    def __init__(
        self,
        backend: Any,
        ray: Any,
        batch: str,
        module: Any,
        items: list[Any],
        calls: list[Call],
        plan: WorkerPlan,
        *,
        graphs: list[InferenceGraph],
        log: EventLog,
        tracker: _Progress,
        resources: ResourceConfig,
        global_cap: int | None,
        recorder: Any = None,
    ) -> None:
        super().__init__(module, items, tracker, recorder)
        self.backend = backend
        self.ray = ray
        self.batch = batch
        self.calls = calls
        self.plan = plan
        self.module_ref = ray.put(_shippable(module))
        self.rebuilder = Rebuilder(module, graphs)
        self.log = log
        self.resources = resources
        self.endpoints = {alias: config.max_concurrent for alias, config in resources.items()}
        self.global_cap = global_cap
        self.records: list[Any] = [None] * len(items)  # each item's records once it finished
        self._pending: deque[int] = deque(range(len(items)))
        self._dispatched: set[int] = set()
        self._delivered: set[int] = set()
        self._events: list[list[ev.Event]] = [[] for _ in items]
        self._changed = asyncio.Event()
        self._begun: list[Any] = []
        self._replacements = 0
        self._tg: asyncio.TaskGroup | None = None
        self._size = 1

    async def run_all(self, workers: list[Any], size: int) -> None:
        self._size = size
        self._replacements = len(workers)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for worker in workers:
                    tg.create_task(self._serve(worker), name=f"plait {worker.name}")
        except BaseExceptionGroup as group:
            raise _first(group) from None  # one cause, not a tree of task groups

    async def _serve(self, worker: Any) -> None:
        died = self.ray.exceptions.RayActorError
        try:
            try:
                await worker.actor.begin.remote(self.batch, self.module_ref, self.plan)
            except self.ray.exceptions.RayError as exc:
                if isinstance(exc, died) or "No module named" not in str(exc):
                    raise
                missing = str(exc).rsplit("No module named", 1)[1].split("\n", 1)[0].strip()
                raise ConfigError(
                    f"the Ray workers cannot import the code of {type(self.module).__name__} "
                    f"(no module named {missing}). Make it importable on every node: install "
                    "it there, or pass runtime_env={'working_dir': ...} or {'py_modules': [...]} "
                    "to ray.init."
                ) from exc
            self._begun.append(worker)
            async with asyncio.TaskGroup() as tg:
                for _ in range(SHARES_PER_WORKER):
                    tg.create_task(self._feed(worker), name=f"plait {worker.name} share")
        except* died:
            self._lost(worker)

    async def _feed(self, worker: Any) -> None:
        while len(self._delivered) < len(self.items):
            share = [self._pending.popleft() for _ in range(min(self._size, len(self._pending)))]
            if not share:
                self._changed.clear()
                await self._changed.wait()
                continue
            for index in share:
                if index in self._dispatched:
                    self._events[index] = []  # a re-run: its result keeps only its own events
                    self.rebuilder.restart(index)
                self._dispatched.add(index)
            unfinished = set(share)
            try:
                stream = worker.actor.run.remote(
                    self.batch, [(index, self.calls[index]) for index in share]
                )
                async for ref in stream:
                    self._relay(await ref, unfinished)
            finally:
                if unfinished:  # the worker died (or the batch stopped): someone else runs them
                    self._pending.extendleft(sorted(unfinished, reverse=True))
                self._changed.set()

    def _lost(self, worker: Any) -> None:
        worker.alive = False
        self._coordinator_call("lost", worker.name)
        if self._replacements == 0:
            if not any(w.alive for w in self._begun):
                raise ExecutionError(
                    f"every Ray worker of this batch died ({len(self._begun)} started); "
                    f"{len(self.items) - len(self._delivered)} items did not finish. "
                    "Check the Ray logs for the cause (memory, a crash in a native library)."
                )
            return
        self._replacements -= 1
        replacement = self.backend._start_worker(self.ray)
        assert self._tg is not None
        self._tg.create_task(self._serve(replacement), name=f"plait {replacement.name}")

    def _coordinator_call(self, method: str, *args: Any) -> Any:
        return getattr(self.backend._coordinator, method).remote(self.batch, *args)

    def _relay(self, update: Update, unfinished: set[int]) -> None:
        events = self._events
        rebuild = self.rebuilder.event
        for event in update.events:
            event = rebuild(event)
            self.log.emit(event)
            if event.item is not None:
                events[event.item].append(event)
        for outcome in update.items:
            index = outcome.index
            unfinished.discard(index)
            if index in self._delivered:
                continue
            self._delivered.add(index)
            result = RunResult(
                self.rebuilder.finished(index, outcome.grown),
                unwrap(outcome.values),
                outcome.values,
                outcome.nodes,
                events[index],
                outcome.status,
                outcome.usage,
                outcome.cost,
                outcome.makespan,
                endpoints=self.endpoints,
                max_concurrent=self.global_cap,
                resources=self.resources,
                forward_error=outcome.forward_error,
            )
            self.records[index] = outcome.nodes
            self.deliver(index, result)

    async def close(self) -> None:
        """End the batch on every worker that began it (cancelling its shares), then the ledger."""
        died = self.ray.exceptions.RayActorError
        ends = [w.actor.end.remote(self.batch) for w in self._begun if w.alive]
        for end in ends:
            with contextlib.suppress(died):
                await end
        with contextlib.suppress(died):
            await self._coordinator_call("close")


def _first(group: BaseExceptionGroup) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _shippable(module: Any) -> Any:
    """``module`` without its `bind` settings (a live manager does not pickle; workers get theirs)."""
    if getattr(module, "_settings", None) is None:
        return module
    clone = copy.copy(module)
    object.__setattr__(clone, "_settings", None)
    return clone
