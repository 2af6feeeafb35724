"""Pipelines and simulated resources shared by the optimization tests."""

from __future__ import annotations

from typing import Any

from _models import learnable

import plait.functional as F
from plait import LLMInference, Module, ResourceConfig
from plait.optimization.optimizer import UPDATER_SYSTEM
from plait.resources.manager import ResourceManager


def manager(*aliases: str, **replies: Any) -> ResourceManager:
    """In-process simulated endpoints; ``replies`` maps an alias to its reply rules."""
    config = ResourceConfig(
        {
            alias: {
                "provider": "simulated",
                "model": f"sim-{alias}",
                "replies": replies.get(alias, ()),
            }
            for alias in aliases
        }
    )
    return ResourceManager(config)


# The updater proposes "<old value> [improved]" for the first parameter of each request.
ECHO_UPDATER = (
    {
        "match": {
            "system": UPDATER_SYSTEM[:40],
            "user": r"regex:(?s)### Parameter `(?P<name>[^`]+)`.*?Current value:\n<<<\n(?P<value>.*?)\n>>>",
        },
        "json": {"updates": [{"name": "{name}", "value": "{value} [improved]", "rationale": "r"}]},
    },
)


class Diamond(Module):
    """top feeds left and right; join reads both through one f-string."""

    def __init__(self) -> None:
        super().__init__()
        self.top = LLMInference("fast", system_prompt=learnable("Top prompt."))
        self.left = LLMInference("fast", system_prompt=learnable("Left prompt."))
        self.right = LLMInference("fast", system_prompt=learnable("Right prompt."))
        self.join = LLMInference("fast", system_prompt=learnable("Join prompt."))

    def forward(self, text: str) -> Any:
        top = self.top(text)
        return self.join(f"L: {self.left(top)}\nR: {self.right(top)}")


class Styled(Module):
    """The seed's anchor shape: a summary and a learnable style inside an f-string prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.style = learnable("Be brief.")
        self.summarize = LLMInference("fast", system_prompt=learnable("Summarize."))
        self.analyze = LLMInference("fast", system_prompt="Analyze.")

    def forward(self, text: str) -> Any:
        summary = self.summarize(text)
        return self.analyze(f"Summary:\n{summary}\nStyle: {self.style}")


LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["label", "reason"],
}


class Structured(Module):
    """A structured reply read by key, next to an independent branch."""

    def __init__(self) -> None:
        super().__init__()
        self.classify = LLMInference(
            "fast", system_prompt=learnable("Classify."), response_format=LABEL_SCHEMA
        )
        self.echo = LLMInference("fast", system_prompt=learnable("Echo."))

    def forward(self, text: str) -> Any:
        reply = self.classify(text)
        return {"label": reply["label"], "loud": F.upper(self.echo(text))}


class TwoStage(Module):
    """draft (two parameters of one module) feeds polish: for ordering and cohesion.

    polish is declared first, so parameter order and graph order disagree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.polish = LLMInference("fast", system_prompt=learnable("Polish the draft."))
        self.draft = Drafter()

    def forward(self, text: str) -> Any:
        return self.polish(self.draft(text))


class Drafter(Module):
    def __init__(self) -> None:
        super().__init__()
        self.instructions = learnable("Draft an answer.")
        self.tone = learnable("Friendly.")
        self.llm = LLMInference("fast", system_prompt=self.instructions)

    def forward(self, text: str) -> Any:
        return self.llm(f"{text}\nTone: {self.tone}")
