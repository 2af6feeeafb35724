"""Define-by-run: calls made while a run executes, recorded as nodes of a growing graph.

An ``async def forward`` is not traced. The run calls it, and every module or
op call inside it goes to the run's `Recorder` (the active tracer of that
task): the call becomes a node at once, starts as soon as its inputs are
ready, and returns a placeholder. ``await placeholder`` waits for that node and
gives the plain payload, so ``if``, ``for``, ``while`` and ``try`` are ordinary
Python; a placeholder passed on to another call, an f-string, ``+`` or
``join`` keeps its data dependency without waiting (the same markers tracing
uses). Like a launch in eager PyTorch or a Ray object ref: work is enqueued at
once, ``await`` is the point that waits.

Each call records its data edges (from the placeholders in its arguments) and
its control edges: the placeholders awaited earlier in the same ``forward``
(less those already implied through another: a transitive reduction), since
what those replies said decided that this call is made. Each call also
gets a ``call_key`` (the caller's key, the call path and its occurrence in that
caller) which identifies it in a later run that replays the same code: a
checkpoint or a what-if re-run reuses a completed call when its key and its
inputs match.

Calls made by a sync ``forward`` (a traced module called from an async one),
an ``@plait.op`` function or a leaf module running in a run are recorded the
same way; a sync caller cannot await, so it passes placeholders on or returns
them, and its own node finishes when they have.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Generator, Mapping
from contextvars import ContextVar
from types import CodeType, FrameType, MappingProxyType
from typing import Any

from plait._context import reset_active_tracer, set_active_tracer
from plait.errors import ExecutionError, TraceError
from plait.execution.callsites import CallSites
from plait.execution.recording import CallFrame, Layout, RecordingRun
from plait.graph import GraphNode, NodeKind
from plait.inference import LLMInference
from plait.markers import CLOSE, TAG, altered_error, has_marker, marker_tail
from plait.module import Module
from plait.parameter import Parameter
from plait.tracing.proxy import TracedValue
from plait.tracing.tracer import _TRACE_IDS, Tracer
from plait.values import Value, ValueKind, ValueRef, unwrap


def is_dynamic(module: Any) -> bool:
    """Whether ``module``'s forward is ``async def`` (so it runs define-by-run, untraced)."""
    return (
        isinstance(module, Module)
        and not module._is_leaf
        and inspect.iscoroutinefunction(type(module).forward)
    )


_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})  # shared by the one-argument calls
_FRAME: ContextVar[CallFrame | None] = ContextVar("plait_call_frame", default=None)


class Recorder(CallSites, Tracer):
    """The active tracer while a run executes user code: records calls into that run."""

    dynamic = True

    def __init__(self, run: RecordingRun, stop_codes: frozenset[CodeType]) -> None:
        graph = run.graph
        root = graph.root if isinstance(graph.root, Module) else Module()
        layout = graph.layout if graph.layout is not None else Layout.of(root)
        graph.layout = layout  # batch items share one: the module walk is done once
        # The fields a Tracer has, from the shared layout (copied where recording adds to them).
        self.id = next(_TRACE_IDS)
        self.marker_tail = marker_tail(self.id)
        self.root = root
        self._ids: dict[str, int] = {}
        # The layout's own maps until this item adds to them (`_path_of`, `_param_ref`): most
        # items never do, and a copy per item in flight is memory every call then walks past.
        self._paths = layout.paths
        self._forward_codes = layout.forward_codes  # grows by union, into a new set
        self._used_paths = layout.root_paths
        self._unregistered: list[Module] = []
        self._param_refs = layout.param_refs
        self._own_maps = False
        self._value_refs = layout.value_refs
        self._known_nodes = layout.nodes
        self._call_keys = layout.call_keys
        self._fstrings = layout.fstrings
        self._start_call_sites(layout, stop_codes)
        self._entry = None
        self._input_paths: dict[str, tuple[str, tuple[Any, ...]]] = {}
        self.run = run
        self._llm_calls = layout.llm_calls
        self._layout_paths = layout.root_paths
        # Shared with the graph: ids stay unique across traced and recorded nodes.
        self.nodes = graph.nodes
        self.parameters = graph.parameters
        refs = self._param_refs
        missing = [(id(p), ref) for ref, p in graph.parameters.items() if id(p) not in refs]
        if missing:
            self._own()
            self._param_refs.update(missing)

    def _own(self) -> None:
        """Copy the layout's maps before this item adds to them (they are shared by the batch)."""
        if not self._own_maps:
            self._paths = dict(self._paths)
            self._used_paths = set(self._used_paths)
            self._param_refs = dict(self._param_refs)
            self._own_maps = True

    def _path_of(self, module: Module) -> str:
        if id(module) not in self._paths:
            self._own()
        return super()._path_of(module)

    def _param_ref(self, param: Parameter) -> str:
        if id(param) not in self._param_refs:
            self._own()
        return super()._param_ref(param)

    @property
    def _stack(self) -> list[tuple[str, Module]]:
        frame = _FRAME.get()
        if frame is None:
            raise TraceError("a plait call was made outside the code a run is executing")
        return frame.stack

    @_stack.setter
    def _stack(self, value: list[tuple[str, Module]]) -> None:
        """Each `CallFrame` holds its own stack; the tracer's initial one is not used."""

    def enter(self, frame: CallFrame) -> tuple[Any, Any]:
        """Make this recorder and ``frame`` current; returns the tokens for `leave`."""
        return set_active_tracer(self), _FRAME.set(frame)

    def leave(self, tokens: tuple[Any, Any]) -> None:
        _FRAME.reset(tokens[1])
        reset_active_tracer(tokens[0])

    def frame_for(self, node: GraphNode, priority: float) -> CallFrame:
        """The frame in which the user code of ``node`` (an op or module) runs."""
        path = node.module_path
        module = node.module if isinstance(node.module, Module) else self._module_at(path)
        return CallFrame(
            key=node.call_key or f"/{node.id}",
            stack=[(path, module)],
            awaited=dict.fromkeys((*node.control, *node.dependencies)),
            priority=priority,
            scope=node.scope,
        )

    def root_frame(self) -> CallFrame:
        return CallFrame(key="", stack=[("", self.root)])

    def _module_at(self, path: str) -> Module:
        for name, module in self.root.named_modules():
            if name == path:
                return module
        return self.root

    def _record(
        self,
        kind: NodeKind,
        base_id: str,
        name: str,
        module: Any,
        module_path: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        out_kind: ValueKind,
        side_effects: bool = False,
        extra_params: tuple[str, ...] = (),
    ) -> TracedValue:
        converted = self._convert_one(args) if len(args) == 1 and not kwargs else None
        if converted is not None:
            args, deps, params = converted
            kwargs = _NO_KWARGS
        else:
            (args, kwargs), deps, params = self._convert((tuple(args), dict(kwargs)))
        if params:
            extra_params = tuple(dict.fromkeys((*params, *extra_params)))
        return self._add(
            kind,
            base_id,
            name,
            module,
            module_path,
            args,
            kwargs,
            deps,
            extra_params,
            out_kind,
            sys._getframe(1),
        )

    def _add(
        self,
        kind: NodeKind,
        base_id: str,
        name: str,
        module: Any,
        module_path: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        deps: tuple[str, ...],
        params: tuple[str, ...],
        out_kind: ValueKind,
        caller: FrameType | None,
    ) -> TracedValue:
        """Make a call (its arguments converted) a node of the run; returns its placeholder.

        ``caller`` is the frame that made the call: the scope walk starts there.
        """
        frame = _FRAME.get()
        assert frame is not None
        counts = frame.counts
        occurrence = counts[base_id] = counts.get(base_id, -1) + 1
        n = self._ids.get(base_id, 0)
        node_id = f"{base_id}_{n}" if n else base_id
        if node_id in self.nodes:
            node_id = self._new_id(base_id)
        else:
            self._ids[base_id] = n + 1
        scope, source = self._scope_and_source_from(caller)
        if frame.scope:
            scope = (*frame.scope, *scope)
        control = _control(frame.awaited, deps, self.nodes) if frame.awaited else ()
        # The batch's items mostly make the same calls: an item whose call matches the node an
        # earlier item recorded under this id shares it (nodes are read-only), so a batch keeps
        # one node per distinct call instead of one per call made.
        arg = args[0] if len(args) == 1 else None
        shareable = type(arg) in _CHEAP_ARGS or (
            type(arg) is Value and arg.kind is ValueKind.FSTRING  # a composed prompt
        )
        known = self._known_nodes.get(node_id) if shareable else None
        if known is not None:
            node, frame_key, occurred = known
            if (
                node.module is module
                and node.args == args
                and node.dependencies == deps
                and node.control == control
                and occurred == occurrence
                and frame_key == frame.key
                and node.scope == scope
                and node.source == source
                and node.kwargs == kwargs
                and node.parameters == params
                and node.kind is kind
                and node.name == name
                and node.module_path == module_path
            ):
                self.run.add_node(node, frame.priority)
                return TracedValue.of_node(self, node_id, out_kind)
        parts = (frame.key, base_id, occurrence)
        call_key = self._call_keys.get(parts)
        if call_key is None:  # one string per call key for the batch: its items' nodes share it
            call_key = self._call_keys[parts] = f"{frame.key}/{base_id}#{occurrence}"
        node = GraphNode(  # positional: this runs for every call a run makes
            node_id,
            kind,
            name,
            module,
            module_path,
            args,
            kwargs,
            deps,
            params,
            scope,
            True,  # side effects: every call made runs (nothing is pruned in eager mode)
            True,
            source,
            control,
            call_key,
        )
        if shareable and known is None:
            self._known_nodes[node_id] = (node, frame.key, occurrence)
        self.run.add_node(node, frame.priority)
        return TracedValue.of_node(self, node_id, out_kind)

    def _convert_one(
        self, args: tuple[Any, ...]
    ) -> tuple[tuple[Any, ...], tuple[str, ...], tuple[str, ...]] | None:
        """`_convert` for the usual call, one plain string or placeholder (None: not that case)."""
        arg = args[0]
        kind = type(arg)
        if kind is str:
            if not has_marker(arg):
                return args, (), ()
            value, deps, params = self._composed(arg)
            return (value,), deps, params
        if kind is TracedValue and arg._tracer is self and not arg.conversion:
            ref = arg.ref
            value_ref = self._value_refs.get(ref)
            if value_ref is None:  # one per ref for the batch: the items' nodes share it
                value_ref = self._value_refs[ref] = ValueRef(ref)
            if ref.startswith("param:"):
                return (value_ref,), (), (ref,)
            return (value_ref,), (ref,), ()
        return None

    def _composed(self, text: str) -> tuple[Value, tuple[str, ...], tuple[str, ...]]:
        """`Tracer._composed`, parsed once for the batch.

        The items of a batch compose the same prompts around their own placeholders: the
        texts differ only in the trace id inside each marker. So the parse is kept in the
        layout by the text with this recorder's id taken out, and serves every item (and
        their nodes share the value). A text with any other marker form (a conversion, a
        spec, an escaped or a foreign marker) is parsed every time.
        """
        key = str.replace(text, self.marker_tail, _ANY_TAIL)
        found = self._fstrings.get(key)
        if found is None:
            found = super()._composed(text)
            if (
                len(self._fstrings) < _FSTRINGS_KEPT
                and len(key) <= _FSTRING_KEPT_CHARS
                and str.count(key, TAG) == str.count(key, _ANY_TAIL)
                and "\\ue00" not in key
            ):
                self._fstrings[key] = found
            return found
        nodes, parameters = self.nodes, self.parameters
        if not all(ref in nodes for ref in found[1]) or not all(
            ref in parameters for ref in found[2]
        ):
            raise altered_error(text)
        return found

    def call_module(self, module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.run.closed:
            raise ExecutionError(
                f"{type(module).__name__} was called after its run finished; a call made in "
                "a run must happen while the run executes (do not keep placeholders or start "
                "calls from tasks that outlive forward())."
            )
        if len(args) == 1 and not kwargs and isinstance(module, LLMInference):
            # The usual call, made thousands of times: its forward(prompt) always binds.
            facts = self._llm_calls.get(id(module))
            if facts is None:
                facts = self._llm_facts(module)
            converted = self._convert_one(args)
            if converted is not None and not converted[2]:  # a string or a call's placeholder
                path, base_id, name, params, out_kind = facts
                return self._add(
                    NodeKind.LLM,
                    base_id,
                    name,
                    module,
                    path,
                    converted[0],
                    _NO_KWARGS,
                    converted[1],
                    params,
                    out_kind,
                    sys._getframe(2),  # the code that called the module: the walk skips ours
                )
        return super().call_module(module, args, kwargs)

    def _llm_facts(self, module: LLMInference) -> tuple[str, str, str, tuple[str, ...], ValueKind]:
        """What every call of ``module`` records alike (computed once per batch: the layout)."""
        path = self._paths.get(id(module))
        if path is None:
            path = self._path_of(module)
        params = tuple(self._param_ref(p) for p in module.parameters())
        base_id = path or "llm_inference"
        kind = ValueKind.STRUCTURED if module.response_schema is not None else ValueKind.TEXT
        facts = (path, base_id, base_id.rsplit(".", 1)[-1], params, kind)
        if path in self._layout_paths:  # a module of the root: the same in every item
            self._llm_calls[id(module)] = facts
        return facts

    def convert_output(self, result: Any) -> Any:
        """A forward's return value with placeholders as refs (markers as FSTRING values)."""
        output, _, _ = self._convert(result)
        return output

    async def wait(self, value: TracedValue, *, whole: bool = False) -> Any:
        """Wait for the node behind ``value``; its payload (its `Value` if ``whole``).

        Raises `CallError` if the call failed.
        """
        return await _Awaiting(self.awaiting(value, whole=whole))

    def awaiting(self, value: TracedValue, *, whole: bool = False) -> Generator[Any, None, Any]:
        """What ``await placeholder`` runs: a plain generator (no coroutine object per await)."""
        ref = value.ref
        if value._tracer is not self:
            raise TraceError(
                f"the placeholder for {ref!r} belongs to another run; placeholders are only "
                "valid in the run that made them (do not keep them on self or in globals)."
            )
        if ref.startswith("param:"):
            payload = self.parameters[ref].value
        else:
            run = self.run
            result = run.values.get(ref)
            if result is None:
                yield from run.waiting(ref)  # not finished: run here, or a future set when it is
                result = run.values[ref]
            frame = _FRAME.get()
            if frame is not None:
                # Later calls get a control edge from this reply. Replies awaited before this
                # call was made are its own control edges already: dropping them keeps the
                # edges a transitive reduction (a loop's rounds form a chain, not a clique).
                awaited = frame.awaited
                if awaited:
                    node = self.nodes.get(ref)
                    if node is not None:
                        for earlier in node.control:
                            awaited.pop(earlier, None)
                        for earlier in node.dependencies:
                            awaited.pop(earlier, None)
                awaited[ref] = None
            if result.kind is ValueKind.ERROR:
                raise self.run.call_error(ref, result)
            if whole:
                return result
            payload = result.payload
            if type(payload) is not str:
                payload = unwrap(payload)  # an op's dict result holds a Value per leaf
        conversion = value.conversion
        return _converted(payload, conversion) if conversion else payload


class _Awaiting:
    """An awaitable for a generator made by `Recorder.awaiting`."""

    __slots__ = ("steps",)

    def __init__(self, steps: Generator[Any, None, Any]) -> None:
        self.steps = steps

    def __await__(self) -> Generator[Any, None, Any]:
        return self.steps


# Argument types `Recorder._add` compares to share a node (others cost more to compare than
# a new node costs to make).
_CHEAP_ARGS = frozenset({str, ValueRef})
# Composed prompts a batch keeps parsed (`Recorder._composed`), at most this many texts of at
# most this length (the key is a copy of the text: at most ~1 MB a batch); past that, texts (each
# item's own, say) are parsed as they come.
_FSTRINGS_KEPT, _FSTRING_KEPT_CHARS = 256, 4096
_ANY_TAIL = TAG + CLOSE  # a plain marker's tail with the trace id taken out


def _control(awaited: dict[str, None], deps: tuple[str, ...], nodes: Any) -> tuple[str, ...]:
    if len(awaited) == 1:  # the usual case: one reply awaited since (a loop's previous round)
        (ref,) = awaited
        return (ref,) if ref not in deps and ref in nodes else ()
    return tuple(r for r in awaited if r not in deps and r in nodes)


def _converted(payload: Any, conversion: str) -> Any:
    if conversion == "r":
        return repr(payload)
    if conversion == "a":
        return ascii(payload)
    if conversion == "s":
        return str(payload)
    return payload


async def reply(placeholder: Any) -> Value:
    """Await a call and get its whole `Value`: the payload and its ``meta``.

    ``meta`` holds what the reply said besides its text: ``tool_calls``,
    ``finish_reason``, ``usage``, ``model``, ``cost``. Raises `CallError` if
    the call failed, like ``await``.

        answer = await plait.reply(self.llm(messages))
        answer.meta["tool_calls"]
    """
    tracer = getattr(placeholder, "_tracer", None)
    if not isinstance(placeholder, TracedValue) or not isinstance(tracer, Recorder):
        raise TypeError(
            f"plait.reply() takes the placeholder a call returned inside a run (in an async "
            f"forward); got {type(placeholder).__name__} {placeholder!r:.60}"
        )
    return await tracer.wait(placeholder, whole=True)
