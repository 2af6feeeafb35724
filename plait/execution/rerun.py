"""What-if re-runs: run one node again with an edit, reusing everything upstream.

``await result.rerun("summarize", system_prompt="...")`` runs node
``summarize`` again with the edit, then every live node downstream of it;
every other node completes from ``result``'s record (the same `Value`
objects, no request). Nodes that did not complete in ``result`` run again
too, with their dependants, so the re-run never reuses a stale output.
The new `RunResult` links to ``result`` (``parent``) and keeps its edits
(``overrides``); `diff` lists the nodes whose outputs changed, and `adopt`
writes an edited system prompt into the `Parameter` the node reads.

A run recorded define-by-run is re-run by replaying its forward: each call
it makes again completes from the earlier record when its call key and its
inputs are unchanged, so only the edited call and what its output changes
are sent, and the replay may take another branch (nodes the new branch does
not make are absent from the new run). Calls recorded inside a traced graph
(an async module's, an op's) are replayed the same way.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from plait.errors import ConfigError
from plait.execution.result import (
    DONE,
    NO_OVERRIDE,
    NodeChange,
    NodeOverride,
    NodeRecord,
    RunResult,
)
from plait.execution.run import dynamic_graph, execute_graph, run_blocking, split_options
from plait.execution.settings import as_resources, effective_options
from plait.graph import GraphNode, InferenceGraph, NodeKind
from plait.parameter import Parameter
from plait.schema import to_data
from plait.values import Value, ValueKind, unwrap


def output_text(value: Value | None) -> str:
    """A node's output as the text `diff` compares: the reply text, JSON, or the error."""
    if value is None:
        return ""
    if value.kind is ValueKind.ERROR:
        return f"{type(value.payload).__name__}: {value.payload}"
    if value.kind is ValueKind.TEXT and isinstance(value.payload, str):
        return value.payload
    if value.kind is ValueKind.STRUCTURED:
        return json.dumps(to_data(unwrap(value)), indent=2, ensure_ascii=False, default=repr)
    return repr(unwrap(value))


def rerun_ids(parent: RunResult, node_id: str) -> set[str]:
    """The live nodes a re-run at ``node_id`` runs again; the others reuse ``parent``'s outputs."""
    graph = parent.graph.base or parent.graph
    starts = {node_id} | {
        nid
        for nid in graph.live_ids()
        if nid not in parent.nodes
        or parent.nodes[nid].status != DONE
        or parent.nodes[nid].output is None
    }
    again = set(starts)
    for nid in starts:
        again |= graph.descendants(nid)
    return {nid for nid in again if graph.nodes[nid].live}


def _node(graph: InferenceGraph, node_id: str) -> GraphNode:
    node = graph.nodes.get(node_id)
    if node is None:
        raise ConfigError(
            f"cannot re-run node {node_id!r}: this run's graph has no such node; "
            f"its nodes are {', '.join(graph.live_ids())}"
        )
    if not node.live:
        raise ConfigError(
            f"cannot re-run node {node_id!r}: it reaches no output, so runs skip it. "
            "Re-run a node the output depends on."
        )
    return node


def _override(
    node: GraphNode, system_prompt: Any, input: Any, temperature: Any
) -> NodeOverride | None:
    """The edit for ``node`` after checking it fits the node's kind (None: nothing to change)."""
    problems = []
    llm_only = [
        name
        for name, given in (("system_prompt", system_prompt), ("temperature", temperature))
        if given is not None
    ]
    if llm_only and node.kind is not NodeKind.LLM:
        kind = "an input" if node.kind is NodeKind.INPUT else f"a {node.kind} node ({node.target})"
        problems.append(
            f"{' and '.join(llm_only)} only apply to LLM nodes, and {node.id!r} is {kind}; "
            "pass input=... to change what it receives"
        )
    if system_prompt is not None and not isinstance(system_prompt, str):
        problems.append(f"system_prompt must be a str; got {type(system_prompt).__name__}")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        problems.append(f"temperature must be a number from 0 to 2; got {temperature!r}")
    if input is not None and node.kind is not NodeKind.INPUT and not (node.args or node.kwargs):
        problems.append(f"node {node.id!r} takes no arguments, so there is no input to replace")
    if problems:
        raise ConfigError(f"cannot re-run node {node.id!r}: " + "; ".join(problems))
    if system_prompt is None and input is None and temperature is None:
        return None
    return NodeOverride(system_prompt, input, temperature)


async def rerun(
    parent: RunResult,
    node_id: str,
    *,
    system_prompt: str | None = None,
    input: Any = None,
    temperature: float | None = None,
    resources: Any = None,
    **options: Any,
) -> RunResult:
    """`RunResult.rerun`: run ``node_id`` of ``parent`` again with edits, reusing what it can."""
    graph = parent.graph
    node = _node(graph, node_id)
    override = _override(node, system_prompt, input, temperature)
    explicit, extra = split_options(dict(options))
    if extra:
        raise ConfigError(
            f"unknown re-run option(s) {', '.join(sorted(extra))}; a re-run takes "
            "system_prompt, input, temperature and run options (on_event, max_concurrent, ...)"
        )
    chosen = as_resources(resources) if resources is not None else parent.resources
    run_options, owner = effective_options(replace(explicit, resources=chosen), graph.root)
    replay: dict[str, NodeRecord] = {}
    for nid, record in parent.nodes.items():
        key = graph.nodes[nid].call_key if nid in graph.nodes else None
        if key is not None:
            replay[key] = record
    if graph.dynamic:
        assert node.call_key is not None  # every node of a recorded graph has one
        fresh: dict[str, NodeOverride] = {node.call_key: override or NO_OVERRIDE}
        return await execute_graph(
            dynamic_graph(graph.root, *graph.call),
            {},
            run_options,
            owner,
            parent=parent,
            dynamic=True,
            replay=replay,
            fresh=fresh,
        )
    fresh = {}
    if node.call_key is not None:  # a call recorded inside the traced graph: re-run its caller
        fresh[node.call_key] = override or NO_OVERRIDE
        node_id = node.call_key.split("/")[1]
        override = None
    graph = graph.base or graph
    again = rerun_ids(parent, node_id)
    reuse: dict[str, NodeRecord] = {
        nid: parent.nodes[nid] for nid in graph.live_ids() if nid not in again
    }
    inputs: dict[str, Any] = {}
    overrides: dict[str, NodeOverride] = {}
    if override is not None:
        overrides[node_id] = override
    # Input nodes that run again are given their value as a run input: the old one, or the edit.
    for nid in again:
        if graph.nodes[nid].kind is NodeKind.INPUT:
            inputs[nid] = parent.nodes[nid].output
    if node.kind is NodeKind.INPUT and override is not None:
        inputs[node_id] = override.input
    return await execute_graph(
        graph,
        inputs,
        run_options,
        owner,
        reuse=reuse,
        overrides=overrides,
        parent=parent,
        replay=replay,
        fresh=fresh,
    )


def rerun_sync(parent: RunResult, node_id: str, **edits: Any) -> RunResult:
    """`rerun`, blocking (also inside a running event loop)."""
    return run_blocking(rerun(parent, node_id, **edits))


def diff(before: RunResult, after: RunResult | None = None) -> list[NodeChange]:
    """Nodes whose output text differs from ``before`` to ``after``, in graph order.

    Without ``after``, compares ``before.parent`` to ``before`` (what a re-run changed).
    """
    if after is None:
        if before.parent is None:
            raise ConfigError(
                "diff() without another run compares a re-run with the run it started from, "
                "and this run is not a re-run; pass the run to compare with: a.diff(b)"
            )
        before, after = before.parent, before
    changes = []
    for nid in dict.fromkeys([*before.graph.nodes, *after.graph.nodes]):
        old, new = before.nodes.get(nid), after.nodes.get(nid)
        if old is None and new is None:
            continue
        # A call made in only one of two define-by-run runs reads "" on the other side.
        old_text = output_text(old.output) if old is not None else ""
        new_text = output_text(new.output) if new is not None else ""
        if old_text != new_text:
            path = (new or old).module_path  # type: ignore[union-attr]
            changes.append(NodeChange(nid, path, old_text, new_text))
    return changes


def adopt(result: RunResult, node_id: str) -> Parameter:
    """`RunResult.adopt`: write the re-run's system prompt at ``node_id`` into its `Parameter`."""
    override = result.overrides.get(node_id)
    if override is None or override.system_prompt is None:
        edited = ", ".join(
            f"{nid!r}" for nid, o in result.overrides.items() if o.system_prompt is not None
        )
        raise ConfigError(
            f"cannot adopt node {node_id!r}: this run did not edit its system prompt "
            f"(edited system prompts: {edited or 'none'}). Re-run it first: "
            f"`new = await result.rerun({node_id!r}, system_prompt=...)`, then `new.adopt({node_id!r})`"
        )
    module = result.graph.nodes[node_id].module
    prompt = module.system_prompt
    if not isinstance(prompt, Parameter):
        raise ConfigError(
            f"cannot adopt node {node_id!r}: its system prompt is a fixed str, not a Parameter, "
            "so there is no parameter to write into. Make it one "
            '(LLMInference(alias, system_prompt=Parameter(text, description="..."))) '
            "or assign the new text to the module's system_prompt yourself"
        )
    prompt.apply_update(override.system_prompt)
    return prompt


def adoptable(result: RunResult, node_id: str) -> str | None:
    """The name of the Parameter `adopt` would write for ``node_id``, or None if it cannot."""
    override = result.overrides.get(node_id)
    node = result.graph.nodes.get(node_id)
    if override is None or override.system_prompt is None or node is None:
        return None
    prompt = getattr(node.module, "system_prompt", None)
    return (prompt.name or node.module_path) if isinstance(prompt, Parameter) else None


__all__ = ["NodeChange", "adopt", "adoptable", "diff", "output_text", "rerun", "rerun_sync"]
