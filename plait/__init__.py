"""plait: a PyTorch-style framework for compound AI systems.

A tour: subclass `Module` and write ``forward`` with `LLMInference` calls,
functional ops (``import plait.functional as F``) and plain helper functions;
`Parameter`s hold the prompts an optimizer may improve. `trace` turns one
call of ``forward`` into an `InferenceGraph` of nodes; the runtime runs that
graph concurrently against the endpoints named in a resource config. Data
moves as `Value`s, which carry provenance (``ref``) and travel failures as
ERROR values instead of exceptions.

When control flow depends on a model's reply (routers, loops, agents), write
``async def forward``: it runs define-by-run, each call scheduled at once and
recorded as a node, ``await`` giving the reply (`plait.execution.dynamic`);
`plait.stock` has a tool-calling agent, a refine loop and a map written so.
"""

from importlib.metadata import PackageNotFoundError, version

from plait import (
    functional,  # also registers the operators traced values use
    ray,  # noqa: F401  (plait.ray: RayBackend, for backend=... of run_batch / stream_batch)
    stock,
)
from plait.containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from plait.errors import (
    CallError,
    ConfigError,
    ExecutionError,
    PlaitError,
    StoreError,
    TraceError,
)
from plait.evaluation import Comparison, EvalResult, RunStore, evaluate, evaluate_sync
from plait.execution import (
    Args,
    BatchItem,
    ExecutionSettings,
    RunResult,
    execute,
    execute_sync,
    run,
    run_batch,
    run_sync,
    stream_batch,
)
from plait.execution.dynamic import reply
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.inference import LLMInference
from plait.module import Module
from plait.optimization import Feedback, Optimizer
from plait.parameter import Parameter
from plait.resources import EndpointConfig, ResourceConfig
from plait.tracing import Op, Tracer, op, trace
from plait.values import Value, ValueKind, ValueRef, collect_refs, first_error, unwrap, valueify

try:
    __version__ = version("plait")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Args",
    "BatchItem",
    "CallError",
    "Comparison",
    "ConfigError",
    "EndpointConfig",
    "EvalResult",
    "ExecutionError",
    "ExecutionSettings",
    "Feedback",
    "GraphNode",
    "InferenceGraph",
    "LLMInference",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NodeKind",
    "Op",
    "Optimizer",
    "Parameter",
    "ParameterDict",
    "ParameterList",
    "PlaitError",
    "ResourceConfig",
    "RunResult",
    "RunStore",
    "Sequential",
    "StoreError",
    "TraceError",
    "Tracer",
    "Value",
    "ValueKind",
    "ValueRef",
    "collect_refs",
    "evaluate",
    "evaluate_sync",
    "execute",
    "execute_sync",
    "first_error",
    "functional",
    "op",
    "reply",
    "run",
    "run_batch",
    "run_sync",
    "stock",
    "stream_batch",
    "trace",
    "unwrap",
    "valueify",
]
