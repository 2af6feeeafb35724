"""Endpoint configuration, rate limiting and retry policy: the parts `ResourceManager` wires."""

from __future__ import annotations

from plait.resources.config import EndpointConfig, ResourceConfig, Secret
from plait.resources.limiter import RateLimiter
from plait.resources.retry import RetryPolicy

__all__ = ["EndpointConfig", "RateLimiter", "ResourceConfig", "RetryPolicy", "Secret"]
