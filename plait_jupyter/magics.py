"""The ``%%plait`` cell magic and the ``%plait`` line magic.

A ``%%plait`` cell runs its body like any cell (magics, top-level ``await``,
the last expression displayed) inside an `ExecutionSettings` whose ``on_event``
feeds a `CellSession`, so every run the body starts is drawn live.

To let the body ``await`` on the kernel's own event loop, an input transformer
rewrites a ``%%plait`` cell before IPython sees it into one awaited call::

    await get_ipython().magics_manager.registry['PlaitMagics'].run_cell('--quiet', '<body>')

IPython's autoawait then runs the cell as a coroutine. Called any other way
(``run_cell_magic``, or with autoawait off), the magic runs the same coroutine
to completion itself (re-entering a running loop through nest-asyncio, as
`plait.run_sync` does).

With ``--review``, after the body the cell shows an `OptimizerReview` of
every `Optimizer` bound to a notebook variable whose ``propose()`` (or
``step()``) ran during the cell — its step count went up — and nothing if
none did.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from IPython import get_ipython
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Pretty

from plait.execution.result import RunResult
from plait.execution.run import run_blocking
from plait.execution.settings import ExecutionSettings, active_settings
from plait_jupyter.review import OptimizerReview, optimizer_steps, proposed_since
from plait_jupyter.session import CellSession

LINE_COMMANDS = ("status", "last", "settings")
_PREFIX = "%%plait"


def transform_plait_cells(lines: list[str]) -> list[str]:
    """IPython cleanup transform: a ``%%plait`` cell becomes one awaited call (see module doc)."""
    if not lines:
        return lines
    first = lines[0]
    if not first.startswith(_PREFIX) or first[len(_PREFIX) :][:1] not in ("", " ", "\t", "\n"):
        return lines
    shell = get_ipython()
    if shell is None or not shell.autoawait:
        return lines  # the plain cell magic handles it
    line = first[len(_PREFIX) :].strip()
    body = "".join(lines[1:])
    return [
        f"await get_ipython().magics_manager.registry['PlaitMagics'].run_cell({line!r}, {body!r})\n"
    ]


async def run_body(shell: Any, body: str) -> bool:
    """Run ``body`` as IPython runs a cell; returns True if it raised (the traceback is shown)."""
    cell = shell.transform_cell(body)
    compiler = shell.compile
    name = compiler.cache(cell, shell.execution_count, raw_code=body)
    result = shell.displayhook.exec_result
    if result is None:  # not inside a cell (called from a script or a test)
        result = ExecutionResult(ExecutionInfo(body, False, False, True, None))
    try:
        tree = shell.transform_ast(compiler.ast_parse(cell, filename=name))
    except SyntaxError as exc:
        shell.showsyntaxerror(filename=name)
        result.error_in_exec = exc
        return True
    return await shell.run_ast_nodes(
        tree.body,
        name,
        interactivity=shell.ast_node_interactivity,
        compiler=compiler,
        result=result,
    )


@magics_class
class PlaitMagics(Magics):
    """``%%plait`` runs a cell with a live graph explorer per run; ``%plait`` reports on them."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.history: list[RunResult] = []
        self.last_cell: CellSession | None = None
        self.last_reviews: list[OptimizerReview] = []
        self.cells = 0

    def _user_ns(self) -> dict[str, Any]:
        shell = self.shell
        assert shell is not None  # IPython sets it when it registers the magics
        namespace: dict[str, Any] = shell.user_ns
        return namespace

    @magic_arguments()
    @argument(
        "command",
        nargs="?",
        help="line magic only: status (default), last (returns the last RunResult), settings",
    )
    @argument(
        "--resources",
        metavar="NAME_OR_TOML_PATH",
        help="a ResourceConfig (or dict) variable of the notebook, or a .toml file, for every run "
        "of the cell (default: what the cell passes, or the active ExecutionSettings)",
    )
    @argument("--profile", action="store_true", help="show the timeline and bubble plots")
    @argument("--quiet", action="store_true", help="no live views, only a summary line per run")
    @argument(
        "--review",
        action="store_true",
        help="training cell: afterwards, an OptimizerReview of every Optimizer variable whose "
        "propose() ran in the cell",
    )
    @line_cell_magic
    def plait(self, line: str, cell: str | None = None) -> Any:
        """Run a cell and show every plait run in it live (cell); report on runs (line)."""
        if cell is None:
            return self._line(line)
        return run_blocking(self.run_cell(line, cell))

    def _parse(self, line: str) -> argparse.Namespace:
        try:
            return parse_argstring(self.plait, line)
        except UsageError as exc:
            raise UsageError(f"%%plait {line}: {exc}") from None

    async def run_cell(self, line: str, body: str) -> None:
        """Run a ``%%plait`` cell: ``line`` holds its options, ``body`` its code."""
        args = self._parse(line)
        if args.command is not None:
            raise UsageError(
                f"%%plait takes options only, got {args.command!r}; "
                "options: --resources NAME_OR_TOML_PATH, --profile, --quiet, --review"
            )
        resources = self._resources(args.resources)
        session = CellSession(quiet=args.quiet, profile=args.profile, review=args.review)
        self.last_cell = session
        self.last_reviews = []
        self.cells += 1
        before = optimizer_steps(self._user_ns()) if args.review else None
        async with ExecutionSettings(resources=resources, on_event=session.on_event):
            await run_body(self.shell, body)
        session.finish()
        self.history.extend(session.results)
        if before is not None:
            # Shown even if the body raised after proposing: the proposals are there to review.
            self.last_reviews = [
                OptimizerReview(optimizer) for optimizer in proposed_since(self._user_ns(), before)
            ]
            for review in self.last_reviews:
                session.show(review)

    def _resources(self, name: str | None) -> Any:
        if name is None:
            return None
        namespace = self._user_ns()
        if name in namespace:
            return namespace[name]
        if name.endswith(".toml") and os.path.isfile(name):
            return name
        raise UsageError(
            f"--resources {name!r}: no variable named {name!r} in the notebook and no .toml file at "
            "that path; pass the name of a ResourceConfig (or dict) variable, or a path to a .toml file"
        )

    def _line(self, line: str) -> Any:
        args = self._parse(line)
        command = args.command or "status"
        if command not in LINE_COMMANDS:
            raise UsageError(
                f"%plait {command}: unknown command; use one of {', '.join(LINE_COMMANDS)}"
            )
        if command == "last":
            if not self.history:
                raise UsageError("%plait last: no %%plait cell has finished a run yet")
            return self.history[-1]
        if command == "settings":
            return Pretty(self.settings_text())
        return Pretty(self.status_text())

    def status_text(self) -> str:
        last = repr(self.history[-1]) if self.history else "none"
        return (
            f"plait_jupyter: %%plait ready; {self.cells} cell{'s' if self.cells != 1 else ''} run, "
            f"{len(self.history)} run result{'s' if len(self.history) != 1 else ''} kept\n"
            f"last run: {last}\n"
            f"active ExecutionSettings: {len(active_settings())}"
        )

    def settings_text(self) -> str:
        active = active_settings()
        lines = [f"active ExecutionSettings ({len(active)}, outermost first):"]
        lines += [f"  {settings!r}" for settings in active] or ["  none"]
        lines.append("%%plait options: --resources NAME_OR_TOML_PATH, --profile, --quiet, --review")
        return "\n".join(lines)
