"""Hand-built event streams and small pipelines for the profiling tests.

    s = Stream()
    s.call("a", start=0, end=1)                      # queued, started, completed on "fast" slot 0
    s.call("b", start=1, end=2, queued=0, slot=1)     # waited for a slot from t=0
    events = s.finish(3)                              # sorted by time, run_finished last

Every event is exactly what `GraphRun` would emit for that schedule, so the
numbers a test asserts can be worked out by hand.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import defaultdict

import pytest

from plait import LLMInference, Module, ResourceConfig
from plait.clients.base import Usage
from plait.execution import events as ev


class Stream:
    """Builds the event stream of a run whose schedule is written down by hand."""

    def __init__(self, *inputs: str, item: int | None = None) -> None:
        self.events: list[ev.Event] = [ev.RunStarted(0.0, None)]
        self.item = item
        for name in inputs:
            self.add(ev.NodeCompleted(0.0, name, None, 0))

    def add(self, event: ev.Event) -> None:
        if self.item is not None:
            object.__setattr__(event, "item", self.item)
        self.events.append(event)

    def call(
        self,
        node: str,
        *,
        start: float,
        end: float,
        queued: float | None = None,
        slot: int = 0,
        endpoint: str = "fast",
        wait: float = 0.0,
        attempt: int = 1,
        tokens: tuple[int, int] = (10, 5),
        cost: float = 0.0,
    ) -> None:
        """One successful attempt: queued, a slot from ``start``, an optional rate-limit wait, sent, done.

        As the scheduler emits them: the slot and limiter waits are reported when
        they end, and ``node_started`` when the request goes out (``start + wait``).
        """
        self.slot_and_limiter(node, start, queued, slot, endpoint, wait, attempt)
        self.add(ev.NodeUsage(end, node, endpoint, Usage(*tokens), cost))
        self.add(ev.NodeCompleted(end, node, endpoint, attempt))

    def failed_attempt(
        self,
        node: str,
        *,
        start: float,
        end: float,
        delay: float,
        status: int = 500,
        queued: float | None = None,
        slot: int = 0,
        endpoint: str = "fast",
        attempt: int = 1,
    ) -> None:
        """An attempt that fails at ``end`` and backs off ``delay`` s (the next `call` retries)."""
        self.slot_and_limiter(node, start, queued, slot, endpoint, 0.0, attempt)
        error = "RateLimitError: 429" if status == 429 else f"TransientError: HTTP {status}"
        self.add(ev.NodeRetry(end, node, endpoint, attempt, error, delay, status))
        self.add(ev.NodeWaiting(end + delay, node, endpoint, "backoff", delay))

    def slot_and_limiter(
        self,
        node: str,
        start: float,
        queued: float | None,
        slot: int,
        endpoint: str,
        wait: float,
        attempt: int,
    ) -> None:
        if attempt == 1:
            self.add(ev.NodeQueued(start if queued is None else queued, node, endpoint))
        if queued is not None and start > queued:
            self.add(ev.NodeWaiting(start, node, endpoint, "slot", start - queued, slot=slot))
        if wait:
            self.add(ev.NodeWaiting(start + wait, node, endpoint, "rate_limit", wait, slot=slot))
        self.add(ev.NodeStarted(start + wait, node, endpoint, attempt, slot))

    def local(self, node: str, *, start: float, end: float) -> None:
        """A non-LLM node (an async op) running in-process."""
        self.add(ev.NodeQueued(start, node, None))
        self.add(ev.NodeStarted(start, node))
        self.add(ev.NodeCompleted(end, node, None, 1))

    def finish(self, makespan: float, status: str = "done") -> list[ev.Event]:
        body = sorted(self.events[1:], key=lambda e: e.time)
        return [self.events[0], *body, ev.RunFinished(makespan, None, status)]


def merge(*streams: Stream, makespan: float) -> list[ev.Event]:
    """One batch stream from per-item streams, in time order."""
    body = sorted((e for s in streams for e in s.events[1:]), key=lambda e: e.time)
    return [ev.RunStarted(0.0, None), *body, ev.RunFinished(makespan, None)]


class ThreeSteps(Module):
    """x -> a -> b -> c, all on "fast"."""

    def __init__(self) -> None:
        super().__init__()
        self.a = LLMInference("fast", system_prompt="A")
        self.b = LLMInference("fast", system_prompt="B")
        self.c = LLMInference("fast", system_prompt="C")

    def forward(self, x):
        return self.c(self.b(self.a(x)))


class FanOut(Module):
    """x -> b0..b{width-1} -> join, all on ``alias``."""

    def __init__(self, width: int = 4, alias: str = "fast") -> None:
        super().__init__()
        for i in range(width):
            setattr(self, f"b{i}", LLMInference(alias, system_prompt=f"Angle {i}"))
        self.width = width
        self.join = LLMInference(alias, system_prompt="Combine.")

    def forward(self, x):
        parts = [getattr(self, f"b{i}")(x) for i in range(self.width)]
        return self.join("\n".join(parts))


class Review(Module):
    """A realistic two-endpoint pipeline: summarize on "fast", three critics on "smart", a verdict."""

    def __init__(self) -> None:
        super().__init__()
        self.summarize = LLMInference("fast", system_prompt="Summarize the input.")
        self.critics = [LLMInference("smart", system_prompt=f"Critic {i}") for i in range(3)]
        for i, critic in enumerate(self.critics):
            setattr(self, f"critic{i}", critic)
        self.verdict = LLMInference("fast", system_prompt="Decide.")

    def forward(self, text):
        summary = self.summarize(text)
        notes = [critic(f"Review: {summary}") for critic in self.critics]
        return self.verdict("\n".join(notes))


REQUIRED = ("ph", "ts", "pid", "tid", "name")


def faulty_resources(**smart: object) -> ResourceConfig:
    """Two simulated endpoints; "smart" has an rpm limit, a 5xx and a 429 on first sight."""
    faults = [
        {
            "kind": "server_error",
            "status": 503,
            "attempts": "first",
            "match": {"system": "Critic 0"},
        },
        {
            "kind": "rate_limit",
            "retry_after": 0.5,
            "attempts": "first",
            "match": {"system": "Critic 1"},
        },
    ]
    return ResourceConfig(
        {
            "fast": {"provider": "simulated", "latency": 0.2, "max_concurrent": 2},
            "smart": {
                "provider": "simulated",
                "latency": 0.3,
                "max_concurrent": 2,
                "rpm": 120,
                "faults": faults,
                **smart,
            },
        }
    )


def check_trace_format(trace: dict) -> dict[str, list[dict]]:
    """Assert what Perfetto and chrome://tracing rely on; returns the events by phase."""
    json.dumps(trace)  # JSON-serialisable as is
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    by_phase = defaultdict(list)
    for e in events:
        assert all(k in e for k in REQUIRED), e
        by_phase[e["ph"]].append(e)
    processes = {e["pid"] for e in by_phase["M"] if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in by_phase["M"] if e["name"] == "thread_name"}
    last_ts = {}
    for e in events:
        if e["ph"] == "M":
            continue
        assert e["pid"] in processes and (e["pid"], e["tid"]) in threads, e
        track = (e["pid"], e["tid"])
        assert e["ts"] >= last_ts.get(track, 0), f"timestamps go back on {track}: {e}"
        last_ts[track] = e["ts"]
    open_spans = {}
    for e in events:
        if e["ph"] == "b":
            assert (e["cat"], e["id"]) not in open_spans
            open_spans[(e["cat"], e["id"])] = e["ts"]
        elif e["ph"] == "e":
            assert open_spans.pop((e["cat"], e["id"])) <= e["ts"]
    assert open_spans == {}
    per_thread = defaultdict(list)
    for e in by_phase["X"]:
        assert e["dur"] >= 0
        per_thread[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in per_thread.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start + 1e-6, "overlapping complete events on one thread"
    return by_phase


CHROMIUM = os.environ.get("PLAIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Fail (never skip) when Chromium is missing, unless PLAIT_ALLOW_NO_BROWSER=1 says to skip.

    A silent skip would let CI pass without the browser tests ever running.
    """
    if os.path.exists(CHROMIUM):
        return
    message = (
        f"this test needs Chromium at {CHROMIUM}, and it is missing: run "
        "`bash tools/setup_tests.sh` (it installs Debian's chromium), or set "
        "PLAIT_ALLOW_NO_BROWSER=1 to skip the browser tests on purpose"
    )
    if os.environ.get("PLAIT_ALLOW_NO_BROWSER") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)
