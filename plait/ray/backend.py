"""`RayBackend`: `stream_batch` / `run_batch` with the items spread over Ray worker actors.

The caller's process traces the module (as the local backend does), checks
the options, and then hands the items out in shares to long-lived
`BatchWorker` actors, two shares per worker at a time, so a worker always
has the next share ready when one ends. Workers send back events and
finished items every few tens of milliseconds; the caller replays the events
into its own event log (so ``on_event``, the progress bar, ``on_progress`` and
the ``%%plait`` view see one batch, as they would locally) and rebuilds each
item's `RunResult` around its own graph, grown with the calls the item
recorded on its worker (define-by-run; see `plait.ray.graphs`).

When a worker dies, the items of its unfinished shares go back to the queue
for the other workers, the coordinator is told to return its slots (after
the endpoint timeout), and a replacement worker is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from plait.errors import ConfigError
from plait.execution import events as ev
from plait.execution.args import check_items
from plait.execution.batch import BatchProgress, _Progress, _progress_stream, batch_options
from plait.execution.checkpoint import Checkpoint
from plait.execution.dynamic import is_dynamic
from plait.execution.eventlog import EventLog
from plait.execution.result import BatchItem, build_profile
from plait.execution.run import (
    check_aliases,
    dynamic_graph,
    graph_hash,
    module_fingerprint,
    open_endpoints,
    run_recorder,
)
from plait.execution.settings import RunOptions, effective_options
from plait.graph import InferenceGraph
from plait.ray.coordinator import Coordinator, EndpointLimits
from plait.ray.dispatch import BatchRun
from plait.ray.worker import BatchWorker, Call, WorkerPlan, call_shape
from plait.resources.config import ResourceConfig
from plait.resources.manager import ResourceManager
from plait.tracing import trace

_batch_ids = itertools.count(1)
_INSTALL = "pip install 'plait[ray]' (or: pip install ray)"


def _prepare(
    module: Any, items: list[Any], opts: RunOptions
) -> tuple[list[Call], list[InferenceGraph], ResourceConfig, frozenset[str]]:
    """Each item's arguments and graph, the resources, and the checkpoint's graph hashes.

    A traced module is traced once per call shape; a define-by-run module gets
    an empty graph per item, grown from what its worker records. Everything
    that can be refused is checked here, before any worker is involved:
    arguments ``forward`` cannot take, unknown aliases, missing API keys, and a
    checkpoint written by another pipeline.
    """
    calls = check_items(module, items)
    graphs: dict[Any, InferenceGraph] = {}
    item_graphs = []
    dynamic = is_dynamic(module)
    for index, (args, kwargs) in enumerate(calls):
        if dynamic:
            graph = graphs[index] = dynamic_graph(module, args, kwargs, like=graphs.get(0))
            item_graphs.append(graph)
            continue
        key = call_shape(args, kwargs)
        if key not in graphs:
            graphs[key] = trace(module, *args, **kwargs)
        item_graphs.append(graphs[key])
    resources = opts.resources
    if isinstance(resources, ResourceManager):
        resources = resources.config
    check_aliases(list(graphs.values()), resources)
    resources = resources or ResourceConfig({})
    open_endpoints(ResourceManager(resources), list(graphs.values()))  # keys, before any call
    hashes = frozenset(graph_hash(g) for g in graphs.values()) if opts.checkpoint else None
    if opts.checkpoint:
        Checkpoint(opts.checkpoint, set(hashes or ())).close()
    return calls, item_graphs, resources, hashes or frozenset()


def require_ray() -> Any:
    """The ``ray`` module, or a `ConfigError` saying how to install it."""
    try:
        import ray  # optional extra: plait[ray]
    except ImportError as exc:
        raise ConfigError(
            f"backend='ray' needs the ray package, which is not installed: {_INSTALL}. "
            "Or run the batch locally (backend='local', the default)."
        ) from exc
    return ray


class _Worker:
    def __init__(self, name: str, actor: Any) -> None:
        self.name = name
        self.actor = actor
        self.alive = True


class RayBackend:
    """Run batches on the connected Ray cluster (or a local one it starts).

    ``workers`` defaults to the cluster's CPU count; each worker reserves
    ``num_cpus`` and runs many items at once on its own event loop.
    ``share`` is how many items a worker gets at a time (default: about a
    quarter of each worker's part of the batch, at most 64). Workers and the
    coordinator live until `shutdown` (or until the Ray connection ends), so
    later batches start at once.

        items = await run_batch(pipeline, texts, resources=resources, backend=RayBackend(workers=8))
    """

    def __init__(
        self, workers: int | None = None, *, num_cpus: float = 1.0, share: int | None = None
    ) -> None:
        for name, value in (("workers", workers), ("share", share)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"RayBackend({name}={value!r}): must be a positive int or None")
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, int | float) or num_cpus < 0:
            raise ConfigError(f"RayBackend(num_cpus={num_cpus!r}): must be a number >= 0")
        self.workers = workers
        self.num_cpus = num_cpus
        self.share = share
        self._pool: list[_Worker] = []
        self._coordinator: Any = None
        self._job: Any = None
        self._worker_class: Any = None
        self._names = itertools.count()

    def __repr__(self) -> str:
        alive = sum(w.alive for w in self._pool)
        return f"RayBackend(workers={self.workers}, running={alive})"

    # -- the worker pool ---------------------------------------------------------------

    def _connect(self) -> Any:
        ray = require_ray()
        if not ray.is_initialized():
            # RAY_ADDRESS, if set, names the cluster to join; otherwise Ray starts a local one.
            ray.init(include_dashboard=False, log_to_driver=False)
        job = ray.get_runtime_context().get_job_id()
        if job != self._job:  # a new connection: the old actors are gone with the old one
            self._pool, self._coordinator, self._job = [], None, job
            self._worker_class = None
        return ray

    def _start_worker(self, ray: Any) -> _Worker:
        name = f"worker-{next(self._names)}"
        if self._worker_class is None:
            self._worker_class = ray.remote(BatchWorker)  # exported to the cluster once
        actor = self._worker_class.options(num_cpus=self.num_cpus, max_restarts=0).remote(
            name, self._coordinator
        )
        worker = _Worker(name, actor)
        self._pool.append(worker)
        return worker

    def _ensure_pool(self, ray: Any) -> list[_Worker]:
        if self._coordinator is None:
            self._coordinator = ray.remote(Coordinator).options(num_cpus=0).remote()
        self._pool = [w for w in self._pool if w.alive]
        wanted = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        while len(self._pool) < wanted:
            self._start_worker(ray)
        return list(self._pool)

    async def worker_info(self) -> list[dict[str, Any]]:
        """Each live worker's name, process id, host and CPU seconds (starting them if needed)."""
        ray = self._connect()
        workers = self._ensure_pool(ray)
        return list(await asyncio.gather(*(w.actor.info.remote() for w in workers)))

    def shutdown(self) -> None:
        """Stop the workers and the coordinator (a later batch starts new ones)."""
        ray = require_ray()
        if ray.is_initialized():
            for handle in [*(w.actor for w in self._pool), self._coordinator]:
                if handle is not None:
                    with contextlib.suppress(Exception):
                        ray.kill(handle)
        self._pool, self._coordinator = [], None

    # -- one batch ---------------------------------------------------------------------

    async def stream(
        self,
        module: Any,
        inputs: Iterable[Any],
        *,
        on_progress: Callable[[BatchProgress], None] | None = None,
        progress: bool | str = "auto",
        on_profile: Callable[[Any], None] | None = None,
        **options: Any,
    ) -> AsyncIterator[BatchItem]:
        """`plait.execution.batch.stream_batch` on this backend."""
        opts, _ = effective_options(batch_options(options), module)
        budget = None
        if opts.max_cost is not None or opts.max_tokens is not None:
            budget = (opts.max_cost, opts.max_tokens)  # held by the coordinator, for every worker
        items = list(inputs)
        calls, item_graphs, resources, hashes = _prepare(module, items, opts)
        recorder = run_recorder(opts.store, "batch", module, len(items))
        ray = self._connect()
        workers = self._ensure_pool(ray)
        tracker = _Progress(len(items), on_progress, _progress_stream(progress))
        log = EventLog((*opts.on_event, tracker.on_event), asyncio.get_running_loop().time())
        started = time.time()
        global_cap = opts.max_concurrent or resources.max_concurrent
        batch = f"{os.getpid()}-{next(_batch_ids)}"
        limits = {
            alias: EndpointLimits(config.max_concurrent, config.rpm, config.tpm, config.timeout)
            for alias, config in resources.items()
        }
        await self._coordinator.open.remote(batch, limits, global_cap, budget)
        plan = WorkerPlan(
            resources,
            global_cap,
            str(opts.checkpoint) if opts.checkpoint else None,
            hashes,
            opts.cache,
            started,
            fingerprint=module_fingerprint(module) if is_dynamic(module) else "",
            budget=budget,
        )
        run = BatchRun(
            self,
            ray,
            batch,
            module,
            items,
            calls,
            plan,
            graphs=item_graphs,
            log=log,
            tracker=tracker,
            resources=resources,
            global_cap=global_cap,
            recorder=recorder,
        )
        size = self.share or max(1, min(64, math.ceil(len(items) / (4 * len(workers)))))
        log.emit(
            ev.RunStarted(
                0.0,
                None,
                sum(len(g.live_ids()) for g in item_graphs),
                "batch",
                graphs=tuple(item_graphs),
                records=run.records,
                resources=resources,
            )
        )
        runner = asyncio.create_task(run.run_all(workers, size), name="plait ray batch")
        try:
            async with contextlib.aclosing(run.in_completion_order(runner)) as completed:
                async for done in completed:
                    yield done
            await runner
        finally:
            cancelled = not runner.done()
            if cancelled:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            await run.close()
            if recorder is not None:
                recorder.finish("cancelled" if cancelled else "done")
            log.emit(ev.RunFinished(log.now(), None, "cancelled" if cancelled else "done"))
            if opts.profile or on_profile is not None:
                profile = build_profile(
                    log.events,
                    endpoints=run.endpoints,
                    max_concurrent=global_cap,
                    graphs=dict(enumerate(run.rebuilder.graphs)),
                )
                for result in run.results:
                    result.profile = profile
                if on_profile is not None:
                    on_profile(profile)
