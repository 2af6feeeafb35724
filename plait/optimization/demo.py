"""An offline optimization task: the simulator scripted so the right instructions raise the score.

The task: reply with a customer message's order number, digits only, without
leading zeros. The simulated ``task`` model answers according to its system
prompt (reply rules are data: regexes on the system and user text, reply
templates):

- with "digits only" and "leading zeros" in it: the bare number, zeros dropped;
- with "digits only": the digits as written (``0087``);
- otherwise: a sentence (``The order number is 0087.``).

The ``judge`` model scores outputs the same way `order_number_check` does,
and the ``optimizer`` model answers feedback that mentions "leading zeros"
or "digits only" by appending the matching instruction to the parameter.
So from the starting prompt the validation score goes 0.0 -> 0.5 -> 1.0 in
two optimizer steps when each step's batch contains both kinds of failure.

>>> resources = demo_resources()
>>> sorted(resources.aliases)
['judge', 'optimizer', 'task']
"""

from __future__ import annotations

from typing import Any

from plait.inference import LLMInference
from plait.module import Module
from plait.optimization.judges import JUDGE_SYSTEM
from plait.optimization.optimizer import UPDATER_SYSTEM
from plait.parameter import Parameter
from plait.resources.config import ResourceConfig

START_INSTRUCTIONS = "Find the order number in the customer's message."
DIGITS_ONLY = "Reply with the digits only."
NO_LEADING_ZEROS = "Drop leading zeros."

TASK_RULES = (
    {
        "match": {
            "system": "regex:(?is)(?=.*digits only)(?=.*leading zeros)",
            "user": r"regex:0*(?P<n>\d+)",
        },
        "reply": "{n}",
    },
    {"match": {"system": "regex:(?i)digits only", "user": r"regex:(?P<n>\d+)"}, "reply": "{n}"},
    {"match": {"user": r"regex:(?P<n>\d+)"}, "reply": "The order number is {n}."},
)

JUDGE_RULES = (
    {
        "match": {
            "system": JUDGE_SYSTEM[:40],
            "user": r"regex:(?s)Output:\n<<<\n(?P<out>[1-9]\d*)\n>>>\n\nReference:\n<<<\n(?P=out)\n>>>",
        },
        "json": {"score": 1.0, "feedback": "Correct: the bare order number."},
    },
    {
        "match": {"system": JUDGE_SYSTEM[:40], "user": r"regex:(?s)Output:\n<<<\n0+\d+\n>>>"},
        "json": {"score": 0.5, "feedback": "The digits are right, but drop the leading zeros."},
    },
    {
        "match": {"system": JUDGE_SYSTEM[:40]},
        "json": {"score": 0.0, "feedback": "Reply with the digits only: no words around them."},
    },
)

_PARAMETER = r"(?s)### Parameter `(?P<name>[^`]+)`.*?Current value:\n<<<\n(?P<value>.*?)\n>>>"
UPDATER_RULES = (
    {
        "match": {"system": UPDATER_SYSTEM[:40], "user": f"regex:{_PARAMETER}.*?leading zeros"},
        "json": {
            "updates": [
                {
                    "name": "{name}",
                    "value": "{value} " + NO_LEADING_ZEROS,
                    "rationale": "Feedback: the digits are right but keep their leading zeros.",
                }
            ]
        },
    },
    {
        "match": {"system": UPDATER_SYSTEM[:40], "user": f"regex:{_PARAMETER}.*?digits only"},
        "json": {
            "updates": [
                {
                    "name": "{name}",
                    "value": "{value} " + DIGITS_ONLY,
                    "rationale": "Feedback: the replies wrap the number in words.",
                }
            ]
        },
    },
    {"match": {"system": UPDATER_SYSTEM[:40]}, "json": {"updates": []}},
)

TRAIN_SET = (
    ("Hi, where is my order 4512? Thanks, Ada", "4512"),
    ("Order 0087 arrived damaged.", "87"),
    ("Please cancel order 3301.", "3301"),
    ("Can you check order 0009 for me?", "9"),
    ("My order 7720 has not shipped yet.", "7720"),
    ("Order 0612 was charged twice.", "612"),
    ("Status of order 5150, please.", "5150"),
    ("Order 0404 is missing an item.", "404"),
)
VAL_SET = (
    ("I never received order 2231.", "2231"),
    ("Order 0150 came in the wrong size.", "150"),
    ("Could you refund order 9043?", "9043"),
    ("Order 0071 is late.", "71"),
    ("Order 6610 was delivered to the wrong address.", "6610"),
    ("Please update the address on order 0308.", "308"),
)


def demo_resources(**fields: Any) -> ResourceConfig:
    """Simulated ``task``, ``judge`` and ``optimizer`` endpoints with the scripted behaviour.

    ``fields`` go to every endpoint (prices, latency, ``max_concurrent``...).
    """
    return ResourceConfig(
        {
            "task": {"provider": "simulated", "model": "sim-task", "replies": TASK_RULES, **fields},
            "judge": {
                "provider": "simulated",
                "model": "sim-judge",
                "replies": JUDGE_RULES,
                **fields,
            },
            "optimizer": {
                "provider": "simulated",
                "model": "sim-optimizer",
                "replies": UPDATER_RULES,
                **fields,
            },
        }
    )


def order_number_check(output: Any, target: str) -> tuple[bool, str]:
    """The verifier: the reply must be exactly the order number (digits, no leading zeros)."""
    text = str(output).strip()
    if not text.isdigit():
        return False, f"expected {target!r}, got {text!r}: reply with the digits only"
    if text != target:
        if text.lstrip("0") == target:
            return False, f"got {text!r}: drop the leading zeros (expected {target!r})"
        return False, f"expected {target!r}, got {text!r}"
    return True, "correct"


class OrderNumberExtractor(Module):
    """One LLM call on the ``task`` endpoint whose system prompt is the learnable ``instructions``."""

    def __init__(self, instructions: str = START_INSTRUCTIONS) -> None:
        super().__init__()
        self.instructions = Parameter(
            instructions,
            description="Instructions for replying with the order number in a customer message.",
        )
        self.extract = LLMInference("task", system_prompt=self.instructions)

    def forward(self, message: str) -> Any:
        return self.extract(message)
