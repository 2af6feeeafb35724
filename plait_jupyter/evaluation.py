"""`EvalView`: an evaluation or a comparison as a table, each row opening its example's graph.

    EvalView(result)                  # an EvalResult (live, or reloaded from a RunStore)
    EvalView(before.compare(after))   # a Comparison: both scores, delta, output diff

The table (``static/evaluation.js``) sorts by any column and filters by
text, failures only, or (for a comparison) changed outputs only; a
comparison shows the prompt diff between the two runs at the top. A click on
a row sends ``{"type": "open", "row": i, "side": "before" | "after"}``; the
kernel shows that example's run in the `GraphView` below the table, with its
node inspector: the live `RunResult` when the row has one, else the run kept
in the store. Everything sent is plain text and numbers (drawn as text nodes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anywidget
import ipywidgets
import traitlets

from plait.errors import ConfigError
from plait.evaluation.result import Comparison, ComparisonRow, EvalResult, EvalRow, as_text
from plait_jupyter.graph_view import STATIC, GraphView
from plait_jupyter.inspector import clip

CELL_LIMIT = 600  # characters of an input or output shown in a cell (the inspector has the rest)


def _text(value: Any) -> str:
    return clip("" if value is None else as_text(value), CELL_LIMIT)


def _result_row(row: EvalRow) -> dict[str, Any]:
    return {
        "index": row.index,
        "input": _text(row.input),
        "target": _text(row.target),
        "output": _text(row.output),
        "score": row.score,
        "message": clip(row.message, CELL_LIMIT),
        "error": clip(row.error or "", CELL_LIMIT),
        "tokens": row.tokens,
        "cost": row.cost,
        "latency": row.latency,
        "has_run": row.snapshot is not None,
    }


def _comparison_row(position: int, row: ComparisonRow) -> dict[str, Any]:
    side = row.after or row.before
    return {
        "index": position,
        "input": _text(row.input),
        "target": _text(row.target),
        "output_before": _text(row.output_before),
        "output_after": _text(row.output_after),
        "score_before": row.score_before,
        "score_after": row.score_after,
        "delta": row.delta,
        "changed": row.changed,
        "diff": [[op, clip(text, CELL_LIMIT)] for op, text in row.diff()],
        "error": clip((side.error if side is not None else None) or "", CELL_LIMIT),
        "has_before": row.before is not None,
        "has_after": row.after is not None,
    }


def _focus(states: Mapping[str, str]) -> str:
    """The node the inspector opens on: the first that failed, else the last that ran."""
    failed = [key for key, state in states.items() if state == "failed"]
    ran = [key for key, state in states.items() if state not in ("unused", "pending")]
    return (failed or ran or [""])[0 if failed else -1]


def _label(result: EvalResult) -> str:
    where = f" · #{result.record_id}" if result.record_id is not None else ""
    return f"{result.name}{where}"


class EvalTable(anywidget.AnyWidget):
    """The table part of `EvalView` (sorting and filtering happen in the browser)."""

    _esm = STATIC / "evaluation.js"
    _css = STATIC / "evaluation.css"

    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    info = traitlets.Dict().tag(sync=True)
    opened = traitlets.Dict().tag(sync=True)


class EvalView(ipywidgets.VBox):
    """An `EvalResult` or a `Comparison`: the table, then the graph of the row last clicked."""

    def __init__(self, source: EvalResult | Comparison, *, graph_height: int = 360) -> None:
        if not isinstance(source, EvalResult | Comparison):
            raise ConfigError(
                f"EvalView shows an EvalResult (from plait.evaluate or RunStore.load) or a "
                f"Comparison (result.compare(other)); got {type(source).__name__}"
            )
        self.source = source
        self.table = EvalTable()
        self.graph = GraphView(height=graph_height)
        self.graph.layout.display = "none"  # until a row is opened
        super().__init__([self.table, self.graph])
        self.table.on_msg(lambda _widget, content, _buffers: self.handle_message(content))
        self.table.info = self._info()
        self.table.rows = self._rows()

    def _info(self) -> dict[str, Any]:
        source = self.source
        if isinstance(source, EvalResult):
            return {
                "mode": "result",
                "title": _label(source),
                "score": source.score,
                "examples": len(source.rows),
                "errors": len(source.errors),
                "failures": len(source.failures()),
                "tokens": source.tokens,
                "cost": source.cost,
                "status": source.status,
                "metric": source.metric,
            }
        return {
            "mode": "comparison",
            "title": f"{_label(source.before)} → {_label(source.after)}",
            "score_before": source.before.score,
            "score_after": source.after.score,
            "delta": source.delta,
            "examples": len(source.rows),
            "improved": len(source.improved()),
            "regressed": len(source.regressed()),
            "changed": len(source.changed()),
            "prompts": [
                {"name": name, "diff": [[op, clip(text)] for op, text in diff]}
                for name, diff in source.param_diffs().items()
            ],
        }

    def _rows(self) -> list[dict[str, Any]]:
        if isinstance(self.source, EvalResult):
            return [_result_row(row) for row in self.source.rows]
        return [_comparison_row(i, row) for i, row in enumerate(self.source.rows)]

    def _row(self, position: int, side: str) -> EvalRow:
        if isinstance(self.source, EvalResult):
            return self.source.row(position)
        if not 0 <= position < len(self.source.rows):
            raise ConfigError(f"no row {position} in this comparison")
        pair = self.source.rows[position]
        row = pair.after if side == "after" else pair.before
        if row is None:
            raise ConfigError(f"example {position} is not in the {side!r} evaluation")
        return row

    def open_row(self, position: int, side: str = "after") -> GraphView:
        """Show example ``position``'s run (``side`` of a comparison) in the graph below."""
        row = self._row(position, side)
        if row.result is not None:
            self.graph.show(row.result)
        elif row.stored_run is not None:
            self.graph.show(row.stored_run)
        else:
            raise ConfigError(f"example {position} has no run record to show")
        self.graph.selected = _focus(self.graph.node_states)
        self.graph.layout.display = None
        self.table.opened = {"row": position, "side": side, "error": ""}
        return self.graph

    def handle_message(self, content: Mapping[str, Any]) -> None:
        """A click in the table; problems are shown in the widget, not raised."""
        if content.get("type") != "open":
            return
        position, side = content.get("row"), str(content.get("side", "after"))
        try:
            if not isinstance(position, int):
                raise ConfigError(f"row must be an int; got {position!r:.40}")
            self.open_row(position, side)
        except (ConfigError, IndexError) as exc:
            self.table.opened = {"row": position, "side": side, "error": str(exc)}

    def __repr__(self) -> str:
        return f"EvalView({self.source!r})"
