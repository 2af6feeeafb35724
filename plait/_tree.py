"""The one walker over nested argument structures.

A tree is any nesting of containers; everything else is a leaf. A container
is a dict (subclasses included: `OrderedDict`, `defaultdict`, `Counter`...),
a list or a tuple (subclasses and named tuples included); `children` and
`rebuild` are the only places that know it. A rebuilt container has the
original's type and extra state: a `defaultdict` keeps its
``default_factory``, a subclass instance its attributes. Every function that
has to find or replace things inside arguments, outputs or payloads (refs,
errors, unwrapping, tracing placeholders, redacting secrets) is written on
the functions below instead of its own recursion.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Leaf = Any
IsLeaf = Callable[[Any], bool] | None

# Keys whose values are credentials: exports and notebook views show "***" instead.
SECRET_KEY = re.compile(
    r"api[-_]?key|secret|password|passwd|authorization|bearer|credential|(access|auth)[-_]?token",
    re.IGNORECASE,
)
REDACTED = "***"


_CONTAINERS = (dict, list, tuple)  # a tuple: `dict | list | tuple` would build a union per call


def is_container(x: Any) -> bool:
    return isinstance(x, _CONTAINERS)


def children(tree: Any) -> list[tuple[Any, Any]]:
    """``(key, child)`` pairs of a container: dict keys, or list and tuple indices."""
    if isinstance(tree, dict):
        return list(tree.items())
    return list(enumerate(tree))


def rebuild(tree: Any, items: Iterable[Any]) -> Any:
    """A container like ``tree`` (same type and state) holding ``items`` in place of its children."""
    kind = type(tree)
    if kind is dict:
        return dict(zip(tree.keys(), items, strict=True))
    if kind is list:
        return list(items)
    if kind is tuple:
        return tuple(items)
    if isinstance(tree, tuple):
        return kind(*items) if hasattr(kind, "_fields") else kind(items)
    # dict and list subclasses: a shallow copy keeps the state their constructors need
    # (default_factory, attributes); its items are then replaced one by one.
    new = copy.copy(tree)
    if isinstance(tree, dict):
        values = list(items)
        new.clear()
        for key, value in zip(tree.keys(), values, strict=True):
            new[key] = value
        return new
    new[:] = list(items)
    return new


def tree_map(fn: Callable[[Leaf], Any], tree: Any, is_leaf: IsLeaf = None) -> Any:
    """Return ``tree`` with every leaf replaced by ``fn(leaf)``; containers keep their types.

    ``is_leaf`` marks containers that should be handed to ``fn`` whole.
    """
    if (is_leaf is not None and is_leaf(tree)) or not is_container(tree):
        return fn(tree)
    return rebuild(tree, [tree_map(fn, child, is_leaf) for _, child in children(tree)])


def tree_leaves(tree: Any, is_leaf: IsLeaf = None) -> Iterator[Leaf]:
    """Yield the leaves of ``tree`` depth-first, in argument order."""
    if (is_leaf is not None and is_leaf(tree)) or not is_container(tree):
        yield tree
        return
    for _, child in children(tree):
        yield from tree_leaves(child, is_leaf)


def tree_map_with_path(
    fn: Callable[[tuple[Any, ...], Leaf], Any], tree: Any, path: tuple[Any, ...] = ()
) -> Any:
    """Like `tree_map`, passing each leaf's key path (dict keys and indices) too."""
    if not is_container(tree):
        return fn(path, tree)
    return rebuild(
        tree, [tree_map_with_path(fn, child, (*path, key)) for key, child in children(tree)]
    )


def redact(tree: Any) -> Any:
    """``tree`` with the value of every credential-like dict key (at any depth) replaced by ``***``."""
    if not is_container(tree):
        return tree
    is_dict = isinstance(tree, dict)
    return rebuild(
        tree,
        [
            REDACTED if is_dict and SECRET_KEY.search(str(key)) else redact(child)
            for key, child in children(tree)
        ],
    )
