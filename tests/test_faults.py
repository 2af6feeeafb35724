"""Fault injection over loopback HTTP: every call completes, correctly, within its retry bound.

Each test runs the same batch against a healthy simulator and against one that
injects a fault, then checks: no item lost, outputs identical to the healthy run
(replies are a deterministic function of the request), attempts bounded by
1 + max_retries, and the limits respected as the server saw them.
"""

import math

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

from bench._common import simulator_process
from plait import LLMInference, Module, run_batch

N = 24
RETRIES = 4
FAST_RETRY = {"max_retries": RETRIES, "retry_base_delay": 0.01, "retry_max_delay": 0.05}


class Pair(Module):
    def __init__(self, stream=False):
        super().__init__()
        self.draft = LLMInference("fast", system_prompt="Draft an answer.", stream=stream)
        self.check = LLMInference("fast", system_prompt="Check the draft.", stream=stream)

    def forward(self, question):
        return self.check(f"Question: {question}\nDraft: {self.draft(question)}")


INPUTS = [f"question number {i} about a topic long enough to stream in chunks" for i in range(N)]


def reference(stream=False):
    with sim_server_thread() as server:
        items = _run(server, stream=stream)
    return [item.output for item in items]


def _run(server, *, stream=False, cap=6, **fields):
    resources = http_resources(server.url, "fast", max_concurrent=cap, **{**FAST_RETRY, **fields})
    import asyncio

    return asyncio.run(run_batch(Pair(stream), INPUTS, resources=resources, progress=False))


def check(items, expected, server, *, cap=6):
    assert [item.index for item in items] == list(range(N))
    lost = [item.index for item in items if not item.ok]
    assert lost == [], [str(items[i].error) for i in lost[:3]]
    assert [item.output for item in items] == expected
    for item in items:
        for record in item.result.nodes.values():
            assert record.attempts <= 1 + RETRIES
    stats = server.model.stats
    assert stats.total <= 2 * N * (1 + RETRIES)
    assert stats.peak_in_flight <= cap
    return stats


FAULTS = {
    "rate_limit_storm": {"kind": "rate_limit", "rate": 0.5, "attempts": 2, "retry_after": 0.05},
    "server_errors_20pct": {
        "kind": "server_error",
        "status": 503,
        "rate": 0.2,
        "attempts": "first",
    },
    "timeouts": {"kind": "timeout", "rate": 0.2, "attempts": "first", "hang": 5.0},
    "connection_resets": {"kind": "connection_reset", "rate": 0.2, "attempts": "first"},
    "malformed_json": {"kind": "malformed", "rate": 0.2, "attempts": "first"},
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_faults_lose_nothing_and_change_no_output(name):
    expected = reference()
    with sim_server_thread(faults=[FAULTS[name]]) as server:
        items = _run(server, timeout=0.5)
        stats = check(items, expected, server)
    faulted = sum(stats.by_fault.values())
    assert faulted > 0, "the fault never fired; the test would prove nothing"
    retries = sum(e.type == "node_retry" for item in items for e in item.result.events)
    assert retries == faulted


def test_cut_streams_are_retried_and_lose_nothing():
    expected = reference(stream=True)
    fault = {"kind": "cut_stream", "rate": 0.3, "attempts": "first", "chunks": 2}
    with sim_server_thread(faults=[fault]) as server:
        items = _run(server, stream=True)
        stats = check(items, expected, server)
    assert stats.by_fault.get("cut_stream", 0) > 0
    assert expected == reference(stream=False)  # streamed and plain replies agree


def test_rate_limit_pauses_the_endpoint_and_honours_retry_after():
    fault = {"kind": "rate_limit", "rate": 1.0, "attempts": "first", "retry_after": 0.2}
    with sim_server_thread(faults=[fault]) as server:
        items = _run(server, cap=2)
        requests = server.model.requests
    assert all(item.ok for item in items)
    limited = [r for r in requests if r.status == 429]
    assert len(limited) == len({r.digest for r in requests})  # each request limited once
    # After a 429 the next attempt of the same request waits at least its Retry-After.
    by_digest = {}
    for r in requests:
        by_digest.setdefault(r.digest, []).append(r)
    for attempts in by_digest.values():
        first, second = attempts[0], attempts[1]
        assert first.status == 429 and second.status == 200
        assert second.arrival - first.finish >= 0.2 - 1e-3


def test_non_retryable_errors_fail_at_once_with_the_providers_message():
    fault = {"kind": "client_error", "status": 400, "match": {"user": "question number 3 "}}
    with sim_server_thread(faults=[fault]) as server:
        items = _run(server)
        requests = [
            r for r in server.model.requests if "question number 3 " in r.messages[-1]["content"]
        ]
    failed = [item for item in items if not item.ok]
    assert [item.index for item in failed] == [3]
    assert len(requests) == 1
    assert "simulated client error 400" in str(failed[0].error)
    assert failed[0].result.nodes["draft"].attempts == 1


def test_retries_stop_after_max_retries():
    fault = {"kind": "server_error", "status": 502, "match": {"user": "question number 5 "}}
    with sim_server_thread(faults=[fault]) as server:
        items = _run(server)
        hits = [
            r for r in server.model.requests if "question number 5 " in r.messages[-1]["content"]
        ]
    assert not items[5].ok and all(item.ok for i, item in enumerate(items) if i != 5)
    assert len(hits) == 1 + RETRIES
    assert items[5].result.nodes["draft"].attempts == 1 + RETRIES


def test_rpm_limit_is_respected_server_side():
    rpm = 600  # 10 per second
    # The server runs in its own process: arrival times stamped by a thread of this process
    # would bunch up whenever the client holds the GIL, and show windows the client never sent.
    with simulator_process() as server:
        items = _run(server, cap=8, rpm=rpm)
        arrivals = sorted(r["arrival"] for r in server.requests())
    assert all(item.ok for item in items)
    allowed = math.ceil(rpm / 60) + 1
    for i, start in enumerate(arrivals):
        in_window = sum(1 for t in arrivals[i:] if t < start + 1.0)
        assert in_window <= allowed
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - allowed) / (rpm / 60) - 0.05


def test_server_side_rate_limit_below_the_clients_is_survived():
    # Default backoff: the jitter added to each Retry-After spreads the refused requests out.
    with sim_server_thread(max_rps=20) as server:
        items = _run(server, cap=8, retry_base_delay=0.5, retry_max_delay=30.0)
        stats = server.model.stats
    assert all(item.ok for item in items)
    assert stats.by_status.get(200, 0) == 2 * N


def test_a_rate_limit_storm_outlasting_max_retries_loses_nothing():
    # Every request is refused 6 times (more than max_retries=4): 429s count against
    # the rate-limit patience, not against max_retries, so all of them complete.
    fault = {"kind": "rate_limit", "rate": 1.0, "attempts": 6, "retry_after": 0.01}
    expected = reference()
    with sim_server_thread(faults=[fault]) as server:
        items = _run(server, cap=6)
        stats = server.model.stats
    assert [item.output for item in items] == expected
    assert stats.by_status[429] == 6 * 2 * N
    assert all(
        r.attempts == 7 for item in items for r in item.result.nodes.values() if r.kind == "llm"
    )


def test_rate_limit_patience_bounds_how_long_a_request_waits():
    fault = {"kind": "rate_limit", "rate": 1.0, "retry_after": 0.05}
    with sim_server_thread(faults=[fault]) as server:
        items = _run(server, cap=6, rate_limit_patience=0.2)
    assert not any(item.ok for item in items)
    error = items[0].error
    assert "RateLimitError" in str(error) and "429" in str(error)
    draft = items[0].result.nodes["draft"]
    assert 2 <= draft.attempts <= 6  # waited ~0.05-0.06 s per 429 until 0.2 s were spent
