"""The training loop on the scripted offline task: the score rises, budgets and early stops hold."""

from __future__ import annotations

import pytest
from _exec_support import http_resources
from _sim_support import sim_server

from plait import ResourceConfig
from plait.errors import ConfigError
from plait.optimization import LLMJudge, Optimizer, VerifierLoss, train
from plait.optimization.demo import (
    DIGITS_ONLY,
    JUDGE_RULES,
    NO_LEADING_ZEROS,
    START_INSTRUCTIONS,
    TASK_RULES,
    TRAIN_SET,
    UPDATER_RULES,
    VAL_SET,
    OrderNumberExtractor,
    demo_resources,
    order_number_check,
)
from plait.optimization.optimizer import UPDATER_SYSTEM
from plait.resources.manager import ResourceManager

CHECK = VerifierLoss(order_number_check)


async def test_training_on_the_simulator_raises_the_validation_score(tmp_path):
    module = OrderNumberExtractor()
    async with ResourceManager(demo_resources()) as resources:
        optimizer = Optimizer(module, resources=resources, audit_log=tmp_path / "audit.jsonl")
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=optimizer,
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
        )
        updater_requests = resources.simulator("optimizer").requests
    assert history.val_scores == [0.0, 0.5, 1.0]
    assert [row["train_score"] for row in history.rows] == [None, 0.0, 0.5]
    assert [row["updates"] for row in history.rows] == [0, 1, 1]
    assert (history.stop_reason, history.best_step, history.best_score) == ("completed", 2, 1.0)
    assert module.instructions.value == f"{START_INSTRUCTIONS} {DIGITS_ONLY} {NO_LEADING_ZEROS}"
    assert len(updater_requests) == 2
    assert module.training is False and module.instructions.feedback == []
    events = [
        line.split('"event": "')[1].split('"')[0]
        for line in (tmp_path / "audit.jsonl").read_text().splitlines()
    ]
    assert events == ["proposed", "accepted", "applied"] * 2


async def test_an_llm_judge_drives_the_same_improvement():
    module = OrderNumberExtractor()
    async with ResourceManager(demo_resources()) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=LLMJudge("judge", "Reply with the order number only.", resources=resources),
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            metric=order_number_check,
            batch_size=4,
            resources=resources,
        )
    assert history.val_scores == [0.0, 0.5, 1.0]
    assert [row["train_score"] for row in history.rows] == [None, 0.0, 0.75]


async def test_target_score_stops_early():
    module = OrderNumberExtractor()
    async with ResourceManager(demo_resources()) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=2,
            epochs=3,
            target_score=0.5,
            resources=resources,
        )
    assert (history.val_scores, history.stop_reason) == ([0.0, 0.5], "target_reached")


async def test_no_improvement_stops_after_patience_steps():
    stuck = [{"match": {"system": UPDATER_SYSTEM[:40]}, "json": {"updates": []}}]
    module = OrderNumberExtractor()
    async with ResourceManager(
        demo_resources().with_overrides("optimizer", replies=stuck)
    ) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=2,
            epochs=5,
            patience=2,
            resources=resources,
        )
        assert len(resources.simulator("optimizer").requests) == 2
    assert (history.val_scores, history.stop_reason) == ([0.0, 0.0, 0.0], "no_improvement")


async def test_the_best_values_are_restored_when_a_later_step_is_worse():
    harmful = [
        {
            "match": {"system": UPDATER_SYSTEM[:40], "user": "leading zeros"},
            "json": {
                "updates": [{"name": "instructions", "value": "Chat freely.", "rationale": "r"}]
            },
        },
        *UPDATER_RULES,
    ]
    module = OrderNumberExtractor()
    async with ResourceManager(
        demo_resources().with_overrides("optimizer", replies=harmful)
    ) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
        )
    assert history.val_scores == [0.0, 0.5, 0.0]
    assert (history.best_step, history.restored) == (1, True)
    assert module.instructions.value == f"{START_INSTRUCTIONS} {DIGITS_ONLY}"


def priced() -> ResourceConfig:
    return demo_resources(input_cost_per_million=1000.0, output_cost_per_million=1000.0)


async def test_the_budget_stops_training_cleanly_between_phases():
    async with ResourceManager(priced()) as resources:
        module = OrderNumberExtractor()
        full = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
        )
    assert full.stop_reason == "completed" and full.cost > full.rows[1]["cost"] > 0

    async with ResourceManager(priced()) as resources:
        module = OrderNumberExtractor()
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
            max_cost=full.rows[1]["cost"],
        )
        updater_requests = len(resources.simulator("optimizer").requests)
    assert (history.val_scores, history.stop_reason) == ([0.0, 0.5], "budget")
    assert history.cost == full.rows[1]["cost"]
    assert updater_requests == 1
    assert module.instructions.value == f"{START_INSTRUCTIONS} {DIGITS_ONLY}"

    async with ResourceManager(priced()) as resources:
        module = OrderNumberExtractor()
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
            max_cost=1e-9,
        )
        assert resources.simulator("optimizer").requests == ()
    assert (history.val_scores, history.stop_reason) == ([0.0], "budget")
    assert module.instructions.value == START_INSTRUCTIONS


async def test_history_as_a_dataframe():
    module = OrderNumberExtractor()
    async with ResourceManager(demo_resources()) as resources:
        seen = []
        history = await train(
            module,
            TRAIN_SET[:4],
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
            on_step=seen.append,
        )
    frame = history.to_dataframe()
    assert list(frame.columns) == ["epoch", "train_score", "val_score", "updates", "cost", "tokens"]
    assert frame["val_score"].tolist() == [0.0, 0.5]
    assert seen == history.rows


async def test_bad_arguments_are_refused():
    module = OrderNumberExtractor()
    optimizer = Optimizer(module)
    with pytest.raises(ConfigError, match="batch_size=0: must be an integer >= 1"):
        await train(module, TRAIN_SET, loss=CHECK, optimizer=optimizer, batch_size=0)
    with pytest.raises(ConfigError) as info:
        await train(
            module, TRAIN_SET, loss=CHECK, optimizer=optimizer, target_score=5, restore_best="yes"
        )
    assert "target_score=5: must be a number from 0 to 1" in str(info.value)
    assert "restore_best='yes': must be True or False" in str(info.value)
    with pytest.raises(ConfigError, match=r"train_set\[0\] is 'just text'"):
        await train(module, ["just text"], loss=CHECK, optimizer=optimizer)


def test_the_task_rules_are_plain_data():
    config = demo_resources()
    assert config["task"].replies == TASK_RULES
    assert config["judge"].replies == JUDGE_RULES


async def test_training_through_the_http_client_against_the_loopback_simulator():
    rules = [*UPDATER_RULES, *JUDGE_RULES, *TASK_RULES]  # one server: the specific rules first
    module = OrderNumberExtractor()
    async with sim_server(replies=rules) as server:
        resources = http_resources(server.url, "task", "judge", "optimizer")
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
        )
        updates = [r for r in server.model.requests if r.model == "sim-optimizer"]
    assert history.val_scores == [0.0, 0.5, 1.0]
    assert len(updates) == 2
    assert "### Parameter `instructions`" in updates[1].messages[-1]["content"]
    assert (
        f"Current value:\n<<<\n{START_INSTRUCTIONS} {DIGITS_ONLY}\n>>>"
        in updates[1].messages[-1]["content"]
    )


async def test_restore_best_keeps_the_initial_values_when_no_step_improves():
    useless = [
        {
            "match": {"system": UPDATER_SYSTEM[:40]},
            "json": {
                "updates": [{"name": "instructions", "value": "Chat freely.", "rationale": "r"}]
            },
        }
    ]
    module = OrderNumberExtractor()
    async with ResourceManager(
        demo_resources().with_overrides("optimizer", replies=useless)
    ) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
        )
    assert history.val_scores == [0.0, 0.0, 0.0]
    assert history.rows[1]["updates"] == 1  # a proposal was applied, and scored no better
    assert (history.best_step, history.best_score, history.restored) == (0, 0.0, True)
    assert module.instructions.value == START_INSTRUCTIONS
    assert "best_step=0, restored" in repr(history)


async def test_restore_best_false_keeps_the_last_values():
    useless = [
        {
            "match": {"system": UPDATER_SYSTEM[:40]},
            "json": {
                "updates": [{"name": "instructions", "value": "Chat freely.", "rationale": "r"}]
            },
        }
    ]
    module = OrderNumberExtractor()
    async with ResourceManager(
        demo_resources().with_overrides("optimizer", replies=useless)
    ) as resources:
        history = await train(
            module,
            TRAIN_SET,
            loss=CHECK,
            optimizer=Optimizer(module, resources=resources),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
            restore_best=False,
        )
    assert history.restored is False
    assert module.instructions.value == "Chat freely."
