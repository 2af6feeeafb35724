"""The endpoint half of `GraphRun`: one LLM node's call, with its slot, retries and reuse.

A call waits for a slot in the shared `SlotPool` (priority: its remaining
path, less the item's age), then for the endpoint's rate limiter, and is
handed to the client. A retryable failure gives its slot back for the backoff
wait and queues again; rate-limit replies are waited out within the retry
policy's patience. A checkpointed or cached reply for the same request
completes the node with nothing sent (`_reuse`). The slot of a successful
call is released only after its dependants were started, so they queue first.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from plait.errors import BudgetExceeded, PlaitError, ProviderError, RateLimitError
from plait.execution import events as ev
from plait.execution.budget import Budget
from plait.execution.cache import ResponseCache, cache_for, cache_key
from plait.execution.checkpoint import Checkpoint, request_key, restored_value
from plait.execution.result import (
    CANCELLED,
    DONE,
    FAILED,
    NO_OVERRIDE,
    RETRYING,
    RUNNING,
    SKIPPED,
)
from plait.execution.runbase import RunBase
from plait.graph import GraphNode
from plait.values import Value, ValueKind, first_error, unwrap


class EndpointCalls(RunBase):
    """Mixed into `GraphRun`: how it runs an LLM node."""

    checkpoint: Checkpoint | None
    cache: ResponseCache | None
    budget: Budget | None
    graph_hash: str
    rng: random.Random
    _input_keys: dict[str, str]

    async def _run_llm(self, node: GraphNode) -> None:
        nid, alias = node.id, node.alias
        assert alias is not None  # every LLM node has one
        record = self.records[nid]
        try:
            args, kwargs = self._args(node)
            plain = len(args) == 1 and not kwargs and type(args[0]) is str  # a recorded call's
            error = None if plain else first_error(args, kwargs)
            if error is not None:
                self._drain(self._finish(nid, *self._skipped(nid, error)))
                return
            outcome, slot = await self._call_endpoint(
                node, unwrap(args[0] if args else next(iter(kwargs.values())))
            )
        except asyncio.CancelledError:
            if record.status not in (DONE, FAILED, SKIPPED):
                record.status = CANCELLED
                record.finished_at = t = self.now()
                self.emit(ev.NodeCancelled(t, nid, alias, "run cancelled", item=self.item))
            raise
        try:
            self._drain(self._finish(nid, *outcome))
        finally:
            # Released only now, so the dependants just started can queue for it first.
            if slot is not None:
                self.pool.release(alias, slot)

    async def _call_endpoint(
        self, node: GraphNode, prompt: Any
    ) -> tuple[tuple[Any, ...], int | None]:
        """Call the node's endpoint (with retries): the outcome, and the slot still held, if any."""
        nid, alias = node.id, node.alias
        assert alias is not None and self.manager is not None  # checked when it was queued
        record = self.records[nid]
        endpoint = self.manager.endpoint(alias)
        override = self.overrides.get(nid, NO_OVERRIDE)
        request = override.request(node.module, prompt, model=endpoint.config.model)
        record.request = request
        reused, cache_slot = self._reuse(node, endpoint, request)
        if reused is not None:
            return reused, None
        on_delta = None
        if request.stream:
            on_delta = lambda text: self.emit(ev.NodeDelta(self.now(), nid, text, item=self.item))  # noqa: E731
        priority = self._rank[nid] - self._age
        attempt = failures = limited = 0
        limited_wait = 0.0
        while True:
            attempt += 1
            queued = self.now()
            slot = await self.pool.acquire(alias, priority, self.item or 0)
            if self.budget is not None and self.budget.exhausted:  # checked once the slot is ours
                self.pool.release(alias, slot)
                error = self.budget.error()
                return (Value(ValueKind.ERROR, error, nid, {"node": nid}), CANCELLED, error), None
            record.attempts = attempt
            if (t := self.now()) > queued:
                self.emit(
                    ev.NodeWaiting(t, nid, alias, "slot", t - queued, slot=slot, item=self.item)
                )
            try:
                estimate, waited = await endpoint.admit(request)
                t = self.now()
                if waited > 0:
                    self.emit(
                        ev.NodeWaiting(
                            t, nid, alias, "rate_limit", waited, slot=slot, item=self.item
                        )
                    )
                # Started means handed to the client: after the slot and rate-limit waits.
                record.status = RUNNING
                if record.started_at is None:
                    record.started_at = t
                self.emit(ev.NodeStarted(t, nid, alias, attempt, slot, item=self.item))
                response = await endpoint.send(request, estimate, on_delta=on_delta)
                # A typed reply that does not validate raises TransientError: retried.
                payload = node.module.reply_payload(response)
            except ProviderError as exc:
                self.pool.release(alias, slot)
                policy = endpoint.retry
                if isinstance(exc, RateLimitError):  # patience, not a failure: see RetryPolicy
                    limited += 1
                    if not policy.should_wait_again(limited_wait):
                        return self._failed(nid, exc), None
                    delay = policy.delay(limited, exc, self.rng)
                    limited_wait += delay
                else:
                    failures += 1
                    if not policy.should_retry(exc, failures):
                        return self._failed(nid, exc), None
                    delay = policy.delay(failures, exc, self.rng)
                record.status = RETRYING
                self.emit(
                    ev.NodeRetry(
                        self.now(),
                        nid,
                        alias,
                        attempt,
                        f"{type(exc).__name__}: {exc}",
                        delay,
                        exc.status,
                        item=self.item,
                    )
                )
                await asyncio.sleep(delay)
                self.emit(ev.NodeWaiting(self.now(), nid, alias, "backoff", delay, item=self.item))
                continue
            except BudgetExceeded as exc:  # a budget shared across processes refused the start
                self.pool.release(alias, slot)
                record.attempts = attempt - 1
                return (Value(ValueKind.ERROR, exc, nid, {"node": nid}), CANCELLED, exc), None
            except (PlaitError, ValueError, TypeError, KeyError) as exc:
                self.pool.release(alias, slot)
                return self._failed(nid, exc), None
            except BaseException:
                self.pool.release(alias, slot)
                raise
            if cache_slot is not None:
                cache_slot[0].put(cache_slot[1], response)
            try:
                return self._llm_value(node, endpoint, response, payload), slot
            except BaseException:
                self.pool.release(alias, slot)
                raise

    def _reuse(
        self, node: GraphNode, endpoint: Any, request: Any
    ) -> tuple[tuple[Any, ...] | None, tuple[ResponseCache, str] | None]:
        """A checkpointed or cached outcome for this request, else where to cache the reply."""
        config = endpoint.config
        if self.checkpoint is None and self.cache is None and not config.cache:
            return None, None
        key = request_key(request)
        record = self.records[node.id]
        if self.checkpoint is not None:
            self._input_keys[node.id] = key
            saved = self.checkpoint.lookup(self.graph_hash, self._checkpoint_id(node.id), key)
            if saved is not None:
                record.restored = True
                return (restored_value(saved, node.id, node.module.restored), DONE), None
        cache = self.cache if self.cache is not None else cache_for(config.cache)
        if cache is None:
            return None, None
        ckey = cache_key((config.provider, config.base_url, config.model), key)
        hit = cache.get(ckey)
        if hit is None:
            return None, (cache, ckey)
        record.cached = True
        return self._llm_value(
            node, endpoint, hit, node.module.reply_payload(hit), cached=True
        ), None

    def _llm_value(
        self, node: GraphNode, endpoint: Any, response: Any, payload: Any, *, cached: bool = False
    ) -> tuple[Any, ...]:
        record = self.records[node.id]
        usage = response.usage
        cost = 0.0
        if not cached:  # a cache hit sends nothing, so it spends nothing
            record.usage = usage
            record.cost = cost = endpoint.cost(usage.input_tokens, usage.output_tokens)
            if self.budget is not None:
                self.budget.charge(usage, cost)
            self.emit(ev.NodeUsage(self.now(), node.id, node.alias, usage, cost, item=self.item))
        record.ttft = response.ttft
        meta = {
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
            "finish_reason": response.finish_reason,
            "model": response.model,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                for c in response.tool_calls
            ],
            "latency": response.latency,
            "ttft": response.ttft,
            "cost": cost,
            "cached": cached,
        }
        return (Value(node.module.output_kind, payload, node.id, meta), DONE)
