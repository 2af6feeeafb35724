"""`OptimizerReview`: review an optimizer step in a notebook, then apply it.

Each `UpdateProposal` is shown as a word diff of its old value against the
value `apply` would set, with the rationale and the feedback behind it; per
proposal a person accepts, edits in place or rejects (with an optional
reason), and "Apply" calls `Optimizer.apply`. The history lists the changes
applied in earlier steps. The flow in a notebook::

    proposals = await optimizer.propose()     # cell 1 (or %%plait --review)
    OptimizerReview(optimizer)                # review, click Apply
    # cell 2: the next forward pass uses the applied values

Clicks reach the kernel as custom messages (``{"type": "accept" | "edit" |
"reject" | "apply" | "refresh", "key": ...}``), handled by `handle_message`
once the kernel is idle. A proposal's key is ``"<step>:<name>"``, so a click
on a card from an earlier step is refused instead of deciding a newer
proposal. The widget follows ``optimizer.proposals``: after another
``propose()``, any click (or "Refresh") shows the new ones. The state holds
values, rationales and feedback text (shown as text, never HTML), never
resource settings or keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import anywidget
import traitlets

from plait.errors import ConfigError, PlaitError
from plait.evaluation.diff import diff_segments
from plait.optimization.optimizer import Optimizer
from plait.optimization.proposals import PENDING, REJECTED, UpdateProposal
from plait_jupyter.graph_view import STATIC
from plait_jupyter.inspector import clip

MAX_FEEDBACK = 20
MAX_HISTORY = 200


def editable_text(value: Any) -> str:
    """A parameter value as a person edits it: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def parse_edit(proposal: UpdateProposal, text: str) -> Any:
    """The value a person's edit ``text`` stands for (JSON for non-string parameters)."""
    if isinstance(proposal.old_value, str):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{proposal.name!r} holds a {type(proposal.old_value).__name__}, and the edit is not "
            f"valid JSON ({exc}); write the new value as JSON text, e.g. "
            f"{clip(editable_text(proposal.old_value), 80)}"
        ) from None


def proposal_key(proposal: UpdateProposal) -> str:
    return f"{proposal.step}:{proposal.name}"


def _feedback(proposal: UpdateProposal) -> tuple[list[dict[str, Any]], float | None]:
    """The feedback items, lowest scores first (as the updater saw them), and the mean score."""
    ranked = sorted(proposal.feedback, key=lambda f: (f.score is None, f.score or 0.0))
    items = [
        {"content": clip(f.content), "score": f.score, "kind": f.kind, "sample": f.sample}
        for f in ranked[:MAX_FEEDBACK]
    ]
    scores = [f.score for f in proposal.feedback if f.score is not None]
    return items, (sum(scores) / len(scores) if scores else None)


def proposal_data(proposal: UpdateProposal, reason: str = "") -> dict[str, Any]:
    """What a review card shows about ``proposal`` (plain text and numbers only)."""
    old, new = editable_text(proposal.old_value), editable_text(proposal.new_value)
    feedback, mean = _feedback(proposal)
    return {
        "key": proposal_key(proposal),
        "name": proposal.name,
        "module": proposal.module,
        "step": proposal.step,
        "status": proposal.status,
        "applied": proposal.applied,
        "version": proposal.parameter.version,
        "json": not isinstance(proposal.old_value, str),
        "old": old,
        "new": new,
        "proposed": editable_text(proposal.proposed_value),
        "diff": diff_segments(old, new),
        "rationale": proposal.rationale,
        "reason": reason if proposal.status == REJECTED else "",
        "feedback": feedback,
        "feedback_count": len(proposal.feedback),
        "mean_score": mean,
    }


def history_data(optimizer: Optimizer) -> list[dict[str, Any]]:
    """Past steps, newest first: what the audit log counted per event, and the changes applied."""
    steps: dict[int, dict[str, Any]] = {}

    def step(number: int) -> dict[str, Any]:
        return steps.setdefault(number, {"step": number, "counts": {}, "changes": []})

    for entry in optimizer.audit.entries:
        if isinstance(entry.get("step"), int):
            counts = step(entry["step"])["counts"]
            counts[entry["event"]] = counts.get(entry["event"], 0) + 1
    for change in optimizer.history[-MAX_HISTORY:]:
        old, new = editable_text(change["old_value"]), editable_text(change["new_value"])
        step(change["step"])["changes"].append(
            {
                "name": change["name"],
                "status": change["status"],
                "version": change["version"],
                "diff": diff_segments(old, new),
            }
        )
    return [steps[n] for n in sorted(steps, reverse=True)]


class OptimizerReview(anywidget.AnyWidget):
    """Review an optimizer's proposals: diff, rationale, feedback; accept, edit, reject; apply.

    ``source`` is an `Optimizer` (its latest proposals, its history, and an
    Apply button) or a list of `UpdateProposal`s; pass ``optimizer=`` with a
    list to apply from the widget.
    """

    _esm = STATIC / "review.js"
    _css = STATIC / "review.css"

    proposals = traitlets.List(traitlets.Dict()).tag(sync=True)
    history = traitlets.List(traitlets.Dict()).tag(sync=True)
    info = traitlets.Dict().tag(sync=True)
    message = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        source: Optimizer | Iterable[UpdateProposal],
        *,
        optimizer: Optimizer | None = None,
    ) -> None:
        super().__init__()
        if isinstance(source, Optimizer):
            self.optimizer: Optimizer | None = source
            self._given: list[UpdateProposal] | None = None
        else:
            self.optimizer = optimizer
            self._given = list(source)
            bad = [
                f"[{i}] {type(p).__name__}"
                for i, p in enumerate(self._given)
                if not isinstance(p, UpdateProposal)
            ]
            if bad:
                raise ConfigError(
                    f"OptimizerReview shows an Optimizer or a list of UpdateProposals; got "
                    f"{', '.join(bad)}. Pass the optimizer, or what `await optimizer.propose()` returned."
                )
        self._reasons: dict[str, str] = {}
        self._messages = 0
        self.on_msg(lambda _widget, content, _buffers: self.handle_message(content))
        self.refresh()

    @property
    def items(self) -> list[UpdateProposal]:
        """The proposals under review (the optimizer's latest, unless a list was given)."""
        if self._given is not None:
            return list(self._given)
        return list(self.optimizer.proposals) if self.optimizer is not None else []

    def refresh(self) -> None:
        """Show the current state of the proposals and the optimizer (after changes made in code)."""
        optimizer = self.optimizer
        items = self.items
        with self.hold_sync():
            self.proposals = [proposal_data(p, self._reason(p)) for p in items]
            self.history = [] if optimizer is None else history_data(optimizer)
            self.info = {
                "can_apply": optimizer is not None,
                "step": max((p.step for p in items), default=optimizer.steps if optimizer else 0),
                "alias": optimizer.alias if optimizer is not None else "",
                "audit_entries": len(optimizer.audit.entries) if optimizer is not None else 0,
            }

    def _reason(self, proposal: UpdateProposal) -> str:
        """Why it was rejected: said in this widget, else in the audit log (a reject in code)."""
        key = proposal_key(proposal)
        if key in self._reasons or self.optimizer is None:
            return self._reasons.get(key, "")
        for entry in reversed(self.optimizer.audit.entries):
            if entry["event"] == REJECTED and f"{entry.get('step')}:{entry.get('name')}" == key:
                return str(entry.get("reason", ""))
        return ""

    def handle_message(self, content: Mapping[str, Any]) -> None:
        """Carry out a click from the front-end; problems are shown in the widget, not raised."""
        action = content.get("type")
        try:
            if action == "apply":
                message = self._apply()
            elif action == "refresh":
                message = {"kind": "info", "text": ""}
            elif action in ("accept", "edit", "reject"):
                message = self._decide(action, str(content.get("key", "")), content)
            else:
                raise ConfigError(
                    f"unknown review action {action!r}; expected accept, edit, reject, apply or refresh"
                )
        except PlaitError as exc:
            message = {"kind": "error", "text": str(exc)}
        self._messages += 1  # every click gets an answer the front-end sees as a change
        self.message = {**message, "seq": self._messages}
        self.refresh()

    def _find(self, key: str) -> UpdateProposal:
        for proposal in self.items:
            if proposal_key(proposal) == key:
                return proposal
        shown = ", ".join(proposal_key(p) for p in self.items) or "none"
        raise ConfigError(
            f"no proposal {key!r} in this review (it now shows {shown}): the optimizer proposed "
            "again since the card was drawn. Review the proposals shown now."
        )

    def _decide(self, action: str, key: str, content: Mapping[str, Any]) -> dict[str, str]:
        proposal = self._find(key)
        if action == "accept":
            proposal.accept()
        elif action == "edit":
            proposal.edit(parse_edit(proposal, str(content.get("value", ""))))
        else:
            reason = str(content.get("reason", "")).strip()
            proposal.reject(reason)
            self._reasons[key] = reason
        return {"kind": "info", "text": f"{proposal.name}: {proposal.status}"}

    def _apply(self) -> dict[str, str]:
        if self.optimizer is None:
            raise ConfigError(
                "this review was given proposals without their Optimizer, so it cannot apply "
                "them; use OptimizerReview(proposals, optimizer=optimizer) or call optimizer.apply()"
            )
        items = self.items
        applied = self.optimizer.apply(items)
        pending = sum(1 for p in items if p.status == PENDING)
        left = f"; {pending} still pending" if pending else ""
        if not applied:
            return {
                "kind": "info",
                "text": f"Nothing to apply: accept or edit a proposal first{left}.",
            }
        changes = ", ".join(
            f"{p.name} ({p.status}, now version {p.parameter.version})" for p in applied
        )
        count = f"{len(applied)} change{'s' if len(applied) != 1 else ''}"
        return {"kind": "applied", "text": f"Applied {count}: {changes}{left}."}

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for proposal in self.items:
            status = "applied" if proposal.applied else proposal.status
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no proposals"
        history = self.optimizer.history if self.optimizer is not None else []
        if history:
            steps = len({change["step"] for change in history})
            total = f"{len(history)} change{'s' if len(history) != 1 else ''}"
            summary += f"; {total} applied in {steps} step{'s' if steps != 1 else ''}"
        return f"OptimizerReview({summary})"


def optimizer_steps(namespace: Mapping[str, Any]) -> dict[int, tuple[Optimizer, int]]:
    """Every `Optimizer` bound to a variable of ``namespace``, with its step count."""
    return {id(v): (v, v.steps) for v in list(namespace.values()) if isinstance(v, Optimizer)}


def proposed_since(
    namespace: Mapping[str, Any], before: Mapping[int, tuple[Optimizer, int]]
) -> list[Optimizer]:
    """The optimizers of ``namespace`` whose `propose` ran since `optimizer_steps` gave ``before``."""
    found = []
    for key, (optimizer, steps) in optimizer_steps(namespace).items():
        earlier = before.get(key)
        was = earlier[1] if earlier is not None and earlier[0] is optimizer else 0
        if steps > was:
            found.append(optimizer)
    return found
