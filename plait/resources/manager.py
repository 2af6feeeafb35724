"""`ResourceManager`: the endpoints of a `ResourceConfig`, ready to serve requests.

Each alias gets one `Endpoint`: a client (one shared ``httpx.AsyncClient`` for
HTTP providers, or the in-process simulator), a `RateLimiter` (always present,
so an over-rate run of 429s pauses the endpoint even without configured limits), a `RetryPolicy`
and its prices. Concurrency slots and priorities are the scheduler's business;
`Endpoint.admit` waits for the limiter and `Endpoint.send` makes exactly one
attempt, settles the token count and tells the limiter how it went.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.clients.anthropic import AnthropicClient
from plait.clients.base import ChatClient, ChatRequest, ChatResponse, DeltaCallback
from plait.clients.openai import OpenAIClient
from plait.errors import ConfigError, ProviderError, RateLimitError
from plait.resources.config import EndpointConfig, ResourceConfig
from plait.resources.limiter import RateLimiter
from plait.resources.retry import RetryPolicy
from plait.simulator.client import SimulatedClient
from plait.simulator.model import SimulatedModel
from plait.simulator.settings import SimulatorSettings


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap upper-ish estimate of a request's tokens, charged to the tpm limit up front."""
    chars = sum(len(str(m.get("content") or "")) for m in request.messages)
    return chars // 4 + 1 + (request.max_tokens or 256)


@dataclass(eq=False)
class Endpoint:
    """One alias of a resource config with its live client, limiter and retry policy."""

    alias: str
    config: EndpointConfig
    client: ChatClient
    limiter: RateLimiter
    retry: RetryPolicy
    simulator: SimulatedModel | None = None
    _metered: bool = field(init=False, default=False)
    _attempts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._metered = self.config.tpm is not None
        if hasattr(self.client, "on_rate_limit_headers"):
            self.client.on_rate_limit_headers = self.limiter.observe

    @property
    def max_concurrent(self) -> int:
        return self.config.max_concurrent

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return self.config.cost(input_tokens, output_tokens)

    async def admit(self, request: ChatRequest) -> tuple[int, float]:
        """Wait until the rate limits let ``request`` start; returns (token estimate, seconds waited)."""
        estimate = estimate_tokens(request) if self._metered else 0
        return estimate, await self.limiter.acquire(estimate)

    async def send(
        self, request: ChatRequest, estimate: int = 0, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        """Send one attempt (after `admit`); settles tokens and tells the limiter how it went."""
        self._attempts += 1
        attempt = self._attempts  # in start order, so the limiter can tell a run of 429s
        try:
            response = await self.client.complete(request, on_delta=on_delta)
        except ProviderError as exc:
            if isinstance(exc, RateLimitError):
                self.limiter.on_rate_limited(exc.retry_after, attempt)
            if exc.endpoint is None:
                exc.endpoint = self.alias
            raise
        if self._metered:
            self.limiter.adjust(estimate, response.usage.total_tokens)
        self.limiter.on_success(attempt)
        return response

    def __repr__(self) -> str:
        return f"Endpoint({self.alias!r}, {self.config.provider}:{self.config.model}, max_concurrent={self.max_concurrent})"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _client_for(
    alias: str, config: EndpointConfig, model: SimulatedModel | None
) -> tuple[ChatClient, SimulatedModel | None]:
    connections = max(config.max_concurrent, 1)
    if config.provider == "simulated" and config.base_url is None:
        model = model or SimulatedModel(
            SimulatorSettings(
                latency=config.latency,
                jitter=config.jitter,
                ttft=config.ttft,
                tokens_per_second=config.tokens_per_second,
                replies=config.replies,
                faults=config.faults,
                seed=config.seed,
            )
        )
        return SimulatedClient(model, endpoint=alias, timeout=config.timeout), model
    key = config.resolve_api_key(alias=alias)
    common: dict[str, Any] = {
        "api_key": key,
        "endpoint": alias,
        "timeout": config.timeout,
        "max_connections": connections,
    }
    base_url = config.base_url
    assert base_url is not None  # ResourceConfig fills in each provider's default
    if config.provider == "anthropic":
        return AnthropicClient(base_url=base_url, **common), None
    return OpenAIClient(base_url=base_url, **common), None


class ResourceManager:
    """Lazily builds and owns the `Endpoint` of every alias in ``config``.

    ``clients`` replaces the client of chosen aliases (tests, custom transports).
    Close it with ``await manager.aclose()`` (or ``async with``) to release
    connection pools.
    """

    def __init__(self, config: ResourceConfig, *, clients: Mapping[str, ChatClient] | None = None):
        if not isinstance(config, ResourceConfig):
            raise ConfigError(
                f"resources must be a ResourceConfig (or a dict of endpoint settings); got {type(config).__name__}"
            )
        self.config = config
        self._clients = dict(clients or {})
        self._endpoints: dict[str, Endpoint] = {}
        self._simulators: dict[str, SimulatedModel] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def max_concurrent(self) -> int | None:
        """The global cap across all endpoints, if any."""
        return self.config.max_concurrent

    def endpoint(self, alias: str) -> Endpoint:
        """The ready `Endpoint` for ``alias`` (a `ConfigError` naming the known aliases if missing)."""
        loop = _running_loop()
        if loop is not self._loop:
            # httpx pools belong to one event loop (each run_sync makes a new one): start afresh.
            self._endpoints, self._loop = {}, loop
        found = self._endpoints.get(alias)
        if found is not None:
            return found
        config = self.config[alias]
        client = self._clients.get(alias)
        simulator = None
        if client is None:
            client, simulator = _client_for(alias, config, self._simulators.get(alias))
            if simulator is not None:
                self._simulators[alias] = simulator
        endpoint = Endpoint(
            alias,
            config,
            client,
            RateLimiter(rpm=config.rpm, tpm=config.tpm),
            RetryPolicy(
                config.max_retries,
                config.retry_base_delay,
                config.retry_max_delay,
                config.rate_limit_patience,
            ),
            simulator,
        )
        self._endpoints[alias] = endpoint
        return endpoint

    def simulator(self, alias: str) -> SimulatedModel:
        """The in-process simulated model behind ``alias`` (for inspecting its request log)."""
        model = self.endpoint(alias).simulator
        if model is None:
            raise ConfigError(
                f"endpoint {alias!r} is not an in-process simulator (provider={self.config[alias].provider!r})"
            )
        return model

    async def aclose(self) -> None:
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            if endpoint.alias not in self._clients:
                await endpoint.client.aclose()

    async def __aenter__(self) -> ResourceManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ResourceManager(aliases={list(self.config.aliases)}, open={list(self._endpoints)})"
