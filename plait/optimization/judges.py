"""LLM-backed losses: a judge, a rubric, pairwise preference and ranking.

Each one is a small internal module (one `LLMInference` with a JSON schema)
run with `plait.run_batch`, so judging a batch shares one scheduler and gets
the endpoint's retries, limits and events like any other run. ``resources``
may be given per loss; otherwise the active `ExecutionSettings` apply. The
system prompts are module constants, so simulator rules can recognise them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from plait._checks import Checks
from plait.errors import ConfigError
from plait.execution.batch import run_batch
from plait.execution.records import record_of
from plait.execution.result import BatchItem
from plait.execution.settings import as_resources
from plait.inference import LLMInference
from plait.module import Module
from plait.optimization.feedback import Feedback
from plait.optimization.losses import Loss

JUDGE_SYSTEM = (
    "You evaluate the output of an AI system against the given criteria. Be strict and "
    "specific: give a score from 0 (fails the criteria) to 1 (fully meets them) and feedback "
    "that says exactly what to change. Reply in JSON."
)
RUBRIC_SYSTEM = (
    "You grade the output of an AI system with a rubric. Pick the level that best describes "
    "the output and say what keeps it from the next level up. Reply in JSON."
)
PREFERENCE_SYSTEM = (
    "You compare two outputs of an AI system, A and B, against the given criteria and say "
    "which one is better and why. Reply in JSON."
)
RANKING_SYSTEM = (
    "You rank several numbered outputs of an AI system against the given criteria, best "
    "first, by their numbers. Reply in JSON."
)


def show(x: Any) -> str:
    """An output as the judge reads it: text as is, structures as indented JSON."""
    if isinstance(x, str):
        return str(x)
    return json.dumps(x, ensure_ascii=False, indent=2, default=str)


def _block(title: str, x: Any) -> str:
    return f"{title}:\n<<<\n{show(x)}\n>>>"


def _object(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }


class _Call(Module):
    """One model call with a fixed system prompt and reply schema."""

    def __init__(self, alias: str, system: str, schema: Mapping[str, Any]) -> None:
        super().__init__()
        self.llm = LLMInference(alias, system_prompt=system, response_format=schema)

    def forward(self, prompt: str) -> Any:
        return self.llm(prompt)


class _ModelLoss(Loss):
    """A loss whose verdicts come from the model behind ``alias``."""

    def __init__(self, alias: str, criteria: str, resources: Any) -> None:
        checks = Checks(type(self).__name__)
        checks.text("alias", alias)
        checks.raise_any()
        resources = as_resources(resources)
        if not isinstance(criteria, str) or not criteria.strip():
            raise ConfigError(
                f"{type(self).__name__}({alias!r}) needs criteria: a non-empty description of "
                f"what a good output is; got {criteria!r:.60}"
            )
        self.alias = alias
        self.criteria = criteria
        self.resources = resources

    async def ask(self, call: _Call, prompts: list[str]) -> list[Any]:
        """The parsed replies to ``prompts``; raises the first failure's `ExecutionError`."""
        items = await run_batch(call, prompts, resources=self.resources, progress=False)
        for item in items:
            if not item.ok and item.error is not None:
                raise item.error
        return [item.output for item in items]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.alias!r}, {self.criteria!r:.60})"


class LLMJudge(_ModelLoss):
    """A model scores each output from 0 to 1 against ``criteria`` (and the target, if given).

    >>> judge = LLMJudge("judge", "Answers the question in one correct sentence.")
    """

    kind = "judge"
    schema = _object(
        {"score": {"type": "number", "minimum": 0, "maximum": 1}, "feedback": {"type": "string"}}
    )

    def __init__(self, alias: str, criteria: str, *, resources: Any = None) -> None:
        super().__init__(alias, criteria, resources)
        self._call = _Call(alias, JUDGE_SYSTEM, self.schema)

    async def evaluate_batch(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        prompts = [
            "\n\n".join(
                [f"Criteria:\n{self.criteria}", _block("Output", out)]
                + ([_block("Reference", want)] if want is not None else [])
            )
            for out, want in zip(outputs, targets, strict=True)
        ]
        replies = await self.ask(self._call, prompts)
        return [
            Feedback(
                r["feedback"],
                min(1.0, max(0.0, float(r["score"]))),
                self.kind,
                details={"reply": r},
            )
            for r in replies
        ]


class RubricLoss(_ModelLoss):
    """A model picks one of ``levels`` (worst to best); the score is the level's rank in [0, 1].

    ``levels`` is a list of labels or a ``{label: description}`` dict, worst first.

    >>> RubricLoss("judge", "Helpfulness", {"poor": "off topic", "ok": "partial", "good": "complete"})
    RubricLoss('judge', 'Helpfulness')
    """

    kind = "rubric"

    def __init__(
        self,
        alias: str,
        criteria: str,
        levels: Sequence[str] | Mapping[str, str],
        *,
        resources: Any = None,
    ) -> None:
        super().__init__(alias, criteria, resources)
        described = dict(levels) if isinstance(levels, Mapping) else dict.fromkeys(levels, "")
        labels = list(described)
        if isinstance(levels, str) or len(labels) < 2 or len(labels) != len(list(levels)):
            raise ConfigError(
                f"RubricLoss({alias!r}) needs at least two distinct levels, worst first "
                f"(a list of labels or a {{label: description}} dict); got {levels!r:.80}"
            )
        self.levels = described
        schema = _object(
            {"level": {"type": "string", "enum": labels}, "feedback": {"type": "string"}}
        )
        self._call = _Call(alias, RUBRIC_SYSTEM, schema)

    async def evaluate_batch(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        rubric = "\n".join(
            f"- {label}" + (f": {text}" if text else "") for label, text in self.levels.items()
        )
        prompts = [
            "\n\n".join(
                [
                    f"Criteria:\n{self.criteria}",
                    f"Levels (worst first):\n{rubric}",
                    _block("Output", out),
                ]
                + ([_block("Reference", want)] if want is not None else [])
            )
            for out, want in zip(outputs, targets, strict=True)
        ]
        labels = list(self.levels)
        feedback = []
        for reply in await self.ask(self._call, prompts):
            rank = labels.index(reply["level"])
            feedback.append(
                Feedback(
                    f"{reply['level']}: {reply['feedback']}",
                    rank / (len(labels) - 1),
                    self.kind,
                    details={"reply": reply},
                )
            )
        return feedback

    def __repr__(self) -> str:
        return f"RubricLoss({self.alias!r}, {self.criteria!r:.60})"


class PreferenceLoss(_ModelLoss):
    """Pairwise: a model says whether the output (A) beats the target (B, an alternative).

    Score 1 when the output is preferred, 0 when the alternative is, 0.5 for a
    tie. `compare` judges two outputs and returns feedback for both.
    """

    kind = "preference"
    schema = _object(
        {"preferred": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": {"type": "string"}}
    )

    def __init__(self, alias: str, criteria: str, *, resources: Any = None) -> None:
        super().__init__(alias, criteria, resources)
        self._call = _Call(alias, PREFERENCE_SYSTEM, self.schema)

    async def _prefer(self, pairs: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
        prompts = [
            "\n\n".join([f"Criteria:\n{self.criteria}", _block("A", a), _block("B", b)])
            for a, b in pairs
        ]
        return await self.ask(self._call, prompts)

    def _verdict(self, reply: Mapping[str, Any], side: str) -> Feedback:
        other = "B" if side == "A" else "A"
        score = {side: 1.0, other: 0.0, "tie": 0.5}[reply["preferred"]]
        lead = {
            1.0: "Preferred over the alternative",
            0.0: "The alternative was preferred",
            0.5: "Tied with the alternative",
        }[score]
        return Feedback(
            f"{lead}: {reply['reason']}", score, self.kind, details={"reply": dict(reply)}
        )

    async def evaluate_batch(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        if any(t is None for t in targets):
            raise ConfigError(
                "PreferenceLoss compares each output with its target (the alternative); "
                "pass one target per output, or use compare(a, b)"
            )
        replies = await self._prefer(list(zip(outputs, targets, strict=True)))
        return [self._verdict(r, "A") for r in replies]

    async def compare(self, a: Any, b: Any) -> tuple[Feedback, Feedback]:
        """Judge ``a`` against ``b``; each gets its own feedback (and record, if it has one)."""
        a, b = (x.output if isinstance(x, BatchItem) else x for x in (a, b))
        (reply,) = await self._prefer([(a, b)])
        return (
            self._verdict(reply, "A").with_record(record_of(a)),
            self._verdict(reply, "B").with_record(record_of(b)),
        )


class RankingLoss(_ModelLoss):
    """A model ranks a batch of outputs (one request); the best scores 1, the worst 0.

    Called on a batch of at least two outputs; targets are not used. A
    ranking that skips or repeats numbers is completed in input order.
    """

    kind = "ranking"
    schema = _object(
        {"ranking": {"type": "array", "items": {"type": "integer"}}, "reason": {"type": "string"}}
    )

    def __init__(self, alias: str, criteria: str, *, resources: Any = None) -> None:
        super().__init__(alias, criteria, resources)
        self._call = _Call(alias, RANKING_SYSTEM, self.schema)

    async def evaluate_batch(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        n = len(outputs)
        if n < 2:
            raise ConfigError(
                f"RankingLoss ranks a batch against itself: it needs at least two outputs, got {n}"
            )
        prompt = "\n\n".join(
            [
                f"Criteria:\n{self.criteria}",
                *(_block(f"Output {i + 1}", o) for i, o in enumerate(outputs)),
            ]
        )
        (reply,) = await self.ask(self._call, [prompt])
        order = list(
            dict.fromkeys(r for r in reply["ranking"] if isinstance(r, int) and 1 <= r <= n)
        )
        order += [i for i in range(1, n + 1) if i not in order]
        feedback = []
        for i in range(1, n + 1):
            place = order.index(i)
            feedback.append(
                Feedback(
                    f"Ranked {place + 1} of {n}: {reply['reason']}",
                    1 - place / (n - 1),
                    self.kind,
                    details={"reply": reply, "ranking": order},
                )
            )
        return feedback
