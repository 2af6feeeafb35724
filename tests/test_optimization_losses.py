"""Losses: verdict forms, batches, failed samples, and the LLM-backed judges on the simulator."""

from __future__ import annotations

import pytest
from _models import Chain
from _optim_support import manager

import plait
from plait import ExecutionSettings, ResourceConfig
from plait.errors import ConfigError
from plait.optimization import (
    CompositeLoss,
    Feedback,
    FeedbackBatch,
    HumanFeedback,
    LLMJudge,
    PreferenceLoss,
    RankingLoss,
    RubricLoss,
    VerifierLoss,
    record_of,
)
from plait.optimization.judges import JUDGE_SYSTEM, PREFERENCE_SYSTEM, RANKING_SYSTEM, RUBRIC_SYSTEM
from plait.resources.manager import ResourceManager


async def test_verifier_accepts_tuples_bools_scores_and_async_functions():
    async def later(output, target):
        return 0.25

    cases = [
        (lambda o, t: (o == t, "mismatch"), Feedback("mismatch", 0.0, "verifier")),
        (lambda o, t: (0.5, "half"), Feedback("half", 0.5, "verifier")),
        (lambda o, t: True, Feedback("passed", 1.0, "verifier")),
        (lambda o, t: 0.75, Feedback("score 0.75", 0.75, "verifier")),
        (later, Feedback("score 0.25", 0.25, "verifier")),
    ]
    for fn, expected in cases:
        found = await VerifierLoss(fn)("out", "want")
        assert (found.content, found.score, found.kind) == (
            expected.content,
            expected.score,
            expected.kind,
        )


async def test_bad_verdicts_and_batches_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"expected \(ok, message\), a bool, a score"):
        await VerifierLoss(lambda o, t: "yes")("out")
    with pytest.raises(ConfigError, match=r"score must be in \[0, 1\], got 2"):
        await VerifierLoss(lambda o, t: 2)("out")
    with pytest.raises(ConfigError, match="got a batch of 2 outputs but targets"):
        await VerifierLoss(lambda o, t: True)(["a", "b"], ["x"])
    with pytest.raises(ConfigError, match="kind must be one of"):
        Feedback("x", kind="vibes")


async def test_a_failed_batch_item_scores_zero_and_is_not_judged():
    judged = []
    fault = {"kind": "client_error", "match": {"user": "boom"}}
    config = ResourceConfig({"fast": {"provider": "simulated", "faults": [fault]}})
    module = Chain().train()
    async with ResourceManager(config) as resources:
        items = await plait.run_batch(module, ["fine", "boom"], resources=resources, progress=False)
    loss = VerifierLoss(lambda o, t: judged.append(o) or (False, "meh"))
    feedback = await loss(items)
    assert [f.score for f in feedback] == [0.0, 0.0]
    assert judged == [items[0].output]
    assert feedback[1].content.startswith("the run failed, so there is no output to judge: ")
    assert feedback[1].record is None
    await feedback.backward()
    assert [f.sample for f in module.first.system_prompt.feedback] == [0]


async def test_human_feedback_is_data():
    loss = HumanFeedback()
    assert (await loss("out", "Too formal.")).content == "Too formal."
    found = await loss("out", ("Too formal.", 0.4))
    assert (found.content, found.score, found.kind) == ("Too formal.", 0.4, "human")
    found = await loss("out", {"content": "Good", "score": 1})
    assert (found.content, found.score) == ("Good", 1.0)
    answers = {"a": "fine", "b": ("wrong", 0.0)}
    batch = await HumanFeedback(lambda output: answers[output])(["a", "b"])
    assert [(f.content, f.score) for f in batch] == [("fine", None), ("wrong", 0.0)]
    with pytest.raises(ConfigError, match="HumanFeedback has no verdict"):
        await loss("out")


async def test_composite_is_the_weighted_mean_and_lists_every_part():
    loss = CompositeLoss(
        [(VerifierLoss(lambda o, t: (True, "exact")), 3), (VerifierLoss(lambda o, t: False), 1)]
    )
    found = await loss("out", "out")
    assert (found.score, found.kind) == (0.75, "composite")
    assert found.content == "[VerifierLoss x3] exact\n[VerifierLoss x1] failed"
    assert [p["score"] for p in found.details["parts"]] == [1.0, 0.0]
    with pytest.raises(ConfigError, match=r"parts\[0\]: weight must be a positive number"):
        CompositeLoss([(VerifierLoss(bool), 0)])


async def test_loss_feedback_carries_the_outputs_record():
    module = Chain().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    found = await VerifierLoss(lambda o, t: True)(out)
    assert found.record is record_of(out)
    assert found.sample is None


JUDGE_RULES = [
    {
        "match": {"system": JUDGE_SYSTEM[:30], "user": "regex:<<<\\ngood"},
        "json": {"score": 0.9, "feedback": "Nearly there."},
    },
    {"match": {"system": JUDGE_SYSTEM[:30]}, "json": {"score": 0.1, "feedback": "Off topic."}},
]


async def test_llm_judge_scores_each_sample_through_the_resources():
    async with manager("judge", judge=JUDGE_RULES) as resources:
        loss = LLMJudge("judge", "Stays on topic.", resources=resources)
        batch = await loss(["good answer", "bad answer"], ["ref 1", None])
        requests = resources.simulator("judge").requests
    assert type(batch) is FeedbackBatch
    assert [(f.content, f.score, f.kind) for f in batch] == [
        ("Nearly there.", 0.9, "judge"),
        ("Off topic.", 0.1, "judge"),
    ]
    texts = sorted(r.messages[-1]["content"] for r in requests)
    assert texts == [
        "Criteria:\nStays on topic.\n\nOutput:\n<<<\nbad answer\n>>>",
        "Criteria:\nStays on topic.\n\nOutput:\n<<<\ngood answer\n>>>\n\nReference:\n<<<\nref 1\n>>>",
    ]


async def test_llm_losses_fall_back_to_the_active_execution_settings():
    async with (
        manager("judge", judge=JUDGE_RULES) as resources,
        ExecutionSettings(resources=resources),
    ):
        found = await LLMJudge("judge", "Stays on topic.")("good answer")
    assert found.score == 0.9


async def test_rubric_scores_the_chosen_levels_rank():
    rule = {
        "match": {"system": RUBRIC_SYSTEM[:30]},
        "json": {"level": "ok", "feedback": "Misses a step."},
    }
    async with manager("judge", judge=[rule]) as resources:
        loss = RubricLoss(
            "judge",
            "Completeness",
            {"poor": "wrong", "ok": "partial", "good": "complete"},
            resources=resources,
        )
        found = await loss("an answer")
        prompt = resources.simulator("judge").requests[0].messages[-1]["content"]
    assert (found.content, found.score, found.kind) == ("ok: Misses a step.", 0.5, "rubric")
    assert "Levels (worst first):\n- poor: wrong\n- ok: partial\n- good: complete" in prompt
    with pytest.raises(ConfigError, match="at least two distinct levels"):
        RubricLoss("judge", "x", ["only"])


async def test_preference_compares_pairs_and_gives_both_sides_feedback():
    rule = {
        "match": {"system": PREFERENCE_SYSTEM[:30]},
        "json": {"preferred": "B", "reason": "B cites sources."},
    }
    async with manager("judge", judge=[rule]) as resources:
        loss = PreferenceLoss("judge", "Cites sources.", resources=resources)
        a, b = await loss.compare("first", "second")
        single = await loss("mine", "theirs")
        prompt = resources.simulator("judge").requests[0].messages[-1]["content"]
    assert (a.score, a.content) == (0.0, "The alternative was preferred: B cites sources.")
    assert (b.score, b.content) == (1.0, "Preferred over the alternative: B cites sources.")
    assert single.score == 0.0
    assert prompt == "Criteria:\nCites sources.\n\nA:\n<<<\nfirst\n>>>\n\nB:\n<<<\nsecond\n>>>"
    with pytest.raises(ConfigError, match="compares each output with its target"):
        await loss("mine")


async def test_ranking_ranks_a_batch_in_one_request_and_completes_partial_rankings():
    rule = {
        "match": {"system": RANKING_SYSTEM[:30]},
        "json": {"ranking": [3, 1, 3, 9], "reason": "clarity"},
    }
    async with manager("judge", judge=[rule]) as resources:
        loss = RankingLoss("judge", "Clarity", resources=resources)
        batch = await loss(["one", "two", "three"])
        assert len(resources.simulator("judge").requests) == 1
    assert [(f.content, f.score) for f in batch] == [
        ("Ranked 2 of 3: clarity", 0.5),
        ("Ranked 3 of 3: clarity", 0.0),
        ("Ranked 1 of 3: clarity", 1.0),
    ]
    with pytest.raises(ConfigError, match="needs at least two outputs, got 1"):
        await loss("alone")
