"""Endpoint and resource configuration, validated when built and never showing a key.

`EndpointConfig` is one model endpoint; `ResourceConfig` maps the aliases that
`LLMInference` modules name to endpoints, and loads from dicts or TOML.
Every problem with one endpoint is reported together in one `ConfigError` that
names the alias, the field, the bad value and what is allowed.

API keys are held in a `Secret`, whose repr and str are ``***``: it survives
``repr``, ``str``, ``dataclasses.asdict`` and error messages without showing
its value, and `to_dict` leaves it out. Only `EndpointConfig.resolve_api_key`
returns the raw key, for the client that sends it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hmac
import math
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plait.errors import ConfigError
from plait.simulator.settings import SimulatorSettings

Provider = Literal["openai", "anthropic", "simulated"]
PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "simulated")
SIMULATOR_FIELDS: tuple[str, ...] = (
    "latency",
    "jitter",
    "ttft",
    "tokens_per_second",
    "replies",
    "faults",
    "seed",
)
_DEFAULT_BASE_URL = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_SIMULATED_MODEL = "sim-1"


class Secret:
    """A string that does not show itself: repr and str are ``***``; `reveal` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class EndpointConfig:
    """One model endpoint: where it is, how to authenticate, its limits and prices.

    ``model`` may be left empty only for ``provider="simulated"`` (it becomes
    ``"sim-1"``); ``base_url`` and ``api_key_env`` default per provider. ``api_key``
    accepts a str and is stored as a `Secret`; ``cache`` is False, True, or a
    directory path. ``latency`` ... ``seed`` configure the simulator and are only
    allowed when ``provider="simulated"``.

        EndpointConfig(model="gpt-4o-mini", max_concurrent=20, rpm=500)
    """

    provider: Provider = "openai"
    model: str = ""
    base_url: str | None = None
    api_key: Secret | str | None = None
    api_key_env: str | None = None
    max_concurrent: int = 10
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    rate_limit_patience: float = 300.0
    input_cost_per_million: float = 0.0
    output_cost_per_million: float = 0.0
    cache: bool | Path = False
    latency: float = 0.0
    jitter: float = 0.0
    ttft: float = 0.0
    tokens_per_second: float | None = None
    replies: tuple[Any, ...] = ()
    faults: tuple[Any, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        values = _normalise({name: getattr(self, name) for name in _FIELD_NAMES})
        problems = _problems(values)
        if problems:
            raise _invalid(problems, alias=None)
        for name, value in values.items():
            if name in _FLOAT_FIELDS and value is not None:
                value = float(value)
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, alias: str | None = None) -> EndpointConfig:
        """Build from a mapping of field names, reporting unknown keys with the other problems."""
        if not isinstance(data, Mapping):
            where = f"endpoint {alias!r}" if alias else "EndpointConfig.from_dict"
            raise ConfigError(
                f"{where}: expected a dict of endpoint fields, got {type(data).__name__}"
            )
        problems = [_unknown_field(key) for key in data if key not in _FIELD_NAMES]
        given = {key: value for key, value in data.items() if key in _FIELD_NAMES}
        problems += _problems(_normalise(_DECLARED_DEFAULTS | given))
        if problems:
            raise _invalid(problems, alias)
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        """Every set field as plain data, without the api key; `from_dict` inverts it.

        None values and, off the simulator, simulator fields are left out: they
        are the defaults. A cache directory becomes a str.
        """
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if name == "api_key" or value is None:
                continue
            if name in SIMULATOR_FIELDS and self.provider != "simulated":
                continue
            out[name] = str(value) if isinstance(value, Path) else value
        return out

    def with_overrides(self, **changes: Any) -> EndpointConfig:
        """A copy with ``changes`` applied, validated like `from_dict`.

        When the provider changes, values that were only the old provider's
        defaults (base_url, api_key_env, the simulator's model) and all simulator
        fields are dropped, so switching a simulated endpoint to a real one is
        one call: ``cfg.with_overrides(provider="openai", model="gpt-4o-mini")``.
        """
        return _override(self, changes, alias=None)

    def resolve_api_key(self, *, alias: str | None = None) -> str | None:
        """The key to send: ``api_key``, else the env var ``api_key_env``, read now.

        Returns None when no key is configured and none is needed: the simulator,
        and OpenAI/Anthropic-compatible servers at a custom ``base_url`` (vLLM,
        Ollama...) unless a custom ``api_key_env`` was named. Otherwise a missing
        key is a `ConfigError` naming the variable to set.
        """
        if isinstance(self.api_key, Secret):
            return self.api_key.reveal()
        env_value = os.environ.get(self.api_key_env) if self.api_key_env else None
        if env_value:
            return env_value
        official = self.base_url == _DEFAULT_BASE_URL.get(self.provider)
        custom_env = self.api_key_env != _DEFAULT_KEY_ENV.get(self.provider)
        if self.provider == "simulated" or not (official or custom_env):
            return None
        where = f"endpoint {alias!r}" if alias else f"the {self.provider} endpoint"
        raise ConfigError(
            f"{where} ({self.base_url}) needs an API key, but the environment variable "
            f"{self.api_key_env} is not set; set it, or pass api_key=... in the endpoint config"
        )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The price of one request's usage, from the per-million-token prices."""
        return (
            input_tokens * self.input_cost_per_million
            + output_tokens * self.output_cost_per_million
        ) / 1_000_000

    def __repr__(self) -> str:
        defaults = _normalise(_DECLARED_DEFAULTS | {"provider": self.provider})
        shown = [f"provider={self.provider!r}", f"model={self.model!r}"]
        for name in _FIELD_NAMES[2:]:
            value = getattr(self, name)
            if value != defaults[name]:
                shown.append(f"{name}={value!r}")
        return f"EndpointConfig({', '.join(shown)})"


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EndpointConfig))
_DECLARED_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(EndpointConfig)}
_FLOAT_FIELDS = (
    "rpm",
    "tpm",
    "timeout",
    "retry_base_delay",
    "retry_max_delay",
    "rate_limit_patience",
    "input_cost_per_million",
    "output_cost_per_million",
    "latency",
    "jitter",
    "ttft",
    "tokens_per_second",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _non_negative(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# field -> (check on the normalised value, what is allowed)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: isinstance(v, str), "a model name string"),
    "base_url": (_optional(_url), "an http:// or https:// URL, or None for the default"),
    "api_key_env": (_optional(_non_empty_str), "an environment variable name, or None"),
    "max_concurrent": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "rpm": (_optional(_positive), "a positive number of requests per minute, or None"),
    "tpm": (_optional(_positive), "a positive number of tokens per minute, or None"),
    "timeout": (_positive, "a positive number of seconds"),
    "max_retries": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "retry_base_delay": (_non_negative, "a number of seconds >= 0 (first retry waits up to this)"),
    "retry_max_delay": (_non_negative, "a number of seconds >= 0 (cap on one retry's wait)"),
    "rate_limit_patience": (
        _non_negative,
        "a number of seconds >= 0 (how long one request keeps waiting out 429s)",
    ),
    "input_cost_per_million": (_non_negative, "a number >= 0 (price per million input tokens)"),
    "output_cost_per_million": (_non_negative, "a number >= 0 (price per million output tokens)"),
    "cache": (lambda v: isinstance(v, bool | Path), "True, False, or a cache directory path"),
    "latency": (_non_negative, "a number of seconds >= 0"),
    "jitter": (_non_negative, "a number of seconds >= 0"),
    "ttft": (_non_negative, "a number of seconds >= 0"),
    "tokens_per_second": (_optional(_positive), "a positive number, or None for instant"),
    "replies": (lambda v: isinstance(v, tuple), "a list or tuple of reply rules"),
    "faults": (lambda v: isinstance(v, tuple), "a list or tuple of fault specs"),
    "seed": (_is_int, "an integer"),
}


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    """Fill provider defaults and coerce types; leaves bad values for `_problems` to report."""
    out = dict(values)
    provider = out["provider"]
    if provider == "simulated":
        if out["model"] == "":
            out["model"] = _SIMULATED_MODEL
    elif provider in PROVIDERS:
        if out["base_url"] is None:
            out["base_url"] = _DEFAULT_BASE_URL[provider]
        if out["api_key_env"] is None:
            out["api_key_env"] = _DEFAULT_KEY_ENV[provider]
    if isinstance(out["base_url"], str):
        out["base_url"] = out["base_url"].rstrip("/")
    if isinstance(out["api_key"], str) and out["api_key"]:
        out["api_key"] = Secret(out["api_key"])
    for name in ("replies", "faults"):
        if isinstance(out[name], list):
            out[name] = tuple(out[name])
    if isinstance(out["cache"], str | os.PathLike) and str(out["cache"]):
        out["cache"] = Path(out["cache"])
    return out


def _problems(values: dict[str, Any]) -> list[str]:
    """One line per invalid field of a normalised endpoint, in field order."""
    provider = values["provider"]
    problems = []
    if provider not in PROVIDERS:
        problems.append(_bad("provider", provider, _choices(provider, PROVIDERS)))
    for name in _FIELD_NAMES[1:]:
        value = values[name]
        if name == "api_key":
            if value is not None and not isinstance(value, Secret):
                problems.append(
                    f"api_key: must be a non-empty string or None (got {type(value).__name__})"
                )
        elif name in SIMULATOR_FIELDS and provider != "simulated":
            if value != _DECLARED_DEFAULTS[name]:
                problems.append(
                    f"{name}={_show(value)}: a simulator setting, but provider is {provider!r}; "
                    f"remove it, or set provider='simulated'"
                )
        elif name == "base_url" and provider == "simulated" and value is not None:
            problems.append(
                f"base_url={_show(value)}: the simulated provider runs in-process; "
                f"to call a simulator server, use provider='openai' with this base_url"
            )
        elif name == "model" and isinstance(value, str) and not value.strip():
            problems.append(
                f"model={value!r}: a model name is required for provider {provider!r} "
                f"(e.g. model='gpt-4o-mini')"
            )
        elif name in _RULES and not _RULES[name][0](value):
            problems.append(_bad(name, value, "must be " + _RULES[name][1]))
        elif name in ("replies", "faults") and provider == "simulated":
            problems += _simulator_problems(name, value)
    return problems


def _simulator_problems(name: str, items: tuple[Any, ...]) -> list[str]:
    """Each bad reply rule or fault, checked now rather than on the first request."""
    problems = []
    for i, item in enumerate(items):
        try:
            fields: dict[str, Any] = {name: (item,)}
            SimulatorSettings(**fields)
        except ConfigError as error:
            text = str(error).replace(f"SimulatorSettings.{name}[0]", f"{name}[{i}]")
            problems.append(f"{name}[{i}]: {text}" if not text.startswith(name) else text)
    return problems


def _bad(name: str, value: Any, allowed: str) -> str:
    return f"{name}={_show(value)}: {allowed}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _choices(value: Any, allowed: tuple[str, ...]) -> str:
    listed = ", ".join(repr(choice) for choice in allowed)
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value.lower(), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"must be one of {listed}{hint}"


def _unknown_field(key: Any) -> str:
    close = difflib.get_close_matches(str(key), _FIELD_NAMES, n=1)
    if close:
        return f"{key!r} is not an endpoint field; did you mean {close[0]!r}?"
    return f"{key!r} is not an endpoint field; allowed: {', '.join(_FIELD_NAMES)}"


def _invalid(problems: list[str], alias: str | None) -> ConfigError:
    where = f"endpoint {alias!r}" if alias else "EndpointConfig"
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return ConfigError("\n  - ".join([f"{where} has {count}:", *problems]))


def _override(
    config: EndpointConfig, changes: Mapping[str, Any], alias: str | None
) -> EndpointConfig:
    values = {name: getattr(config, name) for name in _FIELD_NAMES}
    provider = changes.get("provider", config.provider)
    if provider != config.provider:
        old_defaults = _normalise(_DECLARED_DEFAULTS | {"provider": config.provider})
        for name in ("model", "base_url", "api_key_env", *SIMULATOR_FIELDS):
            if name in SIMULATOR_FIELDS or values[name] == old_defaults[name]:
                values[name] = _DECLARED_DEFAULTS[name]
    return EndpointConfig.from_dict(values | dict(changes), alias=alias)


class ResourceConfig:
    """The endpoints a run may call, by alias, plus an optional global concurrency cap.

    Each value is an `EndpointConfig` or a dict of its fields. Problems in every
    endpoint are reported together in one `ConfigError`.

        ResourceConfig({"fast": {"model": "gpt-4o-mini", "max_concurrent": 20}})
    """

    __slots__ = ("_endpoints", "_max_concurrent")

    def __init__(
        self,
        endpoints: Mapping[str, Mapping[str, Any] | EndpointConfig],
        *,
        max_concurrent: int | None = None,
    ):
        if not isinstance(endpoints, Mapping):
            raise ConfigError(
                f"ResourceConfig expects a dict of alias -> endpoint, got "
                f"{type(endpoints).__name__}; e.g. ResourceConfig({{'fast': {{'model': "
                f"'gpt-4o-mini'}}}})"
            )
        built: dict[str, EndpointConfig] = {}
        errors: list[str] = []
        for alias, spec in endpoints.items():
            if not _non_empty_str(alias):
                errors.append(f"endpoint alias {alias!r}: must be a non-empty string")
            elif isinstance(spec, EndpointConfig):
                built[alias] = spec
            else:
                try:
                    built[alias] = EndpointConfig.from_dict(spec, alias=alias)
                except ConfigError as error:
                    errors.append(str(error))
        if max_concurrent is not None and not (_is_int(max_concurrent) and max_concurrent >= 1):
            errors.append(
                f"max_concurrent={_show(max_concurrent)}: the global cap must be an integer "
                f">= 1, or None for no global cap"
            )
        if errors:
            raise ConfigError("\n".join(errors))
        self._endpoints = built
        self._max_concurrent = max_concurrent

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceConfig:
        """Build from ``{"endpoints": {alias: {...}}, "max_concurrent": N}``, as `to_dict` gives."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"ResourceConfig.from_dict expects a dict with an 'endpoints' table, "
                f"got {type(data).__name__}"
            )
        unknown = [key for key in data if key not in ("endpoints", "max_concurrent")]
        if unknown:
            hints = [_choices(key, ("endpoints", "max_concurrent")) for key in unknown]
            raise ConfigError(
                "; ".join(
                    f"unknown top-level key {key!r}: {hint}"
                    for key, hint in zip(unknown, hints, strict=True)
                )
            )
        if "endpoints" not in data:
            raise ConfigError(
                "resource config has no 'endpoints' table; add one entry per alias, e.g. "
                '[endpoints.fast] with model = "gpt-4o-mini"'
            )
        return cls(data["endpoints"], max_concurrent=data.get("max_concurrent"))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> ResourceConfig:
        """Load ``[endpoints.<alias>]`` tables and an optional top-level ``max_concurrent``."""
        path = Path(path)
        try:
            with path.open("rb") as file:
                data = tomllib.load(file)
        except OSError as error:
            raise ConfigError(f"cannot read resource config {str(path)!r}: {error}") from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{str(path)!r} is not valid TOML: {error}") from error
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f"in {str(path)!r}: {error}") from None

    @classmethod
    def simulated(
        cls, *aliases: str, max_concurrent: int | None = None, **fields: Any
    ) -> ResourceConfig:
        """Simulated endpoints for demos and tests, all with the same simulator ``fields``.

        ``ResourceConfig.simulated("fast", "smart", latency=0.2)``
        """
        if not aliases:
            raise ConfigError(
                "ResourceConfig.simulated() needs at least one alias, e.g. "
                "ResourceConfig.simulated('fast', 'smart')"
            )
        if "provider" in fields:
            raise ConfigError(
                f"ResourceConfig.simulated() sets provider='simulated' itself; got "
                f"provider={fields['provider']!r}: build a ResourceConfig directly instead"
            )
        return cls(
            {alias: {"provider": "simulated", **fields} for alias in aliases},
            max_concurrent=max_concurrent,
        )

    @property
    def max_concurrent(self) -> int | None:
        """The cap on requests in flight across all endpoints, or None."""
        return self._max_concurrent

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    def items(self) -> list[tuple[str, EndpointConfig]]:
        return list(self._endpoints.items())

    def get(self, alias: str) -> EndpointConfig | None:
        return self._endpoints.get(alias)

    def __getitem__(self, alias: str) -> EndpointConfig:
        try:
            return self._endpoints[alias]
        except KeyError:
            raise ConfigError(self._unknown_alias(alias)) from None

    def __contains__(self, alias: object) -> bool:
        return alias in self._endpoints

    def __iter__(self) -> Iterator[str]:
        return iter(self._endpoints)

    def __len__(self) -> int:
        return len(self._endpoints)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceConfig):
            return NotImplemented
        return (self._endpoints, self._max_concurrent) == (
            other._endpoints,
            other._max_concurrent,
        )

    __hash__ = None  # type: ignore[assignment]

    def with_overrides(self, alias: str, **changes: Any) -> ResourceConfig:
        """A copy with endpoint ``alias`` changed as by `EndpointConfig.with_overrides`."""
        endpoint = _override(self[alias], changes, alias=alias)
        return ResourceConfig(
            self._endpoints | {alias: endpoint}, max_concurrent=self._max_concurrent
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data without api keys; `from_dict` inverts it."""
        out: dict[str, Any] = {
            "endpoints": {alias: config.to_dict() for alias, config in self._endpoints.items()}
        }
        if self._max_concurrent is not None:
            out["max_concurrent"] = self._max_concurrent
        return out

    def __repr__(self) -> str:
        cap = f", max_concurrent={self._max_concurrent}" if self._max_concurrent else ""
        return f"ResourceConfig({self._endpoints!r}{cap})"

    def _unknown_alias(self, alias: object) -> str:
        known = ", ".join(repr(name) for name in self._endpoints) or "(none)"
        close = difflib.get_close_matches(str(alias), self._endpoints, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"no endpoint named {alias!r}{hint}; known aliases: {known}. "
            f"Add it to the ResourceConfig, or use a known alias."
        )
