"""Which stack frames are the user's: for error locations, node ``source`` and helper scopes.

A frame is *user code* unless it runs plait's own code (``plait``,
``plait_jupyter``) or the standard library (installed packages count as user
code). The answer is cached per code object, since tracing asks for every
frame of every recorded call.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from types import CodeType, FrameType

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_INTERNAL = tuple(os.path.join(_ROOT, pkg) + os.sep for pkg in ("plait", "plait_jupyter"))
_STDLIB = tuple({os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "platstdlib")})
_INSTALLED = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")

_USER_CODE: dict[CodeType, bool] = {}


def _classify(code: CodeType) -> bool:
    filename = code.co_filename
    if filename.startswith("<frozen") or filename == "<string>":
        return False
    path = os.path.abspath(filename)
    if path.startswith(_INTERNAL):
        return False
    return not path.startswith(_STDLIB) or any(part in path for part in _INSTALLED)


def is_user_code(code: CodeType) -> bool:
    """Whether ``code`` belongs to the user (not to plait or the standard library)."""
    known = _USER_CODE.get(code)
    if known is None:
        known = _USER_CODE[code] = _classify(code)
    return known


def user_frame(start: FrameType | None = None) -> FrameType | None:
    """The innermost user frame at or above ``start`` (default: the caller's frame)."""
    frame: FrameType | None = start if start is not None else sys._getframe(1)
    while frame is not None and not is_user_code(frame.f_code):
        frame = frame.f_back
    return frame


def describe_frame(frame: FrameType | None) -> str:
    """``file.py:12 (`the source line`)`` for ``frame``, or "" when there is none."""
    if frame is None:
        return ""
    filename, line = frame.f_code.co_filename, frame.f_lineno
    text = linecache.getline(filename, line).strip()
    where = f"{os.path.basename(filename)}:{line}"
    return f"{where} (`{text}`)" if text else where
