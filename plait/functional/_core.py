"""The one decorator behind every functional op, and the rules it applies.

An op body is written for the happy path over `Value`s. `functional` wraps it
so that, for every op alike:

- arguments are valueified (plain Python values and `Parameter`s are accepted);
  names listed in ``options`` are configuration and arrive unwrapped instead;
- an ERROR anywhere in the arguments (argument order, searched deeply) is
  returned at once as a new ERROR: the first error's payload wins, the other
  errors are listed in ``meta["causes"]``, and ``meta["op"]`` names this op;
- an exception raised by the body becomes an ERROR value naming the op and
  the refs of its inputs, so ops never raise for bad data;
- a plain result is valueified; an ERROR result gets the op and sources stamped.

Calling an op with the wrong arguments (a missing or unknown parameter) is a
programming error and raises ``TypeError`` like any Python function.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from plait.ops import Op
from plait.values import Value, ValueKind, error_value, errors_in, unwrap, valueify


def functional(
    *,
    kind: ValueKind | None = None,
    options: Iterable[str] = (),
    short_circuit: bool = True,
    label: str | None = None,
) -> Callable[[Callable[..., Any]], Op]:
    """Make ``body`` a functional op: valueified inputs, errors as data, one graph node.

    ``kind`` is the kind the op's placeholder has while tracing (None when it
    depends on the inputs). ``short_circuit=False`` hands ERROR inputs to the
    body instead of returning early (ops that inspect errors: `is_error`).
    ``label`` names the option whose static value goes into the node's id.
    """
    option_names = frozenset(options)

    def wrap(body: Callable[..., Any]) -> Op:
        name = body.__name__
        signature = inspect.signature(body)

        @functools.wraps(body)
        def run(*args: Any, **kwargs: Any) -> Value:
            bound = signature.bind(*args, **kwargs)
            try:
                # Options are searched for errors before unwrapping, inputs after valueifying.
                searched = []
                for arg_name, arg in bound.arguments.items():
                    prepared = _prepare(signature.parameters[arg_name], arg, option_names)
                    searched.append(arg if arg_name in option_names else prepared)
                    bound.arguments[arg_name] = prepared
                inputs = list(bound.arguments.values())
                if short_circuit:
                    errors = _distinct(errors_in(searched))
                    if errors:
                        return propagate(errors, op=name, inputs=inputs)
                result = body(*bound.args, **bound.kwargs)
            except Exception as exc:
                return error_value(exc, op=name, inputs=list(bound.arguments.values()))
            return _finish(result, name, inputs)

        return Op(run, name=name, takes_values=True, fold=True, kind=kind, label=label)

    return wrap


def _prepare(param: inspect.Parameter, arg: Any, options: frozenset[str]) -> Any:
    if param.name in options:
        return unwrap(arg)
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return tuple(valueify(a) for a in arg)
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        return {k: valueify(a) for k, a in arg.items()}
    return valueify(arg)


def _distinct(errors: list[Value]) -> list[Value]:
    # The same ERROR value can sit in two arguments; report it once.
    return list({id(e): e for e in errors}.values())


def propagate(errors: list[Value], *, op: str, inputs: Any, **meta: Any) -> Value:
    """The ERROR an op returns for ERROR inputs: the first one's payload, the rest as causes."""
    first, *others = errors
    return error_value(first.payload, op=op, inputs=inputs, causes=others, **meta)


def _finish(result: Any, op: str, inputs: list[Any]) -> Value:
    if not isinstance(result, Value):
        return valueify(result)
    if result.is_error and "op" not in result.meta:
        stamped = error_value(result.payload, op=op, inputs=inputs)
        return Value(ValueKind.ERROR, result.payload, None, {**stamped.meta, **result.meta})
    return result


def fail(message: str, exc_type: type[Exception] = ValueError, **meta: Any) -> Value:
    """An ERROR result for a body to return when it wants extra ``meta`` (the op is stamped on)."""
    return Value(ValueKind.ERROR, exc_type(message), None, meta)


def describe(value: Value, limit: int = 60) -> str:
    """``KIND payload`` for error messages, with long payloads cut."""
    try:
        text = repr(unwrap(value))
    except Exception:  # a payload whose repr fails must not hide the real problem
        text = f"<{type(value.payload).__name__}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{value.kind.name} {text}"
