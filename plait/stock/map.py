"""`MapList`: split an input into a list at run time, process every element at once, join.

Written on the public define-by-run API only. The list exists only once the
``split`` call has answered, so its length is ordinary Python; each element's
call is made at once without waiting for the others, so they all overlap up to
their endpoint's concurrency cap, and ``join`` depends on every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError
from plait.inference import LLMInference
from plait.module import Module
from plait.tracing import Op

LIST_SCHEMA: dict[str, Any] = {
    "title": "Items",
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
    "required": ["items"],
    "additionalProperties": False,
}


class MapList(Module):
    """``join([each(x) for x in split(input)])``, with every ``each`` call made at once.

    ``split`` returns a list (structured output: a JSON array, or an object
    with one array field such as ``LIST_SCHEMA``'s ``items``), or text, taken
    one element per non-empty line. ``each`` gets one element as it is. An
    `LLMInference` ``join`` gets the results as one text, a paragraph each; any
    other module or op gets the list. Without ``join`` the output is the list.

    >>> from plait import LLMInference
    >>> answer_all = MapList(
    ...     LLMInference("fast", system_prompt="List the sub-questions, one per line."),
    ...     LLMInference("fast", system_prompt="Answer briefly."),
    ...     LLMInference("smart", system_prompt="Combine these answers."),
    ... )
    """

    def __init__(
        self, split: Module | Op, each: Module | Op, join: Module | Op | None = None
    ) -> None:
        super().__init__()
        for name, value in (("split", split), ("each", each), ("join", join)):
            if value is None and name == "join":
                continue
            if not isinstance(value, Module | Op):
                raise ConfigError(
                    f"MapList({name}=...) must be a Module or an @plait.op function"
                    f"{' (or None)' if name == 'join' else ''}; "
                    f"got {type(value).__name__} {value!r:.60}"
                )
        self.split = split
        self.each = each
        self.join = join

    async def forward(self, value: Any) -> Any:
        elements = as_list(await self.split(value))
        results = [self.each(element) for element in elements]  # all scheduled now
        if self.join is None:
            return results
        if isinstance(self.join, LLMInference):
            return self.join("\n\n".join(results))
        return self.join(results)


def as_list(split: Any) -> list[Any]:
    """The elements in what ``split`` returned: a list, a one-array object, or lines of text."""
    if isinstance(split, str):
        return [line.strip() for line in split.splitlines() if line.strip()]
    if isinstance(split, list | tuple):
        return list(split)
    if isinstance(split, Mapping):
        arrays = [v for v in split.values() if isinstance(v, list)]
        if len(arrays) == 1:
            return arrays[0]
    raise ConfigError(
        f"MapList: split returned {type(split).__name__} {split!r:.80}; it must return a list, "
        "an object with exactly one list field (response_format=LIST_SCHEMA), or text with "
        "one element per line"
    )
