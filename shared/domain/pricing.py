"""What tokens cost: a small built-in table of list prices, overridden or extended by ``LLM_PRICES``.

Prices are USD per million input and output tokens, per model.  List prices change: check yours.
A model without a price has no cost estimate rather than a wrong one.
"""

from __future__ import annotations

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def cost_usd(price: tuple[float, float], tokens_in: float, tokens_out: float) -> float:
    """What the tokens cost at one price entry (USD per million input and output tokens)."""
    return round((tokens_in * price[0] + tokens_out * price[1]) / 1_000_000, 6)


def estimate_cost(prices: dict[str, tuple[float, float]], model: str, tokens_in: int, tokens_out: int) -> float | None:
    price = prices.get(model)
    return None if price is None else cost_usd(price, tokens_in, tokens_out)
