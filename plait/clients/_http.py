"""The httpx plumbing both provider clients share, and the one place failures are mapped.

Mapping (status → class): 429 → `RateLimitError` (``retry_after`` from
``retry-after-ms``, else ``Retry-After`` in seconds or as an HTTP-date; an
``insufficient_quota`` 429 is a plain, non-retryable `ProviderError`);
401/403 → `AuthenticationError`; 400/404/413/422 → `BadRequestError`, or
`ContextLengthError` when the provider says the prompt is too long;
408/409/5xx (Anthropic's 529 included) → `TransientError`; any other status →
`ProviderError`. A timeout is `ProviderTimeout`; any other httpx request error
(refused connection, reset, protocol error) is `TransientError`. Every error
carries ``status`` and ``endpoint``, includes the provider's own message, and
has the API key scrubbed from its text.

SSE is parsed here from ``httpx.Response.aiter_lines`` (about twenty lines;
``httpx-sse`` would add a runtime dependency for no gain).
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import httpx

from plait.clients._pool import PooledTransport
from plait.clients._ratelimit import RateLimitHeaders, parse_rate_limit_headers
from plait.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    TransientError,
)
from plait.schema import validate

_CONTEXT = re.compile(
    r"context[ _-]?(length|window)|maximum context|prompt is too long|too many tokens", re.I
)
_PREFIX: dict[type[ProviderError], str] = {
    RateLimitError: "rate limited",
    AuthenticationError: "credentials rejected (check the endpoint's api_key)",
    ContextLengthError: "prompt does not fit the model's context (shorten it or lower max_tokens)",
    BadRequestError: "request rejected",
    TransientError: "server error",
    ProviderError: "unexpected response",
}
STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
"""The HTTP status an error ``type`` reported inside a 200 stream would have had."""


def classify(status: int, message: str, code: str | None = None) -> type[ProviderError]:
    """The `ProviderError` subclass for an HTTP ``status`` and the provider's message and code."""
    if status == 429:
        return ProviderError if code == "insufficient_quota" else RateLimitError
    if status in (401, 403):
        return AuthenticationError
    if status in (400, 404, 413, 422):
        if code == "context_length_exceeded" or _CONTEXT.search(message):
            return ContextLengthError
        return BadRequestError
    if status in (408, 409) or status >= 500:
        return TransientError
    return ProviderError


def parse_retry_after(headers: httpx.Headers, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP-date).

    An HTTP-date is measured from the response's ``Date`` header when present
    (so client clock skew does not matter), else from ``now`` or the wall clock.
    """
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    value = headers.get("retry-after")
    when = _http_date(value) if value else None
    if when is None:
        return None
    date = headers.get("date")
    reference = (_http_date(date) if date else None) or now or datetime.now(UTC)
    return max((when - reference).total_seconds(), 0.0)


def _http_date(value: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def provider_message(response: httpx.Response) -> tuple[str, str | None]:
    """The provider's error message and code from an error body, whatever its dialect.

    Knows OpenAI's ``{"error": {"message", "code", "type"}}``, Anthropic's
    ``{"type": "error", "error": {"type", "message"}}``, vLLM's top-level
    ``message`` and Ollama's ``{"error": "..."}``; falls back to the raw text.
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        detail = data.get("error", data)
        if isinstance(detail, str) and detail:
            return detail, None
        if isinstance(detail, dict):
            message, code = detail.get("message"), detail.get("code") or detail.get("type")
            if isinstance(message, str) and message:
                return message, code if isinstance(code, str) else None
    text = response.text.strip()
    return (text[:500] if text else response.reason_phrase or "empty body"), None


async def iter_sse(lines: AsyncIterable[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as ``(event, data)`` pairs from a stream of lines.

    Follows the WHATWG rules (multi-line ``data`` joined by newlines, comments
    and unknown fields skipped, event type defaulting to ``"message"``), except
    that a last event missing its blank line is still delivered.
    """
    event, data = "", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", list[str]()
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event or "message", "\n".join(data)


def _public_url(url: httpx.URL) -> str:
    """``url`` without credentials or query, safe for reprs and messages."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}".rstrip("/")


class HTTPClient:
    """One pooled `httpx.AsyncClient` per endpoint, with every failure mapped on the way out."""

    def __init__(
        self,
        *,
        base_url: str,
        path: str,
        endpoint: str | None,
        headers: Mapping[str, str],
        secret: str | None,
        timeout: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(
                f"{type(self).__name__}: base_url {base_url!r} is not a URL: {exc}"
            ) from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(
                f"{type(self).__name__}: base_url {base_url!r} must be an http:// or https:// "
                "URL with a host, like 'http://localhost:8000/v1'"
            )
        self.base_url = _public_url(url)
        self.timeout = timeout
        self.endpoint = endpoint or self.base_url
        self._url = url.copy_with(path=url.path.rstrip("/") + path)  # keeps ?query and userinfo
        self._secret = secret
        self._max_connections = max_connections
        self._client_options: dict[str, Any] = {
            "headers": {"content-type": "application/json", **headers},
            "timeout": timeout,
            "transport": transport,
        }
        self._pool: httpx.AsyncClient | None = None
        self.on_rate_limit_headers: Callable[[RateLimitHeaders], None] | None = None
        """Called with the provider's rate-limit headers of each response that has them."""

    @property
    def _client(self) -> httpx.AsyncClient:
        # Built on first use: creating the pool (and its TLS context) costs ~100 ms.
        if self._pool is None:
            options = self._client_options
            if options["transport"] is None:
                options = {
                    **options,
                    "transport": PooledTransport(max_connections=self._max_connections),
                }
            self._pool = httpx.AsyncClient(**options)
        return self._pool

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._pool is not None:
            await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _error(
        self,
        cls: type[ProviderError],
        message: str,
        status: int | None,
        retry_after: float | None = None,
    ) -> ProviderError:
        if self._secret:
            message = message.replace(self._secret, "***")
        if cls is RateLimitError:
            return cls(message, status=status, endpoint=self.endpoint, retry_after=retry_after)
        return cls(message, status=status, endpoint=self.endpoint)

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        message, code = provider_message(response)
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            message = f"redirected to {location}; set base_url to the final address"
        cls = classify(status, message, code)
        retry_after = parse_retry_after(response.headers) if cls is RateLimitError else None
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:g}s)"
        return self._error(cls, f"{_PREFIX[cls]}: {message}", status, retry_after)

    def _stream_error(self, detail: Any) -> ProviderError:
        """The error for an ``error`` object a provider sent inside a 200 stream."""
        if not isinstance(detail, dict):
            return self._error(TransientError, f"error event in the stream: {detail!r}", 200)
        message = str(detail.get("message") or detail)
        code = detail.get("code") if isinstance(detail.get("code"), str) else None
        kind = detail.get("type")
        cls = classify(STATUS_BY_ERROR_TYPE.get(str(kind), 500), message, code or kind)
        return self._error(cls, f"{_PREFIX[cls]} (mid-stream): {message}", 200)

    def _encode(self, body: dict[str, Any]) -> bytes:
        try:
            return json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        except (TypeError, ValueError) as exc:
            raise self._error(
                BadRequestError,
                f"the request cannot be encoded as JSON ({exc}); pass plain str/int/float/"
                "bool/list/dict values in messages, tools and options",
                None,
            ) from exc

    def _transport_error(self, exc: httpx.RequestError, *, streaming: bool) -> ProviderError:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            phase = "while streaming the reply" if streaming else "waiting for the endpoint"
            return self._error(
                ProviderTimeout,
                f"timed out {phase} ({what}) with timeout={self.timeout!r}s; raise the "
                "endpoint's timeout if the model is slow",
                None,
            )
        if streaming:
            return self._error(TransientError, f"stream cut: {what}", 200)
        return self._error(
            TransientError,
            f"request to {self.base_url} failed: {what}; check base_url and that the server is up",
            None,
        )

    def _observe(self, response: httpx.Response) -> None:
        if self.on_rate_limit_headers is not None:
            found = parse_rate_limit_headers(response.headers)
            if found is not None:
                self.on_rate_limit_headers(found)

    async def _post(self, body: dict[str, Any]) -> Any:
        """POST ``body`` and return the decoded JSON of a successful reply."""
        content = self._encode(body)
        try:
            response = await self._client.post(self._url, content=content)
        except httpx.RequestError as exc:
            raise self._transport_error(exc, streaming=False) from exc
        self._observe(response)
        if response.status_code >= 300:
            raise self._status_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise self._error(
                TransientError, f"reply body is not JSON: {response.text[:200]!r}", 200
            ) from exc

    async def _events(self, body: dict[str, Any]) -> AsyncGenerator[tuple[str, Any], None]:
        """POST ``body`` and yield the reply's server-sent events; close it with `aclosing`."""
        content = self._encode(body)
        streaming = False
        try:
            async with self._client.stream("POST", self._url, content=content) as response:
                self._observe(response)
                if response.status_code >= 300:
                    await response.aread()
                    raise self._status_error(response)
                streaming = True
                async for event in iter_sse(response.aiter_lines()):
                    yield event
        except httpx.RequestError as exc:
            raise self._transport_error(exc, streaming=streaming) from exc

    def _decode_event(self, data: str) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise self._error(
                TransientError, f"stream cut or malformed: event is not JSON: {data[:200]!r}", 200
            ) from exc

    def _tool_arguments(self, name: str, raw: Any) -> Mapping[str, Any]:
        """A tool call's arguments, decoded from the JSON text the model wrote."""
        if isinstance(raw, Mapping):
            return raw
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise self._error(
                TransientError,
                f"the model called tool {name!r} with malformed JSON arguments ({exc}): "
                f"{str(raw)[:200]!r}",
                200,
            ) from exc
        if not isinstance(value, dict):
            raise self._error(
                TransientError,
                f"the model called tool {name!r} with {type(value).__name__} arguments, "
                "expected a JSON object",
                200,
            )
        return value

    def _structured(self, value: Any, schema: Mapping[str, Any]) -> Any:
        """``value`` when it matches the response_format ``schema``; else a `TransientError`."""
        problems = validate(value, schema)
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise self._error(
                TransientError,
                f"the reply does not match the response_format schema: "
                f"{'; '.join(problems[:5])}{more}",
                200,
            )
        return value

    def _structured_text(
        self, text: str, schema: Mapping[str, Any], finish_reason: str | None
    ) -> Any:
        """The parsed and validated JSON value of a structured reply's ``text``."""
        try:
            value = json.loads(text)
        except ValueError as exc:
            why = (
                "the reply was cut at max_tokens; raise max_tokens"
                if finish_reason == "length"
                else "the model did not answer with JSON"
            )
            raise self._error(TransientError, f"{why} ({exc}): {text[:200]!r}", 200) from exc
        return self._structured(value, schema)
