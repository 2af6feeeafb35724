"""`Optimizer`: an LLM updater that turns accumulated feedback into reviewable proposals.

One step, upstream first: the learnable parameters that have feedback are
grouped by module and ordered by the parameter graph (`ordering`). Each
group is one request to the updater model (so a module's parameters change
together), and that request shows every upstream parameter's old value and
the new value just proposed for it, so downstream prompts are rewritten
against what upstream will produce. Proposals wait for a decision;
`Optimizer.step` accepts them all. Every proposal and decision is written
to the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from plait._checks import Checks
from plait.errors import ConfigError
from plait.execution.run import run
from plait.execution.settings import as_resources
from plait.inference import LLMInference
from plait.module import Module
from plait.optimization.feedback import Feedback
from plait.optimization.ordering import module_of, plan_updates
from plait.optimization.proposals import ACCEPTED, EDITED, AuditLog, UpdateProposal
from plait.parameter import Parameter
from plait.values import kind_of

UPDATER_SYSTEM = (
    "You improve the parameters (prompts and instructions) of an AI pipeline from feedback on "
    "its outputs. For each parameter listed under 'Parameter', propose a new value that "
    "addresses the feedback and keeps what already works. Keep the parameters of one request "
    "consistent with each other and with the NEW values of the upstream parameters. Reply in "
    'JSON: {"updates": [{"name": ..., "value": ..., "rationale": ...}]}; leave out a parameter '
    "that needs no change."
)


def updater_schema(names: Iterable[str]) -> dict[str, Any]:
    """The JSON schema of the updater's reply for parameters ``names``."""
    update = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": list(names)},
            "value": {"type": "string"},
            "rationale": {"type": "string"},
        },
        "required": ["name", "value", "rationale"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"updates": {"type": "array", "items": update}},
        "required": ["updates"],
        "additionalProperties": False,
    }


class _Updater(Module):
    def __init__(self, alias: str, names: Iterable[str]) -> None:
        super().__init__()
        self.llm = LLMInference(
            alias, system_prompt=UPDATER_SYSTEM, response_format=updater_schema(names)
        )

    def forward(self, prompt: str) -> Any:
        return self.llm(prompt)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _block(title: str, value: Any) -> list[str]:
    return [f"{title}:", "<<<", _text(value), ">>>"]


def _feedback_lines(feedback: list[Feedback], limit: int) -> list[str]:
    """Lowest scores first (they say most about what to change), at most ``limit`` items."""
    ranked = sorted(feedback, key=lambda f: (f.score is None, f.score or 0.0))
    scores = [f.score for f in feedback if f.score is not None]
    mean = f", mean score {sum(scores) / len(scores):.2f}" if scores else ""
    lines = [f"Feedback ({len(feedback)} item{'s' if len(feedback) != 1 else ''}{mean}):"]
    for f in ranked[:limit]:
        tags = [f"score {f.score:.2f}"] if f.score is not None else []
        if f.sample is not None:
            tags.append(f"sample {f.sample}")
        head = f"[{', '.join(tags)}] " if tags else ""
        lines.append("- " + head + f.content.replace("\n", "\n  "))
    if len(ranked) > limit:
        lines.append(f"... and {len(ranked) - limit} more")
    return lines


class Optimizer:
    """Updates learnable parameters from their feedback with the model behind ``alias``.

    ``params`` is a `Module` (its parameters, under their dotted names) or an
    iterable of `Parameter`s or ``(name, Parameter)`` pairs. ``resources``
    falls back to the active `ExecutionSettings`; ``audit_log`` is a JSONL
    path (or None to keep entries in memory only). Parameters whose feedback
    all scored 1.0 are left alone unless ``skip_satisfied=False``; at most
    ``max_feedback`` items per parameter are shown, lowest scores first.

        optimizer = Optimizer(pipeline, alias="optimizer", audit_log="audit.jsonl")
        await optimizer.step()
    """

    def __init__(
        self,
        params: Module | Iterable[Parameter | tuple[str, Parameter]],
        alias: str = "optimizer",
        resources: Any = None,
        audit_log: str | Any = None,
        *,
        max_feedback: int = 20,
        skip_satisfied: bool = True,
    ) -> None:
        self._module = params if isinstance(params, Module) else None
        self._given: list[tuple[str | None, Parameter]] = []
        if self._module is None:
            bad = []
            for i, item in enumerate(params):
                name, param = item if isinstance(item, tuple) else (None, item)
                if isinstance(param, Parameter):
                    self._given.append((name, param))
                else:
                    bad.append(f"[{i}] {item!r:.40}")
            if bad:
                raise ConfigError(
                    f"Optimizer params must be Parameters or (name, Parameter) pairs; got {', '.join(bad)}. "
                    "Pass module.parameters(), module.named_parameters() or the module itself."
                )
        if self._module is None and not self._given:
            raise ConfigError("Optimizer got no parameters to optimize (an empty iterable)")
        checks = Checks("Optimizer")
        checks.text("alias", alias)
        checks.number("max_feedback", max_feedback, low=1, integer=True)
        checks.flag("skip_satisfied", skip_satisfied)
        if not isinstance(audit_log, AuditLog):
            checks.path("audit_log", audit_log)
        checks.raise_any()
        resources = as_resources(resources)
        self.alias = alias
        self.resources = resources
        self.audit = audit_log if isinstance(audit_log, AuditLog) else AuditLog(audit_log)
        self.max_feedback = max_feedback
        self.skip_satisfied = skip_satisfied
        self.steps = 0
        self.proposals: list[UpdateProposal] = []
        self.history: list[dict[str, Any]] = []

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """The parameters under their names (a bare Parameter is named by the graph its feedback came from)."""
        if self._module is not None:
            return list(self._module.named_parameters())
        named: list[tuple[str, Parameter]] = []
        seen_params: set[int] = set()
        seen_names: set[str] = set()
        for i, (name, param) in enumerate(self._given):
            if id(param) in seen_params:
                continue
            seen_params.add(id(param))
            routed = next((f.parameter for f in param.feedback if f.parameter), None)
            base = name or routed or param.name or f"parameter_{i}"
            unique, n = base, 1
            while unique in seen_names:
                n += 1
                unique = f"{base}_{n}"
            seen_names.add(unique)
            named.append((unique, param))
        return named

    async def propose(self) -> list[UpdateProposal]:
        """Ask the updater for new values, group by group, upstream first; nothing is applied yet.

        A downstream request is built on the upstream values just proposed;
        if you then edit or reject an upstream proposal, propose again for
        the downstream ones to see it.
        """
        self.steps += 1
        step = self.steps
        learnable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        candidates = []
        for name, param in learnable:
            if not param.feedback:
                continue
            if self.skip_satisfied and all(f.score == 1.0 for f in param.feedback):
                self.audit.write("satisfied", step=step, name=name, feedback=len(param.feedback))
                continue
            candidates.append(name)
        graphs = {
            id(f.record.graph): f.record.graph
            for _, p in learnable
            for f in p.feedback
            if f.record is not None
        }
        plan = plan_updates(learnable, graphs.values())
        params = dict(learnable)
        wanted = set(candidates)
        proposed: dict[str, UpdateProposal] = {}
        for group in plan.groups:
            names = tuple(n for n in group if n in wanted)
            if not names:
                continue
            prompt = self._prompt(names, params, plan.upstream, proposed)
            reply = await run(_Updater(self.alias, names), prompt, resources=self.resources)
            by_name = {u["name"]: u for u in reply["updates"] if u.get("name") in names}
            for name in names:
                found = by_name.get(name)
                if found is not None:
                    proposal = self._proposal(step, name, params[name], found)
                    if proposal is not None:
                        proposed[name] = proposal
        self.proposals = list(proposed.values())
        return list(self.proposals)

    def _prompt(
        self,
        names: tuple[str, ...],
        params: Mapping[str, Parameter],
        upstream: Mapping[str, tuple[str, ...]],
        proposed: Mapping[str, UpdateProposal],
    ) -> str:
        modules = sorted({module_of(n) or "(root)" for n in names})
        together = " together, so they stay consistent" if len(names) > 1 else ""
        lines = [
            f"Update {len(names)} parameter{'s' if len(names) != 1 else ''} of module "
            f"{', '.join(modules)}{together}."
        ]
        above = [u for u in dict.fromkeys(u for n in names for u in upstream[n]) if u not in names]
        if above:
            lines += [
                "",
                "Upstream parameters feed the ones to update. Their new values are already "
                "decided in this step: make the parameters below work with the NEW values.",
            ]
        for u in above:
            lines += ["", f"### Upstream `{u}`", *_block("Old value", params[u].value)]
            if u in proposed:
                lines += _block("New value", proposed[u].new_value)
            else:
                lines.append("New value: unchanged")
        for name in names:
            param = params[name]
            lines += ["", f"### Parameter `{name}`", f"What it controls: {param.description}"]
            if not isinstance(param.value, str):
                lines.append("(A JSON value: reply with its new value as JSON text.)")
            lines += _block("Current value", param.value)
            lines += _feedback_lines(param.feedback, self.max_feedback)
        return "\n".join(lines)

    def _proposal(
        self, step: int, name: str, param: Parameter, update: Mapping[str, Any]
    ) -> UpdateProposal | None:
        text = update["value"]
        if isinstance(param.value, str):
            value: Any = text
        else:
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if value is None or kind_of(value) != kind_of(param.value):
                self.audit.write("invalid", step=step, name=name, proposed_value=text)
                return None
        if value == param.value:
            self.audit.write("unchanged", step=step, name=name, rationale=update["rationale"])
            return None
        proposal = UpdateProposal(
            name,
            param,
            param.value,
            value,
            update["rationale"],
            tuple(param.feedback),
            step,
            module_of(name),
            base_version=param.version,
            proposed_value=value,
            _log=self.audit.write,
        )
        entry = proposal.to_dict()
        for key in ("status", "applied", "proposed_value"):
            entry.pop(key)
        self.audit.write("proposed", **entry, alias=self.alias)
        return proposal

    def apply(self, proposals: Iterable[UpdateProposal] | None = None) -> list[UpdateProposal]:
        """Set the values of accepted and edited proposals (default: the last `propose`'s).

        Pending ones are left for later; nothing is changed if any chosen
        proposal is stale (its parameter changed since) or has a value of the
        wrong type.
        """
        items = self.proposals if proposals is None else list(proposals)
        chosen = [p for p in items if p.status in (ACCEPTED, EDITED) and not p.applied]
        problems = []
        for p in chosen:
            if p.parameter.version != p.base_version:
                problems.append(
                    f"{p.name!r} was proposed at version {p.base_version} but is now at "
                    f"version {p.parameter.version}"
                )
            old, new = p.parameter.value, p.new_value
            if type(new) is not type(old) and kind_of(new) != kind_of(old):
                problems.append(
                    f"{p.name!r} holds a {type(old).__name__}, the new value is a {type(new).__name__}"
                )
        if problems:
            raise ConfigError(
                "cannot apply the proposals: " + "; ".join(problems) + ". Nothing was changed; "
                "run optimizer.propose() again, or edit the value to the right type."
            )
        for p in chosen:
            p.parameter.apply_update(p.new_value)
            p.applied = True
            change = {
                "step": p.step,
                "name": p.name,
                "old_value": p.old_value,
                "new_value": p.new_value,
                "status": p.status,
                "version": p.parameter.version,
            }
            self.history.append(change)
            self.audit.write("applied", **change)
        return chosen

    async def step(self) -> list[UpdateProposal]:
        """Propose, accept every proposal, apply; returns the applied proposals."""
        proposals = await self.propose()
        for proposal in proposals:
            proposal.accept()
        return self.apply(proposals)

    def zero_feedback(self) -> None:
        """Clear the accumulated feedback of every parameter of this optimizer."""
        for _, param in self.named_parameters():
            param.zero_feedback()

    def state_dict(self) -> dict[str, Any]:
        """Learned values, step count and applied changes (JSON-serialisable for str/JSON values)."""
        return {
            "alias": self.alias,
            "steps": self.steps,
            "parameters": {name: p.value for name, p in self.named_parameters()},
            "history": [dict(change) for change in self.history],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved; every problem is reported at once, nothing half-loaded."""
        params = dict(self.named_parameters())
        values = state.get("parameters")
        problems = []
        if not isinstance(values, Mapping):
            problems.append(f"'parameters' must be a dict of name -> value, got {values!r:.60}")
            values = {}
        unknown = sorted(set(values) - set(params))
        if unknown:
            problems.append(f"unknown parameters {', '.join(unknown)}")
        for name, value in values.items():
            if name in params and kind_of(value) != kind_of(params[name].value):
                problems.append(
                    f"{name}: expected {type(params[name].value).__name__}, got {type(value).__name__}"
                )
        if problems:
            raise ConfigError(
                "cannot load optimizer state: "
                + "; ".join(problems)
                + f". Known parameters: {', '.join(params) or '(none)'}."
            )
        for name, value in values.items():
            if value != params[name].value:
                params[name].apply_update(value)
        self.steps = int(state.get("steps", self.steps))
        self.history = [dict(change) for change in state.get("history", [])]

    def __repr__(self) -> str:
        return (
            f"Optimizer(alias={self.alias!r}, parameters={len(self.named_parameters())}, "
            f"steps={self.steps}, proposals={len(self.proposals)})"
        )
