"""`plait.evaluate`, `EvalResult.compare` and `RunStore`, over loopback HTTP to the simulator."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait
from plait import ExecutionSettings, RunStore, evaluate, run_batch
from plait.errors import ConfigError, StoreError
from plait.optimization import LLMJudge, Optimizer, VerifierLoss, train
from plait.optimization.demo import (
    DIGITS_ONLY,
    JUDGE_RULES,
    NO_LEADING_ZEROS,
    START_INSTRUCTIONS,
    TASK_RULES,
    TRAIN_SET,
    VAL_SET,
    OrderNumberExtractor,
    demo_resources,
    order_number_check,
)
from plait.resources.manager import ResourceManager

HERE = Path(__file__).parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
}
RULES = (*JUDGE_RULES, *TASK_RULES)  # judge rules first: the task rules match any digits


def digits_only():
    return OrderNumberExtractor(f"{START_INSTRUCTIONS} {DIGITS_ONLY}")


async def test_scores_are_the_metric_applied_by_hand():
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        result = await evaluate(
            digits_only(), VAL_SET, order_number_check, resources=resources, progress=False
        )
        sent = len(server.model.requests)
    assert sent == len(VAL_SET)
    assert [r.input for r in result.rows] == [x for x, _ in VAL_SET]
    for row, (_, target) in zip(result.rows, VAL_SET, strict=True):
        ok, message = order_number_check(row.output, target)
        assert (row.score, row.message, row.error) == (float(ok), message, None)
        assert row.tokens > 0 and row.latency > 0 and row.result is not None
    # "0150" keeps its zeros under this prompt: exactly the three without leading zeros pass
    assert result.score == pytest.approx(0.5)
    assert [r.index for r in result.failures()] == [1, 3, 5]
    frame = result.to_dataframe()
    assert list(frame["score"]) == [r.score for r in result.rows]
    assert result.params == {"instructions": f"{START_INSTRUCTIONS} {DIGITS_ONLY}"}


async def test_an_llm_judge_metric_runs_through_the_same_resources():
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task", "judge")
        judge = LLMJudge("judge", "the reply is the bare order number")
        result = await evaluate(digits_only(), VAL_SET, judge, resources=resources, progress=False)
        models = [r.model for r in server.model.requests]
    assert models.count("sim-task") == len(VAL_SET) and models.count("sim-judge") == len(VAL_SET)
    # the scripted judge: 1.0 for the bare number, 0.5 when leading zeros are kept
    assert [r.score for r in result.rows] == [1.0, 0.5, 1.0, 0.5, 1.0, 0.5]
    assert "leading zeros" in result.rows[1].message


async def test_a_metric_that_raises_and_a_run_that_fails_are_recorded_per_example():
    def fussy(output, target):
        if target == "9043":
            raise KeyError("no rubric for this one")
        return output == target

    fault = {"kind": "client_error", "status": 400, "match": {"user": "regex:6610"}}
    with sim_server_thread(replies=RULES, faults=[fault]) as server:
        resources = http_resources(server.url, "task")
        result = await evaluate(digits_only(), VAL_SET, fussy, resources=resources, progress=False)
    by_target = {r.target: r for r in result.rows}
    assert by_target["9043"].score is None
    assert by_target["9043"].error == "KeyError: 'no rubric for this one'"
    assert by_target["9043"].output == "9043"  # the run itself went fine
    assert by_target["6610"].ok is False and by_target["6610"].score == 0.0
    assert "400" in by_target["6610"].error
    assert by_target["2231"].score == 1.0 and by_target["2231"].error is None
    # the mean leaves out the example without a score and counts the failed run as 0
    scored = [r.score for r in result.rows if r.score is not None]
    assert len(scored) == 5 and result.score == pytest.approx(sum(scored) / 5)
    assert {r.target for r in result.errors} == {"9043", "6610"}


async def test_compare_matches_examples_by_input_with_deltas_and_diffs():
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        module = OrderNumberExtractor()
        before = await evaluate(
            module, VAL_SET[:4], order_number_check, resources=resources, progress=False
        )
        module.instructions.apply_update(f"{START_INSTRUCTIONS} {DIGITS_ONLY} {NO_LEADING_ZEROS}")
        shuffled = [VAL_SET[4], VAL_SET[2], VAL_SET[0], VAL_SET[1], VAL_SET[3]]
        after = await evaluate(
            module, shuffled, order_number_check, resources=resources, progress=False
        )
    comparison = before.compare(after)
    assert len(comparison.rows) == 5
    by_input = {r.input: r for r in comparison.rows}
    row = by_input["Order 0150 came in the wrong size."]
    assert row.output_before == "The order number is 0150."
    assert row.output_after == "150"
    assert (row.score_before, row.score_after, row.delta) == (0.0, 1.0, 1.0)
    assert row.changed
    assert ["insert", "150"] in row.diff() and ["delete", "The order number is 0150."] in row.diff()
    new = by_input[VAL_SET[4][0]]
    assert new.before is None and new.delta is None and new.changed
    assert comparison.delta == pytest.approx(after.score - before.score)
    assert len(comparison.improved()) == 4 and not comparison.regressed()
    assert list(comparison.param_changes()) == ["instructions"]
    inserted = [t for op, t in comparison.param_diffs()["instructions"] if op == "insert"]
    assert "Reply with the digits only. Drop leading zeros." in "".join(inserted)
    frame = comparison.to_dataframe()
    assert list(frame["delta"].fillna(-9)) == [1.0, 1.0, 1.0, 1.0, -9]


async def test_a_store_round_trip_across_processes(tmp_path):
    path = tmp_path / "runs.db"
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        result = await evaluate(
            digits_only(),
            VAL_SET,
            order_number_check,
            resources=resources,
            store=path,
            name="baseline",
            progress=False,
        )
    assert result.record_id == 1
    script = (
        "import json, plait\n"
        f"store = plait.RunStore({str(path)!r})\n"
        "r = store.load(1)\n"
        "print(json.dumps({'list': store.list(), 'score': r.score, 'params': r.params,"
        " 'rows': [[x.input, x.target, x.output, x.score, x.message, x.tokens, x.cost] for x in r.rows],"
        " 'nodes': [sorted(x.snapshot['nodes']) for x in r.rows]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert loaded["score"] == result.score
    assert loaded["params"] == result.params
    assert loaded["rows"] == [
        [r.input, r.target, r.output, r.score, r.message, r.tokens, r.cost] for r in result.rows
    ]
    assert loaded["nodes"] == [sorted(r.result.nodes) for r in result.rows]
    (listed,) = loaded["list"]
    assert (listed["name"], listed["kind"], listed["status"]) == ("baseline", "evaluation", "done")
    assert (listed["examples"], listed["completed"], listed["score"]) == (6, 6, result.score)
    # and reloaded here, the comparison with the live result finds nothing changed
    same = RunStore(path).load(1).compare(result)
    assert not same.changed() and same.delta == 0


def test_a_process_killed_mid_evaluation_leaves_a_readable_store(tmp_path):
    path = tmp_path / "runs.db"
    worker = [sys.executable, str(HERE / "_eval_worker.py")]
    with sim_server_thread(replies=RULES, latency=0.05) as server:
        proc = subprocess.Popen(
            [*worker, server.url, str(path), "60"], stdout=subprocess.DEVNULL, env=ENV
        )
        deadline = time.monotonic() + 60
        completed = 0
        while time.monotonic() < deadline and proc.poll() is None and completed < 10:
            time.sleep(0.05)  # polling another process's file: no event to wait on
            if path.exists():
                with sqlite3.connect(path) as conn:
                    try:
                        completed = conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        completed = 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    store = RunStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (record,) = store.list()
    assert record["status"] == "running" and record["finished_at"] is None
    assert 10 <= record["completed"] < 60, "the worker should have been killed mid-evaluation"
    result = store.load()
    assert result.status == "running" and len(result.rows) == record["completed"]
    for row in result.rows:
        assert row.output == row.target and row.snapshot["nodes"]
        # scored, or killed after its run finished and before its metric returned
        assert (row.score, row.error) in ((1.0, None), (None, None))
    assert sum(row.score == 1.0 for row in result.rows) >= len(result.rows) - 2


async def test_keys_never_reach_the_store(tmp_path):
    key = "sk-test-STORESECRET-0123456789"
    path = tmp_path / "runs.db"
    fault = {"kind": "client_error", "status": 401, "match": {"user": "regex:6610"}}
    with sim_server_thread(replies=RULES, faults=[fault]) as server:
        resources = http_resources(server.url, "task", api_key=key)
        await evaluate(digits_only(), VAL_SET, order_number_check, resources=resources, store=path)
        await run_batch(digits_only(), ["Order 12"], resources=resources, store=path)
        await plait.execute(digits_only(), "Order 13", resources=resources, store=path)
        assert len(server.model.requests) == len(VAL_SET) + 2
    files = [p for p in tmp_path.iterdir() if p.name.startswith("runs.db")]
    assert files
    for file in files:
        assert key.encode() not in file.read_bytes()
    assert [r["kind"] for r in RunStore(path).list()] == ["evaluation", "batch", "run"]


async def test_runs_batches_and_settings_use_the_store(tmp_path):
    path = tmp_path / "runs.db"
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        async with ExecutionSettings(resources=resources, store=path):
            items = await run_batch(digits_only(), ["Order 5", "Order 0066"], progress=False)
            await evaluate(digits_only(), VAL_SET[:2], order_number_check, progress=False)
            await plait.execute(digits_only(), "Order 7", store=False)  # opted out
    store = RunStore(path)
    assert [(r["kind"], r["completed"]) for r in store.list()] == [("batch", 2), ("evaluation", 2)]
    batch = store.load(1)
    assert [r.output for r in batch.rows] == [i.output for i in items] == ["5", "0066"]
    assert batch.score is None and batch.tokens == sum(i.result.usage.total_tokens for i in items)


async def test_bad_arguments_fail_before_anything_is_sent(tmp_path):
    (tmp_path / "notadb.db").write_text("hello, this is not sqlite" * 100)
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        with pytest.raises(StoreError, match="not a plait run store"):
            await evaluate(
                digits_only(),
                VAL_SET,
                order_number_check,
                resources=resources,
                store=tmp_path / "notadb.db",
            )
        with pytest.raises(ConfigError, match=r"examples\[1\]"):
            await evaluate(
                digits_only(), [("a", "1"), "b"], order_number_check, resources=resources
            )
        with pytest.raises(ConfigError, match="metric must be"):
            await evaluate(digits_only(), VAL_SET, "exact", resources=resources)
        with pytest.raises(ConfigError, match="unknown evaluate option"):
            await evaluate(digits_only(), VAL_SET, order_number_check, resources=resources, temp=1)
        with pytest.raises(ConfigError, match="store="):
            await evaluate(digits_only(), VAL_SET, order_number_check, resources=resources, store=3)
        with pytest.raises(ConfigError, match="no endpoint for 'task'"):
            await evaluate(
                digits_only(),
                VAL_SET,
                order_number_check,
                resources=http_resources(server.url, "other"),
                store=tmp_path / "runs.db",
            )
        assert not server.model.requests
    assert RunStore(tmp_path / "runs.db").list() == []  # the refused evaluation left no record
    with pytest.raises(StoreError, match="no record 7"):
        RunStore(tmp_path / "empty.db").load(7)


async def test_a_loss_metric_is_judged_on_the_whole_batch_like_train_does():
    seen = []

    def check(output, target):
        seen.append(output)
        return order_number_check(output, target)

    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        result = await evaluate(
            digits_only(), VAL_SET, VerifierLoss(check), resources=resources, progress=False
        )
    assert sorted(seen) == sorted(r.output for r in result.rows)
    assert [r.score for r in result.rows] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]


async def test_train_records_its_validations_in_the_store(tmp_path):
    path = tmp_path / "runs.db"
    module = OrderNumberExtractor()
    async with ResourceManager(demo_resources()) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=VerifierLoss(order_number_check),
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
            store=path,
            name="order numbers",
        )
    assert history.val_scores == [0.0, 0.5, 1.0]
    steps = RunStore(path).history("order numbers")
    assert [e.score for e in steps] == history.val_scores
    assert [e.info["step"] for e in steps] == [0, 1, 2]
    assert [r["kind"] for r in RunStore(path).list()] == ["evaluation"] * 3  # nothing else stored
    first, last = steps[0], steps[-1]
    assert first.params["instructions"] == START_INSTRUCTIONS
    assert last.params["instructions"].endswith(NO_LEADING_ZEROS)
    assert len(first.compare(last).improved()) == len(VAL_SET)


async def test_batch_options_apply_checkpoint_progress_and_budget(tmp_path):
    checkpoint = tmp_path / "eval.jsonl"
    seen = []
    with sim_server_thread(replies=RULES) as server:
        resources = http_resources(server.url, "task")
        first = await evaluate(
            digits_only(),
            VAL_SET,
            order_number_check,
            resources=resources,
            checkpoint=checkpoint,
            on_progress=seen.append,
            max_concurrent=1,
        )
        sent = len(server.model.requests)
        again = await evaluate(
            digits_only(), VAL_SET, order_number_check, resources=resources, checkpoint=checkpoint
        )
        assert len(server.model.requests) == sent == len(VAL_SET)  # all restored
        assert [r.output for r in again.rows] == [r.output for r in first.rows]
        assert again.score == first.score
        assert [p.done + p.failed for p in seen] == list(range(1, len(VAL_SET) + 1))

        limited = await evaluate(
            digits_only(),
            VAL_SET,
            order_number_check,
            resources=resources,
            max_tokens=40,
            max_concurrent=1,
            progress=False,
        )
    stopped = [r for r in limited.rows if not r.ok]
    assert stopped and all(r.score == 0.0 and "BudgetExceeded" in r.error for r in stopped)
    assert len(limited.rows) == len(VAL_SET)


class Router(plait.Module):
    """Define-by-run: the first reply decides which prompt answers (a graph per example)."""

    def __init__(self):
        super().__init__()
        self.classify = plait.LLMInference("task", system_prompt="Classify: math or poetry.")
        self.math = plait.LLMInference("task", system_prompt="You are a mathematician.")
        self.poet = plait.LLMInference("task", system_prompt="You are a poet.")

    async def forward(self, question):
        label = await self.classify(question)
        expert = self.math if label.strip() == "math" else self.poet
        return expert(question)


async def test_a_define_by_run_module_is_evaluated_and_stored_per_example(tmp_path):
    rules = [
        {"match": {"system": "Classify", "user": "integral"}, "reply": "math"},
        {"match": {"system": "Classify"}, "reply": "poetry"},
        {"match": {"system": "mathematician"}, "reply": "x^2/2"},
        {"match": {"system": "poet"}, "reply": "roses"},
    ]
    examples = [("the integral of x", "x^2/2"), ("a poem on rain", "rain"), ("integral of 1", "x")]
    with sim_server_thread(replies=rules) as server:
        result = await evaluate(
            Router(),
            examples,
            lambda out, want: out == want,
            resources=http_resources(server.url, "task"),
            store=tmp_path / "runs.db",
            progress=False,
        )
    assert [r.output for r in result.rows] == ["x^2/2", "roses", "x^2/2"]
    assert [r.score for r in result.rows] == [1.0, 0.0, 0.0]
    stored = RunStore(tmp_path / "runs.db").load()
    for live, kept in zip(result.rows, stored.rows, strict=True):
        assert sorted(kept.snapshot["nodes"]) == sorted(live.result.nodes)
    assert "math" in stored.rows[0].snapshot["nodes"] and "poet" in stored.rows[1].snapshot["nodes"]


class Lookup(plait.Module):
    """Two inputs per example: the message and what to look for in it."""

    def __init__(self):
        super().__init__()
        self.extract = plait.LLMInference("task", system_prompt="Reply with the digits only.")

    def forward(self, message, field="order"):
        return self.extract(f"{field}: {message}")


async def test_examples_with_several_inputs_use_args_and_come_back_from_the_store(tmp_path):
    examples = [
        (plait.Args("Order 0150 came in.", field="order"), "0150"),
        (plait.Args("Order 77 is late.", "order"), "77"),
    ]
    with sim_server_thread(replies=RULES) as server:
        result = await evaluate(
            Lookup(),
            examples,
            order_number_check,
            resources=http_resources(server.url, "task"),
            store=tmp_path / "runs.db",
            progress=False,
        )
        users = [r.messages[-1]["content"] for r in server.model.requests]
    assert sorted(users) == ["order: Order 0150 came in.", "order: Order 77 is late."]
    assert [r.output for r in result.rows] == ["0150", "77"]
    stored = RunStore(tmp_path / "runs.db").load()
    assert [r.input for r in stored.rows] == [x for x, _ in examples]
    assert isinstance(stored.rows[0].input, plait.Args)
    same = stored.compare(result)
    assert all(r.before is not None and r.after is not None for r in same.rows)
    assert not same.changed()
