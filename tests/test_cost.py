"""Prices per million tokens, and the strong-model comparison."""

from __future__ import annotations

import pytest

from dynamo.nemo_switchyard.config import ConfigError, load_settings
from dynamo.nemo_switchyard.cost import Price, Pricing
from dynamo.nemo_switchyard.usage import Usage

BASE = {"strong_model": "big", "weak_model": "small"}


def test_price_of_usage():
    assert Price(3.0, 15.0).of(Usage(1_000_000, 100_000)) == pytest.approx(4.5)


def test_pricing_cost_and_strong_cost():
    pricing = Pricing({"big": Price(10, 30), "small": Price(1, 2)}, "big")
    usage = Usage(1000, 500)
    assert pricing.enabled
    assert pricing.cost("small", usage) == pytest.approx(0.002)
    assert pricing.strong_cost(usage) == pytest.approx(0.025)
    assert pricing.cost("unpriced", usage) is None


def test_no_strong_price_means_no_comparison():
    assert Pricing({"small": Price(1, 2)}, "big").strong_cost(Usage(1, 1)) is None
    assert not Pricing({}, "big").enabled


def test_prices_setting_accepts_objects_and_pairs():
    settings = load_settings({**BASE, "prices": {"big": {"input": 3, "output": 15}, "small": [0.2, 0.6]}})
    assert settings.prices == {"big": {"input": 3.0, "output": 15.0}, "small": {"input": 0.2, "output": 0.6}}


def test_prices_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_PRICES", '{"big": [1, 2]}')
    assert load_settings(BASE).prices == {"big": {"input": 1.0, "output": 2.0}}


@pytest.mark.parametrize(
    "prices, message",
    [
        ({"big": {"input": 1}}, "the price of 'big' must be"),
        ({"big": [1, -2]}, "the output price of 'big' must be a number"),
        ({"big": ["1", 2]}, "the input price of 'big' must be a number"),
        ({"big": [1, 2, 3]}, "the price of 'big' must be"),
    ],
)
def test_bad_prices_are_one_line_errors(prices: dict, message: str):
    with pytest.raises(ConfigError, match="--prices") as info:
        load_settings({**BASE, "prices": prices})
    assert message in str(info.value) and "\n" not in str(info.value)
