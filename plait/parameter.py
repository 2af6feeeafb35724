"""`Parameter`: learnable, persistent state of a module (usually a prompt).

A parameter is read when the graph runs, not when it is traced: an update
between two runs takes effect on the next run without re-tracing. Inside a
traced ``forward``, using a parameter in an f-string, ``str.format`` or ``+``
records a dependency on it instead of baking its current text in.
"""

from __future__ import annotations

from typing import Any

from plait._checks import Checks
from plait._context import active_tracer
from plait.errors import ConfigError
from plait.values import Value, kind_of


class Parameter:
    """A value the optimizer may change, with a description of what it controls.

    ``description`` is required for learnable parameters (``requires_grad=True``):
    the optimizer shows it to the model that proposes updates. ``name`` is set
    when the parameter is first assigned to a module attribute.

    >>> p = Parameter("Be concise.", description="Style of the answer.")
    >>> p.apply_update("Be concise and concrete.")
    >>> p.value, p.version
    ('Be concise and concrete.', 1)
    """

    def __init__(self, value: Any, description: str | None = None, *, requires_grad: bool = True):
        checks = Checks(f"Parameter({value!r:.40})")
        checks.text("description", description, optional=True, empty=True)
        checks.flag("requires_grad", requires_grad)
        checks.raise_any()
        self.description = description
        self._value = value
        self.name: str | None = None
        self.version = 0
        self.feedback: list[Any] = []
        self.requires_grad = False
        self.requires_grad_(requires_grad)

    @property
    def value(self) -> Any:
        return self._value

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Mark the parameter learnable or frozen; learnable needs a description."""
        if requires_grad and not (isinstance(self.description, str) and self.description.strip()):
            raise ConfigError(
                f"learnable Parameter {self._label()} has no description; the optimizer "
                "needs one to know what the value controls. Pass "
                "Parameter(value, description='what this controls'), or "
                "requires_grad=False to keep it fixed."
            )
        self.requires_grad = requires_grad
        return self

    def apply_update(self, new_value: Any) -> None:
        """Replace the value (an optimizer step, or a person's edit); bumps ``version``."""
        if type(new_value) is not type(self._value) and kind_of(new_value) != kind_of(self._value):
            raise ConfigError(
                f"Parameter {self._label()} holds a {type(self._value).__name__}; "
                f"got a {type(new_value).__name__} ({new_value!r:.60}). Pass a value of the same type."
            )
        self._value = new_value
        self.version += 1

    def accumulate_feedback(self, feedback: Any) -> None:
        """Add one piece of feedback (from a backward pass) to this parameter's buffer."""
        self.feedback.append(feedback)

    def zero_feedback(self) -> None:
        self.feedback.clear()

    def lift(self, name: str | None = None) -> Value:
        """This parameter as a `Value` whose ref is ``param:<name>``."""
        return Value(kind_of(self._value), self._value, f"param:{name or self.name}")

    __value__ = lift

    def __format__(self, spec: str) -> str:
        tracer = active_tracer()
        if tracer is not None:
            return tracer.param_marker(self, spec, "")
        return format(self._value, spec)

    def __str__(self) -> str:
        return self.__format__("")

    def __add__(self, other: Any) -> Any:
        if isinstance(other, str):
            return str(self) + other
        return NotImplemented

    def __radd__(self, other: Any) -> Any:
        if isinstance(other, str):
            return other + str(self)
        return NotImplemented

    def _label(self) -> str:
        return repr(self.name) if self.name else f"with value {self._value!r:.40}"

    def __repr__(self) -> str:
        text = repr(self._value)
        if len(text) > 60:
            text = text[:57] + "..."
        flag = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(name={self.name!r}, value={text}{flag})"
