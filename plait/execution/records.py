"""Forward records: how a training-mode output remembers the run that produced it.

After ``module.train()``, `plait.run` and `plait.run_batch` return outputs
that behave exactly like the plain ones (a ``str`` is still a ``str``, a
``dict`` still a ``dict``) but are instances of small subclasses with a
``.record`` attribute: a `ForwardRecord` naming the run, the part of the
output this object is, and the batch sample it belongs to. Containers wrap
their items too, so ``output["answer"].record`` points at the node that
produced that field. Booleans and None cannot be subclassed and stay plain;
operations on a wrapped value (``text + "!"``, ``text.upper()``) return plain
values, and pickling or copying gives plain values too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plait.execution.result import BatchItem, RunResult
from plait.graph import InferenceGraph
from plait.values import Value, ValueKind, collect_refs


@dataclass(frozen=True, slots=True)
class ForwardRecord:
    """Where one output came from.

    ``result`` is the run (graph, per-node records with inputs, outputs and
    requests); ``source`` the part of the graph's output structure this
    object is (a `ValueRef`, an FSTRING `Value`, a literal or a container);
    ``path`` the key path from the forward output down to this object;
    ``field`` the keys followed inside a node's own structured output
    (``("answer",)`` for ``output["answer"]`` when one LLM node returned the
    whole dict); ``sample`` the batch index, or None for a single run.
    """

    result: RunResult
    module: Any
    source: Any
    path: tuple[Any, ...] = ()
    field: tuple[Any, ...] = ()
    sample: int | None = None

    @property
    def graph(self) -> InferenceGraph:
        return self.result.graph

    @property
    def refs(self) -> tuple[str, ...]:
        """The node ids (and ``param:<name>`` refs) this output's value was made from."""
        return tuple(collect_refs(self.source))

    def child(self, key: Any) -> ForwardRecord:
        """The record of item ``key`` of this output."""
        path = (*self.path, key)
        if type(self.source) in (dict, list, tuple):
            return ForwardRecord(self.result, self.module, self.source[key], path, (), self.sample)
        field = (*self.field, key)
        return ForwardRecord(self.result, self.module, self.source, path, field, self.sample)

    @property
    def template(self) -> Value | None:
        """The f-string this output was rendered from, if the forward returned one."""
        source = self.source
        if isinstance(source, Value) and source.kind is ValueKind.FSTRING:
            return source
        return None

    def __repr__(self) -> str:
        where = "".join(f"[{k!r}]" for k in self.path)
        sample = f", sample={self.sample}" if self.sample is not None else ""
        return f"ForwardRecord(output{where} <- {', '.join(self.refs) or 'literal'}{sample})"


class RecordedStr(str):
    """A text output carrying its `ForwardRecord` in ``.record``."""

    record: ForwardRecord

    def __new__(cls, value: str, record: ForwardRecord) -> RecordedStr:
        obj = super().__new__(cls, value)
        obj.record = record
        return obj

    def __reduce__(self) -> Any:
        return (str, (str(self),))


class RecordedInt(int):
    """An integer output carrying its `ForwardRecord` in ``.record``."""

    record: ForwardRecord

    def __new__(cls, value: int, record: ForwardRecord) -> RecordedInt:
        obj = super().__new__(cls, value)
        obj.record = record
        return obj

    def __reduce__(self) -> Any:
        return (int, (int(self),))


class RecordedFloat(float):
    """A float output carrying its `ForwardRecord` in ``.record``."""

    record: ForwardRecord

    def __new__(cls, value: float, record: ForwardRecord) -> RecordedFloat:
        obj = super().__new__(cls, value)
        obj.record = record
        return obj

    def __reduce__(self) -> Any:
        return (float, (float(self),))


class RecordedDict(dict):
    """A dict output carrying its `ForwardRecord`; its values carry their own."""

    def __init__(self, items: dict[Any, Any], record: ForwardRecord) -> None:
        super().__init__(items)
        self.record = record

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


class RecordedList(list):
    """A list output carrying its `ForwardRecord`; its items carry their own."""

    def __init__(self, items: list[Any], record: ForwardRecord) -> None:
        super().__init__(items)
        self.record = record

    def __reduce__(self) -> Any:
        return (list, (list(self),))


class RecordedTuple(tuple):
    """A tuple output carrying its `ForwardRecord`; its items carry their own."""

    record: ForwardRecord

    def __new__(cls, items: tuple[Any, ...], record: ForwardRecord) -> RecordedTuple:
        obj = super().__new__(cls, items)
        obj.record = record
        return obj

    def __reduce__(self) -> Any:
        return (tuple, (tuple(self),))


RECORDED_TYPES = (
    RecordedStr,
    RecordedInt,
    RecordedFloat,
    RecordedDict,
    RecordedList,
    RecordedTuple,
)
_SCALARS = {str: RecordedStr, int: RecordedInt, float: RecordedFloat}


def _wrap(value: Any, record: ForwardRecord) -> Any:
    kind = type(value)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return scalar(value, record)
    if isinstance(value, dict):
        entries = {k: _wrap(v, record.child(k)) for k, v in value.items()}
        return RecordedDict(entries, record) if kind is dict else kind(entries)
    if isinstance(value, list | tuple):
        items = [_wrap(v, record.child(i)) for i, v in enumerate(value)]
        if kind is list:
            return RecordedList(items, record)
        if kind is tuple:
            return RecordedTuple(tuple(items), record)
        return kind(*items) if hasattr(kind, "_fields") else kind(items)
    return value  # bool, None, bytes, other objects: nothing to attach to


def attach_record(module: Any, result: RunResult, sample: int | None = None) -> Any:
    """``result.output`` with its forward record attached (what training-mode runs return).

    Use it on the result of `plait.execute` to get what `plait.run` returns in training mode.
    """
    return _wrap(result.output, ForwardRecord(result, module, result.graph.output, sample=sample))


def record_of(output: Any) -> ForwardRecord | None:
    """The forward record an output carries (a `BatchItem`'s output's), or None."""
    if isinstance(output, BatchItem):
        output = output.output
    return output.record if isinstance(output, RECORDED_TYPES) else None
