"""`SimulatedClient`: the OpenAI client wired straight into an in-process `SimulatedModel`.

It builds request bodies and parses replies exactly as `OpenAIClient` does
over HTTP (it is that class, with the two transport methods replaced), so the
in-process path and the loopback-HTTP path differ only in the bytes on the
wire. Injected faults surface as the same errors a real transport produces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from plait.clients.openai import OpenAIClient
from plait.errors import ProviderTimeout, TransientError
from plait.simulator.model import SimResponse, SimulatedModel

_PATH = "/v1/chat/completions"


class SimulatedClient(OpenAIClient):
    """Serves requests from ``model`` in this process, with no sockets involved."""

    def __init__(
        self, model: SimulatedModel, *, endpoint: str | None = None, timeout: float = 60.0
    ) -> None:
        super().__init__(
            base_url="http://simulator.invalid/v1",
            endpoint=endpoint or "simulated",
            timeout=timeout,
            max_connections=1,
        )
        self.model = model

    def __repr__(self) -> str:
        return f"SimulatedClient(endpoint={self.endpoint!r}, {self.model!r})"

    async def _answer(self, body: dict[str, Any]) -> SimResponse:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.model.handle(_PATH, body)
        except TimeoutError as exc:
            raise self._error(
                ProviderTimeout,
                f"timed out waiting for the endpoint with timeout={self.timeout!r}s; raise the endpoint's timeout if the model is slow",
                None,
            ) from exc
        if response.fault == "connection_reset" or response.status is None:
            raise self._error(
                TransientError, f"connection closed by the simulator ({response.fault})", None
            )
        if response.status >= 300:
            raise self._status_error(
                httpx.Response(response.status, headers=dict(response.headers), json=response.json)
            )
        return response

    async def _post(self, body: dict[str, Any]) -> Any:
        response = await self._answer(body)
        if response.raw is not None:
            raise self._error(
                TransientError, f"reply body is not JSON: {response.raw[:200]!r}", 200
            )
        return response.json

    async def _events(self, body: dict[str, Any]) -> AsyncGenerator[tuple[str, Any], None]:
        response = await self._answer(body)
        stream = response.stream
        if stream is None:
            raise self._error(
                TransientError, "the simulator answered a stream request without a stream", 200
            )
        try:
            async with asyncio.timeout(self.timeout):
                async for event in stream:
                    yield event.event or "", event.data
        except TimeoutError as exc:
            raise self._error(
                ProviderTimeout,
                f"timed out while streaming the reply with timeout={self.timeout!r}s",
                None,
            ) from exc
        finally:
            await stream.aclose()

    def _decode_event(self, data: Any) -> Any:
        # Events arrive already decoded; only text like "[DONE]" would need parsing.
        return data if not isinstance(data, str) else super()._decode_event(data)
