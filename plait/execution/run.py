"""Entry points: `execute` (a `RunResult`), `run` (the output or an `ExecutionError`), `run_sync`.

Every entry point traces the module with the given inputs, then runs the graph.
Run options are keyword-only and reserved (see `RUN_OPTIONS`); every other
keyword argument goes to ``forward``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
import itertools
import random
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, TypeVar

import nest_asyncio

from plait._tree import tree_leaves
from plait._upcalls import upcall
from plait.errors import BudgetExceeded, ConfigError, ExecutionError
from plait.execution import events as ev
from plait.execution.budget import Budget
from plait.execution.cache import ResponseCache, cache_for
from plait.execution.checkpoint import Checkpoint, stable_hash
from plait.execution.dynamic import is_dynamic
from plait.execution.eventlog import EventLog, gc_tuned
from plait.execution.pool import SlotPool
from plait.execution.recording import Layout
from plait.execution.records import attach_record
from plait.execution.result import (
    BUDGET_EXCEEDED,
    CANCELLED,
    DONE,
    FAILED,
    NO_OVERRIDE,
    SKIPPED,
    BatchItem,
    NodeOverride,
    NodeRecord,
    RunResult,
)
from plait.execution.scheduler import GraphRun
from plait.execution.settings import RUN_OPTIONS, ExecutionSettings, RunOptions, effective_options
from plait.graph import InferenceGraph, NodeKind
from plait.inference import LLMInference
from plait.module import Module
from plait.resources.config import ResourceConfig
from plait.resources.manager import ResourceManager
from plait.tracing import trace
from plait.values import Value, ValueKind, unwrap

T = TypeVar("T")
_run_ids = itertools.count(1)
_SIGNATURES: dict[type, inspect.Signature] = {}  # forward() signatures, by module class


def run_recorder(store: Any, kind: str, module: Any, count: int) -> Any:
    """What saves a run ("run") or batch ("batch") of ``count`` items, or None without a store.

    The ``store`` run option: `plait.evaluation.runs.recorder`, through the
    upcall seam (the store sits a floor above). Opened before anything is
    sent, so a bad store path fails first.
    """
    if store is None or store is False:
        return None
    return upcall("run_recorder")(store, kind, module, count)


def caller_output(module: Module, result: RunResult, item: int | None = None) -> Any:
    """``result.output`` as callers get it: carrying its forward record when ``module`` is training."""
    if not getattr(module, "training", False):
        return result.output
    return attach_record(module, result, item)


def split_options(kwargs: dict[str, Any]) -> tuple[RunOptions, dict[str, Any]]:
    """Separate the reserved run options from the arguments meant for ``forward``."""
    options = {k: kwargs.pop(k) for k in RUN_OPTIONS if k in kwargs}
    return RunOptions.build(**options), kwargs


def graph_inputs(
    graph: InferenceGraph, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The value of each input node for a call with ``args`` / ``kwargs``."""
    if not graph.input_paths:
        return {}
    signature = _SIGNATURES.get(type(graph.root))
    if signature is None:
        signature = _SIGNATURES[type(graph.root)] = inspect.signature(graph.root.forward)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    values = {}
    for node_id, (name, path) in graph.input_paths.items():
        value = bound.arguments[name]
        for key in path:
            value = value[key]
        values[node_id] = value
    return values


def dynamic_graph(
    module: Module,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    like: InferenceGraph | None = None,
) -> InferenceGraph:
    """The graph of a define-by-run call of ``module``: empty, grown by the run as calls are made.

    ``like``: another call's graph of the same module, whose parameters and layout it shares
    (the items of a batch).
    """
    parameters = (
        like.parameters
        if like is not None
        else {f"param:{name}": param for name, param in module.named_parameters()}
    )
    graph = InferenceGraph(
        {},
        (),
        Value(ValueKind.ERROR, ExecutionError("forward() did not finish"), None),
        parameters,
        root=module,
    )
    graph.layout = like.layout if like is not None else Layout.of(module)
    graph.dynamic = True
    graph.call = (tuple(args), dict(kwargs or {}))
    return graph


def module_fingerprint(module: Module) -> str:
    """A stable hash of a dynamic module's structure and settings (a checkpoint's graph hash).

    Covers every submodule's path and type, each model call's alias and
    request settings, and every parameter's value: what decides the requests
    a replay would send (their inputs are checked per call as well).
    """
    parts: list[Any] = [type(module).__qualname__]
    for path, sub in module.named_modules():
        entry: list[Any] = [path, f"{type(sub).__module__}.{type(sub).__qualname__}"]
        if isinstance(sub, LLMInference):
            entry += [sub.alias, sub.system_text(), sub.temperature, sub.max_tokens]
            entry += [sub.response_schema, sub.tools, sub.stream, sorted(sub.request_options)]
        parts.append(entry)
    parts.append(sorted((name, repr(value)) for name, value in module.state_dict().items()))
    return stable_hash(parts)


def graph_hash(graph: InferenceGraph) -> str:
    """The hash a checkpoint is keyed by: structural for a traced graph, of the module if dynamic."""
    if graph.dynamic:
        return module_fingerprint(graph.root)
    return graph.structural_hash()


def needed_aliases(graphs: list[InferenceGraph]) -> dict[str, list[str]]:
    """Each endpoint alias the graphs may call, with the nodes (or module paths) that call it.

    A dynamic graph has no nodes yet: every model call registered under its
    root module counts instead (the calls it may make).
    """
    needed: dict[str, list[str]] = {}
    roots: set[int] = set()
    for graph in graphs:
        if graph.dynamic and id(graph.root) not in roots:
            roots.add(id(graph.root))
            for path, sub in graph.root.named_modules():
                if isinstance(sub, LLMInference):
                    needed.setdefault(sub.alias, []).append(path)
        for node in graph.nodes.values():
            if node.kind is NodeKind.LLM and node.live:
                needed.setdefault(str(node.alias), []).append(node.id)
    return needed


def check_aliases(graphs: list[InferenceGraph], resources: ResourceConfig | None) -> None:
    """Fail before anything runs if a node uses an alias the resources do not define."""
    needed = needed_aliases(graphs)
    if not needed:
        return
    if resources is None:
        raise ConfigError(
            f"this pipeline calls endpoint(s) {', '.join(sorted(needed))} but no resources were given. "
            "Pass resources=ResourceConfig({...}) (or ResourceConfig.simulated(...) to run offline), "
            "use module.bind(resources=...), or run inside `with ExecutionSettings(resources=...)`."
        )
    missing = {alias: ids for alias, ids in needed.items() if alias not in resources}
    if missing:
        listed = "; ".join(
            f"{alias!r} (used by {', '.join(ids[:3])}){_did_you_mean(alias, resources.aliases)}"
            for alias, ids in missing.items()
        )
        raise ConfigError(
            f"the resources define no endpoint for {listed}; defined aliases: "
            f"{', '.join(resources.aliases) or '(none)'}. Add them to the ResourceConfig."
        )


def _did_you_mean(alias: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(alias, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def open_endpoints(manager: ResourceManager | None, graphs: list[InferenceGraph]) -> None:
    """Build every endpoint the graphs call, so a missing API key fails before any request."""
    if manager is None:
        return
    for alias in sorted(needed_aliases(graphs)):
        if alias in manager.config:
            manager.endpoint(alias)


@contextlib.asynccontextmanager
async def open_manager(
    options: RunOptions, owner: ExecutionSettings | None
) -> AsyncIterator[ResourceManager | None]:
    """The manager for a run: the shared one of the owning settings, or one closed afterwards."""
    resources = options.resources
    if isinstance(resources, ResourceManager):
        yield resources
    elif owner is not None and owner.options.resources is resources:
        yield owner.manager()
    elif resources is None:
        yield None
    else:
        async with ResourceManager(resources) as manager:
            yield manager


class RunStores:
    """What the run options ask a run (or a whole batch) to keep: checkpoint, cache, budget."""

    def __init__(self, options: RunOptions, graphs: list[InferenceGraph]) -> None:
        self.hashes = {id(g): graph_hash(g) for g in graphs} if options.checkpoint else {}
        self.checkpoint = (
            Checkpoint(options.checkpoint, set(self.hashes.values()))
            if options.checkpoint
            else None
        )
        self.cache: ResponseCache | None = cache_for(options.cache)
        limited = options.max_cost is not None or options.max_tokens is not None
        self.budget = Budget(options.max_cost, options.max_tokens) if limited else None

    def for_graph(self, graph: InferenceGraph) -> dict[str, Any]:
        """Keyword arguments for a `GraphRun` of ``graph``."""
        return {
            "checkpoint": self.checkpoint,
            "graph_hash": self.hashes.get(id(graph), ""),
            "cache": self.cache,
            "budget": self.budget,
        }

    def close(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.close()


def build_result(
    graph_run: GraphRun, log: EventLog, status: str, makespan: float, budget: Budget | None = None
) -> RunResult:
    values = graph_run.output_values()
    records = graph_run.records
    usage = sum((r.usage for r in records.values()), ev.Usage())
    cost = sum(r.cost for r in records.values())
    stopped = budget is not None and budget.exhausted
    if stopped and any(r.status == CANCELLED for r in records.values()):
        status = BUDGET_EXCEEDED
    elif status == DONE and (
        any(v.is_error for v in tree_leaves(values))
        or graph_run.forward_error is not None
        or graph_run.unobserved_failures()
    ):
        status = FAILED
    return RunResult(
        graph_run.graph,
        unwrap(values),
        values,
        records,
        log.events,
        status,
        usage,
        cost,
        makespan,
        endpoints=graph_run.pool.capacities(),
        max_concurrent=graph_run.pool.global_cap,
        resources=graph_run.manager.config if graph_run.manager is not None else None,
        forward_error=graph_run.forward_error,
    )


async def execute(module: Module, *args: Any, **kwargs: Any) -> RunResult:
    """Trace ``module(*args, **kwargs)`` and run it; node failures are recorded, not raised.

    What is wrong before anything runs is raised, and nothing has been sent
    then: `TraceError` (forward cannot be traced), `ConfigError` (bad run
    options, an alias the resources do not define, a missing API key),
    `CheckpointError` (a checkpoint written by another pipeline). Once nodes
    run, every failure (provider errors, exhausted retries, a spent budget) is
    recorded in the `RunResult`; cancelling the run raises ``CancelledError``.

    result = await execute(pipeline, "text", resources=resources)
    result.output, result.usage.total_tokens, result.cost
    """
    explicit, forward_kwargs = split_options(dict(kwargs))
    options, owner = effective_options(explicit, module)
    dynamic = is_dynamic(module)
    if dynamic:
        check_call(module, args, forward_kwargs)
        graph, inputs = dynamic_graph(module, args, forward_kwargs), {}
    else:
        graph = trace(module, *args, **forward_kwargs)
        inputs = graph_inputs(graph, args, forward_kwargs)
    recorder = run_recorder(options.store, "run", module, 1)
    if recorder is None:
        return await execute_graph(graph, inputs, options, owner, dynamic=dynamic)
    status = "cancelled"
    try:
        result = await execute_graph(graph, inputs, options, owner, dynamic=dynamic)
        error = result_error(result)
        given = (
            args[0] if len(args) == 1 and not forward_kwargs else {"args": args, **forward_kwargs}
        )
        recorder.add(BatchItem(0, given, error is None, result.output, error, result))
        status = "done"
    finally:
        recorder.finish(status)
    return result


def check_call(module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse, before anything runs, arguments that ``module.forward`` cannot take."""
    signature = _SIGNATURES.get(type(module))
    if signature is None:
        signature = _SIGNATURES[type(module)] = inspect.signature(module.forward)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"{type(module).__name__}.forward{signature} cannot be called with "
            f"{len(args)} positional argument(s) and keyword(s) {sorted(kwargs) or '(none)'}: "
            f"{exc}. Pass the arguments its forward() takes."
        ) from None


async def execute_graph(
    graph: InferenceGraph,
    inputs: dict[str, Any],
    options: RunOptions,
    owner: ExecutionSettings | None,
    *,
    reuse: Mapping[str, NodeRecord] | None = None,
    overrides: Mapping[str, NodeOverride] | None = None,
    parent: RunResult | None = None,
    dynamic: bool = False,
    replay: Mapping[str, NodeRecord] | None = None,
    fresh: Mapping[str, NodeOverride] | None = None,
) -> RunResult:
    """Run a traced ``graph`` with effective ``options``; `execute` and what-if re-runs share it.

    ``reuse``, ``overrides``, ``replay``, ``fresh`` and ``parent`` describe a
    what-if re-run (see `GraphRun`); ``dynamic`` runs ``graph.root``'s async
    forward on ``graph.call`` (a define-by-run graph).
    """
    resources = (
        options.resources.config
        if isinstance(options.resources, ResourceManager)
        else options.resources
    )
    check_aliases([graph], resources)
    loop = asyncio.get_running_loop()
    log = EventLog(options.on_event, loop.time())
    stores = RunStores(options, [graph])
    with gc_tuned():
        return await _execute_graph(
            graph,
            inputs,
            options,
            owner,
            stores,
            log,
            reuse=reuse,
            overrides=overrides,
            parent=parent,
            dynamic=dynamic,
            replay=replay,
            fresh=fresh,
        )


async def _execute_graph(
    graph: InferenceGraph,
    inputs: dict[str, Any],
    options: RunOptions,
    owner: ExecutionSettings | None,
    stores: RunStores,
    log: EventLog,
    *,
    reuse: Mapping[str, NodeRecord] | None,
    overrides: Mapping[str, NodeOverride] | None,
    parent: RunResult | None,
    dynamic: bool = False,
    replay: Mapping[str, NodeRecord] | None = None,
    fresh: Mapping[str, NodeOverride] | None = None,
) -> RunResult:
    async with open_manager(options, owner) as manager:
        try:
            open_endpoints(manager, [graph])
        except BaseException:
            stores.close()
            raise
        pool = SlotPool(options.max_concurrent or (manager.max_concurrent if manager else None))
        graph_run = GraphRun(
            graph,
            inputs,
            manager=manager,
            pool=pool,
            emit=log.emit,
            clock=log.now,
            rng=random.Random(),
            reuse=reuse,
            overrides=overrides,
            root_call=(graph.root, *graph.call) if dynamic else None,
            replay=replay,
            fresh=fresh,
            **stores.for_graph(graph),
        )
        log.emit(
            ev.RunStarted(
                0.0,
                None,
                len(graph_run.live),
                f"run-{next(_run_ids)}",
                graphs=(graph,),
                records=(graph_run.records,),
                resources=manager.config if manager is not None else None,
            )
        )
        status = DONE
        try:
            await graph_run.run()
        except asyncio.CancelledError:
            status = CANCELLED
            raise
        finally:
            stores.close()
            makespan = log.now()
            result = build_result(graph_run, log, status, makespan, stores.budget)
            result.parent = parent
            result.overrides = {k: v for k, v in graph_run.overrides.items() if v != NO_OVERRIDE}
            log.emit(
                ev.RunFinished(makespan, None, result.status, result.usage, result.cost, result)
            )
    if options.profile:
        result.profile = result.build_profile()
    return result


def failure_message(result: RunResult) -> str:
    failures = result.failures
    skipped = [r.id for r in result.nodes.values() if r.status == SKIPPED]
    lines = [f"{len(failures)} node{'s' if len(failures) != 1 else ''} failed:"]
    lines += [f"  - {failure}" for failure in failures]
    if skipped:
        lines.append(f"skipped because an input failed: {', '.join(skipped)}")
    lines.append("The completed work is kept in the error's .partial result.")
    return "\n".join(lines)


async def run(module: Module, *args: Any, **kwargs: Any) -> Any:
    """Run ``module`` on the inputs and return its output with the structure ``forward`` returned.

    Raises `ExecutionError` (with every failure and the partial `RunResult`)
    if an output could not be produced.

        await run(SummarizeThenAnalyze(), "input text", resources=resources)
    """
    result = await execute(module, *args, **kwargs)
    error = result_error(result)
    if error is not None:
        raise error
    return caller_output(module, result)


def result_error(result: RunResult) -> ExecutionError | None:
    """The error a run that did not produce its outputs stands for (None if it did)."""
    if result.status == BUDGET_EXCEEDED:
        spent = next(r.error for r in result.nodes.values() if r.status == CANCELLED)
        return BudgetExceeded(str(spent), failures=tuple(result.failures), partial=result)
    if result.status != DONE:
        return ExecutionError(
            failure_message(result), failures=tuple(result.failures), partial=result
        )
    return None


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also from inside a running event loop (Jupyter)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Inside a running loop (Jupyter): allow re-entry on that loop, applied only here.
    nest_asyncio.apply(loop)
    return loop.run_until_complete(coro)


def run_sync(module: Module, *args: Any, **kwargs: Any) -> Any:
    """`run` for scripts and notebooks: blocks until done, also inside a running event loop."""
    return run_blocking(run(module, *args, **kwargs))


def execute_sync(module: Module, *args: Any, **kwargs: Any) -> RunResult:
    """`execute`, blocking (also inside a running event loop)."""
    return run_blocking(execute(module, *args, **kwargs))
