"""The one seam where a lower floor calls up into a higher one.

plait's modules import only downward: values → parameter → module →
tracing/graph → execution/resources/clients → optimization/profiling →
plait_jupyter (``tests/test_layering.py`` checks every import). A few
conveniences on low-floor classes are implemented on a higher floor:

- ``Module.bind`` builds `ExecutionSettings`, and a bound module's call runs
  through `plait.execution.run.run`;
- ``RunResult.rerun`` / ``rerun_sync`` / ``diff`` / ``adopt`` live in
  `plait.execution.rerun`, which builds on the runner that makes RunResults;
- ``RunResult.build_profile`` makes a `plait.profiling.Profile`;
- the ``store`` run option saves runs and batches with `plait.evaluation.runs`;
- ``plait.functional.chat_complete`` is an `LLMInference` call
  (`plait.inference.ChatComplete`), which sits on the execution floor;
- ``_repr_html_`` of plait's classes renders with `plait_jupyter.reprs`
  when that optional package is installed (no ``%load_ext`` needed).

`UPCALLS` names where each implementation lives, and `upcall` imports it when
the call is made, never at import time: nothing is registered as a side effect
of importing something else, so each of these works after importing only the
module that defines it. The layering test reads `UPCALLS` and checks that
every entry exists and sits on a floor above the seam's callers.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

# Call name -> (module, attribute) implementing it.
UPCALLS: dict[str, tuple[str, str]] = {
    "run": ("plait.execution.run", "run"),
    "chat_complete": ("plait.inference", "chat_complete"),
    "execution_settings": ("plait.execution.settings", "ExecutionSettings"),
    "rerun": ("plait.execution.rerun", "rerun"),
    "rerun_sync": ("plait.execution.rerun", "rerun_sync"),
    "diff": ("plait.execution.rerun", "diff"),
    "adopt": ("plait.execution.rerun", "adopt"),
    "profile": ("plait.profiling.profile", "Profile"),
    "run_recorder": ("plait.evaluation.runs", "recorder"),
    "notebook_html": ("plait_jupyter.reprs", "html_of"),
    "ray_backend": ("plait.ray", "default_backend"),
}


def upcall(name: str) -> Callable[..., Any]:
    """The implementation of call ``name`` (see `UPCALLS`), imported now if it was not yet."""
    module, attribute = UPCALLS[name]
    return getattr(importlib.import_module(module), attribute)


def notebook_html(obj: Any) -> str | None:
    """``obj`` as notebook HTML from `plait_jupyter.reprs`, or None (the plain repr) without it.

    The ``_repr_html_`` of plait's main classes call this, so notebooks show
    the rich reprs without ``%load_ext plait_jupyter``; without the optional
    package (or its own dependencies) Jupyter falls back to the text repr.
    """
    if importlib.util.find_spec("plait_jupyter") is None:
        return None
    try:
        html_of = upcall("notebook_html")
    except ImportError:  # plait_jupyter present but its extras (anywidget...) are not
        return None
    result: str | None = html_of(obj)
    return result
