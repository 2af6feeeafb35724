"""String composition with traced values: markers in, FSTRING values out.

Python's f-strings, ``str.format``, ``%``, ``+`` and ``str.join`` must return
real strings, so a traced value formats as a *marker*: private-use characters
around the ref it stands for (plus format spec and conversion). When such a
string reaches a node boundary (an argument of a recorded call, or the
forward's return value) it is split back into an FSTRING value whose fields
are resolved when the graph runs.
"""

from __future__ import annotations

import re

from plait.values import FormatField, Value, ValueKind

OPEN, CONV, SPEC, CLOSE = "\ue000", "\ue001", "\ue002", "\ue003"
_MARKER = re.compile(f"{OPEN}([^{OPEN}-{CLOSE}]+)(?:{CONV}([rsa]))?(?:{SPEC}([^{CLOSE}]*))?{CLOSE}")


def marker(ref: str, spec: str = "", conversion: str = "") -> str:
    """The string a traced value (or parameter) formats as."""
    conv = f"{CONV}{conversion}" if conversion else ""
    fmt = f"{SPEC}{spec}" if spec else ""
    return f"{OPEN}{ref}{conv}{fmt}{CLOSE}"


def has_marker(text: str) -> bool:
    return OPEN in text


def split_markers(text: str) -> tuple[str | FormatField, ...]:
    """Literal pieces and `FormatField`s of a string that contains markers."""
    parts: list[str | FormatField] = []
    pos = 0
    for match in _MARKER.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        ref, conversion, spec = match.groups()
        parts.append(FormatField(ref, spec or "", conversion or ""))
        pos = match.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def fstring_value(text: str) -> Value:
    """An FSTRING value for a marker-bearing string."""
    return Value(ValueKind.FSTRING, split_markers(text))
