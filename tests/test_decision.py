"""Unit tests for dynamo.nemo_switchyard.decision: targets, decisions and fallbacks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from dynamo.nemo_switchyard import decision as decision_module
from dynamo.nemo_switchyard.config import Settings, load_settings
from dynamo.nemo_switchyard.decision import (
    FALLBACK,
    PASSTHROUGH,
    STRONG,
    WEAK,
    Decider,
    Decision,
    RoutingRequestError,
    Target,
)
from dynamo.nemo_switchyard.routers import registry
from dynamo.nemo_switchyard.routers.base import Router, RouterError
from dynamo.nemo_switchyard.routers.random import RandomRouter


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SWITCHYARD_"):
            monkeypatch.delenv(name)


def _settings(**overrides) -> Settings:
    values = {"strong_model": "big", "weak_model": "small", "router_type": "random", "threshold": 0.5}
    values.update(overrides)
    return load_settings(values)


# ---------------------------------------------------------------- fake routers


class FixedRouter(Router):
    """Returns a fixed score; counts calls."""

    name = "fixed"
    inline = True

    def __init__(self, score: float = 0.5) -> None:
        self.value = score
        self.calls = 0

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        self.calls += 1
        return [self.value for _ in prompts]


class FailingRouter(Router):
    name = "failing"
    inline = True

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        raise RuntimeError("model exploded")


class OutOfRangeRouter(Router):
    name = "outofrange"
    inline = True

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [1.5 for _ in prompts]


class SlowRouter(Router):
    """A thread-run router that blocks until released."""

    name = "slow"

    def __init__(self) -> None:
        self.release = threading.Event()

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        self.release.wait(5)
        return [0.9 for _ in prompts]


def _decider_with(router: Router, monkeypatch: pytest.MonkeyPatch, **overrides) -> Decider:
    decider = Decider(_settings(**overrides))
    monkeypatch.setattr(decision_module, "build_router", lambda settings, name: router)
    return decider


def _decide(decider: Decider, prompt: str, target: Target | None = None) -> Decision:
    async def go() -> Decision:
        try:
            return await decider.decide(target or decider.default, prompt)
        finally:
            await decider.aclose()

    return asyncio.run(go())


# ---------------------------------------------------------------- target()


def test_target_virtual_name_uses_defaults():
    decider = Decider(_settings(threshold=0.7))
    assert decider.target("auto") == Target("random", 0.7)


def test_target_custom_virtual_name():
    decider = Decider(_settings(virtual_model_name="route-me"))
    assert decider.target("route-me") == decider.default
    assert decider.target("auto") is None


@pytest.mark.parametrize(
    "model,expected",
    [
        ("router-random-0.3", Target("random", 0.3)),
        ("router-random-0", Target("random", 0.0)),
        ("router-random-1", Target("random", 1.0)),
        ("router-random-1.0", Target("random", 1.0)),
        ("router-random-.25", Target("random", 0.25)),
        ("router-lexical-0.11593", Target("lexical", 0.11593)),
        ("router-random-5e-1", Target("random", 0.5)),
        ("router-random-1E-3", Target("random", 0.001)),
    ],
)
def test_target_router_names(model: str, expected: Target):
    assert Decider(_settings()).target(model) == expected


@pytest.mark.parametrize(
    "model",
    ["router-", "router-random", "router-random-", "router-random-abc", "router-random-0.3-x", "router--0.3",
     "router-random-0.3 ", "router-ran dom-0.3", "router-random--0.3", "router-random-0.3.4", "router-my-router-0.3"],
)
def test_target_invalid_router_forms(model: str):
    with pytest.raises(RoutingRequestError, match="router-<router>-<threshold>"):
        Decider(_settings()).target(model)


def test_target_unknown_router():
    with pytest.raises(RoutingRequestError, match="unknown router 'nope'") as info:
        Decider(_settings()).target("router-nope-0.5")
    for name in registry.names():
        assert name in str(info.value)


@pytest.mark.parametrize("model", ["router-random-1.5", "router-random-2", "router-random-1e5", "router-random-1.0001"])
def test_target_threshold_above_one(model: str):
    with pytest.raises(RoutingRequestError, match="between 0 and 1"):
        Decider(_settings()).target(model)


@pytest.mark.parametrize("model", ["gpt-4o", "big", "small", "Auto", "AUTO", "auto ", "", "routerx-random-0.5", "my-router-random-0.5"])
def test_target_passthrough_for_real_models(model: str):
    assert Decider(_settings()).target(model) is None


@pytest.mark.parametrize("model", [None, 5, 0.5, ["auto"], {"name": "auto"}, True])
def test_target_passthrough_for_non_strings(model):
    assert Decider(_settings()).target(model) is None


def test_routing_request_error_is_value_error():
    assert issubclass(RoutingRequestError, ValueError)


def test_decision_constants():
    assert decision_module.DECISIONS == (STRONG, WEAK, FALLBACK, PASSTHROUGH)


# ---------------------------------------------------------------- decide()


@pytest.mark.parametrize("score,expected", [(0.5, STRONG), (0.5000001, STRONG), (1.0, STRONG), (0.4999999, WEAK), (0.0, WEAK)])
def test_decide_threshold_comparison(monkeypatch: pytest.MonkeyPatch, score: float, expected: str):
    decider = _decider_with(FixedRouter(score), monkeypatch, threshold=0.5)
    result = _decide(decider, "a prompt")
    assert result.decision == expected
    assert result.model == ("big" if expected == STRONG else "small")
    assert result.score == score
    assert result.router == "random" and result.threshold == 0.5
    assert result.reason is None


def test_decide_uses_target_threshold_not_default(monkeypatch: pytest.MonkeyPatch):
    decider = _decider_with(FixedRouter(0.4), monkeypatch, threshold=0.5)
    result = _decide(decider, "p", Target("random", 0.3))
    assert result.decision == STRONG and result.threshold == 0.3


def test_decide_threshold_zero_always_strong_one_only_for_one(monkeypatch: pytest.MonkeyPatch):
    assert _decide(_decider_with(FixedRouter(0.0), monkeypatch), "p", Target("random", 0.0)).decision == STRONG
    assert _decide(_decider_with(FixedRouter(0.999), monkeypatch), "p", Target("random", 1.0)).decision == WEAK


@pytest.mark.parametrize("prompt", ["", " ", "\n\t  \r\n"])
def test_decide_empty_prompt_falls_back_without_scoring(monkeypatch: pytest.MonkeyPatch, prompt: str):
    router = FixedRouter(0.0)
    decider = _decider_with(router, monkeypatch)
    result = _decide(decider, prompt)
    assert result == Decision(FALLBACK, "big", None, "random", 0.5, "empty_prompt")
    assert router.calls == 0


def test_decide_fallback_model_used(monkeypatch: pytest.MonkeyPatch):
    decider = _decider_with(FixedRouter(), monkeypatch, fallback_model="safe")
    result = _decide(decider, "")
    assert result.decision == FALLBACK and result.model == "safe"


@pytest.mark.parametrize("router", [FailingRouter(), OutOfRangeRouter()])
def test_decide_router_error_falls_back(monkeypatch: pytest.MonkeyPatch, router: Router):
    decider = _decider_with(router, monkeypatch, fallback_model="safe")
    result = _decide(decider, "hello")
    assert result == Decision(FALLBACK, "safe", None, "random", 0.5, "router_error")


def test_decide_router_timeout_falls_back(monkeypatch: pytest.MonkeyPatch):
    router = SlowRouter()
    decider = _decider_with(router, monkeypatch, router_timeout=0.05)
    try:
        result = _decide(decider, "hello")
    finally:
        router.release.set()
    assert result == Decision(FALLBACK, "big", None, "random", 0.5, "router_timeout")


def test_decide_slow_router_within_budget_is_used(monkeypatch: pytest.MonkeyPatch):
    router = SlowRouter()
    router.release.set()
    decider = _decider_with(router, monkeypatch, router_timeout=5)
    assert _decide(decider, "hello").decision == STRONG


def test_decide_with_real_random_router_is_deterministic():
    decider = Decider(_settings(random_seed=3))
    expected = RandomRouter(seed=3).score_batch(["what is 2+2?"])[0]
    result = _decide(decider, "what is 2+2?")
    assert result.score == pytest.approx(expected)
    assert result.decision == (STRONG if expected >= 0.5 else WEAK)


def test_decide_router_load_failure_raises_router_error(monkeypatch: pytest.MonkeyPatch):
    def broken(name, **kwargs):
        raise OSError("no such checkpoint")

    monkeypatch.setattr(registry, "build", broken)
    decider = Decider(_settings())
    with pytest.raises(RouterError, match="cannot load router 'random'"):
        _decide(decider, "hello")


# ---------------------------------------------------------------- build_router and loading


def test_build_passes_options_seed_and_checkpoint(monkeypatch: pytest.MonkeyPatch):
    calls = []

    def fake_build(name, *, checkpoint_path=None, options=None):
        calls.append((name, checkpoint_path, options))
        return FixedRouter()

    monkeypatch.setattr(registry, "build", fake_build)
    decider = Decider(
        _settings(router_type="lexical", checkpoint_path="/ckpt", random_seed=9, router_options={"lexical": {"a": 1}, "random": {"b": 2}})
    )
    decision_module.build_router(decider.settings, "lexical")
    decision_module.build_router(decider.settings, "random")
    assert calls[0] == ("lexical", "/ckpt", {"a": 1})
    # The checkpoint belongs to the configured router only; the seed defaults from settings.
    assert calls[1] == ("random", None, {"b": 2, "seed": 9})


def test_build_explicit_seed_option_wins(monkeypatch: pytest.MonkeyPatch):
    calls = []
    monkeypatch.setattr(registry, "build", lambda name, **kw: calls.append(kw["options"]) or FixedRouter())
    decision_module.build_router(_settings(random_seed=9, router_options={"random": {"seed": 1}}), "random")
    assert calls == [{"seed": 1}]


def test_build_does_not_mutate_settings_options(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "build", lambda name, **kw: FixedRouter())
    settings = _settings(router_options={"random": {"b": 2}})
    decision_module.build_router(settings, "random")
    assert settings.router_options == {"random": {"b": 2}}


def test_build_keeps_router_error(monkeypatch: pytest.MonkeyPatch):
    def fail(name, **kw):
        raise RouterError("precise message")

    monkeypatch.setattr(registry, "build", fail)
    with pytest.raises(RouterError, match="^precise message$"):
        decision_module.build_router(_settings(), "random")


def test_routers_loaded_once_even_with_concurrent_first_calls(monkeypatch: pytest.MonkeyPatch):
    builds = []

    def slow_build(name, **kw):
        builds.append(name)
        time.sleep(0.05)  # long enough for every concurrent caller to arrive while loading
        return FixedRouter(0.7)

    monkeypatch.setattr(registry, "build", slow_build)
    decider = Decider(_settings())

    async def go():
        try:
            results = await asyncio.gather(*(decider.decide(decider.default, f"p{i}") for i in range(20)))
            scorers = await asyncio.gather(*(decider.scorer("random") for _ in range(5)))
            return results, scorers
        finally:
            await decider.aclose()

    results, scorers = asyncio.run(go())
    assert builds == ["random"]
    assert all(r.decision == STRONG for r in results)
    assert len({id(s) for s in scorers}) == 1


def test_different_routers_loaded_separately(monkeypatch: pytest.MonkeyPatch):
    builds = []
    monkeypatch.setattr(registry, "build", lambda name, **kw: builds.append(name) or FixedRouter(0.2))
    decider = Decider(_settings())

    async def go():
        try:
            await decider.decide(Target("random", 0.5), "x")
            await decider.decide(Target("lexical", 0.5), "x")
            await decider.decide(Target("random", 0.1), "y")
        finally:
            await decider.aclose()

    asyncio.run(go())
    assert sorted(builds) == ["lexical", "random"]


def test_failed_load_is_retried(monkeypatch: pytest.MonkeyPatch):
    attempts = []

    def flaky(name, **kw):
        attempts.append(name)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return FixedRouter(0.9)

    monkeypatch.setattr(registry, "build", flaky)
    decider = Decider(_settings())

    async def go():
        try:
            with pytest.raises(RouterError):
                await decider.decide(decider.default, "x")
            return await decider.decide(decider.default, "x")
        finally:
            await decider.aclose()

    assert asyncio.run(go()).decision == STRONG
    assert len(attempts) == 2


def test_start_loads_default_router(monkeypatch: pytest.MonkeyPatch):
    builds = []
    monkeypatch.setattr(registry, "build", lambda name, **kw: builds.append(name) or FixedRouter())
    decider = Decider(_settings())

    async def go():
        await decider.start()
        await decider.aclose()

    asyncio.run(go())
    assert builds == ["random"]


def test_aclose_closes_routers(monkeypatch: pytest.MonkeyPatch):
    closed = []

    class Closing(FixedRouter):
        def close(self) -> None:
            closed.append(True)

    decider = _decider_with(Closing(), monkeypatch)
    _decide(decider, "x")
    assert closed == [True]
    assert decider._scorers == {}
