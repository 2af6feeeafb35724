"""Every exception plait raises, under one root.

    PlaitError
    ├── ConfigError            bad configuration or argument (also a ValueError)
    ├── TraceError             a runtime value was used at trace time
    ├── GraphError             a graph breaks its own invariants (cycle, dangling id)
    ├── CheckpointError        a checkpoint file cannot be used for this run
    ├── StoreError             a run store file cannot be opened, read or written
    ├── ExecutionError         nodes of a run failed; carries every failure and the partial result
    │   ├── BudgetExceeded     a run stopped because it spent its cost or token budget
    │   └── CallError          a call made in an async forward failed; raised at its ``await``
    ├── LoopLimitError         a stock loop (``ToolAgent``, ``Refine``) hit its step limit unfinished
    └── ProviderError          a model endpoint failed or refused a request
        ├── RateLimitError     429; ``retry_after`` in seconds when the server said
        ├── TransientError     5xx, dropped connection, malformed body, cut stream
        ├── ProviderTimeout    no answer within the endpoint's timeout
        ├── AuthenticationError  401 / 403: the key is missing, wrong or lacks access
        └── BadRequestError    400 / 404 / 422: the request itself is wrong
            └── ContextLengthError  the prompt does not fit the model's context

Provider errors are raised once, at the client boundary, from the foreign
exception (``raise ... from``); everything above the clients sees only this tree.
``ProviderError.retryable`` says whether retrying the same request can help.
"""

from __future__ import annotations

from typing import Any


class PlaitError(Exception):
    """Root of every exception raised by plait."""


class ConfigError(PlaitError, ValueError):
    """A configuration value or API argument is invalid."""


class TraceError(PlaitError):
    """A traced value's runtime content was needed while building the graph."""


class GraphError(PlaitError):
    """An `InferenceGraph` violates an invariant (a cycle, a dependency on a missing node)."""


class CheckpointError(PlaitError):
    """A checkpoint cannot be used: written by another graph, or unreadable."""


class StoreError(PlaitError):
    """A `RunStore` file cannot be used: not a store, a newer schema, or a record that is not there."""


class ExecutionError(PlaitError):
    """One or more nodes of a run failed.

    ``failures`` holds one record per failed node (its path, endpoint, attempts
    and cause); ``partial`` is the run's result with every completed node kept.
    """

    def __init__(self, message: str, *, failures: tuple[Any, ...] = (), partial: Any = None):
        super().__init__(message)
        self.failures = tuple(failures)
        self.partial = partial


class BudgetExceeded(ExecutionError):
    """A run stopped cleanly because its cost or token budget ran out."""


class CallError(ExecutionError):
    """A call made in an async ``forward`` failed; raised where its placeholder is awaited.

    ``node_id``, ``module_path``, ``endpoint`` and ``attempts`` say which call
    and how often it was tried; ``cause`` (also ``__cause__``) is the original
    exception. Catch it to fall back; left uncaught it fails the run with the
    same failure.
    """

    def __init__(self, failure: Any, *, skipped_because: str | None = None) -> None:
        how = f" (not run: its input {skipped_because!r} failed)" if skipped_because else ""
        super().__init__(f"call {failure}{how}", failures=(failure,))
        self.node_id: str = failure.node_id
        self.module_path: str = failure.module_path
        self.endpoint: str | None = failure.endpoint
        self.attempts: int = failure.attempts
        self.cause: BaseException = failure.cause
        self.__cause__ = failure.cause


class LoopLimitError(PlaitError):
    """A loop in `plait.stock` used all its steps without finishing.

    ``steps`` is how many it took; ``last`` what it had when it stopped
    (`Refine`: the last draft; `ToolAgent`: the last reply, a `Value` whose
    ``meta["tool_calls"]`` the model still wanted run).
    """

    def __init__(self, message: str, *, steps: int, last: Any = None) -> None:
        super().__init__(message)
        self.steps = steps
        self.last = last


class ProviderError(PlaitError):
    """A model endpoint failed or refused a request.

    ``status`` is the HTTP status when there was one; ``endpoint`` the alias
    of the endpoint that was called, when known.
    """

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint

    def __str__(self) -> str:
        where = f"[{self.endpoint}] " if self.endpoint else ""
        code = f"HTTP {self.status}: " if self.status is not None else ""
        return f"{where}{code}{self.message}"


class RateLimitError(ProviderError):
    """The endpoint answered 429; ``retry_after`` (seconds) is its hint, if any."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status=status, endpoint=endpoint)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A failure that may pass: 5xx, a dropped connection, a malformed body, a cut stream."""

    retryable = True


class ProviderTimeout(ProviderError):
    """The endpoint did not answer within its timeout."""

    retryable = True


class AuthenticationError(ProviderError):
    """The endpoint rejected the credentials (401 / 403)."""


class BadRequestError(ProviderError):
    """The endpoint rejected the request as malformed (400 / 404 / 422)."""


class ContextLengthError(BadRequestError):
    """The request does not fit in the model's context window."""
