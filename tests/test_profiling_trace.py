"""Chrome Trace Event JSON: exact events for a hand-built run, format invariants for real runs."""

import json

import pytest
from _clock import run_virtual
from _profile_support import Review, Stream, check_trace_format, faulty_resources

from plait import execute
from plait.profiling import Profile


def real_run(**smart):
    async def main():
        return await execute(
            Review(), "Quarterly revenue rose 12%.", resources=faulty_resources(**smart)
        )

    return run_virtual(main())


def test_a_hand_built_run_gives_exact_trace_events():
    s = Stream("x")
    s.call("a", start=0, end=1.5, tokens=(12, 7), cost=0.25)
    s.failed_attempt("b", start=0, end=0.5, delay=1, status=429, slot=1)
    s.call("b", start=1.5, end=2.5, attempt=2, wait=0.5, slot=0)
    trace = Profile(s.finish(2.5), endpoints={"fast": 3}).chrome_trace()
    by_phase = check_trace_format(trace)
    names = {
        (e["pid"], e["tid"]): e["args"]["name"] for e in by_phase["M"] if e["name"] == "thread_name"
    }
    assert names == {(1, 0): "waits", (1, 1): "slot 0", (1, 2): "slot 1", (1, 3): "slot 2"}
    (process,) = [e["args"]["name"] for e in by_phase["M"] if e["name"] == "process_name"]
    assert process == "fast (3 slots)"
    calls = [(e["name"], e["tid"], e["ts"], e["dur"], e["args"]["outcome"]) for e in by_phase["X"]]
    assert calls == [
        ("a", 1, 0.0, 1_500_000.0, "done"),
        ("b", 2, 0.0, 500_000.0, "retry"),
        ("b", 1, 1_500_000.0, 1_000_000.0, "done"),
    ]
    first = by_phase["X"][0]["args"]
    assert (first["input_tokens"], first["output_tokens"], first["cost"], first["attempt"]) == (
        12,
        7,
        0.25,
        1,
    )
    assert by_phase["X"][2]["args"]["rate_limit_wait_s"] == 0.5
    (instant,) = by_phase["i"]
    assert (instant["name"], instant["tid"], instant["ts"], instant["args"]["status"]) == (
        "429 rate limited",
        2,
        500_000.0,
        429,
    )
    spans = [(e["ph"], e["cat"], e["ts"]) for e in by_phase["b"] + by_phase["e"]]
    assert spans == [
        ("b", "backoff", 500_000.0),
        ("b", "rate_limit", 1_500_000.0),
        ("e", "backoff", 1_500_000.0),
        ("e", "rate_limit", 2_000_000.0),
    ]
    in_flight = [(e["ts"], e["args"]["value"]) for e in by_phase["C"] if e["name"] == "in flight"]
    assert in_flight == [(0.0, 0), (0.0, 2), (500_000.0, 1), (1_500_000.0, 1), (2_500_000.0, 0)]


def test_a_real_run_with_retries_and_rate_limits_gives_a_well_formed_trace(tmp_path):
    result = real_run()
    path = result.save_chrome_trace(tmp_path / "run.json")
    trace = json.loads(path.read_text())
    by_phase = check_trace_format(trace)
    processes = sorted(e["args"]["name"] for e in by_phase["M"] if e["name"] == "process_name")
    assert processes == ["fast (2 slots)", "smart (2 slots)"]
    calls = [e for e in by_phase["X"] if e["cat"] == "llm"]
    assert len(calls) == 5 + 2  # five calls, two of them retried once
    assert {e["args"]["outcome"] for e in calls} == {"done", "retry"}
    assert sorted(e["name"] for e in by_phase["i"]) == ["429 rate limited", "retry"]
    cats = {e["cat"] for e in by_phase["b"]}
    assert {"backoff", "rate_limit"} <= cats
    capacity = {1: 2, 2: 2}
    for e in by_phase["C"]:
        assert 0 <= e["args"]["value"] <= (capacity[e["pid"]] if e["name"] == "in flight" else 5)
    assert trace["otherData"]["makespan_s"] == pytest.approx(result.makespan)


def test_local_nodes_get_their_own_process_and_lanes():
    s = Stream("x")
    s.local("merge", start=0, end=1)
    s.local("score", start=0.5, end=1.5)
    s.call("a", start=1.5, end=2)
    trace = Profile(s.finish(2), endpoints={"fast": 1}).chrome_trace()
    by_phase = check_trace_format(trace)
    local = [(e["name"], e["pid"], e["tid"]) for e in by_phase["X"] if e["cat"] != "llm"]
    assert local == [("merge", 2, 1), ("score", 2, 2)]
    names = {e["args"]["name"] for e in by_phase["M"] if e["pid"] == 2 and "name" in e["args"]}
    assert names == {"local (ops and modules)", "local 0", "local 1"}
