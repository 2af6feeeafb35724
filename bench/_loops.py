"""The hand-written baselines of the sweep: asyncio + one shared httpx.AsyncClient.

Each is the code a careful engineer would write without plait: a semaphore
for the concurrency cap, ``asyncio.gather`` for the parallel parts, and (for
the fault runs) a retry loop with plait's default `RetryPolicy` values and the
same 429 patience plait has (a 429 does not count against ``max_retries``), an
optional start pacer (GCRA) for a configured rate, and the Retry-After of a
429 honoured for the refused request. They post exactly the bodies plait
sends (`bench._common.body`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

from bench._common import FAN_SYSTEMS, JOIN_SYSTEM, body, reply_text
from plait import LLMInference, Module, ModuleList
from plait.resources.retry import RetryPolicy

POLICY = RetryPolicy()
HEAD_SYSTEM = "Plan."
ARM_SYSTEMS = tuple(f"Angle {i}" for i in range(16))


class FanOut(Module):
    """A head call, ``width`` calls on its answer in parallel, and a join: ``width + 2`` calls."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.head = LLMInference("fast", system_prompt=HEAD_SYSTEM)
        self.arms = ModuleList(LLMInference("fast", system_prompt=s) for s in ARM_SYSTEMS[:width])
        self.join = LLMInference("fast", system_prompt=JOIN_SYSTEM)

    def forward(self, text: str) -> str:
        plan = self.head(text)
        return self.join("\n".join(arm(plan) for arm in self.arms))


def _client(url: str, cap: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    return httpx.AsyncClient(base_url=url + "/v1", limits=limits, timeout=60)


async def loop_fan_out(url: str, texts: list[str], cap: int, width: int) -> list[str]:
    """Per item: the head, then ``width`` calls gathered, then the join."""
    async with _client(url, cap) as client:
        gate = asyncio.Semaphore(cap)

        async def call(system: str, user: str) -> str:
            async with gate:
                response = await client.post("/chat/completions", json=body(user, system))
            response.raise_for_status()
            return reply_text(response.json())

        async def item(text: str) -> str:
            plan = await call(HEAD_SYSTEM, text)
            arms = await asyncio.gather(*(call(s, plan) for s in ARM_SYSTEMS[:width]))
            return await call(JOIN_SYSTEM, "\n".join(arms))

        return await asyncio.gather(*(item(text) for text in texts))


async def loop_fan_join(url: str, texts: list[str], cap: int) -> list[str]:
    """Per item: two calls gathered, then the join (bench/batch.py's shape)."""
    async with _client(url, cap) as client:
        gate = asyncio.Semaphore(cap)

        async def call(system: str, user: str) -> str:
            async with gate:
                response = await client.post("/chat/completions", json=body(user, system))
            response.raise_for_status()
            return reply_text(response.json())

        async def item(text: str) -> str:
            left, right = await asyncio.gather(*(call(system, text) for system in FAN_SYSTEMS))
            return await call(JOIN_SYSTEM, "\n".join([left, right]))

        return await asyncio.gather(*(item(text) for text in texts))


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter in [0, min(cap, base * 2**(attempt-1))], added to any Retry-After."""
    ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempt - 1))
    wait = rng.uniform(0.0, ceiling)
    return wait + retry_after if retry_after is not None else wait


def _retry_after(response: httpx.Response) -> float | None:
    if "retry-after-ms" in response.headers:
        return float(response.headers["retry-after-ms"]) / 1000
    if "retry-after" in response.headers:
        return float(response.headers["retry-after"])
    return None


async def loop_chain_retrying(
    url: str, texts: list[str], cap: int, length: int, rps: float | None = None
) -> int:
    """Per item: ``length`` calls in sequence (``Step i`` prompts), each retried; returns calls lost."""
    rng = random.Random()
    loop = asyncio.get_running_loop()
    next_start = -1.0
    async with _client(url, cap) as client:
        gate = asyncio.Semaphore(cap)

        async def pace() -> None:
            nonlocal next_start
            if rps is None:
                return
            now = loop.time()
            start = max(now, next_start)
            next_start = start + 1.0 / rps
            if start > now:
                await asyncio.sleep(start - now)

        async def call(system: str, user: str) -> str | None:
            failures = limited = 0
            waited = 0.0
            while True:
                async with gate:
                    await pace()
                    try:
                        response: Any = await client.post(
                            "/chat/completions", json=body(user, system)
                        )
                    except httpx.TransportError:
                        response = None
                if response is not None and response.status_code == 200:
                    return reply_text(response.json())
                if response is not None and response.status_code == 429:
                    limited += 1
                    if waited >= POLICY.rate_limit_patience:
                        return None
                    delay = backoff(limited, _retry_after(response), rng)
                    waited += delay
                else:
                    status = None if response is None else response.status_code
                    if status is not None and not (status in (408, 409) or status >= 500):
                        return None
                    failures += 1
                    if failures > POLICY.max_retries:
                        return None
                    delay = backoff(failures, None, rng)
                await asyncio.sleep(delay)

        async def item(text: str) -> str | None:
            answer: str | None = text
            for step in range(length):
                answer = await call(f"Step {step}", answer)
                if answer is None:
                    return None
            return answer

        answers = await asyncio.gather(*(item(text) for text in texts))
    return answers.count(None)
