"""Formatting shared by reprs, progress lines and widgets."""

from __future__ import annotations

import math


def format_money(amount: float) -> str:
    """``amount`` in dollars with enough digits to show it: ``$1.50``, ``$0.0123``, ``$0.000001``.

    At least two decimals, and at least three significant digits below a
    dollar, so a small budget or cost never reads as ``$0.0000``.
    """
    if amount == 0 or not math.isfinite(amount):
        return f"${amount:.2f}"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = min(max(2, 2 - math.floor(math.log10(amount))), 15)
    text = f"{amount:.{decimals}f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


__all__ = ["format_money"]
