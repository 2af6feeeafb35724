"""Container modules: `Sequential`, `ModuleList`, `ModuleDict`, `ParameterList`, `ParameterDict`.

Members are registered under their index ("0", "1", ...) or key, so names in
``named_parameters()`` and ``state_dict()`` read like ``stages.1.system_prompt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from plait.errors import ConfigError
from plait.module import Module
from plait.parameter import Parameter


def _check(item: Any, expected: type, container: str, where: str) -> Any:
    if not isinstance(item, expected):
        raise ConfigError(
            f"{container} holds {expected.__name__}s; {where} is a {type(item).__name__} "
            f"({item!r:.60}). Wrap it first, e.g. {expected.__name__}(...)."
        )
    return item


class _IndexedModule(Module):
    """Shared machinery of the list-like containers: members live under "0", "1", ..."""

    _member: type = Module
    _registry: str = "_modules"

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__()
        for item in items:
            self.append(item)

    def _members(self) -> dict[str, Any]:
        return getattr(self, self._registry)

    def _index(self, idx: int) -> str:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for {type(self).__name__} of length {n}")
        return str(idx % n)

    def append(self, item: Any) -> _IndexedModule:
        name = type(self).__name__
        setattr(self, str(len(self)), _check(item, self._member, name, f"item {len(self)}"))
        return self

    def extend(self, items: Iterable[Any]) -> _IndexedModule:
        for item in items:
            self.append(item)
        return self

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(list(self)[idx])
        return self._members()[self._index(idx)]

    def __setitem__(self, idx: int, item: Any) -> None:
        name = type(self).__name__
        setattr(self, self._index(idx), _check(item, self._member, name, f"item {idx}"))

    def __delitem__(self, idx: int) -> None:
        items = list(self)
        del items[int(self._index(idx))]
        self._clear_members(self._members())
        self.extend(items)

    def __len__(self) -> int:
        return len(self._members())

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._members().values()))

    def __iadd__(self, items: Iterable[Any]) -> _IndexedModule:
        return self.extend(items)


class ModuleList(_IndexedModule):
    """A list of modules, registered so their parameters are found."""

    def insert(self, index: int, module: Module) -> None:
        items = list(self)
        items.insert(index, _check(module, Module, "ModuleList", f"item {index}"))
        self._clear_members(self._modules)
        self.extend(items)


class Sequential(ModuleList):
    """Modules applied in order: each one's output is the next one's input.

    pipeline = Sequential(first, second)
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            super().__init__()
            for name, module in modules[0].items():
                setattr(self, name, _check(module, Module, "Sequential", repr(name)))
        else:
            super().__init__(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return Sequential(*list(self)[idx])
        return list(self._modules.values())[idx]

    def forward(self, x: Any) -> Any:
        for module in self:
            x = module(x)
        return x


class ParameterList(_IndexedModule):
    """A list of parameters, registered under "0", "1", ..."""

    _member = Parameter
    _registry = "_parameters"


class _KeyedModule(Module):
    """Shared machinery of the dict-like containers."""

    _member: type = Module
    _registry: str = "_modules"

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.update(items or {})

    def _members(self) -> dict[str, Any]:
        return getattr(self, self._registry)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._members()[key]
        except KeyError:
            known = ", ".join(self._members()) or "(empty)"
            raise KeyError(f"{key!r} is not in this {type(self).__name__}; keys: {known}") from None

    def __setitem__(self, key: str, item: Any) -> None:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(
                f"{type(self).__name__} keys must be identifiers (they become dotted names); got {key!r}"
            )
        setattr(self, key, _check(item, self._member, type(self).__name__, repr(key)))

    def __delitem__(self, key: str) -> None:
        if key not in self._members():
            self[key]  # raises the KeyError that names the keys
        delattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._members()

    def __len__(self) -> int:
        return len(self._members())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._members()))

    def keys(self) -> list[str]:
        return list(self._members())

    def values(self) -> list[Any]:
        return list(self._members().values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._members().items())

    def update(self, items: Mapping[str, Any]) -> None:
        for key, item in items.items():
            self[key] = item

    def pop(self, key: str) -> Any:
        item = self[key]
        del self[key]
        return item


class ModuleDict(_KeyedModule):
    """A dict of modules keyed by name."""


class ParameterDict(_KeyedModule):
    """A dict of parameters keyed by name."""

    _member = Parameter
    _registry = "_parameters"
