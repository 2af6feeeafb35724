"""Backward propagation of text feedback through a recorded forward run.

`propagate` seeds the output feedback at the nodes the judged output came
from, then visits nodes in reverse topological order, so a node is handled
once every consumer has passed its feedback down (a diamond's shared node
hears from both branches). At each node a strategy turns the feedback on the
node's output into one message per target: each upstream node it read
(through a plain argument, an f-string field or structured access alike) and
each learnable parameter it read (an LLM node's system prompt, or a
parameter inserted into its prompt), and, for a call recorded define-by-run,
each call whose awaited reply decided that it was made (its control edges: a
router's classifier hears about the expert it chose; an expert not called has
no node and hears nothing). Input nodes are not targets: nothing upstream of
them can change.

`RouteBackward` (the default) writes those messages without a model: which
node, how it used the target (its call, with ``<ref>`` for inputs and
``{ref}`` for f-string fields), what it received and returned, and the
feedback that reached it. `LLMBackward` asks a model to rewrite the output
feedback into advice for the inputs and the prompt of each LLM node
(TextGrad-style), on top of the same context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from plait._tree import tree_map
from plait.errors import ConfigError
from plait.execution.records import ForwardRecord
from plait.execution.result import NodeRecord
from plait.execution.run import run
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.inference import LLMInference
from plait.module import Module
from plait.parameter import Parameter
from plait.values import FormatField, Value, ValueKind, ValueRef, unwrap

EXCERPT = 300  # characters of a node's input or output quoted in a message


@dataclass(frozen=True, slots=True)
class BackwardStep:
    """One node's turn: what it did, the feedback that reached it, and where to send it.

    ``feedback`` holds one message per route from the output to this node;
    ``targets`` are the upstream node ids, then the ``param:<name>`` refs of
    learnable parameters, that should each receive a message.
    """

    graph: InferenceGraph
    node: GraphNode
    record: NodeRecord | None
    feedback: tuple[str, ...]
    score: float | None
    targets: tuple[str, ...]


class BackwardStrategy(Protocol):
    """Turns a node's output feedback into a message for each of its targets."""

    async def __call__(self, step: BackwardStep) -> Mapping[str, str]: ...


async def propagate(
    record: ForwardRecord, content: str, score: float | None, strategy: BackwardStrategy
) -> dict[str, list[str]]:
    """The messages for each ``param:<name>`` ref that ``record``'s output depends on."""
    graph = record.graph
    inbox: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    seed = _seed_message(record, content, score)
    for ref in record.refs:
        (notes if ref.startswith("param:") else inbox).setdefault(ref, []).append(seed)
    for nid in reversed(graph.topological_order()):
        messages = inbox.get(nid)
        node = graph.nodes[nid]
        if not messages or node.kind is NodeKind.INPUT:
            continue
        targets = (
            *(d for d in node.dependencies if graph.nodes[d].kind is not NodeKind.INPUT),
            # A define-by-run call was made because of these replies (a router's label).
            *(c for c in node.control if c not in node.dependencies),
            *(p for p in node.parameters if graph.parameters[p].requires_grad),
        )
        if not targets:
            continue
        step = BackwardStep(
            graph, node, record.result.nodes.get(nid), tuple(messages), score, targets
        )
        routed = await strategy(step)
        unknown = sorted(set(routed) - set(targets))
        if unknown:
            raise ConfigError(
                f"backward strategy {strategy!r} sent feedback from node {nid!r} to "
                f"{', '.join(unknown)}, which it does not read; allowed targets: {', '.join(targets)}"
            )
        for target, text in routed.items():
            (notes if target.startswith("param:") else inbox).setdefault(target, []).append(text)
    return notes


class RouteBackward:
    """Route the feedback unchanged, with the context each target needs (no model calls)."""

    async def __call__(self, step: BackwardStep) -> Mapping[str, str]:
        context = node_context(step)
        out = {}
        for target in step.targets:
            if target.startswith("param:"):
                role = parameter_role(step.node, step.graph.parameters[target])
                out[target] = f"`{target[6:]}` is {role} of:\n{context}"
            elif target in step.node.control:
                out[target] = f"Your reply decided that this call was made:\n{context}"
            else:
                out[target] = f"Your output is used by:\n{context}"
        return out

    def __repr__(self) -> str:
        return "RouteBackward()"


def excerpt(x: Any, limit: int = EXCERPT) -> str:
    """``x`` as short text: strings as they are, structures as JSON, cut at ``limit``."""
    x = unwrap(x)
    text = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Shown:
    """Shows as its text inside a repr of the argument structure."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _arg_text(leaf: Any) -> Any:
    if type(leaf) is ValueRef:
        return _Shown(f"<{leaf.ref.removeprefix('param:')}>")
    if type(leaf) is Value and leaf.kind is ValueKind.FSTRING:
        parts = [
            "{" + p.ref.removeprefix("param:") + "}" if isinstance(p, FormatField) else p
            for p in leaf.payload
        ]
        return _Shown("f" + repr("".join(parts)))
    return _Shown(excerpt(repr(leaf), 80))


def call_text(node: GraphNode) -> str:
    """The node's call with its arguments: ``select(<analyze>, 'x')``, ``llm(f'Summary: {s}')``."""
    args = [repr(tree_map(_arg_text, a)) for a in node.args]
    args += [f"{k}={tree_map(_arg_text, v)!r}" for k, v in node.kwargs.items()]
    return f"{node.name}({', '.join(args)})"


def describe(node: GraphNode) -> str:
    if node.kind is NodeKind.LLM:
        return f"LLM node `{node.id}` (endpoint {node.alias!r})"
    if node.kind is NodeKind.MODULE:
        return f"module node `{node.id}` ({type(node.module).__name__})"
    return f"op node `{node.id}`"


def parameter_role(node: GraphNode, param: Parameter) -> str:
    if node.kind is NodeKind.LLM and getattr(node.module, "system_prompt", None) is param:
        return "the system prompt"
    return "part of the input"


def node_input(node: GraphNode, record: NodeRecord) -> Any:
    """What the node received: an LLM call's last user message, else its resolved arguments."""
    request = record.request
    if node.kind is NodeKind.LLM and request is not None:
        users = [m.get("content") for m in request.messages if m.get("role") == "user"]
        return users[-1] if users else request.messages
    args, kwargs = record.inputs if record.inputs else ((), {})
    if kwargs:
        return {"args": args, "kwargs": kwargs}
    return args[0] if len(args) == 1 else list(args)


def _bullets(messages: tuple[str, ...], indent: str) -> list[str]:
    pad = indent + "  "
    return [indent + "- " + m.replace("\n", "\n" + pad) for m in messages]


def node_context(step: BackwardStep) -> str:
    """Which node, its call, what it received and returned, and the feedback that reached it."""
    node, record = step.node, step.record
    lines = [f"{describe(node)}: {call_text(node)}"]
    if record is not None:
        output = excerpt(record.output) if record.output is not None else f"({record.status})"
        for label, text in (("input", excerpt(node_input(node, record))), ("output", output)):
            lines.append(f"  {label}: " + text.replace("\n", "\n    "))
    lines.append("  feedback on this output:")
    lines += _bullets(step.feedback, "  ")
    return "\n".join(lines)


def _seed_message(record: ForwardRecord, content: str, score: float | None) -> str:
    where = "".join(f"[{k!r}]" for k in record.path)
    parts = [f"Feedback on the final output{where}"]
    if record.field:
        parts.append(f" (field {'.'.join(map(str, record.field))} of this node's output)")
    template = record.template
    if template is not None:
        parts.append(f" (rendered from {_arg_text(template)!r})")
    if score is not None:
        parts.append(f" (score {score:.2f})")
    return "".join(parts) + f": {content}"


CRITIC_SYSTEM = (
    "You are the backward pass of an AI pipeline. You see one LLM call (its system prompt, "
    "its input and its output) and feedback on that output. Explain concretely what should "
    "change in the system prompt, and what should change in the input, so that the output "
    "addresses the feedback. Reply in JSON."
)
CRITIC_SCHEMA = {
    "type": "object",
    "properties": {
        "parameter_feedback": {"type": "string"},
        "input_feedback": {"type": "string"},
    },
    "required": ["parameter_feedback", "input_feedback"],
    "additionalProperties": False,
}


class _Critic(Module):
    def __init__(self, alias: str) -> None:
        super().__init__()
        self.llm = LLMInference(alias, system_prompt=CRITIC_SYSTEM, response_format=CRITIC_SCHEMA)

    def forward(self, prompt: str) -> Any:
        return self.llm(prompt)


class LLMBackward:
    """TextGrad-style: a model rewrites each LLM node's output feedback into advice.

    Every LLM node reached costs one request to ``alias`` (through
    ``resources``, or the active `ExecutionSettings`); other nodes are routed
    like `RouteBackward`. Each message keeps the routed context below the advice.
    """

    def __init__(self, alias: str = "optimizer", resources: Any = None) -> None:
        self.alias = alias
        self.resources = resources
        self._critic = _Critic(alias)
        self._route = RouteBackward()

    async def __call__(self, step: BackwardStep) -> Mapping[str, str]:
        routed = await self._route(step)
        record = step.record
        if step.node.kind is not NodeKind.LLM or record is None or record.request is None:
            return routed
        system = next(
            (m.get("content") for m in record.request.messages if m.get("role") == "system"), ""
        )
        prompt = "\n".join(
            [
                f"{describe(step.node)}",
                f"System prompt:\n<<<\n{system}\n>>>",
                f"Input:\n<<<\n{excerpt(node_input(step.node, record), 4 * EXCERPT)}\n>>>",
                f"Output:\n<<<\n{excerpt(record.output, 4 * EXCERPT)}\n>>>",
                "Feedback on the output:",
                *_bullets(step.feedback, ""),
            ]
        )
        advice = await run(self._critic, prompt, resources=self.resources)
        out = {}
        for target, text in routed.items():
            key = "parameter_feedback" if target.startswith("param:") else "input_feedback"
            out[target] = f"Advice from {self.alias!r}: {advice[key]}\n{text}"
        return out

    def __repr__(self) -> str:
        return f"LLMBackward({self.alias!r})"
