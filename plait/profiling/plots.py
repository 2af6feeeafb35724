"""Plotly figures of a run: timeline (Gantt by endpoint slot), slot utilisation, idle time by cause.

plotly is an optional extra (``pip install 'plait[jupyter]'``), imported when
a figure is built. Figures are self-contained: `save_html` embeds plotly.js,
so the file opens without network.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from plait.profiling.bubbles import IDLE_CAUSES, BubbleReport
from plait.profiling.timeline import Attempt, Timeline

# Tableau-10 without its red, which marks retries.
PALETTE = (
    "#4E79A7",
    "#F28E2B",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#86BCB6",
    "#D4A6C8",
    "#8CD17D",
    "#A0CBE8",
)
STATE_COLOURS = {
    "busy": "#4E79A7",
    "dependency": "#F28E2B",
    "rate_limit": "#E15759",
    "backoff": "#B07AA1",
    "global_cap": "#76B7B2",
    "no_work": "#D3D3D3",
}
RETRY_COLOUR = "#C0392B"
_PATTERNS = {"retry": "/", "failed": "x", "cancelled": ".", "unfinished": "."}
_HOVER = (
    "<b>%{customdata[0]}</b> (%{customdata[1]})<br>attempt %{customdata[2]}: %{customdata[3]}"
    "<br>%{base:.3f}s → %{customdata[4]:.3f}s (%{x:.3f}s)"
    "<br>tokens %{customdata[5]} in / %{customdata[6]} out, $%{customdata[7]:.6f}"
    "<br>%{customdata[8]}<extra></extra>"
)


def _go() -> Any:
    import plotly.graph_objects as go  # optional extra: plait[jupyter]

    return go


def _subplots(**layout: Any) -> Any:
    from plotly.subplots import make_subplots  # optional extra: plait[jupyter]

    return make_subplots(**layout)


def _rows(timeline: Timeline) -> list[str]:
    rows = [f"{alias} · slot {s}" for alias, n in timeline.endpoints.items() for s in range(n)]
    return rows + [f"local · {lane}" for lane in range(timeline.local_lanes)]


def _row(timeline: Timeline, endpoint: str, slot: int) -> int:
    """The row of ``endpoint``'s ``slot`` in `_rows`."""
    before = 0
    for alias, n in timeline.endpoints.items():
        if alias == endpoint:
            return before + slot
        before += n
    raise KeyError(endpoint)


def _safe(text: str) -> str:
    """Provider error text for a hover label: plotly renders some HTML, so escape it."""
    return html.escape(text[:160])


def _colours(paths: Iterable[str]) -> dict[str, str]:
    ordered = list(dict.fromkeys(paths))
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(ordered)}


def _attempt_bars(
    go: Any, timeline: Timeline, path: str, colour: str, attempts: list[Attempt]
) -> Any:
    segments = [(a, s, e) for a in attempts for s, e in a.busy_segments()]
    return go.Bar(
        name=path,
        legendgroup=path,
        orientation="h",
        base=[s for _, s, _ in segments],
        x=[e - s for _, s, e in segments],
        y=[_row(timeline, a.endpoint, a.slot) for a, _, _ in segments],
        width=0.8,
        text=[a.node if a.item is None else f"{a.node} [{a.item}]" for a, _, _ in segments],
        textposition="inside",
        insidetextanchor="middle",
        marker={
            "color": colour,
            "line": {
                "color": [RETRY_COLOUR if a.outcome != "done" else "white" for a, _, _ in segments],
                "width": 1,
            },
            "pattern": {
                "shape": [_PATTERNS.get(a.outcome, "") for a, _, _ in segments],
                "fgcolor": "white",
                "solidity": 0.35,
            },
        },
        customdata=[
            (
                a.key,
                a.module_path,
                a.attempt,
                a.outcome,
                e,
                a.input_tokens,
                a.output_tokens,
                a.cost,
                _safe(a.error),
            )
            for a, _, e in segments
        ],
        hovertemplate=_HOVER,
    )


def plot_timeline(timeline: Timeline, *, title: str | None = None) -> Any:
    """A Gantt chart: one row per endpoint slot (and local lane), one bar per attempt.

    Bars are coloured by module path; retried attempts are hatched with a red
    outline and a red ✕ where they failed, a dotted red line following the
    retry backoff; rate-limit waits are light grey bars on the slot they hold.
    """
    go = _go()
    rows = _rows(timeline)
    by_path: dict[str, list[Attempt]] = {}
    for a in timeline.attempts:
        by_path.setdefault(a.module_path, []).append(a)
    colours = _colours(by_path)
    fig = go.Figure()
    limited = [w for w in timeline.waits if w.kind == "rate_limit" and w.slot is not None]
    if limited:
        fig.add_bar(
            name="rate-limit wait",
            orientation="h",
            base=[w.start for w in limited],
            x=[w.end - w.start for w in limited],
            y=[_row(timeline, w.endpoint, w.slot or 0) for w in limited],  # slot is set
            width=0.8,
            marker={"color": "#E8E8E8", "line": {"color": "#9E9E9E", "width": 1}},
            customdata=[(w.key, w.end) for w in limited],
            hovertemplate="<b>%{customdata[0]}</b> waiting for the rate limiter"
            "<br>%{base:.3f}s → %{customdata[1]:.3f}s (%{x:.3f}s)<extra></extra>",
        )
    for path, attempts in by_path.items():
        fig.add_trace(_attempt_bars(go, timeline, path, colours[path], attempts))
    if timeline.local:
        fig.add_bar(
            name="local ops / modules",
            orientation="h",
            base=[r.start for r in timeline.local],
            x=[r.end - r.start for r in timeline.local],
            y=[len(rows) - timeline.local_lanes + r.lane for r in timeline.local],
            width=0.8,
            marker={"color": "#9E9E9E"},
            customdata=[(r.key, r.kind, r.end) for r in timeline.local],
            hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})"
            "<br>%{base:.3f}s → %{customdata[2]:.3f}s<extra></extra>",
        )
    _add_retries(fig, timeline)
    if any(a.outcome != "done" for a in timeline.attempts):
        fig.add_bar(  # a legend entry explaining the hatching; draws nothing
            name="failed or retried attempt",
            orientation="h",
            x=[None],
            y=[None],
            marker={
                "color": "#BBBBBB",
                "line": {"color": RETRY_COLOUR, "width": 1},
                "pattern": {"shape": "/", "fgcolor": "white", "solidity": 0.35},
            },
        )
    makespan = timeline.makespan
    fig.update_layout(
        title=title
        or f"Timeline: makespan {makespan:.3f}s, {len(timeline.attempts)} attempts, "
        f"{len(timeline.retries)} retries",
        barmode="overlay",
        template="plotly_white",
        height=max(320, 150 + 36 * len(rows)),
        xaxis={"title": "seconds since the run started", "range": [0, makespan * 1.01 or 1]},
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(len(rows))),
            "ticktext": rows,
            "autorange": "reversed",
            "showgrid": False,
        },
        legend={"traceorder": "normal"},
        uniformtext={"minsize": 8, "mode": "hide"},
        hoverlabel={"align": "left"},
    )
    edges = list(itertools.accumulate(timeline.endpoints.values()))  # rows after each endpoint
    for edge in edges if timeline.local else edges[:-1]:
        fig.add_hline(y=edge - 0.5, line={"color": "#888", "width": 1})
    return fig


def _add_retries(fig: Any, timeline: Timeline) -> None:
    if not timeline.retries:
        return
    fig.add_scatter(
        name="retry / 429 (✕), backoff (dotted)",
        mode="markers",
        x=[r.time for r in timeline.retries],
        y=[_row(timeline, r.endpoint, r.slot) for r in timeline.retries],
        marker={"symbol": "x-thin-open", "size": 12, "color": RETRY_COLOUR, "line": {"width": 3}},
        customdata=[
            (r.key, r.attempt, r.status or "", r.delay, _safe(r.error)) for r in timeline.retries
        ],
        hovertemplate="<b>%{customdata[0]}</b> attempt %{customdata[1]} failed (%{customdata[2]})"
        "<br>at %{x:.3f}s, retry after %{customdata[3]:.3f}s<br>%{customdata[4]}<extra></extra>",
        legendgroup="retry",
    )
    backoffs = {(w.key, w.start): w for w in timeline.waits if w.kind == "backoff"}
    xs: list[float | None] = []
    ys: list[float | None] = []
    for r in timeline.retries:
        backoff = backoffs.get((r.key, r.time))
        if backoff is not None:
            y = _row(timeline, r.endpoint, r.slot) + 0.45
            xs += [backoff.start, backoff.end, None]
            ys += [y, y, None]
    fig.add_scatter(
        name="backoff",
        mode="lines",
        x=xs,
        y=ys,
        line={"color": RETRY_COLOUR, "dash": "dot", "width": 2},
        hoverinfo="skip",
        showlegend=False,
        legendgroup="retry",
    )


def _step(changes: list[tuple[float, int]], end: float) -> tuple[list[float], list[int]]:
    """A step function (for ``line_shape="hv"``) from +1/-1 changes, from 0 to ``end``."""
    xs, ys, value = [0.0], [0], 0
    for t, delta in sorted(changes):
        value += delta
        if xs[-1] == t:
            ys[-1] = value
        else:
            xs.append(t)
            ys.append(value)
    xs.append(end)
    ys.append(value)
    return xs, ys


def plot_utilization(timeline: Timeline, report: BubbleReport) -> Any:
    """Busy slots, slots held in the rate limiter, and queued nodes over time, per endpoint."""
    aliases = list(timeline.endpoints)
    fig = _subplots(
        rows=max(1, len(aliases)),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[f"{a} ({n} slots)" for a, n in timeline.endpoints.items()],
        vertical_spacing=0.12 if len(aliases) > 1 else 0.0,
    )
    end = timeline.makespan
    for i, alias in enumerate(aliases, start=1):
        busy: list[tuple[float, int]] = []
        held: list[tuple[float, int]] = []
        for slot in range(timeline.endpoints[alias]):
            for s in report.slot_states[(alias, slot)]:
                if s.state in ("busy", "rate_limit"):
                    held += [(s.start, 1), (s.end, -1)]
                if s.state == "busy":
                    busy += [(s.start, 1), (s.end, -1)]
        queued = [
            (t, d)
            for w in timeline.waits
            if w.endpoint == alias and w.kind == "queue"
            for t, d in ((w.start, 1), (w.end, -1))
        ]
        first = i == 1
        for name, changes, style in (
            ("held (incl. rate-limit wait)", held, {"color": "#F4B6B7", "fill": "tozeroy"}),
            ("busy", busy, {"color": STATE_COLOURS["busy"], "fill": "tozeroy"}),
            ("queued for a slot", queued, {"color": "#333333", "dash": "dot"}),
        ):
            xs, ys = _step(changes, end)
            fig.add_scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                legendgroup=name,
                showlegend=first,
                line_shape="hv",
                line={"color": style["color"], "dash": style.get("dash", "solid"), "width": 1.5},
                fill=style.get("fill"),
                row=i,
                col=1,
            )
        fig.add_hline(
            y=timeline.endpoints[alias], line={"color": "#888", "dash": "dash"}, row=i, col=1
        )
    fig.update_layout(
        title=f"Slot utilization: {report.utilization:.0%} overall",
        template="plotly_white",
        height=max(300, 230 * len(aliases)),
    )
    fig.update_xaxes(title="seconds since the run started", row=max(1, len(aliases)), col=1)
    fig.update_yaxes(title="slots", rangemode="tozero")
    return fig


def plot_bubbles(report: BubbleReport) -> Any:
    """Slot-seconds per endpoint, stacked: busy and each idle cause."""
    go = _go()
    aliases = list(report.endpoints)
    fig = go.Figure()
    for state in ("busy", *IDLE_CAUSES):
        values = [
            e.busy if state == "busy" else e.idle_by_cause[state] for e in report.endpoints.values()
        ]
        totals = [e.busy + e.idle for e in report.endpoints.values()]
        fig.add_bar(
            name=state,
            orientation="h",
            y=aliases,
            x=values,
            marker={"color": STATE_COLOURS[state]},
            text=[
                f"{v / t:.0%}" if t > 0 and v / t >= 0.04 else ""
                for v, t in zip(values, totals, strict=True)
            ],
            textposition="inside",
            hovertemplate=f"{state}: %{{x:.3f}} slot-s<extra>%{{y}}</extra>",
        )
    fig.update_layout(
        title=f"Where the slot time went: utilization {report.utilization:.0%}, critical path "
        f"{report.critical_path_length:.3f}s of {report.makespan:.3f}s makespan",
        barmode="stack",
        template="plotly_white",
        height=max(300, 180 + 60 * len(aliases)),
        xaxis={"title": "slot-seconds (slots × makespan)"},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "traceorder": "normal"},
    )
    return fig


def save_html(fig: Any, path: str | PathLike[str]) -> Path:
    """Write ``fig`` as a standalone HTML file with plotly.js embedded (opens offline)."""
    target = Path(path)
    fig.write_html(target, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return target
