"""Bubble analysis: what every endpoint slot did at every moment of a run, and why it idled.

A slot is *busy* while an attempt holds it and its request is in flight.
Every other moment of the makespan is idle time with exactly one cause:

- ``rate_limit``: the slot is held by an attempt waiting for the endpoint's
  rate limiter (rpm/tpm, or the pause after a 429);
- ``global_cap``: the slot is free while work for its endpoint waits for a
  slot, which happens when the run's global ``max_concurrent`` is used up by
  other endpoints (without a global cap this only collects the event-loop
  handoff between one attempt releasing a slot and the next one starting);
- ``backoff``: the slot is free while a node of its endpoint sleeps before
  retrying;
- ``dependency``: the slot is free while nodes of its endpoint are not ready
  yet because work upstream of them is still running;
- ``no_work``: the slot is free and its endpoint has nothing queued, backing
  off or still to come (its work is done, or being done on other slots).

Free slots are attributed lowest slot number first (the order the scheduler
hands them out), in the order above: ``q`` nodes queued for a slot account
for ``q`` free slots, then ``b`` nodes in backoff for the next ``b``, then
``u`` nodes waiting upstream for the next ``u``; the rest have no work. So per
slot, busy time plus the idle causes add up to the makespan exactly.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from plait.profiling.timeline import Timeline, node_key

IDLE_CAUSES = ("dependency", "rate_limit", "backoff", "global_cap", "no_work")
_FREE_ORDER = ("global_cap", "backoff", "dependency")  # nearest-to-running work first
_COUNTED = {"queue": "global_cap", "backoff": "backoff", "upstream": "dependency"}


@dataclass(frozen=True, slots=True)
class SlotState:
    """A stretch of one slot in one state ("busy" or an idle cause); ``key`` is the node holding it."""

    state: str
    start: float
    end: float
    key: str | None = None


@dataclass(frozen=True, slots=True)
class SlotUsage:
    """Busy and idle seconds of one slot over the makespan."""

    endpoint: str
    slot: int
    busy: float
    idle: float
    idle_by_cause: dict[str, float]

    @property
    def utilization(self) -> float:
        total = self.busy + self.idle
        return self.busy / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class EndpointUsage:
    """Busy and idle slot-seconds of one endpoint, summed over all its configured slots."""

    endpoint: str
    slots: int
    busy: float
    idle: float
    idle_by_cause: dict[str, float]

    @property
    def utilization(self) -> float:
        total = self.busy + self.idle
        return self.busy / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Bubble:
    """A maximal idle stretch of one slot with one cause, and the nodes busy on it before and after."""

    endpoint: str
    slot: int
    start: float
    end: float
    cause: str
    before: str | None
    after: str | None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True, eq=False)
class BubbleReport:
    """Where the slot time of a run went. Times in seconds; utilisations in 0-1.

    ``critical_path`` is the heaviest dependency chain under measured node
    durations (first start to finish, so retries and limiter waits count and
    queueing for a slot does not); ``largest_bubbles`` lists every bubble,
    longest first.
    """

    makespan: float
    busy: float
    idle: float
    idle_by_cause: dict[str, float]
    endpoints: dict[str, EndpointUsage]
    slots: tuple[SlotUsage, ...]
    critical_path: list[str]
    critical_path_length: float
    largest_bubbles: tuple[Bubble, ...]
    slot_states: dict[tuple[str, int], tuple[SlotState, ...]]

    @property
    def utilization(self) -> float:
        total = self.busy + self.idle
        return self.busy / total if total > 0 else 0.0

    @property
    def critical_path_share(self) -> float:
        """The critical path's length as a fraction of the makespan (1.0: latency-bound)."""
        return self.critical_path_length / self.makespan if self.makespan > 0 else 0.0

    def to_dataframe(self) -> Any:
        """One row per slot: endpoint, slot, busy, idle, one column per cause, utilization."""
        import pandas as pd  # optional extra: plait[jupyter]

        return pd.DataFrame(
            [
                {
                    "endpoint": s.endpoint,
                    "slot": s.slot,
                    "busy": s.busy,
                    "idle": s.idle,
                    **s.idle_by_cause,
                    "utilization": s.utilization,
                }
                for s in self.slots
            ],
            columns=["endpoint", "slot", "busy", "idle", *IDLE_CAUSES, "utilization"],
        )

    def bubbles_dataframe(self) -> Any:
        """One row per bubble, longest first."""
        import pandas as pd  # optional extra: plait[jupyter]

        return pd.DataFrame(
            [
                {
                    "endpoint": b.endpoint,
                    "slot": b.slot,
                    "start": b.start,
                    "end": b.end,
                    "duration": b.duration,
                    "cause": b.cause,
                    "before": b.before,
                    "after": b.after,
                }
                for b in self.largest_bubbles
            ],
            columns=["endpoint", "slot", "start", "end", "duration", "cause", "before", "after"],
        )

    def summary(self, bubbles: int = 5) -> str:
        """A few lines of text: utilisation, critical path, idle by cause, the largest bubbles."""
        slots = sum(e.slots for e in self.endpoints.values())
        lines = [
            f"makespan {self.makespan:.3f}s, utilization {self.utilization:.0%} "
            f"({len(self.endpoints)} endpoint(s), {slots} slot(s))",
            f"critical path {self.critical_path_length:.3f}s "
            f"({self.critical_path_share:.0%} of makespan): {' -> '.join(self.critical_path) or '-'}",
            f"idle {self.idle:.3f} slot-s: {_causes(self.idle_by_cause, self.idle)}",
        ]
        for e in self.endpoints.values():
            lines.append(
                f"  {e.endpoint}: {e.slots} slot(s), busy {e.busy:.3f}s, utilization "
                f"{e.utilization:.0%}; idle {_causes(e.idle_by_cause, e.idle)}"
            )
        if self.largest_bubbles[:bubbles]:
            lines.append("largest bubbles:")
        for b in self.largest_bubbles[:bubbles]:
            lines.append(
                f"  {b.endpoint} slot {b.slot}: {b.start:.3f}-{b.end:.3f}s ({b.duration:.3f}s) "
                f"{b.cause}, after {b.before or 'start'}, before {b.after or 'end'}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"BubbleReport(makespan={self.makespan:.3f}s, utilization={self.utilization:.0%}, "
            f"idle={self.idle:.3f} slot-s, critical_path={self.critical_path_length:.3f}s)"
        )


def _causes(by_cause: dict[str, float], total: float) -> str:
    shown = [f"{c} {v:.3f}s ({v / total:.0%})" for c, v in by_cause.items() if v > 0]
    return ", ".join(shown) if shown else "none"


def _held_states(timeline: Timeline) -> dict[tuple[str, int], list[SlotState]]:
    """Busy and rate-limit stretches of every slot, in time order."""
    held: dict[tuple[str, int], list[SlotState]] = defaultdict(list)
    for a in timeline.attempts:
        parts = [
            ("busy", a.start, a.wait_start),
            ("rate_limit", a.wait_start, a.wait_end),
            ("busy", a.wait_end, a.end),
        ]
        held[(a.endpoint, a.slot)].extend(
            SlotState(state, s, e, a.key) for state, s, e in parts if e > s
        )
    for states in held.values():
        states.sort(key=lambda s: s.start)
    return held


def _endpoint_states(
    timeline: Timeline, endpoint: str, held: dict[tuple[str, int], list[SlotState]]
) -> list[list[SlotState]]:
    """Sweep one endpoint's slots over [0, makespan], attributing every free moment to a cause."""
    end = timeline.makespan
    capacity = timeline.endpoints[endpoint]
    slots = [held.get((endpoint, s), []) for s in range(capacity)]
    changes: list[tuple[float, str, int]] = []
    for w in timeline.waits:
        if w.endpoint == endpoint and w.kind in _COUNTED:
            changes += [(w.start, _COUNTED[w.kind], 1), (w.end, _COUNTED[w.kind], -1)]
    changes.sort()
    moments = {0.0, end, *(t for t, _, _ in changes)}
    moments.update(t for states in slots for s in states for t in (s.start, s.end))
    points = sorted(t for t in moments if 0.0 <= t <= end)
    counts = dict.fromkeys(_FREE_ORDER, 0)
    runs: list[list[list[Any]]] = [[] for _ in range(capacity)]  # [state, start, end, key]
    cursor = [0] * capacity
    change = 0
    for a, b in itertools.pairwise(points):
        while change < len(changes) and changes[change][0] <= a:
            counts[changes[change][1]] += changes[change][2]
            change += 1
        free: list[int] = []
        for slot, states in enumerate(slots):
            i = cursor[slot]
            while i < len(states) and states[i].end <= a:
                i += 1
            cursor[slot] = i
            if i < len(states) and states[i].start <= a:
                _extend(runs[slot], states[i].state, a, b, states[i].key)
            else:
                free.append(slot)
        for cause in _FREE_ORDER:
            take, free = free[: counts[cause]], free[counts[cause] :]
            for slot in take:
                _extend(runs[slot], cause, a, b, None)
        for slot in free:
            _extend(runs[slot], "no_work", a, b, None)
    return [[SlotState(*run) for run in slot_runs] for slot_runs in runs]


def _extend(runs: list[list[Any]], state: str, a: float, b: float, key: str | None) -> None:
    last = runs[-1] if runs else None
    if last is not None and last[0] == state and last[3] == key and last[2] == a:
        last[2] = b
    else:
        runs.append([state, a, b, key])


def _bubbles(endpoint: str, slot: int, states: list[SlotState]) -> list[Bubble]:
    before: list[str | None] = []
    last: str | None = None
    for s in states:
        before.append(last)
        if s.state == "busy":
            last = s.key
    after: list[str | None] = [None] * len(states)
    nxt: str | None = None
    for i in range(len(states) - 1, -1, -1):
        after[i] = nxt
        if states[i].state == "busy":
            nxt = states[i].key
    # A limiter wait belongs to the attempt that holds the slot: that node comes next.
    return [
        Bubble(
            endpoint,
            slot,
            s.start,
            s.end,
            s.state,
            before[i],
            s.key if s.state == "rate_limit" else after[i],
        )
        for i, s in enumerate(states)
        if s.state != "busy"
    ]


def critical_path(timeline: Timeline) -> tuple[list[str], float]:
    """The heaviest chain over all items' graphs, with measured durations; node keys as in the timeline."""
    best: tuple[list[str], float] = ([], 0.0)
    for item, graph in timeline.graphs.items():
        measured = timeline.durations
        durations = {
            n: measured[node_key(n, item)] for n in graph.nodes if node_key(n, item) in measured
        }
        path, length = graph.critical_path(durations)
        if length > best[1] or not best[0]:
            best = ([node_key(n, item) for n in path], length)
    return best


def analyze(timeline: Timeline) -> BubbleReport:
    """The `BubbleReport` of ``timeline``: per-slot states, usage by endpoint, bubbles, critical path."""
    held = _held_states(timeline)
    slot_states: dict[tuple[str, int], tuple[SlotState, ...]] = {}
    slots: list[SlotUsage] = []
    endpoints: dict[str, EndpointUsage] = {}
    bubbles: list[Bubble] = []
    for endpoint, capacity in timeline.endpoints.items():
        totals = dict.fromkeys(IDLE_CAUSES, 0.0)
        busy_total = 0.0
        for slot, states in enumerate(_endpoint_states(timeline, endpoint, held)):
            slot_states[(endpoint, slot)] = tuple(states)
            by_cause = dict.fromkeys(IDLE_CAUSES, 0.0)
            busy = 0.0
            for s in states:
                if s.state == "busy":
                    busy += s.end - s.start
                else:
                    by_cause[s.state] += s.end - s.start
            slots.append(SlotUsage(endpoint, slot, busy, sum(by_cause.values()), by_cause))
            busy_total += busy
            for cause, seconds in by_cause.items():
                totals[cause] += seconds
            bubbles.extend(_bubbles(endpoint, slot, states))
        endpoints[endpoint] = EndpointUsage(
            endpoint, capacity, busy_total, sum(totals.values()), totals
        )
    idle_by_cause = {c: sum(e.idle_by_cause[c] for e in endpoints.values()) for c in IDLE_CAUSES}
    path, length = critical_path(timeline)
    return BubbleReport(
        makespan=timeline.makespan,
        busy=sum(e.busy for e in endpoints.values()),
        idle=sum(idle_by_cause.values()),
        idle_by_cause=idle_by_cause,
        endpoints=endpoints,
        slots=tuple(slots),
        critical_path=path,
        critical_path_length=length,
        largest_bubbles=tuple(sorted(bubbles, key=lambda b: (-b.duration, b.start, b.endpoint))),
        slot_states=slot_states,
    )
