"""What a `Recorder` works with: the run it records into, the callers it records for, and what
the items of a batch share (`Layout`)."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Protocol

from plait.errors import CallError
from plait.graph import GraphNode, InferenceGraph
from plait.module import Module
from plait.tracing.tracer import _forward_codes as forward_codes
from plait.values import Value, ValueKind, ValueRef


class RecordingRun(Protocol):
    """What a `Recorder` needs of the run it records into (a `GraphRun`)."""

    graph: InferenceGraph
    closed: bool

    def add_node(self, node: GraphNode, priority: float) -> None: ...

    values: dict[str, Value]

    def result_of(self, ref: str) -> Value | Awaitable[None]: ...

    def waiting(self, ref: str) -> Iterable[Any]: ...

    def call_error(self, ref: str, value: Value) -> CallError: ...


@dataclass(eq=False)
class CallFrame:
    """One executing caller: an async forward, or the user code of an op or module node.

    ``stack`` holds the module paths being stepped through (sync composites
    push onto it); ``awaited`` the refs awaited so far (control edges of every
    later call); ``counts`` the occurrences per call path (for call keys);
    ``priority`` the slot priority of its calls; ``scope`` the helper scope of
    the node that runs this code.
    """

    key: str
    stack: list[tuple[str, Module]]
    awaited: dict[str, None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    priority: float = 0.0
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """What a recorder needs to know of its root module: paths, forward code, parameter refs."""

    paths: dict[int, str]
    forward_codes: frozenset[CodeType]
    param_refs: dict[int, str]
    # The root's module paths. Never changed: a recorder copies it before adding a path.
    root_paths: set[str] = field(default_factory=set)
    # Per LLMInference called: its path, node base id and name, parameter refs, output kind.
    llm_calls: dict[int, tuple[str, str, str, tuple[str, ...], ValueKind]] = field(
        default_factory=dict
    )
    # What each code object met in the scope walk is (by id; the code is kept with its role),
    # worked out with ``forward_codes``: shared by every recorder that has met no other forward.
    code_roles: dict[int, tuple[str, CodeType]] = field(default_factory=dict)
    # One `ValueRef` per ref for the whole batch (immutable, so items' nodes can share it).
    value_refs: dict[str, ValueRef] = field(default_factory=dict)
    # The node each id was first recorded as, with its call frame's key and occurrence (see
    # `Recorder._add`): an item making the same call shares the node.
    nodes: dict[str, tuple[GraphNode, str, int]] = field(default_factory=dict)
    # Each call key made, by its parts: the items' nodes share the string.
    call_keys: dict[tuple[str, str, int], str] = field(default_factory=dict)
    # Composed prompts (text with markers) parsed into FSTRING values, by the text with the
    # recording item's own trace id taken out (see `Recorder._composed`): items compose alike.
    fstrings: dict[str, tuple[Value, tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=dict
    )

    @classmethod
    def of(cls, root: Module) -> Layout:
        codes: set[CodeType] = set()
        paths = {}
        for path, module in root.named_modules():
            paths[id(module)] = path
            codes |= forward_codes(type(module))
        params = {id(p): f"param:{name}" for name, p in root.named_parameters()}
        return cls(paths, frozenset(codes), params, set(paths.values()))
