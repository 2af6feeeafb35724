"""Argument checks for public constructors: collect every problem, then raise one `ConfigError`.

    checks = Checks("LLMInference('fast')")
    checks.flag("stream", stream)
    checks.number("temperature", temperature, low=0, high=2, optional=True)
    checks.raise_any()

Each problem reads ``name=value: must be <what is allowed>``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from plait.errors import ConfigError


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Checks:
    """The argument problems of one call to ``owner``."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.problems: list[str] = []

    def check(self, ok: bool, name: str, value: Any, allowed: str) -> bool:
        """Record a problem unless ``ok``; returns ``ok``."""
        if not ok:
            self.problems.append(f"{name}={_show(value)}: must be {allowed}")
        return ok

    def flag(self, name: str, value: Any) -> None:
        self.check(isinstance(value, bool), name, value, "True or False")

    def text(self, name: str, value: Any, *, optional: bool = False, empty: bool = False) -> None:
        if optional and value is None:
            return
        ok = isinstance(value, str) and (empty or bool(value.strip()))
        what = "a string" if empty else "a non-empty string"
        self.check(ok, name, value, what + (", or None" if optional else ""))

    def number(
        self,
        name: str,
        value: Any,
        *,
        low: float | None = None,
        high: float | None = None,
        integer: bool = False,
        optional: bool = False,
    ) -> None:
        if optional and value is None:
            return
        kind = isinstance(value, int) and not isinstance(value, bool) if integer else True
        ok = _is_number(value) and kind
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        what = "an integer" if integer else "a number"
        if low is not None and high is not None:
            what += f" from {low} to {high}"
        elif low is not None:
            what += f" >= {low}"
        self.check(ok, name, value, what + (", or None" if optional else ""))

    def function(self, name: str, value: Any, *, optional: bool = True) -> None:
        ok = callable(value) or (optional and value is None)
        self.check(ok, name, value, "a callable" + (", or None" if optional else ""))

    def path(self, name: str, value: Any, *, optional: bool = True) -> None:
        ok = isinstance(value, str | os.PathLike) or (optional and value is None)
        self.check(ok, name, value, "a file path (str or Path)" + (", or None" if optional else ""))

    def instance(self, name: str, value: Any, kinds: type | tuple[type, ...], what: str) -> None:
        self.check(isinstance(value, kinds), name, value, what)

    def raise_any(self) -> None:
        """Raise one `ConfigError` listing every problem found, if any."""
        if self.problems:
            raise ConfigError(f"{self.owner}: " + "; ".join(self.problems))


__all__ = ["Checks"]
