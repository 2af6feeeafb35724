"""Batch items that carry several arguments: `Args`, and the check that items fit ``forward``.

A batch item is passed to ``forward`` as its one positional argument, unless it
is an `Args`, which spreads its positional and keyword arguments. An item whose
shape would be bound to the wrong parameter (a plain tuple for a ``forward``
with several parameters, an item with too few or too many arguments) is
refused before any request, naming the item, the signature and the fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from plait.errors import ConfigError

_SIGNATURES: dict[type, inspect.Signature] = {}


class Args:
    """The arguments of one ``forward`` call, for a batch item: ``Args("question", k=3)``.

    items = [Args(q, k=3) for q in questions]
    await run_batch(rag, items, resources=resources)
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Args:
        """The call whose keyword arguments are ``row`` (a dict, or a record of a DataFrame)."""
        if not isinstance(row, Mapping):
            raise ConfigError(
                f"Args.from_row takes a mapping of parameter names to values; got {type(row).__name__}"
            )
        return cls(**{str(key): value for key, value in row.items()})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Args):
            return NotImplemented
        return self.args == other.args and self.kwargs == other.kwargs

    def __hash__(self) -> int:
        return hash((self.args, tuple(sorted(self.kwargs.items()))))

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Args({', '.join(parts)})"


def call_arguments(item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments a batch item stands for."""
    if isinstance(item, Args):
        return item.args, dict(item.kwargs)
    return (item,), {}


def forward_signature(module: Any) -> inspect.Signature:
    """The signature of ``module.forward`` (without ``self``), cached by class."""
    signature = _SIGNATURES.get(type(module))
    if signature is None:
        signature = _SIGNATURES[type(module)] = inspect.signature(module.forward)
    return signature


def _takes_several(signature: inspect.Signature) -> bool:
    params = list(signature.parameters.values())
    return len(params) > 1 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _describe(module: Any, signature: inspect.Signature) -> str:
    return f"{type(module).__name__}.forward{signature}"


def check_item(module: Any, index: int, item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``item``'s arguments, after checking they bind to ``forward`` as the user meant."""
    signature = forward_signature(module)
    where = f"batch item {index} ({_short(item)})"
    if not isinstance(item, Args) and _takes_several(signature):
        if isinstance(item, tuple):
            raise ConfigError(
                f"{where} is a tuple, and {_describe(module, signature)} takes several "
                "parameters: plait will not guess whether the tuple is the first argument or "
                "all of them. Spread it with plait.Args(*item) (keywords: "
                "plait.Args(q, k=3)), or wrap it as plait.Args(item) to pass the tuple as the "
                "first argument."
            )
        names = set(signature.parameters)
        if isinstance(item, Mapping) and item and set(item) <= names:
            raise ConfigError(
                f"{where} is a dict whose keys are parameters of {_describe(module, signature)}: "
                "plait will not guess whether it is the first argument or the keyword "
                "arguments. Use plait.Args(**item) (or plait.Args.from_row(item)) to pass them "
                "as keywords, or plait.Args(item) to pass the dict as the first argument."
            )
    args, kwargs = call_arguments(item)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        fix = (
            "Pass a plait.Args(...) with the arguments forward takes."
            if isinstance(item, Args)
            else "Wrap the item's arguments in plait.Args(...), e.g. plait.Args(question, k=3)."
        )
        raise ConfigError(
            f"{where} does not fit {_describe(module, signature)}: {exc}. {fix}"
        ) from None
    return args, kwargs


def check_items(module: Any, items: Iterable[Any]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every item's arguments; raises `ConfigError` at the first item that does not fit."""
    return [check_item(module, index, item) for index, item in enumerate(items)]


def _short(item: Any, limit: int = 60) -> str:
    text = repr(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["Args", "call_arguments", "check_item", "check_items", "forward_signature"]
