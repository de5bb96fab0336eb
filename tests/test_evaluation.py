"""Tests for the RouteLLM metrics in dynamo.nemo_switchyard.evaluation."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from dynamo.nemo_switchyard.evaluation import apgr, cpt, evaluate, load_labeled, pair_rows, pgr_curve


def _random_case(n: int, seed: int, graded: bool = False):
    rng = random.Random(seed)
    if graded:
        qs = [rng.randint(1, 10) / 10 for _ in range(n)]
        qw = [rng.randint(1, 10) / 10 for _ in range(n)]
    else:
        qs = [float(rng.random() < 0.8) for _ in range(n)]
        qw = [float(rng.random() < 0.5) for _ in range(n)]
    if sum(qs) == sum(qw):  # keep PGR defined
        qs[0], qw[0] = 1.0, 0.0
    return rng, qs, qw


# ---------------------------------------------------------------- hand-computed


def test_hand_computed_curve_and_area():
    scores = [0.9, 0.1, 0.5]
    qs = [1.0, 1.0, 0.0]
    qw = [0.0, 1.0, 0.0]
    curve = pgr_curve(scores, qs, qw)
    assert [round(s, 9) for s, _, _ in curve] == [0.0, round(1 / 3, 9), round(2 / 3, 9), 1.0]
    assert [q for _, q, _ in curve] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert [p for _, _, p in curve] == pytest.approx([0.0, 1.0, 1.0, 1.0])
    assert apgr(scores, qs, qw) == pytest.approx(5 / 6)


def test_hand_computed_reversed():
    scores = [0.1, 0.9, 0.5]
    qs = [1.0, 1.0, 0.0]
    qw = [0.0, 1.0, 0.0]
    assert [p for _, _, p in pgr_curve(scores, qs, qw)] == pytest.approx([0.0, 0.0, 0.0, 1.0])
    assert apgr(scores, qs, qw) == pytest.approx(1 / 6)


def test_hand_computed_ties_split_in_expectation():
    # Prompts 0 and 1 tie; only prompt 0 gains from the strong model.
    scores = [1.0, 1.0, 0.0]
    qs = [1.0, 0.0, 1.0]
    qw = [0.0, 0.0, 0.0]
    curve = pgr_curve(scores, qs, qw)
    assert [p for _, _, p in curve] == pytest.approx([0.0, 0.25, 0.5, 1.0])
    assert apgr(scores, qs, qw) == pytest.approx(5 / 12)
    assert cpt(curve, 0.0) == 0.0
    assert cpt(curve, 0.25) == pytest.approx(1 / 3)
    assert cpt(curve, 0.5) == pytest.approx(2 / 3)
    assert cpt(curve, 0.6) == pytest.approx(1.0)
    assert cpt(curve, 1.0) == pytest.approx(1.0)
    assert cpt(curve, 1.5) is None


def test_ties_do_not_depend_on_input_order():
    scores = [1.0, 1.0, 0.0]
    assert apgr(scores, [1.0, 0.0, 1.0], [0.0] * 3) == pytest.approx(apgr(scores, [0.0, 1.0, 1.0], [0.0] * 3))


# ---------------------------------------------------------------- reference routers


@pytest.mark.parametrize("graded", [False, True])
def test_constant_router_is_exactly_random_baseline(graded):
    _, qs, qw = _random_case(257, seed=1, graded=graded)
    assert apgr([0.3] * len(qs), qs, qw) == pytest.approx(0.5, abs=1e-12)
    curve = pgr_curve([0.3] * len(qs), qs, qw)
    # PGR is linear in the share for a constant router.
    for share, _, p in curve:
        assert p == pytest.approx(share, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_beats_random_and_reversed(seed):
    rng, qs, qw = _random_case(300, seed=seed)
    oracle = [s - w for s, w in zip(qs, qw)]
    reverse = [-x for x in oracle]
    a_oracle = apgr(oracle, qs, qw)
    a_reverse = apgr(reverse, qs, qw)
    a_random = apgr([rng.random() for _ in qs], qs, qw)
    assert a_oracle > 0.8
    assert a_reverse < 0.2
    assert a_reverse < a_random < a_oracle
    # Symmetry: the reversed router mirrors the oracle around the random baseline.
    assert a_oracle + a_reverse == pytest.approx(1.0, abs=1e-9)
    # No ordering of the prompts beats the oracle.
    for _ in range(20):
        perm = [rng.random() for _ in qs]
        assert apgr(perm, qs, qw) <= a_oracle + 1e-12


def test_oracle_pgr_exceeds_one_when_strong_sometimes_worse():
    qs = [1.0, 1.0, 0.0, 0.0]
    qw = [0.0, 0.0, 1.0, 0.0]
    oracle = [1.0, 1.0, -1.0, 0.0]
    curve = pgr_curve(oracle, qs, qw)
    assert max(p for _, _, p in curve) == pytest.approx(2.0)
    assert curve[-1][2] == pytest.approx(1.0)
    assert [p for _, _, p in curve] == pytest.approx([0.0, 1.0, 2.0, 2.0, 1.0])
    assert cpt(curve, 1.0) == pytest.approx(0.25)
    assert cpt(curve, 1.5) == pytest.approx(0.5)


def test_endpoints_and_evaluate_summary():
    rng, qs, qw = _random_case(101, seed=7, graded=True)
    scores = [rng.random() for _ in qs]
    curve = pgr_curve(scores, qs, qw)
    assert len(curve) == 102
    assert curve[0] == (0.0, pytest.approx(sum(qw) / 101), 0.0)
    assert curve[-1] == (1.0, pytest.approx(sum(qs) / 101), 1.0)
    summary = evaluate(scores, qs, qw)
    assert summary["n"] == 101
    assert summary["apgr"] == pytest.approx(apgr(scores, qs, qw))
    assert summary["cpt50"] == cpt(curve, 0.5)
    assert 0.0 <= summary["cpt50"] <= summary["cpt80"] <= 1.0


def test_input_errors():
    with pytest.raises(ValueError):
        pgr_curve([], [], [])
    with pytest.raises(ValueError):
        pgr_curve([0.1, 0.2], [1.0], [0.0, 0.0])
    with pytest.raises(ValueError):  # equal means: PGR undefined
        pgr_curve([0.1, 0.2], [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError):
        pgr_curve([float("nan"), 0.2], [1.0, 1.0], [0.0, 0.0])


# ---------------------------------------------------------------- data helpers


ROWS = [
    {"id": "a", "set": "t", "prompt": "p1", "outcomes": {"big": 1.0, "small": 0.0}},
    {"id": "b", "set": "t", "prompt": "p2", "outcomes": {"big": 1.0}},
    {"id": "c", "set": "t", "prompt": "p3", "outcomes": {"big-alias": 0.5, "small": 0.25}},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_load_labeled_roundtrip(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    text = "\n".join(json.dumps(r) for r in ROWS) + "\n\n"
    if suffix.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    assert load_labeled(str(path)) == ROWS


def test_load_labeled_rejects_bad_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "x", "outcomes": {}}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_labeled(str(path))


def test_pair_rows_filters_and_aliases():
    prompts, qs, qw = pair_rows(ROWS, "big", "small")
    assert (prompts, qs, qw) == (["p1"], [1.0], [0.0])
    prompts, qs, qw = pair_rows(ROWS, ("big", "big-alias"), "small")
    assert (prompts, qs, qw) == (["p1", "p3"], [1.0, 0.5], [0.0, 0.25])
