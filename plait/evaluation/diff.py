"""Word diffs: ``[op, text]`` segments the widgets draw (prompt changes, output changes)."""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_WORD = re.compile(r"\w")


def _word_changes(old: str, new: str) -> list[tuple[str, str, str]]:
    """``(op, deleted, inserted)`` chunks of a word diff; op is "equal" or "change"."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    chunks: list[tuple[str, str, str]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        deleted, inserted = "".join(a[i1:i2]), "".join(b[j1:j2])
        chunks.append(
            ("equal", deleted, deleted) if tag == "equal" else ("change", deleted, inserted)
        )
    return chunks


def _merge(chunks: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Join neighbouring changes, and changes separated only by spaces or punctuation.

    So a rewritten phrase reads as one deletion and one insertion rather than
    word, space, word, and a stray "." shared by two unrelated texts is not
    shown as kept.
    """
    merged: list[tuple[str, str, str]] = []
    for i, (op, deleted, inserted) in enumerate(chunks):
        gap = (
            op == "equal"
            and not _WORD.search(deleted)
            and 0 < i < len(chunks) - 1
            and merged[-1][0] == "change"
            and chunks[i + 1][0] == "change"
        )
        if (op == "change" or gap) and merged and merged[-1][0] == "change":
            _, d, n = merged.pop()
            merged.append(("change", d + deleted, n + inserted))
        elif op == "equal" and merged and merged[-1][0] == "equal":
            text = merged.pop()[1] + deleted
            merged.append(("equal", text, text))
        else:
            merged.append((op, deleted, inserted))
    return merged


def diff_segments(old: str, new: str) -> list[list[str]]:
    """A word diff of ``old`` → ``new``: ``[op, text]`` segments, op "equal", "delete" or "insert".

    Lines are matched first, then the words of changed line blocks, so long
    values diff quickly. The "equal" and "delete" texts join to ``old``, the
    "equal" and "insert" texts to ``new``.
    """
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    chunks: list[tuple[str, str, str]] = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        deleted, inserted = "".join(old_lines[i1:i2]), "".join(new_lines[j1:j2])
        if tag == "equal":
            chunks.append(("equal", deleted, deleted))
        elif tag == "replace":
            chunks.extend(_word_changes(deleted, inserted))
        else:
            chunks.append(("change", deleted, inserted))
    segments: list[list[str]] = []
    for op, deleted, inserted in _merge(chunks):
        if op == "equal":
            segments.append(["equal", deleted])
            continue
        if deleted:
            segments.append(["delete", deleted])
        if inserted:
            segments.append(["insert", inserted])
    return segments
