"""The tracer: runs ``forward`` once on placeholders and records an `InferenceGraph`.

Build time versus run time: tracing executes the Python of ``forward`` and of
any helper functions it calls, on static values only. Every leaf module call
(`LLMInference`, or a module marked ``_is_leaf``) and every op call becomes a
node; composite modules and plain helper functions are stepped through, and
their names are kept on the nodes (``module_path``, ``scope``) for display.
A helper is any user function between ``forward`` and the call that made a
node; comprehensions and lambdas are not helpers (their names start with "<").
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import re
import sys
from collections.abc import Generator
from collections.abc import Set as AbstractSet
from dataclasses import replace
from types import CodeType, FrameType
from typing import Any

from plait._context import reset_active_tracer, set_active_tracer
from plait._tree import tree_leaves, tree_map, tree_map_with_path
from plait.errors import ConfigError, TraceError
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.markers import (
    altered_error,
    foreign_error,
    fstring_value,
    has_marker,
    marker,
    marker_tail,
)
from plait.module import Module
from plait.parameter import Parameter
from plait.tracing.frames import describe_frame, is_user_code, user_frame
from plait.tracing.proxy import TracedValue
from plait.values import FormatField, Value, ValueKind, ValueRef, kind_of

_TRACE_IDS = itertools.count(1)
_SIGNATURES: dict[type, inspect.Signature] = {}
_FORWARD_CODES: dict[type, frozenset[CodeType]] = {}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _signature(module: Module) -> inspect.Signature:
    sig = _SIGNATURES.get(type(module))
    if sig is None:
        sig = _SIGNATURES[type(module)] = inspect.signature(module.forward)
    return sig


def _forward_codes(cls: type) -> frozenset[CodeType]:
    """Code of every ``forward`` in ``cls``'s MRO (``super().forward()`` is not a helper)."""
    codes = _FORWARD_CODES.get(cls)
    if codes is None:
        forwards = (klass.__dict__.get("forward") for klass in cls.__mro__)
        codes = _FORWARD_CODES[cls] = frozenset(
            f.__code__ for f in forwards if f is not None and hasattr(f, "__code__")
        )
    return codes


class Tracer:
    """Builds one `InferenceGraph` from one call of ``root``; use `trace` for the common case."""

    def __init__(self, root: Module) -> None:
        if not isinstance(root, Module):
            raise ConfigError(
                f"trace() needs a Module; got {type(root).__name__} ({root!r:.60}). Wrap the "
                "code in a Module subclass's forward(), or decorate a function with @plait.op."
            )
        self.id = next(_TRACE_IDS)
        self.marker_tail = marker_tail(self.id)
        self.root = root
        self.nodes: dict[str, GraphNode] = {}
        self.parameters: dict[str, Parameter] = {}
        self._ids: dict[str, int] = {}
        self._paths: dict[int, str] = {}
        self._forward_codes: AbstractSet[CodeType] = set()
        for path, module in root.named_modules():
            self._paths[id(module)] = path
            self._forward_codes |= _forward_codes(type(module))
        self._used_paths = set(self._paths.values())
        self._unregistered: list[Module] = []  # kept alive so their ids stay theirs
        self._param_refs = {id(p): f"param:{name}" for name, p in root.named_parameters()}
        self._stack: list[tuple[str, Module]] = [("", root)]
        self._scopes: dict[FrameType, str] = {}
        self._scope_counts: dict[str, int] = {}
        self._entry: FrameType | None = None
        self._input_paths: dict[str, tuple[str, tuple[Any, ...]]] = {}

    def trace(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InferenceGraph:
        token = set_active_tracer(self)
        self._entry = sys._getframe()
        try:
            bound = self._bind(self.root, args, kwargs)
            for name, value in bound.arguments.items():
                bound.arguments[name] = tree_map_with_path(
                    functools.partial(self._input, name), value
                )
            result = self.call_module(self.root, bound.args, bound.kwargs)
            output, _, _ = self._convert(result)
        finally:
            reset_active_tracer(token)
            self._scopes.clear()
            self._entry = None
        return InferenceGraph(
            self._mark_live(output),
            self._input_paths,
            output,
            self.parameters,
            root=self.root,
            input_paths=self._input_paths,
        )

    def _bind(
        self, module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> inspect.BoundArguments:
        sig = _signature(module)
        try:
            return sig.bind(*args, **kwargs)
        except TypeError as exc:
            path = self._path_of(module)
            shown = sig.replace(
                parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
                return_annotation=sig.empty,
            )
            shown_args = [
                "<placeholder>" if isinstance(a, TracedValue) else f"{a!r:.40}" for a in args
            ]
            called = ", ".join([*shown_args, *(f"{k}=..." for k in kwargs)])
            if module is self.root and len(self._stack) == 1:
                who, where = "the root module", f" by trace() at {describe_frame(user_frame())}"
            else:
                who, where = repr(path), self.where()
            raise TraceError(
                f"{who} ({type(module).__name__}.forward{shown}) cannot be called as "
                f"({called}): {exc}; called{where}. Pass the arguments its forward() takes."
            ) from None

    def _input(self, name: str, path: tuple[Any, ...], value: Any) -> Any:
        if value is None or isinstance(value, Parameter | TracedValue):
            return value
        node_id = ".".join([name, *map(str, path)])
        self.nodes[node_id] = GraphNode(node_id, NodeKind.INPUT, node_id)
        self._input_paths[node_id] = (name, path)
        kind = value.kind if isinstance(value, Value) else kind_of(value)
        return TracedValue(self, node_id, kind)

    def call_module(self, module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        path = self._path_of(module)
        self._bind(module, args, kwargs)
        if module._is_leaf:
            is_llm = hasattr(module, "build_request")
            out_kind = getattr(module, "output_kind", None) or (
                ValueKind.TEXT if is_llm else ValueKind.OTHER
            )
            base_id = path or _snake(type(module).__name__)  # a leaf root has path ""
            return self._record(
                NodeKind.LLM if is_llm else NodeKind.MODULE,
                base_id,
                base_id.rsplit(".", 1)[-1],
                module,
                path,
                args,
                kwargs,
                out_kind=out_kind,
                extra_params=tuple(self._param_ref(p) for p in module.parameters()),
            )
        if inspect.iscoroutinefunction(type(module).forward):
            # An async forward is control flow decided at run time: one node of this graph,
            # which records its own calls into the run as it executes (define-by-run).
            return self._record(
                NodeKind.MODULE,
                path or _snake(type(module).__name__),
                (path or _snake(type(module).__name__)).rsplit(".", 1)[-1],
                module,
                path,
                args,
                kwargs,
                out_kind=ValueKind.OTHER,
                extra_params=tuple(self._param_ref(p) for p in module.parameters()),
            )
        codes = _forward_codes(type(module))
        if not codes <= self._forward_codes:  # a new set: a recorder's may be its batch's
            self._forward_codes = self._forward_codes | codes
        self._stack.append((path, module))
        try:
            result = module.forward(*args, **kwargs)
        finally:
            self._stack.pop()
        if inspect.iscoroutine(result):
            result.close()
            raise TraceError(
                f"{type(module).__name__}.forward returned a coroutine, but it is not declared "
                "`async def` on the class (it was wrapped or assigned). Declare forward as "
                "`async def forward(...)` on the Module subclass so plait runs it define-by-run."
            )
        return result

    def awaiting(self, value: TracedValue) -> Generator[Any, None, Any]:
        """What ``await placeholder`` runs (its ``__await__``)."""
        return self.wait(value).__await__()

    async def wait(self, value: TracedValue) -> Any:
        """Awaiting a placeholder while tracing: refused (nothing has run yet)."""
        raise TraceError(
            f"`await` on the placeholder for {value.ref!r}{self.where()}: the graph is being "
            "traced, so nothing has run yet. To branch or loop on a model's reply, make the "
            "module's forward `async def`; plait then runs it define-by-run."
        )

    def call_op(self, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        path = self.current_path()
        name = op.node_name(args, kwargs)
        return self._record(
            NodeKind.OP,
            f"{path}.{name}" if path else name,
            name,
            op,
            path,
            args,
            kwargs,
            out_kind=op.kind or ValueKind.OTHER,
            side_effects=op.side_effects,
        )

    def param_marker(self, param: Parameter, spec: str, conversion: str) -> str:
        ref = self._param_ref(param)
        if spec or conversion:
            return marker(ref, self.id, spec, conversion)
        # A placeholder rather than text, so a later conversion or spec still applies.
        return TracedValue(self, ref, kind_of(param.value))

    def current_path(self) -> str:
        return self._stack[-1][0]

    def where(self) -> str:
        """Where tracing is now: `` in module 'a.b' (B.forward) at file.py:12 (`the line`)``."""
        path, module = self._stack[-1]
        owner = f"module {path!r}" if path else "the root module"
        location = describe_frame(user_frame(sys._getframe(1)))
        return f" in {owner} ({type(module).__name__}.forward)" + (
            f" at {location}" if location else ""
        )

    def _record(
        self,
        kind: NodeKind,
        base_id: str,
        name: str,
        module: Any,
        module_path: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        out_kind: ValueKind,
        side_effects: bool = False,
        extra_params: tuple[str, ...] = (),
    ) -> TracedValue:
        (args, kwargs), deps, params = self._convert((tuple(args), dict(kwargs)))
        node_id = self._new_id(base_id)
        scope, source = self._scope_and_source()
        self.nodes[node_id] = GraphNode(
            id=node_id,
            kind=kind,
            name=name,
            module=module,
            module_path=module_path,
            args=args,
            kwargs=kwargs,
            dependencies=deps,
            parameters=tuple(dict.fromkeys((*params, *extra_params))),
            scope=scope,
            side_effects=side_effects,
            source=source,
        )
        return TracedValue.of_node(self, node_id, out_kind)

    def _new_id(self, base: str) -> str:
        n = self._ids.get(base, 0)
        candidate = f"{base}_{n}" if n else base
        while candidate in self.nodes:
            n += 1
            candidate = f"{base}_{n}"
        self._ids[base] = n + 1
        return candidate

    def _convert(self, tree: Any) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
        """Replace placeholders by refs, marker strings by FSTRING values; collect reads."""
        deps: dict[str, None] = {}
        params: dict[str, None] = {}

        def leaf(x: Any) -> Any:
            if isinstance(x, str):
                if isinstance(x, TracedValue):
                    if x._tracer is not self:
                        raise foreign_error(x.ref)
                    (params if x.ref.startswith("param:") else deps)[x.ref] = None
                    if not x.conversion:
                        return ValueRef(x.ref)
                    return Value(ValueKind.FSTRING, (FormatField(x.ref, "", x.conversion),))
                if has_marker(x):
                    value, reads, param_reads = self._composed(x)
                    deps.update(dict.fromkeys(reads))
                    params.update(dict.fromkeys(param_reads))
                    return value
                return x
            if isinstance(x, Parameter):
                ref = self._param_ref(x)
                params[ref] = None
                return ValueRef(ref)
            return x

        return tree_map(leaf, tree), tuple(deps), tuple(params)

    def _composed(self, text: str) -> tuple[Value, tuple[str, ...], tuple[str, ...]]:
        """The FSTRING value of ``text`` (composed with this trace's markers), and the node and
        parameter refs it reads; a marker naming neither was altered at trace time."""
        value = fstring_value(text, self.id)
        deps: dict[str, None] = {}
        params: dict[str, None] = {}
        for part in value.payload:
            if type(part) is FormatField:
                ref = part.ref
                if ref.startswith("param:") and ref in self.parameters:
                    params[ref] = None
                elif ref in self.nodes:
                    deps[ref] = None
                else:
                    raise altered_error(text)
        return value, tuple(deps), tuple(params)

    def _param_ref(self, param: Parameter) -> str:
        ref = self._param_refs.get(id(param))
        if ref is None:
            base = f"param:{param.name or 'parameter'}"
            ref, n, taken = base, 1, set(self._param_refs.values())
            while ref in taken:
                n += 1
                ref = f"{base}_{n}"
            self._param_refs[id(param)] = ref
        self.parameters[ref] = param
        return ref

    def _path_of(self, module: Module) -> str:
        path = self._paths.get(id(module))
        if path is None:
            # A module not registered under the root (e.g. passed in from outside): name it once.
            parent = self.current_path()
            base = _snake(type(module).__name__)
            path = candidate = f"{parent}.{base}" if parent else base
            n = 0
            while path in self._used_paths:
                n += 1
                path = f"{candidate}_{n}"
            self._paths[id(module)] = path
            self._used_paths.add(path)
            self._unregistered.append(module)
        return path

    def _scope_and_source(self) -> tuple[tuple[str, ...], str | None]:
        """Enclosing helper calls (outermost first) and the user line that made this node."""
        scope: list[str] = []
        source = None
        frame: FrameType | None = sys._getframe(2)
        while frame is not None and frame is not self._entry:
            code = frame.f_code
            if is_user_code(code):
                if source is None:
                    source = f"{os.path.basename(code.co_filename)}:{frame.f_lineno}"
                if code not in self._forward_codes and not code.co_name.startswith("<"):
                    name = self._scopes.get(frame)
                    if name is None:
                        n = self._scope_counts.get(code.co_name, 0) + 1
                        self._scope_counts[code.co_name] = n
                        name = self._scopes[frame] = f"{code.co_name}#{n}"
                    scope.append(name)
            frame = frame.f_back
        return tuple(reversed(scope)), source

    def _mark_live(self, output: Any) -> dict[str, GraphNode]:
        roots = [r for r in _refs(output) if r in self.nodes]
        roots += [nid for nid, node in self.nodes.items() if node.side_effects]
        live: set[str] = set()
        todo = list(roots)
        while todo:
            nid = todo.pop()
            if nid not in live:
                live.add(nid)
                todo.extend(self.nodes[nid].dependencies)
        return {
            nid: node if nid in live else replace(node, live=False)
            for nid, node in self.nodes.items()
        }


def _refs(tree: Any) -> list[str]:
    out = []
    for leaf in tree_leaves(tree):
        if isinstance(leaf, ValueRef):
            out.append(leaf.ref)
        elif isinstance(leaf, Value) and leaf.kind is ValueKind.FSTRING:
            out.extend(p.ref for p in leaf.payload if isinstance(p, FormatField))
    return out


def trace(module: Module, /, *args: Any, **kwargs: Any) -> InferenceGraph:
    """Trace ``module(*args, **kwargs)`` into an `InferenceGraph` without running anything.

        graph = trace(SummarizeThenAnalyze(), "some text")
        graph.topological_order()
    ['text', 'summarize', 'analyze']
    """
    return Tracer(module).trace(args, kwargs)
