"""Run options and `ExecutionSettings`, the context that shares them across runs.

Every entry point takes the same keyword-only run options; an option left
unset falls back to the module's `bind` settings, then to the innermost active
`ExecutionSettings`, then to its default. ``on_event`` callbacks accumulate
instead of replacing each other, so a notebook's live view and a user's own
callback both see every event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, fields, replace
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from plait._checks import Checks
from plait.errors import ConfigError
from plait.resources.config import ResourceConfig
from plait.resources.manager import ResourceManager

RUN_OPTIONS = (
    "resources",
    "max_concurrent",
    "on_event",
    "checkpoint",
    "cache",
    "profile",
    "max_cost",
    "max_tokens",
    "store",
)


@runtime_checkable
class StoreLike(Protocol):
    """What a run store offers the runtime (`plait.RunStore`, a floor above, implements it)."""

    def begin(self, kind: str, **fields: Any) -> int: ...


@dataclass(frozen=True)
class RunOptions:
    """The options of one run; None means "not set here"."""

    resources: ResourceConfig | ResourceManager | None = None
    max_concurrent: int | None = None
    on_event: tuple[Callable[[Any], None], ...] = ()
    checkpoint: str | Path | None = None
    cache: bool | str | Path | None = None
    profile: bool | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    store: Any = None  # a path to a SQLite file, a plait.RunStore, or False: do not store

    @classmethod
    def build(cls, **options: Any) -> RunOptions:
        unknown = sorted(set(options) - set(RUN_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown run option(s) {', '.join(unknown)}; run options are: {', '.join(RUN_OPTIONS)}"
            )
        problems = []
        cap = options.get("max_concurrent")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            problems.append(f"max_concurrent={cap!r}: must be a positive int")
        for name in ("max_cost", "max_tokens"):
            value = options.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                problems.append(f"{name}={value!r}: must be a positive number")
        checks = Checks("invalid run options")
        if options.get("profile") is not None:
            checks.flag("profile", options["profile"])
        checks.path("checkpoint", options.get("checkpoint"))
        cache = options.get("cache")
        checks.check(
            cache is None or isinstance(cache, bool | str | PathLike),
            "cache",
            cache,
            "True, False or a directory path",
        )
        store = options.get("store")
        checks.check(
            store in (None, False) or isinstance(store, str | PathLike | StoreLike),
            "store",
            store,
            "a path to a SQLite file, a plait.RunStore, or False (do not store)",
        )
        problems += checks.problems
        if problems:
            raise ConfigError("invalid run options: " + "; ".join(problems))
        options["resources"] = as_resources(options.get("resources"))
        options["on_event"] = _callbacks(options.get("on_event"))
        return cls(**options)

    def over(self, base: RunOptions) -> RunOptions:
        """These options, falling back to ``base`` for what is unset here."""
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in merged.items():
            if value is None:
                merged[name] = getattr(base, name)
        merged["on_event"] = base.on_event + self.on_event
        return replace(self, **merged)


def _callbacks(value: Any) -> tuple[Callable[[Any], None], ...]:
    if value is None:
        return ()
    items = (value,) if callable(value) else tuple(value) if isinstance(value, Iterable) else None
    if items is None or not all(callable(cb) for cb in items):
        raise ConfigError(f"on_event must be a callable or a list of callables; got {value!r:.80}")
    return items


# What ``resources=`` accepts everywhere (runs, ``bind``, `ExecutionSettings`).
Resources = ResourceConfig | ResourceManager | Mapping[str, Any] | str | Path | None


def as_resources(value: Any) -> ResourceConfig | ResourceManager | None:
    """Accept a ResourceConfig, a ResourceManager, the seed's dict form, or a TOML file path."""
    if value is None or isinstance(value, ResourceConfig | ResourceManager):
        return value
    if isinstance(value, Mapping):
        return ResourceConfig(value)
    if isinstance(value, str | Path) and str(value).endswith(".toml"):
        return ResourceConfig.from_toml(value)
    raise ConfigError(
        f"resources must be a ResourceConfig, a dict of endpoints, or a path to a .toml file; got {value!r:.80}"
    )


_ACTIVE: ContextVar[tuple[ExecutionSettings, ...]] = ContextVar(
    "plait_execution_settings", default=()
)


class ExecutionSettings:
    """Share resources and run options across every run in a ``with`` block.

    Runs inside reuse one `ResourceManager` (and so one connection pool per
    endpoint); leaving the block releases it.

        with ExecutionSettings(resources=ResourceConfig.simulated("fast")):
                print(run_sync(pipeline, "text"))
    """

    def __init__(self, resources: Resources = None, **options: Any) -> None:
        self.options = RunOptions.build(resources=resources, **options)
        self._manager: ResourceManager | None = None
        self._tokens: list[Token[tuple[ExecutionSettings, ...]]] = []

    def manager(self) -> ResourceManager | None:
        """The manager shared by the runs under these settings (built on first use)."""
        resources = self.options.resources
        if isinstance(resources, ResourceManager):
            return resources
        if resources is not None and self._manager is None:
            self._manager = ResourceManager(resources)
        return self._manager

    def __enter__(self) -> ExecutionSettings:
        self._tokens.append(_ACTIVE.set((*_ACTIVE.get(), self)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _ACTIVE.reset(self._tokens.pop())
        # Sync exit: the event loops that used the pools are gone; drop them.
        self._manager = None

    async def __aenter__(self) -> ExecutionSettings:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        _ACTIVE.reset(self._tokens.pop())
        manager, self._manager = self._manager, None
        if manager is not None:
            await manager.aclose()

    def __repr__(self) -> str:
        shown = {f.name: getattr(self.options, f.name) for f in fields(self.options)}
        text = ", ".join(f"{k}={v!r}" for k, v in shown.items() if v not in (None, ()))
        return f"ExecutionSettings({text})"


def active_settings() -> tuple[ExecutionSettings, ...]:
    """The active settings, outermost first."""
    return _ACTIVE.get()


def effective_options(
    explicit: RunOptions, module: Any = None
) -> tuple[RunOptions, ExecutionSettings | None]:
    """Merge explicit options over the module's bound settings and the active contexts.

    Returns the options and the settings object whose shared manager applies (if any).
    """
    layers = list(active_settings())
    bound = getattr(module, "_settings", None)
    if bound is not None:
        layers.append(bound)
    options = explicit
    owner = None
    for settings in reversed(layers):
        if owner is None and options.resources is None and settings.options.resources is not None:
            owner = settings
        options = options.over(settings.options)
    return options, owner
