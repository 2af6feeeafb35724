"""Optimizer: ordered updates, module cohesion, reviewable proposals, audit log, state."""

from __future__ import annotations

import json

import pytest
from _models import Chain, learnable
from _optim_support import ECHO_UPDATER, TwoStage, manager

import plait
from plait.errors import ConfigError
from plait.optimization import Feedback, Optimizer, VerifierLoss, plan_updates
from plait.optimization.optimizer import UPDATER_SYSTEM

FAIL = VerifierLoss(lambda output, target: (False, "too vague"))


async def backward_once(module, resources, text="hello"):
    module.train()
    out = await plait.run(module, text, resources=resources)
    await (await FAIL(out)).backward()
    return out


def user_texts(resources, alias="optimizer"):
    return [r.messages[-1]["content"] for r in resources.simulator(alias).requests]


async def test_updates_go_upstream_first_and_show_upstream_old_and_new_values():
    module = TwoStage()
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        await backward_once(module, resources)
        optimizer = Optimizer(module, resources=resources)
        proposals = await optimizer.propose()
        first, second = user_texts(resources)
    # polish is declared first, but draft feeds it, so draft's request goes first.
    assert [p.name for p in proposals] == ["draft.instructions", "polish.system_prompt"]
    assert "### Parameter `draft.instructions`" in first and "Upstream" not in first
    assert "### Parameter `polish.system_prompt`" in second
    assert (
        "### Upstream `draft.instructions`\n"
        "Old value:\n<<<\nDraft an answer.\n>>>\n"
        "New value:\n<<<\nDraft an answer. [improved]\n>>>"
    ) in second
    assert (
        "### Upstream `draft.tone`\nOld value:\n<<<\nFriendly.\n>>>\nNew value: unchanged" in second
    )
    assert proposals[1].new_value == "Polish the draft. [improved]"
    assert module.polish.system_prompt.value == "Polish the draft."  # nothing applied yet


async def test_parameters_of_one_module_are_proposed_in_one_request():
    both = {
        "match": {"system": UPDATER_SYSTEM[:40], "user": "### Parameter `draft.tone`"},
        "json": {
            "updates": [
                {
                    "name": "draft.instructions",
                    "value": "Draft in three bullets.",
                    "rationale": "a",
                },
                {"name": "draft.tone", "value": "Neutral.", "rationale": "b"},
            ]
        },
    }
    module = TwoStage()
    async with manager("fast", "optimizer", optimizer=[both, *ECHO_UPDATER]) as resources:
        await backward_once(module, resources)
        proposals = await Optimizer(module, resources=resources).step()
        requests = resources.simulator("optimizer").requests
    assert len(requests) == 2
    draft = requests[0].messages[-1]["content"]
    assert draft.startswith("Update 2 parameters of module draft together")
    assert "### Parameter `draft.instructions`" in draft and "### Parameter `draft.tone`" in draft
    schema = requests[0].body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["updates"]["items"]["properties"]["name"]["enum"] == [
        "draft.instructions",
        "draft.tone",
    ]
    assert [(p.name, p.new_value) for p in proposals] == [
        ("draft.instructions", "Draft in three bullets."),
        ("draft.tone", "Neutral."),
        ("polish.system_prompt", "Polish the draft. [improved]"),
    ]
    assert "New value:\n<<<\nNeutral.\n>>>" in requests[1].messages[-1]["content"]
    assert module.draft.tone.value == "Neutral."


async def test_review_accept_edit_reject_then_apply_and_audit(tmp_path):
    log = tmp_path / "audit" / "log.jsonl"
    module = Chain()
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        await backward_once(module, resources)
        optimizer = Optimizer(module, resources=resources, audit_log=log)
        first, second = await optimizer.propose()
    assert (first.name, first.status, first.old_value, first.new_value) == (
        "first.system_prompt",
        "pending",
        "First prompt.",
        "First prompt. [improved]",
    )
    assert first.feedback == tuple(module.first.system_prompt.feedback)
    assert first.rationale == "r"
    first.edit("First prompt, edited by a person.")
    second.reject("keep it")
    assert optimizer.apply() == [first]
    assert module.first.system_prompt.value == "First prompt, edited by a person."
    assert module.second.system_prompt.value == "Second prompt."
    assert (first.status, first.applied, second.status, second.applied) == (
        "edited",
        True,
        "rejected",
        False,
    )
    with pytest.raises(ConfigError, match="already applied"):
        first.accept()

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries == optimizer.audit.entries
    assert [(e["event"], e["name"]) for e in entries] == [
        ("proposed", "first.system_prompt"),
        ("proposed", "second.system_prompt"),
        ("edited", "first.system_prompt"),
        ("rejected", "second.system_prompt"),
        ("applied", "first.system_prompt"),
    ]
    proposed, _, edited, rejected, applied = entries
    assert (
        proposed["feedback"][0]["score"] == 0.0
        and "too vague" in proposed["feedback"][0]["content"]
    )
    assert (edited["proposed_value"], edited["new_value"]) == (
        "First prompt. [improved]",
        "First prompt, edited by a person.",
    )
    assert rejected["reason"] == "keep it"
    assert (applied["old_value"], applied["new_value"], applied["version"]) == (
        "First prompt.",
        "First prompt, edited by a person.",
        1,
    )


async def test_pending_proposals_wait_and_stale_ones_are_refused():
    module = Chain()
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        await backward_once(module, resources)
        optimizer = Optimizer(module, resources=resources)
        first, second = await optimizer.propose()
    assert optimizer.apply() == []
    first.accept()
    second.accept()
    module.second.system_prompt.apply_update("Changed meanwhile.")
    with pytest.raises(
        ConfigError,
        match="'second.system_prompt' was proposed at version 0 but is now at version 1",
    ):
        optimizer.apply()
    assert module.first.system_prompt.value == "First prompt."  # nothing half-applied


async def test_only_learnable_parameters_with_unsatisfied_feedback_are_updated():
    module = TwoStage()
    module.draft.tone.requires_grad_(False)
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        await backward_once(module, resources)
        module.draft.instructions.zero_feedback()
        module.draft.instructions.accumulate_feedback(Feedback("perfect", 1.0))
        optimizer = Optimizer(module, resources=resources)
        proposals = await optimizer.step()
        texts = user_texts(resources)
    assert [p.name for p in proposals] == ["polish.system_prompt"]
    assert len(texts) == 1 and "draft.tone`\n" not in texts[0]
    assert (optimizer.audit.entries[0]["event"], optimizer.audit.entries[0]["name"]) == (
        "satisfied",
        "draft.instructions",
    )


async def test_nothing_to_do_sends_no_request():
    module = Chain()
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        assert await Optimizer(module, resources=resources).step() == []
        assert resources.simulator("optimizer").requests == ()


async def test_zero_feedback_and_bare_parameters_named_by_their_graph():
    module = Chain()
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        await backward_once(module, resources)
        optimizer = Optimizer(module.parameters(), resources=resources)
        assert [n for n, _ in optimizer.named_parameters()] == [
            "first.system_prompt",
            "second.system_prompt",
        ]
        optimizer.zero_feedback()
        assert [len(p.feedback) for p in module.parameters()] == [0, 0]
    with pytest.raises(
        ConfigError, match=r"must be Parameters or \(name, Parameter\) pairs; got \[0\] 'oops'"
    ):
        Optimizer(["oops"])
    with pytest.raises(ConfigError, match="no parameters"):
        Optimizer([])


async def test_optimizer_state_round_trips_through_json():
    module = Chain()
    async with manager("fast", "optimizer", optimizer=ECHO_UPDATER) as resources:
        await backward_once(module, resources)
        optimizer = Optimizer(module, resources=resources)
        await optimizer.step()
    state = json.loads(json.dumps(optimizer.state_dict()))
    assert state["steps"] == 1
    assert state["parameters"] == {
        "first.system_prompt": "First prompt. [improved]",
        "second.system_prompt": "Second prompt. [improved]",
    }
    fresh = Chain()
    restored = Optimizer(fresh)
    restored.load_state_dict(state)
    assert fresh.state_dict() == module.state_dict()
    assert (restored.steps, restored.history) == (1, optimizer.history)
    with pytest.raises(ConfigError, match="unknown parameters nope"):
        restored.load_state_dict({"parameters": {"nope": "x"}})


def test_module_state_round_trips_through_a_file(tmp_path):
    module = Chain()
    module.first.system_prompt.apply_update("Learned prompt.")
    module.save(tmp_path / "chain.json")
    fresh = Chain()
    fresh.load(tmp_path / "chain.json")
    assert fresh.state_dict() == {
        "first.system_prompt": "Learned prompt.",
        "second.system_prompt": "Second prompt.",
    }
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="holds a list, not a module state"):
        fresh.load(tmp_path / "bad.json")
    odd = Chain()
    odd.extra = learnable("x")
    odd.extra._value = object()
    with pytest.raises(
        ConfigError, match="parameter\\(s\\) extra hold values JSON cannot represent"
    ):
        odd.save(tmp_path / "odd.json")


class _Sandwich(plait.Module):
    """Module ``outer`` has a prompt before and after ``middle``: neither module can go first."""

    def __init__(self) -> None:
        super().__init__()
        self.outer = plait.Module()
        self.outer.before = learnable("Before.")
        self.outer.after = learnable("After.")
        self.outer.first = plait.LLMInference("fast", system_prompt=self.outer.before)
        self.outer.last = plait.LLMInference("fast", system_prompt=self.outer.after)
        self.middle = plait.LLMInference("fast", system_prompt=learnable("Middle."))
        self.alone = plait.LLMInference("fast", system_prompt=learnable("Alone."))

    def forward(self, text):
        return {
            "main": self.outer.last(self.middle(self.outer.first(text))),
            "side": self.alone(text),
        }


def test_plan_orders_groups_and_merges_modules_that_feed_each_other():
    module = _Sandwich()
    graph = plait.trace(module, "x")
    plan = plan_updates(list(module.named_parameters()), [graph])
    assert plan.groups == (
        ("outer.before", "outer.after", "middle.system_prompt"),
        ("alone.system_prompt",),
    )
    assert plan.upstream["outer.after"] == ("outer.before", "middle.system_prompt")
    assert plan.upstream["middle.system_prompt"] == ("outer.before",)
    assert plan.upstream["alone.system_prompt"] == ()
