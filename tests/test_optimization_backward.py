"""Training-mode outputs carry records; feedback.backward() routes feedback to parameters."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from _models import Chain, learnable
from _optim_support import Diamond, Structured, Styled, TwoStage, manager

import plait
from plait import LLMInference, Module
from plait.errors import ConfigError
from plait.execution.records import RecordedDict, RecordedStr
from plait.optimization import (
    Feedback,
    FeedbackBatch,
    LLMBackward,
    RouteBackward,
    VerifierLoss,
    attach_record,
    record_of,
)
from plait.optimization.backward import CRITIC_SYSTEM

FAIL = VerifierLoss(lambda output, target: (False, "too vague"))


def feedback_counts(module: Module) -> dict[str, int]:
    return {name: len(p.feedback) for name, p in module.named_parameters()}


async def test_training_outputs_behave_like_plain_ones_and_carry_records():
    module = Structured().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    assert type(out) is RecordedDict
    assert out == {"label": out["label"], "loud": out["loud"]}
    assert isinstance(out["label"], str)
    assert record_of(out).refs == ("select_label", "upper")
    assert record_of(out["label"]).refs == ("select_label",)
    assert record_of(out["loud"]).refs == ("upper",)
    assert record_of(out["label"]).path == ("label",)
    assert json.loads(json.dumps(out)) == dict(out)
    assert type(pickle.loads(pickle.dumps(out))["label"]) is str
    assert type(copy.deepcopy(out)) is dict


async def test_eval_mode_outputs_are_plain():
    module = Chain()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    assert type(out) is str
    assert record_of(out) is None


async def test_a_field_of_one_nodes_structured_output_names_the_field():
    module = LLMInference(
        "fast",
        system_prompt=learnable("Label it."),
        response_format={
            "type": "object",
            "properties": {"label": {"type": "string"}},
            "required": ["label"],
        },
    ).train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    record = record_of(out["label"])
    assert (record.refs, record.field) == (("llm_inference",), ("label",))
    await (await FAIL(out["label"])).backward()
    (routed,) = module.system_prompt.feedback
    assert (
        "Feedback on the final output['label'] (field label of this node's output)"
        in routed.content
    )


async def test_chain_routes_to_both_prompts_through_the_downstream_node():
    module = Chain().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    await (await FAIL(out)).backward()
    assert feedback_counts(module) == {"first.system_prompt": 1, "second.system_prompt": 1}
    first = module.first.system_prompt.feedback[0]
    second = module.second.system_prompt.feedback[0]
    assert (first.parameter, first.score, first.kind) == ("first.system_prompt", 0.0, "verifier")
    assert second.content.startswith("`second.system_prompt` is the system prompt of:\n")
    assert "Feedback on the final output (score 0.00): too vague" in second.content
    # The upstream prompt hears about the downstream node it feeds, with that node's input and output.
    assert (
        "Your output is used by:\n    LLM node `second` (endpoint 'fast'): second(<first>)"
        in first.content
    )
    assert f"output: {out}" in first.content
    assert first.record is record_of(out)


async def test_diamond_shared_node_hears_from_both_branches_once_per_sample():
    module = Diamond().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    await (await FAIL(out)).backward()
    assert set(feedback_counts(module).values()) == {1}
    top = module.top.system_prompt.feedback[0].content
    for branch in ("left", "right"):
        assert top.count(f"  - Your output is used by:\n    LLM node `{branch}`") == 1
    assert top.count("LLM node `join` (endpoint 'fast'): join(f'L: {left}\\nR: {right}')") == 2


async def test_fstring_routes_to_the_summary_node_and_the_style_parameter():
    module = Styled().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    await (await FAIL(out)).backward()
    assert feedback_counts(module) == {"style": 1, "summarize.system_prompt": 1}
    style = module.style.feedback[0].content
    summary = module.summarize.system_prompt.feedback[0].content
    assert style.startswith("`style` is part of the input of:\n")
    assert "analyze(f'Summary:\\n{summarize}\\nStyle: {style}')" in style
    assert "Style: Be brief." in style  # the rendered prompt the node received
    assert "Your output is used by:\n    LLM node `analyze`" in summary


async def test_structured_access_routes_only_the_branch_that_made_the_field():
    module = Structured().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    await (await FAIL(out["label"])).backward()
    assert feedback_counts(module) == {"classify.system_prompt": 1, "echo.system_prompt": 0}
    content = module.classify.system_prompt.feedback[0].content
    assert "op node `select_label`: select_label(<classify>, 'label')" in content
    assert "Feedback on the final output['label'] (score 0.00): too vague" in content

    await (await FAIL(out["loud"])).backward()
    assert feedback_counts(module) == {"classify.system_prompt": 1, "echo.system_prompt": 1}
    assert "op node `upper`: upper(<echo>)" in module.echo.system_prompt.feedback[0].content


async def test_each_batch_sample_gets_its_own_feedback():
    module = Chain().train()
    texts = ["alpha", "beta", "gamma"]
    async with manager("fast") as resources:
        items = await plait.run_batch(module, texts, resources=resources, progress=False)
    loss = VerifierLoss(lambda output, target: (target in output, f"should mention {target}"))
    feedback = await loss(items, texts)
    assert type(feedback) is FeedbackBatch
    assert [f.sample for f in feedback] == [0, 1, 2]
    assert feedback.score == 1.0
    await feedback.backward()
    routed = module.first.system_prompt.feedback
    assert [f.sample for f in routed] == [0, 1, 2]
    for f, text in zip(routed, texts, strict=True):
        assert f"input: {text}\n" in f.content
        assert f"should mention {text}" in f.content
        assert [t for t in texts if f"input: {t}\n" in f.content] == [text]


async def test_frozen_parameters_receive_nothing_but_routing_continues():
    module = Chain().train()
    module.second.system_prompt.requires_grad_(False)
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    await (await FAIL(out)).backward()
    assert feedback_counts(module) == {"first.system_prompt": 1, "second.system_prompt": 0}


async def test_feedback_without_a_record_refuses_to_propagate():
    with pytest.raises(ConfigError, match=r"module.train\(\) before"):
        await Feedback("bad").backward()
    async with manager("fast") as resources:
        out = await plait.run(Chain(), "hello", resources=resources)  # eval mode
    with pytest.raises(ConfigError, match="no forward record"):
        await (await FAIL(out)).backward()


async def test_execute_results_can_be_given_records():
    module = Chain()
    async with manager("fast") as resources:
        result = await plait.execute(module, "hello", resources=resources)
    out = attach_record(module, result)
    assert type(out) is RecordedStr and out == result.output
    await (await FAIL(out)).backward()
    assert feedback_counts(module) == {"first.system_prompt": 1, "second.system_prompt": 1}


async def test_a_custom_strategy_decides_what_each_target_hears():
    class Terse(RouteBackward):
        async def __call__(self, step):
            return {t: f"{step.node.id}->{t}: {len(step.feedback)}" for t in step.targets}

    module = TwoStage().train()
    async with manager("fast") as resources:
        out = await plait.run(module, "hello", resources=resources)
    await (await FAIL(out)).backward(Terse())
    assert [f.content for _, p in module.named_parameters() for f in p.feedback] == [
        "polish->param:polish.system_prompt: 1",
        "draft.llm->param:draft.instructions: 1",
        "draft.llm->param:draft.tone: 1",
    ]


async def test_llm_backward_asks_the_critic_once_per_llm_node():
    critic = {
        "match": {"system": CRITIC_SYSTEM[:40], "user": r"regex:LLM node `(?P<node>[^`]+)`"},
        "json": {
            "parameter_feedback": "prompt of {node}: be specific",
            "input_feedback": "input of {node}: shorter",
        },
    }
    module = Chain().train()
    async with manager("fast", "critic", critic=[critic]) as resources:
        out = await plait.run(module, "hello", resources=resources)
        await (await FAIL(out)).backward(LLMBackward("critic", resources=resources))
        requests = resources.simulator("critic").requests
    assert len(requests) == 2
    assert (
        "Feedback on the final output (score 0.00): too vague"
        in requests[0].messages[-1]["content"]
    )
    first = module.first.system_prompt.feedback[0].content
    second = module.second.system_prompt.feedback[0].content
    assert second.startswith("Advice from 'critic': prompt of second: be specific\n")
    assert first.startswith("Advice from 'critic': prompt of first: be specific\n")
    assert "Advice from 'critic': input of second: shorter" in first
