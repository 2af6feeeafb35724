"""Where a run's time went, from its event stream alone.

`build_timeline` turns the events of a run (or of a whole batch) into
intervals: attempts on endpoint slots, waits, local runs, retries. Every
view reads that `Timeline`: `chrome_trace` (Perfetto / chrome://tracing),
`analyze` (a `BubbleReport`: busy and idle time per slot, idle by cause, the
critical path, the largest bubbles) and the plotly figures in `plots`.
`Profile` bundles them; ``execute(..., profile=True)`` keeps one as
``result.profile``, and ``RunResult.bubbles()`` / ``.chrome_trace()`` /
``.plot_timeline()`` delegate to it.

    result = await execute(pipeline, "text", resources=resources, profile=True)
    print(result.profile.bubbles().summary())
"""

from plait.profiling.bubbles import (
    IDLE_CAUSES,
    Bubble,
    BubbleReport,
    EndpointUsage,
    SlotState,
    SlotUsage,
    analyze,
)
from plait.profiling.plots import plot_bubbles, plot_timeline, plot_utilization, save_html
from plait.profiling.profile import Profile
from plait.profiling.timeline import (
    Attempt,
    LocalRun,
    RetryMark,
    Timeline,
    Wait,
    build_timeline,
)
from plait.profiling.trace_events import chrome_trace, save_chrome_trace

__all__ = [
    "IDLE_CAUSES",
    "Attempt",
    "Bubble",
    "BubbleReport",
    "EndpointUsage",
    "LocalRun",
    "Profile",
    "RetryMark",
    "SlotState",
    "SlotUsage",
    "Timeline",
    "Wait",
    "analyze",
    "build_timeline",
    "chrome_trace",
    "plot_bubbles",
    "plot_timeline",
    "plot_utilization",
    "save_chrome_trace",
    "save_html",
]
