"""Chrome Trace Event JSON of a `Timeline`, for Perfetto (ui.perfetto.dev) and chrome://tracing.

Layout: one process per endpoint (``"fast (4 slots)"``) with one thread per
concurrency slot (``"slot 0"``, tid = slot + 1) and a ``"waits"`` thread (tid
0) carrying its async spans and counters; one ``"local"`` process with a
thread per lane for ops and leaf modules. Events, timestamps in µs from the
run's start:

- ``X`` per attempt (args: node, module path, attempt, outcome, tokens, cost,
  seconds in the rate limiter, error) and per local node;
- ``i`` per failed attempt that is retried, named "429 rate limited" or "retry";
- ``b``/``e`` async spans (``cat``: queue, rate_limit, backoff) per wait;
- ``C`` counters "in flight" (slots held) and "queued" (nodes waiting for a slot).
"""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

from plait.profiling.timeline import Timeline

_SPAN_NAMES = {"queue": "queued", "rate_limit": "rate-limit wait", "backoff": "retry backoff"}
_CNAMES = {"retry": "bad", "failed": "terrible", "cancelled": "grey"}


def _us(t: float) -> float:
    return round(t * 1e6, 3)


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "ts": 0, "args": args}


def _complete(
    name: str, cat: str, pid: int, tid: int, start: float, end: float, args: dict
) -> dict:
    ts = _us(start)
    return {
        "ph": "X",
        "name": name,
        "cat": cat,
        "pid": pid,
        "tid": tid,
        "ts": ts,
        "dur": max(0.0, round(_us(end) - ts, 3)),
        "args": args,
    }


def _counters(
    pid: int, name: str, changes: list[tuple[float, int]], end: float
) -> list[dict[str, Any]]:
    """One ``C`` event per distinct time the count changes, starting at 0."""
    out = [{"ph": "C", "name": name, "pid": pid, "tid": 0, "ts": 0.0, "args": {"value": 0}}]
    value = 0
    changes.sort()
    for i, (t, delta) in enumerate(changes):
        value += delta
        if i + 1 < len(changes) and changes[i + 1][0] == t:
            continue  # several changes at one instant: report where they land
        event = {"ph": "C", "name": name, "pid": pid, "tid": 0, "ts": _us(min(t, end))}
        out.append({**event, "args": {"value": value}})
    return out


def chrome_trace(timeline: Timeline) -> dict[str, Any]:
    """The trace as a JSON-able dict: ``{"traceEvents": [...], "displayTimeUnit": "ms", ...}``."""
    meta: list[dict[str, Any]] = []
    body: list[dict[str, Any]] = []
    pids = {alias: i + 1 for i, alias in enumerate(timeline.endpoints)}
    for alias, slots in timeline.endpoints.items():
        pid = pids[alias]
        meta.append(_meta("process_name", pid, 0, {"name": f"{alias} ({slots} slots)"}))
        meta.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
        meta.append(_meta("thread_name", pid, 0, {"name": "waits"}))
        meta.append(_meta("thread_sort_index", pid, 0, {"sort_index": slots}))
        for slot in range(slots):
            meta.append(_meta("thread_name", pid, slot + 1, {"name": f"slot {slot}"}))
            meta.append(_meta("thread_sort_index", pid, slot + 1, {"sort_index": slot}))
    in_flight: dict[str, list[tuple[float, int]]] = {alias: [] for alias in pids}
    queued: dict[str, list[tuple[float, int]]] = {alias: [] for alias in pids}
    for a in timeline.attempts:
        args = {
            "node": a.key,
            "module_path": a.module_path,
            "item": a.item,
            "attempt": a.attempt,
            "outcome": a.outcome,
            "input_tokens": a.input_tokens,
            "output_tokens": a.output_tokens,
            "cost": a.cost,
            "rate_limit_wait_s": a.wait_end - a.wait_start,
        }
        if a.error:
            args["error"] = a.error
        event = _complete(a.module_path, "llm", pids[a.endpoint], a.slot + 1, a.start, a.end, args)
        if a.outcome in _CNAMES:
            event["cname"] = _CNAMES[a.outcome]
        body.append(event)
        in_flight[a.endpoint] += [(a.start, 1), (a.end, -1)]
    for r in timeline.retries:
        body.append(
            {
                "ph": "i",
                "s": "t",
                "name": "429 rate limited" if r.status == 429 else "retry",
                "cat": "retry",
                "pid": pids[r.endpoint],
                "tid": r.slot + 1,
                "ts": _us(r.time),
                "args": {
                    "node": r.key,
                    "attempt": r.attempt,
                    "error": r.error,
                    "status": r.status,
                    "backoff_s": r.delay,
                },
            }
        )
    span_id = 0
    for w in timeline.waits:
        if w.kind not in _SPAN_NAMES:
            continue
        span_id += 1
        common: dict[str, Any] = {
            "name": _SPAN_NAMES[w.kind],
            "cat": w.kind,
            "id": f"0x{span_id:x}",
        }
        common |= {"pid": pids[w.endpoint], "tid": 0}
        args = {"node": w.key, "module_path": w.module_path, "slot": w.slot}
        body.append({"ph": "b", **common, "ts": _us(w.start), "args": args})
        body.append({"ph": "e", **common, "ts": _us(w.end)})
        if w.kind == "queue":
            queued[w.endpoint] += [(w.start, 1), (w.end, -1)]
    for alias, pid in pids.items():
        body += _counters(pid, "in flight", in_flight[alias], timeline.makespan)
        body += _counters(pid, "queued", queued[alias], timeline.makespan)
    if timeline.local:
        pid = len(pids) + 1
        meta.append(_meta("process_name", pid, 0, {"name": "local (ops and modules)"}))
        meta.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
        for lane in range(timeline.local_lanes):
            meta.append(_meta("thread_name", pid, lane + 1, {"name": f"local {lane}"}))
        for run in timeline.local:
            args = {"node": run.key, "kind": run.kind, "item": run.item, "outcome": run.outcome}
            body.append(
                _complete(run.module_path, run.kind, pid, run.lane + 1, run.start, run.end, args)
            )
    body.sort(key=lambda e: e["ts"])  # stable: a span's b stays before its e
    return {
        "traceEvents": meta + body,
        "displayTimeUnit": "ms",
        "otherData": {"makespan_s": timeline.makespan, "status": timeline.status},
    }


def save_chrome_trace(timeline: Timeline, path: str | PathLike[str]) -> Path:
    """Write `chrome_trace` as JSON to ``path`` (open it at ui.perfetto.dev); returns the path."""
    target = Path(path)
    target.write_text(json.dumps(chrome_trace(timeline)), encoding="utf-8")
    return target
