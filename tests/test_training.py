"""Tests for dynamo.nemo_switchyard.training (numpy logistic regression, calibration, train_checkpoint)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from dynamo.nemo_switchyard import training
from dynamo.nemo_switchyard.evaluation import load_labeled
from dynamo.nemo_switchyard.routers import learned as L
from dynamo.nemo_switchyard.routers.base import RouterError
from dynamo.nemo_switchyard.routers.learned import LearnedRouter

from shared_data import DATA, needs_data


def test_fit_logistic_recovers_a_known_model():
    rng = np.random.RandomState(0)
    X = rng.randn(4000, 3)
    true = np.array([2.0, -1.0, 0.5])
    p = 1 / (1 + np.exp(-(X @ true + 0.3)))
    beta, b = training.fit_logistic(X, p, C=1e6)  # soft labels = the true probabilities
    assert np.allclose(beta, true, atol=1e-3) and abs(b - 0.3) < 1e-3


def test_fit_logistic_penalty_and_unpenalized_columns():
    rng = np.random.RandomState(1)
    X = rng.randn(300, 4)
    y = (X[:, 0] > 0).astype(float)
    strong, _ = training.fit_logistic(X, y, C=1e-4)
    free, _ = training.fit_logistic(X, y, C=1e-4, unpenalized=[0])
    assert abs(strong[0]) < 0.05 < abs(free[0])


def test_calibration_group_balanced_and_increasing():
    z = np.r_[np.zeros(1000), np.ones(10)]
    cal = training.calibration(z + np.linspace(0, 1e-3, 1010), groups=["a"] * 1000 + ["b"] * 10)
    assert np.all(np.diff(cal["cal_z"]) > 0)
    median = np.interp(0.5, cal["cal_p"], cal["cal_z"])
    assert 0.0 < median < 1.0 + 1e-3  # the small group counts as much as the big one


def test_checkpoint_keeps_calibration_steps_finer_than_float32(tmp_path):
    """Quantiles 1e-6 apart near 10 collapse in float32 (a tied calibration is refused at load)."""
    router = LearnedRouter()
    arrays = {"w": router.head.w, "b": np.array(router.head.b), "mu": router.head.mu, "sd": router.head.sd,
              "cal_z": 10.0 + 1e-6 * np.arange(5), "cal_p": np.linspace(0.1, 0.9, 5), "cal_tail": np.array(1.0)}
    manifest = {"format": L.FORMAT, "head": {"kind": "linear"}, "encoder": {"id": router.encoder.encoder_id}}
    training.write_checkpoint(str(tmp_path), arrays, manifest)
    _, head = L.load_checkpoint(str(tmp_path))
    assert head.cal_z.tolist() == arrays["cal_z"].tolist()


def _synthetic_rows(n=300, seed=0):
    """Math-looking prompts: strong right, weak wrong; chit-chat: both right."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2:
            p = f"Prove that the integral of x^{rng.randint(2, 9)} sin(x) over [0, {rng.randint(1, 9)}] is bounded; derive it."
            o = {"big": 1.0, "small": float(rng.random() < 0.2)}
        else:
            p = rng.choice(["hi", "hello there", "thanks!", "tell me a joke", "good morning"]) + f" #{i}"
            o = {"big": 1.0, "small": float(rng.random() < 0.9)}
        rows.append({"prompt": p, "outcomes": o})
    return rows


def test_train_checkpoint_round_trip_synthetic(tmp_path):
    calls = []
    out = str(tmp_path / "ckpt")
    report = training.train_checkpoint(_synthetic_rows(), ["gpt-x", "big"], "small", out,
                                       progress=lambda d, t: calls.append((d, t)))
    assert report["n"] == 300 and report["n_test"] == 60
    assert report["apgr"] > 0.6
    assert calls and calls[-1][0] == calls[-1][1] and all(d <= t for d, t in calls)
    assert sorted(os.listdir(out)) == ["head.npz", "manifest.json"]
    manifest = json.loads(Path(out, "manifest.json").read_text())
    assert manifest["strong"] == ["gpt-x", "big"] and manifest["weak"] == ["small"]
    assert manifest["metrics"]["held_out_20pct"]["apgr"] == report["apgr"]
    r = LearnedRouter.from_config(checkpoint_path=out)
    s = r.score_batch(["Prove that the integral of x^3 sin(x) over [0, 2] is bounded; derive it.", "hi #4"])
    assert s[0] > s[1] and all(0 <= x <= 1 for x in s)
    assert r.score_batch(["a", "b c"]) == [r.score_batch(["a"])[0], r.score_batch(["b c"])[0]]


@pytest.mark.parametrize(
    "rows, strong, weak, message",
    [
        ([{"prompt": "x", "outcomes": {"a": 1, "b": 0}}] * 5, "a", "b", "need at least"),
        ([{"prompt": "x", "outcomes": {"a": 1}}] * 50, "a", "b", "only 0 rows"),
        ([{"prompt": f"x{i}", "outcomes": {"a": 1, "b": 1}} for i in range(50)], "a", "b", "identical outcomes"),
        ([{"prompt": f"x{i}", "outcomes": {"a": 3, "b": 0}} for i in range(50)], "a", "b", r"in \[0, 1\]"),
        ([{"prompt": 5, "outcomes": {}}], "a", "b", "row 1"),
        (["not a dict"], "a", "b", "row 1"),
    ],
)
def test_train_checkpoint_rejects_bad_input(tmp_path, rows, strong, weak, message):
    with pytest.raises(ValueError, match=message):
        training.train_checkpoint(rows, strong, weak, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


@needs_data
def test_train_checkpoint_on_a_shared_set(tmp_path):
    rows = load_labeled(os.path.join(DATA, "arena_hard_v1.jsonl.gz"))
    out = str(tmp_path / "arena")
    report = training.train_checkpoint(rows, "gpt-4-1106-preview", ["mistralai/Mixtral-8x7B-Instruct-v0.1"], out)
    assert 250 < report["n"] <= 299
    assert 0.0 <= report["apgr"] <= 1.0 and report["cpt50"] is not None
    assert 0.3 < report["share_strong_at_0.5"] < 0.7
    r = LearnedRouter.from_config(checkpoint_path=out)
    prompts = [row["prompt"] for row in rows[:50]]
    scores = r.score_batch(prompts)
    assert all(0 <= s <= 1 for s in scores) and scores == r.score_batch(prompts)


def test_checkpoint_needs_matching_encoder(tmp_path):
    out = str(tmp_path / "ckpt")
    training.train_checkpoint(_synthetic_rows(60), "big", "small", out)
    man = os.path.join(out, L.MANIFEST_FILE)
    m = json.loads(Path(man).read_text())
    m["encoder"]["id"] = "another-table"
    Path(man).write_text(json.dumps(m))
    with pytest.raises(RouterError, match="retrain"):
        LearnedRouter.from_config(checkpoint_path=out)
