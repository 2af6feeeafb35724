"""OptimizerReview: proposals as diffs, accept / edit / reject clicks, apply, --review, rich reprs."""

import json
import sys

from _jupyter_support import SECRET, XSS, magics, run_cell, shell, widget_ids
from hypothesis import given
from hypothesis import strategies as st

from plait import Module, Parameter, Value, ValueKind, execute, run_batch, trace
from plait.optimization import Feedback, Optimizer, UpdateProposal, VerifierLoss
from plait.optimization.demo import (
    DIGITS_ONLY,
    START_INSTRUCTIONS,
    TRAIN_SET,
    OrderNumberExtractor,
    demo_resources,
    order_number_check,
)
from plait_jupyter import OptimizerReview
from plait_jupyter.reprs import proposal_html
from plait_jupyter.review import diff_segments

TEXTS = [message for message, _ in TRAIN_SET[:2]]
TARGETS = [target for _, target in TRAIN_SET[:2]]
PROPOSED = f"{START_INSTRUCTIONS} {DIGITS_ONLY}"
RATIONALE = "Feedback: the replies wrap the number in words."
ESCAPED = "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;"


class Trio(Module):
    """Three extractors: three modules, so three proposals per step."""

    def __init__(self) -> None:
        super().__init__()
        self.first = OrderNumberExtractor()
        self.second = OrderNumberExtractor()
        self.third = OrderNumberExtractor()

    def forward(self, message):
        return self.first(message), self.second(message), self.third(message)


async def backward(module, resources):
    """Every extractor answers with a sentence; the verifier asks for the digits only."""
    module.train()
    for child in module.children():
        items = await run_batch(child, TEXTS, resources=resources)
        await (await VerifierLoss(order_number_check)(items, TARGETS)).backward()


async def proposed(**optimizer_options):
    resources = demo_resources(api_key=SECRET)
    trio = Trio()
    await backward(trio, resources)
    optimizer = Optimizer(trio, resources=resources, **optimizer_options)
    await optimizer.propose()
    return trio, optimizer


def keys(review):
    return [p["key"] for p in review.proposals]


def test_diff_segments_are_words_within_changed_lines():
    assert diff_segments("Be concise.", "Be concise. Reply with the digits only.") == [
        ["equal", "Be concise."],
        ["insert", " Reply with the digits only."],
    ]
    assert diff_segments("Be concise and concrete.", "Be brief and very concrete!") == [
        ["equal", "Be "],
        ["delete", "concise"],
        ["insert", "brief"],
        ["equal", " and "],
        ["insert", "very "],
        ["equal", "concrete"],
        ["delete", "."],
        ["insert", "!"],
    ]
    assert diff_segments("one\ntwo\nthree\n", "one\n2\nthree\nfour\n") == [
        ["equal", "one\n"],
        ["delete", "two"],
        ["insert", "2"],
        ["equal", "\nthree\n"],
        ["insert", "four\n"],
    ]
    # A change of several words reads as one phrase, not word / space / word.
    assert diff_segments("say a b c now", "say x y z now") == [
        ["equal", "say "],
        ["delete", "a b c"],
        ["insert", "x y z"],
        ["equal", " now"],
    ]


@given(st.text(), st.text())
def test_diff_segments_rebuild_both_texts(old, new):
    segments = diff_segments(old, new)
    assert "".join(t for op, t in segments if op != "insert") == old
    assert "".join(t for op, t in segments if op != "delete") == new
    assert all(t for _, t in segments)


async def test_each_proposal_is_shown_with_its_diff_rationale_and_feedback():
    _, optimizer = await proposed()
    review = OptimizerReview(optimizer)
    assert keys(review) == ["1:first.instructions", "1:second.instructions", "1:third.instructions"]
    card = review.proposals[0]
    assert (card["status"], card["applied"], card["old"], card["new"]) == (
        "pending",
        False,
        START_INSTRUCTIONS,
        PROPOSED,
    )
    assert card["diff"] == [["equal", START_INSTRUCTIONS], ["insert", f" {DIGITS_ONLY}"]]
    assert card["rationale"] == RATIONALE
    assert (card["feedback_count"], card["mean_score"]) == (2, 0.0)
    first = card["feedback"][0]
    assert (first["score"], first["kind"], first["sample"]) == (0.0, "verifier", 0)
    assert "expected '4512', got 'The order number is 4512.'" in first["content"]
    assert review.info == {"can_apply": True, "step": 1, "alias": "optimizer", "audit_entries": 3}
    assert review.history == [{"step": 1, "counts": {"proposed": 3}, "changes": []}]


async def test_accept_edit_and_reject_clicks_decide_the_proposals():
    trio, optimizer = await proposed()
    review = OptimizerReview(optimizer)
    first, second, third = optimizer.proposals
    review.handle_message({"type": "accept", "key": "1:first.instructions"})
    review.handle_message({"type": "edit", "key": "1:second.instructions", "value": "Digits."})
    review.handle_message({"type": "reject", "key": "1:third.instructions", "reason": " vague "})
    assert [(p.status, p.new_value) for p in (first, second, third)] == [
        ("accepted", PROPOSED),
        ("edited", "Digits."),
        ("rejected", PROPOSED),
    ]
    cards = review.proposals
    assert [c["status"] for c in cards] == ["accepted", "edited", "rejected"]
    assert cards[1]["new"] == "Digits." and cards[1]["proposed"] == PROPOSED
    assert cards[1]["diff"] == [
        ["delete", START_INSTRUCTIONS[:-1]],
        ["insert", "Digits"],
        ["equal", "."],
    ]
    assert cards[2]["reason"] == "vague"
    optimizer.proposals[0].reject("too long")  # decided in code: shown after a refresh
    review.refresh()
    assert (review.proposals[0]["status"], review.proposals[0]["reason"]) == (
        "rejected",
        "too long",
    )
    assert review.message == {"kind": "info", "text": "third.instructions: rejected", "seq": 3}
    assert trio.first.instructions.value == START_INSTRUCTIONS  # nothing applied yet
    events = [(e["event"], e["name"]) for e in optimizer.audit.entries[3:]]
    assert events == [
        ("accepted", "first.instructions"),
        ("edited", "second.instructions"),
        ("rejected", "third.instructions"),
        ("rejected", "first.instructions"),
    ]


async def test_apply_sets_the_decided_values_and_appends_to_the_audit_log_and_history():
    trio, optimizer = await proposed()
    review = OptimizerReview(optimizer)
    review.handle_message({"type": "accept", "key": "1:first.instructions"})
    review.handle_message({"type": "edit", "key": "1:second.instructions", "value": "Digits."})
    review.handle_message({"type": "apply"})
    assert trio.first.instructions.value == PROPOSED
    assert trio.second.instructions.value == "Digits."
    assert trio.third.instructions.value == START_INSTRUCTIONS  # still pending
    assert review.message["text"] == (
        "Applied 2 changes: first.instructions (accepted, now version 1), "
        "second.instructions (edited, now version 1); 1 still pending."
    )
    applied = [e for e in optimizer.audit.entries if e["event"] == "applied"]
    assert [(e["name"], e["new_value"], e["version"]) for e in applied] == [
        ("first.instructions", PROPOSED, 1),
        ("second.instructions", "Digits.", 1),
    ]
    assert [(c["status"], c["applied"], c["version"]) for c in review.proposals] == [
        ("accepted", True, 1),
        ("edited", True, 1),
        ("pending", False, 0),
    ]
    (step,) = review.history
    assert step["counts"] == {"proposed": 3, "accepted": 1, "edited": 1, "applied": 2}
    assert [(c["name"], c["status"], c["version"]) for c in step["changes"]] == [
        ("first.instructions", "accepted", 1),
        ("second.instructions", "edited", 1),
    ]
    assert step["changes"][1]["diff"] == [
        ["delete", START_INSTRUCTIONS[:-1]],
        ["insert", "Digits"],
        ["equal", "."],
    ]


async def test_refused_clicks_are_shown_as_errors_and_change_nothing():
    trio, optimizer = await proposed()
    review = OptimizerReview(optimizer)
    review.handle_message({"type": "apply"})
    assert review.message["text"] == (
        "Nothing to apply: accept or edit a proposal first; 3 still pending."
    )
    review.handle_message({"type": "accept", "key": "1:first.instructions"})
    review.handle_message({"type": "apply"})
    review.handle_message({"type": "edit", "key": "1:first.instructions", "value": "late"})
    assert review.message["kind"] == "error" and "already applied" in review.message["text"]
    assert trio.first.instructions.value == PROPOSED
    await optimizer.propose()  # step 2: the cards of step 1 are out of date
    review.handle_message({"type": "accept", "key": "1:second.instructions"})
    assert review.message["kind"] == "error"
    assert "no proposal '1:second.instructions' in this review" in review.message["text"]
    # first.instructions still has its feedback (not zeroed), so step 2 proposes for it again.
    assert keys(review) == ["2:first.instructions", "2:second.instructions", "2:third.instructions"]
    assert [s["step"] for s in review.history] == [2, 1]


async def test_an_edit_of_a_json_parameter_is_parsed_and_bad_json_is_refused():
    param = Parameter({"limit": 3}, description="settings")
    proposal = UpdateProposal(
        "settings", param, {"limit": 3}, {"limit": 5}, "more", (), 1, proposed_value={"limit": 5}
    )
    review = OptimizerReview([proposal])
    assert review.proposals[0]["json"] is True
    assert review.proposals[0]["diff"] == [
        ["equal", '{\n  "limit": '],
        ["delete", "3"],
        ["insert", "5"],
        ["equal", "\n}"],
    ]
    review.handle_message({"type": "edit", "key": "1:settings", "value": "{limit: 4}"})
    assert "'settings' holds a dict, and the edit is not valid JSON" in review.message["text"]
    review.handle_message({"type": "edit", "key": "1:settings", "value": '{"limit": 4}'})
    assert (proposal.status, proposal.new_value) == ("edited", {"limit": 4})
    review.handle_message({"type": "apply"})
    assert (
        "cannot apply them; use OptimizerReview(proposals, optimizer=optimizer)"
        in (review.message["text"])
    )
    assert param.value == {"limit": 3} and review.info["can_apply"] is False


async def test_clicks_arrive_as_custom_messages():
    _, optimizer = await proposed()
    review = OptimizerReview(optimizer)
    review._handle_custom_msg({"type": "accept", "key": "1:third.instructions"}, [])
    assert optimizer.proposals[2].status == "accepted"
    assert review.proposals[2]["status"] == "accepted"


async def test_no_api_key_in_the_widget_state():
    _, optimizer = await proposed()
    review = OptimizerReview(optimizer)
    review.handle_message({"type": "accept", "key": "1:first.instructions"})
    review.handle_message({"type": "apply"})
    state = json.dumps(review.get_state(), default=str)
    assert SECRET not in state and "api_key" not in state
    assert PROPOSED in state


async def test_model_text_is_data_in_the_state_and_escaped_in_the_html_repr():
    param = Parameter("Old.", description="d")
    feedback = (Feedback(f"judge said {XSS}", score=0.2),)
    proposal = UpdateProposal("p", param, "Old.", XSS, XSS, feedback, 1, proposed_value=XSS)
    review = OptimizerReview([proposal])
    card = review.proposals[0]
    assert card["diff"] == [["delete", "Old."], ["insert", XSS]]  # text for text nodes
    assert card["rationale"] == XSS and card["feedback"][0]["content"] == f"judge said {XSS}"
    html = proposal_html(proposal)
    assert "<img" not in html and html.count(ESCAPED) == 3
    assert "score 0.20" in html and "step 1" in html


def test_review_cell_shows_the_optimizer_that_proposed():
    trio = Trio()
    trio.train()
    cell = (
        "%%plait --review --quiet --resources res\n"
        "for child in trio.children():\n"
        "    items = await run_batch(child, TEXTS)\n"
        "    await (await loss(items, TARGETS)).backward()\n"
        "proposals = await optimizer.propose()\n"
    )
    namespace = {
        "res": demo_resources(api_key=SECRET),
        "trio": trio,
        "optimizer": Optimizer(trio),
        "idle": Optimizer(Trio()),
        "loss": VerifierLoss(order_number_check),
        "TEXTS": TEXTS,
        "TARGETS": TARGETS,
    }
    outcome, captured = run_cell(cell, **namespace)
    assert outcome.success
    (review,) = magics().last_reviews
    assert review.optimizer is namespace["optimizer"]
    assert widget_ids(captured)[-1] == review.model_id
    assert keys(review) == ["1:first.instructions", "1:second.instructions", "1:third.instructions"]
    # The next --review cell without a propose shows no review.
    outcome, captured = run_cell("%%plait --review\nx = 1\n")
    assert outcome.success and magics().last_reviews == [] and widget_ids(captured) == []


async def test_rich_reprs_work_without_load_ext_and_fall_back_without_plait_jupyter(monkeypatch):
    _, optimizer = await proposed()
    result = await execute(OrderNumberExtractor(), TEXTS[0], resources=demo_resources())
    objects = [
        Value(ValueKind.TEXT, XSS),
        OrderNumberExtractor(),
        trace(OrderNumberExtractor(), "x"),
        result,
        optimizer.proposals[0],
    ]
    badges = ["TEXT", "OrderNumberExtractor", "InferenceGraph", "RunResult", "UpdateProposal"]
    for obj, badge in zip(objects, badges, strict=True):
        html = obj._repr_html_()
        assert html.startswith('<div class="plait-repr"') and badge in html
    assert ESCAPED in objects[0]._repr_html_()
    data, _ = shell().display_formatter.format(optimizer.proposals[0])
    assert "first.instructions" in data["text/html"]
    monkeypatch.setitem(sys.modules, "plait_jupyter.reprs", None)  # import now fails
    assert [obj._repr_html_() for obj in objects] == [None] * 5


async def test_the_text_form_counts_what_every_step_applied():
    trio, optimizer = await proposed()
    for proposal in optimizer.proposals:
        proposal.accept()
    optimizer.apply(optimizer.proposals)
    await backward(trio, demo_resources())
    await optimizer.propose()
    optimizer.proposals[0].accept()
    optimizer.apply(optimizer.proposals)
    review = OptimizerReview(optimizer)
    assert repr(review) == ("OptimizerReview(1 applied, 2 pending; 4 changes applied in 2 steps)")
