"""``switchyard calibrate``: the threshold that yields a share of strong calls, with ties handled."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from dynamo.nemo_switchyard import cli
from dynamo.nemo_switchyard.routers.base import Router
from dynamo.nemo_switchyard.tools.calibrate import pick, shortest_between, thresholds


class PromptNumberRouter(Router):
    """Scores a prompt by the number it is: a known score set (``--router-type test_tools_calibrate:PromptNumberRouter``)."""

    name = "prompt_number"
    inline = True

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [float(prompt.split()[0]) for prompt in prompts]


ROUTER = "test_tools_calibrate:PromptNumberRouter"


def calibrate(tmp_path: Path, capsys, scores: list[float], *flags: str) -> dict:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": f"{s!r} #{i}"}) + "\n" for i, s in enumerate(scores)))
    assert cli.main(["calibrate", "--router-type", ROUTER, "--input", str(path), "--json", "-q", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def share(scores: list[float], threshold: float) -> float:
    """What the server's rule (score >= threshold -> strong) gives."""
    return sum(score >= threshold for score in scores) / len(scores)


def test_threshold_sends_the_requested_share(tmp_path, capsys):
    scores = [i / 100 for i in range(100)]
    got = calibrate(tmp_path, capsys, scores, "--strong-fraction", "0.3")
    assert got["threshold"]["threshold"] == 0.7  # shortest decimal in (0.69, 0.70]
    assert got["threshold"]["strong"] == 30 and share(scores, 0.7) == 0.3
    assert [row["target"] for row in got["table"]] == pytest.approx([i / 10 for i in range(1, 10)])
    for row in got["table"]:
        assert share(scores, row["threshold"]) == pytest.approx(row["target"]) == pytest.approx(row["actual"])


def test_uneven_scores_and_percent_syntax(tmp_path, capsys):
    import random

    rng = random.Random(5)
    scores = [rng.random() ** 3 for _ in range(1000)]
    got = calibrate(tmp_path, capsys, scores, "--strong-fraction", "12.5%")
    assert share(scores, got["threshold"]["threshold"]) == 0.125
    for row in got["table"]:
        assert share(scores, row["threshold"]) == pytest.approx(row["target"])


def test_ties_pick_the_closest_achievable_share(tmp_path, capsys):
    scores = [0.5] * 50 + [0.2] * 50
    got = calibrate(tmp_path, capsys, scores, "--strong-fraction", "0.3")
    assert got["threshold"] == {"target": 0.3, "threshold": 0.5, "strong": 50, "actual": 0.5}
    # Equally close (0 % and 50 % for a 25 % target): the smaller share.
    got = calibrate(tmp_path, capsys, scores, "--strong-fraction", "0.25")
    assert got["threshold"]["strong"] == 0 and share(scores, got["threshold"]["threshold"]) == 0.0
    got = calibrate(tmp_path, capsys, scores, "--strong-fraction", "0.9")
    assert got["threshold"]["threshold"] == 0.0 and got["threshold"]["actual"] == 1.0


def test_threshold_helpers():
    assert shortest_between(0.69, 0.7) == 0.7
    assert shortest_between(0.123456, 0.1234567) == 0.1234567
    assert shortest_between(0.1234561, 0.1234579) == 0.123457
    assert shortest_between(0.5, 1.0) == 1.0
    assert shortest_between(-1.0, 0.3) == 0.0
    # Adjacent floats: the higher one itself.
    high = 0.3
    low = 0.29999999999999993
    assert shortest_between(low, high) == high
    options = thresholds([0.1, 0.1, 0.4, 1.0])
    assert options == [(1.0, 1), (0.4, 2), (0.0, 4)]  # max is 1.0: no threshold sends nothing to strong
    assert pick(options, 4, 0.0) == (1.0, 1)


def test_text_output_and_random_router(tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"prompt number {i}"}) + "\n" for i in range(500)))  # ids are optional here
    assert cli.main(["calibrate", "--router-type", "random", "-i", str(path), "--strong-fraction", "0.3", "-q"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("threshold ") and "sends 30.0% of these prompts (150 of 500)" in first
    assert "router-random-" in out
    assert out.count("%") >= 9 + 2


def test_bad_fraction_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["calibrate", "-i", "x.jsonl", "--strong-fraction", "1.5"])
    assert info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
