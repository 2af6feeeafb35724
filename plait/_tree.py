"""The one walker over nested argument structures.

A tree is any nesting of dicts, lists and tuples (named tuples included);
everything else is a leaf. Every function that has to find or replace things
inside arguments, outputs or payloads (refs, errors, unwrapping, tracing
placeholders) is written on these two functions instead of its own recursion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Leaf = Any
IsLeaf = Callable[[Any], bool] | None


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def tree_map(fn: Callable[[Leaf], Any], tree: Any, is_leaf: IsLeaf = None) -> Any:
    """Return ``tree`` with every leaf replaced by ``fn(leaf)``; containers keep their types.

    ``is_leaf`` marks containers that should be handed to ``fn`` whole.
    """
    if is_leaf is not None and is_leaf(tree):
        return fn(tree)
    kind = type(tree)
    if kind is dict:
        return {k: tree_map(fn, v, is_leaf) for k, v in tree.items()}
    if kind is list:
        return [tree_map(fn, v, is_leaf) for v in tree]
    if kind is tuple:
        return tuple(tree_map(fn, v, is_leaf) for v in tree)
    if isinstance(tree, dict):
        return kind((k, tree_map(fn, v, is_leaf)) for k, v in tree.items())
    if _is_namedtuple(tree):
        return kind(*(tree_map(fn, v, is_leaf) for v in tree))
    if isinstance(tree, list | tuple):
        return kind(tree_map(fn, v, is_leaf) for v in tree)
    return fn(tree)


def tree_leaves(tree: Any, is_leaf: IsLeaf = None) -> Iterator[Leaf]:
    """Yield the leaves of ``tree`` depth-first, in argument order."""
    if is_leaf is not None and is_leaf(tree):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from tree_leaves(v, is_leaf)
    elif isinstance(tree, list | tuple):
        for v in tree:
            yield from tree_leaves(v, is_leaf)
    else:
        yield tree


def tree_map_with_path(
    fn: Callable[[tuple[Any, ...], Leaf], Any], tree: Any, path: tuple[Any, ...] = ()
) -> Any:
    """Like `tree_map` for plain dicts, lists and tuples, passing each leaf's key path too."""
    kind = type(tree)
    if kind is dict:
        return {k: tree_map_with_path(fn, v, (*path, k)) for k, v in tree.items()}
    if kind is list or kind is tuple:
        return kind(tree_map_with_path(fn, v, (*path, i)) for i, v in enumerate(tree))
    return fn(path, tree)
