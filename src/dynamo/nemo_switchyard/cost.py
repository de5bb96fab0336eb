"""What a request cost, and what it would have cost on the strong model.

Prices are per million tokens, per model (``--prices``). The saving of a routed
request is its tokens priced at the strong model's rates minus its actual price: an
estimate, since the strong model would not have written exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .usage import Usage


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input and output tokens."""

    input: float
    output: float

    def of(self, usage: Usage) -> float:
        return (usage.input * self.input + usage.output * self.output) / 1_000_000


class Pricing:
    def __init__(self, prices: Mapping[str, Price], strong_model: str) -> None:
        self.prices = dict(prices)
        self.strong = self.prices.get(strong_model)

    @property
    def enabled(self) -> bool:
        return bool(self.prices)

    def cost(self, model: str, usage: Usage) -> float | None:
        """The request's price, or None when ``model`` has no price."""
        price = self.prices.get(model)
        return price.of(usage) if price is not None else None

    def strong_cost(self, usage: Usage) -> float | None:
        """The same tokens at the strong model's price (None without one)."""
        return self.strong.of(usage) if self.strong is not None else None
