"""Unit tests for dynamo.nemo_switchyard.routers.random: a seeded, uniform, deterministic score."""

from __future__ import annotations

import statistics

import pytest

from dynamo.nemo_switchyard.routers import registry
from dynamo.nemo_switchyard.routers.base import Router
from dynamo.nemo_switchyard.routers.random import RandomRouter

PROMPTS = [f"prompt number {i}: what is {i} * {i + 1}?" for i in range(5000)]


def test_registered_and_inline():
    assert "random" in registry.names()
    assert registry.router_class("random") is RandomRouter
    assert RandomRouter.name == "random"
    assert RandomRouter.inline is True
    assert issubclass(RandomRouter, Router)


def test_values_in_unit_interval():
    scores = RandomRouter(seed=0).score_batch(PROMPTS)
    assert len(scores) == len(PROMPTS)
    assert all(isinstance(s, float) and 0.0 <= s < 1.0 for s in scores)


@pytest.mark.parametrize("seed", [0, 1, 42, -7])
def test_roughly_uniform(seed: int):
    scores = RandomRouter(seed=seed).score_batch(PROMPTS)
    assert 0.45 <= statistics.fmean(scores) <= 0.55
    # Every tenth of [0, 1) gets about a tenth of the prompts (expected 500, sd ~21).
    counts = [0] * 10
    for s in scores:
        counts[int(s * 10)] += 1
    assert all(400 <= c <= 600 for c in counts), counts
    # A threshold splits traffic by that share.
    assert 0.27 <= sum(s >= 0.7 for s in scores) / len(scores) <= 0.33


def test_deterministic_per_prompt_and_seed():
    a = RandomRouter(seed=5).score_batch(PROMPTS[:200])
    b = RandomRouter(seed=5).score_batch(PROMPTS[:200])
    assert a == b
    # Batch composition does not matter: a prompt's score is its own.
    router = RandomRouter(seed=5)
    assert [router.score_batch([p])[0] for p in PROMPTS[:200]] == a
    assert router.score_batch(list(reversed(PROMPTS[:200]))) == list(reversed(a))


def test_known_value_is_stable_across_processes():
    # blake2b is not salted per process (unlike hash()), so scores survive restarts.
    import subprocess
    import sys

    code = "from dynamo.nemo_switchyard.routers.random import RandomRouter; print(repr(RandomRouter(3).score_batch(['hi'])[0]))"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert outputs == {repr(RandomRouter(3).score_batch(["hi"])[0]) + "\n"}


def test_different_seeds_differ():
    a = RandomRouter(seed=0).score_batch(PROMPTS[:500])
    b = RandomRouter(seed=1).score_batch(PROMPTS[:500])
    assert sum(x != y for x, y in zip(a, b)) >= 499


def test_different_prompts_differ():
    scores = RandomRouter(seed=0).score_batch(PROMPTS)
    assert len(set(scores)) == len(PROMPTS)


def test_empty_batch_and_odd_strings():
    router = RandomRouter()
    assert router.score_batch([]) == []
    odd = ["", " ", "\x00", "日本語", "\ud800 lone surrogate", "a" * 100_000]
    scores = router.score_batch(odd)
    assert len(set(scores)) == len(odd)
    assert all(0.0 <= s < 1.0 for s in scores)


def test_from_config_uses_seed_option():
    assert RandomRouter.from_config(options={"seed": 9}).score_batch(["x"]) == RandomRouter(seed=9).score_batch(["x"])
    assert RandomRouter.from_config().score_batch(["x"]) == RandomRouter(seed=0).score_batch(["x"])
    assert registry.build("random", options={"seed": 9}).score_batch(["x"]) == RandomRouter(seed=9).score_batch(["x"])


def test_from_config_rejects_unknown_option():
    with pytest.raises(TypeError):
        RandomRouter.from_config(options={"sede": 1})


def test_string_seed_accepted_like_int():
    assert RandomRouter(seed="4").score_batch(["x"]) == RandomRouter(seed=4).score_batch(["x"])  # type: ignore[arg-type]
