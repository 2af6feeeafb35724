"""Stock modules: the common control-flow patterns, written on ``async def forward``.

Each is a short file meant to be read as an example as much as used:

- `ToolAgent` (``agent.py``): model → tools → model ... until it answers;
- `Refine` (``refine.py``): draft, verify, redraft until the verifier passes;
- `MapList` (``map.py``): split into a list at run time, one call per element, join.

Every call they make is a node of the run, with control edges from the replies
that decided it, so ``RunResult.graph`` shows exactly the path taken. A loop
that runs out of steps raises `LoopLimitError`.
"""

from plait.errors import LoopLimitError
from plait.stock.agent import ToolAgent, tool_schema
from plait.stock.map import LIST_SCHEMA, MapList
from plait.stock.refine import VERDICT_SCHEMA, Refine

__all__ = [
    "LIST_SCHEMA",
    "VERDICT_SCHEMA",
    "LoopLimitError",
    "MapList",
    "Refine",
    "ToolAgent",
    "tool_schema",
]
