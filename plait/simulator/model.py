"""The simulated model: deterministic replies, paced output, injected faults, a request log.

`SimulatedModel.handle` takes a request path and its JSON body (OpenAI
chat-completions or Anthropic Messages) and returns a `SimResponse`; the HTTP
server and the in-process client are both thin transports over it.

With no matching rule, the reply is ``"[<digest>] <last user text>"`` where
``<digest>`` is the first 8 hex digits of `request_digest` (the last user text
is cut to 300 characters); a request with a JSON schema gets a schema-valid
value instead, and a request offering tools gets a call to its first tool
until a tool result comes back. Usage counts are `count_tokens` of each
message and of the reply. The same request always gets the same reply,
streamed or not; ``settings.seed`` only keys faults and jitter.

Rules and faults (formats in `plait.simulator.settings`) are checked in
order. Refusals answer at once: 400 for a malformed body, 429 for the
``rate_limit`` fault and ``max_rps``. With ``rate_limit_headers``, every
answer to a request that reached the ``max_rps`` bucket says how full it is,
as OpenAI does (``x-ratelimit-{limit,remaining,reset}-requests``). Other faults and normal replies come
after the latency; a ``timeout`` hangs for its ``hang`` instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from plait.errors import BadRequestError, ConfigError
from plait.simulator import wire
from plait.simulator.schema_gen import generate
from plait.simulator.settings import (
    FaultSpec,
    ReplyRule,
    RequestMatch,
    SimulatorSettings,
    map_strings,
)
from plait.simulator.wire import ChatInput, Reply, SimStream, SimToolCall, count_tokens

ECHO_CHARS = 300
_APIS = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/v1/messages": "anthropic",
    "/messages": "anthropic",
}
_UNSTREAMED = ("stream", "stream_options")


def request_digest(body: Mapping[str, Any]) -> str:
    """The sha256 hex of the request's canonical JSON, ignoring the stream flags."""
    if any(key in body for key in _UNSTREAMED):
        body = {k: v for k, v in body.items() if k not in _UNSTREAMED}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _unit(*key: Any) -> float:
    """A uniform draw in [0, 1) determined by ``key``."""
    raw = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(raw) / 2**64


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the simulator received; times are event-loop seconds.

    ``status`` is the HTTP status sent (None while pending, or when a fault
    sent none); ``fault`` the injected fault's kind (or ``"max_rps"``).
    """

    index: int
    path: str
    model: str | None
    messages: tuple[Any, ...]
    body: Any
    stream: bool
    arrival: float
    finish: float | None
    status: int | None
    fault: str | None
    digest: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class SimStats:
    """Counters since start or the last `SimulatedModel.clear`."""

    total: int
    in_flight: int
    peak_in_flight: int
    by_status: Mapping[int, int]
    by_fault: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_fault": dict(sorted(self.by_fault.items())),
        }


@dataclass(frozen=True, slots=True)
class SimResponse:
    """What to send back: a JSON body, a raw body, or a stream of SSE events.

    ``fault`` names the injected fault; transports act on three of them:
    ``"timeout"`` and ``"connection_reset"`` (``status`` is None: close
    without answering) and ``"cut_stream"`` (stop after ``stream`` ends,
    without the terminating chunk). A stream must be iterated to its end or
    closed with ``aclose()``; until then its request counts as in flight.
    """

    status: int | None
    headers: Mapping[str, str]
    json: Any = None
    raw: bytes | None = None
    stream: SimStream | None = None
    fault: str | None = None


class _Entry:
    """The mutable state of one logged request (snapshotted into a `RequestRecord`)."""

    __slots__ = ("arrival", "body", "digest", "fault", "finish", "index", "path", "status")

    def __init__(self, index: int, path: str, body: Any, arrival: float):
        self.index = index
        self.path = path
        self.body = body
        self.arrival = arrival
        self.finish: float | None = None
        self.status: int | None = None
        self.fault: str | None = None
        self.digest: str | None = None

    def record(self) -> RequestRecord:
        body = self.body if isinstance(self.body, Mapping) else {}
        return RequestRecord(
            index=self.index,
            path=self.path,
            model=body.get("model"),
            messages=tuple(body.get("messages") or ()),
            body=self.body,
            stream=body.get("stream") is True,
            arrival=self.arrival,
            finish=self.finish,
            status=self.status,
            fault=self.fault,
            digest=self.digest,
        )


class SimulatedModel:
    """A deterministic offline chat model behind `handle`; see the module docstring."""

    def __init__(self, settings: SimulatorSettings | None = None):
        self.settings = settings if settings is not None else SimulatorSettings()
        self._in_flight = 0
        self._bucket: tuple[float, float] | None = None
        self.clear()

    def __repr__(self) -> str:
        return (
            f"SimulatedModel(requests={self._total}, in_flight={self._in_flight}, "
            f"peak_in_flight={self._peak})"
        )

    @property
    def requests(self) -> tuple[RequestRecord, ...]:
        """The logged requests in arrival order (the newest ``settings.log_limit``)."""
        return tuple(entry.record() for entry in tuple(self._log.values()))

    @property
    def stats(self) -> SimStats:
        return SimStats(
            self._total,
            self._in_flight,
            self._peak,
            dict(self._by_status),
            dict(self._by_fault),
        )

    @property
    def models(self) -> tuple[str, ...]:
        """``plait-sim`` and every model name requested so far."""
        return ("plait-sim", *sorted(self._models - {"plait-sim"}))

    def clear(self) -> None:
        """Forget the log, the counters and which requests were seen before."""
        self._log: dict[int, _Entry] = {}
        self._total = 0
        self._peak = self._in_flight
        self._by_status: Counter[int] = Counter()
        self._by_fault: Counter[str] = Counter()
        self._sightings: dict[str, int] = {}
        self._models: set[str] = set()

    async def handle(self, path: str, body: Any) -> SimResponse:
        """Answer one POST to ``path`` as the model would; ``body`` is the parsed JSON.

        Every call is logged, including refused ones (a body that is not a
        JSON object gets a 400).
        """
        now = asyncio.get_running_loop().time()
        entry = _Entry(self._total, path, body, now)
        self._total += 1
        self._log[entry.index] = entry
        limit = self.settings.log_limit
        if limit is not None and len(self._log) > limit:
            del self._log[next(iter(self._log))]
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        try:
            response = await self._respond(path, body, entry, now)
        except BaseException:
            self._finish(entry)
            raise
        entry.status = response.status
        if response.status is not None:
            self._by_status[response.status] += 1
        if response.stream is None:
            self._finish(entry)
        else:
            response.stream.on_close = lambda: self._finish(entry)
        return response

    def _finish(self, entry: _Entry) -> None:
        entry.finish = asyncio.get_running_loop().time()
        self._in_flight -= 1

    async def _respond(self, path: str, body: Any, entry: _Entry, now: float) -> SimResponse:
        api = _APIS.get(path.partition("?")[0])
        if api is None:
            routes = ", ".join(sorted(_APIS))
            return _error("openai", 404, f"no route POST {path}; the simulator serves {routes}")
        try:
            if not isinstance(body, Mapping):
                raise BadRequestError(f"the request body must be a JSON object, got {body!r:.200}")
            chat = wire.parse_openai(body) if api == "openai" else wire.parse_anthropic(body)
            entry.digest = digest = request_digest(body)
            texts = {"model": chat.model, "system": chat.system, "user": chat.user}
            flags = {
                "tools": bool(chat.tools),
                "structured": chat.structured,
                "tool_result": chat.after_tool_result,
            }
            reply = self._reply(chat, digest, texts, flags)
        except (BadRequestError, ConfigError) as exc:
            return _error(api, 400, str(getattr(exc, "message", exc)))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            message = f"malformed request body ({type(exc).__name__}: {exc})"
            return _error(api, 400, message)
        self._models.add(chat.model)
        settings = self.settings
        sighting = 0
        if settings.faults or settings.jitter:
            sighting = self._sightings.get(digest, 0)
            self._sightings[digest] = sighting + 1
        quota: dict[str, str] = {}
        if settings.max_rps is not None:
            wait = self._admit(now, settings.max_rps)
            if settings.rate_limit_headers:
                quota = self._quota_headers(settings.max_rps)
            if wait is not None:
                return self._rate_limited(api, entry, "max_rps", wait, quota)
        fault = self._pick_fault(chat, digest, sighting, entry.index, texts, flags)
        if fault is not None:
            entry.fault = fault.kind
            self._by_fault[fault.kind] += 1
            if fault.kind == "rate_limit":
                hint = fault.retry_after if fault.send_retry_after is not False else None
                return self._rate_limited(api, entry, "rate_limit", hint, quota)
            if fault.kind == "timeout":
                await asyncio.sleep(fault.hang or 0.0)
                return SimResponse(None, {}, fault="timeout")
        delay = settings.latency
        if settings.jitter:
            delay += settings.jitter * _unit(settings.seed, digest, sighting, "jitter")
        if not chat.stream:
            delay += settings.ttft + self._output_time(reply.completion_tokens)
        if delay > 0:
            await asyncio.sleep(delay)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind in ("server_error", "client_error"):
            status = fault.status or 500
            return _error(api, status, f"simulated {kind.replace('_', ' ')} {status}", fault=kind)
        if kind == "connection_reset":
            return SimResponse(None, {}, fault=kind)
        response = self._render(api, chat, digest, reply, fault)
        if quota:
            response.headers.update(quota)  # type: ignore[attr-defined]
        return response

    def _render(
        self, api: str, chat: ChatInput, digest: str, reply: Reply, fault: FaultSpec | None
    ) -> SimResponse:
        kind = fault.kind if fault is not None else None
        created = int(time.time())
        prefix = "chatcmpl-" if api == "openai" else "msg_"
        rid = prefix + digest[:24]
        if not chat.stream:
            if api == "openai":
                payload = wire.openai_completion(reply, rid, chat.model, created)
            else:
                payload = wire.anthropic_message(reply, rid, chat.model)
            if kind == "malformed":
                raw = json.dumps(payload).encode()
                return SimResponse(200, {}, raw=raw[: len(raw) // 2], fault=kind)
            return SimResponse(200, {}, json=payload)
        if api == "openai":
            events, tail = wire.openai_events(reply, rid, chat.model, created, chat.include_usage)
        else:
            events, tail = wire.anthropic_events(reply, rid, chat.model)
        if fault is not None and kind == "cut_stream":
            events = events[: min(fault.chunks or 0, tail)]
        elif kind == "malformed":
            events = wire.malformed_events(events)
        delays = [self._output_time(size / 4) for _, size in events]
        if delays:
            delays[0] += self.settings.ttft
        return SimResponse(200, {}, stream=SimStream([e for e, _ in events], delays), fault=kind)

    def _output_time(self, tokens: float) -> float:
        tps = self.settings.tokens_per_second
        return 0.0 if tps is None else tokens / tps

    def _admit(self, now: float, rate: float) -> float | None:
        """Take a token from the max_rps bucket; if empty, the seconds until one is back."""
        capacity = max(1.0, rate)
        tokens, stamp = self._bucket or (capacity, now)
        tokens = min(capacity, tokens + (now - stamp) * rate)
        if tokens >= 1:
            self._bucket = (tokens - 1, now)
            return None
        self._bucket = (tokens, now)
        return (1 - tokens) / rate

    def _quota_headers(self, rate: float) -> dict[str, str]:
        """OpenAI-style ``x-ratelimit-*-requests`` headers describing the max_rps bucket."""
        capacity = max(1.0, rate)
        tokens = self._bucket[0] if self._bucket is not None else capacity
        reset = (capacity - tokens) / rate
        return {
            "x-ratelimit-limit-requests": str(int(capacity)),
            "x-ratelimit-remaining-requests": str(int(tokens)),
            "x-ratelimit-reset-requests": f"{reset * 1000:.0f}ms" if reset < 1 else f"{reset:.3f}s",
        }

    def _rate_limited(
        self,
        api: str,
        entry: _Entry,
        kind: str,
        retry_after: float | None,
        quota: Mapping[str, str],
    ) -> SimResponse:
        entry.fault = kind
        if kind == "max_rps":
            self._by_fault[kind] += 1
        headers = dict(quota)
        if retry_after is None:
            message = f"simulated rate limit ({kind})"
            return SimResponse(429, headers, json=wire.error_body(api, 429, message), fault=kind)
        headers["retry-after"] = str(max(1, -int(-retry_after // 1)))
        headers["retry-after-ms"] = str(round(retry_after * 1000))
        message = f"simulated rate limit ({kind}); retry after {retry_after:.3g}s"
        return SimResponse(429, headers, json=wire.error_body(api, 429, message), fault=kind)

    def _pick_fault(
        self,
        chat: ChatInput,
        digest: str,
        sighting: int,
        index: int,
        texts: Mapping[str, str],
        flags: Mapping[str, bool],
    ) -> FaultSpec | None:
        seed = self.settings.seed
        faults = cast("tuple[FaultSpec, ...]", self.settings.faults)  # typed in __post_init__
        for i, fault in enumerate(faults):
            limit = fault.max_sightings
            if index < fault.after or (limit is not None and sighting >= limit):
                continue
            if fault.kind == "cut_stream" and not chat.stream:
                continue
            if fault.rate < 1 and (
                fault.rate == 0 or _unit(seed, digest, sighting, i) >= fault.rate
            ):
                continue
            if cast(RequestMatch, fault.match).test(texts, flags) is not None:
                return fault
        return None

    def _reply(
        self,
        chat: ChatInput,
        digest: str,
        texts: Mapping[str, str],
        flags: Mapping[str, bool],
    ) -> Reply:
        rules = cast("tuple[ReplyRule, ...]", self.settings.replies)  # typed in __post_init__
        for rule in rules:
            context = cast(RequestMatch, rule.match).test(texts, flags)
            if context is not None:
                scripted = self._scripted(rule, chat, digest, context)
                if scripted is not None:
                    return scripted
                break
        if chat.wants_tool_call:
            return self._tool_reply(chat, digest, [{"name": chat.forced_tool}], None)
        if chat.schema is not None:
            return self._text_reply(chat, json.dumps(generate(chat.schema, digest)), None)
        user = chat.user if len(chat.user) <= ECHO_CHARS else chat.user[:ECHO_CHARS] + "…"
        echo = f"[{digest[:8]}] {user}".rstrip()
        if chat.json_mode:
            echo = json.dumps({"text": echo}, ensure_ascii=False)
        return self._text_reply(chat, echo, None)

    def _scripted(
        self, rule: ReplyRule, chat: ChatInput, digest: str, context: dict[str, Any]
    ) -> Reply | None:
        """The rule's reply, or None when it calls a tool but the request offers none."""
        positional = context.pop("_positional")
        context["digest"] = digest[:8]

        def fill(template: str) -> str:
            return template.format(*positional, **context)

        if rule.reply is not None:
            return self._text_reply(chat, fill(rule.reply), rule.finish_reason)
        if rule.json is not None:
            value = map_strings(rule.json, fill)
            if chat.forced_tool and isinstance(value, Mapping):
                call = {"name": chat.forced_tool, "arguments": value}
                return self._tool_reply(chat, digest, [call], rule.finish_reason)
            text = json.dumps(value, ensure_ascii=False)
            return self._text_reply(chat, text, rule.finish_reason)
        calls = map_strings(rule.tool_call, fill)
        if not chat.tools and any(not call.get("name") for call in calls):
            return None
        return self._tool_reply(chat, digest, calls, rule.finish_reason)

    def _text_reply(self, chat: ChatInput, text: str, finish: str | None) -> Reply:
        tokens = count_tokens(text)
        if chat.max_tokens is not None and tokens > chat.max_tokens:
            text, tokens, finish = text[: chat.max_tokens * 4], chat.max_tokens, "length"
        return Reply(text, (), finish or "stop", chat.prompt_tokens, tokens)

    def _tool_reply(
        self, chat: ChatInput, digest: str, specs: list[Mapping[str, Any]], finish: str | None
    ) -> Reply:
        prefix = "call_" if chat.api == "openai" else "toolu_"
        calls = []
        for i, spec in enumerate(specs):
            name = spec.get("name") or chat.tools[0][0]
            arguments = spec.get("arguments")
            if arguments is None:
                arguments = generate(chat.tool_schema(name), f"{digest}:{name}")
            text = json.dumps(arguments, ensure_ascii=False)
            call_id = spec.get("id") or f"{prefix}{digest[:22]}{i:02d}"
            calls.append(SimToolCall(call_id, name, arguments, text))
        tokens = sum(count_tokens(c.name + c.arguments_json) for c in calls)
        return Reply(None, tuple(calls), finish or "tool_calls", chat.prompt_tokens, tokens)


def _error(api: str, status: int, message: str, fault: str | None = None) -> SimResponse:
    return SimResponse(status, {}, json=wire.error_body(api, status, message), fault=fault)
