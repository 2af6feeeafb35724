"""429s over loopback HTTP: a lone refusal delays only its request; a real over-rate slows all.

A provider refuses single requests for reasons of its own (shared capacity,
bursts); only a run of refusals, or its rate-limit headers saying the quota is
used up, says the configured rate is too high. The simulator injects both.
"""

import asyncio

from _exec_support import http_resources
from _sim_support import sim_server_thread

from plait import LLMInference, Module, run_batch
from plait.resources.manager import ResourceManager

ITEMS = [f"item {i} needs an answer" for i in range(24)]
MANY = [f"item {i} needs an answer" for i in range(60)]


class One(Module):
    def __init__(self):
        super().__init__()
        self.answer = LLMInference("fast", system_prompt="Answer.")

    def forward(self, text):
        return self.answer(text)


def _run(server, inputs=ITEMS, **fields):
    """Run the batch; returns its items and the endpoint's limiter as the run left it."""
    resources = http_resources(server.url, "fast", **fields)

    async def main():
        async with ResourceManager(resources) as manager:
            items = await run_batch(One(), inputs, resources=manager, progress=False)
            return items, manager.endpoint("fast").limiter

    return asyncio.run(main())


def _by_item(requests):
    found = {}
    for r in requests:
        found.setdefault(r.messages[-1]["content"], []).append(r)
    return found


def test_a_refused_request_waits_its_retry_after_while_the_others_go_on():
    fault = {
        "kind": "rate_limit",
        "retry_after": 0.5,
        "attempts": "first",
        "match": {"user": "item 3 "},
    }
    with sim_server_thread(latency=0.02, faults=[fault]) as server:
        items, limiter = _run(server, max_concurrent=4, rpm=60_000)
        requests = _by_item(server.model.requests)
    assert all(item.ok for item in items)
    refused, retried = requests["item 3 needs an answer"]
    assert (refused.status, retried.status) == (429, 200)
    assert retried.arrival - refused.finish >= 0.5 - 1e-3
    others = [r for text, rs in requests.items() if "item 3 " not in text for r in rs]
    # Every other request was answered while the refused one waited: nothing stalled.
    assert len(others) == len(ITEMS) - 1
    assert all(r.finish <= retried.arrival for r in others)
    assert limiter.paused_until is None and limiter.effective_rpm == 60_000


def test_sporadic_429s_without_retry_after_leave_the_rate_alone():
    fault = {"kind": "rate_limit", "rate": 0.15, "send_retry_after": False}
    with sim_server_thread(faults=[fault]) as server:
        items, limiter = _run(
            server, max_concurrent=8, rpm=3_000, retry_base_delay=0.01, retry_max_delay=0.05
        )
        stats = server.model.stats
    assert all(item.ok for item in items)
    assert stats.by_status[429] > 0  # the fault fired
    assert stats.by_status[200] == len(ITEMS)
    assert limiter.paused_until is None
    assert limiter.effective_rpm == 3_000


def test_a_sustained_over_rate_is_evidence_the_endpoint_pauses_and_loses_nothing():
    # The client is told 6,000 rpm; the server allows 20 requests a second (bursts of 20).
    with sim_server_thread(max_rps=20) as server:
        items, limiter = _run(server, MANY, max_concurrent=8, rpm=6_000)
        stats = server.model.stats
    assert all(item.ok for item in items)
    assert stats.by_status[200] == len(MANY)
    assert stats.by_status[429] > 0
    assert limiter.paused_until is not None  # the endpoint-wide pause happened


def test_the_providers_rate_limit_headers_pace_a_client_without_its_own_rpm():
    inputs = MANY
    refused = {}
    for headers in (False, True):
        with sim_server_thread(max_rps=20, rate_limit_headers=headers) as server:
            items, _ = _run(server, inputs, max_concurrent=8)
            stats = server.model.stats
        assert all(item.ok for item in items)
        assert stats.by_status[200] == len(inputs)
        refused[headers] = stats.by_status.get(429, 0)
    # The bucket holds 20; the other 40 requests must wait for its refill. Told how full it
    # is, the client waits for tokens instead of being refused for them.
    assert refused[False] >= 20
    assert refused[True] <= refused[False] / 4
