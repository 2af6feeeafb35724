"""`Budget`: the cost and token limits of one run or batch."""

from __future__ import annotations

from plait._format import format_money
from plait.clients.base import Usage
from plait.errors import BudgetExceeded


class Budget:
    """Spending so far against ``max_cost`` (USD) and ``max_tokens``; either may be None.

    The scheduler charges each response and checks `exhausted` before every
    attempt, so a run stops starting new calls once a limit is reached; calls
    already in flight finish (they are paid for), which can overshoot a limit
    by at most the in-flight calls.
    """

    def __init__(self, max_cost: float | None = None, max_tokens: int | None = None) -> None:
        self.max_cost = max_cost
        self.max_tokens = max_tokens
        self.cost = 0.0
        self.tokens = 0

    def charge(self, usage: Usage, cost: float) -> None:
        self.cost += cost
        self.tokens += usage.total_tokens

    @property
    def exhausted(self) -> bool:
        return (self.max_cost is not None and self.cost >= self.max_cost) or (
            self.max_tokens is not None and self.tokens >= self.max_tokens
        )

    def error(self) -> BudgetExceeded:
        limits = []
        if self.max_cost is not None:
            limits.append(f"{format_money(self.cost)} of max_cost={format_money(self.max_cost)}")
        if self.max_tokens is not None:
            limits.append(f"{self.tokens:,} of max_tokens={self.max_tokens:,} tokens")
        return BudgetExceeded(
            f"budget exhausted: spent {' and '.join(limits)}; no further calls were started. "
            "Completed work is kept; raise the limit (or resume from a checkpoint) to finish."
        )

    def __repr__(self) -> str:
        return f"Budget(cost={format_money(self.cost)}/{self.max_cost}, tokens={self.tokens}/{self.max_tokens})"
