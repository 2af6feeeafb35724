"""The Ray backend's parts that need no cluster: the coordinator's ledger, and refusals.

The ledger: slots, fair shares, start times, 429 pauses, lost workers and the budget, on a
fake clock.
"""

import asyncio
import itertools
import math
import sys

import pytest

from plait import LLMInference, Module, ResourceConfig, run_batch
from plait.clients.base import Usage
from plait.errors import BudgetExceeded, ConfigError
from plait.ray import EndpointLimits, Ledger
from plait.ray.leases import ClusterBudget, Leases


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ledger(clock: Clock, global_cap=None, **limits) -> Ledger:
    return Ledger({"fast": EndpointLimits(**limits)}, global_cap, clock=clock)


def test_slots_never_exceed_max_concurrent_across_workers():
    book = ledger(Clock(), max_concurrent=4)
    first = book.sync("a", {"fast": {"want": 10}})["fast"]
    second = book.sync("b", {"fast": {"want": 10}})["fast"]
    assert first["grant"] == 4 and second["grant"] == 0
    assert book.snapshot()["fast"]["held"] == {"a": 4}


def test_a_waiting_worker_lowers_the_holders_share_and_gets_what_it_hands_back():
    book = ledger(Clock(), max_concurrent=4)
    book.sync("a", {"fast": {"want": 10}})
    book.sync("b", {"fast": {"want": 3}})
    answer = book.sync("a", {"fast": {"want": 6}})["fast"]
    assert answer["share"] == 2 and answer["grant"] == 0
    book.sync("a", {"fast": {"release": 2, "want": 6}})
    assert book.sync("b", {"fast": {"want": 3}})["fast"]["grant"] == 2


def test_slots_a_worker_does_not_need_go_to_one_that_does():
    book = ledger(Clock(), max_concurrent=8)
    book.sync("a", {"fast": {"want": 13}})  # holds all 8, wants 5 more
    book.sync("b", {"fast": {"want": 3}})
    assert book.sync("a", {"fast": {"want": 5}})["fast"]["share"] == 5  # b needs only 3
    book.sync("a", {"fast": {"release": 3, "want": 5}})
    assert book.sync("b", {"fast": {"want": 3}})["fast"]["grant"] == 3
    assert book.sync("a", {"fast": {"want": 5}})["fast"]["grant"] == 0  # 5 held: its share
    book.sync("b", {"fast": {"release": 3}})
    answer = book.sync("a", {"fast": {"want": 5}})["fast"]
    assert (answer["grant"], answer["share"]) == (3, 8)  # nobody else wants any: all 8


def test_the_global_cap_bounds_every_endpoint_together():
    clock = Clock()
    book = Ledger(
        {"fast": EndpointLimits(max_concurrent=5), "smart": EndpointLimits(max_concurrent=5)},
        global_cap=6,
        clock=clock,
    )
    fast = book.sync("a", {"fast": {"want": 5}})["fast"]["grant"]
    smart = book.sync("b", {"smart": {"want": 5}})["smart"]["grant"]
    assert (fast, smart) == (5, 1)


def test_start_times_are_spaced_by_the_rpm_for_every_worker_together():
    clock = Clock()
    book = ledger(clock, max_concurrent=50, rpm=120)  # one start per 0.5 s
    a = book.sync("a", {"fast": {"starts": [0, 0, 0]}})["fast"]["starts"]
    b = book.sync("b", {"fast": {"starts": [0, 0]}})["fast"]["starts"]
    # At most HORIZON (1 s) ahead: a gets now, +0.5, +1.0; b gets nothing yet.
    assert a == [1000.0, 1000.5, 1001.0] and b == []
    clock.now = 1000.6
    b = book.sync("b", {"fast": {"starts": [0, 0]}})["fast"]["starts"]
    assert b == [1001.5]
    starts = sorted([*a, *b])
    assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(starts))


def test_tokens_per_minute_hold_across_workers_and_settle_with_real_usage():
    clock = Clock()
    book = ledger(clock, max_concurrent=50, tpm=6000)  # 100 tokens per second
    first = book.sync("a", {"fast": {"starts": [100, 100]}})["fast"]["starts"]
    assert first == [1000.0, 1001.0]
    assert book.sync("b", {"fast": {"starts": [100]}})["fast"]["starts"] == []  # > 1 s ahead
    # Each used only 10 tokens: the 180 not used come back, so 20 tokens (0.2 s) still count.
    book.sync("a", {"fast": {"adjust": -180}})
    assert book.sync("b", {"fast": {"starts": [100]}})["fast"]["starts"] == [1000.2]


def test_a_429_pauses_every_worker_and_lowers_the_rate_until_successes_restore_it():
    clock = Clock()
    book = ledger(clock, max_concurrent=50, rpm=600)
    answer = book.sync("a", {"fast": {"limited": [2.0]}})["fast"]
    assert answer["paused_until"] == 1002.0
    other = book.sync("b", {"fast": {"starts": [0]}})["fast"]
    assert other["paused_until"] == 1002.0 and other["starts"] == []
    assert book.snapshot()["fast"]["effective_rpm"] == 300
    clock.now = 1002.0
    assert book.sync("b", {"fast": {"starts": [0]}})["fast"]["starts"] == [1002.0]
    book.sync("b", {"fast": {"ok": 10}})
    assert book.snapshot()["fast"]["effective_rpm"] == 600


def test_a_lost_workers_slots_return_only_after_the_endpoint_timeout():
    clock = Clock()
    book = ledger(clock, max_concurrent=4, timeout=5.0)
    book.sync("a", {"fast": {"want": 4}})
    book.lost("a")
    assert book.sync("b", {"fast": {"want": 4}})["fast"]["grant"] == 0
    clock.now += 5.01
    assert book.sync("b", {"fast": {"want": 4}})["fast"]["grant"] == 4


def test_late_starts_keep_any_second_within_the_rpm_bound():
    clock = Clock()
    rpm = 300
    book = ledger(clock, max_concurrent=50, rpm=rpm)
    starts = []
    for _ in range(40):
        answer = book.sync("a", {"fast": {"starts": [0]}})["fast"]
        if answer["starts"]:
            # The worst a worker may do: start as late as the slack allows.
            starts.append(answer["starts"][0] + answer["slack"])
        clock.now += 0.05
    allowed = math.ceil(rpm / 60) + 1
    for i, start in enumerate(starts):
        assert sum(1 for t in starts[i:] if t < start + 1.0) <= allowed


class Echo(Module):
    def __init__(self) -> None:
        super().__init__()
        self.llm = LLMInference("fast")

    def forward(self, text):
        return self.llm(text)


def test_unknown_backends_are_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="backend='cluster'"):
        asyncio.run(run_batch(Echo(), ["a"], backend="cluster"))


def test_the_budget_permits_starts_only_while_the_clusters_spending_is_under_it():
    books = Ledger({"fast": EndpointLimits(4)}, None, clock=Clock(), budget=(10.0, None))
    first = books.sync("w1", {}, {"cost": 0.0, "tokens": 0, "starts": 3})["budget"]
    assert first == {"cost": 0.0, "tokens": 0, "granted": 3}  # in flight at once, as locally
    books.sync("w2", {}, {"cost": 6.0, "tokens": 60, "starts": 0})
    # w1 still hears of w2's spending, and it adds its own: together they reach the budget.
    after = books.sync("w1", {}, {"cost": 4.5, "tokens": 40, "starts": 2})["budget"]
    assert after == {"cost": 10.5, "tokens": 100, "granted": 0}
    assert books.sync("w2", {}, {"starts": 1})["budget"]["granted"] == 0
    tokens = Ledger({}, None, clock=Clock(), budget=(None, 100))
    assert tokens.sync("w1", {}, {"tokens": 99, "starts": 1})["budget"]["granted"] == 1
    assert tokens.sync("w1", {}, {"tokens": 1, "starts": 1})["budget"]["granted"] == 0
    assert "budget" not in Ledger({}, None).sync("w1", {}, {"starts": 1})  # no budget set


async def test_a_workers_starts_wait_for_the_permit_and_stop_when_the_cluster_is_over_budget():
    books = Ledger({"fast": EndpointLimits(2)}, None, clock=Clock(), budget=(1.0, None))
    resources = ResourceConfig.simulated("fast", max_concurrent=2)

    async def sync(report, spend):
        return books.sync("w1", report, spend)

    budget = ClusterBudget(1.0, None)
    leases = Leases(sync, resources, budget)
    await leases.acquire("fast", 0)  # under the budget: permitted
    budget.charge(Usage(10, 5), 0.6)
    books.sync("w2", {}, {"cost": 0.5, "starts": 0})  # another worker spent the rest
    with pytest.raises(BudgetExceeded, match="max_cost"):
        await leases.acquire("fast", 0)
    assert budget.exhausted and budget.cost == pytest.approx(1.1)  # it learned the cluster's total
    assert leases._leases["fast"].in_use == 1  # the refused start gave its slot back
    leases.release("fast")
    await leases.aclose()


def test_without_ray_installed_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is missing
    resources = ResourceConfig.simulated("fast")
    with pytest.raises(ConfigError, match=r"pip install 'plait\[ray\]'"):
        asyncio.run(run_batch(Echo(), ["a"], resources=resources, backend="ray"))
