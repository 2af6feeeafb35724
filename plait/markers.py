"""String composition with traced values: markers in, FSTRING values out.

Python's f-strings, ``str.format``, ``%``, ``+`` and ``str.join`` must return
real strings, so a traced value (or a parameter) formats as a *marker*:
private-use characters around the ref it stands for, the id of the trace that
made it, and its format spec and conversion. When such a string reaches a node
boundary (an argument of a recorded call, or the value ``forward`` returns) it
is split back into an FSTRING value whose fields are resolved when the graph
runs. ``ascii()`` escapes a marker into backslash sequences; that escaped form
is recognised too (as conversion ``a``). A string with marker characters that
do not parse was altered at trace time and is refused.

Limit: a width or precision applied to a string that *contains* markers
(``"%-8s" % v``, ``f"{composed:>40}"``) measures the marker text, not the
runtime text; put the spec on the placeholder itself (``f"{v:<8}"``).
"""

from __future__ import annotations

import re

from plait.errors import TraceError
from plait.values import FormatField, Value, ValueKind

OPEN, CONV, SPEC, CLOSE, TAG = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004"
_MARKER = re.compile(
    f"{OPEN}([^{OPEN}-{TAG}]+){TAG}(\\d+)(?:{CONV}([rsa]))?(?:{SPEC}([^{OPEN}-{TAG}]*))?{CLOSE}"
    # ascii(repr-marker): the same marker with every private-use character escaped.
    r"|\\ue000((?:(?!\\ue00[0-4]).)+)\\ue004(\d+)\\ue001r\\ue003"
)
_MARKER_PIECE = re.compile(f"[{OPEN}-{TAG}]|\\\\ue00[0-4]")


def marker(ref: str, trace_id: int, spec: str = "", conversion: str = "") -> str:
    """The text a traced value (or parameter) formats as inside trace ``trace_id``."""
    conv = f"{CONV}{conversion}" if conversion else ""
    fmt = f"{SPEC}{spec}" if spec else ""
    return f"{OPEN}{ref}{TAG}{trace_id}{conv}{fmt}{CLOSE}"


def marker_tail(trace_id: int) -> str:
    """What follows the ref in a plain marker: ``marker(ref, i) == OPEN + ref + marker_tail(i)``."""
    return f"{TAG}{trace_id}{CLOSE}"


def has_marker(text: str) -> bool:
    """Whether ``text`` holds a marker, or any piece of one."""
    # The usual text (str's own methods: ``text`` may be a placeholder, which refuses its own).
    if str.isascii(text) and str.find(text, "\\") < 0:
        return False
    return _MARKER_PIECE.search(text) is not None


def foreign_error(ref: str) -> TraceError:
    """The error for a placeholder (or a string built from one) made by another trace."""
    return TraceError(
        f"a placeholder from another trace ({ref!r}) was used here; placeholders are only "
        "valid inside the forward() call that produced them. Do not keep traced values, or "
        "strings built from them, between calls (e.g. on self or in a global)."
    )


def fstring_value(text: str, trace_id: int) -> Value:
    """The FSTRING value of a marker-bearing string made in trace ``trace_id``."""
    parts: list[str | FormatField] = []
    pos = 0
    for match in _MARKER.finditer(text):
        if match.start() > pos:
            parts.append(_literal(text[pos : match.start()], text))
        ref, owner, conversion, spec, escaped_ref, escaped_owner = match.groups()
        if escaped_ref is not None:
            ref, owner, conversion = _unescape(escaped_ref), escaped_owner, "a"
        if int(owner) != trace_id:
            raise foreign_error(ref)
        parts.append(FormatField(ref, spec or "", conversion or ""))
        pos = match.end()
    if pos < len(text):
        parts.append(_literal(text[pos:], text))
    return Value(ValueKind.FSTRING, tuple(parts))


def altered_error(text: str) -> TraceError:
    """The error for a string whose markers were changed after composition."""
    return TraceError(
        f"the string {text!r:.120} contains a traced value whose text was changed at "
        "trace time (sliced, truncated with %.Ns, case-changed, escaped, or serialised), "
        "so it can no longer be resolved when the graph runs. Compose prompts with "
        "f-strings, str.format, + and join only; do any other string work on runtime "
        "values in an @plait.op function or a functional op (plait.functional)."
    )


def _literal(piece: str, text: str) -> str:
    if _MARKER_PIECE.search(piece):
        raise altered_error(text)
    return piece


def _unescape(ref: str) -> str:
    return ref.encode("ascii").decode("unicode_escape") if "\\" in ref else ref
