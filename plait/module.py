"""`Module`: the unit of composition, mirroring ``torch.nn.Module``.

Assigning a `Module` or `Parameter` to an attribute registers it; every
``named_*`` method is one walk (`_named_members`) over that registry.
Calling a module while a graph is being traced hands the call to the tracer;
otherwise ``forward`` runs as plain Python (leaf modules such as
`LLMInference` refuse, since they only run inside a plait run).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

from plait._context import active_tracer
from plait._upcalls import notebook_html, upcall
from plait.errors import ConfigError
from plait.parameter import Parameter


def _json_ready(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_ABSENT = object()


class IncompatibleKeys(NamedTuple):
    """What `Module.load_state_dict` could not match."""

    missing: list[str]
    unexpected: list[str]


class Module:
    """Base class for every plait component; subclasses define ``forward``.

    >>> class Echo(Module):
    ...     def forward(self, text):
    ...         return text
    >>> Echo()("hi")
    'hi'
    """

    # Leaf modules become one graph node each instead of being traced through.
    _is_leaf: ClassVar[bool] = False

    def __init__(self) -> None:
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "training", False)
        object.__setattr__(self, "_settings", None)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = active_tracer()
        if tracer is not None:
            return tracer.call_module(self, args, kwargs)
        if self._settings is not None:
            return upcall("run")(self, *args, **kwargs)
        return self._call_outside_run(args, kwargs)

    def _call_outside_run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.forward(*args, **kwargs)

    def bind(self, resources: object = None, **options: Any) -> Self:
        """Attach resources and run options, so that ``await module(x)`` runs the pipeline.

        ``resources`` and ``options`` are what `ExecutionSettings` accepts (a
        `ResourceConfig`, a dict of endpoints or a ``.toml`` path), checked there.

        pipeline.bind(resources=ResourceConfig.simulated("fast", "smart"))
        await pipeline("input text")
        """
        settings = upcall("execution_settings")(resources, **options)
        object.__setattr__(self, "_settings", settings)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__.get("_parameters")
        if registry is None:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        params, modules = self._parameters, self._modules
        # Replacing a member keeps its position (dict assignment); moving it between kinds does not.
        if isinstance(value, Parameter):
            modules.pop(name, None)
            if value.name is None:
                value.name = name
            params[name] = value
            self._mirror(name, value)
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
            self._mirror(name, value)
        else:
            params.pop(name, None)
            modules.pop(name, None)
            object.__setattr__(self, name, value)

    def _mirror(self, name: str, member: Any) -> None:
        """Also keep a registered member in the instance ``__dict__``.

        ``self.llm`` in a forward is then a plain attribute read, where a miss
        that falls back to `__getattr__` costs several times more (an async
        forward reads its members on every call it makes). A name the class
        itself defines (a method such as ``keys`` of a `ModuleDict`) is not
        mirrored, so the class attribute still wins, as before. The registries
        stay the record of members, their order and kind.
        """
        fields = self.__dict__
        if getattr(type(self), name, _ABSENT) is _ABSENT:
            fields[name] = member
        else:
            fields.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup failed: registered members live in the registries.
        registries = self.__dict__
        for key in ("_parameters", "_modules"):
            members = registries.get(key)
            if members is not None and name in members:
                return members[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
            self.__dict__.pop(name, None)
        elif name in self._modules:
            del self._modules[name]
            self.__dict__.pop(name, None)
        else:
            object.__delattr__(self, name)

    def _clear_members(self, registry: dict[str, Any]) -> None:
        """Unregister every member of ``registry`` (``self._modules`` or ``self._parameters``)."""
        for name in registry:
            self.__dict__.pop(name, None)
        registry.clear()

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._parameters, *self._modules})

    def named_modules(
        self, prefix: str = "", *, memo: set[int] | None = None
    ) -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted name, module)`` for this module and every descendant, each once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo=memo)

    def _named_members(
        self, members: Callable[[Module], Mapping[str, Any]], prefix: str, recurse: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for module_prefix, module in modules:
            for name, member in members(module).items():
                if id(member) in seen:
                    continue
                seen.add(id(member))
                yield (f"{module_prefix}.{name}" if module_prefix else name), member

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted name, parameter)``; a shared parameter once, under its first name."""
        return self._named_members(lambda m: m._parameters, prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, module)`` for direct children, each once."""
        return self._named_members(lambda m: m._modules, "", recurse=False)

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def train(self, mode: bool = True) -> Module:
        """Set training mode here and below: runs keep forward records for backward."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Make every parameter learnable or frozen."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Every parameter's value by dotted name (JSON-serialisable when the values are)."""
        return {name: param.value for name, param in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Load values saved by `state_dict`.

        All problems (missing keys, unexpected keys, values of the wrong type)
        are found first and reported in one `ConfigError`; nothing is changed
        unless the whole load can succeed. With ``strict=False`` key mismatches
        are returned instead of raised.
        """
        params = dict(self.named_parameters())
        missing = [name for name in params if name not in state]
        unexpected = [name for name in state if name not in params]
        problems: list[str] = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        for name, param in params.items():
            if name in state and not isinstance(state[name], type(param.value)):
                problems.append(
                    f"{name}: expected {type(param.value).__name__}, "
                    f"got {type(state[name]).__name__}"
                )
        if problems:
            raise ConfigError(
                f"cannot load state into {type(self).__name__}: "
                + "; ".join(problems)
                + f". Expected keys: {', '.join(params) or '(none)'}."
            )
        for name, param in params.items():
            if name in state and state[name] != param.value:
                param.apply_update(state[name])
        return IncompatibleKeys(missing, unexpected)

    def save(self, path: str | Path) -> None:
        """Write `state_dict` to ``path`` as JSON (the learned prompts, by dotted name)."""
        state = self.state_dict()
        try:
            text = json.dumps(state, ensure_ascii=False, indent=2)
        except (TypeError, ValueError) as exc:
            bad = [n for n, v in state.items() if not _json_ready(v)]
            raise ConfigError(
                f"cannot save {type(self).__name__}: parameter(s) {', '.join(bad) or '?'} hold "
                f"values JSON cannot represent ({exc}). Keep parameter values to str, numbers, "
                "bools, None, lists and dicts, or save state_dict() yourself."
            ) from exc
        # Written beside the target and renamed, so a crash never leaves half a file.
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(text + "\n", encoding="utf-8")
        partial.replace(target)

    def load(self, path: str | Path, strict: bool = True) -> IncompatibleKeys:
        """Load values written by `save` (see `load_state_dict` for ``strict``)."""
        try:
            state = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read module state from {str(path)!r}: {exc}") from exc
        if not isinstance(state, dict):
            raise ConfigError(
                f"{str(path)!r} holds a {type(state).__name__}, not a module state (a JSON object "
                "of parameter name -> value written by Module.save)"
            )
        return self.load_state_dict(state, strict=strict)

    def extra_repr(self) -> str:
        """Details shown inside this module's repr; override to add configuration."""
        return ""

    def __repr__(self) -> str:
        lines = [
            f"({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self._modules.items()
        ]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"

    def _repr_html_(self) -> str | None:
        return notebook_html(self)
