"""Batch runs: many inputs through one pipeline, sharing endpoints and priorities.

Every item is one graph run; all of them share one `SlotPool`, so the
endpoints stay busy and the critical paths of all items compete fairly.
Inputs with the same structure reuse one traced graph. Failures are data
(`BatchItem.ok` / ``.error``); `stream_batch` yields items as they finish and
cancels the rest when the consumer stops early.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from plait._checks import Checks
from plait._format import format_money
from plait._tree import tree_map
from plait._upcalls import upcall
from plait.errors import ConfigError
from plait.execution import events as ev
from plait.execution.args import check_items
from plait.execution.dynamic import is_dynamic
from plait.execution.eventlog import EventLog, gc_tuned
from plait.execution.pool import SlotPool
from plait.execution.result import DONE, BatchItem, RunResult, build_profile
from plait.execution.run import (
    RunOptions,
    RunStores,
    build_result,
    caller_output,
    check_aliases,
    dynamic_graph,
    graph_inputs,
    open_endpoints,
    open_manager,
    result_error,
    run_recorder,
    split_options,
)
from plait.execution.scheduler import GraphRun
from plait.execution.settings import effective_options
from plait.graph import InferenceGraph
from plait.module import Module
from plait.resources.manager import ResourceManager
from plait.tracing import trace
from plait.values import kind_of


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a batch stands: items finished, failed, nodes retrying, tokens, cost, time left."""

    total: int
    done: int
    failed: int
    retrying: int
    tokens: int
    cost: float
    elapsed: float
    eta: float | None

    def __str__(self) -> str:
        width = 24
        filled = int(width * (self.done + self.failed) / self.total) if self.total else width
        eta = f", ETA {self.eta:.0f}s" if self.eta is not None else ""
        failed = f", {self.failed} failed" if self.failed else ""
        retrying = f", {self.retrying} retrying" if self.retrying else ""
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done + self.failed}/{self.total}"
            f"{failed}{retrying}, {self.tokens:,} tokens, {format_money(self.cost)}, {self.elapsed:.1f}s{eta}"
        )


class _Progress:
    """Counts items and nodes from events; reports to a callback and, optionally, a terminal bar."""

    def __init__(
        self, total: int, callback: Callable[[BatchProgress], None] | None, stream: TextIO | None
    ):
        self.total = total
        self.callback = callback
        self.stream = stream
        self.done = self.failed = self.tokens = 0
        self.cost = 0.0
        self.retrying: set[tuple[int | None, str | None]] = set()
        self.start = time.monotonic()
        self._drawn = 0.0

    def on_event(self, event: ev.Event) -> None:
        kind = event.type  # every event of the batch comes here: the usual ones return at once
        if kind == "usage":
            assert isinstance(event, ev.NodeUsage)
            self.tokens += event.usage.total_tokens
            self.cost += event.cost
        elif kind == "node_retry":
            self.retrying.add((event.item, event.node_id))
        elif kind == "node_started" and self.retrying:
            self.retrying.discard((event.item, event.node_id))

    def item_finished(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.report(final=self.done + self.failed == self.total)

    def snapshot(self) -> BatchProgress:
        elapsed = time.monotonic() - self.start
        finished = self.done + self.failed
        eta = elapsed / finished * (self.total - finished) if finished else None
        return BatchProgress(
            self.total,
            self.done,
            self.failed,
            len(self.retrying),
            self.tokens,
            self.cost,
            elapsed,
            eta,
        )

    def report(self, final: bool = False) -> None:
        progress = self.snapshot()
        if self.callback is not None:
            self.callback(progress)
        if self.stream is not None and (final or progress.elapsed - self._drawn >= 0.1):
            self._drawn = progress.elapsed
            self.stream.write(f"\r{progress}" + ("\n" if final else ""))
            self.stream.flush()


def _shape(x: Any) -> Any:
    """The structure of an input (containers and leaf kinds): inputs of one shape share a graph."""
    return tree_map(
        lambda leaf: kind_of(leaf).value, x if isinstance(x, dict | list | tuple) else (x,)
    )


def _progress_stream(progress: bool | str) -> TextIO | None:
    if progress is True or (progress == "auto" and sys.stderr.isatty()):
        return sys.stderr
    if progress not in (False, "auto"):
        raise ConfigError(f"progress must be True, False or 'auto'; got {progress!r}")
    return None


# Named backends, each reached through the upcall seam (they sit on higher floors).
_BACKENDS: dict[str, str] = {"ray": "ray_backend"}


def _backend(backend: Any) -> Any:
    if isinstance(backend, str) and backend in _BACKENDS:
        return upcall(_BACKENDS[backend])()
    if not isinstance(backend, str) and callable(getattr(backend, "stream", None)):
        return backend
    raise ConfigError(
        f"backend={backend!r}: use 'local' (the default), {', '.join(map(repr, _BACKENDS))}, "
        "or a backend object such as plait.ray.RayBackend(workers=4)"
    )


def batch_options(options: dict[str, Any]) -> RunOptions:
    """The run options given to a batch (any backend); an unknown one is refused."""
    explicit, extra = split_options(dict(options))
    if extra:
        raise ConfigError(
            f"unknown batch option(s) {', '.join(sorted(extra))}; each input is passed to "
            "forward() as its one argument, or spread with plait.Args(q, k=3) per item"
        )
    return explicit


def _plan(
    module: Module, items: list[Any], dynamic: bool
) -> tuple[list[InferenceGraph], list[tuple[InferenceGraph, dict[str, Any]]]]:
    """Each item's graph and input values, after checking every item against ``forward``.

    Traced once per shape of the arguments; define-by-run, one graph per item
    that records its calls as it runs.
    """
    graphs: dict[Any, InferenceGraph] = {}
    plans: list[tuple[InferenceGraph, dict[str, Any]]] = []
    for index, (args, kwargs) in enumerate(check_items(module, items)):
        if dynamic:
            graph = graphs[index] = dynamic_graph(module, args, kwargs, like=graphs.get(0))
            plans.append((graph, {}))
            continue
        key = repr((_shape(args), sorted(kwargs), _shape(tuple(kwargs.values()))))
        traced = graphs.get(key)
        if traced is None:
            traced = graphs[key] = trace(module, *args, **kwargs)
        plans.append((traced, graph_inputs(traced, args, kwargs)))
    return list(graphs.values()), plans


class ItemStream:
    """A batch's finished items, on any backend: counted, saved, and read as they finish."""

    def __init__(self, module: Module, items: list[Any], tracker: _Progress, recorder: Any) -> None:
        self.module, self.items, self.tracker = module, items, tracker
        self.recorder = recorder  # saves each finished item to the run store, if one is set
        self.results: list[RunResult] = []  # to attach the batch profile to
        self.finished: asyncio.Queue[BatchItem] = asyncio.Queue()

    def deliver(self, index: int, result: RunResult) -> None:
        """Item ``index`` finished with ``result``: count it, save it, hand it to the reader."""
        self.results.append(result)
        error = result_error(result)
        ok = error is None
        self.tracker.item_finished(ok)
        output = caller_output(self.module, result, index) if ok else None
        done = BatchItem(index, self.items[index], ok, output, error, result)
        if self.recorder is not None:
            self.recorder.add(done)
        self.finished.put_nowait(done)

    async def in_completion_order(
        self, runner: asyncio.Task[None]
    ) -> AsyncGenerator[BatchItem, None]:
        """Each item as it finishes; re-raises if the batch itself (``runner``) broke."""
        finished = self.finished
        for _ in range(len(self.items)):
            if finished.empty() and not runner.done():
                getter = asyncio.ensure_future(finished.get())
                await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
            if runner.done():
                runner.result()
            yield finished.get_nowait()


class _BatchRun(ItemStream):
    """The items of one batch running on a shared manager, pool and event log."""

    def __init__(
        self,
        module: Module,
        items: list[Any],
        plans: list[tuple[InferenceGraph, dict[str, Any]]],
        *,
        log: EventLog,
        tracker: _Progress,
        stores: RunStores,
        manager: ResourceManager | None,
        pool: SlotPool,
        dynamic: bool,
        recorder: Any = None,
    ) -> None:
        super().__init__(module, items, tracker, recorder)
        self.plans, self.dynamic = plans, dynamic
        self.log, self.stores = log, stores
        self.manager, self.pool = manager, pool
        self.rng = random.Random()
        self.records: list[Any] = [None] * len(items)  # each item's records once it starts
        self.graphs: dict[int | None, InferenceGraph] = dict(enumerate(g for g, _ in plans))

    def started(self) -> ev.RunStarted:
        return ev.RunStarted(
            0.0,
            None,
            sum(len(g.live_ids()) for g, _ in self.plans),
            "batch",
            graphs=tuple(g for g, _ in self.plans),
            records=self.records,
            resources=self.manager.config if self.manager is not None else None,
        )

    async def run_item(self, index: int) -> None:
        graph, values = self.plans[index]
        log, events = self.log, list[ev.Event]()
        emit = log.emitter(events)
        graph_run = GraphRun(
            graph,
            values,
            manager=self.manager,
            pool=self.pool,
            emit=emit,
            clock=log.now,
            rng=self.rng,
            item=index,
            root_call=(self.module, *graph.call) if self.dynamic else None,
            **self.stores.for_graph(graph),
        )
        self.records[index] = graph_run.records
        start = log.now()
        await graph_run.run()
        self.graphs[index] = graph_run.graph  # its own copy if calls were recorded
        result = build_result(graph_run, log, DONE, log.now() - start, self.stores.budget)
        result.events = events
        self.deliver(index, result)

    async def run_all(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for index in range(len(self.items)):
                tg.create_task(self.run_item(index), name=f"batch item {index}")

    def attach_profile(self, on_profile: Callable[[Any], None] | None) -> None:
        """Profile the whole batch as one timeline; every item's result shares it."""
        profile = build_profile(
            self.log.events,
            endpoints=self.pool.capacities(),
            max_concurrent=self.pool.global_cap,
            graphs=self.graphs,
        )
        for result in self.results:
            result.profile = profile
        if on_profile is not None:
            on_profile(profile)


async def stream_batch(
    module: Module,
    inputs: Iterable[Any],
    *,
    on_progress: Callable[[BatchProgress], None] | None = None,
    progress: bool | str = "auto",
    on_profile: Callable[[Any], None] | None = None,
    backend: Any = "local",
    **options: Any,
) -> AsyncGenerator[BatchItem, None]:
    """Run ``module`` on every input, yielding `BatchItem`s in completion order.

    Each input is passed as the single positional argument of ``forward``; an
    `Args` item spreads several (``Args(question, k=3)``). Every item is checked
    against ``forward``'s signature before any request: a plain tuple or a dict
    of parameter names given to a ``forward`` with several parameters is refused
    (spread it with ``Args(*item)`` / ``Args(**item)``), never bound to the
    first parameter.
    Stopping early (``break``, or closing the iterator) cancels every item
    still running; use ``contextlib.aclosing`` to make that immediate.
    With ``profile=True`` or ``on_profile``, the batch is profiled as one
    timeline when it ends: the `plait.profiling.Profile` goes to ``on_profile``
    and becomes every item's ``result.profile``. ``backend="ray"`` runs the
    items on a Ray cluster (see `plait.ray`), with the same results.
    """
    checks = Checks("stream_batch")
    checks.function("on_progress", on_progress)
    checks.function("on_profile", on_profile)
    checks.raise_any()
    if not (isinstance(backend, str) and backend == "local"):
        runner = _backend(backend).stream(
            module,
            inputs,
            on_progress=on_progress,
            progress=progress,
            on_profile=on_profile,
            **options,
        )
        async with contextlib.aclosing(runner):
            async for item in runner:
                yield item
        return
    opts, owner = effective_options(batch_options(options), module)
    items = list(inputs)
    dynamic = is_dynamic(module)
    graphs, plans = _plan(module, items, dynamic)
    resources = (
        opts.resources.config if isinstance(opts.resources, ResourceManager) else opts.resources
    )
    check_aliases(graphs, resources)
    tracker = _Progress(len(items), on_progress, _progress_stream(progress))
    log = EventLog((*opts.on_event, tracker.on_event), asyncio.get_running_loop().time())
    stores = RunStores(opts, graphs)
    recorder = run_recorder(opts.store, "batch", module, len(items))
    async with gc_tuned(), open_manager(opts, owner) as manager:
        try:
            open_endpoints(manager, graphs)
        except BaseException:
            stores.close()
            raise
        pool = SlotPool(opts.max_concurrent or (manager.max_concurrent if manager else None))
        batch = _BatchRun(
            module,
            items,
            plans,
            log=log,
            tracker=tracker,
            stores=stores,
            manager=manager,
            pool=pool,
            dynamic=dynamic,
            recorder=recorder,
        )
        log.emit(batch.started())
        runner = asyncio.create_task(batch.run_all(), name="plait batch")
        try:
            async with contextlib.aclosing(batch.in_completion_order(runner)) as completed:
                async for item in completed:
                    yield item
            await runner
        finally:
            cancelled = not runner.done()
            if cancelled:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            stores.close()  # after every item has stopped writing to it
            if recorder is not None:
                recorder.finish("cancelled" if cancelled else "done")
            log.emit(ev.RunFinished(log.now(), None, "cancelled" if cancelled else "done"))
            if opts.profile or on_profile is not None:
                batch.attach_profile(on_profile)


async def run_batch(module: Module, inputs: Iterable[Any], **options: Any) -> list[BatchItem]:
    """Run ``module`` on every input; returns one `BatchItem` per input, in input order.

    An input is ``forward``'s one argument, or an `Args` of several; items that
    do not fit ``forward``'s signature are refused before any request (see
    `stream_batch`).

    items = await run_batch(pipeline, texts, resources=resources)
    [item.output for item in items if item.ok]
    items = await run_batch(rag, [Args(q, k=3) for q in questions], resources=resources)
    """
    collected: list[BatchItem] = []
    async with contextlib.aclosing(stream_batch(module, inputs, **options)) as stream:
        async for item in stream:
            collected.append(item)
    return sorted(collected, key=lambda item: item.index)


__all__ = ["BatchProgress", "run_batch", "stream_batch"]
