"""Rich notebook HTML reprs: `Value`, `Module`, `InferenceGraph`, `RunResult`, `UpdateProposal`, evaluations.

Every piece of data is escaped with `html.escape`, so a model reply or a prompt
containing markup shows as text. Those classes' ``_repr_html_`` reach `html_of`
through `plait._upcalls.notebook_html` (a call-time lookup by name: plait never
imports this module), so the reprs work without ``%load_ext``; `register` also installs them
on an IPython shell's HTML formatter. The ``*_html`` functions are usable on
their own.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

from plait._format import format_money
from plait.evaluation.result import Comparison, EvalResult
from plait.execution.result import RunResult
from plait.graph import InferenceGraph
from plait.module import Module
from plait.optimization.proposals import UpdateProposal
from plait.values import Value
from plait_jupyter.inspector import clip, value_text, view_state
from plait_jupyter.review import diff_segments, editable_text

MAX_ROWS = 50
_BOX = (
    "font:12px/1.45 var(--jp-ui-font-family,system-ui,sans-serif);"
    "border:1px solid var(--jp-border-color2,#d0d7de);border-radius:6px;padding:6px 9px;"
    "max-width:960px"
)
_PRE = (
    "white-space:pre-wrap;word-break:break-word;margin:4px 0;padding:5px 7px;"
    "background:var(--jp-layout-color1,#f6f8fa);border-radius:4px;max-height:320px;overflow:auto;"
    "font:11.5px/1.4 var(--jp-code-font-family,ui-monospace,monospace)"
)
_TD = "padding:1px 10px 1px 0;text-align:left;vertical-align:top"
STATE_COLOURS = {
    "pending": "#9ca3af",
    "queued": "#0ea5e9",
    "running": "#2563eb",
    "retrying": "#ea580c",
    "done": "#16a34a",
    "cached": "#7c3aed",
    "failed": "#dc2626",
    "skipped": "#f87171",
    "cancelled": "#4b5563",
    "unused": "#d1d5db",
}


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def badge(text: str, colour: str = "#59636e") -> str:
    return (
        f'<span style="border:1px solid {colour};color:{colour};border-radius:9px;'
        f'padding:0 6px;font-size:11px">{esc(text)}</span>'
    )


def pre(text: str) -> str:
    return f'<pre style="{_PRE}">{esc(text)}</pre>'


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = "".join(f'<th style="{_TD}">{esc(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_TD}">{cell}</td>' for cell in row) + "</tr>" for row in rows
    )
    return f'<table style="border-collapse:collapse;font-size:12px"><tr>{head}</tr>{body}</table>'


def box(title: str, *parts: str) -> str:
    return f'<div class="plait-repr" style="{_BOX}"><div>{title}</div>{"".join(parts)}</div>'


def state_badge(state: str) -> str:
    return badge(state, STATE_COLOURS.get(state, "#59636e"))


def value_html(value: Value) -> str:
    """A `Value`: kind, provenance, payload, metadata."""
    kind, text = value_text(value)
    title = badge(kind.upper(), "#dc2626" if value.is_error else "#2563eb")
    if value.ref is not None:
        title += f" <code>ref={esc(value.ref)}</code>"
    meta = ""
    if value.meta:
        meta = table(
            ["meta", ""], ([esc(k), esc(clip(repr(v), 300))] for k, v in value.meta.items())
        )
    return box(title, pre(text), meta)


def _module_tree(name: str, module: Module, depth: int) -> str:
    extra = module.extra_repr()
    head = f"<b>{esc(name)}</b> <code>{esc(type(module).__name__)}</code>"
    if extra:
        head += f' <span style="color:#59636e">{esc(clip(extra, 200))}</span>'
    params = [
        f"<li>parameter <b>{esc(pname)}</b>"
        + (f" — {esc(param.description)}" if param.description else "")
        + (" (frozen)" if not param.requires_grad else "")
        + pre(clip(str(param.value), 600))
        + "</li>"
        for pname, param in module.named_parameters(recurse=False)
    ]
    children = [_module_tree(cname, child, depth + 1) for cname, child in module.named_children()]
    if not params and not children:
        return f"<li>{head}</li>"
    open_attr = " open" if depth < 2 else ""
    inner = "".join(params + children)
    return (
        f'<li><details{open_attr}><summary>{head}</summary><ul style="margin:2px 0 2px 4px;'
        f'padding-left:14px">{inner}</ul></details></li>'
    )


def module_html(module: Module) -> str:
    """A `Module`: its tree of children and parameters (with descriptions and values)."""
    count = sum(1 for _ in module.parameters())
    title = f"{badge('Module')} <b>{esc(type(module).__name__)}</b> · {count} parameter{'s' if count != 1 else ''}"
    return box(
        title, f'<ul style="margin:2px 0;padding-left:14px">{_module_tree("", module, 0)}</ul>'
    )


def _rows_note(shown: int, total: int) -> str:
    return f"<div>… {total - shown} more rows</div>" if total > shown else ""


def graph_html(graph: InferenceGraph) -> str:
    """An `InferenceGraph`: summary and a node table (for the interactive DAG, use `GraphView`)."""
    nodes = list(graph.nodes.values())
    # A graph recorded while it ran (async forward) also has control edges.
    recorded = graph.dynamic or any(n.control for n in nodes)
    rows = [
        [
            f"<code>{esc(n.id)}</code>" + ("" if n.live else " (unused)"),
            esc(n.kind),
            esc(n.target),
            esc(n.module_path),
            esc(" / ".join(n.scope)),
            esc(", ".join(n.dependencies)),
            *([esc(", ".join(n.control))] if recorded else []),
        ]
        for n in nodes[:MAX_ROWS]
    ]
    outputs = ", ".join(graph.output_ids) or "-"
    root = type(graph.root).__name__ if graph.root is not None else "graph"
    title = (
        f"{badge('InferenceGraph')} <b>{esc(root)}</b> · {len(nodes)} nodes · "
        f"outputs: {esc(outputs)}"
    )
    header = ["node", "kind", "target", "module path", "scope", "depends on"]
    if recorded:
        header.append("after (control)")
    return box(title, table(header, rows), _rows_note(len(rows), len(nodes)))


def output_preview(output: Any, limit: int = 300) -> str:
    """One run output as short escaped text."""
    return esc(clip(value_text(output, limit)[1], limit))


def _control(result: RunResult, node_id: str) -> tuple[str, ...]:
    node = result.graph.nodes.get(node_id)
    return node.control if node is not None else ()


def result_html(result: RunResult) -> str:
    """A `RunResult`: status, totals, output, failures and one row per node."""
    status_colour = STATE_COLOURS["done" if result.ok else "failed"]
    title = (
        f"{badge('RunResult')} {badge(result.status, status_colour)} · "
        f"{len(result.nodes)} nodes · {result.usage.total_tokens:,} tokens · "
        f"{format_money(result.cost)} · {result.makespan:.2f} s"
    )
    failures = "".join(f"<li>{esc(failure)}</li>" for failure in result.failures)
    records = list(result.nodes.values())
    recorded = result.graph.dynamic
    rows = [
        [
            f"<code>{esc(r.id)}</code>",
            state_badge(view_state(r)),
            esc(r.endpoint or ""),
            esc(r.attempts),
            "" if r.duration is None else f"{r.duration:.2f} s",
            esc(r.usage.total_tokens or ""),
            output_preview(r.output, 120) if r.output is not None else "",
            *([esc(", ".join(_control(result, r.id)))] if recorded else []),
        ]
        for r in records[:MAX_ROWS]
    ]
    header = ["node", "state", "endpoint", "attempts", "time", "tokens", "output"]
    if recorded:
        header.append("after (control)")
    return box(
        title,
        "<div><b>output</b></div>",
        pre(clip(value_text(result.output)[1], 2000)),
        f'<ul style="color:#b91c1c">{failures}</ul>' if failures else "",
        f"<details><summary>nodes</summary>{table(header, rows)}{_rows_note(len(rows), len(records))}</details>",
    )


def diff_html(segments: Iterable[list[str]]) -> str:
    """A word diff (`diff_segments`) with deletions struck through in red, insertions in green."""
    marks = {
        "delete": '<del style="background:#fee2e2;color:#991b1b">{}</del>',
        "insert": '<ins style="background:#dcfce7;color:#166534;text-decoration:none">{}</ins>',
    }
    body = "".join(marks.get(op, "{}").format(esc(text)) for op, text in segments)
    return f'<div style="{_PRE}">{body}</div>'


def proposal_html(proposal: UpdateProposal) -> str:
    """An `UpdateProposal`: status, the diff of its value, rationale and (folded) feedback."""
    status = "applied" if proposal.applied else proposal.status
    colours = {
        "applied": "#16a34a",
        "accepted": "#15803d",
        "edited": "#1d4ed8",
        "rejected": "#b91c1c",
    }
    title = (
        f"{badge('UpdateProposal')} <b>{esc(proposal.name)}</b> "
        f"{badge(status, colours.get(status, '#59636e'))} · step {proposal.step}"
    )
    old, new = editable_text(proposal.old_value), editable_text(proposal.new_value)
    feedback = "".join(
        f"<li>{esc('no score' if f.score is None else f'score {f.score:.2f}')}"
        f"{pre(clip(f.content, 1000))}</li>"
        for f in proposal.feedback[:MAX_ROWS]
    )
    count = len(proposal.feedback)
    return box(
        title,
        diff_html(diff_segments(old, new)),
        f"<div><b>Rationale</b> {esc(proposal.rationale)}</div>",
        f"<details><summary>feedback ({count} item{'s' if count != 1 else ''})</summary>"
        f'<ol style="margin:2px 0;padding-left:18px">{feedback}</ol>'
        f"{_rows_note(min(count, MAX_ROWS), count)}</details>",
    )


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def eval_html(result: EvalResult) -> str:
    """An `EvalResult`: score, totals, the parameter values, and the rows that did not pass."""
    stored = f" · stored as #{result.record_id}" if result.record_id is not None else ""
    title = (
        f"{badge('EvalResult')} <b>{esc(result.name)}</b> · score <b>{_score(result.score)}</b> · "
        f"{len(result.rows)} examples · {len(result.errors)} errors · "
        f"{result.tokens:,} tokens · ${result.cost:.4f}{esc(stored)}"
    )
    failures = result.failures()
    rows = [
        [
            esc(r.index),
            esc(clip(str(r.input), 120)),
            output_preview(r.output, 120),
            esc(_score(r.score)),
            esc(clip(r.error or r.message, 160)),
        ]
        for r in failures[:MAX_ROWS]
    ]
    params = "".join(
        f"<div><b>{esc(name)}</b>{pre(editable_text(value))}</div>"
        for name, value in result.params.items()
    )
    return box(
        title,
        f"<details><summary>parameters ({len(result.params)})</summary>{params}</details>",
        f"<div>{len(failures)} not passed (EvalView(result) opens each one's graph)</div>",
        table(["#", "input", "output", "score", "message / error"], rows),
        _rows_note(len(rows), len(failures)),
    )


def comparison_html(comparison: Comparison) -> str:
    """A `Comparison`: both scores, the prompt diff, and the examples whose score moved."""
    delta = "–" if comparison.delta is None else f"{comparison.delta:+.3f}"
    title = (
        f"{badge('Comparison')} score {_score(comparison.before.score)} → "
        f"<b>{_score(comparison.after.score)}</b> ({esc(delta)}) · {len(comparison.rows)} examples · "
        f"{len(comparison.improved())} improved · {len(comparison.regressed())} regressed"
    )
    prompts = "".join(
        f"<div><b>{esc(name)}</b>{diff_html(diff)}</div>"
        for name, diff in comparison.param_diffs().items()
    )
    moved = [r for r in comparison.rows if r.delta]
    rows = [
        [
            esc(clip(str(r.input), 100)),
            diff_html(r.diff()),
            esc(_score(r.score_before)),
            esc(_score(r.score_after)),
            esc(f"{r.delta:+.2f}"),
        ]
        for r in moved[:MAX_ROWS]
    ]
    return box(
        title,
        prompts or "<div>Same parameter values in both runs.</div>",
        table(["input", "output (before → after)", "before", "after", "delta"], rows),
        _rows_note(len(rows), len(moved)),
    )


REPRS: dict[type, Callable[[Any], str]] = {
    Value: value_html,
    Module: module_html,
    InferenceGraph: graph_html,
    RunResult: result_html,
    UpdateProposal: proposal_html,
    EvalResult: eval_html,
    Comparison: comparison_html,
}


def html_of(obj: Any) -> str | None:
    """``obj`` as HTML by the repr of the nearest of its classes that has one, else None."""
    for cls in type(obj).__mro__:
        render = REPRS.get(cls)
        if render is not None:
            return render(obj)
    return None


def register(shell: Any) -> None:
    """Install the HTML reprs on ``shell``'s display formatter (subclasses included)."""
    formatter = shell.display_formatter.formatters["text/html"]
    for cls, render in REPRS.items():
        formatter.for_type(cls, render)


def unregister(shell: Any) -> None:
    formatter = shell.display_formatter.formatters["text/html"]
    for cls in REPRS:
        formatter.pop(cls, None)
