"""Reviewable updates: `UpdateProposal` and the JSONL `AuditLog` every decision goes to."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plait._checks import Checks
from plait._upcalls import notebook_html
from plait.errors import ConfigError
from plait.optimization.feedback import Feedback
from plait.parameter import Parameter

PENDING, ACCEPTED, EDITED, REJECTED = "pending", "accepted", "edited", "rejected"


class AuditLog:
    """Append-only decisions of an optimizer: kept in ``entries`` and, given a path, in a JSONL file.

    Each line is one JSON object with ``time`` (UTC, ISO 8601) and ``event``
    first; the file is opened, appended and closed per entry, so it survives
    a crash. Entries hold parameter names, values, rationales and feedback
    text, never resource settings or keys.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        checks = Checks("AuditLog")
        checks.path("path", path)
        checks.raise_any()
        self.path = None if path is None else Path(path)
        self.entries: list[dict[str, Any]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        entry.update(fields)
        self.entries.append(entry)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(entry, ensure_ascii=False, default=repr) + "\n")
        return entry

    def __repr__(self) -> str:
        where = f"{str(self.path)!r}, " if self.path else ""
        return f"AuditLog({where}{len(self.entries)} entries)"


@dataclass(eq=False)
class UpdateProposal:
    """A proposed new value for one parameter, waiting for a decision.

    ``old_value`` is the value when proposed; ``new_value`` what `apply`
    will set (the model's ``proposed_value``, or a person's edit);
    ``feedback`` the accumulated feedback the proposal answers. ``status``
    is pending, accepted, edited or rejected; ``applied`` turns True once
    `Optimizer.apply` has set the value. Decide before applying:

        for proposal in await optimizer.propose():
                proposal.accept() if "concise" in proposal.new_value else proposal.reject()
        optimizer.apply()
    """

    name: str
    parameter: Parameter = field(repr=False)
    old_value: Any
    new_value: Any
    rationale: str
    feedback: tuple[Feedback, ...] = field(repr=False)
    step: int
    module: str = ""
    status: str = PENDING
    applied: bool = False
    base_version: int = field(default=0, repr=False)
    proposed_value: Any = field(default=None, repr=False)
    _log: Callable[..., Any] | None = field(default=None, repr=False)

    def accept(self) -> UpdateProposal:
        """Approve the proposed value as it is."""
        return self._decide(ACCEPTED, self.proposed_value)

    def edit(self, new_value: Any) -> UpdateProposal:
        """Approve a value of your own instead of the proposed one."""
        return self._decide(EDITED, new_value)

    def reject(self, reason: str = "") -> UpdateProposal:
        """Keep the old value."""
        return self._decide(REJECTED, self.proposed_value, reason=reason)

    def _decide(self, status: str, value: Any, **extra: Any) -> UpdateProposal:
        if self.applied:
            raise ConfigError(
                f"the proposal for {self.name!r} (step {self.step}) was already applied; "
                "decisions are final once applied. Run optimizer.propose() for a new one."
            )
        self.status = status
        self.new_value = value
        if self._log is not None:
            entry: dict[str, Any] = {"step": self.step, "name": self.name}
            if status != REJECTED:
                entry["new_value"] = value
            if status != ACCEPTED:
                entry["proposed_value"] = self.proposed_value
            self._log(status, **entry, **{k: v for k, v in extra.items() if v})
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (for audit logs and review widgets)."""
        return {
            "step": self.step,
            "name": self.name,
            "module": self.module,
            "status": self.status,
            "applied": self.applied,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "proposed_value": self.proposed_value,
            "rationale": self.rationale,
            "feedback": [f.to_dict() for f in self.feedback],
        }

    def _repr_html_(self) -> str | None:
        return notebook_html(self)
