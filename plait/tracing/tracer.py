"""The tracer: runs ``forward`` once on placeholders and records an `InferenceGraph`.

Build time versus run time: tracing executes the Python of ``forward`` and of
any helper functions it calls, on static values only. Every leaf module call
(`LLMInference`, or a module marked ``_is_leaf``) and every op call becomes a
node; composite modules and plain helper functions are stepped through, and
their names are kept on the nodes (``module_path``, ``scope``) for display.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from dataclasses import replace
from types import CodeType, FrameType
from typing import Any

from plait._context import reset_active_tracer, set_active_tracer
from plait._tree import tree_leaves, tree_map, tree_map_with_path
from plait.errors import TraceError
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.parameter import Parameter
from plait.tracing.proxy import TracedValue
from plait.tracing.strings import fstring_value, has_marker, marker
from plait.values import FormatField, Value, ValueKind, ValueRef, kind_of

_PLAIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SIGNATURES: dict[type, inspect.Signature] = {}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _signature(module: Any) -> inspect.Signature:
    sig = _SIGNATURES.get(type(module))
    if sig is None:
        sig = _SIGNATURES[type(module)] = inspect.signature(module.forward)
    return sig


class Tracer:
    """Builds one `InferenceGraph` from one call of ``root``; use `trace` for the common case."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.nodes: dict[str, GraphNode] = {}
        self.parameters: dict[str, Parameter] = {}
        self._ids: dict[str, int] = {}
        self._paths = {id(m): path for path, m in root.named_modules()}
        self._param_refs = {id(p): f"param:{name}" for name, p in root.named_parameters()}
        self._path_stack = [""]
        self._forward_codes: set[CodeType] = set()
        self._scopes: dict[FrameType, str] = {}
        self._scope_counts: dict[str, int] = {}
        self._entry: FrameType | None = None
        self._input_paths: dict[str, tuple[str, tuple[Any, ...]]] = {}

    # -- entry ------------------------------------------------------------------------

    def trace(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InferenceGraph:
        token = set_active_tracer(self)
        self._entry = sys._getframe()
        try:
            bound = self._bind(self.root, args, kwargs)
            placeholders = {
                name: tree_map_with_path(lambda path, v, name=name: self._input(name, path, v), value)
                for name, value in bound.arguments.items()
            }
            bound.arguments.update(placeholders)
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

    def _bind(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        sig = _signature(module)
        try:
            return sig.bind(*args, **kwargs)
        except TypeError as exc:
            path = self._path_of(module) or type(module).__name__
            raise TraceError(
                f"{path}: {type(module).__name__}.forward{sig} cannot be called with "
                f"{len(args)} positional and {sorted(kwargs)} keyword arguments: {exc}"
            ) from None

    def _input(self, name: str, path: tuple[Any, ...], value: Any) -> Any:
        if value is None or isinstance(value, Parameter | TracedValue):
            return value
        node_id = ".".join([name, *map(str, path)])
        self.nodes[node_id] = GraphNode(node_id, NodeKind.INPUT, node_id)
        self._input_paths[node_id] = (name, path)
        kind = value.kind if isinstance(value, Value) else kind_of(value)
        return TracedValue(self, node_id, kind)

    # -- hooks called by modules, ops and parameters ---------------------------------------

    def call_module(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if module._is_leaf:
            self._bind(module, args, kwargs)
            schema = getattr(module, "response_schema", None)
            is_llm = hasattr(module, "build_request")
            return self._record(
                NodeKind.LLM if is_llm else NodeKind.MODULE,
                self._path_of(module) or _snake(type(module).__name__),
                module,
                self._path_of(module),
                args,
                kwargs,
                out_kind=(
                    ValueKind.STRUCTURED if schema is not None
                    else ValueKind.TEXT if is_llm
                    else ValueKind.OTHER
                ),
                extra_params=tuple(self._param_ref(p) for p in module.parameters()),
            )
        self._forward_codes.add(type(module).forward.__code__)
        self._path_stack.append(self._path_of(module))
        try:
            return module.forward(*args, **kwargs)
        finally:
            self._path_stack.pop()

    def call_op(self, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        path = self.current_path()
        return self._record(
            NodeKind.OP,
            f"{path}.{op.name}" if path else op.name,
            op,
            path,
            args,
            kwargs,
            out_kind=op.kind or ValueKind.OTHER,
            side_effects=op.side_effects,
        )

    def param_marker(self, param: Parameter, spec: str, conversion: str) -> str:
        return marker(self._param_ref(param), spec, conversion)

    def current_path(self) -> str:
        return self._path_stack[-1]

    # -- recording ---------------------------------------------------------------------

    def _record(
        self,
        kind: NodeKind,
        base_id: str,
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
            name=getattr(module, "name", None) or base_id.rsplit(".", 1)[-1],
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
        return TracedValue(self, node_id, out_kind)

    def _new_id(self, base: str) -> str:
        count = self._ids.get(base)
        self._ids[base] = 1 if count is None else count + 1
        if count is None and base not in self.nodes:
            return base
        candidate = f"{base}_{self._ids[base] - 1}"
        while candidate in self.nodes:
            self._ids[base] += 1
            candidate = f"{base}_{self._ids[base] - 1}"
        return candidate

    def _convert(self, tree: Any) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
        """Replace placeholders by refs and marker strings by FSTRING values; collect what is read."""
        deps: dict[str, None] = {}
        params: dict[str, None] = {}

        def note(ref: str) -> None:
            if ref.startswith("param:"):
                if ref not in self.parameters:
                    raise TraceError(f"a string refers to parameter {ref!r}, which this trace never saw")
                params[ref] = None
            elif ref in self.nodes:
                deps[ref] = None
            else:
                raise _foreign(ref)

        def leaf(x: Any) -> Any:
            if isinstance(x, TracedValue):
                if x._tracer is not self:
                    raise _foreign(x.ref)
                note(x.ref)
                return ValueRef(x.ref)
            if isinstance(x, str) and has_marker(x):
                value = fstring_value(x)
                for part in value.payload:
                    if isinstance(part, FormatField):
                        note(part.ref)
                return value
            if isinstance(x, Parameter):
                ref = self._param_ref(x)
                params[ref] = None
                return ValueRef(ref)
            return x

        return tree_map(leaf, tree), tuple(deps), tuple(params)

    def _param_ref(self, param: Parameter) -> str:
        ref = self._param_refs.get(id(param))
        if ref is None:
            base = f"param:{param.name or 'parameter'}"
            ref, n = base, 1
            while ref in self.parameters and self.parameters[ref] is not param:
                n += 1
                ref = f"{base}_{n}"
            self._param_refs[id(param)] = ref
        self.parameters[ref] = param
        return ref

    def _path_of(self, module: Any) -> str:
        path = self._paths.get(id(module))
        if path is None:
            # A module not registered under the root (e.g. passed in from outside): name it once.
            parent = self.current_path()
            base = _snake(type(module).__name__)
            path = self._paths[id(module)] = f"{parent}.{base}" if parent else base
        return path

    def _scope_and_source(self) -> tuple[tuple[str, ...], str | None]:
        """Enclosing helper calls (outermost first) and the user line that made this node."""
        scope: list[str] = []
        source = None
        frame = sys._getframe(2)
        while frame is not None and frame is not self._entry:
            code = frame.f_code
            if not code.co_filename.startswith(_PLAIT_DIR):
                if source is None:
                    source = f"{os.path.basename(code.co_filename)}:{frame.f_lineno}"
                if code not in self._forward_codes and not code.co_name.startswith("<"):
                    name = self._scopes.get(frame)
                    if name is None:
                        n = self._scope_counts[code.co_name] = self._scope_counts.get(code.co_name, 0) + 1
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
        return {nid: node if nid in live else replace(node, live=False) for nid, node in self.nodes.items()}


def _foreign(ref: str) -> TraceError:
    return TraceError(
        f"a placeholder from another trace ({ref!r}) was used here; placeholders are only "
        "valid inside the forward() call that produced them. Do not keep traced values "
        "between calls (e.g. on self)."
    )


def _refs(tree: Any) -> list[str]:
    out = []
    for leaf in tree_leaves(tree):
        if isinstance(leaf, ValueRef):
            out.append(leaf.ref)
        elif isinstance(leaf, Value) and leaf.kind is ValueKind.FSTRING:
            out.extend(p.ref for p in leaf.payload if isinstance(p, FormatField))
    return out


def trace(module: Any, *args: Any, **kwargs: Any) -> InferenceGraph:
    """Trace ``module(*args, **kwargs)`` into an `InferenceGraph` without running anything.

    >>> graph = trace(SummarizeThenAnalyze(), "some text")   # doctest: +SKIP
    >>> graph.topological_order()                             # doctest: +SKIP
    ['text', 'summarize', 'analyze']
    """
    return Tracer(module).trace(args, kwargs)
