"""`Refine`: draft, verify, redraft with the verifier's feedback, until it passes.

Written on the public define-by-run API only. Each draft and each verdict is
a node; the redraft prompt is composed from placeholders, so every draft
depends on the one before it, and the verdict that rejected it is a control
edge. The loop stops at the first pass: no call is made after it.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError, LoopLimitError
from plait.module import Module
from plait.tracing import Op

REDRAFT = (
    "{task}\n\nYour previous answer:\n{answer}\n\n"
    "A reviewer rejected it: {feedback}\nWrite an improved answer."
)
CHECK = "Task:\n{task}\n\nAnswer to check:\n{answer}"
VERDICT_SCHEMA: dict[str, Any] = {
    "title": "Verdict",
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "feedback": {"type": "string"}},
    "required": ["pass", "feedback"],
    "additionalProperties": False,
}


class Refine(Module):
    """Draft an answer and redraft it until ``verify`` passes it (at most ``max_rounds`` drafts).

    ``draft`` is a module (or op) taking one text: the task, then the
    ``redraft`` template filled with ``{task}``, ``{answer}`` and
    ``{feedback}``. ``verify`` is a module or op called with ``(task, answer)``
    when it takes two arguments, else with the ``check`` template's text (an
    `LLMInference` verifier: give it ``response_format=VERDICT_SCHEMA``). It
    returns ``bool``, ``(bool, feedback)`` or ``{"pass": bool, "feedback":
    str}``. The output is the first draft that passes; when none does,
    `LoopLimitError` is raised with the last draft as ``.last``.

    >>> from plait import LLMInference
    >>> refine = Refine(
    ...     LLMInference("fast", system_prompt="Write a haiku."),
    ...     LLMInference("smart", system_prompt="Judge it.", response_format=VERDICT_SCHEMA),
    ... )
    """

    def __init__(
        self,
        draft: Module | Op,
        verify: Module | Op,
        *,
        max_rounds: int = 3,
        redraft: str = REDRAFT,
        check: str = CHECK,
    ) -> None:
        super().__init__()
        for name, value in (("draft", draft), ("verify", verify)):
            if not isinstance(value, Module | Op):
                raise ConfigError(
                    f"Refine({name}=...) must be a Module or an @plait.op function; "
                    f"got {type(value).__name__} {value!r:.60}"
                )
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise ConfigError(f"Refine(max_rounds=...) must be an int >= 1; got {max_rounds!r}")
        _check_template("redraft", redraft, {"task", "answer", "feedback"})
        _check_template("check", check, {"task", "answer"})
        self.draft = draft
        self.verify = verify
        self.max_rounds = max_rounds
        self.redraft = redraft
        self.check = check
        self._pairwise = _positional_count(verify) >= 2

    async def forward(self, task: Any) -> Any:
        answer = self.draft(task)
        for attempt in range(1, self.max_rounds + 1):
            passed, feedback = verdict(await self._verify(task, answer))
            if passed:
                return answer
            if attempt < self.max_rounds:
                prompt = self.redraft.format(task=task, answer=answer, feedback=feedback)
                answer = self.draft(prompt)
        raise LoopLimitError(
            f"Refine: no draft passed the verifier in {self.max_rounds} rounds; the last "
            f"feedback was {feedback!r:.200}. Raise max_rounds, or catch LoopLimitError and "
            "use its .last draft",
            steps=self.max_rounds,
            last=await answer,
        )

    def _verify(self, task: Any, answer: Any) -> Any:
        if self._pairwise:
            return self.verify(task, answer)
        return self.verify(self.check.format(task=task, answer=answer))


def verdict(result: Any) -> tuple[bool, str]:
    """``(passed, feedback)`` from what a verifier returned."""
    if isinstance(result, bool):
        return result, ""
    if isinstance(result, Mapping) and isinstance(result.get("pass"), bool):
        return result["pass"], str(result.get("feedback") or "")
    if isinstance(result, tuple | list) and len(result) == 2 and isinstance(result[0], bool):
        return result[0], str(result[1] or "")
    raise ConfigError(
        f"Refine: the verifier returned {type(result).__name__} {result!r:.80}; it must return "
        'a bool, (bool, feedback) or {"pass": bool, "feedback": str}. For an LLMInference '
        "verifier, pass response_format=VERDICT_SCHEMA"
    )


def _positional_count(callable_: Module | Op) -> int:
    """How many positional arguments ``callable_`` (an op's function, a module's forward) takes."""
    fn = callable_.fn if isinstance(callable_, Op) else callable_.forward
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _check_template(name: str, template: str, allowed: set[str]) -> None:
    if not isinstance(template, str):
        raise ConfigError(f"Refine({name}=...) must be a str template; got {template!r:.60}")
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    except ValueError as exc:
        raise ConfigError(f"Refine({name}=...) is not a valid template ({exc})") from exc
    unknown = sorted(used - allowed)
    if unknown:
        raise ConfigError(
            f"Refine({name}=...) uses {', '.join('{' + u + '}' for u in unknown)}; it may use "
            f"{', '.join('{' + a + '}' for a in sorted(allowed))} (write {{{{ }}}} for braces)"
        )
