"""The benchmark scripts keep working: each runs in a tiny configuration and reports what it should.

No timing is asserted here (timings are the benchmarks' output, never a test
condition); these check counts, keys and that plait and the baselines do the
same work.
"""

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench import _loops, batch, faults, overhead, ratelimit, sweep
from bench import run as suite
from bench._common import Figure, body, render_table, simulator_process
from plait.errors import RateLimitError, TransientError
from plait.resources.retry import RetryPolicy

REPO = Path(__file__).resolve().parents[1]


def names(result):
    return [f.metric for f in result.figures]


def test_a_figure_meets_a_ratio_target_or_an_absolute_one():
    ratio = Figure("b", "m", "s", 2.0, 2.2, target=1.05)
    absolute = Figure("b", "m", "µs/node", 20.0, 90.0, target=100, target_of="plait")
    report_only = Figure("b", "m", "s", 1.0, 3.0)
    assert (round(ratio.ratio, 3), ratio.met) == (1.1, False)
    assert (absolute.ratio, absolute.met) == (4.5, True)
    assert report_only.met is None
    table = render_table([ratio, absolute, report_only]).splitlines()
    assert table[0] == "| benchmark | metric | baseline | plait | ratio | target | met |"
    assert table[2].endswith("| 1.100× | ≤ 1.05× | **NO** |")
    assert table[3].endswith("| 4.500× | ≤ 100 µs/node | yes |")
    assert ratio.to_dict()["met"] is False
    # Measured in pairs: the pairs' own median ratio is reported and judged, not plait / baseline.
    paired = Figure("b", "m", "µs", 100.0, 120.0, target=1.1, paired_ratio=1.05)
    assert (paired.ratio, paired.met) == (1.05, True)
    assert render_table([paired]).splitlines()[2].endswith("| 1.050× | ≤ 1.1× | yes |")


def test_the_baselines_post_exactly_the_bodies_plait_sends():
    texts = ["alpha", "beta", "gamma"]
    with simulator_process() as server:
        asyncio.run(overhead.plait_calls(server.url, texts, 2))
        from_plait = sorted(json.dumps(r["body"], sort_keys=True) for r in server.requests())
        server.reset()
        asyncio.run(overhead.httpx_calls(server.url, texts, 2))
        from_httpx = sorted(json.dumps(r["body"], sort_keys=True) for r in server.requests())
    assert from_plait == from_httpx
    assert json.loads(from_plait[0]) == body("alpha")


def test_http_overhead_runs_and_both_sides_get_the_same_answers():
    result = overhead.run_http(calls=12, concurrency=2, rounds=1)
    assert result.name == "http_overhead"
    assert names(result) == ["12 calls, concurrency 2"]
    assert result.details["answers_match"] is True
    assert result.details["errors"] == 0
    # 12 warm-up calls and 12 measured calls on each side.
    assert result.details["server"]["by_status"] == {"200": 48}


def test_inprocess_overhead_runs_the_wide_graph_and_the_chains():
    result = overhead.run_inprocess(nodes=40, chain=4, rounds=1)
    assert names(result) == [
        "wide graph of 40 LLM nodes, execute()",
        "10 items × 4-call chains, run_batch()",
    ]
    assert result.details["wide_answers_match"] is True
    assert result.details["chain_answers_match"] is True
    assert [f.unit for f in result.figures] == ["µs/node", "µs/node"]


def test_batch_makespan_runs_the_same_fan_out_on_both_sides():
    result = batch.run_makespan(items=4, latency=0.01, cap=4, rounds=1)
    assert names(result) == [
        "4 items × (2 parallel + 1 join), 10 ms, cap 4",
        "against the lower bound",
    ]
    assert result.details["answers_match"] is True
    # 12 calls x 10 ms / 4 slots is longer than the two layers of 10 ms.
    assert result.details["lower_bound"] == pytest.approx(0.03)
    assert result.details["server"]["by_status"] == {"200": 24}


def test_rate_limited_run_reports_no_429s_below_the_server_limit():
    result = ratelimit.run_ratelimit(calls=10, rps=100, rounds=1)
    assert names(result)[2] == "429s sent by the server"
    assert result.figures[2].plait == 0
    assert result.details["failed"] == {"baseline": [0], "plait": [0]}
    assert result.details["rate_limited"] == {"baseline": [0], "plait": [0]}
    assert result.details["ideal"] == 0.1


def test_server_error_run_loses_nothing_and_both_sides_meet_the_same_faults():
    result = faults.run_server_errors(calls=20, rate=0.5, latency=0.01, cap=4, rounds=1)
    assert result.details["lost"] == {"baseline": [0], "plait": [0]}
    extra = result.details["extra_requests"]
    assert extra["baseline"] == extra["plait"] and extra["plait"][0] > 0
    assert [f.unit for f in result.figures] == ["calls", "requests", "s", "s"]


def test_rate_limit_burst_refuses_the_band_once_on_each_side():
    result = faults.run_rate_limit_burst(calls=12, latency=0.01, cap=4, retry_after=0.05, rounds=1)
    assert result.details["lost"] == {"baseline": [0], "plait": [0]}
    assert result.details["extra_requests"] == {"baseline": [2], "plait": [2]}
    assert [s["by_status"] for s in result.details["server"]["plait"]] == [{"200": 12, "429": 2}]


def test_rate_limit_storm_counts_every_request_it_made():
    result = faults.run_rate_limit_storm(calls=30, max_rps=20, latency=0.01, cap=4, rounds=1)
    for side in ("baseline", "plait"):
        (stats,) = result.details["server"][side]
        (lost,) = result.details["lost"][side]
        assert stats["by_status"]["200"] == 30 - lost
        assert stats["total"] == 30 + result.details["extra_requests"][side][0]


def test_the_baseline_retry_loop_backs_off_exactly_like_plait():
    policy = RetryPolicy()
    for attempt in range(1, policy.max_retries + 1):
        for error, hint in (
            (TransientError("503", status=503), None),
            (RateLimitError("429", retry_after=0.25), 0.25),
        ):
            seed = attempt * 7
            assert faults.backoff(attempt, hint, random.Random(seed)) == policy.delay(
                attempt, error, random.Random(seed)
            )
    assert policy == faults.POLICY


def test_trace_benchmark_reports_time_and_memory_for_every_shape():
    (result,) = suite.run_trace(stages=5, repeat=1)
    assert sorted(result.details) == ["deep", "helpers", "wide"]
    assert {d["nodes"] for d in result.details.values()} == {20}
    assert len(result.figures) == 6


def test_run_py_writes_the_report(tmp_path):
    output = tmp_path / "latest.json"
    command = [sys.executable, "bench/run.py", "--quick", "--only", "trace"]
    done = subprocess.run(
        [*command, "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "| 6. trace | wide: 2,000 nodes, time |" in done.stdout
    report = json.loads(output.read_text())
    assert report["quick"] is True and report["errors"] == {}
    assert [r["name"] for r in report["results"]] == ["trace"]


def test_sweep_cpu_runs_both_shapes_at_every_cap_and_both_sides_agree():
    result = sweep.run_cpu(sweep.SIZES["smoke"])
    assert [f.metric for f in result.figures] == [
        "fan-out, 20 calls, cap 2",
        "fan-out, 20 calls, cap 4",
        "batch, 24 calls, cap 2",
        "batch, 24 calls, cap 4",
        "fan-out: plait's CPU per call at cap 4 vs cap 2",
        "batch: plait's CPU per call at cap 4 vs cap 2",
    ]
    assert all(d["answers_match"] for d in result.details.values())


def test_sweep_makespan_has_a_lower_bound_for_every_point():
    result = sweep.run_makespan(sweep.SIZES["smoke"], base_latency=0.01)
    assert len(result.figures) == 8
    latency = sweep.makespan_latency(4, 0.01)  # 3 ms per slot: 12 ms
    assert latency == pytest.approx(0.012)
    # 4 items × 3 calls × 12 ms / 4 slots is longer than the two layers of 12 ms.
    assert result.details["batch@4"]["lower_bound"] == pytest.approx(3 * latency)


@pytest.mark.parametrize("name", ["429 15%, no Retry-After", "over-rate storm, rate-limit headers"])
def test_sweep_fault_runs_lose_nothing_and_count_what_the_server_saw(name):
    result = sweep.run_fault(name, sweep.SIZES["smoke"], latency=0.01)
    assert result.details["lost"] == {"baseline": [0], "plait": [0]}
    requests = result.details["requests"]
    assert min(requests["baseline"] + requests["plait"]) >= 3 * result.details["items"]
    if "storm" not in name:  # the same requests meet the same injected faults on both sides
        assert result.details["refused"]["baseline"] == result.details["refused"]["plait"]


def test_the_sweep_loop_backs_off_exactly_like_plait():
    policy = RetryPolicy()
    for attempt in range(1, policy.max_retries + 1):
        for error, hint in (
            (TransientError("503", status=503), None),
            (RateLimitError("429", retry_after=0.25), 0.25),
        ):
            seed = attempt * 11
            assert _loops.backoff(attempt, hint, random.Random(seed)) == policy.delay(
                attempt, error, random.Random(seed)
            )


def test_the_sweep_picks_the_worst_point_and_writes_its_report(tmp_path):
    figures = [
        Figure("a", "fine", "s", 1.0, 0.9, target=1.0),
        Figure("b", "worst", "s", 1.0, 1.2, target=1.1),
        Figure("c", "absolute", "µs", 1.0, 90, target=50, target_of="plait"),
    ]
    assert sweep.worst(figures).metric == "worst"
    output = tmp_path / "sweep.json"
    command = [sys.executable, "bench/sweep.py", "--smoke", "--only", "overhead"]
    done = subprocess.run(
        [*command, "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "wide graph of 40 LLM nodes" in done.stdout
    report = json.loads(output.read_text())
    assert report["mode"] == "smoke" and "load_average" in report


def test_the_dynamic_benchmark_twins_make_the_same_calls_and_answers():
    from bench import dynamic
    from bench._common import prompts, simulated_resources
    from plait import run_batch

    texts, resources = prompts(5), simulated_resources(8)
    for shape, (traced_cls, dynamic_cls, calls) in dynamic.SHAPES.items():
        traced = asyncio.run(run_batch(traced_cls(), texts, resources=resources, progress=False))
        recorded = asyncio.run(run_batch(dynamic_cls(), texts, resources=resources, progress=False))
        assert [i.output for i in recorded] == [i.output for i in traced], shape
        for item in (*traced, *recorded):
            llm = [r for r in item.result.nodes.values() if r.kind == "llm"]
            assert len(llm) == calls, shape
    figure = dynamic.measure("chain4", items=4, concurrency=8, rounds=1, processes=3)
    assert figure.metric == "CPU per LLM call" and figure.baseline > 0 and figure.plait > 0
    assert figure.note.startswith("median of 3 processes' ratios (1 round each); range ")
    low, high = (float(x) for x in figure.note.split("range ")[1].rstrip("×").split("–"))
    assert figure.paired_ratio is not None and low - 0.005 <= figure.ratio <= high + 0.005
    with simulator_process() as server:
        over_http = dynamic.measure(
            "fanout16", items=2, concurrency=8, rounds=1, processes=2, url=server.url
        )
        requests = server.requests()
    assert over_http.metric == "client CPU per LLM call" and over_http.plait > 0
    # Each process: warm-up and one round, both twins, 2 items × 17 calls.
    assert len(requests) == 2 * 2 * 2 * 2 * 17


def test_the_dynamic_benchmark_counts_instructions_under_valgrind():
    from bench import dynamic

    executed = dynamic.instructions("chain4", "dynamic", items=2, concurrency=8, batches=0)
    assert executed > 10_000_000  # a Python start-up and one batch: tens of millions at least


def test_the_dynamic_benchmark_estimates_cycles_from_a_cache_simulation():
    from bench import dynamic

    child = dynamic._cachegrind("chain4", "traced", 2, 8, 0, cache=True)
    counts = dynamic._counted(child, cache=True)
    assert set(counts) == {"I", "I1m", "D1m", "LLm"}
    assert counts["I"] > 10_000_000 and 0 < counts["LLm"] <= counts["D1m"] + counts["I1m"]
    assert dynamic.estimated_cycles(counts) == (
        counts["I"] + 10 * (counts["I1m"] + counts["D1m"]) + 100 * counts["LLm"]
    )


def test_the_cycle_estimate_simulates_a_cores_own_second_level_cache(tmp_path):
    from bench import dynamic

    def cache(index, level, kind, size, ways):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in [
            ("level", level),
            ("type", kind),
            ("size", size),
            ("ways_of_associativity", ways),
            ("coherency_line_size", 64),
        ]:
            (folder / name).write_text(f"{value}\n")

    cache(0, 1, "Data", "32K", 8)
    cache(1, 1, "Instruction", "32K", 8)
    cache(2, 2, "Unified", "1M", 16)
    cache(3, 3, "Unified", "32768K", 16)
    assert dynamic.second_level_cache(tmp_path) == (1024 * 1024, 16, 64)
    assert dynamic.second_level_cache(tmp_path / "missing") == (512 * 1024, 8, 64)
