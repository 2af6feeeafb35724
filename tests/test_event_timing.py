"""node_started is when the request goes out: checked against the server's own arrival times."""

import time

from _exec_support import http_resources
from _sim_support import sim_server_thread

from plait import LLMInference, Module, execute


class Six(Module):
    def __init__(self):
        super().__init__()
        self.calls = [LLMInference("fast", system_prompt=f"Angle {i}") for i in range(6)]
        for i, call in enumerate(self.calls):
            setattr(self, f"c{i}", call)

    def forward(self, text):
        return [call(text) for call in self.calls]


async def test_node_started_matches_when_the_server_received_each_request():
    emitted: dict[str, float] = {}  # node -> monotonic clock when its node_started was emitted

    def on_event(event):
        if event.type == "node_started":
            emitted[event.node_id] = time.monotonic()

    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", rpm=120)
        result = await execute(Six(), "x", resources=resources, on_event=on_event)
        arrivals = {r.messages[0]["content"]: r.arrival for r in server.model.requests}
    assert result.ok and len(arrivals) == 6 and len(emitted) == 6
    # The server's clock is the same monotonic clock (its loop's time), so each request
    # must arrive just after its node_started: a loopback round trip, not a limiter wait.
    for i in range(6):
        lag = arrivals[f"Angle {i}"] - emitted[f"c{i}"]
        assert 0 <= lag < 0.5, (i, lag)
    # And the limiter's spread (six calls at 2/s) shows in the events themselves.
    started = sorted(e.time for e in result.events if e.type == "node_started")
    assert started[-1] - started[0] > 1.5
    records = sorted(r.started_at for r in result.nodes.values() if r.kind == "llm")
    assert records == started


async def test_rate_limit_waits_have_their_own_event_before_the_start_and_the_profile_uses_them():
    with sim_server_thread() as server:
        result = await execute(
            Six(), "x", resources=http_resources(server.url, "fast", rpm=120), profile=True
        )
    events = result.events
    limited = 0
    for node_id, record in result.nodes.items():
        if record.kind != "llm":
            continue
        mine = [e for e in events if e.node_id == node_id]
        started = next(e for e in mine if e.type == "node_started")
        waits = [e for e in mine if e.type == "node_waiting" and e.reason == "rate_limit"]
        if waits:
            limited += 1
            [wait] = waits
            assert mine.index(wait) < mine.index(started)
            assert wait.time == started.time and wait.slot == started.slot
            [attempt] = [a for a in result.profile.timeline.attempts if a.node == node_id]
            assert attempt.wait_end == started.time
            assert abs(attempt.wait_start - (wait.time - wait.seconds)) < 1e-9
    assert limited >= 4  # at 2 requests/s, most of the six waited
    assert result.profile.bubbles().idle_by_cause["rate_limit"] > 1.0
