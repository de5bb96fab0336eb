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
    assert decision_module.DECISIONS == (STRONG, decision_module.MIDDLE, WEAK, FALLBACK, PASSTHROUGH)


# ---------------------------------------------------------------- decide()


@pytest.mark.parametrize("score,expected", [(0.5, STRONG), (0.5000001, STRONG), (1.0, STRONG), (0.4999999, WEAK), (0.0, WEAK)])
def test_decide_threshold_comparison(monkeypatch: pytest.MonkeyPatch, score: float, expected: str):
    decider = _decider_with(FixedRouter(score), monkeypatch, threshold=0.5)
    result = _decide(decider, "a prompt")
    assert result.decision == expected
    assert result.model == ("big" if expected == STRONG else "small")
    assert result.score == score
    assert result.router == "random" and result.threshold == 0.5
    assert result.fallback_reason is None and result.reason == "score"
    assert result.tier == (0 if expected == STRONG else 1)


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


class ThreadRecordingRouter(Router):
    """A thread router that may score prompts of up to 20 characters on the loop; records where it ran."""

    name = "recording"
    inline_chars = 20

    def __init__(self) -> None:
        self.threads: list[str] = []

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        self.threads.append(threading.current_thread().name)
        return [0.9 for _ in prompts]


@pytest.mark.parametrize("alone,prompt,on_loop", [
    (lambda: True, "hello", True),
    (lambda: True, "hello " * 10, False),  # longer than inline_chars
    (lambda: False, "hello", False),  # other requests in flight: batched in the thread
    (None, "hello", False),  # a decider nobody told (tools, tests): the thread
])
def test_decide_scores_a_short_prompt_on_the_loop_only_when_alone(monkeypatch: pytest.MonkeyPatch, alone, prompt, on_loop):
    router = ThreadRecordingRouter()
    decider = _decider_with(router, monkeypatch)
    decider.alone = alone
    assert _decide(decider, prompt).decision == STRONG
    assert (router.threads == [threading.current_thread().name]) is on_loop


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


# ---------------------------------------------------------------- tiers, budget, load, overrides


def _tiered(router: Router, monkeypatch: pytest.MonkeyPatch, **overrides) -> Decider:
    return _decider_with(router, monkeypatch, tier=["big=0.7", "small=0", "mid=0.3"], **overrides)


@pytest.mark.parametrize(
    "score, model, label, tier",
    [(1.0, "big", STRONG, 0), (0.7, "big", STRONG, 0), (0.69, "mid", decision_module.MIDDLE, 1), (0.3, "mid", decision_module.MIDDLE, 1),
     (0.29, "small", WEAK, 2), (0.0, "small", WEAK, 2)],
)
def test_tiers_pick_the_strongest_tier_whose_cut_point_the_score_reaches(monkeypatch, score, model, label, tier):
    result = _decide(_tiered(FixedRouter(score), monkeypatch), "p")
    assert (result.model, result.decision, result.tier, result.reason, result.threshold) == (model, label, tier, "score", 0.7)


def test_tiers_set_strong_weak_and_threshold():
    settings = _settings(tier=["big=0.7", "small=0.1", "mid=0.3"], strong_model="ignored", threshold=0.2)
    assert [t.model for t in settings.tiers] == ["big", "mid", "small"]
    assert (settings.strong_model, settings.weak_model, settings.threshold, settings.fallback_model) == ("big", "small", 0.7, "big")
    assert settings.served_models == ["big", "mid", "small"]


def test_below_every_cut_point_goes_to_the_weakest_tier(monkeypatch):
    decider = _decider_with(FixedRouter(0.05), monkeypatch, tier=["big=0.7", "small=0.1"])
    assert _decide(decider, "p").model == "small"


def test_a_router_model_name_sets_the_top_cut_point_of_the_tiers(monkeypatch):
    decider = _tiered(FixedRouter(0.5), monkeypatch)
    assert _decide(decider, "p", Target("random", 0.4)).model == "big"
    assert _decide(_tiered(FixedRouter(0.25), monkeypatch), "p", Target("random", 0.2)).model == "big"
    # The top cut-point below a middle one: the middle tier's cut is clamped to it.
    assert _decide(_tiered(FixedRouter(0.15), monkeypatch), "p", Target("random", 0.2)).model == "small"


@pytest.mark.parametrize("items, message", [
    (["big=0.7"], "at least two tiers"), (["big"], "is not MODEL=CUTPOINT"), (["big=x", "s=0"], "is not a number"),
    (["big=1.5", "s=0"], "between 0 and 1"), (["a=0.5", "a=0"], "a model appears in two tiers: a"), (["a=0.5", "b=0.5"], "same cut-point"),
])
def test_bad_tiers_are_one_line_errors(items, message):
    from dynamo.nemo_switchyard.config import ConfigError

    with pytest.raises(ConfigError, match="--tier") as info:
        _settings(tier=items)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_tiers_from_environment_and_config_mapping(monkeypatch, tmp_path):
    monkeypatch.setenv("SWITCHYARD_TIER", "big=0.6,small=0")
    assert [t.model for t in load_settings({}).tiers] == ["big", "small"]
    monkeypatch.delenv("SWITCHYARD_TIER")
    config = tmp_path / "c.yaml"
    config.write_text("tier:\n  big: 0.8\n  mid: 0.4\n  small: 0\n")
    assert [(t.model, t.cut) for t in load_settings({}, config).tiers] == [("big", 0.8), ("mid", 0.4), ("small", 0.0)]


def test_models_are_required_without_tiers():
    from dynamo.nemo_switchyard.config import ConfigError

    with pytest.raises(ConfigError, match=r"--weak-model is required \(or set SWITCHYARD_WEAK_MODEL\) unless tiers are given"):
        load_settings({"strong_model": "big"})


class SequenceRouter(Router):
    """Scores from a list, in order."""

    name = "sequence"
    inline = True

    def __init__(self, scores: list[float]) -> None:
        self.scores = iter(scores)

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [next(self.scores) for _ in prompts]


def _decide_all(decider: Decider, count: int, context_of=lambda i: None) -> list[Decision]:
    async def go() -> list[Decision]:
        try:
            return [await decider.decide(decider.default, "p", context_of(i)) for i in range(count)]
        finally:
            await decider.aclose()

    return asyncio.run(go())


def test_budget_holds_the_strong_share_as_the_mix_drifts(monkeypatch):
    import random as stdlib_random

    rng = stdlib_random.Random(7)
    # The mix drifts from mostly easy prompts (low scores) to mostly hard ones, then steps to harder still.
    drift = [min(1.0, max(0.0, rng.gauss(0.2 + 0.5 * i / 16000, 0.15))) for i in range(16000)]
    step = [min(1.0, max(0.0, rng.gauss(0.85, 0.1))) for _ in range(4000)]
    scores = drift + step
    decider = _decider_with(SequenceRouter(scores), monkeypatch, target_strong_fraction=0.3, budget_window=500)
    results = _decide_all(decider, len(scores))
    shares = {}
    for start in range(500, len(scores) - 999, 1000):
        if start < 16000 < start + 1000:
            continue  # the step: the window needs about its length to catch up
        shares[start] = sum(r.decision == STRONG for r in results[start:start + 1000]) / 1000
    assert all(abs(share - 0.3) <= 0.04 for share in shares.values()), sorted(shares.items())  # the stated tolerance: +-0.04
    assert sum(s >= 0.5 for s in scores[-1000:]) / 1000 > 0.9  # a fixed threshold would have drifted far from the target
    reasons = {r.reason for r in results}
    assert reasons <= {"score", "budget"} and "budget" in reasons
    assert all(r.reason == "budget" for r in results if (r.score >= 0.5) != (r.decision == STRONG))


def test_budget_threshold_stays_within_bounds(monkeypatch):
    decider = _decider_with(SequenceRouter([0.01] * 300), monkeypatch, target_strong_fraction=0.5, budget_min_threshold=0.2, budget_window=100)
    results = _decide_all(decider, 300)
    assert all(r.threshold >= 0.2 for r in results) and all(r.decision == WEAK for r in results)


def test_budget_not_used_for_router_model_names(monkeypatch):
    decider = _decider_with(FixedRouter(0.45), monkeypatch, target_strong_fraction=1.0)
    result = _decide(decider, "p", Target("random", 0.5))
    assert result.decision == WEAK and result.threshold == 0.5 and decider.budget.observed == 0


def test_dry_run_leaves_the_budget_alone(monkeypatch):
    decider = _decider_with(FixedRouter(0.45), monkeypatch, target_strong_fraction=0.5)

    async def go() -> None:
        await decider.decide(decider.default, "p", record=False)
        await decider.aclose()

    asyncio.run(go())
    assert decider.budget.observed == 0


def test_threshold_override(monkeypatch):
    decider = _decider_with(FixedRouter(0.4), monkeypatch)
    result = _decide_all(decider, 1, lambda i: decision_module.Context(threshold=0.3))[0]
    assert (result.decision, result.threshold, result.reason) == (STRONG, 0.3, "override")


def test_model_override_skips_scoring(monkeypatch):
    router = FixedRouter(0.9)
    decider = _tiered(router, monkeypatch)
    assert decider.pinned("strong") == "big" and decider.pinned("weak") == "small" and decider.pinned("mid") == "mid"
    assert decider.pinned("other") is None
    result = _decide_all(decider, 1, lambda i: decision_module.Context(model="mid"))[0]
    assert (result.model, result.decision, result.score, result.reason, result.tier) == ("mid", decision_module.MIDDLE, None, "override", 1)
    assert router.calls == 0


@pytest.mark.parametrize(
    "score, saturated, model",
    [
        (0.55, {"big"}, "small"),  # strong pool saturated, score within the margin above the threshold: weak
        (0.65, {"big"}, "big"),  # beyond the margin: stays
        (0.55, {"big", "small"}, "big"),  # both saturated: no move
        (0.45, {"small"}, "big"),  # weak pool saturated, within the margin below: strong
        (0.35, {"small"}, "small"),
        (0.55, set(), "big"),
    ],
)
def test_load_aware_moves_borderline_prompts_off_a_saturated_pool(monkeypatch, score, saturated, model):
    decider = _decider_with(FixedRouter(score), monkeypatch, load_aware=True, load_max_queue=4, load_margin=0.1)
    decider.saturation = lambda m: "queue 9 > 4" if m in saturated else None
    result = _decide(decider, "p")
    assert result.model == model
    assert result.reason == ("load" if (model == "big") != (score >= 0.5) else "score")


def test_load_aware_needs_a_limit():
    from dynamo.nemo_switchyard.config import ConfigError

    with pytest.raises(ConfigError, match="--load-aware needs a limit"):
        _settings(load_aware=True)


def test_a_threshold_override_beats_sticky_affinity(monkeypatch):
    decider = _decider_with(FixedRouter(0.4), monkeypatch, affinity="sticky")
    contexts = [decision_module.Context(conversation="c"), decision_module.Context(conversation="c", threshold=0.3),
                decision_module.Context(conversation="c")]
    first, overridden, later = _decide_all(decider, 3, contexts.__getitem__)
    assert (first.model, first.reason) == ("small", "score")
    assert (overridden.model, overridden.reason) == ("big", "override")  # the request's own threshold wins
    assert (later.model, later.reason) == ("small", "affinity")  # the conversation keeps its first model
