"""scripts/word_slope.py: the word-problem feature's weight, fitted on the word problems alone; and the
word problems it is fitted on are not the held-out probes' (tests/data/word_problems_*.jsonl)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def word_slope():
    spec = importlib.util.spec_from_file_location("word_slope", ROOT / "scripts" / "word_slope.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_slope_recovers_the_slope_whatever_the_offset_and_the_level():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1.5, 400)
    offset = rng.normal(3.0, 0.5, 400)  # the fitted model's logits: far too high for these targets
    y = 1 / (1 + np.exp(-(offset + 2.0 * x - 4.5)))  # soft targets: slope 2, level 4.5 lower
    assert word_slope().fit_slope(offset, x, y) == pytest.approx(2.0, abs=1e-6)
    assert word_slope().fit_slope(offset, x, 1 / (1 + np.exp(-(offset - 1.0)))) == pytest.approx(0.0, abs=1e-6)


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("probe", ["word_problems_probe.jsonl", "word_problems_natural.jsonl"])
def test_training_problems_and_probe_problems_are_apart(probe):
    train = read(ROOT / "scripts" / "word_problems.jsonl")
    rows = read(ROOT / "tests" / "data" / probe)
    assert {r["steps"] for r in train} == {r["steps"] for r in rows} == set(range(1, 9))
    words = [set(r["prompt"].lower().split()) for r in train]
    for p in rows:
        q = set(p["prompt"].lower().split())
        assert max(len(q & w) / len(q | w) for w in words) < 0.5, p["prompt"]
