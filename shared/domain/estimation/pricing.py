"""What tokens cost: a small built-in table of list prices, overridden or extended by ``LLM_PRICES``.

Prices are USD per million tokens, per model: input, output and, where the provider bills prompt
prefixes it served from its cache at less (``usage.prompt_tokens_details.cached_tokens``), cached
input.  An entry without the third figure bills cached tokens at the input price.  List prices
change: check yours.  A model without a price has no cost estimate rather than a wrong one.

The provider's Batch API bills a fraction of these prices (``LLM_BATCH_DISCOUNT``): the tokens of a
job's Batch API requests are kept apart from its live ones so each is priced at what it cost.
"""

from __future__ import annotations

from dataclasses import dataclass

Price = tuple[float, float] | tuple[float, float, float]

DEFAULT_PRICES: dict[str, Price] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o": (2.50, 10.00, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4.1": (2.00, 8.00, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
}


@dataclass(frozen=True)
class TokenUsage:
    """The tokens one or more calls used, as the provider reported them: ``cached`` is the part of
    ``tokens_in`` served from its prefix cache."""

    tokens_in: int = 0
    tokens_out: int = 0
    cached: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.tokens_in + other.tokens_in, self.tokens_out + other.tokens_out, self.cached + other.cached
        )

    def __sub__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.tokens_in - other.tokens_in, self.tokens_out - other.tokens_out, self.cached - other.cached
        )


def cached_input_price(price: Price) -> float:
    return price[2] if len(price) > 2 else price[0]


def cost_usd(price: Price, tokens_in: float, tokens_out: float, cached: float = 0) -> float:
    """What the tokens cost at one price entry; ``cached`` of the input tokens at the cached price."""
    uncached = tokens_in - cached
    total = uncached * price[0] + cached * cached_input_price(price) + tokens_out * price[1]
    return round(total / 1_000_000, 6)


def usage_cost(price: Price | None, usage: TokenUsage, factor: float = 1.0) -> float | None:
    """What ``usage`` cost at ``price`` times ``factor`` (the Batch API's discount); None without a price."""
    if price is None:
        return None
    return round(cost_usd(price, usage.tokens_in, usage.tokens_out, usage.cached) * factor, 6)
