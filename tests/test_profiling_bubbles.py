"""Bubble analysis on hand-built schedules whose right answer is worked out by hand."""

import pytest
from _profile_support import FanOut, Stream, ThreeSteps, merge

from plait import trace
from plait.profiling import IDLE_CAUSES, Bubble, Profile

EXACT = 1e-9


def report(events, endpoints, **kwargs):
    return Profile(events, endpoints=endpoints, **kwargs).bubbles()


def idle(rep, endpoint=None):
    by_cause = rep.idle_by_cause if endpoint is None else rep.endpoints[endpoint].idle_by_cause
    return {cause: pytest.approx(v, abs=EXACT) for cause, v in by_cause.items() if v}


def chain_stream():
    s = Stream("x")
    s.call("a", start=0, end=1)
    s.call("b", start=1, end=2)
    s.call("c", start=2, end=3)
    return s.finish(3)


def test_a_chain_on_one_slot_keeps_it_busy_back_to_back():
    rep = report(chain_stream(), {"fast": 1}, graphs={None: trace(ThreeSteps(), "t")})
    assert rep.makespan == 3
    assert rep.busy == pytest.approx(3, abs=EXACT)
    assert rep.idle == pytest.approx(0, abs=EXACT)
    assert rep.utilization == pytest.approx(1.0)
    assert rep.critical_path == ["x", "a", "b", "c"]
    assert rep.critical_path_length == pytest.approx(3, abs=EXACT)
    assert rep.critical_path_share == pytest.approx(1.0)
    assert rep.largest_bubbles == ()


def test_a_chain_leaves_a_second_slot_idle_on_dependencies_then_for_lack_of_work():
    # While a or b runs, the rest of the chain is waiting on it ("dependency");
    # once c (the last call) runs, nothing is left for the endpoint ("no_work").
    rep = report(chain_stream(), {"fast": 2})
    slot0, slot1 = rep.slots
    assert (slot0.busy, slot0.idle) == (pytest.approx(3), pytest.approx(0, abs=EXACT))
    assert slot1.busy == 0
    assert slot1.idle_by_cause == {
        "dependency": pytest.approx(2, abs=EXACT),
        "rate_limit": 0,
        "backoff": 0,
        "global_cap": 0,
        "no_work": pytest.approx(1, abs=EXACT),
    }
    assert rep.utilization == pytest.approx(0.5)
    assert rep.largest_bubbles == (
        Bubble("fast", 1, 0, 2, "dependency", None, None),
        Bubble("fast", 1, 2, 3, "no_work", None, None),
    )


def test_a_fan_out_of_four_on_two_slots_runs_in_two_waves_with_idle_only_at_the_end():
    s = Stream("x")
    s.call("b0", start=0, end=1, slot=0)
    s.call("b1", start=0, end=1, slot=1)
    s.call("b2", start=1, end=2, slot=0, queued=0)
    s.call("b3", start=1, end=2, slot=1, queued=0)
    s.call("join", start=2, end=3, slot=0)
    rep = report(s.finish(3), {"fast": 2}, graphs={None: trace(FanOut(4), "t")})
    assert rep.busy == pytest.approx(5, abs=EXACT)
    assert idle(rep) == {"no_work": pytest.approx(1, abs=EXACT)}
    assert rep.largest_bubbles == (Bubble("fast", 1, 2, 3, "no_work", "b3", None),)
    assert rep.utilization == pytest.approx(5 / 6)
    # Queueing for a slot is not part of a node's duration: the critical path is two calls long.
    assert rep.critical_path_length == pytest.approx(2, abs=EXACT)
    assert rep.critical_path[-1] == "join" and rep.critical_path_share == pytest.approx(2 / 3)


def test_time_spent_in_the_rate_limiter_holding_a_slot_is_rate_limit_idle():
    # rpm lets one request start per second: b holds slot 1 from 0 but may send only at 1;
    # c gets slot 0 at 1 and may send only at 2.
    s = Stream("x")
    s.call("a", start=0, end=1, slot=0)
    s.call("b", start=0, end=2, slot=1, wait=1)
    s.call("c", start=1, end=3, slot=0, queued=0, wait=1)
    rep = report(s.finish(3), {"fast": 2})
    assert rep.busy == pytest.approx(3, abs=EXACT)
    assert idle(rep) == {"rate_limit": pytest.approx(2, abs=EXACT), "no_work": pytest.approx(1)}
    slot0, slot1 = rep.slots
    assert slot0.idle_by_cause["rate_limit"] == pytest.approx(1, abs=EXACT)
    assert slot1.idle_by_cause["rate_limit"] == pytest.approx(1, abs=EXACT)
    # The wait belongs to the attempt holding the slot: it is the node that comes next.
    assert Bubble("fast", 0, 1, 2, "rate_limit", "a", "c") in rep.largest_bubbles
    assert Bubble("fast", 1, 0, 1, "rate_limit", None, "b") in rep.largest_bubbles


def test_retry_backoff_frees_the_slot_and_counts_as_backoff_idle():
    s = Stream("x")
    s.failed_attempt("a", start=0, end=1, delay=2, status=500)
    s.call("a", start=3, end=4, attempt=2)
    s.call("b", start=0, end=0.5, slot=1)
    profile = Profile(s.finish(4), endpoints={"fast": 2})
    rep = profile.bubbles()
    assert idle(rep) == {"backoff": pytest.approx(2, abs=EXACT), "no_work": pytest.approx(3.5)}
    assert rep.largest_bubbles[0] == Bubble("fast", 1, 0.5, 4, "no_work", "b", None)
    assert Bubble("fast", 0, 1, 3, "backoff", "a", "a") in rep.largest_bubbles
    (retry,) = profile.timeline.retries
    assert (retry.key, retry.attempt, retry.status, retry.delay, retry.slot) == ("a", 1, 500, 2, 0)
    assert [(a.attempt, a.outcome) for a in profile.timeline.attempts if a.key == "a"] == [
        (1, "retry"),
        (2, "done"),
    ]


def test_work_nearest_to_running_explains_a_free_slot_first():
    # During a's backoff the only slot is free while b still waits on a upstream:
    # the backoff, not the dependency, is why the slot idles.
    s = Stream("x")
    s.failed_attempt("a", start=0, end=1, delay=1)
    s.call("a", start=2, end=3, attempt=2)
    s.call("b", start=3, end=4)
    rep = report(s.finish(4), {"fast": 1})
    assert idle(rep) == {"backoff": pytest.approx(1, abs=EXACT)}


def test_a_429_is_a_retry_mark_with_its_status():
    s = Stream("x")
    s.failed_attempt("a", start=0, end=0, delay=1.5, status=429)
    s.call("a", start=1.5, end=2.5, attempt=2)
    profile = Profile(s.finish(2.5), endpoints={"fast": 1})
    assert [(r.status, r.time) for r in profile.timeline.retries] == [(429, 0)]
    assert idle(profile.bubbles()) == {"backoff": pytest.approx(1.5, abs=EXACT)}


def test_a_batch_of_two_items_is_one_timeline_sharing_the_slots():
    graph = trace(ThreeSteps(), "t")
    first, second = Stream("x", item=0), Stream("x", item=1)
    first.call("a", start=0, end=1, slot=0)
    second.call("a", start=0, end=1, slot=1)
    first.call("b", start=1, end=2, slot=0)
    second.call("b", start=1, end=2.5, slot=1)
    first.call("c", start=2, end=3, slot=0)
    second.call("c", start=2.5, end=4, slot=1)
    rep = report(merge(first, second, makespan=4), {"fast": 2}, graphs={0: graph, 1: graph})
    assert rep.busy == pytest.approx(7, abs=EXACT)
    assert idle(rep) == {"no_work": pytest.approx(1, abs=EXACT)}
    assert rep.largest_bubbles == (Bubble("fast", 0, 3, 4, "no_work", "0:c", None),)
    assert rep.critical_path == ["1:x", "1:a", "1:b", "1:c"]
    assert rep.critical_path_length == pytest.approx(4, abs=EXACT)


def test_a_full_global_cap_shows_as_global_cap_idle_on_the_starved_endpoint():
    # Global cap 2: "fast" holds both global slots, so "smart" waits with both of its own free.
    s = Stream("x")
    s.call("f0", start=0, end=1, slot=0)
    s.call("f1", start=0, end=1, slot=1)
    s.call("s0", start=1, end=2, slot=0, queued=0, endpoint="smart")
    rep = report(s.finish(2), {"fast": 2, "smart": 2}, max_concurrent=2)
    assert idle(rep, "smart") == {
        "global_cap": pytest.approx(1, abs=EXACT),
        "no_work": pytest.approx(2, abs=EXACT),
    }
    assert rep.slots[2].idle_by_cause["global_cap"] == pytest.approx(1, abs=EXACT)  # smart slot 0
    assert idle(rep, "fast") == {"no_work": pytest.approx(2, abs=EXACT)}


def test_slots_never_used_are_idle_for_the_whole_makespan():
    s = Stream("x")
    s.call("a", start=0, end=2)
    rep = report(s.finish(2), {"fast": 4})
    assert [(u.slot, u.busy, u.idle) for u in rep.slots] == [
        (0, 2, 0),
        (1, 0, 2),
        (2, 0, 2),
        (3, 0, 2),
    ]
    assert rep.endpoints["fast"].utilization == pytest.approx(0.25)


def test_per_slot_busy_plus_every_cause_adds_up_to_the_makespan():
    s = Stream("x")
    s.call("a", start=0, end=1.25, wait=0.25)
    s.failed_attempt("b", start=0, end=0.5, delay=0.75, slot=1)
    s.call("b", start=1.25, end=2, slot=1, attempt=2)
    s.call("c", start=2, end=2.5, queued=1.25)
    rep = report(s.finish(2.5), {"fast": 3})
    for usage in rep.slots:
        assert usage.busy + sum(usage.idle_by_cause.values()) == pytest.approx(2.5, abs=EXACT)
    assert sum(rep.idle_by_cause.values()) == pytest.approx(rep.idle, abs=EXACT)
    assert rep.busy + rep.idle == pytest.approx(3 * 2.5, abs=EXACT)
    assert set(rep.idle_by_cause) == set(IDLE_CAUSES)


def test_slot_capacity_is_inferred_from_the_events_when_not_given():
    s = Stream("x")
    s.call("a", start=0, end=1, slot=2)
    profile = Profile(s.finish(1))
    assert profile.timeline.endpoints == {"fast": 3}


def test_summary_and_dataframes_report_the_same_numbers():
    s = Stream("x")
    s.call("a", start=0, end=1)
    s.call("b", start=1, end=2)
    rep = report(s.finish(2), {"fast": 2}, graphs={None: trace(ThreeSteps(), "t")})
    text = rep.summary()
    assert "makespan 2.000s, utilization 50% (1 endpoint(s), 2 slot(s))" in text
    assert "fast slot 1: 0.000-1.000s (1.000s) dependency" in text
    frame = rep.to_dataframe()
    assert list(frame.columns) == [
        "endpoint",
        "slot",
        "busy",
        "idle",
        *IDLE_CAUSES,
        "utilization",
    ]
    assert frame["dependency"].tolist() == [0, 1] and frame["no_work"].tolist() == [0, 1]
    bubbles = rep.bubbles_dataframe()
    assert bubbles[["slot", "start", "end", "cause"]].values.tolist() == [
        [1, 0.0, 1.0, "dependency"],
        [1, 1.0, 2.0, "no_work"],
    ]
