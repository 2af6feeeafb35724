"""Running traced graphs: entry points, scheduler, results and the event stream."""

from plait.execution.args import Args
from plait.execution.batch import BatchProgress, run_batch, stream_batch
from plait.execution.events import Event
from plait.execution.observers import ObserverHandle, RunClock, add_run_observer
from plait.execution.result import BatchItem, NodeChange, NodeOverride, NodeRecord, RunResult
from plait.execution.run import execute, execute_sync, run, run_sync
from plait.execution.settings import ExecutionSettings

__all__ = [
    "Args",
    "BatchItem",
    "BatchProgress",
    "Event",
    "ExecutionSettings",
    "NodeChange",
    "NodeOverride",
    "NodeRecord",
    "ObserverHandle",
    "RunClock",
    "RunResult",
    "add_run_observer",
    "execute",
    "execute_sync",
    "run",
    "run_batch",
    "run_sync",
    "stream_batch",
]
