"""Where a recorded call was made: the helper scopes between the caller and the call, and the
user line (`CallSites`, a part of `plait.execution.dynamic.Recorder`)."""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from types import CodeType, FrameType

from plait.execution.recording import Layout
from plait.tracing.frames import is_user_code

# What a frame is to the scope walk: the runner (stop), not user code, user code (the
# call's line), or a user helper function (also a scope).
_STOP, _OTHER, _USER, _HELPER = "stop", "other", "user", "helper"
# "file.py:12" of each place in user code that made calls (the node's source), by the id of
# its code object (kept here with it, so the id is not reused) and the offset in that code.
# Keyed by id: hashing a code object hashes its constants and names on every lookup.
_SOURCES: dict[int, tuple[CodeType, dict[int, str]]] = {}
_STOP_IDS: dict[frozenset[CodeType], frozenset[int]] = {}  # the ids of each set of stop codes


class CallSites:
    """The scope walk of a `Recorder`: from the frame that made a call down to the runner.

    Uses the tracer's ``_forward_codes`` (forwards are user code but no scope),
    ``_scopes`` and ``_scope_counts`` (one name per helper frame, ``"helper#2"``).
    """

    _forward_codes: AbstractSet[CodeType]
    _scopes: dict[FrameType, str]
    _scope_counts: dict[str, int]

    def _start_call_sites(self, layout: Layout, stop_codes: frozenset[CodeType]) -> None:
        self._scopes = {}
        self._scope_counts = {}
        # The caller frame that made the last call, the frames below it down to the runner,
        # and the scope walk's answer per call site (offset) in it: a loop or comprehension
        # calling again skips the walk (see `_scope_and_source_from`).
        self._last_walk: (
            tuple[FrameType, tuple[FrameType, ...], dict[int, tuple[tuple[str, ...], str | None]]]
            | None
        ) = None
        self._code_roles = layout.code_roles  # see `_role`; this item's own once forward codes grow
        self._roles_for = len(layout.forward_codes)  # the forward codes they were worked out with
        # The ids of the runner's functions that call user code (a set of code objects hashes
        # each one's constants on every lookup); the codes stay alive on the runner's class, so
        # the ids are not reused.
        stop_ids = _STOP_IDS.get(stop_codes)  # one set for every run: not one per batch item
        if stop_ids is None:
            stop_ids = _STOP_IDS[stop_codes] = frozenset(map(id, stop_codes))
        self._stop_ids = stop_ids

    def release_frames(self, *, run_over: bool = False) -> None:
        """Drop the frames the scope walk keeps: the last caller's (its ``forward`` returned), and
        when ``run_over`` every helper frame too (placeholders kept by user code still reach this
        recorder; no frame should outlive the run through them)."""
        self._last_walk = None
        if run_over:
            self._scopes.clear()

    def _scope_and_source_from(self, frame: FrameType | None) -> tuple[tuple[str, ...], str | None]:
        """Helper scopes between the executing caller and this call, and the user line.

        The walk starts at ``frame`` and stops at the runner function that
        called this ``forward`` (or op), so code below the run (the user's
        script) is never a scope. A caller in user code that calls again (a
        loop, a comprehension) finds its answer in `_last_walk` once the frames
        below it are seen to be the same ones.
        """
        if len(self._forward_codes) != self._roles_for:  # a new composite was stepped into
            self._code_roles = {}  # its forward is user code now: this item's own roles
            self._last_walk = None
            self._roles_for = len(self._forward_codes)
        if frame is None:
            return (), None
        back = frame.f_back
        if back is not None and id(back.f_code) in self._stop_ids:
            # The usual call: made by a forward (or op) the runner called directly. Its line
            # is the source and there is no helper between: no walk, once the line is known.
            code = frame.f_code
            known = self._code_roles.get(id(code))
            if known is not None and known[0] is _USER:
                lines = _SOURCES.get(id(code))
                if lines is not None:
                    source = lines[1].get(frame.f_lasti)
                    if source is not None:
                        return (), source
        last = self._last_walk
        if last is not None and last[0] is frame:
            back = frame
            for expected in last[1]:
                if back.f_back is not expected:
                    break
                back = expected
            else:
                answer = last[2].get(frame.f_lasti)
                if answer is not None:
                    return answer
        walked: list[FrameType] = []
        answer = self._walk(frame, walked)
        if walked and walked[0] is frame:  # the line is the caller's own: a repeat can reuse it
            below = tuple(walked[1:])
            if last is None or last[0] is not frame or last[1] != below:
                last = self._last_walk = (frame, below, {})
            last[2][frame.f_lasti] = answer
        return answer

    def _walk(
        self, frame: FrameType | None, walked: list[FrameType]
    ) -> tuple[tuple[str, ...], str | None]:
        """`_scope_and_source_from` the long way; ``walked`` gets the frames it went through
        (from the first in user code to the runner's), empty if the line is not ``frame``'s."""
        scope: list[str] | None = None
        source = None
        roles = self._code_roles
        first = frame
        while frame is not None:
            code = frame.f_code
            known = roles.get(id(code))
            if known is None:
                known = roles[id(code)] = (self._role(code), code)
            role = known[0]
            if source is not None or (frame is first and role is not _OTHER):
                walked.append(frame)
            if role is _STOP:
                break
            if role is not _OTHER:
                if source is None:
                    lines = _SOURCES.get(id(code))
                    if lines is None:
                        lines = _SOURCES[id(code)] = (code, {})
                    offset = frame.f_lasti  # cheaper to read than f_lineno
                    source = lines[1].get(offset)
                    if source is None:
                        source = f"{os.path.basename(code.co_filename)}:{frame.f_lineno}"
                        lines[1][offset] = source
                if role is _HELPER:
                    name = self._scopes.get(frame)
                    if name is None:
                        n = self._scope_counts.get(code.co_name, 0) + 1
                        self._scope_counts[code.co_name] = n
                        name = self._scopes[frame] = f"{code.co_name}#{n}"
                    if scope is None:
                        scope = []
                    scope.append(name)
            frame = frame.f_back
        else:
            walked.clear()  # no runner below: not a walk to repeat
        return (tuple(reversed(scope)) if scope else ()), source

    def _role(self, code: CodeType) -> str:
        """What a frame running ``code`` is to `_scope_and_source_from` (see the roles)."""
        if id(code) in self._stop_ids:
            return _STOP
        if not is_user_code(code):
            return _OTHER
        if code in self._forward_codes or code.co_name.startswith("<"):
            return _USER  # a forward or a comprehension: the call's line, but no scope
        return _HELPER
