"""plait's Jupyter layer: the ``%%plait`` magic, the live graph explorer, optimizer review, reprs.

In a notebook::

    %load_ext plait_jupyter

    %%plait --resources resources
    result = await execute(pipeline, "text")   # drawn live, with a summary at the end

`GraphView` also works on its own: ``GraphView(result)``, ``GraphView(graph)``,
``GraphView(await run_batch(...))``, or ``on_event=view.on_event`` for a live run.
``OptimizerReview(optimizer)`` reviews an optimizer step: accept, edit or reject
each proposal, then apply. ``EvalView(result)`` / ``EvalView(before.compare(after))``
shows an evaluation or a comparison as a table whose rows open their graphs.
"""

from __future__ import annotations

from typing import Any

from plait_jupyter import reprs
from plait_jupyter.evaluation import EvalView
from plait_jupyter.graph_view import GraphView
from plait_jupyter.magics import PlaitMagics, transform_plait_cells
from plait_jupyter.progress import BatchProgressView
from plait_jupyter.review import OptimizerReview
from plait_jupyter.session import CellSession


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext plait_jupyter``: register the magics, the ``%%plait`` transform and the reprs."""
    shell.register_magics(PlaitMagics)
    if transform_plait_cells not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(transform_plait_cells)
    reprs.register(shell)


def unload_ipython_extension(shell: Any) -> None:
    if transform_plait_cells in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(transform_plait_cells)
    reprs.unregister(shell)


__all__ = [
    "BatchProgressView",
    "CellSession",
    "EvalView",
    "GraphView",
    "OptimizerReview",
    "PlaitMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
]
