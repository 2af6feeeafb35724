"""The rate-limit state a provider reports in its response headers.

OpenAI (and vLLM, LiteLLM, Groq, Together... which copy it) sends
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, the reset as a
duration like ``1s``, ``6m0s``, ``20ms`` or ``1.5s``. Anthropic sends
``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, the reset
as an RFC 3339 time. Both are read into one `Quota` per dimension; the
limiter uses them to hold starts while the provider's quota is empty and to
tell a real rate limit from a sporadic 429 (`plait.resources.limiter`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Quota:
    """One dimension (requests or tokens) of a provider's rate limit, as of one response.

    ``reset`` is seconds from the response until the quota is full again;
    ``limit`` and ``reset`` may be unknown (None).
    """

    remaining: float
    limit: float | None = None
    reset: float | None = None

    def refill_time(self, amount: float = 1.0) -> float | None:
        """Seconds until ``amount`` more is available, assuming a steady refill; None if unknown."""
        if self.reset is None:
            return None
        spent = (self.limit - self.remaining) if self.limit is not None else None
        if spent is None or spent <= 0:
            return self.reset
        return min(self.reset, self.reset * amount / spent)


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The ``requests`` and ``tokens`` quotas of a response (either may be absent)."""

    requests: Quota | None = None
    tokens: Quota | None = None

    @property
    def exhausted(self) -> bool:
        """Whether the provider says a quota is used up (so a 429 now is a real rate limit)."""
        return any(q is not None and q.remaining <= 0 for q in (self.requests, self.tokens))


def parse_duration(value: str) -> float | None:
    """Seconds in a reset value: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1.5s"`` or a bare number."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _seconds_until(value: str, date: str) -> float | None:
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return parse_duration(value)
    if when.tzinfo is None:
        return None
    reference = _response_date(date)
    if reference is None:
        reference = datetime.now(when.tzinfo)
    return max((when - reference).total_seconds(), 0.0)


def _response_date(date: str) -> datetime | None:
    if not date:
        return None
    try:
        return parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _quota(found: dict[str, str], names: tuple[str, str, str], date: str | None) -> Quota | None:
    remaining = _number(found.get(names[1]))
    if remaining is None:
        return None
    reset_text = found.get(names[2])
    reset = None
    if reset_text is not None:
        reset = _seconds_until(reset_text, date) if date is not None else parse_duration(reset_text)
    return Quota(remaining, _number(found.get(names[0])), reset)


def _names(template: str) -> tuple[str, str, str]:
    return (template.format("limit"), template.format("remaining"), template.format("reset"))


_OPENAI = (_names("x-ratelimit-{}-requests"), _names("x-ratelimit-{}-tokens"))
_ANTHROPIC = (_names("anthropic-ratelimit-requests-{}"), _names("anthropic-ratelimit-tokens-{}"))


def parse_rate_limit_headers(headers: httpx.Headers) -> RateLimitHeaders | None:
    """The provider's rate-limit state from ``headers``, or None when it sends none."""
    # One pass over the raw list: this runs on every response, most of which carry none.
    found = {
        name.lower().decode("latin-1"): value.decode("latin-1")
        for name, value in headers.raw
        if b"atelimit" in name.lower()
    }
    if not found:
        return None
    for (requests, tokens), dated in ((_OPENAI, False), (_ANTHROPIC, True)):
        if requests[1] in found or tokens[1] in found:
            date = headers.get("date", "") if dated else None
            return RateLimitHeaders(_quota(found, requests, date), _quota(found, tokens, date))
    return None
