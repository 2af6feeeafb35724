"""What the parts of `GraphRun` (`calls.py`, `growth.py`) may use of it: declarations only.

`GraphRun` (`scheduler.py`) sets these attributes and defines these methods;
its mixins inherit this class so that each is type-checked against one
statement of what the run holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plait.execution import events as ev
from plait.execution.pool import SlotPool
from plait.execution.result import NodeOverride, NodeRecord
from plait.graph import GraphNode
from plait.resources.manager import ResourceManager
from plait.values import Value


class RunBase:
    """The state and methods of `GraphRun` its mixins share."""

    manager: ResourceManager | None
    pool: SlotPool
    records: dict[str, NodeRecord]
    overrides: dict[str, NodeOverride]
    item: int | None
    now: Callable[[], float]
    emit: Callable[[ev.Event], None]  # events are made with ``item=self.item``
    _rank: dict[str, float]
    _age: float
    _tg: asyncio.TaskGroup | None  # open while the run executes

    if TYPE_CHECKING:

        def _drain(self, ready: list[str], made_here: bool = False) -> None: ...
        async def _run_llm(self, node: GraphNode) -> None: ...
        def _finish(
            self, nid: str, value: Value, status: str, error: BaseException | None = None
        ) -> list[str]: ...
        def _failed(self, nid: str, exc: BaseException) -> tuple[Any, ...]: ...
        def _skipped(self, nid: str, error: Value) -> tuple[Any, ...]: ...
        def _args(self, node: GraphNode) -> tuple[tuple[Any, ...], dict[str, Any]]: ...
        def _checkpoint_id(self, nid: str) -> str: ...
        def _resolve_leaf(self, leaf: Any) -> Any: ...
