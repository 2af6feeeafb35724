"""Simulator settings: timing, scripted reply rules and injected faults.

Rules and faults are typed records, but every place that takes them also
accepts the plain-dict form used in TOML/JSON config::

    {"match": {"system": "Summarize", "user": "regex:about (?P<topic>\\w+)"},
     "reply": "A summary of {topic}."}
    {"match": {"structured": True}, "json": {"label": "positive", "score": 0.9}}
    {"match": {"tools": True}, "tool_call": {"name": "search", "arguments": {"q": "{user}"}}}
    {"kind": "server_error", "rate": 0.2, "status": 503, "attempts": "first"}

``match`` keys (all optional; an empty or missing match matches every request):
``model``, ``system``, ``user`` are patterns tested against the model name, the
system prompt and the last user message's text: a substring by default, a
regular expression (``re.search``) after a ``regex:`` prefix. ``tools``,
``structured`` and ``tool_result`` are booleans: the request has tools / asks
for JSON output (``response_format`` or Anthropic ``output_format``) / ends
with a tool result.

A rule gives exactly one of ``reply`` (text), ``json`` (any JSON value but
null; sent as the message text, or as the forced tool's input when an
Anthropic request forces a tool), ``tool_call`` (``{"name", "arguments", "id"}``
or a list of them; without ``name`` the request's first tool, without
``arguments`` schema-valid ones). ``finish_reason`` (OpenAI vocabulary)
optionally overrides the reported one. Every string in a reply is a
`str.format` template (write ``{{``/``}}`` for literal braces) over: ``{user}``,
``{system}``, ``{model}``, ``{digest}`` (the default reply's 8-hex request
digest), the named groups of every regex in ``match``, and positional ``{0}``
(whole match), ``{1}``... of the ``user`` regex, else the ``system`` one.
The first matching rule wins. A bare string in ``replies`` is a rule that
matches every request and replies with that text.

Faults: ``kind`` is one of `FAULT_KINDS`; ``rate`` (0-1, default 1) is the
chance a request that qualifies gets it; ``attempts`` is ``"first"`` (only the
first sighting of an identical request qualifies), ``"all"`` (default) or N
(the first N sightings); ``after`` skips the first N requests the simulator
receives; ``match`` narrows it like a rule. Per kind: ``rate_limit`` takes
``retry_after`` (seconds, default 1) and ``send_retry_after`` (default true;
false sends the 429 without any Retry-After header), ``server_error`` takes ``status`` (500-599,
default 500), ``client_error`` takes ``status`` (400-499 but 429, default 400:
a request the provider refuses, which is not retried), ``timeout`` takes ``hang`` (seconds without answering, default 30),
``cut_stream`` takes ``chunks`` (events sent before the cut, default 2; applies
to streamed requests only). ``malformed`` and ``connection_reset`` take nothing.
The first fault that fires wins.
"""

from __future__ import annotations

import json
import math
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from plait._tree import tree_map
from plait.errors import ConfigError

FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "client_error",
    "timeout",
    "malformed",
    "cut_stream",
    "connection_reset",
)
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
_KIND_OPTIONS = {
    "retry_after": ("rate_limit",),
    "send_retry_after": ("rate_limit",),
    "status": ("server_error", "client_error"),
    "hang": ("timeout",),
    "chunks": ("cut_stream",),
}
_TEMPLATE_NAMES = frozenset({"user", "system", "model", "digest"})


def _fail(owner: str, name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{owner}.{name} must be {allowed}, got {value!r}")


def _number(owner: str, name: str, value: Any, *, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        allowed = "a number > 0" if positive else "a number >= 0"
        raise _fail(owner, name, value, allowed)
    return float(value)


def _from_mapping(cls: type, value: Any, where: str) -> Any:
    """Build ``cls`` from ``value`` when it is a mapping, naming unknown keys."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a {cls.__name__} or a dict, got {value!r}")
    allowed = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; allowed keys are {allowed}")
    return cls(**value)


class _Pattern:
    """A ``model``/``system``/``user`` pattern: substring, or regex after ``regex:``."""

    __slots__ = ("regex", "source", "substring")

    def __init__(self, source: str, where: str):
        self.source = source
        self.substring: str | None = None
        self.regex: re.Pattern[str] | None = None
        if source.startswith("regex:"):
            try:
                self.regex = re.compile(source[6:])
            except re.error as exc:
                raise ConfigError(
                    f"{where} is not a valid regular expression ({exc}): {source!r}; "
                    "drop the 'regex:' prefix to match a plain substring"
                ) from exc
        else:
            self.substring = source


@dataclass(frozen=True, slots=True)
class RequestMatch:
    """Which requests a rule or fault applies to; every given condition must hold."""

    model: str | None = None
    system: str | None = None
    user: str | None = None
    tools: bool | None = None
    structured: bool | None = None
    tool_result: bool | None = None
    _patterns: tuple[tuple[str, _Pattern], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        patterns = []
        for name in ("model", "system", "user"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise _fail("match", name, value, "a string (substring, or 'regex:...')")
            patterns.append((name, _Pattern(value, f"match.{name}")))
        for name in ("tools", "structured", "tool_result"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise _fail("match", name, value, "true, false or absent")
        object.__setattr__(self, "_patterns", tuple(patterns))

    def template_fields(self) -> tuple[frozenset[str], int]:
        """Named fields a reply template may use, and how many positional ones."""
        names = set(_TEMPLATE_NAMES)
        for _, pattern in self._patterns:
            if pattern.regex is not None:
                names.update(pattern.regex.groupindex)
        positional = self._positional_regex()
        return frozenset(names), 0 if positional is None else positional.groups + 1

    def _positional_regex(self) -> re.Pattern[str] | None:
        by_name = dict(self._patterns)
        for name in ("user", "system"):
            if name in by_name and by_name[name].regex is not None:
                return by_name[name].regex
        return None

    def test(self, texts: Mapping[str, str], flags: Mapping[str, bool]) -> dict[str, Any] | None:
        """The template context if the request matches, else None.

        ``texts`` maps model/system/user to the request's strings; ``flags``
        maps tools/structured/tool_result to what the request has.
        """
        for name in ("tools", "structured", "tool_result"):
            wanted = getattr(self, name)
            if wanted is not None and wanted != flags[name]:
                return None
        context: dict[str, Any] = dict(texts)
        positional: tuple[str, ...] = ()
        positional_regex = self._positional_regex()
        for name, pattern in self._patterns:
            text = texts[name]
            if pattern.regex is None:
                if (pattern.substring or "") not in text:
                    return None
                continue
            found = pattern.regex.search(text)
            if found is None:
                return None
            context.update({k: v or "" for k, v in found.groupdict().items()})
            if pattern.regex is positional_regex:
                positional = (found.group(0), *(g or "" for g in found.groups()))
        context["_positional"] = positional
        return context


def map_strings(value: Any, fn: Any) -> Any:
    """Apply ``fn`` to every string inside a JSON value, keys excluded."""
    return tree_map(lambda leaf: fn(leaf) if isinstance(leaf, str) else leaf, value)


def _check_template(template: str, names: frozenset[str], positional: int, where: str) -> str:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{where} is not a valid template ({exc}): {template!r}; "
            "write '{{' and '}}' for literal braces"
        ) from exc
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if root.isdigit() and int(root) < positional:
            continue
        if root not in names:
            numbered = f" and {{0}}..{{{positional - 1}}}" if positional else ""
            raise ConfigError(
                f"{where} uses the placeholder {{{name}}}, which this rule does not define; "
                f"available: {sorted(names)}{numbered}; write '{{{{' and '}}}}' for literal braces"
            )
    return template


@dataclass(frozen=True, slots=True)
class ReplyRule:
    """A scripted reply: when ``match`` holds, answer with ``reply``, ``json`` or ``tool_call``."""

    match: RequestMatch | Mapping[str, Any] | None = None
    reply: str | None = None
    json: Any = None
    tool_call: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        match = _from_mapping(RequestMatch, self.match or {}, "rule.match")
        object.__setattr__(self, "match", match)
        given = [k for k in ("reply", "json", "tool_call") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                "a reply rule needs exactly one of 'reply', 'json', 'tool_call'; "
                f"got {given or 'none'} in {self!r}"
            )
        if self.reply is not None and not isinstance(self.reply, str):
            raise _fail("rule", "reply", self.reply, "a string")
        if self.finish_reason is not None and self.finish_reason not in FINISH_REASONS:
            raise _fail("rule", "finish_reason", self.finish_reason, f"one of {FINISH_REASONS}")
        try:
            json.dumps(self.json)
        except (TypeError, ValueError) as exc:
            raise _fail("rule", "json", self.json, "a JSON-serializable value") from exc
        if self.tool_call is not None:
            calls = [self.tool_call] if isinstance(self.tool_call, Mapping) else self.tool_call
            object.__setattr__(self, "tool_call", tuple(_tool_call(c) for c in calls))
        names, positional = match.template_fields()

        def check(text: str) -> str:
            return _check_template(text, names, positional, "rule reply")

        map_strings([self.reply, self.json, self.tool_call], check)


def _tool_call(spec: Any) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping) or set(spec) - {"name", "arguments", "id"}:
        raise _fail(
            "rule",
            "tool_call",
            spec,
            "a dict with optional keys 'name', 'arguments', 'id' (or a list of them)",
        )
    if "arguments" in spec and not isinstance(spec["arguments"], Mapping):
        raise _fail("rule.tool_call", "arguments", spec["arguments"], "a dict")
    return dict(spec)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """An injected failure; see the module docstring for each kind's options."""

    kind: str
    rate: float = 1.0
    attempts: str | int = "all"
    after: int = 0
    match: RequestMatch | Mapping[str, Any] | None = None
    retry_after: float | None = None
    send_retry_after: bool | None = None
    status: int | None = None
    hang: float | None = None
    chunks: int | None = None

    def __post_init__(self) -> None:
        owner = f"fault {self.kind!r}"
        if self.kind not in FAULT_KINDS:
            raise _fail("fault", "kind", self.kind, f"one of {FAULT_KINDS}")
        rate = _number(owner, "rate", self.rate)
        if rate > 1:
            raise _fail(owner, "rate", self.rate, "a probability between 0 and 1")
        object.__setattr__(self, "rate", rate)
        ok_attempts = self.attempts in ("first", "all") or (
            type(self.attempts) is int and self.attempts >= 1
        )
        if not ok_attempts:
            raise _fail(owner, "attempts", self.attempts, "'first', 'all' or an integer >= 1")
        if type(self.after) is not int or self.after < 0:
            raise _fail(owner, "after", self.after, "an integer >= 0")
        object.__setattr__(self, "match", _from_mapping(RequestMatch, self.match or {}, owner))
        for name, kinds in _KIND_OPTIONS.items():
            if getattr(self, name) is not None and self.kind not in kinds:
                raise ConfigError(
                    f"{owner}: option {name!r} applies only to kind {' or '.join(map(repr, kinds))}; remove it"
                )
        if self.kind == "rate_limit":
            retry = 1.0 if self.retry_after is None else self.retry_after
            object.__setattr__(self, "retry_after", _number(owner, "retry_after", retry))
            if self.send_retry_after is not None and not isinstance(self.send_retry_after, bool):
                raise _fail(owner, "send_retry_after", self.send_retry_after, "true or false")
        elif self.kind == "server_error":
            status = 500 if self.status is None else self.status
            if type(status) is not int or not 500 <= status <= 599:
                raise _fail(owner, "status", status, "an HTTP status from 500 to 599")
            object.__setattr__(self, "status", status)
        elif self.kind == "client_error":
            status = 400 if self.status is None else self.status
            if type(status) is not int or not 400 <= status <= 499 or status == 429:
                raise _fail(
                    owner,
                    "status",
                    status,
                    "an HTTP status from 400 to 499 other than 429 (use rate_limit)",
                )
            object.__setattr__(self, "status", status)
        elif self.kind == "timeout":
            hang = 30.0 if self.hang is None else self.hang
            object.__setattr__(self, "hang", _number(owner, "hang", hang, positive=True))
        elif self.kind == "cut_stream":
            chunks = 2 if self.chunks is None else self.chunks
            if type(chunks) is not int or chunks < 0:
                raise _fail(owner, "chunks", chunks, "an integer >= 0")
            object.__setattr__(self, "chunks", chunks)

    @property
    def max_sightings(self) -> int | None:
        """How many sightings of one request may fault (None: all of them)."""
        if self.attempts == "all":
            return None
        return 1 if self.attempts == "first" else int(self.attempts)


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """How the simulated model behaves; every field is validated at construction.

    Times are seconds. ``latency`` + a uniform draw in [0, ``jitter``] passes
    before a response starts; ``ttft`` more before the first streamed chunk;
    ``tokens_per_second`` then paces the output (None: instant). ``max_rps``
    answers requests beyond that rate (bursts up to ``max(1, max_rps)``) with
    429; ``rate_limit_headers`` makes every answer carry the bucket's state in
    OpenAI's ``x-ratelimit-*-requests`` headers. ``seed`` keys the fault and jitter draws; replies depend only on the
    request. ``log_limit`` caps the request log (oldest dropped first).
    """

    latency: float = 0.0
    jitter: float = 0.0
    ttft: float = 0.0
    tokens_per_second: float | None = None
    replies: Sequence[ReplyRule | Mapping[str, Any]] = ()
    faults: Sequence[FaultSpec | Mapping[str, Any]] = ()
    max_rps: float | None = None
    rate_limit_headers: bool = False
    seed: int = 0
    log_limit: int | None = 10_000

    def __post_init__(self) -> None:
        owner = "SimulatorSettings"
        for name in ("latency", "jitter", "ttft"):
            object.__setattr__(self, name, _number(owner, name, getattr(self, name)))
        for name in ("tokens_per_second", "max_rps"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _number(owner, name, value, positive=True))
        if not isinstance(self.rate_limit_headers, bool):
            raise _fail(owner, "rate_limit_headers", self.rate_limit_headers, "true or false")
        if type(self.seed) is not int:
            raise _fail(owner, "seed", self.seed, "an integer")
        if self.log_limit is not None and (type(self.log_limit) is not int or self.log_limit < 0):
            raise _fail(owner, "log_limit", self.log_limit, "an integer >= 0, or None for no limit")
        for name, cls in (("replies", ReplyRule), ("faults", FaultSpec)):
            items = getattr(self, name)
            if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
                raise _fail(owner, name, items, f"a list of {cls.__name__} or dicts")
            typed = tuple(
                ReplyRule(reply=item)
                if cls is ReplyRule and isinstance(item, str)
                else _from_mapping(cls, item, f"{owner}.{name}[{i}]")
                for i, item in enumerate(items)
            )
            object.__setattr__(self, name, typed)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SimulatorSettings:
        """Settings from a config dict, naming any unknown key."""
        return _from_mapping(cls, data, "simulator settings")

    @classmethod
    def from_file(cls, path: str | Path) -> SimulatorSettings:
        """Settings from a ``.toml`` or ``.json`` file whose top-level keys are the fields."""
        path = Path(path)
        loads = {".toml": tomllib.loads, ".json": json.loads}.get(path.suffix)
        if loads is None:
            raise ConfigError(
                f"simulator config {str(path)!r} must end in .toml or .json, got {path.suffix!r}"
            )
        try:
            data = loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read simulator config {str(path)!r}: {exc}") from exc
        return cls.from_mapping(data)
